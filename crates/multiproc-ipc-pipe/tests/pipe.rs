//! Pipe and Connection behaviours (checklist section C), with real processes.

mod common;

use common::{fds, fork_keep, T};
use multiproc_ipc_pipe::{Connection, ErrorKind, Pipe};
use std::time::{Duration, Instant};

/// C01: an echo child; objects, bytes and a 16 MiB message round-trip.
#[test]
fn echo_child_objects_and_bytes() {
    let (parent, child_end) = Pipe::new().unwrap();
    let child = fork_keep(&fds(&[&child_end]), || loop {
        {
            match child_end.recv_bytes() {
                Ok(b) => child_end.send_bytes(&b).unwrap(),
                Err(e) if e.kind() == ErrorKind::Disconnected => return 0,
                Err(_) => return 1,
            }
        }
    });
    drop(child_end);
    parent.send(&(vec![1i64, 2], 2.25f64, None::<u8>)).unwrap();
    let v: (Vec<i64>, f64, Option<u8>) = parent.recv_timeout(T).unwrap();
    assert_eq!(v, (vec![1, 2], 2.25, None));
    parent.send_bytes(b"hello world").unwrap();
    assert_eq!(parent.recv_bytes_timeout(T).unwrap(), b"hello world");
    let big: Vec<u8> = (0..16 << 20).map(|i: u32| (i % 251) as u8).collect();
    parent.send_bytes(&big).unwrap();
    assert_eq!(parent.recv_bytes_timeout(T).unwrap(), big);
    drop(parent);
    child.expect_success(T);
}

/// C02: recv_bytes_into fills the prefix, honours an offset, and a short buffer is an error
/// that carries the size and keeps the message.
#[test]
fn recv_bytes_into_and_too_small() {
    let (a, b) = Pipe::new().unwrap();
    let msg: Vec<u8> = (1..=16).collect();
    a.send_bytes(&msg).unwrap();
    let mut buf = [0u8; 40];
    assert_eq!(b.recv_bytes_into(&mut buf).unwrap(), 16);
    assert_eq!(&buf[..16], &msg[..]);
    assert!(buf[16..].iter().all(|&x| x == 0));
    a.send_bytes(&msg).unwrap();
    let mut buf = [0u8; 40];
    assert_eq!(b.recv_bytes_into(&mut buf[12..]).unwrap(), 16);
    assert_eq!(&buf[12..28], &msg[..]);
    let long = vec![7u8; 110];
    a.send_bytes(&long).unwrap();
    let mut small = [0u8; 40];
    let e = b.recv_bytes_into(&mut small).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BufferTooSmall);
    assert_eq!(e.needed(), Some(110));
    assert!(b.poll(Duration::ZERO).unwrap(), "the message is still there");
    let mut big = [0u8; 200];
    assert_eq!(b.recv_bytes_into(&mut big).unwrap(), 110);
    assert_eq!(&big[..110], &long[..]);
}

/// C03, C12, C15: poll does not consume, empty messages count, boundaries are kept.
#[test]
fn poll_and_boundaries() {
    let (a, b) = Pipe::new().unwrap();
    let t = Instant::now();
    assert!(!b.poll(Duration::ZERO).unwrap());
    assert!(t.elapsed() < Duration::from_millis(500));
    let t = Instant::now();
    assert!(!b.poll(Duration::from_millis(100)).unwrap());
    assert!(t.elapsed() >= Duration::from_millis(95));
    a.send_bytes(b"").unwrap();
    assert!(b.poll(Duration::ZERO).unwrap());
    assert!(b.poll(Duration::ZERO).unwrap());
    assert_eq!(b.recv_bytes().unwrap(), b"");
    for m in [&b"a"[..], b"b", b"cd"] {
        a.send_bytes(m).unwrap();
    }
    for m in [&b"a"[..], b"b", b"cd"] {
        assert!(b.poll(Duration::from_secs(1)).unwrap());
        assert_eq!(b.recv_bytes().unwrap(), m);
    }
    assert!(!b.poll(Duration::ZERO).unwrap());
}

/// C04, C21: EOF once every handle of the other end is closed; poll reports it.
#[test]
fn eof_after_peer_closes() {
    let (a, b) = Pipe::new().unwrap();
    let child = fork_keep(&fds(&[&b]), || {
        b.send(&1u8).unwrap();
        0
    });
    drop(b);
    child.expect_success(T);
    assert_eq!(a.recv_timeout::<u8>(T).unwrap(), 1);
    assert!(a.poll(Duration::from_secs(5)).unwrap(), "EOF is readable");
    let e = a.recv_timeout::<u8>(T).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected);
    assert_eq!(a.recv_bytes().unwrap_err().kind(), ErrorKind::Disconnected);
    let e = a.send(&1u8).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
}

