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

/// A robust process-shared mutex at the start of a shared mapping (the counter lives at 256).
struct RobustMutex {
    map: sys::SharedMap,
}

impl RobustMutex {
    fn new() -> RobustMutex {
        let map = sys::SharedMap::new(4096).expect("mmap");
        let m = map.as_ptr().cast::<libc::pthread_mutex_t>();
        // SAFETY: `m` points at zeroed shared memory large and aligned enough for a
        // pthread_mutex_t; the attribute object lives on this stack frame until destroyed.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            assert_eq!(libc::pthread_mutexattr_init(&mut attr), 0);
            assert_eq!(
                libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
                0
            );
            assert_eq!(libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST), 0);
            assert_eq!(libc::pthread_mutex_init(m, &attr), 0);
            libc::pthread_mutexattr_destroy(&mut attr);
        }
        RobustMutex { map }
    }

    fn raw(&self) -> *mut libc::pthread_mutex_t {
        self.map.as_ptr().cast()
    }

    /// Locks; a holder that died is recovered from (`EOWNERDEAD` → consistent), as a robust
    /// lock's user must.
    fn lock(&self) {
        // SAFETY: initialised in `new`, shared by fork.
        match unsafe { libc::pthread_mutex_lock(self.raw()) } {
            0 => {}
            libc::EOWNERDEAD => {
                // SAFETY: we hold the mutex after EOWNERDEAD.
                assert_eq!(unsafe { libc::pthread_mutex_consistent(self.raw()) }, 0);
            }
            e => panic!("pthread_mutex_lock: {e}"),
        }
    }

    fn unlock(&self) {
        // SAFETY: locked by this thread.
        assert_eq!(unsafe { libc::pthread_mutex_unlock(self.raw()) }, 0);
    }
}

fn uncontended(o: &Opts) -> f64 {
    let m = RobustMutex::new();
    let n = o.iters(20_000_000, 6_000_000);
    let d = timed(o.warm(n), n, |_| {
        m.lock();
        m.unlock();
    });
    ns_per(d, n)
}

fn contended_2proc(o: &Opts) -> f64 {
    let m = RobustMutex::new();
    let counter = m.map.u64_at(256);
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
