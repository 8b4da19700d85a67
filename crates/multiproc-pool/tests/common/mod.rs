//! Helpers shared by the test files.
#![allow(dead_code)]

use multiproc_pool::StartMethod;
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
