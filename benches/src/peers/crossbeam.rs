//! `crossbeam-channel` between threads of one process: the in-process limit for an MPMC queue.
//!
//! As `queue.*_u64`: producers (threads here) released together put `k << 48 | i`, the
//! consumer (the main thread) gets every value and checks each producer's order. The channel
//! is `bounded(4096)` (crossbeam has no default capacity; a bounded one, as a process queue
//! has a bounded buffer).

use super::Peer;
use crate::cases::queue::{tagged, ProducerOrder};
use crate::cases::Opts;
use std::sync::Barrier;
use std::time::Instant;

pub(crate) const PEERS: &[Peer] = &[
    Peer {
        case: "queue.1to1_u64",
        name: "crossbeam-channel",
        run: q1to1_u64,
        about: "bounded(4096) channel, 1 producer thread → the main thread, every value checked",
    },
    Peer {
        case: "queue.4to1_u64",
        name: "crossbeam-channel",
        run: q4to1_u64,
        about: "bounded(4096) channel, 4 producer threads → the main thread, order checked",
    },
];

/// Capacity of the channel.
const CAPACITY: usize = 4096;

fn u64_rate(producers: u64, n: u64) -> f64 {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(CAPACITY);
    let per = n / producers;
    let start = Barrier::new(producers as usize + 1);
    // The consumer's own warm-up, as the queue cases do theirs.
    for i in 0..1000 {
        tx.send(i).expect("send");
        assert_eq!(rx.recv().expect("recv"), i);
    }
    let rate = std::thread::scope(|s| {
        for k in 0..producers {
            let (tx, start) = (tx.clone(), &start);
            s.spawn(move || {
                start.wait();
                for i in 0..per {
                    tx.send(tagged(k, i)).expect("send");
                }
            });
        }
        start.wait();
        let t = Instant::now();
        let mut order = ProducerOrder::new(producers);
        for _ in 0..per * producers {
            order.check(rx.recv().expect("recv"));
        }
        (per * producers) as f64 / t.elapsed().as_secs_f64()
    });
    rate
}

fn q1to1_u64(o: &Opts) -> f64 {
    u64_rate(1, o.iters(20_000_000, 6_000_000))
}

fn q4to1_u64(o: &Opts) -> f64 {
    u64_rate(4, o.iters(20_000_000, 6_000_000))
}
