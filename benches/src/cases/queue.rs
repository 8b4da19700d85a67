//! `queue.*`: Queue between processes (multiproc-ipc-queue; CPython's
//! `multiprocessing.Queue`).
//!
//! The multiproc side lands with multiproc-ipc-queue: one `fn(&Opts) -> f64` per case here,
//! forked producers released together by a `Start` line, the parent consuming and checking
//! every message (per-producer order for 4→1), and `rust: Some(..)` below.

use super::{Better, Case, Floor};

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "queue.1to1_u64",
        unit: "msgs/s",
        better: Better::Higher,
        floor: Floor::Case("floor.spsc_ring_u64"),
        rust: None,
        python: true,
        about: "1 producer process → 1 consumer, u64 messages, every value checked",
    },
    Case {
        name: "queue.4to1_u64",
        unit: "msgs/s",
        better: Better::Higher,
        floor: Floor::Case("floor.spsc_ring_u64"),
        rust: None,
        python: true,
        about: "4 producer processes → 1 consumer, u64 messages, per-producer order checked",
    },
    Case {
        name: "queue.1to1_64kib",
        unit: "MB/s",
        better: Better::Higher,
        floor: Floor::Case("floor.shm_ring_64kib"),
        rust: None,
        python: true,
        about: "1 producer → 1 consumer, 64 KiB byte messages, every message compared",
    },
];
