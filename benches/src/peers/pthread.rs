//! `pthread-robust`: a glibc `pthread_mutex_t` that is process-shared and robust (what a C
//! program uses as a lock that survives its holder's death), in a shared mapping, by libc.
//!
//! As `lock.*`: acquire+release in one process; two processes each acquiring, incrementing a
//! plain shared counter and releasing, wall time over all operations, the counter checked.

use super::Peer;
use crate::cases::{fork, ns_per, timed, Opts, Start};
use crate::sys;
use std::sync::atomic::Ordering;

pub(crate) const PEERS: &[Peer] = &[
    Peer {
        case: "lock.uncontended",
        name: "pthread-robust",
        run: uncontended,
        about: "pthread_mutex_lock+unlock, PTHREAD_PROCESS_SHARED + PTHREAD_MUTEX_ROBUST",
    },
    Peer {
        case: "lock.contended_2proc",
        name: "pthread-robust",
        run: contended_2proc,
        about: "the same mutex, two processes incrementing a shared counter: wall / all ops",
    },
];

fn uncontended(o: &Opts) -> f64 {
    let m = sys::RobustMutex::new();
    let n = o.iters(20_000_000, 6_000_000);
    let d = timed(o.warm(n), n, |_| {
        m.lock();
        m.unlock();
    });
    ns_per(d, n)
}

fn contended_2proc(o: &Opts) -> f64 {
    let m = sys::RobustMutex::new();
    let counter = m.map().u64_at(256);
    let n = o.iters(5_000_000, 2_000_000);
    let work = || {
        for _ in 0..n {
            m.lock();
            counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            m.unlock();
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
    assert_eq!(counter.load(Ordering::Relaxed), 2 * n, "the mutex let two holders in");
    ns_per(d, 2 * n)
}
