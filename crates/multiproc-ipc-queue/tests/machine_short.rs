//! The queue when the machine runs short, and its memory bound: spilled (large) messages are
//! bounded by a byte budget the user sets; `qsize` counts only messages actually put (a
//! timed-out put is not one). (No descriptor left: `tests/no_descriptors.rs`.)
#![cfg(not(multiproc_loom))]

mod common;

use common::{big, Bytes, KIB};
use multiproc_ipc_queue::{PutError, Queue};
use std::time::Duration;

#[test]
fn spill_budget_bounds_waiting_bytes_and_qsize_skips_timed_out_puts() {
    // 16 KiB ring: a 64 KiB message is spilled; the budget holds three of them.
    let q: Queue<Bytes> =
        Queue::builder().capacity(16 * KIB).spill_budget(200 * KIB as u64).build().unwrap();
    for i in 0..3 {
        q.put_timeout(big(i), Duration::from_secs(5)).unwrap();
    }
    assert_eq!(q.qsize(), 3);
    // The fourth would take the spilled bytes past 200 KiB: streamed, so without a consumer
    // it times out, and it is not counted.
    let t = std::time::Instant::now();
    match q.put_timeout(big(3), Duration::from_millis(100)) {
        Err(PutError::Timeout(b)) => assert_eq!(b.0.len(), 64 * KIB),
        other => panic!("expected a timeout, got {:?}", other.map_err(|e| e.to_string())),
    }
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(q.qsize(), 3, "a timed-out put is not in the queue");
    let (n, bytes, _) = q.spill_usage();
    assert!(n <= 3 && bytes <= 200 * KIB as u64, "{n} entries, {bytes} bytes");
    // Everything put is there, in order, whole.
    for i in 0..3 {
        assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap().0, big(i).0);
    }
    assert_eq!(q.qsize(), 0);
    assert!(q.empty());
    // The budget is free again.
    q.put_timeout(big(9), Duration::from_secs(5)).unwrap();
    assert_eq!(q.qsize(), 1);
    assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap().0, big(9).0);
}

#[test]
fn zero_budget_streams_and_max_spilled_still_counts() {
    let q: Queue<Bytes> = Queue::builder().capacity(16 * KIB).max_spilled(2).build().unwrap();
    q.put(big(1)).unwrap();
    q.put(big(2)).unwrap();
    assert!(matches!(q.put_timeout(big(3), Duration::from_millis(50)), Err(PutError::Timeout(_))));
    assert_eq!(q.qsize(), 2, "65-after-64: the timed-out put is not counted");
    assert_eq!(q.get().unwrap().0, big(1).0);
    assert_eq!(q.get().unwrap().0, big(2).0);
    let z: Queue<Bytes> = Queue::builder().capacity(16 * KIB).spill_budget(0).build().unwrap();
    assert!(matches!(z.put_timeout(big(1), Duration::from_millis(50)), Err(PutError::Timeout(_))));
    assert_eq!(z.qsize(), 0);
}
