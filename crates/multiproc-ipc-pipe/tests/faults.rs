//! Faults for real: the peer is killed (SIGKILL) in the middle of a send or a receive; the
//! survivor gets end of stream or an error within 100 ms, never a hang. Also the 100 MiB
//! message.

mod common;

use common::{idle_peer, pipe_to_child, T};
use multiproc_ipc_pipe::ErrorKind;
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_millis(100);

/// Debug builds on a loaded machine move tens of MiB slowly: a generous (still finite) bound
/// for the big transfers.
const BIG_T: Duration = Duration::from_secs(60);

/// Kills `child` and returns when it was seen dead (reaped): the survivor must have its
/// error within [`BOUND`] of that moment. (On a heavily loaded machine the kernel itself may
/// take a while between the SIGKILL and the end of the process; that is not ours to bound,
/// so it only has a loose limit.)
fn kill_and_reap(child: &mut multiproc_arena::testing::Child) -> (Instant, Instant) {
    let killed = Instant::now();
    common::sys::sigkill(child.pid());
    child.wait_timeout(T).expect("the child died");
    (killed, Instant::now())
}

fn check_reaction(killed: Instant, dead: Instant, when: Instant) {
    let after_death = when.saturating_duration_since(dead);
    assert!(after_death < BOUND, "error {after_death:?} after the peer was seen dead");
    assert!(when - killed < Duration::from_secs(2), "error {:?} after SIGKILL", when - killed);
}

/// The survivor is blocked sending a large message the peer does not read; the peer dies.
#[test]
fn peer_killed_mid_send() {
    let (a, mut child) = idle_peer();
    let big = vec![9u8; 64 << 20];
    let sender = std::thread::spawn(move || {
        let r = a.send_bytes(&big);
        (r, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(!sender.is_finished(), "send should be blocked on a full buffer");
    let (killed, dead) = kill_and_reap(&mut child);
    let (r, when) = sender.join().unwrap();
    assert_eq!(r.unwrap_err().kind(), ErrorKind::Disconnected);
    check_reaction(killed, dead, when);
}

/// The survivor is blocked receiving, part of a message already in; the peer dies.
#[test]
fn peer_killed_mid_recv() {
    let (a, mut child) = pipe_to_child(|b| {
        let big = vec![3u8; 64 << 20];
        b.send_bytes(&big).unwrap();
        0
    });
    // Once the sender has started, freeze it (the message is far larger than the socket
    // buffer, so it is stuck part-way) and take the part that arrived.
    assert!(a.poll(T).unwrap());
    std::thread::sleep(Duration::from_millis(5));
    child.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        a.recv_bytes_timeout(Duration::from_millis(20)).unwrap_err().kind(),
        ErrorKind::Timeout
    );
    assert!(a.poll(Duration::ZERO).unwrap(), "part of a message is in");
    let receiver = std::thread::spawn(move || {
        let r = a.recv_bytes();
        let t = Instant::now();
        (r.map(|v| v.len()), t, a)
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(!receiver.is_finished(), "receive should wait for the rest");
    let (killed, dead) = kill_and_reap(&mut child);
    let (r, when, a) = receiver.join().unwrap();
    assert_eq!(r.unwrap_err().kind(), ErrorKind::Disconnected);
    check_reaction(killed, dead, when);
    // The connection stays in the disconnected state.
    assert_eq!(a.recv_bytes().unwrap_err().kind(), ErrorKind::Disconnected);
}

/// The survivor waits for a message that never comes; the peer dies.
#[test]
fn peer_killed_while_waiting() {
    let (a, mut child) = idle_peer();
    let receiver = std::thread::spawn(move || {
        let r = a.recv::<u64>();
        (r, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(50));
    let (killed, dead) = kill_and_reap(&mut child);
    let (r, when) = receiver.join().unwrap();
    assert_eq!(r.unwrap_err().kind(), ErrorKind::Disconnected);
    check_reaction(killed, dead, when);
}

fn pattern(len: usize) -> Vec<u8> {
    let block: Vec<u8> = (0..253u8).collect();
    let mut v = block.repeat(len / 253 + 1);
    v.truncate(len);
    v
}

fn is_pattern(v: &[u8]) -> bool {
    let block: Vec<u8> = (0..253u8).collect();
    v.chunks(253).all(|c| c == &block[..c.len()])
}

/// A 100 MiB message each way, intact (and 16 MiB through serde).
#[test]
fn hundred_mib_messages() {
    let (a, child) = pipe_to_child(|b| {
        let v = b.recv_bytes_timeout(BIG_T).unwrap();
        b.send(&(v.len() == 100 << 20 && is_pattern(&v))).unwrap();
        b.send_bytes(&v).unwrap();
        let s: (u32, Vec<u64>) = b.recv_timeout(BIG_T).unwrap();
        b.send(&s).unwrap();
        0
    });
    let v = pattern(100 << 20);
    a.send_bytes(&v).unwrap();
    assert!(a.recv_timeout::<bool>(BIG_T).unwrap());
    let back = a.recv_bytes_timeout(BIG_T).unwrap();
    assert!(back.len() == v.len() && is_pattern(&back));
    let s = (7u32, vec![u64::MAX - 1; 2 << 20]);
    a.send(&s).unwrap();
    assert!(a.recv_timeout::<(u32, Vec<u64>)>(BIG_T).unwrap() == s);
    child.expect_success(BIG_T);
}

/// A handled signal in the receiver and the sender does not break a large transfer (C18).
#[test]
fn signals_do_not_break_transfers() {
    extern "C" fn nothing(_: libc::c_int) {}
    let (a, child) = pipe_to_child(|b| {
        common::sys::handle_signal(libc::SIGUSR1, nothing);
        let v = b.recv_bytes_timeout(BIG_T).unwrap();
        b.send_bytes(&v).unwrap();
        0
    });
    let v = pattern(32 << 20);
    let pid = child.pid();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let pest = std::thread::spawn(move || {
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            common::sys::signal(pid, libc::SIGUSR1);
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    a.send_bytes(&v).unwrap();
    let back = a.recv_bytes_timeout(BIG_T).unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    pest.join().unwrap();
    assert!(back == v);
    child.expect_success(BIG_T);
}
