//! `lock.*`: process-shared locks (multiproc-ipc-lock; CPython's `multiprocessing.Lock`).
//!
//! As in benches/python/bench.py and the floors `floor.futex_mutex*`: acquire+release of a
//! [`Lock`] in one process; two processes each acquiring, incrementing a plain shared counter
//! and releasing, wall time over all operations, the counter checked.

use super::{lock_contended_2proc, lock_uncontended, Better, Case, Floor, Opts};
use crate::sys;
use multiproc_ipc_lock::Lock;
use std::hint::black_box;

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "lock.uncontended",
        unit: "ns",
        better: Better::Lower,
        floor: Floor::Case("floor.futex_mutex"),
        rust: Some(uncontended),
        python: true,
        about: "acquire+release of a Lock nobody else wants",
    },
    Case {
        name: "lock.contended_2proc",
        unit: "ns",
        better: Better::Lower,
        floor: Floor::Case("floor.futex_mutex_2proc"),
        rust: Some(contended_2proc),
        python: true,
        about: "two processes each acquire, increment a shared counter, release: wall / all ops",
    },
];

fn uncontended(o: &Opts) -> f64 {
    let lock = Lock::new().expect("lock");
    lock_uncontended(o, || {
        let g = lock.lock().expect("lock");
        black_box(&g);
    })
}

fn contended_2proc(o: &Opts) -> f64 {
    let lock = Lock::new().expect("lock");
    let map = sys::SharedMap::new(4096).expect("mmap");
    lock_contended_2proc(o, map.u64_at(0), || lock.lock().expect("lock"), drop)
}
