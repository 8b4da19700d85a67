//! `ProcessPoolExecutor` parity with CPython's: `map` with a chunk size (PP03, PP04, PP16),
//! `map` with a `buffersize` (PP08),
//! workers started on demand and idle ones reused (PP18, PP19, PP20, PP42), and `map`'s
//! error at its own position (PP04), under every start method.

mod common;

use common::{each_method, executor, METHODS};
use multiproc_pool::{ErrorKind, Executor, ProcessPoolExecutor, StartMethod, ThreadPoolExecutor};

fn pow((x, y): (u64, u32)) -> u64 {
    x.pow(y % 4)
}

fn div((a, b): (i64, i64)) -> i64 {
    a / b
}

/// Five divisions for [`div`], the third by zero (its task panics).
fn divisions() -> Vec<(i64, i64)> {
    vec![(6, 3), (8, 2), (1, 0), (9, 3), (10, 5)]
}

/// A map's outcomes of [`divisions`]: each at its own position, the zero divisor's a panic
/// and the items around it fine.
fn assert_divisions(out: &[multiproc_pool::Result<i64>], m: StartMethod) {
    assert_eq!(out.len(), 5, "{m:?}");
    assert_eq!(*out[0].as_ref().unwrap(), 2);
    assert_eq!(*out[1].as_ref().unwrap(), 4);
    assert_eq!(out[2].as_ref().unwrap_err().kind(), ErrorKind::Panicked, "{m:?}");
    assert_eq!(*out[3].as_ref().unwrap(), 3);
    assert_eq!(*out[4].as_ref().unwrap(), 2);
}

fn want() -> Vec<u64> {
    (0..40u64).map(|x| x.pow((x as u32) % 4)).collect()
}

fn pairs() -> impl Iterator<Item = (u64, u32)> {
    (0..40u64).map(|x| (x, x as u32))
}

#[test]
fn map_chunked_keeps_order_and_batches() {
    each_method(90, METHODS, |m| {
        // PP16: chunk sizes 6, 50 and 40 give the same results; 0 is refused.
        for cs in [1, 6, 40, 50] {
            let ex = executor(2, m);
            let v: Vec<u64> =
                ex.map_chunked(pow, pairs(), cs).unwrap().map(|r| r.unwrap()).collect();
            assert_eq!(v, want(), "{m:?} chunksize {cs}");
            // The items went in ceil(40 / cs) tasks.
            let ins = ex.pool().insights();
            assert_eq!(ins.iter().map(|w| w.items).sum::<u64>(), 40, "{m:?}");
            assert_eq!(ins.iter().map(|w| w.tasks).sum::<u64>(), 40_u64.div_ceil(cs as u64));
        }
        let ex = executor(2, m);
        let e = ex.map_chunked(pow, pairs(), 0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        // PP04 with chunks: the zero divisor's error comes at its own position; the items
        // around it, in its chunk too, are fine.
        let out: Vec<_> = ex.map_chunked(div, divisions(), 3).unwrap().collect();
        assert_divisions(&out, m);
        // Dropping the iterator early cancels what has not started (PP07), and the
        // executor goes on.
        let mut it = ex.map_chunked(pow, pairs(), 4).unwrap();
        assert_eq!(it.next().unwrap().unwrap(), 1);
        drop(it);
        assert_eq!(ex.submit(pow, (3, 2)).unwrap().result().unwrap(), 9);
    });
}

#[test]
fn thread_executor_map_chunked() {
    common::bounded(30, || {
        let ex = ThreadPoolExecutor::new(3).unwrap();
        let v: Vec<u64> = ex.map_chunked(pow, pairs(), 7).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(v, want());
        assert_eq!(ex.map_chunked(pow, pairs(), 0).unwrap_err().kind(), ErrorKind::InvalidArgument);
    });
}

fn pid(_: ()) -> u32 {
    std::process::id()
}

fn pid_after_ms(ms: u64) -> u32 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    std::process::id()
}

