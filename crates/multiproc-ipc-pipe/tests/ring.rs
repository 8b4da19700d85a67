//! The shared-memory data path of a Pipe, with real processes: order across the ring and the
//! socket, readiness (poll, wait, the bare descriptor) around spinning receives and stale
//! doorbells, wake-ups under a long ping-pong, a peer killed mid-send, and pipe ends that
//! travel to another process.

mod common;

use common::{fds, fork_keep, T};
use multiproc_ipc_pipe::{wait, Connection, ErrorKind, Fd, Pipe};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// A message whose bytes say which one it is: `len` bytes of `(seq * 31 + i) as u8`.
fn body(seq: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq as usize * 31 + i) as u8).collect()
}

/// Message sizes that take every path: inline in the ring (up to 16 KiB), just over, a first
/// socket record and a bit, 1 MiB.
const SIZES: [usize; 8] = [0, 1, 200, 16 << 10, (16 << 10) + 1, 70_000, 3_000, 1 << 20];

/// Ring records, socket frames and frames carrying descriptors arrive in the order sent,
/// whichever receive call takes them.
#[test]
fn order_holds_across_ring_socket_and_descriptors() {
    let (a, b) = Pipe::new().unwrap();
    const N: u32 = 240;
    let child = fork_keep(&fds(&[&b]), || {
        let devnull = std::fs::File::open("/dev/null").unwrap();
        for seq in 0..N {
            let len = SIZES[seq as usize % SIZES.len()];
            match seq % 5 {
                0 => b.send(&(seq, Fd::from(devnull.try_clone().unwrap()))).unwrap(),
                1 => b.send(&(seq, body(seq, len))).unwrap(),
                _ => b.send_bytes(&body(seq, len)).unwrap(),
            }
        }
        0
    });
    drop(b);
    let mut buf = vec![0u8; 2 << 20];
    for seq in 0..N {
        let len = SIZES[seq as usize % SIZES.len()];
        match seq % 5 {
            0 => {
                let (s, fd): (u32, Fd) = a.recv_timeout(T).unwrap();
                assert_eq!(s, seq);
                drop(fd);
            }
            1 => {
                let (s, v): (u32, Vec<u8>) = a.recv_timeout(T).unwrap();
                assert!(s == seq && v == body(seq, len), "message {seq}");
            }
            2 | 3 => {
                let n = a.recv_bytes_into_timeout(&mut buf, T).unwrap();
                assert!(buf[..n] == body(seq, len)[..], "message {seq}");
            }
            _ => assert!(a.recv_bytes_timeout(T).unwrap() == body(seq, len), "message {seq}"),
        }
    }
    child.expect_success(T);
    assert_eq!(a.recv_timeout::<u8>(T).unwrap_err().kind(), ErrorKind::Disconnected);
}

/// A too-small buffer leaves a ring message queued, as it does a socket frame.
#[test]
fn recv_bytes_into_too_small_keeps_ring_message() {
    let (a, b) = Pipe::new().unwrap();
    a.send_bytes(b"0123456789").unwrap();
    let mut small = [0u8; 4];
    let e = b.recv_bytes_into_timeout(&mut small, T).unwrap_err();
    assert_eq!((e.kind(), e.needed()), (ErrorKind::BufferTooSmall, Some(10)));
    let mut big = [0u8; 16];
    assert_eq!(b.recv_bytes_into_timeout(&mut big, T).unwrap(), 10);
    assert_eq!(&big[..10], b"0123456789");
}

/// Readiness after spinning receives: poll, wait and the bare descriptor (as epoll would
/// see it) report a message sent while nobody receives, and none for a stale doorbell.
#[test]
fn readiness_after_spin_and_stale_doorbells() {
    let (a, b) = Pipe::new().unwrap();
    b.set_spin(Duration::from_micros(200));
    let (go_parent, go_child) = Pipe::new().unwrap();
    let child = fork_keep(&fds(&[&a, &go_child]), || {
        for i in 0..200u32 {
            let _: () = go_child.recv_timeout(T).unwrap();
            a.send(&i).unwrap();
        }
        0
    });
    drop((go_child, a));
    for i in 0..200u32 {
        match i % 4 {
            // A receive that spins while the message comes.
            0 => {
                go_parent.send(&()).unwrap();
                assert_eq!(b.recv_timeout::<u32>(T).unwrap(), i);
            }
            // Sent while nobody receives: the descriptor itself becomes readable.
            1 => {
                go_parent.send(&()).unwrap();
                let fd = b.as_fd();
                assert_eq!(wait(&[&fd], Some(T)).unwrap(), vec![0], "message {i}");
                assert_eq!(b.recv_timeout::<u32>(T).unwrap(), i);
            }
            // poll arms the doorbell, the message rings it; recv takes the message from the
            // ring and leaves the doorbell behind: poll and wait must not report it.
            2 => {
                assert!(!b.poll(Duration::ZERO).unwrap());
                go_parent.send(&()).unwrap();
                assert!(b.poll(T).unwrap());
                assert_eq!(b.recv_timeout::<u32>(T).unwrap(), i);
                assert!(!b.poll(Duration::ZERO).unwrap(), "stale doorbell reported");
                assert!(wait(&[&b], Some(Duration::from_millis(5))).unwrap().is_empty());
            }
            _ => {
                go_parent.send(&()).unwrap();
                assert_eq!(wait(&[&b], Some(T)).unwrap(), vec![0]);
                assert_eq!(b.recv_timeout::<u32>(T).unwrap(), i);
            }
        }
    }
    child.expect_success(T);
    assert!(b.poll(T).unwrap(), "end of stream is ready");
}

