//! Pool behaviours from CPython's test suite (PO items of the parity checklist), with real
//! worker processes, for each start method where it matters.

mod common;

use common::{bounded, builder, each_method, pool, take_unser, Unserialisable, METHODS};
use multiproc_pool::{ErrorKind, Executor, Pool, StartMethod};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn sqr(x: i64) -> i64 {
    x * x
}

fn sqr_slow((x, ms): (i64, u64)) -> i64 {
    std::thread::sleep(Duration::from_millis(ms));
    x * x
}

fn mul(a: i64, b: i64) -> i64 {
    a * b
}

fn parse(s: String) -> i64 {
    s.parse().expect("not a number")
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn pid(_: u32) -> u32 {
    std::process::id()
}

#[test]
fn apply_map_starmap_imap_per_method() {
    each_method(60, METHODS, |m| {
        let p = pool(2, m);
        assert_eq!(p.start_method(), m);
        // PO01
        assert_eq!(p.apply(sqr, 5).unwrap(), 25);
        // PO02
        assert_eq!(p.map(sqr, 0..10).unwrap(), (0..10).map(|x| x * x).collect::<Vec<_>>());
        assert_eq!(
            p.job().chunksize(20).map(sqr, 0..100).unwrap(),
            (0..100).map(|x| x * x).collect::<Vec<_>>()
        );
        // PO03 / PO04
        let pairs: Vec<(i64, i64)> = (0..10).zip((0..10).rev()).collect();
        let want: Vec<i64> = pairs.iter().map(|(a, b)| a * b).collect();
        assert_eq!(p.starmap(mul, pairs.clone()).unwrap(), want);
        assert_eq!(p.starmap_async(mul, pairs).unwrap().get().unwrap(), want);
        // PO05
        assert_eq!(p.map_async(sqr, 0..10).unwrap().get().unwrap(), p.map(sqr, 0..10).unwrap());
        // PO12 / PO14
        let v: Vec<i64> = p.imap(sqr, 0..10).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(v, (0..10).map(|x| x * x).collect::<Vec<_>>());
        let v: Vec<i64> =
            p.job().chunksize(100).imap(sqr, 0..1000).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(v, (0..1000).map(|x| x * x).collect::<Vec<_>>());
        let mut v: Vec<i64> = p
            .job()
            .chunksize(100)
            .imap_unordered(sqr, 0..1000)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        v.sort();
        assert_eq!(v, (0..1000).map(|x| x * x).collect::<Vec<_>>());
        p.close();
        p.join_timeout(Duration::from_secs(10)).unwrap();
        assert!(p.worker_pids().is_empty());
    });
}

#[test]
fn async_results_callbacks_and_timeouts() {
    bounded(30, || {
        let p = pool(2, StartMethod::Fork);
        // PO10
        let t = Instant::now();
        assert_eq!(p.apply_async(sqr_slow, (7, 100)).unwrap().get().unwrap(), 49);
        assert!(t.elapsed() >= Duration::from_millis(100));
        // PO06 / PO26
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s1, s2) = (seen.clone(), seen.clone());
        let r = p
            .map_async(parse, vec!["1".to_string()])
            .unwrap()
            .callback(move |v| s1.lock().unwrap().push(format!("ok {v:?}")))
            .error_callback(move |e| s2.lock().unwrap().push(format!("err {:?}", e.kind())));
        r.wait();
        let (s1, s2) = (seen.clone(), seen.clone());
        let mut r = p
            .map_async(parse, vec!["a".to_string()])
            .unwrap()
            .callback(move |v| s1.lock().unwrap().push(format!("ok {v:?}")))
            .error_callback(move |e| s2.lock().unwrap().push(format!("err {:?}", e.kind())));
        r.wait_timeout(Duration::from_secs(5)).unwrap();
        // PO35: ready and not successful after an error.
        assert!(r.ready());
        assert!(!r.successful().unwrap());
        let e = r.get_timeout(Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked);
        let msg = e.panic_message().unwrap();
        assert!(
            msg.contains("not a number") && msg.contains("(at ") && msg.contains("tests/pool.rs:"),
            "{e}"
        );
        assert_eq!(*seen.lock().unwrap(), vec!["ok [1]".to_string(), "err Panicked".to_string()]);
        // PO35: successful() before ready is an error.
        let mut slow = p.apply_async(sleep_ms, 300).unwrap();
        assert_eq!(slow.successful().unwrap_err().kind(), ErrorKind::InvalidArgument);
        // PO11: a wait that times out leaves the task going.
        let t = Instant::now();
        assert_eq!(
            slow.get_timeout(Duration::from_millis(100)).unwrap_err().kind(),
            ErrorKind::Timeout
        );
        assert!(t.elapsed() >= Duration::from_millis(100) && t.elapsed() < Duration::from_secs(5));
        assert_eq!(slow.get_timeout(Duration::from_secs(5)).unwrap(), 300);
        // PO08 / PO18: empty inputs.
        assert!(p
            .map_async(sqr, Vec::new())
            .unwrap()
            .get_timeout(Duration::from_millis(100))
            .unwrap()
            .is_empty());
        assert!(p.map(sqr, Vec::new()).unwrap().is_empty());
        assert_eq!(p.imap(sqr, Vec::new()).unwrap().count(), 0);
        assert_eq!(p.imap_unordered(sqr, Vec::new()).unwrap().count(), 0);
    });
}

