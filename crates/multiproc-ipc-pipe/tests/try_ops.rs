//! `try_recv` / `try_send`: never waiting, "not now" as a would-block error, nothing lost —
//! on a ring pipe, a record socket and a stream socket; a message taken in pieces across
//! would-blocks; readiness of the descriptor after a would-block (poll(2) and edge-triggered
//! epoll, as tokio uses), with a forked sender of thousands of messages.

mod common;

use common::sys::{epoll_edge, epoll_wait1, poll_in, send_raw, seqpacket_pair};
use common::{fds, fork_keep, T};
use multiproc_ipc_pipe::frame::Header;
use multiproc_ipc_pipe::{Connection, ErrorKind, Fd, Pipe};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// A message whose bytes say which one it is: `len` bytes of `(seq * 31 + i) as u8`.
fn body(seq: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq as usize * 31 + i) as u8).collect()
}

/// The three kinds of connection: a ring pipe, a record socket, a stream socket (each pair:
/// receiver, sender).
fn pairs() -> Vec<(&'static str, Connection, Connection)> {
    let (a, b) = Pipe::new().unwrap();
    let (c, d) = seqpacket_pair();
    let (e, f) = std::os::unix::net::UnixStream::pair().unwrap();
    vec![
        ("ring pipe", a, b),
        ("seqpacket", Connection::from_fd(c).unwrap(), Connection::from_fd(d).unwrap()),
        ("stream", Connection::from_fd(e.into()).unwrap(), Connection::from_fd(f.into()).unwrap()),
    ]
}

fn assert_would_block(e: &multiproc_ipc_pipe::Error, what: &str) {
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{what}: {e}");
    assert!(e.is_would_block() && !e.is_timeout() && !e.is_disconnected(), "{what}");
    assert_eq!(std::io::Error::from(e.clone()).kind(), std::io::ErrorKind::WouldBlock, "{what}");
}

/// Receives with `try_recv_bytes` only, waiting for the descriptor with poll(2) after each
/// would-block (at most `T` each).
fn recv_polling(c: &Connection) -> Vec<u8> {
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < T, "nothing whole within {T:?}");
        match c.try_recv_bytes() {
            Ok(v) => return v,
            Err(e) if e.is_would_block() => {
                assert!(poll_in(c.as_fd(), T.as_millis() as i32), "no wake-up within {T:?}");
            }
            Err(e) => panic!("try_recv_bytes: {e}"),
        }
    }
}

#[test]
fn try_recv_on_an_empty_connection_would_block_then_takes_what_was_sent() {
    for (what, rx, tx) in pairs() {
        let e = rx.try_recv::<u32>().unwrap_err();
        assert_would_block(&e, what);
        assert_would_block(&rx.try_recv_bytes().unwrap_err(), what);
        tx.send(&7u32).unwrap();
        assert_eq!(recv_polling_typed::<u32>(&rx), 7, "{what}");
        assert_would_block(&rx.try_recv::<u32>().unwrap_err(), what);
        // Several waiting, of every size (ring, socket frame), taken in order.
        let msgs = [(1, 10), (2, 20_000), (3, 0), (4, 70_000), (5, 5)];
        for (seq, len) in msgs {
            tx.send_bytes_timeout(&body(seq, len), T).unwrap();
        }
        for (seq, len) in msgs {
            assert!(recv_polling(&rx) == body(seq, len), "{what}: message {seq}");
        }
        assert_would_block(&rx.try_recv_bytes().unwrap_err(), what);
        drop(tx);
        let e = rx.try_recv::<u32>().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Disconnected, "{what}: {e}");
        assert!(e.is_disconnected() && !e.is_would_block());
    }
}

fn recv_polling_typed<T: serde::de::DeserializeOwned>(c: &Connection) -> T {
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < T, "nothing whole within {T:?}");
        match c.try_recv::<T>() {
            Ok(v) => return v,
            Err(e) if e.is_would_block() => {
                assert!(poll_in(c.as_fd(), T_MS), "no wake-up within {T:?}");
            }
            Err(e) => panic!("try_recv: {e}"),
        }
    }
}

const T_MS: i32 = T.as_millis() as i32;

/// After a would-block the descriptor is not readable (stale doorbells were taken out), and a
/// message sent afterwards makes it readable — also when the receiver spins in its blocking
/// receives (the sender then waits for it to watch the ring before it rings).
#[test]
fn try_recv_leaves_the_doorbell_armed() {
    for spin in [Duration::ZERO, Duration::from_micros(50)] {
        let (a, b) = Pipe::new().unwrap();
        a.set_spin(spin);
        for round in 0..50u32 {
            assert_would_block(&a.try_recv::<u32>().unwrap_err(), "empty");
            assert!(!poll_in(a.as_fd(), 0), "readable with nothing waiting (round {round})");
            b.send(&round).unwrap();
            assert!(poll_in(a.as_fd(), T_MS), "no doorbell (round {round}, spin {spin:?})");
            assert_eq!(a.try_recv::<u32>().unwrap(), round);
        }
    }
}

