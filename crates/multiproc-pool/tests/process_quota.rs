//! A process quota: while the system refuses new processes (`EAGAIN` under `RLIMIT_NPROC`),
//! a pool whose worker died cannot replace it. It must not break: the task the dead worker
//! ran fails (naming its death), the tasks behind it wait (their callers' timeouts bound
//! them), and once the quota is lifted the pool starts a worker again (retrying with backoff)
//! and runs them, and later work, without being rebuilt. Runs for real as uid 65534 in a
//! forked child (root ignores `RLIMIT_NPROC`); skipped loudly where it cannot switch user.
//! Its own test binary (one test): the forked child must not inherit another test's locks.

use multiproc_arena::testing::{set_nproc_limit, with_process_quota, Outcome};
use multiproc_pool::{ErrorKind, Pool, StartMethod};
use std::time::{Duration, Instant};

fn double(x: u64) -> u64 {
    x * 2
}

fn die(_: u64) -> u64 {
    std::process::exit(3)
}

#[test]
fn pool_survives_a_process_quota_and_recovers() {
    let out = with_process_quota(Duration::from_secs(60), || {
        let pool = Pool::builder().processes(1).start_method(StartMethod::Fork).build().unwrap();
        assert_eq!(pool.map(double, 0..10u64).unwrap(), (0..10).map(|x| x * 2).collect::<Vec<_>>());
        let waiting_before = pool.apply_async(double, 100).unwrap().get().unwrap();
        assert_eq!(waiting_before, 200);

        // No new process for this user from now on.
        let old = set_nproc_limit(1).unwrap();
        let err = pool.apply(die, 0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WorkerDied, "{err}");
        // No worker can be started: the next task waits, bounded by the caller's timeout.
        let mut pending = pool.apply_async(double, 21).unwrap();
        let t = Instant::now();
        let err = pending.get_timeout(Duration::from_millis(300)).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        assert!(pool.worker_pids().is_empty(), "{:?}", pool.worker_pids());

        // The quota is lifted: the pool recovers by itself, nothing was lost.
        set_nproc_limit(old).unwrap();
        assert_eq!(pending.get_timeout(Duration::from_secs(10)).unwrap(), 42);
        assert_eq!(pool.map(double, 0..100u64).unwrap().len(), 100);
        assert_eq!(pool.worker_pids().len(), 1);
        pool.close();
        pool.join_timeout(Duration::from_secs(10)).unwrap();
    });
    // Outcome::Skipped was already reported loudly by the helper.
    let _: Outcome = out;
}
