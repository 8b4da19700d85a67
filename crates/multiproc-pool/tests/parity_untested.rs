//! Parity items that were "met (untested)" in `multiproc/src/parity.md`, now checked with
//! real worker processes: a 200-worker pool (PL33, PO34), a never-closed pool at program
//! exit (PO31), a task's own timeout inside a timed map (PP06), dropping the map iterator
//! (PP07), dropping and shutting down executors (PP44, PP45, PP46), crashes during shutdown
//! and with large arguments (PP60, PP62), an unserialisable task (PP61), `wait` (PP72,
//! PP73) and a future's `Debug` (PP89). The items that need a process quota (PO33, PP33) are
//! in `parity_untested_quota.rs`, a binary of their own.

mod common;
mod sys;

use common::{bounded, each_method, executor, take_unser, Unserialisable, METHODS};
use multiproc_arena::testing::{pid_running, start_copy, wait_success};
use multiproc_arena::Array;
use multiproc_pool::{
    wait, ErrorKind, Executor, Pool, ProcessPoolExecutor, ReturnWhen, StartMethod,
    ThreadPoolExecutor,
};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn sqr(x: u64) -> u64 {
    x * x
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn div((a, b): (i64, i64)) -> i64 {
    a / b
}

/// Waits (at most `secs`) until `cond` holds; whether it did.
fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while !cond() {
        if t.elapsed() > Duration::from_secs(secs) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Every pid in `pids` has ended (gone, or a zombie) within `secs`.
fn all_gone(pids: &[u32], secs: u64) -> bool {
    eventually(secs, || pids.iter().all(|&p| !pid_running(p)))
}

// PL33 / PO34: `Pool(200).map(x*x, range(1000))` sums to 332833500.
#[test]
fn pool_of_200_workers_maps_1000_items() {
    bounded(120, || {
        let t = Instant::now();
        let pool = Pool::builder().processes(200).start_method(StartMethod::Fork).build().unwrap();
        assert_eq!(pool.worker_pids().len(), 200);
        let started = t.elapsed();
        let out = pool.map(sqr, 0..1000u64).unwrap();
        assert_eq!(out.iter().sum::<u64>(), 332_833_500);
        assert_eq!(out, (0..1000u64).map(sqr).collect::<Vec<_>>());
        let pids = pool.worker_pids();
        pool.close();
        pool.join_timeout(Duration::from_secs(60)).unwrap();
        assert!(pool.worker_pids().is_empty());
        assert!(all_gone(&pids, 10), "every one of the 200 workers exited");
        eprintln!("200 workers: started in {started:?}, all done in {:?}", t.elapsed());
    });
}

const PO31_PIDS: &str = "MULTIPROC_PO31_PIDS";

static GLOBAL_POOL: std::sync::OnceLock<Pool> = std::sync::OnceLock::new();

// PO31: a program whose global object holds a pool that was never closed (after a `map`)
// exits with status 0 and does not hang; its workers die with it.
#[test]
fn never_closed_global_pool_does_not_hang_exit() {
    if let Ok(path) = std::env::var(PO31_PIDS) {
        // The copy of the test binary: a static pool, used, never closed nor dropped.
        let pool = GLOBAL_POOL.get_or_init(|| {
            Pool::builder().processes(3).start_method(StartMethod::Fork).build().unwrap()
        });
        assert_eq!(pool.map(sqr, 0..100u64).unwrap().len(), 100);
        let pids: Vec<String> = pool.worker_pids().iter().map(u32::to_string).collect();
        assert_eq!(pids.len(), 3);
        std::fs::write(path, pids.join(" ")).unwrap();
        return;
    }
    let path = std::env::temp_dir().join(format!("multiproc-po31-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let t = Instant::now();
    let child = start_copy(
        "never_closed_global_pool_does_not_hang_exit",
        &[(PO31_PIDS, path.to_str().unwrap())],
    );
    wait_success(child, "a program with a never-closed global pool", Duration::from_secs(60));
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let pids: Vec<u32> = text.split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert_eq!(pids.len(), 3, "{text:?}");
    assert!(all_gone(&pids, 10), "the workers of the exited program are gone: {pids:?}");
    eprintln!("program with a never-closed pool exited in {:?}", t.elapsed());
}

/// A task whose own outcome is a timeout error (CPython raises `TimeoutError` in it).
fn own_timeout(x: u32) -> Result<u32, String> {
    if x == 1 {
        Err("TimeoutError".to_string())
    } else {
        Ok(x)
    }
}

fn panics_with_timeout(x: u32) -> u32 {
    if x == 1 {
        panic!("TimeoutError: the task's own");
    }
    x
}

// PP06: a timeout *of the task* is that item's outcome, not the map's timeout: iteration
// goes on with 0, the error, 2, 3, then ends.
#[test]
fn a_tasks_own_timeout_is_not_a_map_timeout() {
    each_method(120, [StartMethod::Fork, StartMethod::Forkserver], |m| {
        let ex = executor(2, m);
        let long = Duration::from_secs(60);
        // The task's own error value.
        let mut it = ex.map_timeout(own_timeout, 0..4, long).unwrap();
        assert_eq!(it.next().unwrap().unwrap(), Ok(0));
        assert_eq!(it.next().unwrap().unwrap(), Err("TimeoutError".to_string()), "{m:?}");
        assert_eq!(it.next().unwrap().unwrap(), Ok(2));
        assert_eq!(it.next().unwrap().unwrap(), Ok(3));
        assert!(it.next().is_none());
        // A task that fails (panics) with a timeout message: Panicked, not the map's Timeout.
        let mut it = ex.map_timeout(panics_with_timeout, 0..4, long).unwrap();
        assert_eq!(it.next().unwrap().unwrap(), 0);
        let e = it.next().unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked, "{m:?}: {e}");
        assert!(e.to_string().contains("TimeoutError"), "{e}");
        assert_eq!(it.next().unwrap().unwrap(), 2);
        assert_eq!(it.next().unwrap().unwrap(), 3);
        assert!(it.next().is_none());
        // The pool's per-task limit killing one task: that item's TaskTimedOut; the map's own
        // (far) deadline is untouched and iteration goes on.
        let ex = ProcessPoolExecutor::builder()
            .processes(2)
            .start_method(m)
            .pool(|b| b.task_timeout(Duration::from_millis(1000)))
            .build()
            .unwrap();
        let mut it = ex.map_timeout(sleep_ms, vec![1, 30_000, 2, 3], long).unwrap();
        assert_eq!(it.next().unwrap().unwrap(), 1);
        let e = it.next().unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TaskTimedOut, "{m:?}: {e}");
        assert_eq!(it.next().unwrap().unwrap(), 2);
        assert_eq!(it.next().unwrap().unwrap(), 3);
        assert!(it.next().is_none());
    });
}

// PP07: dropping the map iterator after the first result cancels every task that has not
// started: they never run, and the executor goes on.
#[test]
fn dropping_the_map_iterator_cancels_what_has_not_started() {
    bounded(60, || {
        const N: usize = 20;
        let started = Array::from_fn(N, |_| AtomicU32::new(0)).unwrap();
        let marks = started.clone();
        let ex = executor(1, StartMethod::Fork);
        let task = move |i: usize| {
            marks[i].store(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            i
        };
        let mut it = ex.map(task, 0..N).unwrap();
        assert_eq!(it.next().unwrap().unwrap(), 0);
        drop(it);
        let t = Instant::now();
        assert_eq!(ex.submit(sqr, 7).unwrap().result().unwrap(), 49, "the executor goes on");
        ex.shutdown(true, false);
        let ran: Vec<usize> = (0..N).filter(|&i| started[i].load(Ordering::SeqCst) == 1).collect();
        // Item 0, and at most the few a worker had been handed ahead; never the rest.
        assert!(ran.len() <= 4, "ran after the drop: {ran:?}");
        assert_eq!(ran, (0..ran.len()).collect::<Vec<_>>(), "a prefix ran, in order");
        assert!(t.elapsed() < Duration::from_millis(100 * (N as u64 - 5)), "{:?}", t.elapsed());

        // The thread executor's map (the trait's) does the same.
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let ex = ThreadPoolExecutor::new(1).unwrap();
        let mut it = ex
            .map(
                move |i: usize| {
                    r.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(50));
                    i
                },
                0..N,
            )
            .unwrap();
        assert_eq!(it.next().unwrap().unwrap(), 0);
        drop(it);
        ex.shutdown(true, false);
        assert!(ran.load(Ordering::SeqCst) <= 2, "{} ran", ran.load(Ordering::SeqCst));
    });
}

fn abs(x: i64) -> i64 {
    x.abs()
}

fn slow_abs(x: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(100));
    x.abs()
}

// PP44: dropping the executor shuts it down: its processes are gone when the drop returns,
// and the results of a map made before are all there.
#[test]
fn dropping_the_executor_shuts_it_down() {
    each_method(120, METHODS, |m| {
        let ex = executor(3, m);
        let results = ex.map(slow_abs, -5..5).unwrap();
        let pids = ex.pool().worker_pids();
        assert!(!pids.is_empty(), "{m:?}");
        drop(ex);
        assert!(pids.iter().all(|&p| !pid_running(p)), "{m:?}: workers left: {pids:?}");
        let v: Vec<i64> = results.map(|r| r.unwrap()).collect();
        assert_eq!(v, (-5..5).map(abs).collect::<Vec<_>>(), "{m:?}");
    });
}

// PP45: `shutdown(wait=False)` returns at once; the work still finishes, the map's results
// are right, and the workers exit by themselves.
#[test]
fn shutdown_without_wait_still_finishes_everything() {
    each_method(120, METHODS, |m| {
        let ex = executor(2, m);
        let fut = ex.submit(sleep_ms, 300).unwrap();
        let results = ex.map(slow_abs, -5..5).unwrap();
        let t = Instant::now();
        ex.shutdown(false, false);
        assert!(t.elapsed() < Duration::from_millis(400), "{m:?}: {:?}", t.elapsed());
        assert_eq!(ex.submit(abs, 1).unwrap_err().kind(), ErrorKind::NotRunning);
        let pids = ex.pool().worker_pids();
        let v: Vec<i64> = results.map(|r| r.unwrap()).collect();
        assert_eq!(v, (-5..5).map(abs).collect::<Vec<_>>(), "{m:?}");
        assert_eq!(fut.result().unwrap(), 300);
        assert!(eventually(20, || ex.pool().worker_pids().is_empty()), "{m:?}");
        assert!(all_gone(&pids, 10), "{m:?}: {pids:?}");
    });
}

fn gh132969(x: u64) -> u64 {
    match x {
        1 => sleep_ms(100) / 100,
        2 => panic!("ValueError"),
        _ => x,
    }
}

// PP46 (gh-132969): with `max_tasks_per_child=1` and 2 or 4 workers, tasks 1 (fine, 0.1 s),
// 2 (fails) and 3: the sum up to the first error is 1, then `shutdown(wait=False)` completes
// without a hang, and the pool winds down.
#[test]
fn one_task_per_child_with_a_failing_task_then_shutdown_without_wait() {
    bounded(120, || {
        for m in [StartMethod::Forkserver, StartMethod::Spawn] {
            for workers in [2, 4] {
                let ex = ProcessPoolExecutor::builder()
                    .processes(workers)
                    .start_method(m)
                    .pool(|b| b.max_tasks_per_child(1))
                    .build()
                    .unwrap();
                let futs: Vec<_> = [1, 2, 3].map(|x| ex.submit(gh132969, x).unwrap()).into();
                let mut sum = 0;
                let mut first_err = None;
                let mut rest = Vec::new();
                for f in futs {
                    if first_err.is_some() {
                        rest.push(f);
                        continue;
                    }
                    match f.result() {
                        Ok(v) => sum += v,
                        Err(e) => first_err = Some(e),
                    }
                }
                assert_eq!(sum, 1, "{m:?} x{workers}");
                assert_eq!(first_err.unwrap().kind(), ErrorKind::Panicked);
                let t = Instant::now();
                ex.shutdown(false, false);
                assert!(t.elapsed() < Duration::from_secs(2), "{m:?}: {:?}", t.elapsed());
                for f in rest {
                    f.wait_timeout(Duration::from_secs(30))
                        .unwrap_or_else(|e| panic!("{m:?}: task 3 hangs: {e}"));
                    assert_eq!(f.result().unwrap(), 3);
                }
                assert!(eventually(30, || ex.pool().worker_pids().is_empty()), "{m:?}");
            }
        }
    });
}

fn crash_after_100ms(code: i32) -> u32 {
    std::thread::sleep(Duration::from_millis(100));
    sys::exit_now(code)
}

// PP60: a worker crashes 0.1 s into its task while `shutdown(wait=True)` already runs:
// shutdown returns, that future fails (naming the death), the others are fine.
#[test]
fn worker_crash_during_shutdown_wait() {
    each_method(120, METHODS, |m| {
        let ex = executor(2, m);
        let crash = ex.submit(crash_after_100ms, 7).unwrap();
        let fine: Vec<_> = (0..4).map(|_| ex.submit(sleep_ms, 50).unwrap()).collect();
        let t = Instant::now();
        ex.shutdown(true, false);
        assert!(t.elapsed() < Duration::from_secs(30), "{m:?}");
        assert!(crash.done() && fine.iter().all(|f| f.done()), "{m:?}");
        let e = crash.result().unwrap_err();
        assert_eq!((e.kind(), e.exit_code()), (ErrorKind::WorkerDied, Some(7)), "{m:?}: {e}");
        for f in fine {
            assert_eq!(f.result().unwrap(), 50, "{m:?}");
        }
        assert!(ex.pool().worker_pids().is_empty(), "{m:?}");
    });
}

// PP61: a task that cannot be serialised, then `shutdown(wait=False)`: the future fails with
// a codec error, and the pool still winds down (no hang, no leftover workers).
#[test]
fn unserialisable_task_then_shutdown_without_wait() {
    each_method(120, METHODS, |m| {
        let ex = executor(2, m);
        assert_eq!(ex.submit(sqr, 6).unwrap().result().unwrap(), 36);
        let bad = ex.submit(take_unser, Unserialisable(1)).unwrap();
        let after = ex.submit(sqr, 5).unwrap();
        ex.shutdown(false, false);
        let e = bad.result().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Codec, "{m:?}: {e}");
        assert!(e.to_string().contains("refuses to serialise"), "{e}");
        assert_eq!(after.result().unwrap(), 25);
        let pids = ex.pool().worker_pids();
        assert!(eventually(30, || ex.pool().worker_pids().is_empty()), "{m:?}");
        assert!(all_gone(&pids, 10), "{m:?}");
    });
}