/// A frame whose records arrive one by one: every `try_recv_bytes` before the last record is
/// a would-block, and the part received so far is kept.
#[test]
fn a_frame_half_received_survives_would_block() {
    let (raw, c) = seqpacket_pair();
    let rx = Connection::from_fd(c).unwrap();
    let len = 300_000usize;
    let payload = body(9, len);
    let mut first = Header { len: len as u64, fds: 0 }.encode().to_vec();
    first.extend_from_slice(&payload[..65_536]);
    send_raw(raw.as_fd(), &first).unwrap();
    let mut at = 65_536;
    while at < len {
        assert_would_block(&rx.try_recv_bytes().unwrap_err(), "mid-frame");
        let end = (at + 100_000).min(len);
        send_raw(raw.as_fd(), &payload[at..end]).unwrap();
        at = end;
    }
    assert!(rx.try_recv_bytes().unwrap() == payload);
    assert_would_block(&rx.try_recv_bytes().unwrap_err(), "after");
}

/// An 8 MiB message (several times the socket buffer) from a thread, then a small one, taken
/// with `try_recv_bytes` and poll(2) only: whole and in order.
#[test]
fn a_big_message_polled_with_try_recv_arrives_whole() {
    let (a, b) = Pipe::new().unwrap();
    let big = body(3, 8 << 20);
    let expect = big.clone();
    let t = std::thread::spawn(move || {
        b.send_bytes(&big).unwrap();
        b.send(&"after").unwrap();
        b
    });
    let start = Instant::now();
    let mut blocked = 0u32;
    let got = loop {
        match a.try_recv_bytes() {
            Ok(v) => break v,
            Err(e) if e.is_would_block() => {
                blocked += 1;
                assert!(poll_in(a.as_fd(), T_MS), "no wake-up after {blocked} would-blocks");
            }
            Err(e) => panic!("{e}"),
        }
        assert!(start.elapsed() < 3 * T, "too slow");
    };
    assert!(got == expect, "the big message differs");
    assert_eq!(recv_polling_typed::<String>(&a), "after");
    drop(t.join().unwrap());
}

/// Messages of every path (ring, socket frames up to 1 MiB, handles) from a forked child,
/// taken with `try_recv` / `try_recv_bytes` and poll(2) only.
#[test]
fn try_recv_from_a_forked_child() {
    const SIZES: [usize; 6] = [0, 200, 16 << 10, 70_000, 3_000, 1 << 20];
    const N: u32 = 120;
    let (a, b) = Pipe::new().unwrap();
    let child = fork_keep(&fds(&[&b]), || {
        let devnull = std::fs::File::open("/dev/null").unwrap();
        for seq in 0..N {
            let len = SIZES[seq as usize % SIZES.len()];
            if seq % 7 == 0 {
                b.send(&(seq, Fd::from(devnull.try_clone().unwrap()))).unwrap();
            } else {
                b.send_bytes(&body(seq, len)).unwrap();
            }
        }
        0
    });
    drop(b);
    for seq in 0..N {
        let len = SIZES[seq as usize % SIZES.len()];
        if seq % 7 == 0 {
            let (s, fd): (u32, Fd) = recv_polling_typed(&a);
            assert_eq!(s, seq);
            drop(fd);
        } else {
            assert!(recv_polling(&a) == body(seq, len), "message {seq}");
        }
    }
    child.expect_success(T);
    // The child is gone: end of stream once the ring is drained.
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < T, "no end of stream within {T:?}");
        match a.try_recv_bytes() {
            Err(e) if e.is_would_block() => assert!(poll_in(a.as_fd(), T_MS)),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
                break;
            }
            Ok(_) => panic!("an extra message"),
        }
    }
}

/// How the stress receiver waits after a would-block.
#[derive(Clone, Copy, Debug)]
enum Waiter {
    Poll,
    EpollEdge,
}

