//! Messages larger than half the ring are spilled (their bytes wait in the queue's spill
//! file, a descriptor goes through the ring): `put` returns without a consumer, the producer
//! may exit before anyone reads, and the memory is given back when the message is taken or
//! its holder dies. Real processes throughout.
#![cfg(not(multiproc_loom))]

mod common;

use common::Bytes;
use multiproc_arena::testing::{fork, Exit};
use multiproc_arena::Arena;
use multiproc_ipc_queue::{GetError, Queue};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Serialize, Serializer};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

/// The tests of this file run one at a time: a child that one of them forks and kills keeps
/// the references it inherited from the others.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static M: std::sync::Mutex<()> = std::sync::Mutex::new(());
    M.lock().unwrap_or_else(|p| p.into_inner())
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let take = (len - v.len()).min(8);
        v.extend_from_slice(&x.to_le_bytes()[..take]);
    }
    v
}

/// Waits (bounded) until `cond` holds.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < T, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn assert_no_spill_left<U: Serialize + serde::de::DeserializeOwned>(q: &Queue<U>) {
    let (n, bytes, file) = q.spill_usage();
    assert_eq!((n, bytes, file), (0, 0, 0), "spill entries, accounted bytes, file bytes");
}

/// The put-then-join case: a child puts a 64 MiB message and exits; the parent waits for
/// the child's exit first, then gets the message, byte for byte.
#[test]
fn child_puts_64_mib_and_exits_before_anyone_reads() {
    let _serial = serial();
    let q: Queue<Bytes> = Queue::new().unwrap(); // global arena, 1 MiB ring
    const LEN: usize = 64 << 20;
    let mut child = fork(|| match q.put(Bytes(pattern(LEN, 64))) {
        Ok(()) => 0,
        Err(_) => 1,
    });
    assert_eq!(child.wait_timeout(T), Some(Exit::Code(0)), "the producer exits without a reader");
    assert_eq!(q.qsize(), 1);
    let got = q.get_timeout(T).unwrap();
    assert_eq!(got.0.len(), LEN);
    assert!(got.0 == pattern(LEN, 64), "the 64 MiB message differs");
    assert_no_spill_left(&q);
}

/// A 100 MiB message through a queue in the default global arena (far beyond the ring and a
/// good part of the arena): `put` returns at once, `get` returns it whole.
#[test]
fn hundred_mib_in_the_global_arena() {
    let _serial = serial();
    let q: Queue<Bytes> = Queue::new().unwrap();
    let used0 = Arena::global().used();
    const LEN: usize = 100 << 20;
    let v = pattern(LEN, 100);
    q.try_put(Bytes(v)).unwrap(); // no consumer needed, not even for try_put
    assert!(Arena::global().used() < used0 + (1 << 20), "the message is not in the arena");
    let got = q.get_timeout(T).unwrap();
    assert!(got.0 == pattern(LEN, 100));
    assert_no_spill_left(&q);
}

/// Many ring-sized messages put by a child that then exits; the parent joins, then gets them
/// all, in order.
#[test]
fn many_spilled_messages_then_exit() {
    let _serial = serial();
    let q: Queue<(u32, Bytes)> = Queue::builder().capacity(64 << 10).build().unwrap();
    let mut child = fork(|| {
        for i in 0..20u32 {
            if q.put((i, Bytes(pattern(100_000 + i as usize * 5000, i as u64)))).is_err() {
                return 1;
            }
        }
        0
    });
    assert_eq!(child.wait_timeout(T), Some(Exit::Code(0)));
    for i in 0..20u32 {
        let (j, b) = q.get_timeout(T).unwrap();
        assert_eq!(j, i);
        assert!(b.0 == pattern(100_000 + i as usize * 5000, i as u64));
    }
    assert!(q.try_get().unwrap_err().is_empty());
    assert_no_spill_left(&q);
}

/// More large messages than spill entries: the rest are streamed (the put waits for a
/// consumer), and everything arrives in order.
#[test]
fn spill_table_full_falls_back_to_streaming() {
    let _serial = serial();
    let q: Queue<(u32, Bytes)> =
        Queue::builder().capacity(64 << 10).max_spilled(2).build().unwrap();
    let q = &q;
    let child = fork(move || {
        for i in 0..8u32 {
            if q.put_timeout((i, Bytes(pattern(200_000, i as u64))), T).is_err() {
                return 1;
            }
        }
        0
    });
    // Let the child fill the spill table and block streaming the third message.
    wait_for("two spilled messages", || q.spill_usage().0 == 2);
    for i in 0..8u32 {
        let (j, b) = q.get_timeout(T).unwrap();
        assert_eq!(j, i);
        assert!(b.0 == pattern(200_000, i as u64));
    }
    child.expect_success(T);
    assert_no_spill_left(q);
}

