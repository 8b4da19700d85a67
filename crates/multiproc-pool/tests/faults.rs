//! Faults for real: workers killed at random during a long map, crashing and panicking
//! tasks, late tasks, failing initializers, recycled workers, and no leaked descriptors.

mod common;
mod sys;

use common::{bounded, builder, each_method, executor, pool, METHODS};
use multiproc_arena::Array;
use multiproc_pool::{ErrorKind, Executor, Pool, Signal, StartMethod};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

fn spin_us(us: u64) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_micros(us) {
        std::hint::spin_loop();
    }
}

fn twice(x: u64) -> u64 {
    spin_us(100);
    x * 2
}

/// Kills a random worker of `pool` every `every` until `stop`; returns the number killed.
fn killer(pool: &Pool, stop: &AtomicBool, every: Duration) -> usize {
    let mut seed = 0x2545_f491_4f6c_dd1du64 ^ std::process::id() as u64;
    let mut kills = 0;
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(every);
        let pids = pool.worker_pids();
        if pids.is_empty() {
            continue;
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        if sys::kill(pids[(seed % pids.len() as u64) as usize], libc::SIGKILL) {
            kills += 1;
        }
    }
    kills
}

/// `n` completion counters in shared memory, all 0: the test's handle and the tasks' one.
fn counters(n: usize) -> (Array<AtomicU32>, Array<AtomicU32>) {
    let done = Array::from_fn(n, |_| AtomicU32::new(0)).unwrap();
    (done.clone(), done)
}

#[test]
fn random_kills_during_a_10000_task_map() {
    bounded(120, || {
        const N: usize = 10_000;
        // Completion counters in shared memory: a task bumps its own as its last act.
        let (done, counters) = counters(N);
        let pool = pool(2, StartMethod::Fork);
        let task = move |i: usize| {
            spin_us(100);
            counters[i].fetch_add(1, Ordering::SeqCst);
            i * 2
        };
        let stop = AtomicBool::new(false);
        let (results, kills) = std::thread::scope(|s| {
            let k = s.spawn(|| killer(&pool, &stop, Duration::from_millis(3)));
            let results: Vec<_> = pool.job().chunksize(1).imap(task, 0..N).unwrap().collect();
            stop.store(true, Ordering::SeqCst);
            (results, k.join().unwrap())
        });
        assert_eq!(results.len(), N, "none lost");
        let mut died = 0;
        for (i, r) in results.iter().enumerate() {
            let runs = done[i].load(Ordering::SeqCst);
            assert!(runs <= 1, "task {i} ran to completion {runs} times");
            match r {
                Ok(v) => {
                    assert_eq!(*v, i * 2);
                    assert_eq!(runs, 1, "task {i} succeeded, so it completed once");
                }
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::WorkerDied, "task {i}: {e}");
                    assert_eq!(e.signal(), Some(Signal::KILL), "{e}");
                    assert!(e.to_string().contains("SIGKILL"), "{e}");
                    died += 1;
                }
            }
        }
        assert!(kills > 10, "only {kills} kills");
        assert!(died <= kills, "{died} failures for {kills} kills");
        // The pool is still usable, with a full set of workers.
        assert_eq!(
            pool.map(twice, 0..100u64).unwrap(),
            (0..100).map(|x| x * 2).collect::<Vec<_>>()
        );
        assert_eq!(pool.worker_pids().len(), 2);
        eprintln!("{kills} kills, {died} tasks failed with their worker");
    });
}

