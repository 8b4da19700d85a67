//! CPython's queue behaviours (checklist Q, JQ, SQ) with real processes, plus handle transfer
//! and messages of every size from several producers.
#![cfg(not(multiproc_loom))]

use multiproc_arena::testing::{fork, Child};
use multiproc_arena::{transfer, Arena};
use multiproc_ipc_queue::{ErrorKind, GetError, JoinableQueue, PutError, Queue, SimpleQueue};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

fn ok(c: Child) {
    c.expect_success(T);
}

/// Q01: `put` in all its forms on `Queue(maxsize=6)`; a child drains it.
#[test]
fn q01_put() {
    let q: Queue<u32> = Queue::builder().maxsize(6).build().unwrap();
    assert!(q.empty() && !q.full());
    q.put(1).unwrap();
    q.put_timeout(2, Duration::from_secs(1)).unwrap();
    q.put(3).unwrap();
    q.try_put(4).unwrap();
    q.try_put(5).unwrap();
    q.try_put(6).unwrap();
    assert!(!q.empty() && q.full());
    assert_eq!(q.qsize(), 6);
    let t = Instant::now();
    assert!(matches!(q.try_put(7), Err(PutError::Full(7))));
    assert!(t.elapsed() < Duration::from_millis(50));
    let t = Instant::now();
    assert!(matches!(q.put_timeout(7, Duration::from_millis(100)), Err(PutError::Timeout(7))));
    let e = t.elapsed();
    assert!(e >= Duration::from_millis(95) && e < Duration::from_secs(2), "{e:?}");
    ok(fork(|| {
        for i in 1..=6 {
            if q.get_timeout(T).unwrap() != i {
                return 1;
            }
        }
        0
    }));
    assert!(q.empty() && !q.full());
}

/// Q02: a child puts 1..5; every form of `get`; `Empty` fast without blocking, after the
/// timeout with it.
#[test]
fn q02_get() {
    let q: Queue<u32> = Queue::new().unwrap();
    ok(fork(|| {
        for i in 1..=5 {
            q.put(i).unwrap();
        }
        0
    }));
    assert!(!q.empty());
    assert_eq!(q.try_get().unwrap(), 1);
    assert_eq!(q.get().unwrap(), 2);
    assert_eq!(q.get_timeout(Duration::from_secs(1)).unwrap(), 3);
    assert_eq!(q.get().unwrap(), 4);
    assert_eq!(q.get().unwrap(), 5);
    assert!(q.empty());
    let t = Instant::now();
    assert!(matches!(q.try_get(), Err(GetError::Empty)));
    assert!(t.elapsed() < Duration::from_millis(50));
    let t = Instant::now();
    assert!(matches!(q.get_timeout(Duration::from_millis(100)), Err(GetError::Timeout)));
    assert!(t.elapsed() >= Duration::from_millis(95));
}

/// Q03: the parent puts 0..9, a child started afterwards puts 10..19: exactly 0..19 in order.
#[test]
fn q03_fork_order() {
    let q: Queue<u32> = Queue::new().unwrap();
    for i in 0..10 {
        q.put(i).unwrap();
    }
    ok(fork(|| {
        for i in 10..20 {
            q.put(i).unwrap();
        }
        0
    }));
    for i in 0..20 {
        assert_eq!(q.get_timeout(T).unwrap(), i);
    }
    assert!(matches!(q.try_get(), Err(GetError::Empty)));
}

/// Q04, Q05: `qsize` counts; a timed `get` on an empty queue waits about its timeout.
#[test]
fn q04_qsize_q05_timeout() {
    let q: Queue<u8> = Queue::new().unwrap();
    assert_eq!(q.qsize(), 0);
    q.put(1).unwrap();
    assert_eq!(q.qsize(), 1);
    q.put(2).unwrap();
    assert_eq!(q.qsize(), 2);
    q.get().unwrap();
    assert_eq!(q.qsize(), 1);
    q.get().unwrap();
    assert_eq!(q.qsize(), 0);
    let t = Instant::now();
    assert!(q.get_timeout(Duration::from_millis(200)).unwrap_err().is_timeout());
    assert!(t.elapsed() >= Duration::from_millis(190));
}