/// Messages sent back to back, the receiver taking one and then waiting on the bare
/// descriptor (level-triggered epoll style) before it takes the next: the one left in the
/// ring keeps the descriptor readable, whether the receive spun or blocked.
#[test]
fn message_left_behind_keeps_descriptor_readable() {
    let (a, b) = Pipe::new().unwrap();
    let (go_parent, go_child) = Pipe::new().unwrap();
    let child = fork_keep(&fds(&[&a, &go_child]), || {
        for i in 0..300u32 {
            let _: () = go_child.recv_timeout(T).unwrap();
            a.send(&(2 * i)).unwrap();
            a.send(&(2 * i + 1)).unwrap();
        }
        0
    });
    drop((go_child, a));
    let fd = b.as_fd();
    for i in 0..300u32 {
        b.set_spin(if i % 2 == 0 { Duration::ZERO } else { Duration::from_micros(500) });
        go_parent.send(&()).unwrap();
        for k in 0..2 {
            assert_eq!(wait(&[&fd], Some(T)).unwrap(), vec![0], "message {}", 2 * i + k);
            assert_eq!(b.recv_timeout::<u32>(T).unwrap(), 2 * i + k);
        }
    }
    child.expect_success(T);
}

/// A million messages of ping-pong, with receivers that block, spin briefly, or spin long:
/// no wake-up is lost (every wait is bounded), every answer is the right one.
#[test]
fn million_message_ping_pong() {
    const ROUNDS: u32 = 500_000;
    let started = Instant::now();
    let (a, b) = Pipe::new().unwrap();
    let child = fork_keep(&fds(&[&b]), || {
        for i in 0..ROUNDS {
            b.set_spin(spin_for(i));
            let v: u32 = b.recv_timeout(T).unwrap();
            b.send(&(v ^ 0x5555)).unwrap();
        }
        0
    });
    drop(b);
    for i in 0..ROUNDS {
        a.set_spin(spin_for(i / 3));
        a.send(&i).unwrap();
        assert_eq!(a.recv_timeout::<u32>(T).unwrap(), i ^ 0x5555);
    }
    child.expect_success(T);
    assert!(started.elapsed() < Duration::from_secs(120), "took {:?}", started.elapsed());
}

/// Spin settings that change every few thousand messages.
fn spin_for(i: u32) -> Duration {
    match (i / 4096) % 3 {
        0 => Duration::ZERO,
        1 => Duration::from_micros(3),
        _ => Duration::from_micros(20),
    }
}

/// The sender is killed while it writes ring records as fast as it can: the survivor takes
/// whole messages only, in order, then end of stream within 100 ms of the death; and a
/// receiver spinning for a long time notices the death as quickly.
#[test]
fn peer_killed_mid_send_never_tears_a_message() {
    for spin in [Duration::ZERO, Duration::from_secs(5)] {
        let (a, b) = Pipe::new().unwrap();
        a.set_spin(spin);
        let mut child = fork_keep(&fds(&[&b]), || {
            let mut seq = 0u32;
            loop {
                let len = (seq as usize * 7919) % 9000;
                let _ = b.send(&(seq, body(seq, len)));
                seq += 1;
            }
        });
        drop(b);
        let mut next = 0u32;
        let deadline = Instant::now() + Duration::from_millis(300);
        while next < 50 || Instant::now() < deadline {
            let (s, v): (u32, Vec<u8>) = a.recv_timeout(T).unwrap();
            assert!(s == next && v == body(s, (s as usize * 7919) % 9000), "message {s}");
            next += 1;
        }
        common::sys::sigkill(child.pid());
        child.wait_timeout(T).expect("the child died");
        let dead = Instant::now();
        // What the ring holds (64 KiB at most) comes whole and in order, then end of stream:
        // the receive that finds the ring empty reports it at once (not after its spin).
        loop {
            let call = Instant::now();
            match a.recv_timeout::<(u32, Vec<u8>)>(T) {
                Ok((s, v)) => {
                    assert!(s == next && v == body(s, (s as usize * 7919) % 9000), "message {s}");
                    next += 1;
                }
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
                    let took = call.elapsed();
                    assert!(took < Duration::from_millis(100), "end of stream took {took:?}");
                    break;
                }
            }
            assert!(dead.elapsed() < Duration::from_secs(5), "draining never ends");
        }
        assert!(a.poll(Duration::ZERO).unwrap());
    }
}

