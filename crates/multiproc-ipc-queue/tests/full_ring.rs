//! A producer waiting on a full ring whose next slot is held by a slow or dead consumer,
//! while the slots after it are free: it keeps its deadline, and recovers a dead consumer's
//! slot (once it spun for ever here, ignoring both).
#![cfg(not(multiproc_loom))]

use multiproc_arena::testing::{fork, Exit};
use multiproc_ipc_queue::Queue;
use serde::{Deserialize, Deserializer, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

/// A u64 whose deserialisation, in a process that set [`HANG`], never returns (the consumer
/// holds the record it took for ever).
#[derive(Debug, PartialEq, Serialize)]
struct Item(u64);

static HANG: AtomicBool = AtomicBool::new(false);

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(d)?;
        while HANG.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_secs(1));
        }
        Ok(Item(v))
    }
}

/// Fills a 256-slot ring, lets a child take the first item and hang holding it, and frees
/// the next 100 slots: the ring is full at a slot that does not move, the slots after it
/// are free.
fn stuck_ring() -> (Queue<Item>, multiproc_arena::testing::Child) {
    let q: Queue<Item> = Queue::builder().capacity(16 << 10).build().unwrap();
    let mut n = 0;
    while q.try_put(Item(n)).is_ok() {
        n += 1;
    }
    assert_eq!(n, 256, "one slot per item");
    let child = fork(|| {
        HANG.store(true, Ordering::SeqCst);
        let _ = q.get();
        2
    });
    let t = Instant::now();
    while q.qsize() != 255 {
        assert!(t.elapsed() < T, "the child did not take an item");
        std::thread::sleep(Duration::from_millis(1));
    }
    for i in 1..=100 {
        assert_eq!(q.get_timeout(T).unwrap(), Item(i));
    }
    (q, child)
}

#[test]
fn full_ring_slow_consumer_put_keeps_its_deadline() {
    let (q, child) = stuck_ring();
    // In a child, so that a producer spinning for ever is a failure, not a hang.
    let mut p = fork(|| {
        let t = Instant::now();
        let r = q.put_timeout(Item(1000), Duration::from_millis(200));
        match (r, t.elapsed()) {
            (Err(e), d) if e.is_timeout() && d < Duration::from_secs(3) => 0,
            _ => 1,
        }
    });
    assert_eq!(p.wait_timeout(T), Some(Exit::Code(0)), "the put kept its 200 ms deadline");
    drop(child); // killed and reaped
}

#[test]
fn full_ring_dead_consumer_slot_is_recovered() {
    let (q, mut child) = stuck_ring();
    child.kill();
    assert!(matches!(child.wait_timeout(T), Some(Exit::Signal(_))));
    let mut p = fork(|| match q.put_timeout(Item(1000), Duration::from_secs(5)) {
        Ok(()) => 0,
        Err(_) => 1,
    });
    assert_eq!(p.wait_timeout(T), Some(Exit::Code(0)), "the dead consumer's slot is reclaimed");
    // Item 0 was lost with the consumer; the rest follow in order, then the new one.
    for i in 101..256 {
        assert_eq!(q.get_timeout(T).unwrap(), Item(i));
    }
    assert_eq!(q.get_timeout(T).unwrap(), Item(1000));
}