/// C05: one-way pipes refuse the wrong direction.
#[test]
fn simplex_directions() {
    let (r, w) = Pipe::simplex().unwrap();
    assert!(r.readable() && !r.writable());
    assert!(w.writable() && !w.readable());
    assert_eq!(r.send(&1u8).unwrap_err().kind(), ErrorKind::WrongDirection);
    assert_eq!(w.recv::<u8>().unwrap_err().kind(), ErrorKind::WrongDirection);
    assert_eq!(w.poll(Duration::ZERO).unwrap_err().kind(), ErrorKind::WrongDirection);
    w.send(&"x").unwrap();
    assert_eq!(r.recv::<String>().unwrap(), "x");
    drop(w);
    assert_eq!(r.recv::<String>().unwrap_err().kind(), ErrorKind::Disconnected);
}

/// C07: send_bytes with offset and size, Python's checks.
#[test]
fn send_bytes_range() {
    let (a, b) = Pipe::new().unwrap();
    let msg: Vec<u8> = (b'a'..=b'z').collect();
    let ok: [(usize, Option<usize>, &[u8]); 5] = [
        (0, None, &msg[..]),
        (5, None, &msg[5..]),
        (7, Some(8), &msg[7..15]),
        (26, None, b""),
        (26, Some(0), b""),
    ];
    for (off, size, want) in ok {
        a.send_bytes_range(&msg, off, size).unwrap();
        assert_eq!(b.recv_bytes().unwrap(), want);
    }
    for (off, size) in [(27, None), (22, Some(5)), (26, Some(1))] {
        let e = a.send_bytes_range(&msg, off, size).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
    assert!(!b.poll(Duration::ZERO).unwrap());
}

/// A type mismatch is a decode error; the connection stays usable.
#[test]
fn type_mismatch_is_codec_error() {
    let (a, b) = Pipe::new().unwrap();
    a.send(&300u32).unwrap();
    let e = b.recv::<bool>().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Codec, "{e}");
    a.send(&()).unwrap();
    let e = b.recv::<u64>().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Codec, "{e}");
    a.send(&5u32).unwrap();
    assert_eq!(b.recv::<u32>().unwrap(), 5);
}

/// Timeouts: nothing lost, and a timeout is bounded.
#[test]
fn recv_timeout_is_bounded() {
    let (_a, b) = Pipe::new().unwrap();
    let t = Instant::now();
    let e = b.recv_timeout::<u8>(Duration::from_millis(50)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(t.elapsed() >= Duration::from_millis(45) && t.elapsed() < Duration::from_secs(2));
    let e = b.recv_timeout::<u8>(Duration::ZERO).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
}

/// The connection is Send + Sync.
#[test]
fn connection_is_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<Connection>();
}

/// C14: a child that only polls a shared reader consumes nothing; the parent then receives
/// exactly one whole message.
#[test]
fn poll_in_another_process_consumes_nothing() {
    let (r, w) = Pipe::simplex().unwrap();
    w.send_bytes(b"first").unwrap();
    let child = fork_keep(&fds(&[&r]), || (!r.poll(Duration::from_secs(5)).unwrap()) as i32);
    child.expect_success(T);
    w.send_bytes(b"second").unwrap();
    assert_eq!(r.recv_bytes_timeout(T).unwrap(), b"first");
    assert_eq!(r.recv_bytes_timeout(T).unwrap(), b"second");
}

/// Processes may take turns receiving from one shared reader (under their own lock, as in
/// Python): a receiver never reads past the message it takes.
#[test]
fn shared_reader_takes_turns() {
    let (r, w) = Pipe::simplex().unwrap();
    let (res_r, res_w) = Pipe::simplex().unwrap();
    for i in 0..6u32 {
        w.send(&(i, vec![i as u8; (i as usize) << 14])).unwrap();
    }
    // The child takes the first three, the parent the other three.
    let child = fork_keep(&fds(&[&r, &res_w]), || {
        let mut ids = Vec::new();
        for _ in 0..3 {
            let (i, v): (u32, Vec<u8>) = r.recv_timeout(T).unwrap();
            assert_eq!(v.len(), (i as usize) << 14);
            ids.push(i);
        }
        res_w.send(&ids).unwrap();
        0
    });
    drop(res_w);
    assert_eq!(res_r.recv_timeout::<Vec<u32>>(T).unwrap(), vec![0, 1, 2]);
    child.expect_success(T);
    for want in 3..6u32 {
        let (i, v): (u32, Vec<u8>) = r.recv_timeout(T).unwrap();
        assert_eq!((i, v.len()), (want, (want as usize) << 14));
    }
}

