//! `pthread-robust`: a glibc `pthread_mutex_t` that is process-shared and robust (what a C
//! program uses as a lock that survives its holder's death), in a shared mapping, by libc.
//!
//! As `lock.*`: acquire+release in one process; two processes each acquiring, incrementing a
//! plain shared counter and releasing, wall time over all operations, the counter checked.

use super::Peer;
use crate::cases::{lock_contended_2proc, lock_uncontended, Opts};
use crate::sys;

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
    lock_uncontended(o, || {
        m.lock();
        m.unlock();
    })
}

fn contended_2proc(o: &Opts) -> f64 {
    let m = sys::RobustMutex::new();
    lock_contended_2proc(o, m.map().u64_at(256), || m.lock(), |()| m.unlock())
}
