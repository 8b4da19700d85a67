//! With the `tracing` feature, a worker's death and its replacement are `tracing` events
//! (target `multiproc::pool`). Run: `cargo test -p multiproc-pool --features tracing --test
//! tracing`.
#![cfg(feature = "tracing")]

use multiproc_arena::testing::EventLog;
use multiproc_pool::{ErrorKind, Pool};
use std::time::{Duration, Instant};

fn abort_or_double(x: u32) -> u32 {
    if x == 0 {
        std::process::abort();
    }
    x * 2
}

#[test]
fn a_worker_death_and_its_replacement_are_events() {
    let log = EventLog::default();
    assert!(log.install_global(), "the only subscriber of this test binary");
    let pool = Pool::builder().processes(1).build().unwrap();
    assert_eq!(pool.apply(abort_or_double, 4).unwrap(), 8);
    assert!(log.events().iter().all(|(t, _)| t != "multiproc::pool"), "{:?}", log.events());
    let e = pool.apply(abort_or_double, 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WorkerDied, "{e}");
    // The replacement serves the next task.
    assert_eq!(pool.apply(abort_or_double, 5).unwrap(), 10);
    let start = Instant::now();
    while !log.has("multiproc::pool", "replacement worker started") {
        assert!(start.elapsed() < Duration::from_secs(10), "events: {:?}", log.events());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(log.has("multiproc::pool", "worker died"), "events: {:?}", log.events());
    assert!(log.has("multiproc::pool", "SIGABRT"), "events: {:?}", log.events());
}
