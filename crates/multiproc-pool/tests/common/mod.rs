//! Helpers shared by the test files.
#![allow(dead_code)]

use multiproc_pool::{Pool, PoolBuilder, ProcessPoolExecutor, StartMethod};
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub(crate) const METHODS: [StartMethod; 3] =
    [StartMethod::Fork, StartMethod::Forkserver, StartMethod::Spawn];

/// Runs `f` on a thread; fails the test if it takes longer than `secs` (a hang is a
/// failure within seconds, not a CI timeout).
pub(crate) fn bounded<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => match h.join().expect("joined") {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(_) => panic!("test body still running after {secs} s: a hang"),
    }
}

/// Runs `f` once per start method in `methods`, all within `secs` (see [`bounded`]).
pub(crate) fn each_method<const N: usize>(
    secs: u64,
    methods: [StartMethod; N],
    f: impl Fn(StartMethod) + Send + 'static,
) {
    bounded(secs, move || methods.into_iter().for_each(f))
}

/// A builder for `n` workers started with `m`.
pub(crate) fn builder(n: usize, m: StartMethod) -> PoolBuilder {
    Pool::builder().processes(n).start_method(m)
}

/// A pool of `n` workers started with `m`.
pub(crate) fn pool(n: usize, m: StartMethod) -> Pool {
    builder(n, m).build().expect("pool")
}

/// A `ProcessPoolExecutor` of `n` workers started with `m`.
pub(crate) fn executor(n: usize, m: StartMethod) -> ProcessPoolExecutor {
    ProcessPoolExecutor::builder().processes(n).start_method(m).build().expect("executor")
}

/// An argument whose serialisation fails (CPython's unpicklable task; PO07).
#[derive(Debug, Deserialize)]
pub(crate) struct Unserialisable(pub(crate) u8);

impl Serialize for Unserialisable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refuses to serialise"))
    }
}

/// A task taking an [`Unserialisable`] (never runs: its argument cannot be sent).
pub(crate) fn take_unser(x: Unserialisable) -> u8 {
    x.0
}
