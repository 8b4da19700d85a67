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

/// Forks `n` children that each run `f`.
pub(crate) fn fork_n(n: usize, f: impl Fn() -> i32) -> Vec<Child> {
    (0..n).map(|_| fork(&f)).collect()
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

/// Asserts that a death was noticed promptly (and prints the figure for `--nocapture` runs).
/// The promise is 100 ms (10–30 ms measured on a quiet machine: one 20 ms liveness poll);
/// the test fails only past a second, as liveness.rs does, so that a loaded machine does not
/// make it flaky (186 ms seen once in 380 runs of the barrier test under two parallel
/// builds) while a death noticed only by a timeout (10 s here) still fails it.
pub(crate) fn promptly(dt: Duration) {
    eprintln!("poison/break latency after the kill: {dt:?}");
    assert!(dt < Duration::from_secs(1), "took {dt:?} after the kill");
}

/// Serialises the tests that measure latency with the CPU-heavy ones of the same binary
/// (the harness runs tests on parallel threads; these machines have two cores).
pub(crate) fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}