/// Fails to serialise when it holds `true`.
struct Unpicklable(bool);

impl Serialize for Unpicklable {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 {
            Err(serde::ser::Error::custom("this item refuses to serialise"))
        } else {
            s.serialize_bool(false)
        }
    }
}

impl<'de> Deserialize<'de> for Unpicklable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        bool::deserialize(d).map(Unpicklable)
    }
}

/// Q06/Q07: an item that fails to serialise is an error handed back to the caller and leaves
/// the queue unchanged (no slot leaked, with `maxsize=1`).
#[test]
fn q06_serialise_failure_leaves_queue_unchanged() {
    let q: Queue<Unpicklable> = Queue::builder().maxsize(1).build().unwrap();
    match q.put(Unpicklable(true)) {
        Err(PutError::Failed(v, e)) => {
            assert!(v.0);
            assert_eq!(e.kind(), ErrorKind::Encode);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(q.qsize(), 0);
    q.put(Unpicklable(false)).unwrap();
    assert_eq!(q.qsize(), 1);
    ok(fork(|| match q.get_timeout(T) {
        Ok(Unpicklable(false)) => 0,
        _ => 1,
    }));
    assert!(q.empty());
}

/// Deserialises only even numbers.
#[derive(Debug, PartialEq)]
struct Even(u32);

impl Serialize for Even {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for Even {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u32::deserialize(d)?;
        if v % 2 == 1 {
            return Err(serde::de::Error::custom("odd"));
        }
        Ok(Even(v))
    }
}

/// A message that does not deserialise is an error on `get`, consumed, and does not block
/// the queue.
#[test]
fn undecodable_message_is_consumed() {
    let q: JoinableQueue<Even> = JoinableQueue::new().unwrap();
    ok(fork(|| {
        for i in [2, 3, 4] {
            q.put(Even(i)).unwrap();
        }
        0
    }));
    assert_eq!(q.get().unwrap(), Even(2));
    q.task_done().unwrap();
    match q.get() {
        Err(GetError::Failed(e)) => assert_eq!(e.kind(), ErrorKind::Decode),
        other => panic!("{other:?}"),
    }
    assert_eq!(q.get().unwrap(), Even(4));
    q.task_done().unwrap();
    // The undecodable message does not hold `join`.
    q.join_timeout(Duration::from_secs(1)).unwrap();
}

/// Q08/Q09 (our semantics): `close` is for every process; puts fail with `Closed`, gets
/// drain what is left and then report `Closed`; a child blocked in `get` wakes.
#[test]
fn close_wakes_blocked_consumer_across_processes() {
    let q: Queue<u32> = Queue::new().unwrap();
    let c = fork(|| {
        let t = Instant::now();
        match q.get_timeout(T) {
            Err(GetError::Closed) if t.elapsed() < Duration::from_secs(5) => 0,
            _ => 1,
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    q.close();
    ok(c);
    let q: Queue<u32> = Queue::new().unwrap();
    q.put(5).unwrap();
    ok(fork(|| {
        q.close();
        0
    }));
    assert!(q.is_closed());
    assert!(matches!(q.put(6), Err(PutError::Closed(6))));
    assert_eq!(q.get().unwrap(), 5);
    assert!(q.get().unwrap_err().is_closed());
    q.close(); // twice is fine
}

/// JQ01: 4 worker processes get, sleep, task_done; `join` returns only after all 10 tasks.
#[test]
fn jq01_task_done_join() {
    let q: JoinableQueue<Option<u32>> = JoinableQueue::new().unwrap();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            fork(|| loop {
                match q.get_timeout(T) {
                    Ok(Some(_)) => {
                        std::thread::sleep(Duration::from_millis(20));
                        q.task_done().unwrap();
                    }
                    Ok(None) => {
                        q.task_done().unwrap();
                        return 0;
                    }
                    Err(_) => return 1,
                }
            })
        })
        .collect();
    for i in 0..10 {
        q.put(Some(i)).unwrap();
    }
    let t = Instant::now();
    q.join_timeout(T).unwrap();
    assert_eq!(q.unfinished_tasks(), 0);
    assert!(t.elapsed() >= Duration::from_millis(40), "joined before the work was done");
    for _ in 0..4 {
        q.put(None).unwrap();
    }
    for w in workers {
        ok(w);
    }
    q.join_timeout(T).unwrap();
}

/// JQ04: more `task_done` than items is an error, from any process.
#[test]
fn jq04_too_many_task_done() {
    let q: JoinableQueue<u8> = JoinableQueue::new().unwrap();
    assert_eq!(q.task_done().unwrap_err().kind(), ErrorKind::TaskDoneTooManyTimes);
    q.put(1).unwrap();
    ok(fork(|| {
        q.get().unwrap();
        match (q.task_done(), q.task_done()) {
            (Ok(()), Err(e)) if e.kind() == ErrorKind::TaskDoneTooManyTimes => 0,
            _ => 1,
        }
    }));
    q.join_timeout(Duration::from_millis(100)).unwrap();
}

/// SQ01, SQ03: a child puts its own `empty()` observations; close twice.
#[test]
fn sq01_empty_sq03_close_twice() {
    let q: SimpleQueue<bool> = SimpleQueue::new().unwrap();
    assert!(q.empty());
    ok(fork(|| {
        let e = q.empty();
        q.put(e).unwrap();
        let e = q.empty();
        q.put(e).unwrap();
        0
    }));
    assert!(!q.empty());
    assert!(q.get().unwrap());
    assert!(!q.get().unwrap());
    assert!(q.empty());
    q.close();
    q.close();
}

/// A queue handle travels over a socket (SCM_RIGHTS) to a process that does not have the
/// queue's arena mapped, and works there.
#[test]
fn handle_transfer_over_socket() {
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    let (a, b) = UnixStream::pair().unwrap();
    let child = fork(|| {
        let mut buf = vec![0u8; 4096];
        let mut fds = Vec::new();
        let n = transfer::recv_with_fds(b.as_fd(), &mut buf, &mut fds, false).unwrap();
        let (q, back): (Queue<String>, Queue<String>) = match transfer::decode(&buf[..n], fds) {
            Ok(q) => q,
            Err(e) => {
                eprintln!("decode: {e}");
                return 2;
            }
        };
        q.put("hello from a child that got the queue over a socket".into()).unwrap();
        match back.get_timeout(T) {
            Ok(s) if s == "back" => 0,
            _ => 1,
        }
    });
    // An arena the child has never seen.
    let arena = Arena::new(4 << 20).unwrap();
    let q: Queue<String> = Queue::new_in(&arena).unwrap();
    let back: Queue<String> = Queue::new_in(&arena).unwrap();
    let msg = transfer::encode(&(&q, &back)).unwrap();
    let fds: Vec<_> = msg.fds.iter().map(|f| f.as_fd()).collect();
    transfer::send_with_fds(a.as_fd(), &msg.bytes, &fds).unwrap();
    let mut child = child;
    let got = q.get_timeout(T);
    assert_eq!(
        got.unwrap_or_else(|e| panic!("{e}: child {:?}", child.try_wait())),
        "hello from a child that got the queue over a socket"
    );
    back.put("back".into()).unwrap();
    ok(child);
    // Outside a transfer context a queue refuses to serialise; a wrong item type is refused.
    assert!(postcard::to_allocvec(&q).is_err());
    let msg = transfer::encode(&q).unwrap();
    assert!(transfer::decode::<Queue<u64>>(&msg.bytes, msg.fds).is_err());
}

/// A handle passed by transfer holds a reference: the queue outlives the sender's handle.
#[test]
fn transferred_handle_keeps_queue_alive() {
    let arena = Arena::new(4 << 20).unwrap();
    let used0 = arena.used();
    let q: Queue<u32> = Queue::new_in(&arena).unwrap();
    q.put(9).unwrap();
    let msg = transfer::encode(&q).unwrap();
    drop(q);
    let q2: Queue<u32> = transfer::decode(&msg.bytes, msg.fds).unwrap();
    assert_eq!(q2.get().unwrap(), 9);
    drop(q2);
    // (A child another test forked meanwhile may hold an inherited copy for a moment.)
    let t0 = std::time::Instant::now();
    while arena.used() != used0 && t0.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert_eq!(arena.used(), used0, "the last handle frees the queue");
}

/// Mixed message sizes — tiny, medium, and several MiB (spilled past a 64 KiB ring while a
/// spill entry is free, streamed through it otherwise) — from three producer processes,
/// taken by two consumer processes: every message arrives whole and in order per producer.
#[test]
fn big_and_small_messages_from_several_producers() {
    let q: Queue<(u32, u32, Vec<u64>)> =
        Queue::builder().capacity(64 << 10).max_spilled(1).build().unwrap();
    let results: Queue<(u32, u32)> = Queue::builder().capacity(1 << 20).build().unwrap();
    let sizes = |p: u32, i: u32| -> usize {
        match (p + i) % 7 {
            0 => 300_000 + (i as usize * 1000), // ~2.4 MiB of u64s: spilled or streamed
            1 | 2 => 1000 + i as usize,         // ~8 KiB
            _ => (i % 5) as usize,              // tiny
        }
    };
    let per = 30u32;
    let q = &q;
    let producers: Vec<_> = (0..3u32)
        .map(|p| {
            fork(move || {
                for i in 0..per {
                    let n = sizes(p, i);
                    let v: Vec<u64> =
                        (0..n as u64).map(|k| ((k * 31 + p as u64) << 8) | i as u64).collect();
                    q.put_timeout((p, i, v), T).unwrap();
                }
                0
            })
        })
        .collect();
    // Consumers stop once all messages arrived (counted in shared memory), never on a
    // silence: a loaded machine may pause any process for seconds.
    let received = multiproc_arena::Array::from_fn(1, |_| AtomicU64::new(0)).unwrap();
    let received = &received;
    let total = 3 * per as u64;
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            fork(|| {
                let mut last = [None::<u32>; 3];
                let deadline = Instant::now() + Duration::from_secs(60);
                while received[0].load(Ordering::SeqCst) < total {
                    if Instant::now() > deadline {
                        return 3;
                    }
                    match q.get_timeout(Duration::from_millis(100)) {
                        Ok((p, i, v)) => {
                            let n = sizes(p, i);
                            let good = v.len() == n
                                && v.iter().enumerate().all(|(k, &x)| {
                                    x == ((k as u64 * 31 + p as u64) << 8) | i as u64
                                });
                            if !good || last[p as usize].is_some_and(|l| l >= i) {
                                return 1;
                            }
                            last[p as usize] = Some(i);
                            results.put((p, i)).unwrap();
                            received[0].fetch_add(1, Ordering::SeqCst);
                        }
                        Err(GetError::Timeout) => {}
                        Err(_) => return 2,
                    }
                }
                0
            })
        })
        .collect();
    for p in producers {
        p.expect_success(Duration::from_secs(60));
    }
    for c in consumers {
        c.expect_success(Duration::from_secs(60));
    }
    let mut got: Vec<(u32, u32)> = results.try_iter().collect();
    got.sort_unstable();
    let want: Vec<(u32, u32)> = (0..3).flat_map(|p| (0..per).map(move |i| (p, i))).collect();
    assert_eq!(got, want);
}

/// Python's put-then-join: a producer puts and exits before anyone reads, whatever the
/// message size (up to half the ring it sits in the ring; above, it is spilled). The
/// parent joins first, then gets (CPython deadlocks here above the pipe's 64 KiB).
#[test]
fn put_then_join_does_not_deadlock() {
    let q: Queue<Vec<u8>> = Queue::builder().capacity(64 << 10).build().unwrap();
    let mut c = fork(|| {
        q.put(vec![7u8; 20_000]).unwrap(); // in the ring
        q.put(vec![8u8; 1_000_000]).unwrap(); // spilled
        0
    });
    assert_eq!(c.wait_timeout(T), Some(multiproc_arena::testing::Exit::Code(0)));
    assert_eq!(q.get_timeout(T).unwrap(), vec![7u8; 20_000]);
    assert_eq!(q.get_timeout(T).unwrap(), vec![8u8; 1_000_000]);
}
