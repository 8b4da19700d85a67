//! Executors and futures (PP items of the parity checklist): ProcessPoolExecutor under each
//! start method, ThreadPoolExecutor through the same trait, `wait`, `as_completed`, `.await`.

mod common;

use common::{bounded, builder, each_method, executor, METHODS};
use multiproc_arena::testing::block_on;
use multiproc_pool::{
    as_completed, as_completed_timeout, wait, ErrorKind, Executor, ProcessPoolExecutor, ReturnWhen,
    StartMethod, ThreadPoolExecutor,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn pow2(x: u32) -> u64 {
    2u64.pow(x)
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn div((a, b): (i64, i64)) -> i64 {
    a / b
}

fn abs(x: i64) -> i64 {
    x.abs()
}

const T: Duration = Duration::from_secs(10);

/// The generic executor tests (run for both executors).
fn generic<E: Executor>(e: &E) {
    // PP01
    assert_eq!(e.submit(pow2, 8).unwrap().result_timeout_owned(T), 256);
    // PP03
    let v: Vec<u64> = e.map(pow2, 0..10).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(v, (0..10).map(|x| 2u64.pow(x)).collect::<Vec<_>>());
    // PP04: the failing position raises; later results still come.
    let v: Vec<_> = e.map(div, vec![(1, 1), (2, 1), (1, 0), (6, 2)]).unwrap().collect();
    assert_eq!(*v[0].as_ref().unwrap(), 1);
    assert_eq!(*v[1].as_ref().unwrap(), 2);
    assert_eq!(v[2].as_ref().unwrap_err().kind(), ErrorKind::Panicked);
    assert_eq!(*v[3].as_ref().unwrap(), 3);
    // PP05: map with a timeout.
    let mut it = e.map_timeout(sleep_ms, vec![0, 0, 3000], Duration::from_millis(500)).unwrap();
    assert_eq!(it.next().unwrap().unwrap(), 0);
    assert_eq!(it.next().unwrap().unwrap(), 0);
    assert_eq!(it.next().unwrap().unwrap_err().kind(), ErrorKind::Timeout);
    assert!(it.next().is_none());
    // PP43
    let v: Vec<i64> = e.map(abs, -5..5).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(v, vec![5, 4, 3, 2, 1, 0, 1, 2, 3, 4]);
}

trait Owned<R> {
    fn result_timeout_owned(self, t: Duration) -> R;
}

impl<R> Owned<R> for multiproc_pool::Future<R> {
    fn result_timeout_owned(mut self, t: Duration) -> R {
        self.result_timeout(t).unwrap()
    }
}

#[test]
fn process_executor_generic_per_method() {
    each_method(90, METHODS, |m| {
        let e = executor(2, m);
        generic(&e);
        e.shutdown(false, true);
        // Do not wait for the task the map timeout left running.
        e.pool().terminate();
        // PP35
        assert_eq!(e.submit(pow2, 1).unwrap_err().kind(), ErrorKind::NotRunning);
    });
}

#[test]
fn thread_executor_generic() {
    bounded(30, || {
        let e = ThreadPoolExecutor::new(3).unwrap();
        generic(&e);
        assert_eq!(e.spawn(|| "closures too").unwrap().result().unwrap(), "closures too");
        e.shutdown(true, false);
        assert_eq!(e.submit(pow2, 1).unwrap_err().kind(), ErrorKind::NotRunning);
        // PP10
        assert_eq!(ThreadPoolExecutor::new(0).unwrap_err().kind(), ErrorKind::InvalidArgument);
        assert_eq!(ProcessPoolExecutor::new(0).unwrap_err().kind(), ErrorKind::InvalidArgument);
    });
}

#[test]
fn shutdown_waits_or_cancels() {
    each_method(60, [StartMethod::Fork, StartMethod::Forkserver], |m| {
        // PP36: every result is there after shutdown(wait).
        let e = executor(5, m);
        let fs: Vec<_> = (0..50).map(|_| e.submit(sleep_ms, 20).unwrap()).collect();
        e.shutdown(true, false);
        for mut f in fs {
            assert_eq!(f.result_timeout(Duration::ZERO).unwrap(), 20);
        }
        // PP37: shutdown(cancel_futures) cancels what has not started.
        let e = executor(5, m);
        let fs: Vec<_> = (0..50).map(|_| e.submit(sleep_ms, 100).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(20));
        e.shutdown(true, true);
        let cancelled = fs.iter().filter(|f| f.cancelled()).count();
        assert!(cancelled > 20, "{cancelled} cancelled");
        let mut completed = 0;
        for f in fs.into_iter().filter(|f| !f.cancelled()) {
            assert!(f.done());
            assert!(f.error().is_none());
            completed += 1;
        }
        assert!(completed >= 1);
        // PP38: cancel just before shutdown(wait) does not hang.
        let e = executor(1, m);
        let _busy = e.submit(sleep_ms, 50).unwrap();
        let f = e.submit(sleep_ms, 50).unwrap();
        let g = e.submit(sleep_ms, 50).unwrap();
        g.cancel();
        e.shutdown(true, false);
        assert!(f.done());
    });
}

#[test]
fn future_states_and_callbacks() {
    bounded(30, || {
        let e = executor(1, StartMethod::Fork);
        let blocker = e.submit(sleep_ms, 1500).unwrap();
        // With one worker busy, a second task queued two deep is pending: cancellable.
        let _second = e.submit(sleep_ms, 1).unwrap();
        let third = e.submit(sleep_ms, 1).unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        third.add_done_callback(move |r| {
            assert_eq!(r.unwrap_err().kind(), ErrorKind::Cancelled);
            h.fetch_add(1, Ordering::SeqCst);
        });
        assert!(third.cancel());
        assert!(third.cancelled() && third.done() && !third.running());
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        std::thread::sleep(Duration::from_millis(30));
        assert!(blocker.running(), "{blocker:?}");
        assert!(!blocker.cancel(), "a running task cannot be cancelled");
        let h = hits.clone();
        blocker.add_done_callback(move |r| {
            assert_eq!(*r.unwrap(), 1500);
            h.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(blocker.result().unwrap(), 1500);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn wait_and_as_completed_with_processes() {
    bounded(30, || {
        let e = executor(3, StartMethod::Fork);
        // PP68
        let fast = e.submit(sleep_ms, 1).unwrap();
        let slow = e.submit(sleep_ms, 2000).unwrap();
        let w = wait(vec![fast, slow], ReturnWhen::FirstCompleted, Some(T));
        assert_eq!((w.done.len(), w.not_done.len()), (1, 1));
        // PP74: a timeout returns, it does not raise.
        let t = Instant::now();
        let w = wait(w.not_done, ReturnWhen::AllCompleted, Some(Duration::from_millis(50)));
        // It returns (a loaded machine may take a while to schedule us back).
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(w.not_done.len(), 1);
        // PP70: FirstException.
        let ok = e.submit(div, (1, 1)).unwrap();
        let bad = e.submit(div, (1, 0)).unwrap();
        let w2 = wait(vec![ok, bad], ReturnWhen::FirstException, Some(T));
        assert!(w2.done.iter().any(|f| f.error().is_some()));
        // PP75 / PP76 / PP78
        let fs = vec![e.submit(sleep_ms, 5).unwrap(), e.submit(sleep_ms, 10).unwrap()];
        let got: Vec<u64> = as_completed(fs).map(|f| f.unwrap().result().unwrap()).collect();
        assert_eq!(got.len(), 2);
        let mut fs = w.not_done;
        fs.push(e.submit(sleep_ms, 1).unwrap());
        let out: Vec<_> = as_completed_timeout(fs, Duration::from_millis(300)).collect();
        assert_eq!(out.len(), 2);
        assert!(out[0].is_ok());
        assert_eq!(
            out[1].as_ref().unwrap_err().to_string(),
            "timed out waiting for the result: 1 (of 2) futures unfinished"
        );
        e.pool().terminate();
    });
}

#[test]
fn futures_can_be_awaited() {
    bounded(30, || {
        let e = executor(2, StartMethod::Fork);
        let a = e.submit(pow2, 10).unwrap();
        let b = e.submit(sleep_ms, 50).unwrap();
        let t = ThreadPoolExecutor::new(1).unwrap();
        let c = t.spawn(|| 5u64).unwrap();
        let sum = block_on(
            async move { a.await.unwrap() + b.await.unwrap() + c.await.unwrap() },
            Duration::from_secs(20),
        );
        assert_eq!(sum, 1024 + 50 + 5);
    });
}

static INITIALIZED: AtomicUsize = AtomicUsize::new(0);

fn init() {
    INITIALIZED.store(42, Ordering::SeqCst);
}

fn read_init(_: ()) -> usize {
    INITIALIZED.load(Ordering::SeqCst)
}

fn failing_init() {
    panic!("error in initializer");
}

#[test]
fn executor_initializers() {
    each_method(60, METHODS, |m| {
        // PP64
        let e = ProcessPoolExecutor::from_builder(builder(2, m).initializer(init)).unwrap();
        assert_eq!(e.submit(read_init, ()).unwrap().result().unwrap(), 42);
        // PP65: a failing initializer is a clear error, then every submit fails.
        let e = ProcessPoolExecutor::from_builder(builder(2, m).initializer(failing_init)).unwrap();
        let err = match e.submit(pow2, 1) {
            Ok(f) => f.result().unwrap_err(),
            Err(err) => err,
        };
        assert_eq!(err.kind(), ErrorKind::Initializer);
        assert!(err.to_string().contains("error in initializer"), "{err}");
        let t = Instant::now();
        loop {
            match e.submit(pow2, 1) {
                Err(err) => {
                    assert_eq!(err.kind(), ErrorKind::Initializer);
                    break;
                }
                Ok(f) => assert_eq!(f.result().unwrap_err().kind(), ErrorKind::Initializer),
            }
            assert!(t.elapsed() < Duration::from_secs(5));
        }
    });
}

/// CPython refuses `max_tasks_per_child` with the fork context for its executor.
#[test]
fn executor_refuses_worker_recycling_under_fork() {
    use multiproc_pool::{ErrorKind, Pool, ProcessPoolExecutor};
    use multiproc_spawn::StartMethod;
    let b =
        Pool::<()>::builder().processes(1).start_method(StartMethod::Fork).max_tasks_per_child(2);
    let e = ProcessPoolExecutor::from_builder(b).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    let b =
        Pool::<()>::builder().processes(1).start_method(StartMethod::Spawn).max_tasks_per_child(2);
    assert!(ProcessPoolExecutor::from_builder(b).is_ok());
}