/// CPython's `PIPE_MAX_SIZE`: larger than any pipe buffer.
const PIPE_MAX_SIZE: usize = 4 * 1024 * 1024 + 1;

fn crash_big(data: Vec<u8>) -> usize {
    if data.len() == PIPE_MAX_SIZE {
        sys::exit_now(3);
    }
    data.len()
}

// PP62: a map of crashing tasks whose arguments are each larger than a pipe (10 items):
// every item fails with the worker's death, no deadlock while the channel is full, and the
// executor still works.
#[test]
fn crash_with_large_arguments_does_not_deadlock() {
    each_method(180, [StartMethod::Fork, StartMethod::Forkserver], |m| {
        let ex = executor(2, m);
        let items: Vec<Vec<u8>> = (0..10).map(|i| vec![i as u8; PIPE_MAX_SIZE]).collect();
        let out: Vec<_> = ex.map(crash_big, items).unwrap().collect();
        assert_eq!(out.len(), 10);
        for r in out {
            let e = r.unwrap_err();
            assert_eq!((e.kind(), e.exit_code()), (ErrorKind::WorkerDied, Some(3)), "{m:?}: {e}");
        }
        assert_eq!(ex.submit(crash_big, vec![1; 1000]).unwrap().result().unwrap(), 1000);
    });
}