#[test]
fn random_kills_under_forkserver_and_spawn() {
    each_method(120, [StartMethod::Forkserver, StartMethod::Spawn], |m| {
        let pool = pool(2, m);
        let stop = AtomicBool::new(false);
        let (results, kills) = std::thread::scope(|s| {
            let k = s.spawn(|| killer(&pool, &stop, Duration::from_millis(5)));
            let results: Vec<_> =
                pool.job().chunksize(1).imap(twice, 0..3000u64).unwrap().collect();
            stop.store(true, Ordering::SeqCst);
            (results, k.join().unwrap())
        });
        assert_eq!(results.len(), 3000);
        let mut died = 0;
        for (i, r) in results.iter().enumerate() {
            match r {
                Ok(v) => assert_eq!(*v, i as u64 * 2),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::WorkerDied, "{m:?}: {e}");
                    died += 1;
                }
            }
        }
        assert!(died <= kills, "{m:?}: {died} failures for {kills} kills");
        assert_eq!(pool.apply(twice, 21).unwrap(), 42);
    });
}

fn crash(kind: u32) -> u32 {
    match kind {
        1 => std::process::abort(),
        2 => {
            sys::segfault();
            0
        }
        3 => sys::exit_now(99),
        4 => panic!("task {kind} panics"),
        _ => {
            std::thread::sleep(Duration::from_millis(2));
            kind
        }
    }
}

#[test]
fn crashing_tasks_fail_alone() {
    each_method(60, METHODS, |m| {
        let pool = pool(2, m);
        let kinds: Vec<u32> =
            (0..40).map(|i| if i % 10 == 5 { (i / 10) + 1 } else { 10 + i }).collect();
        let out: Vec<_> = pool.job().chunksize(1).imap(crash, kinds.clone()).unwrap().collect();
        for (k, r) in kinds.iter().zip(&out) {
            match k {
                1 | 2 => {
                    let e = r.as_ref().unwrap_err();
                    let sig = if *k == 1 { libc::SIGABRT } else { libc::SIGSEGV };
                    assert_eq!(
                        (e.kind(), e.signal()),
                        (ErrorKind::WorkerDied, Some(Signal(sig))),
                        "{e}"
                    );
                    if *k == 2 {
                        assert!(e.to_string().contains("SIGSEGV"));
                    }
                }
                3 => {
                    let e = r.as_ref().unwrap_err();
                    assert_eq!((e.kind(), e.exit_code()), (ErrorKind::WorkerDied, Some(99)), "{e}");
                    assert!(e.to_string().contains("exit code 99"));
                }
                4 => {
                    let e = r.as_ref().unwrap_err();
                    assert_eq!(e.kind(), ErrorKind::Panicked);
                    let msg = e.panic_message().unwrap();
                    assert!(
                        msg.contains("task 4 panics (at ") && msg.contains("tests/faults.rs:"),
                        "{msg}"
                    );
                }
                k => assert_eq!(r.as_ref().unwrap(), k),
            }
        }
        assert_eq!(pool.worker_pids().len(), 2);
    });
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn late_tasks_are_killed_and_replaced() {
    each_method(60, [StartMethod::Fork, StartMethod::Forkserver], |m| {
        let pool = builder(2, m)
            // Generous: on a loaded machine a 5 ms task may take far longer in wall time.
            .task_timeout(Duration::from_millis(1000))
            .build()
            .unwrap();
        let before = pool.worker_pids();
        let t = Instant::now();
        let mut late = pool.apply_async(sleep_ms, 30_000).unwrap();
        let quick: Vec<_> = (0..20).map(|_| pool.apply_async(sleep_ms, 5).unwrap()).collect();
        let e = late.get_timeout(Duration::from_secs(10)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TaskTimedOut, "{e}");
        assert!(t.elapsed() >= Duration::from_millis(1000) && t.elapsed() < Duration::from_secs(8));
        for mut q in quick {
            let r = q.get_timeout(Duration::from_secs(10));
            assert_eq!(r.unwrap_or_else(|e| panic!("a quick task failed: {e:?}")), 5);
        }
        assert_eq!(pool.apply(sleep_ms, 1).unwrap(), 1);
        let after = pool.worker_pids();
        assert_eq!(after.len(), 2);
        assert!(after.iter().any(|p| !before.contains(p)), "the late task's worker was replaced");
    });
}

fn bad_init() {
    panic!("cannot load the model");
}

fn ok(x: u32) -> u32 {
    x
}

#[test]
fn failing_initializer_is_an_error_not_a_hang() {
    bounded(60, || {
        for m in METHODS {
            let pool = builder(2, m).initializer(bad_init).build().unwrap();
            let e = pool.map(ok, 0..10).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Initializer, "{e}");
            assert!(e.to_string().contains("cannot load the model"), "{e}");
            assert_eq!(pool.apply_async(ok, 1).unwrap_err().kind(), ErrorKind::Initializer);
        }
        // A crashing initializer (not a panic) too.
        let pool =
            builder(1, StartMethod::Fork).initializer(|| std::process::abort()).build().unwrap();
        let e = pool.map(ok, 0..10).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Initializer, "{e}");
        assert!(e.to_string().contains("SIGABRT"), "{e}");
    });
}