/// 10,000 messages from a forked child (in the first half, every 97th a 20 KiB socket frame
/// and every 1000th 300 KiB; the rest, and all of the second half, inline in the ring),
/// received only with `try_recv` and waiting on the descriptor: none is lost, in bounded
/// time. The child stays until told that all arrived, so neither its frames nor its exit can
/// hide a lost wake-up: that is a wait of `T` that fails.
fn stress(waiter: Waiter, spin: Duration) {
    const N: u32 = 10_000;
    let len = |seq: u32| match seq {
        s if s >= N / 2 => (s % 50) as usize,
        s if s % 1000 == 999 => 300_000,
        s if s % 97 == 0 => 20_000,
        s => (s % 50) as usize,
    };
    let (a, b) = Pipe::new().unwrap();
    a.set_spin(spin);
    let child = fork_keep(&fds(&[&b]), || {
        for seq in 0..N {
            b.send(&(seq, body(seq, len(seq)))).unwrap();
            if seq % 20 == 0 {
                // Let the receiver catch up and wait now and then.
                std::thread::sleep(Duration::from_micros(20));
            }
        }
        assert_eq!(b.recv_timeout::<String>(T).unwrap(), "done");
        0
    });
    drop(b);
    let ep = epoll_edge(a.as_fd());
    let start = Instant::now();
    let (mut seq, mut waits) = (0u32, 0u32);
    while seq < N {
        assert!(start.elapsed() < 3 * T, "stuck at message {seq}");
        match a.try_recv::<(u32, Vec<u8>)>() {
            Ok((s, v)) => {
                assert_eq!(s, seq, "out of order");
                assert!(v == body(seq, len(seq)), "message {seq} differs");
                seq += 1;
            }
            Err(e) if e.is_would_block() => {
                waits += 1;
                let woke = match waiter {
                    Waiter::Poll => poll_in(a.as_fd(), T_MS),
                    Waiter::EpollEdge => epoll_wait1(ep.as_fd(), T_MS),
                };
                assert!(woke, "{waiter:?}: no wake-up within {T:?} at message {seq}: lost");
            }
            Err(e) => panic!("message {seq}: {e}"),
        }
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(30), "{N} messages took {took:?}");
    assert_would_block(&a.try_recv::<u32>().unwrap_err(), "drained");
    a.send(&"done").unwrap();
    child.expect_success(T);
    eprintln!("{waiter:?}, spin {spin:?}: {N} messages in {took:?}, {waits} waits");
}

#[test]
fn stress_ten_thousand_messages_with_try_recv_and_poll() {
    stress(Waiter::Poll, Duration::ZERO);
}

#[test]
fn stress_ten_thousand_messages_with_try_recv_and_edge_triggered_epoll() {
    stress(Waiter::EpollEdge, Duration::ZERO);
    // A receiver that spins in its blocking receives: senders wait for it to watch the ring
    // before they ring; `try_recv` never watches, so they ring.
    stress(Waiter::EpollEdge, Duration::from_micros(20));
}

/// `try_send` into a peer that does not read: would-block once the ring (or the socket) is
/// full, nothing of a refused message sent, every accepted one delivered in order. (Not on a
/// stream socket: there a message the socket takes part of is finished waiting, and this
/// peer does not read.)
#[test]
fn try_send_would_block_when_full_and_loses_nothing() {
    for (what, rx, tx) in pairs().into_iter().take(2) {
        // Small messages until one is refused, then large ones (a ring pipe takes a few
        // more: their marks fit in the ring, their first records in the socket) until one is.
        let mut sent: Vec<Vec<u8>> = Vec::new();
        for len in [1000, 200_000] {
            let e = loop {
                let m = body(sent.len() as u32, len);
                match tx.try_send_bytes(&m) {
                    Ok(()) => sent.push(m),
                    Err(e) => break e,
                }
                assert!(sent.len() < 100_000, "{what}: never full");
            };
            assert_would_block(&e, what);
        }
        assert_would_block(&tx.try_send(&body(0, 10)).unwrap_err(), what);
        for (seq, m) in sent.iter().enumerate() {
            assert!(recv_polling(&rx) == *m, "{what}: message {seq}");
        }
        assert_would_block(&rx.try_recv_bytes().unwrap_err(), what);
        tx.try_send(&"room again").unwrap();
        assert_eq!(recv_polling_typed::<String>(&rx), "room again", "{what}");
        drop(rx);
        let start = Instant::now();
        let e = loop {
            assert!(start.elapsed() < T, "{what}: the peer's end not seen");
            // (A ring pipe learns of the peer's end with its next check.)
            match tx.try_send_bytes(b"x") {
                Err(e) => break e,
                Ok(()) => std::thread::sleep(Duration::from_millis(1)),
            }
        };
        assert_eq!(e.kind(), ErrorKind::Disconnected, "{what}: {e}");
    }
}

/// A large `try_send` that got its first record out finishes the message (the receiver is
/// taking it), however much larger than the socket buffer it is.
#[test]
fn a_large_try_send_once_started_is_finished() {
    let (a, b) = Pipe::new().unwrap();
    let t = std::thread::spawn(move || {
        let v = a.recv_bytes_timeout(T).unwrap();
        (a, v)
    });
    let big = body(5, 6 << 20);
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < T, "never started");
        match b.try_send_bytes(&big) {
            Ok(()) => break,
            Err(e) if e.is_would_block() => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("{e}"),
        }
    }
    let (_a, got) = t.join().unwrap();
    assert!(got == big);
}
