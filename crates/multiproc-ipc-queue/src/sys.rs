//! Every raw system call of this crate: one `pthread_atfork` registration.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

static EPOCH: AtomicU64 = AtomicU64::new(0);

extern "C" fn in_child() {
    EPOCH.fetch_add(1, Ordering::Relaxed);
}

/// A number that changes in a forked child (its "fork generation"), so per-process caches
/// (the queue's party index) can tell they were inherited without a `getpid` system call.
#[inline]
pub(crate) fn fork_epoch() -> u64 {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a child handler that only touches an atomic (async-signal-safe);
        // the null handlers are allowed by POSIX.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
        assert_eq!(rc, 0, "pthread_atfork failed");
    });
    EPOCH.load(Ordering::Relaxed)
}
