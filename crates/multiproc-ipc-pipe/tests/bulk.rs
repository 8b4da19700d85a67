//! The bulk path of a Pipe (messages above the inline limit, up to 2 MiB, through a second
//! shared ring per direction) and the in-place receive, with real processes: order across
//! inline, bulk, socket and descriptor-carrying messages, flow control when the bulk ring is
//! full, peers killed mid-stream, forked and passed ends.
//!
//! Children that must write the bulk ring are forked with every descriptor (the ring's pages
//! are reserved through the pipe's memfd on the first bulk send).

mod common;

use common::T;
use multiproc_arena::testing::fork;
use multiproc_ipc_pipe::{Connection, ErrorKind, Fd, Pipe};
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

/// A message whose bytes say which one it is: `len` bytes of `(seq * 31 + i) as u8`.
fn body(seq: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq as usize * 31 + i) as u8).collect()
}

/// Sizes for every path: inline (up to 16 KiB), bulk (just over 16 KiB up to 2 MiB), socket
/// (over 2 MiB).
const SIZES: [usize; 9] =
    [0, 100, 16 << 10, (16 << 10) + 1, 70_000, MIB, 2 * MIB, 2 * MIB + 1, 3 * MIB + 5];

/// Sends message `seq` of the mixed stream (every sixth carries a descriptor).
fn send_mixed(c: &Connection, seq: u32, devnull: &std::fs::File) {
    let len = SIZES[seq as usize % SIZES.len()];
    match seq % 6 {
        0 => c.send(&(seq, Fd::from(devnull.try_clone().unwrap()), body(seq, len))).unwrap(),
        1 => c.send(&(seq, body(seq, len))).unwrap(),
        _ => c.send_bytes(&body(seq, len)).unwrap(),
    }
}

/// Receives message `seq` of the mixed stream, with every receive call in turn.
fn recv_mixed(c: &Connection, seq: u32, buf: &mut [u8]) {
    let len = SIZES[seq as usize % SIZES.len()];
    let want = body(seq, len);
    match seq % 6 {
        0 => {
            let (s, fd, v): (u32, Fd, Vec<u8>) = c.recv_timeout(T).unwrap();
            assert!(s == seq && v == want, "message {seq}");
            drop(fd);
        }
        1 => {
            let (s, v): (u32, Vec<u8>) = c.recv_timeout(T).unwrap();
            assert!(s == seq && v == want, "message {seq}");
        }
        2 => {
            let n = c.recv_bytes_into_timeout(buf, T).unwrap();
            assert!(buf[..n] == want[..], "message {seq}");
        }
        3 => assert!(c.recv_bytes_with_timeout(|m| m == &want[..], T).unwrap(), "message {seq}"),
        _ => assert!(c.recv_bytes_timeout(T).unwrap() == want, "message {seq}"),
    }
}

/// Inline, bulk, socket-sized and descriptor-carrying messages arrive in the order sent, in
/// both directions at once.
#[test]
fn order_holds_across_inline_bulk_socket_and_descriptors_both_ways() {
    const N: u32 = 120;
    let (a, b) = Pipe::new().unwrap();
    let child = fork(|| {
        let devnull = std::fs::File::open("/dev/null").unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                for seq in 0..N {
                    send_mixed(&b, seq, &devnull);
                }
            });
            let mut buf = vec![0u8; 4 * MIB];
            for seq in 0..N {
                recv_mixed(&b, seq, &mut buf);
            }
        });
        0
    });
    let devnull = std::fs::File::open("/dev/null").unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            for seq in 0..N {
                send_mixed(&a, seq, &devnull);
            }
        });
        let mut buf = vec![0u8; 4 * MIB];
        for seq in 0..N {
            recv_mixed(&a, seq, &mut buf);
        }
    });
    child.expect_success(T);
    drop(b);
    assert_eq!(a.recv_timeout::<u8>(T).unwrap_err().kind(), ErrorKind::Disconnected);
}