#[test]
fn terminate_is_prompt_and_stops_the_pool() {
    bounded(30, || {
        // PO17: 10,000 tasks sleeping for a long time; terminate returns at once.
        let p = pool(3, StartMethod::Fork);
        let r = p.job().chunksize(1).map_async(sleep_ms, vec![300_000u64; 10_000]).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let t = Instant::now();
        p.terminate();
        p.join_timeout(Duration::from_secs(5)).unwrap();
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(r.get().unwrap_err().kind(), ErrorKind::Terminated);
        // PO19 / PO23 / PO35: a stopped pool refuses work.
        assert_eq!(p.map(sqr, 0..3).unwrap_err().kind(), ErrorKind::NotRunning);
        assert_eq!(p.apply_async(sqr, 1).unwrap_err().kind(), ErrorKind::NotRunning);
        let p = pool(1, StartMethod::Fork);
        // PO35: join before close.
        assert_eq!(p.join().unwrap_err().kind(), ErrorKind::StillRunning);
        p.close();
        assert_eq!(p.apply_async(sqr, 1).unwrap_err().kind(), ErrorKind::NotRunning);
        p.join_timeout(Duration::from_secs(5)).unwrap();
    });
}

#[test]
fn bad_sizes_are_errors() {
    // PO16 / PO30
    assert_eq!(
        Pool::builder().processes(0).build().unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let e = Pool::builder().processes(1).max_tasks_per_child(0).build().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    bounded(20, || {
        let p = pool(3, StartMethod::Fork);
        assert_eq!(p.processes(), 3);
        assert_eq!(p.worker_pids().len(), 3);
        assert_eq!(
            p.job().chunksize(0).map(sqr, 0..3).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    });
}

fn make_unser(x: u8) -> Unserialisable {
    Unserialisable(x)
}

#[test]
fn serialisation_errors_fail_their_item_and_keep_the_pool() {
    bounded(30, || {
        let p = pool(2, StartMethod::Forkserver);
        // PO07: an argument that cannot be serialised.
        let e = p.map(take_unser, vec![Unserialisable(1)]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Codec);
        // PO27: a result that cannot be serialised, 20 times; no worker lost.
        let pids = p.worker_pids();
        for _ in 0..20 {
            let e = p.apply(make_unser, 1).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Codec);
        }
        assert_eq!(p.worker_pids(), pids);
        assert_eq!(p.apply(sqr, 3).unwrap(), 9);
    });
}

fn boom(x: i64) -> i64 {
    if x % 2 == 1 {
        std::thread::sleep(Duration::from_millis(300));
        panic!("{}", "x".repeat(1 << 20));
    }
    x
}

#[test]
fn no_fail_fast_and_large_errors() {
    // PO22: both failing tasks run; a 1 MiB panic message comes back whole.
    bounded(30, || {
        let p = pool(2, StartMethod::Fork);
        let t = Instant::now();
        let e = p.job().chunksize(1).map(boom, vec![1, 3]).unwrap_err();
        assert!(t.elapsed() >= Duration::from_millis(290));
        assert_eq!(e.kind(), ErrorKind::Panicked);
        assert!(e.panic_message().unwrap().len() >= 1 << 20);
        // PO35: imap raises at the failing position and goes on.
        let v: Vec<_> = p.job().chunksize(1).imap(boom, vec![0, 1, 2]).unwrap().collect();
        assert_eq!(v[0].as_ref().unwrap(), &0);
        assert_eq!(v[1].as_ref().unwrap_err().kind(), ErrorKind::Panicked);
        assert_eq!(v[2].as_ref().unwrap(), &2);
        p.close();
        p.join_timeout(Duration::from_secs(5)).unwrap();
    });
}

#[test]
fn max_tasks_per_child_replaces_workers() {
    each_method(60, [StartMethod::Fork, StartMethod::Forkserver], |m| {
        // PO28
        let p = builder(3, m).max_tasks_per_child(10).build().unwrap();
        let first = p.worker_pids();
        let rs: Vec<_> = (0..100).map(|i| p.apply_async(sqr, i).unwrap()).collect();
        for (i, r) in rs.into_iter().enumerate() {
            assert_eq!(r.get().unwrap(), (i * i) as i64);
        }
        let mut pids: Vec<u32> = p.job().chunksize(1).map(pid, 0..30).unwrap();
        pids.sort();
        pids.dedup();
        assert!(pids.iter().all(|p| !first.contains(p)), "workers were recycled");
        assert!(p.insights().iter().map(|w| w.restarts).sum::<u64>() >= 9);
        // PO29: close at once with tasks queued.
        let p = builder(3, m).max_tasks_per_child(1).build().unwrap();
        let rs: Vec<_> = (0..6).map(|i| p.apply_async(sqr_slow, (i, 50)).unwrap()).collect();
        p.close();
        p.join_timeout(Duration::from_secs(10)).unwrap();
        for (i, r) in rs.into_iter().enumerate() {
            assert_eq!(r.get().unwrap(), (i * i) as i64);
        }
    });
}

static INIT_CALLS: AtomicUsize = AtomicUsize::new(0);

fn init_worker() {
    INIT_CALLS.fetch_add(1, Ordering::SeqCst);
}

fn init_calls(_: ()) -> usize {
    INIT_CALLS.load(Ordering::SeqCst)
}

struct Model {
    pid: u32,
    loads: u32,
    calls: u32,
}

fn load_model() -> Model {
    Model { pid: std::process::id(), loads: 1, calls: 0 }
}

fn predict(m: &mut Model, x: u32) -> (u32, u32, u32, u32) {
    m.calls += 1;
    (m.pid, m.loads, m.calls, x * 2)
}

#[test]
fn initializer_and_worker_state() {
    each_method(60, METHODS, |m| {
        // PO32: the initializer runs once in each worker.
        let p = builder(1, m).initializer(init_worker).build().unwrap();
        assert_eq!(p.apply(init_calls, ()).unwrap(), 1);
        assert_eq!(p.apply(init_calls, ()).unwrap(), 1);
        // Worker state: built once per worker, kept across tasks.
        let p = builder(2, m).worker_state(load_model).build().unwrap();
        let out = p.job().chunksize(1).map(predict, 0..40u32).unwrap();
        assert_eq!(
            out.iter().map(|o| o.3).collect::<Vec<_>>(),
            (0..40).map(|x| x * 2).collect::<Vec<_>>()
        );
        assert!(out.iter().all(|o| o.1 == 1), "the state was built once");
        let mut by_pid = std::collections::HashMap::<u32, u32>::new();
        for o in &out {
            let e = by_pid.entry(o.0).or_default();
            *e = (*e).max(o.2);
        }
        assert_eq!(by_pid.values().sum::<u32>(), 40, "calls counted per worker state");
        // Plain tasks run on a stateful pool too.
        assert_eq!(p.apply(sqr, 4).unwrap(), 16);
    });
}

#[test]
fn closures_under_fork_only() {
    bounded(30, || {
        let k = 7i64;
        let table: Vec<i64> = (0..100).collect();
        let p = pool(2, StartMethod::Fork);
        let f = move |i: usize| table[i] * k;
        assert_eq!(p.map(f, 0..10usize).unwrap(), (0..10).map(|i| i * 7).collect::<Vec<_>>());
        let g = move |x: i64| x + k;
        assert_eq!(p.apply(g, 1).unwrap(), 8);
        // A second closure after the workers started: they are replaced, results still right.
        let h = move |x: i64| x - k;
        assert_eq!(p.map(h, 0..4).unwrap(), vec![-7, -6, -5, -4]);
        let p = pool(1, StartMethod::Spawn);
        let e = p.apply(move |x: i64| x + k, 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        // A closure without captures travels by name.
        assert_eq!(p.apply(|x: i64| x + 1, 1).unwrap(), 2);
    });
}

#[test]
fn imap_is_lazy_and_bounded() {
    bounded(30, || {
        let p = pool(2, StartMethod::Fork);
        let pulled = Arc::new(AtomicUsize::new(0));
        let c = pulled.clone();
        let endless = (0i64..).inspect(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        });
        let v: Vec<i64> = p.imap(sqr, endless).unwrap().take(100).map(|r| r.unwrap()).collect();
        assert_eq!(v, (0..100).map(|x| x * x).collect::<Vec<_>>());
        let n = pulled.load(Ordering::SeqCst);
        assert!(n < 10_000, "read {n} items ahead");
    });
}

#[test]
fn progress_and_insights() {
    bounded(30, || {
        let p = pool(2, StartMethod::Fork);
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c = calls.clone();
        let v = p
            .job()
            .chunksize(5)
            .progress(move |done, total| c.lock().unwrap().push((done, total)))
            .map(sqr, 0..100)
            .unwrap();
        assert_eq!(v.len(), 100);
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 100, "one call per item");
        let mut done: Vec<usize> = calls.iter().map(|c| c.0).collect();
        done.sort();
        assert_eq!(done, (1..=100).collect::<Vec<_>>());
        assert!(calls.iter().all(|(_, t)| *t == Some(100)));
        let ins = p.insights();
        assert_eq!(ins.len(), 2);
        assert_eq!(ins.iter().map(|w| w.items).sum::<u64>(), 100);
        assert_eq!(ins.iter().map(|w| w.tasks).sum::<u64>(), 20);
        assert!(ins.iter().all(|w| w.pid != 0 && w.waiting > Duration::ZERO));
    });
}

