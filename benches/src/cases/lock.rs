//! `lock.*`: process-shared locks (multiproc-ipc-lock; CPython's `multiprocessing.Lock`).
//!
//! As in benches/python/bench.py and the floors `floor.futex_mutex*`: acquire+release of a
//! [`Lock`] in one process; two processes each acquiring, incrementing a plain shared counter
//! and releasing, wall time over all operations, the counter checked.

use super::{fork, ns_per, timed, Better, Case, Floor, Opts, Start};
use crate::sys;
use multiproc_ipc_lock::Lock;
use std::hint::black_box;
use std::sync::atomic::Ordering;

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
    let n = o.iters(20_000_000, 6_000_000);
    let d = timed(o.warm(n), n, |_| {
        let g = lock.lock().expect("lock");
        black_box(&g);
    });
    ns_per(d, n)
}

fn contended_2proc(o: &Opts) -> f64 {
    let lock = Lock::new().expect("lock");
    let map = sys::SharedMap::new(4096).expect("mmap");
    // A plain counter (CPython's RawValue): read and written separately, so only the lock
    // keeps increments from being lost.
    let counter = map.u64_at(0);
    let n = o.iters(5_000_000, 2_000_000);
    let work = || {
        for _ in 0..n {
            let g = lock.lock().expect("lock");
            counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            drop(g);
        }
    };
    let start = Start::new();
    let child = fork(|| {
        start.ready_then_wait();
        work();
        start.done();
    });
    let t = start.go(1);
    work();
    start.wait_done(1);
    let d = t.elapsed();
    child.join();
    assert_eq!(counter.load(Ordering::Relaxed), 2 * n, "the lock let two holders in");
    ns_per(d, 2 * n)
}
