//! `lock.*`: process-shared locks (multiproc-ipc-lock; CPython's `multiprocessing.Lock`).
//!
//! The multiproc side lands with multiproc-ipc-lock: `fn uncontended(o: &Opts) -> f64` (ns per
//! acquire+release, one process) and `fn contended_2proc` (two processes each acquire,
//! increment a shared counter, release; wall time / all ops, counter checked — see
//! `floor::futex_mutex_2proc`), then `rust: Some(..)` below.

use super::{Better, Case, Floor};

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "lock.uncontended",
        unit: "ns",
        better: Better::Lower,
        floor: Floor::Case("floor.futex_mutex"),
        rust: None,
        python: true,
        about: "acquire+release of a Lock nobody else wants",
    },
    Case {
        name: "lock.contended_2proc",
        unit: "ns",
        better: Better::Lower,
        floor: Floor::Case("floor.futex_mutex_2proc"),
        rust: None,
        python: true,
        about: "two processes each acquire, increment a shared counter, release: wall / all ops",
    },
];