fn distinct(mut v: Vec<u32>) -> usize {
    v.sort();
    v.dedup();
    v.len()
}

#[test]
fn workers_start_on_demand_and_idle_ones_are_reused() {
    use StartMethod::Fork;
    each_method(90, METHODS, |m| {
        let ex = executor(5, m);
        // Fork starts every worker at once (as CPython: forking later is unsafe); the other
        // methods none until there is work.
        let upfront = ex.pool().worker_pids().len();
        assert_eq!(upfront, if m == Fork { 5 } else { 0 }, "{m:?}");
        // PP19: three sequential submit + result pairs use one worker.
        let pids: Vec<u32> =
            (0..3).map(|_| ex.submit(pid, ()).unwrap().result().unwrap()).collect();
        let live = ex.pool().worker_pids();
        if m != Fork {
            assert_eq!(live.len(), 1, "{m:?}: {live:?}");
            assert_eq!(pids, vec![live[0]; 3], "{m:?}");
        }
        // PP20: an interleaved pattern starts at most 3.
        let _ = ex.submit(pid, ()).unwrap().result().unwrap();
        let _a = ex.submit(pid, ()).unwrap();
        let _ = ex.submit(pid, ()).unwrap().result().unwrap();
        let _b = ex.submit(pid, ()).unwrap();
        let _ = ex.submit(pid, ()).unwrap().result().unwrap();
        let _c = ex.submit(pid, ()).unwrap();
        if m != Fork {
            let n = ex.pool().worker_pids().len();
            assert!(n <= 3, "{m:?}: {n} workers");
        }
        // PP18 / PP42: 15 × max_workers blocking tasks use exactly max_workers processes.
        let futs: Vec<_> = (0..75).map(|_| ex.submit(pid_after_ms, 10).unwrap()).collect();
        let used: Vec<u32> = futs.into_iter().map(|f| f.result().unwrap()).collect();
        assert!(distinct(used) <= 5, "{m:?}");
        assert_eq!(ex.pool().worker_pids().len(), 5, "{m:?}");
        ex.shutdown(true, false);
        assert!(ex.pool().worker_pids().is_empty(), "{m:?}: every worker joined");
    });
}

/// Runs `body` with a five-worker executor under each start method that starts workers on
/// demand (not fork).
fn on_demand(body: impl Fn(ProcessPoolExecutor, StartMethod) + Send + Sync + 'static) {
    use StartMethod::{Forkserver, Spawn};
    each_method(90, [Forkserver, Spawn], move |m| body(executor(5, m), m));
}

#[test]
fn on_demand_three_blocking_tasks_start_three() {
    on_demand(|ex, m| {
        // PP42: three blocking tasks at once start three workers of five.
        let futs: Vec<_> = (0..3).map(|_| ex.submit(pid_after_ms, 300).unwrap()).collect();
        assert_eq!(ex.pool().worker_pids().len(), 3, "{m:?}");
        let used: Vec<u32> = futs.into_iter().map(|f| f.result().unwrap()).collect();
        assert_eq!(distinct(used), 3, "{m:?}: the three ran side by side");
    });
}

#[test]
fn terminate_before_any_worker_started_is_a_no_op() {
    on_demand(|ex, m| {
        // PP30: no worker started yet; terminating starts none and returns at once.
        assert!(ex.pool().worker_pids().is_empty(), "{m:?}: none started up front");
        let t0 = std::time::Instant::now();
        ex.pool().terminate();
        ex.pool().join_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert!(ex.pool().worker_pids().is_empty(), "{m:?}: none started by terminate");
        assert!(t0.elapsed() < std::time::Duration::from_secs(5), "{m:?}: {:?}", t0.elapsed());
        assert!(ex.submit(pid, ()).is_err(), "{m:?}: a terminated executor refuses work");
    });
}

fn double(x: u64) -> u64 {
    x * 2
}

fn slow_double(x: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(2));
    x * 2
}