/// Sends from several threads arrive whole (a Connection is Sync).
#[test]
fn concurrent_senders_keep_messages_whole() {
    let (a, b) = Pipe::new().unwrap();
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let a = &a;
            s.spawn(move || {
                for k in 0..100u32 {
                    let len = (k as usize * 997) % 20_000;
                    // Bounded: a lost message fails the receiver, and then these must not
                    // wait for room forever (the scope joins them before it panics).
                    if let Err(e) = a.send_timeout(&(t, k, vec![t; len]), T) {
                        panic!("sender {t} message {k}: {e}");
                    }
                }
            });
        }
        let mut next = [0u32; 4];
        for _ in 0..400 {
            let (t, k, v): (u8, u32, Vec<u8>) = b.recv_timeout(T).unwrap();
            assert_eq!(k, next[t as usize]);
            assert!(v.len() == (k as usize * 997) % 20_000 && v.iter().all(|&x| x == t));
            next[t as usize] += 1;
        }
    });
}

/// send_timeout: a peer that does not read makes a send time out without sending half a
/// message; a large message abandoned mid-way leaves the connection unable to send.
#[test]
fn send_timeout_when_peer_does_not_read() {
    let (a, b) = Pipe::new().unwrap();
    let chunk = vec![1u8; 60_000];
    let mut n = 0;
    loop {
        match a.send_bytes_timeout(&chunk, Duration::from_millis(30)) {
            Ok(()) => n += 1,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Timeout);
                break;
            }
        }
        assert!(n < 100_000, "the buffer never filled");
    }
    for _ in 0..n {
        assert_eq!(b.recv_bytes_timeout(T).unwrap().len(), 60_000);
    }
    assert!(!b.poll(Duration::ZERO).unwrap(), "nothing half-sent");
    a.send_timeout(&5u8, T).unwrap();
    assert_eq!(b.recv_timeout::<u8>(T).unwrap(), 5);
    let big = vec![2u8; 16 << 20];
    let e = a.send_bytes_timeout(&big, Duration::from_millis(30)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(a.send(&1u8).unwrap_err().kind(), ErrorKind::Protocol);
}

/// recv_bytes_into with buffers of 64 KiB and more (the first record lands in the caller's
/// buffer): exact fits, a too-small buffer that keeps the message, and timeouts mid-message.
#[test]
fn recv_bytes_into_large_buffers() {
    let (a, b) = Pipe::new().unwrap();
    let msg =
        |n: usize, seed: u8| -> Vec<u8> { (0..n).map(|i| (i as u8).wrapping_mul(seed)).collect() };
    for (size, buf_len) in [(10, 70_000), (65_536, 65_536), (70_000, 100_000), (1 << 20, 1 << 20)] {
        let m = msg(size, 7);
        a.send_bytes(&m).unwrap();
        let mut buf = vec![0u8; buf_len];
        assert_eq!(b.recv_bytes_into(&mut buf).unwrap(), size);
        assert!(buf[..size] == m[..]);
    }
    // Too small, but at least 64 KiB: the error keeps the whole message.
    let m = msg(200_000, 13);
    a.send_bytes(&m).unwrap();
    let mut small = vec![0u8; 100_000];
    let e = b.recv_bytes_into(&mut small).unwrap_err();
    assert_eq!((e.kind(), e.needed()), (ErrorKind::BufferTooSmall, Some(200_000)));
    let mut big = vec![0u8; 300_000];
    assert_eq!(b.recv_bytes_into(&mut big).unwrap(), 200_000);
    assert!(big[..200_000] == m[..]);
    // Twice too small, then recv_bytes takes it.
    a.send_bytes(&m).unwrap();
    assert!(b.recv_bytes_into(&mut small).is_err());
    assert!(b.recv_bytes_into(&mut small).is_err());
    assert!(b.recv_bytes().unwrap() == m);
    // A message bigger than the socket buffer, taken with timeouts by a receiver that must
    // come back for the rest while the sender is still writing.
    let m = msg(8 << 20, 3);
    std::thread::scope(|s| {
        s.spawn(|| a.send_bytes(&m).unwrap());
        let mut buf = vec![0u8; 8 << 20];
        let mut tries = 0;
        let n = loop {
            match b.recv_bytes_into_timeout(&mut buf, Duration::from_micros(200)) {
                Ok(n) => break n,
                Err(e) => assert_eq!(e.kind(), ErrorKind::Timeout),
            }
            tries += 1;
            assert!(tries < 100_000);
        };
        assert_eq!(n, 8 << 20);
        assert!(buf == m);
    });
}

/// shutdown() from another thread ends a blocked receive; later calls say Closed, the peer
/// sees end of stream.
#[test]
fn shutdown_unblocks_and_closes() {
    let (a, b) = Pipe::new().unwrap();
    std::thread::scope(|s| {
        let r = s.spawn(|| a.recv::<u8>());
        std::thread::sleep(Duration::from_millis(50));
        a.shutdown().unwrap();
        assert_eq!(r.join().unwrap().unwrap_err().kind(), ErrorKind::Closed);
    });
    assert_eq!(a.send(&1u8).unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!(a.recv_bytes().unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!(b.recv_timeout::<u8>(T).unwrap_err().kind(), ErrorKind::Disconnected);
    a.close();
}