// PP72: FIRST_EXCEPTION with a future that has already failed returns at once: done holds
// the failed one, not_done the running one.
#[test]
fn wait_first_exception_with_one_already_failed_returns_at_once() {
    bounded(60, || {
        let ex = executor(2, StartMethod::Fork);
        let failed = ex.submit(div, (1, 0)).unwrap();
        failed.wait_timeout(Duration::from_secs(20)).unwrap();
        let slow = ex.submit(|(a, b): (i64, i64)| sleep_ms(5000) as i64 + a / b, (0, 1)).unwrap();
        let t = Instant::now();
        let w = wait(vec![failed, slow], ReturnWhen::FirstException, Some(Duration::from_secs(20)));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert_eq!((w.done.len(), w.not_done.len()), (1, 1));
        assert_eq!(w.done[0].error().unwrap().kind(), ErrorKind::Panicked);
        assert!(!w.not_done[0].done());
        ex.pool().terminate();
    });
}

// PP73: ALL_COMPLETED: failing and succeeding futures all end in done; not_done is empty.
#[test]
fn wait_all_completed_holds_failures_and_successes() {
    each_method(60, [StartMethod::Fork, StartMethod::Forkserver], |m| {
        let ex = executor(2, m);
        let fs = vec![
            ex.submit(div, (4, 2)).unwrap(),
            ex.submit(div, (1, 0)).unwrap(),
            ex.submit(|x: i64| sleep_ms(200) as i64 * x, 1).unwrap(),
            ex.submit(|(a, b): (i64, i64)| sleep_ms(100) as i64 + a / b, (1, 0)).unwrap(),
        ];
        let w = wait(fs, ReturnWhen::AllCompleted, Some(Duration::from_secs(30)));
        assert_eq!((w.done.len(), w.not_done.len()), (4, 0), "{m:?}");
        let failed = w.done.iter().filter(|f| f.error().is_some()).count();
        assert_eq!(failed, 2, "{m:?}");
        assert!(w.done.iter().all(|f| f.done()));
        let mut ok: Vec<i64> = w.done.into_iter().filter_map(|f| f.result().ok()).collect();
        ok.sort();
        assert_eq!(ok, vec![2, 200]);
    });
}

