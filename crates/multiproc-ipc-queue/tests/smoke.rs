//! Single-process smoke tests of the queue API.
#![cfg(not(multiproc_loom))]

mod common;

use common::Bytes;
use multiproc_ipc_queue::{GetError, JoinableQueue, PutError, Queue, SimpleQueue};
use std::time::{Duration, Instant};

#[test]
fn put_get_fifo() {
    let q: Queue<u64> = Queue::new().unwrap();
    for i in 0..1000 {
        q.put(i).unwrap();
    }
    assert_eq!(q.qsize(), 1000);
    for i in 0..1000 {
        assert_eq!(q.get().unwrap(), i);
    }
    assert!(q.empty());
    assert!(matches!(q.try_get(), Err(GetError::Empty)));
}

#[test]
fn wraps_many_laps_with_mixed_sizes() {
    let q: Queue<Vec<u8>> = Queue::builder().capacity(16 << 10).build().unwrap();
    for round in 0..200u32 {
        let n = (round as usize * 37) % 3000;
        let v: Vec<u8> = (0..n).map(|i| (i as u32 ^ round) as u8).collect();
        q.put(v.clone()).unwrap();
        q.put(vec![round as u8]).unwrap();
        assert_eq!(q.get().unwrap(), v);
        assert_eq!(q.get().unwrap(), vec![round as u8]);
    }
}

#[test]
fn maxsize_full_and_timeouts() {
    let q: Queue<u32> = Queue::builder().maxsize(6).build().unwrap();
    assert!(q.empty() && !q.full());
    for i in 0..6 {
        q.put(i).unwrap();
    }
    assert!(q.full());
    assert!(matches!(q.try_put(7), Err(PutError::Full(7))));
    let t = Instant::now();
    assert!(matches!(q.put_timeout(7, Duration::from_millis(100)), Err(PutError::Timeout(7))));
    assert!(t.elapsed() >= Duration::from_millis(90));
    for i in 0..6 {
        assert_eq!(q.get().unwrap(), i);
    }
    let t = Instant::now();
    assert!(matches!(q.get_timeout(Duration::from_millis(100)), Err(GetError::Timeout)));
    assert!(t.elapsed() >= Duration::from_millis(90));
}

#[test]
fn big_message_streams_through_small_ring() {
    // No spill entries: every large message is streamed.
    let q: Queue<Vec<u8>> = Queue::builder().capacity(16 << 10).max_spilled(0).build().unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7) as u8).collect();
    std::thread::scope(|s| {
        let q2 = q.clone();
        let b2 = big.clone();
        s.spawn(move || {
            q2.put(vec![1]).unwrap();
            q2.put(b2).unwrap();
            q2.put(vec![2]).unwrap();
        });
        assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), vec![1]);
        assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), big);
        assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), vec![2]);
    });
}

#[test]
fn close_drains_then_reports_closed() {
    let q: Queue<u8> = Queue::new().unwrap();
    q.put(1).unwrap();
    q.close();
    assert!(matches!(q.put(2), Err(PutError::Closed(2))));
    assert_eq!(q.get().unwrap(), 1);
    assert!(matches!(q.get(), Err(GetError::Closed)));
    assert_eq!(q.iter().count(), 0);
}

#[test]
fn joinable_and_simple() {
    let q: JoinableQueue<u8> = JoinableQueue::new().unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert_eq!(q.unfinished_tasks(), 2);
    q.get().unwrap();
    q.task_done().unwrap();
    assert!(q.join_timeout(Duration::from_millis(20)).unwrap_err().is_timeout());
    q.get().unwrap();
    q.task_done().unwrap();
    q.join_timeout(Duration::from_millis(20)).unwrap();
    assert!(q.task_done().is_err());
    let s = SimpleQueue::new().unwrap();
    s.put("x".to_string()).unwrap();
    assert_eq!(s.get().unwrap(), "x");
}

/// Small fields around one large byte string, inline and streamed: bytes stay in order.
#[test]
fn large_byte_strings_between_small_fields() {
    let q: Queue<(u32, Bytes, u64)> = Queue::builder().capacity(64 << 10).build().unwrap();
    for n in [10usize, 100, 5000, 20_000, 40_000, 100_000, 1_000_000] {
        let msg = (n as u32, Bytes((0..n).map(|i| (i * 13) as u8).collect()), !(n as u64));
        std::thread::scope(|s| {
            let m = msg.clone();
            let q2 = &q;
            s.spawn(move || q2.put_timeout(m, Duration::from_secs(10)).unwrap());
            assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), msg);
        });
    }
}