// PP08 (CPython 3.14 `map(..., buffersize=N)`): an endless input is read as results are
// taken; unconsumed, the map has read exactly `buffersize` items; never more than
// `buffersize` submitted results wait to be yielded.
#[test]
fn map_buffered_reads_an_endless_input_lazily() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    each_method(90, METHODS, |m| {
        let ex = executor(2, m);
        let read = Arc::new(AtomicUsize::new(0));
        let r = read.clone();
        let endless = (0u64..).inspect(move |_| {
            r.fetch_add(1, SeqCst);
        });
        let mut it = ex.map_buffered(slow_double, endless, 4).unwrap();
        assert_eq!(read.load(SeqCst), 4, "{m:?}: unconsumed, exactly buffersize read");
        assert_eq!(it.outstanding(), 4);
        for i in 0..100u64 {
            assert!(it.outstanding() <= 4, "{m:?}: {it:?}");
            assert_eq!(it.next().unwrap().unwrap(), 2 * i, "{m:?}: in order");
            assert!(read.load(SeqCst) as u64 <= i + 1 + 4, "{m:?}: read {}", read.load(SeqCst));
        }
        drop(it);
        let n = read.load(SeqCst);
        assert!((100..=100 + 4 + 1).contains(&n), "{m:?}: {n} items read for 100 results");
        // The executor goes on.
        assert_eq!(ex.submit(double, 21).unwrap().result().unwrap(), 42);
    });
}

#[test]
fn map_buffered_keeps_order_and_errors_at_their_position() {
    each_method(90, METHODS, |m| {
        let ex = executor(2, m);
        for bs in [1, 2, 4, 8, 100] {
            let v: Vec<u64> =
                ex.map_buffered(pow, pairs(), bs).unwrap().map(|r| r.unwrap()).collect();
            assert_eq!(v, want(), "{m:?} buffersize {bs}");
        }
        // An empty input yields nothing; 0 is refused.
        assert_eq!(ex.map_buffered(pow, std::iter::empty(), 3).unwrap().count(), 0);
        let e = ex.map_buffered(pow, pairs(), 0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{m:?}");
        // A failing task's error comes at its own position; the items after it are fine.
        let out: Vec<_> = ex.map_buffered(div, divisions(), 2).unwrap().collect();
        assert_divisions(&out, m);
        // Shut down mid-stream: what was submitted still comes, then the refusal, then the
        // end.
        let mut it = ex.map_buffered(double, 0u64.., 3).unwrap();
        assert_eq!(it.next().unwrap().unwrap(), 0);
        ex.shutdown(false, false);
        assert_eq!(it.next().unwrap().unwrap(), 2);
        assert_eq!(it.next().unwrap().unwrap(), 4);
        assert_eq!(it.next().unwrap().unwrap_err().kind(), ErrorKind::NotRunning, "{m:?}");
        assert!(it.next().is_none());
    });
}

#[test]
fn thread_executor_map_buffered() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    common::bounded(30, || {
        let ex = ThreadPoolExecutor::new(3).unwrap();
        let read = Arc::new(AtomicUsize::new(0));
        let r = read.clone();
        let endless = (0u64..).inspect(move |_| {
            r.fetch_add(1, SeqCst);
        });
        let it = ex.map_buffered(double, endless, 4).unwrap();
        assert_eq!(read.load(SeqCst), 4);
        let v: Vec<u64> = it.take(100).map(|r| r.unwrap()).collect();
        assert_eq!(v, (0..100).map(|x| 2 * x).collect::<Vec<_>>());
        assert!(read.load(SeqCst) <= 104, "{}", read.load(SeqCst));
        let out: Vec<_> = ex.map_buffered(div, vec![(4, 2), (1, 0), (9, 3)], 1).unwrap().collect();
        assert_eq!(out[1].as_ref().unwrap_err().kind(), ErrorKind::Panicked);
        assert_eq!((*out[0].as_ref().unwrap(), *out[2].as_ref().unwrap()), (2, 3));
        assert_eq!(
            ex.map_buffered(double, 0..3, 0).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    });
}