/// The bulk ring holds 8 MiB: seven 1 MiB messages fit, the eighth does not. `try_send_bytes`
/// then reports would-block and sends nothing (neither through the ring nor the socket); a
/// blocking send waits until the receiver frees room, and `send_bytes_timeout` expires.
#[test]
fn a_full_bulk_ring_blocks_the_sender_until_room_is_freed() {
    let (a, b) = Pipe::new().unwrap();
    for seq in 0..7u32 {
        a.try_send_bytes(&body(seq, MIB)).unwrap();
    }
    let e = a.try_send_bytes(&body(7, MIB)).unwrap_err();
    assert!(e.is_would_block(), "{e}");
    let e = a.try_send(&body(7, MIB)).unwrap_err();
    assert!(e.is_would_block(), "{e}");
    let t = Instant::now();
    let e = a.send_bytes_timeout(&body(7, MIB), Duration::from_millis(100)).unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert!(t.elapsed() >= Duration::from_millis(90));
    // Inline messages still go (their ring is another), after the bulk ones.
    a.send_bytes(b"small").unwrap();
    std::thread::scope(|s| {
        let sender = s.spawn(|| {
            let t = Instant::now();
            a.send_bytes(&body(7, MIB)).unwrap();
            t.elapsed()
        });
        std::thread::sleep(Duration::from_millis(100));
        for seq in 0..7u32 {
            assert!(b.recv_bytes_with_timeout(|m| m == &body(seq, MIB)[..], T).unwrap());
        }
        assert!(sender.join().unwrap() >= Duration::from_millis(50), "the sender waited");
    });
    assert_eq!(b.recv_bytes_timeout(T).unwrap(), b"small");
    assert_eq!(b.recv_bytes_timeout(T).unwrap(), body(7, MIB));
    assert!(b.recv_bytes_timeout(Duration::ZERO).unwrap_err().is_timeout());
}

