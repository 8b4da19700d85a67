//! With the `tracing` feature, a lock taken over from a killed holder is reported as a
//! `tracing` event (target `multiproc::lock`). Run: `cargo test -p multiproc-ipc-lock
//! --features tracing --test tracing`.
#![cfg(all(feature = "tracing", not(multiproc_loom)))]

use multiproc_arena::testing::{fork, EventLog};
use multiproc_arena::Shared;
use multiproc_ipc_lock::Lock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

#[test]
fn a_takeover_from_a_killed_holder_is_an_event() {
    let lock = Lock::new().unwrap();
    let held = Shared::new(AtomicU32::new(0)).unwrap();
    let mut holder = fork(|| {
        std::mem::forget(lock.lock().unwrap());
        held.store(1, Ordering::SeqCst);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let start = Instant::now();
    while held.load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "the holder never held the lock");
        std::thread::sleep(Duration::from_millis(1));
    }
    let log = EventLog::default();
    log.capture(|| {
        // Alive: a timed acquire fails and says nothing.
        assert!(!lock.acquire_with(true, Some(Duration::from_millis(50))).unwrap());
        assert!(log.events().is_empty(), "{:?}", log.events());
        holder.kill();
        let _ = holder.wait_timeout(Duration::from_secs(5));
        let r = lock.acquire_with(true, Some(Duration::from_secs(10)));
        assert!(r.is_err(), "the dead holder's lock comes back poisoned");
    });
    assert!(
        log.has("multiproc::lock", "taken over from a dead holder"),
        "events: {:?}",
        log.events()
    );
}