#[test]
fn panicking_input_iterator_leaves_the_pool_usable() {
    bounded(30, || {
        let p = pool(2, StartMethod::Fork);
        for _ in 0..3 {
            let it = (0..10i64).map(|x| if x == 3 { panic!("input broke") } else { x });
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = p.job().chunksize(1).imap(sqr, it).unwrap().count();
            }));
            assert!(r.is_err());
            assert_eq!(p.map(sqr, 0..5).unwrap(), vec![0, 1, 4, 9, 16]);
        }
    });
}

#[cfg(feature = "progress")]
#[test]
fn progress_bar_feature() {
    bounded(30, || {
        let p = pool(2, StartMethod::Fork);
        let v = p.job().progress_bar().map(sqr, 0..1000).unwrap();
        assert_eq!(v.len(), 1000);
        let v: Vec<_> = p.job().progress_bar().imap(sqr, 0..100).unwrap().collect();
        assert_eq!(v.len(), 100);
    });
}

static CONFIGURED: AtomicUsize = AtomicUsize::new(0);

fn configure(n: usize) {
    CONFIGURED.store(n, Ordering::SeqCst);
}

fn configured(_: ()) -> usize {
    CONFIGURED.load(Ordering::SeqCst)
}

struct Scaler(i64);

fn make_scaler(factor: i64) -> Scaler {
    Scaler(factor)
}