// PP89: a future's `Debug` shows its state: pending, running, cancelled, finished, and
// finished with an error.
#[test]
fn future_debug_shows_its_state() {
    bounded(60, || {
        let ex = executor(1, StartMethod::Fork);
        let shown = |f: &dyn std::fmt::Debug| format!("{f:?}");
        let blocker = ex.submit(sleep_ms, 1000).unwrap();
        // One worker, busy: the tasks behind it wait (the third is still in the parent).
        let second = ex.submit(sleep_ms, 1).unwrap();
        let third = ex.submit(sleep_ms, 1).unwrap();
        let fourth = ex.submit(sleep_ms, 1).unwrap();
        assert!(eventually(20, || blocker.running()), "{blocker:?}");
        assert_eq!(shown(&blocker), r#"Future { state: "running" }"#);
        assert_eq!(shown(&fourth), r#"Future { state: "pending" }"#);
        assert!(third.cancel());
        assert_eq!(shown(&third), r#"Future { state: "cancelled" }"#);
        blocker.wait_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(shown(&blocker), r#"Future { state: "finished" }"#);
        let failed = ex.submit(div, (1, 0)).unwrap();
        failed.wait_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(shown(&failed), r#"Future { state: "finished (error)" }"#);
        assert_eq!(second.result().unwrap(), 1);
        assert_eq!(fourth.result().unwrap(), 1);
    });
}
