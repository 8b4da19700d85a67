//! `pipe.*`: Pipe/Connection between two processes (multiproc-ipc-pipe; CPython's
//! `multiprocessing.Pipe`).
//!
//! The multiproc side lands with multiproc-ipc-pipe: one `fn(&Opts) -> f64` per case here, with
//! the same protocol as benches/python/bench.py (a forked echo child for the round trips; a
//! forked receiver that checks every byte for the throughput), and `rust: Some(..)` below.

use super::{Better, Case, Floor};

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "pipe.rtt_blocking",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::Case("floor.socketpair_rtt"),
        rust: None,
        python: true,
        about: "send a u64, the echo child receives it (blocked in recv) and sends it back",
    },
    Case {
        name: "pipe.rtt_active",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::Case("floor.spin_rtt"),
        rust: None,
        python: true,
        about: "the same round trip while both sides poll actively instead of sleeping",
    },
    Case {
        name: "pipe.throughput_1mib",
        unit: "MB/s",
        better: Better::Higher,
        floor: Floor::Case("floor.shm_ring_1mib"),
        rust: None,
        python: true,
        about: "one-way 1 MiB byte messages; the receiver compares every message with the payload",
    },
];