/// A receiver killed while the sender streams bulk messages (and waits for room): the
/// sender gets an error, never a hang.
#[test]
fn receiver_killed_mid_stream_fails_the_sender() {
    let (a, b) = Pipe::new().unwrap();
    let mut child = fork(|| {
        for seq in 0..5u32 {
            if b.recv_bytes_timeout(T).unwrap() != body(seq, MIB) {
                return 2;
            }
        }
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    drop(b);
    let killer = std::thread::spawn({
        let pid = child.pid();
        move || {
            // By then the child has taken its five and the sender waits for room (twelve
            // sent), unless the machine is very slow: the kill may also come earlier.
            std::thread::sleep(Duration::from_millis(500));
            common::sys::sigkill(pid);
        }
    });
    let start = Instant::now();
    let mut seq = 0u32;
    let err = loop {
        match a.send_bytes_timeout(&body(seq, MIB), T) {
            Ok(()) => seq += 1,
            Err(e) => break e,
        }
        assert!(start.elapsed() < T, "still sending");
    };
    killer.join().unwrap();
    child.wait_timeout(T).expect("the child died");
    assert_eq!(err.kind(), ErrorKind::Disconnected, "{err} after {seq} messages");
}

/// A sender killed mid-stream: every whole message it sent arrives, then end of stream.
#[test]
fn sender_killed_mid_stream_leaves_whole_messages_then_eof() {
    let (a, b) = Pipe::new().unwrap();
    let mut child = fork(|| {
        let mut seq = 0u32;
        loop {
            let len = SIZES[seq as usize % 7];
            let _ = b.send_bytes(&body(seq, len));
            seq += 1;
        }
    });
    drop(b);
    let mut next = 0u32;
    while next < 40 {
        let len = SIZES[next as usize % 7];
        assert!(a.recv_bytes_timeout(T).unwrap() == body(next, len), "message {next}");
        next += 1;
    }
    common::sys::sigkill(child.pid());
    child.wait_timeout(T).expect("the child died");
    loop {
        match a.recv_bytes_with_timeout(|m| m.to_vec(), T) {
            Ok(v) => {
                assert!(v == body(next, SIZES[next as usize % 7]), "message {next}");
                next += 1;
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
                break;
            }
        }
    }
}

/// A forked child inherits an end and sends through the bulk ring (seven 1 MiB messages fill
/// it: an eighth try would-block, which only the bulk path does), then receives bulk
/// messages.
#[test]
fn forked_child_uses_the_bulk_path() {
    let (a, b) = Pipe::new().unwrap();
    let (go_a, go_b) = Pipe::new().unwrap();
    let child = fork(|| {
        for seq in 0..7u32 {
            b.try_send_bytes(&body(seq, MIB)).unwrap();
        }
        let full = b.try_send_bytes(&body(7, MIB)).unwrap_err().is_would_block();
        go_b.send(&full).unwrap();
        if !full {
            return 2;
        }
        b.send_bytes(b"sent").unwrap();
        for seq in 0..20u32 {
            if !b.recv_bytes_with_timeout(|m| m == &body(seq, 100_000)[..], T).unwrap() {
                return 3;
            }
        }
        0
    });
    assert!(go_a.recv_timeout::<bool>(T).unwrap(), "the child's bulk ring was not full");
    for seq in 0..7u32 {
        assert!(a.recv_bytes_timeout(T).unwrap() == body(seq, MIB), "message {seq}");
    }
    assert_eq!(a.recv_bytes_timeout(T).unwrap(), b"sent");
    for seq in 0..20u32 {
        a.send_bytes(&body(seq, 100_000)).unwrap();
    }
    child.expect_success(T);
}

/// An end sent to another process through a pipe after bulk messages flowed (both ways)
/// keeps working there, bulk included, and bulk messages queued before it travelled arrive.
#[test]
fn end_passed_after_bulk_traffic_keeps_working() {
    let (boot_parent, boot_child) = Pipe::new().unwrap();
    let child = fork(|| {
        let c: Connection = boot_child.recv_timeout(T).unwrap();
        for seq in 0..30u32 {
            let len = SIZES[seq as usize % SIZES.len()];
            let v = c.recv_bytes_timeout(T).unwrap();
            if v != body(seq, len) {
                return 2;
            }
            c.send_bytes(&v).unwrap();
        }
        0
    });
    drop(boot_child);
    // Made after the fork: the child holds no copy of it.
    let (mine, theirs) = Pipe::new().unwrap();
    for seq in 0..3u32 {
        theirs.send_bytes(&body(seq, MIB)).unwrap();
        assert!(mine.recv_bytes_timeout(T).unwrap() == body(seq, MIB));
        mine.send_bytes(&body(seq, MIB)).unwrap();
        assert!(theirs.recv_bytes_timeout(T).unwrap() == body(seq, MIB));
    }
    // Queued before the end travels: waits in the bulk ring for its new owner.
    mine.send_bytes(&body(0, SIZES[0])).unwrap();
    mine.send_bytes(&body(1, SIZES[1])).unwrap();
    boot_parent.send(&theirs).unwrap();
    drop(theirs);
    for seq in 0..30u32 {
        let m = body(seq, SIZES[seq as usize % SIZES.len()]);
        if seq >= 2 {
            mine.send_bytes(&m).unwrap();
        }
        assert!(mine.recv_bytes_timeout(T).unwrap() == m, "message {seq}");
    }
    child.expect_success(T);
}

/// `recv_bytes_with` sees inline, bulk and socket messages; a panic in `f` consumes the
/// message and leaves the pipe usable.
#[test]
fn recv_bytes_with_in_place_for_every_path() {
    let (a, b) = Pipe::new().unwrap();
    // Socket-sized messages need a receiver while they are sent: a thread sends.
    std::thread::scope(|s| {
        s.spawn(|| {
            for (seq, &len) in SIZES.iter().enumerate() {
                a.send_bytes(&body(seq as u32, len)).unwrap();
            }
            for len in [10, MIB, 3 * MIB] {
                a.send_bytes(&body(1, len)).unwrap();
                a.send_bytes(&body(2, len)).unwrap();
            }
        });
        for (seq, &len) in SIZES.iter().enumerate() {
            let got = b.recv_bytes_with_timeout(|m| (m.len(), m == &body(seq as u32, len)[..]), T);
            assert_eq!(got.unwrap(), (len, true), "{len} bytes");
        }
        for len in [10, MIB, 3 * MIB] {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                b.recv_bytes_with_timeout(|_| panic!("in f"), T)
            }));
            assert!(r.is_err());
            assert!(b.recv_bytes_with_timeout(|m| m == &body(2, len)[..], T).unwrap(), "{len}");
        }
    });
    let t = Instant::now();
    let e = b.recv_bytes_with_timeout(|_| unreachable!(), Duration::from_millis(50)).unwrap_err();
    assert!(e.is_timeout() && t.elapsed() >= Duration::from_millis(45), "{e}");
    // A connection without a ring (socket only) too.
    let (x, y) = std::os::unix::net::UnixStream::pair().unwrap();
    let (x, y) = (Connection::from_fd(x.into()).unwrap(), Connection::from_fd(y.into()).unwrap());
    let h = std::thread::spawn(move || y.recv_bytes_with_timeout(|m| m == &body(5, MIB)[..], T));
    x.send_bytes(&body(5, MIB)).unwrap();
    assert!(h.join().unwrap().unwrap());
}

