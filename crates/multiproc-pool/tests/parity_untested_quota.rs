//! Parity items that need a process quota (`RLIMIT_NPROC`, which also counts threads): a
//! worker that cannot start during `Pool::build` leaves no worker behind (PO33), and an
//! internal thread that cannot start fails the build instead of leaving a pool that hangs
//! (PP33). Runs for real as uid 65534 in a forked child (root ignores the limit); skipped
//! loudly where it cannot switch user. Its own test binary (one test): the forked child must
//! not inherit another test's locks.

use multiproc_arena::testing::{set_nproc_limit, with_process_quota, Outcome, QUOTA_UID};
use multiproc_pool::{ErrorKind, Executor, Pool, ProcessPoolExecutor, StartMethod};
use std::time::{Duration, Instant};

/// Tasks (processes and threads) of `uid` visible here: what `RLIMIT_NPROC` counts.
fn tasks_of(uid: u32) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if !e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else { continue };
        let field =
            |k: &str| status.lines().find_map(|l| l.strip_prefix(k)).map(|v| v.split_whitespace());
        let real_uid = field("Uid:").and_then(|mut v| v.next()).and_then(|v| v.parse().ok());
        if real_uid == Some(uid) {
            n += field("Threads:").and_then(|mut v| v.next()?.parse().ok()).unwrap_or(1);
        }
    }
    n
}

/// Children of this process, running or not yet reaped.
fn children() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // pid (comm) state ppid ...
        let Some(close) = stat.rfind(')') else { continue };
        let mut rest = stat[close + 1..].split_whitespace();
        if rest.nth(1) == Some(me.as_str()) {
            out.push(e.file_name().to_string_lossy().parse().unwrap_or(0));
        }
    }
    out
}

/// Names of this process's threads.
fn my_threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

/// The tasks of the quota's user once the last pool's leftovers are gone (its thread, its
/// workers not yet reaped): a count taken while one still ends would leave more room than
/// meant once it has.
fn settled_tasks() -> u64 {
    let t = Instant::now();
    while !children().is_empty() || my_threads().iter().any(|n| n == "multiproc-pool") {
        assert!(t.elapsed() < Duration::from_secs(20), "{:?} {:?}", children(), my_threads());
        std::thread::sleep(Duration::from_millis(5));
    }
    tasks_of(QUOTA_UID)
}

fn sqr(x: u64) -> u64 {
    x * x
}

/// The index in "cannot start worker N", if the error names one.
fn failed_worker(msg: &str) -> Option<usize> {
    let rest = &msg[msg.find("cannot start worker ")? + "cannot start worker ".len()..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// PO33: the 4th of 5 workers cannot start: `build` fails with that error, and the 3 started
/// are killed and reaped (no child of ours is left). PP33: the pool's internal thread cannot
/// start: `build` fails with a `Spawn` error at once (nothing to hang on), leaving no child.
#[test]
fn start_failures_during_build_leave_nothing_behind() {
    let out = with_process_quota(Duration::from_secs(120), || {
        assert!(children().is_empty(), "{:?}", children());
        // PO33. `RLIMIT_NPROC` counts every task of the user, this one included; room for 3
        // more makes the 4th fork fail (a few more if the count here is short of the
        // kernel's: processes of this uid outside this pid namespace).
        let mut seen = None;
        for extra in 3..12 {
            let old = set_nproc_limit(settled_tasks() + extra).unwrap();
            let t = Instant::now();
            let r = Pool::builder().processes(5).start_method(StartMethod::Fork).build();
            set_nproc_limit(old).unwrap();
            let e = r.expect_err("5 workers with room for fewer");
            assert_eq!(e.kind(), ErrorKind::Spawn, "{e}");
            assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
            assert!(children().is_empty(), "workers left behind: {:?} ({e})", children());
            match failed_worker(&e.to_string()) {
                Some(0) => continue,
                Some(i) => {
                    seen = Some(i);
                    break;
                }
                None => panic!("not a worker's start: {e}"),
            }
        }
        let i = seen.expect("no limit let a first worker start");
        eprintln!("PO33: worker {i} of 5 could not start; the {i} started were reaped");
        // The quota lifted, a pool starts again.
        let pool = Pool::builder().processes(5).start_method(StartMethod::Fork).build().unwrap();
        assert_eq!(pool.map(sqr, 0..20u64).unwrap().len(), 20);
        pool.terminate();
        pool.join_timeout(Duration::from_secs(10)).unwrap();
        drop(pool);

        // PP33, on-demand executor (no worker at build): the only new task is the pool's
        // thread, and there is no room for it.
        let old = set_nproc_limit(settled_tasks()).unwrap();
        let t = Instant::now();
        let r =
            ProcessPoolExecutor::builder().processes(2).start_method(StartMethod::Spawn).build();
        set_nproc_limit(old).unwrap();
        let e = r.expect_err("no room for the pool's thread");
        assert_eq!(e.kind(), ErrorKind::Spawn, "{e}");
        assert!(e.to_string().contains("thread"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());

        // PP33 under fork: the worker starts, the thread does not; the worker is reaped.
        let mut seen = false;
        for extra in 1..10 {
            let old = set_nproc_limit(settled_tasks() + extra).unwrap();
            let r = Pool::builder().processes(1).start_method(StartMethod::Fork).build();
            set_nproc_limit(old).unwrap();
            let e = r.expect_err("room for the worker only");
            assert_eq!(e.kind(), ErrorKind::Spawn, "{e}");
            assert!(children().is_empty(), "worker left behind: {:?} ({e})", children());
            if e.to_string().contains("thread") {
                seen = true;
                break;
            }
        }
        assert!(seen, "no limit let the worker start and stopped the thread");

        // And the executor works once threads can start again.
        let ex = ProcessPoolExecutor::builder()
            .processes(2)
            .start_method(StartMethod::Fork)
            .build()
            .unwrap();
        assert_eq!(ex.submit(sqr, 9).unwrap().result().unwrap(), 81);
    });
    // Outcome::Skipped was already reported loudly by the helper.
    let _: Outcome = out;
}