/// A receiver killed while it spins (so senders skip the doorbell): the next send fails.
#[test]
fn sending_to_a_receiver_killed_while_spinning_fails() {
    let (a, b) = Pipe::new().unwrap();
    let mut child = fork_keep(&fds(&[&b]), || {
        b.set_spin(Duration::from_secs(30));
        b.send(&"spinning").unwrap();
        let _ = b.recv_timeout::<u8>(Duration::from_secs(60));
        0
    });
    drop(b);
    assert_eq!(a.recv_timeout::<String>(T).unwrap(), "spinning");
    std::thread::sleep(Duration::from_millis(20));
    common::sys::sigkill(child.pid());
    child.wait_timeout(T).expect("the child died");
    // The receiver's state still says it watches, so no doorbell is sent: the sender asks
    // the kernel (at its first send, then at most every 50 µs).
    let e = a.send(&1u8).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
    // And it stays an error.
    assert_eq!(a.send(&1u8).unwrap_err().kind(), ErrorKind::Disconnected);
}

/// A pipe end passed to a process that inherited nothing (SCM_RIGHTS) carries its shared
/// memory: ring messages and socket frames flow both ways, after the sender dropped its copy.
#[test]
fn pipe_end_passed_to_child_keeps_working() {
    let (boot_parent, boot_child) = Pipe::new().unwrap();
    let child = fork_keep(&fds(&[&boot_child]), || {
        let c: Connection = boot_child.recv_timeout(T).unwrap();
        c.set_spin(Duration::from_micros(50));
        for seq in 0..200u32 {
            let v = c.recv_bytes_timeout(T).unwrap();
            if v != body(seq, SIZES[seq as usize % SIZES.len()]) {
                return 2;
            }
            c.send_bytes(&v).unwrap();
        }
        0
    });
    drop(boot_child);
    let (mine, theirs) = Pipe::new().unwrap();
    // Traffic before the end travels: it waits in the ring for its new owner.
    mine.send_bytes(&body(0, SIZES[0])).unwrap();
    boot_parent.send(&theirs).unwrap();
    drop(theirs);
    assert_eq!(mine.recv_bytes_timeout(T).unwrap(), body(0, SIZES[0]));
    for seq in 1..200u32 {
        let m = body(seq, SIZES[seq as usize % SIZES.len()]);
        mine.send_bytes(&m).unwrap();
        assert!(mine.recv_bytes_timeout(T).unwrap() == m, "message {seq}");
    }
    child.expect_success(T);
    assert_eq!(mine.recv_timeout::<u8>(T).unwrap_err().kind(), ErrorKind::Disconnected);
}

/// One end used by two processes at once is not supported (as in Python), but it corrupts
/// nothing: every receive returns (a message, or an error), within its timeout, no panic.
#[test]
fn one_end_in_two_senders_at_once_is_safe() {
    let (a, b) = Pipe::new().unwrap();
    let b = &b;
    let senders: Vec<_> = (0..2u8)
        .map(|k| {
            fork_keep(&fds(&[b]), move || {
                for i in 0..20_000u32 {
                    let len = (i as usize * 13) % 3000;
                    if b.send_timeout(&(k, vec![k; len]), Duration::from_secs(2)).is_err() {
                        break;
                    }
                }
                0
            })
        })
        .collect();
    let start = Instant::now();
    let mut got = 0;
    loop {
        match a.recv_timeout::<(u8, Vec<u8>)>(Duration::from_secs(2)) {
            Ok(_) => got += 1,
            Err(_) => break,
        }
        assert!(start.elapsed() < Duration::from_secs(30));
    }
    assert!(got > 0);
    for mut s in senders {
        s.kill();
        s.wait_timeout(T).expect("sender reaped");
    }
}