/// A buffer too small for a bulk message: BufferTooSmall with the length needed, the message
/// stays queued (ahead of what follows).
#[test]
fn recv_bytes_into_too_small_keeps_a_bulk_message() {
    let (a, b) = Pipe::new().unwrap();
    a.send_bytes(&body(1, 100_000)).unwrap();
    a.send_bytes(b"next").unwrap();
    let mut small = vec![0u8; 50_000];
    let e = b.recv_bytes_into_timeout(&mut small, T).unwrap_err();
    assert_eq!((e.kind(), e.needed()), (ErrorKind::BufferTooSmall, Some(100_000)));
    let mut big = vec![0u8; 200_000];
    assert_eq!(b.recv_bytes_into_timeout(&mut big, T).unwrap(), 100_000);
    assert!(big[..100_000] == body(1, 100_000)[..]);
    assert_eq!(b.recv_bytes_timeout(T).unwrap(), b"next");
}

/// A pipe that carries only small messages commits none of its bulk rings' memory (their
/// pages are reserved on the first bulk send): the pipe's memfd holds far less than 8 MiB.
/// Measured in a forked child, whose page tables only its own pipe touches (the other tests'
/// threads keep running in the parent).
#[test]
fn bulk_memory_is_committed_only_when_used() {
    /// Resident bytes of this process's pipe memfds ("/memfd:multiproc").
    fn resident() -> u64 {
        let s = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut total = 0;
        let mut ours = false;
        for line in s.lines() {
            if line.contains(" /memfd:multiproc") {
                ours = true;
            } else if line.split_whitespace().next().is_some_and(|w| w.contains('-')) {
                ours = false;
            } else if ours && line.starts_with("Rss:") {
                total += line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap();
            }
        }
        total * 1024
    }
    let child = fork(|| {
        let before = resident();
        let (a, b) = Pipe::new().unwrap();
        for i in 0..100u32 {
            a.send_bytes(&i.to_le_bytes().repeat(1000)).unwrap();
            assert_eq!(b.recv_bytes_timeout(T).unwrap().len(), 4000);
        }
        let small = resident().saturating_sub(before);
        if small >= MIB as u64 {
            eprintln!("{small} bytes resident for a pipe of small messages");
            return 2;
        }
        a.send_bytes(&body(1, MIB)).unwrap();
        assert!(b.recv_bytes_with_timeout(|m| m == &body(1, MIB)[..], T).unwrap());
        let big = resident().saturating_sub(before);
        if big < MIB as u64 {
            eprintln!("{big} bytes resident after a bulk message");
            return 3;
        }
        0
    });
    child.expect_success(T);
}