fn scale(s: &mut Scaler, x: i64) -> i64 {
    s.0 * x
}

#[test]
fn initializer_and_state_with_arguments() {
    each_method(60, METHODS, |m| {
        let p = builder(2, m).initializer_with(configure, 17usize).build().unwrap();
        assert_eq!(p.apply(configured, ()).unwrap(), 17);
        let p = builder(2, m).worker_state_with(make_scaler, 3i64).build().unwrap();
        assert_eq!(p.map(scale, 0..5).unwrap(), vec![0, 3, 6, 9, 12]);
    });
}

/// The waits of a future and of an async result follow the convention: a wait that runs out
/// of time is an error whose `is_timeout()` is true, a look at an unfinished task one whose
/// `is_would_block()` is true; neither disturbs the task.
#[test]
fn waits_and_looks_fail_with_the_conventions_errors() {
    let p = pool(1, StartMethod::Fork);
    let r = p.apply_async(sqr_slow, (6, 400)).unwrap();
    let e = r.wait_timeout(Duration::from_millis(10)).unwrap_err();
    assert!(e.is_timeout() && e.kind() == ErrorKind::Timeout, "{e}");
    r.wait_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(r.get().unwrap(), 36);

    let ex = common::executor(1, StartMethod::Fork);
    let mut f = ex.submit(sqr_slow, (7, 400)).unwrap();
    let e = f.try_result().unwrap_err();
    assert!(e.is_would_block() && e.kind() == ErrorKind::NotReady, "{e}");
    let e = f.wait_timeout(Duration::from_millis(10)).unwrap_err();
    assert!(e.is_timeout(), "{e}");
    f.wait_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(f.try_result().unwrap(), 49);
    assert_eq!(f.try_result().unwrap_err().kind(), ErrorKind::AlreadyTaken);
    ex.shutdown(true, false);
    p.terminate();
}