/// An item `(bytes, u8)` whose serialisation, in a process that set [`STOP`], stops that
/// process for ever in the middle of its second pass (the one that writes the spill file,
/// after the size pass), after 1 MiB of bytes.
#[derive(Debug, PartialEq, Deserialize)]
struct Stoppable(Bytes, u8);

static STOP: AtomicBool = AtomicBool::new(false);
static PASSES: AtomicUsize = AtomicUsize::new(0);

impl Serialize for Stoppable {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Marker(u8);
        impl Serialize for Marker {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if STOP.load(Ordering::SeqCst) && PASSES.fetch_add(1, Ordering::SeqCst) == 1 {
                    loop {
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
                s.serialize_u8(self.0)
            }
        }
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&self.0)?;
        t.serialize_element(&Marker(self.1))?;
        t.end()
    }
}

/// A producer killed while writing a spilled message: nothing is delivered, its memory is
/// given back by whoever looks next, and the queue goes on.
#[test]
fn producer_killed_mid_spill() {
    let _serial = serial();
    let arena = Arena::new(8 << 20).unwrap();
    let used0 = arena.used();
    {
        let q: Queue<Stoppable> = Queue::builder().capacity(64 << 10).build_in(&arena).unwrap();
        let mut child = fork(|| {
            STOP.store(true, Ordering::SeqCst);
            let _ = q.put(Stoppable(Bytes(vec![5; 1 << 20]), 9));
            2
        });
        wait_for("the child to be mid-spill", || {
            let (n, bytes, file) = q.spill_usage();
            n == 1 && bytes >= 1 << 20 && file >= 1 << 20
        });
        child.kill();
        assert!(matches!(child.wait_timeout(T), Some(Exit::Signal(_))));
        assert_eq!(q.spill_usage().0, 1, "nobody looked yet");
        // The next large put reclaims the dead producer's entry.
        q.put(Stoppable(Bytes(pattern(300_000, 1)), 1)).unwrap();
        assert_eq!(q.spill_usage().0, 1, "only the new message is held");
        assert_eq!(q.get_timeout(T).unwrap(), Stoppable(Bytes(pattern(300_000, 1)), 1));
        assert_no_spill_left(&q);
        assert!(q.try_get().unwrap_err().is_empty(), "nothing partial is delivered");
        q.put(Stoppable(Bytes(vec![1, 2, 3]), 4)).unwrap();
        assert_eq!(q.get().unwrap(), Stoppable(Bytes(vec![1, 2, 3]), 4));
        // A reclaim pass alone also gives a dead producer's memory back.
        let mut child = fork(|| {
            STOP.store(true, Ordering::SeqCst);
            let _ = q.put(Stoppable(Bytes(vec![6; 1 << 20]), 9));
            2
        });
        wait_for("the child to be mid-spill", || q.spill_usage().2 >= 1 << 20);
        child.kill();
        assert!(matches!(child.wait_timeout(T), Some(Exit::Signal(_))));
        q.reclaim_spilled();
        assert_no_spill_left(&q);
    }
    // The two SIGKILLed children had inherited the queue handle: a killed process keeps the
    // references it holds (the queue stays allocated, never freed under a process that may
    // use it).
    assert!(arena.used() > used0, "freed although killed children held references");
}

/// A consumer killed while it holds a spilled message (after taking its descriptor, before
/// reading it): that message is lost, nothing else; its memory is given back.
#[test]
fn consumer_killed_holding_a_spilled_message() {
    let _serial = serial();
    let q: Queue<(u32, Bytes)> = Queue::builder().capacity(64 << 10).build().unwrap();
    q.put((1, Bytes(pattern(500_000, 1)))).unwrap();
    q.put((2, Bytes(pattern(500_000, 2)))).unwrap();
    assert_eq!(q.spill_usage().0, 2);
    let mut child = fork(|| {
        multiproc_ipc_queue::pause_after_spill_claim();
        let _ = q.get();
        3
    });
    wait_for("the consumer to take the first message", || q.qsize() == 1);
    // Give it time to be inside the pause (it took the record; it is not yet reading).
    std::thread::sleep(Duration::from_millis(20));
    child.kill();
    assert!(matches!(child.wait_timeout(T), Some(Exit::Signal(_))));
    assert_eq!(q.spill_usage().0, 2, "the dead consumer's message is still held");
    let (j, b) = q.get_timeout(T).unwrap();
    assert_eq!(j, 2, "only the taken message is lost");
    assert!(b.0 == pattern(500_000, 2));
    q.reclaim_spilled();
    assert_no_spill_left(&q);
    assert!(matches!(q.try_get(), Err(GetError::Empty)));
}

