//! `queue.*`: Queue between processes (multiproc-ipc-queue; CPython's
//! `multiprocessing.Queue`).
//!
//! As in benches/python/bench.py: a queue with default settings, forked producers released
//! together by a [`Start`] line once the parent has warmed its own side (1000 puts and gets),
//! the parent consuming and checking every message (per-producer order for 4→1, every byte
//! for 64 KiB).

use super::{fork, mb_per_s, Better, Case, Child, Floor, Opts, Start};
use multiproc_ipc_queue::Queue;

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "queue.1to1_u64",
        unit: "msgs/s",
        better: Better::Higher,
        floor: Floor::Case("floor.spsc_ring_u64"),
        rust: Some(q1to1_u64),
        python: true,
        about: "1 producer process → 1 consumer, u64 messages, every value checked",
    },
    Case {
        name: "queue.4to1_u64",
        unit: "msgs/s",
        better: Better::Higher,
        floor: Floor::Case("floor.spsc_ring_u64"),
        rust: Some(q4to1_u64),
        python: true,
        about: "4 producer processes → 1 consumer, u64 messages, per-producer order checked",
    },
    Case {
        name: "queue.1to1_64kib",
        unit: "MB/s",
        better: Better::Higher,
        floor: Floor::Case("floor.shm_ring_64kib"),
        rust: Some(q1to1_64kib),
        python: true,
        about: "1 producer → 1 consumer, 64 KiB byte messages, every message compared",
    },
];

/// The parent's own warm-up before the start (CPython's: 1000 puts, then 1000 gets).
fn warm_up(q: &Queue<u64>) {
    for i in 0..1000 {
        q.put(i).expect("put");
    }
    for i in 0..1000 {
        assert_eq!(q.get().expect("get"), i);
    }
}

/// Producer `k`'s message `i` in the u64 cases (and their peers): `k << 48 | i`.
pub(crate) fn tagged(k: u64, i: u64) -> u64 {
    k << 48 | i
}

/// The consumer's check in the u64 cases: each producer's [`tagged`] messages arrive in order.
#[derive(Debug)]
pub(crate) struct ProducerOrder(Vec<u64>);

impl ProducerOrder {
    pub(crate) fn new(producers: u64) -> ProducerOrder {
        ProducerOrder(vec![0; producers as usize])
    }

    /// Checks that `v` is the next message of its producer.
    pub(crate) fn check(&mut self, v: u64) {
        let (k, i) = ((v >> 48) as usize, v & ((1 << 48) - 1));
        assert_eq!(self.0[k], i, "per-producer order");
        self.0[k] = i + 1;
    }
}

/// `producers` forked processes put `n / producers` u64s each ([`tagged`]); the parent gets
/// them all and checks each producer's order. Messages per second.
fn u64_rate(producers: u64, n: u64) -> f64 {
    let q: Queue<u64> = Queue::new().expect("queue");
    let per = n / producers;
    let start = Start::new();
    let kids: Vec<Child> = (0..producers)
        .map(|k| {
            let (q, start) = (&q, &start);
            fork(move || {
                start.ready_then_wait();
                for i in 0..per {
                    q.put(tagged(k, i)).expect("put");
                }
            })
        })
        .collect();
    warm_up(&q);
    let t = start.go(producers as u32);
    let mut order = ProducerOrder::new(producers);
    for _ in 0..per * producers {
        order.check(q.get().expect("get"));
    }
    let d = t.elapsed();
    kids.into_iter().for_each(Child::join);
    (per * producers) as f64 / d.as_secs_f64()
}

fn q1to1_u64(o: &Opts) -> f64 {
    u64_rate(1, o.iters(20_000_000, 6_000_000))
}

fn q4to1_u64(o: &Opts) -> f64 {
    u64_rate(4, o.iters(20_000_000, 6_000_000))
}

use multiproc_arena::Bytes;

fn q1to1_64kib(o: &Opts) -> f64 {
    const SIZE: usize = 64 << 10;
    let n = o.iters(150_000, 50_000);
    let payload: Vec<u8> = (0..SIZE).map(|i| ((i % 256) * 7 + 3) as u8).collect();
    let q: Queue<Bytes> = Queue::new().expect("queue");
    let start = Start::new();
    let child = fork(|| {
        start.ready_then_wait();
        for _ in 0..n {
            q.put(Bytes(payload.clone())).expect("put");
        }
    });
    q.put(Bytes(payload.clone())).expect("put");
    assert_eq!(q.get().expect("get").0, payload);
    let t = start.go(1);
    for _ in 0..n {
        assert!(q.get().expect("get").0 == payload, "a message arrived changed");
    }
    let d = t.elapsed();
    child.join();
    mb_per_s(SIZE as u64 * n, d)
}
