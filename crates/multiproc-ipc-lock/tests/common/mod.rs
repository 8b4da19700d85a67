//! Helpers shared by the integration tests.
#![allow(dead_code, unused_imports)]

use multiproc_arena::sync::atomic::{AtomicU32, Ordering};
use multiproc_arena::Shared;
use std::time::{Duration, Instant};

pub(crate) use multiproc_arena::testing::{fork, Child, Exit};

/// A shared counter/flag in the global arena, inherited by forked children.
pub(crate) fn flag() -> Shared<AtomicU32> {
    Shared::new(AtomicU32::new(0)).unwrap()
}

/// Waits (bounded) until `cond` holds; panics after `secs` seconds.
pub(crate) fn until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Waits until `f` reaches at least `n`.
pub(crate) fn until_at_least(f: &AtomicU32, n: u32, what: &str) {
    until(10, what, || f.load(Ordering::SeqCst) >= n);
}

/// A child's body that never returns on its own (the test kills it).
pub(crate) fn park_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

pub(crate) const T: Duration = Duration::from_secs(10);