#[test]
fn max_tasks_per_child_loses_and_duplicates_nothing() {
    bounded(60, || {
        const N: usize = 1000;
        let (done, c) = counters(N);
        let pool = builder(2, StartMethod::Fork).max_tasks_per_child(7).build().unwrap();
        let out = pool
            .job()
            .chunksize(1)
            .map(
                move |i: usize| {
                    c[i].fetch_add(1, Ordering::SeqCst);
                    (i, std::process::id())
                },
                0..N,
            )
            .unwrap();
        assert!(out.iter().enumerate().all(|(i, o)| o.0 == i));
        assert!((0..N).all(|i| done[i].load(Ordering::SeqCst) == 1));
        let mut per_pid = std::collections::HashMap::<u32, usize>::new();
        for o in &out {
            *per_pid.entry(o.1).or_default() += 1;
        }
        assert!(per_pid.values().all(|&n| n <= 7), "no worker ran more than its quota");
        assert!(per_pid.len() >= N / 7);
    });
}

fn mark_then_sleep(path: String) -> u64 {
    std::fs::write(&path, b"started").expect("marker file");
    sleep_ms(3000)
}

#[test]
fn executor_survives_a_killed_worker() {
    each_method(60, [StartMethod::Fork, StartMethod::Spawn], |m| {
        // PP13 / PP14 / PP15: only the running futures fail, each with its own error.
        let e = executor(2, m);
        let dir = std::env::temp_dir();
        let marks: Vec<String> = (0..2)
            .map(|i| {
                let p = dir.join(format!("multiproc-pool-test-{}-{m:?}-{i}", std::process::id()));
                let _ = std::fs::remove_file(&p);
                p.to_string_lossy().into_owned()
            })
            .collect();
        let mut a = e.submit(mark_then_sleep, marks[0].clone()).unwrap();
        let mut b = e.submit(mark_then_sleep, marks[1].clone()).unwrap();
        // Both tasks have started (on a loaded machine that may take a while).
        let t = Instant::now();
        while !marks.iter().all(|p| std::path::Path::new(p).exists()) {
            assert!(t.elapsed() < Duration::from_secs(20), "tasks did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        for p in &marks {
            let _ = std::fs::remove_file(p);
        }
        for pid in e.pool().worker_pids() {
            sys::kill(pid, libc::SIGTERM);
        }
        let ea = a.result_timeout(Duration::from_secs(5)).unwrap_err();
        let eb = b.result_timeout(Duration::from_secs(5)).unwrap_err();
        assert_eq!((ea.kind(), ea.signal()), (ErrorKind::WorkerDied, Some(Signal::TERM)));
        assert_eq!(eb.signal(), Some(Signal::TERM));
        assert_eq!(e.submit(sleep_ms, 1).unwrap().result().unwrap(), 1);
        let mut f = e.submit(|c: i32| -> u32 { sys::exit_now(c) }, 99).unwrap();
        let err = f.result_timeout(Duration::from_secs(10)).unwrap_err();
        assert!(err.to_string().contains("exit code 99"), "{err}");
        assert_eq!(e.submit(sleep_ms, 2).unwrap().result().unwrap(), 2);
    });
}