/// A spilled message travels through a handle passed over a socket (the spill file's
/// descriptor goes with it).
#[test]
fn spilled_message_through_a_transferred_handle() {
    let _serial = serial();
    use multiproc_arena::transfer;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    let (a, b) = UnixStream::pair().unwrap();
    let arena = Arena::new(4 << 20).unwrap();
    let q: Queue<Bytes> = Queue::builder().capacity(64 << 10).build_in(&arena).unwrap();
    let child = fork(|| {
        let mut buf = vec![0u8; 4096];
        let mut fds = Vec::new();
        let n = transfer::recv_with_fds(b.as_fd(), &mut buf, &mut fds, false).unwrap();
        let Ok(q) = transfer::decode::<Queue<Bytes>>(&buf[..n], fds) else { return 2 };
        match q.put(Bytes(pattern(3 << 20, 7))) {
            Ok(()) => 0,
            Err(_) => 1,
        }
    });
    let msg = transfer::encode(&q).unwrap();
    let fds: Vec<_> = msg.fds.iter().map(|f| f.as_fd()).collect();
    transfer::send_with_fds(a.as_fd(), &msg.bytes, &fds).unwrap();
    child.expect_success(T);
    assert!(q.get_timeout(T).unwrap().0 == pattern(3 << 20, 7));
    assert_no_spill_left(&q);
}

/// Nothing is left behind: the arena gets every byte back, the spill file holds no memory,
/// and nothing of this process appears in `/dev/shm`.
#[test]
fn no_leak() {
    let _serial = serial();
    let shm_mine = || {
        let prefix = format!("multiproc-{}-", std::process::id());
        std::fs::read_dir("/dev/shm")
            .map(|d| {
                d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(&prefix)).count()
            })
            .unwrap_or(0)
    };
    let shm0 = shm_mine();
    let arena = Arena::new(8 << 20).unwrap();
    let used0 = arena.used();
    {
        let q: Queue<Bytes> = Queue::builder().capacity(64 << 10).build_in(&arena).unwrap();
        let q = &q;
        let kids: Vec<_> = (0..2u64)
            .map(|k| {
                fork(move || {
                    for i in 0..5 {
                        if q.put(Bytes(pattern(400_000, k * 10 + i))).is_err() {
                            return 1;
                        }
                    }
                    0
                })
            })
            .collect();
        for k in kids {
            k.expect_success(T);
        }
        let (n, _, file) = q.spill_usage();
        assert_eq!(n, 10);
        assert!(file >= 10 * 400_000);
        for _ in 0..10 {
            assert_eq!(q.get_timeout(T).unwrap().0.len(), 400_000);
        }
        assert_no_spill_left(q);
    }
    assert_eq!(arena.used(), used0);
    assert_eq!(shm_mine(), shm0);
}

/// A received queue handle whose spill-file descriptor is not its queue's (another queue's
/// file, the arena's memfd, /dev/null) is refused, and nothing is disturbed.
#[test]
fn a_wrong_spill_descriptor_is_refused() {
    let _serial = serial();
    use multiproc_arena::transfer;
    let arena = Arena::new(4 << 20).unwrap();
    let q1: Queue<Bytes> = Queue::builder().capacity(64 << 10).build_in(&arena).unwrap();
    let q2: Queue<Bytes> = Queue::builder().capacity(64 << 10).build_in(&arena).unwrap();
    let m1 = transfer::encode(&q1).unwrap();
    assert_eq!(m1.fds.len(), 2, "the arena and the spill file");
    let m2 = transfer::encode(&q2).unwrap();
    assert!(transfer::decode::<Queue<Bytes>>(&m1.bytes, m2.fds).is_err(), "q2's file");
    let dup = |f: &std::os::fd::OwnedFd| f.try_clone().unwrap();
    let arena_twice = vec![dup(&m1.fds[0]), dup(&m1.fds[0])];
    assert!(transfer::decode::<Queue<Bytes>>(&m1.bytes, arena_twice).is_err(), "the arena");
    let null = std::os::fd::OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
    let with_null = vec![dup(&m1.fds[0]), null];
    assert!(transfer::decode::<Queue<Bytes>>(&m1.bytes, with_null).is_err(), "/dev/null");
    // The right one works; both queues are intact.
    let q1b = transfer::decode::<Queue<Bytes>>(&m1.bytes, m1.fds).unwrap();
    q1b.put(Bytes(pattern(200_000, 3))).unwrap();
    q2.put(Bytes(pattern(200_000, 4))).unwrap();
    assert!(q1.get_timeout(T).unwrap().0 == pattern(200_000, 3));
    assert!(q2.get_timeout(T).unwrap().0 == pattern(200_000, 4));
    assert_no_spill_left(&q1);
}
