//! End-to-end tests of the cluster executor: private redis-server instances and worker
//! "hosts" (this binary re-run as a worker). They fail, never skip, without redis-server.

mod common;

use common::*;
use multiproc_arena::testing::block_on;
use multiproc_cluster::{as_completed, wait, ClusterExecutor, Executor, ReturnWhen, TaskOptions};
use multiproc_pool::ErrorKind as TaskErrorKind;
use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

/// Not a test of its own: the entry of a worker host (see `common::Host`). Without
/// MULTIPROC_CLUSTER_WORKER it returns at once.
#[test]
fn worker_host_entry() {
    multiproc_cluster::run_worker_if_requested();
}

fn square(x: u64) -> u64 {
    x * x
}

/// Appends `i` to the file at `path` (a record that it started), sleeps `ms`, returns 2i.
fn record_slow((path, i, ms): (String, u64, u64)) -> u64 {
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(&path).unwrap();
    f.write_all(format!("{i}\n").as_bytes()).unwrap();
    drop(f);
    std::thread::sleep(Duration::from_millis(ms));
    i * 2
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn crash_if(x: u32) -> u32 {
    if x == 7 {
        std::process::abort();
    }
    if x == 8 {
        panic!("eight is right out");
    }
    x + 1
}

fn connect(redis: &Redis, ns: &str) -> ClusterExecutor {
    ClusterExecutor::builder(&redis.url)
        .authkey(AUTHKEY)
        .namespace(ns)
        .chunksize(1000)
        .connect()
        .unwrap()
}

/// Every started item, counted.
fn runs(path: &str) -> HashMap<u64, usize> {
    let mut m = HashMap::new();
    for l in std::fs::read_to_string(path).unwrap_or_default().lines() {
        *m.entry(l.parse::<u64>().unwrap()).or_default() += 1;
    }
    m
}

#[test]
fn map_100k_over_three_hosts_in_order() {
    bounded(120, || {
        let redis = Redis::unix(false);
        let _hosts: Vec<Host> =
            ["alpha", "beta", "gamma"].iter().map(|n| Host::start(&redis, "m", n, 2)).collect();
        hosts_ready(&redis, "m", 3);
        let ex = connect(&redis, "m");
        let t = Instant::now();
        let it = ex.map(square, 0..100_000u64).unwrap();
        let it = it.with_deadline(Instant::now() + Duration::from_secs(90));
        let mut n = 0u64;
        for (i, r) in it.enumerate() {
            assert_eq!(r.unwrap(), (i as u64) * (i as u64), "item {i}");
            n += 1;
        }
        assert_eq!(n, 100_000);
        let ins = ex.insights();
        eprintln!("100,000 tasks (chunks of 1,000) over 3 hosts in {:?}: {ins:?}", t.elapsed());
        assert_eq!(ins.iter().map(|h| h.items).sum::<u64>(), 100_000);
        assert_eq!(ins.iter().map(|h| h.tasks).sum::<u64>(), 100);
        assert_eq!(ins.len(), 3, "every host took part: {ins:?}");
        // submit, as_completed, wait and .await on the same executor.
        let futs: Vec<_> = (0..20u64).map(|i| ex.submit(square, i).unwrap()).collect();
        let mut got: Vec<u64> = as_completed(futs).map(|f| f.unwrap().result().unwrap()).collect();
        got.sort();
        assert_eq!(got, (0..20u64).map(|i| i * i).collect::<Vec<_>>());
        let futs: Vec<_> = (0..5u64).map(|i| ex.submit(square, i).unwrap()).collect();
        let w = wait(futs, ReturnWhen::AllCompleted, Some(Duration::from_secs(20)));
        assert_eq!((w.done.len(), w.not_done.len()), (5, 0));
        let fut = ex.submit(square, 12u64).unwrap();
        assert_eq!(block_on(fut, Duration::from_secs(20)).unwrap(), 144);
        // Progress across hosts.
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let it = ex
            .job()
            .chunksize(10)
            .progress(move |done, total| s2.lock().unwrap().push((done, total)))
            .map(square, 0..100u64)
            .unwrap();
        assert_eq!(it.map(|r| r.unwrap()).sum::<u64>(), (0..100u64).map(|i| i * i).sum());
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 100);
        assert_eq!(seen.iter().map(|p| p.0).max(), Some(100));
        assert!(seen.iter().all(|p| p.1 == Some(100)));
        ex.shutdown(true, false);
        assert!(matches!(ex.submit(square, 1u64), Err(e) if e.kind() == TaskErrorKind::NotRunning));
        // The executor left nothing: its heartbeat and result stream are gone, tasks deleted.
        let mut con = redis.con();
        let left: Vec<String> =
            keys(&mut con, "m").into_iter().filter(|k| !k.starts_with("m:worker:")).collect();
        assert_eq!(left, ["m:tasks"]);
        let xlen: u64 = redis::cmd("XLEN").arg("m:tasks").query(&mut con).unwrap();
        assert_eq!(xlen, 0);
    });
}

#[test]
fn tcp_with_acl_user_in_the_url_and_task_faults() {
    bounded(60, || {
        let redis = Redis::tcp_acl();
        let _h = Host::start(&redis, "t", "solo", 2);
        let ex = connect(&redis, "t");
        // A crashing task (abort) fails only itself, naming the host; a panic only itself.
        let outs: Vec<_> = ex.map_chunked(crash_if, 0..12u32, 1).unwrap().collect();
        for (i, r) in outs.into_iter().enumerate() {
            match i {
                7 => {
                    let e = r.unwrap_err();
                    assert_eq!(e.kind(), TaskErrorKind::WorkerDied, "{e}");
                    assert!(
                        e.to_string().contains("solo") && e.to_string().contains("SIGABRT"),
                        "{e}"
                    );
                }
                8 => {
                    let e = r.unwrap_err();
                    assert_eq!(e.kind(), TaskErrorKind::Panicked);
                    assert!(e.to_string().contains("eight is right out"), "{e}");
                }
                _ => assert_eq!(r.unwrap(), i as u32 + 1),
            }
        }
        // Through the `Executor` trait, `map_chunked` is the cluster's own: the crash at 7
        // fails its whole chunk (4..8), not 7 alone.
        let outs: Vec<_> =
            Executor::map_chunked(&ex, crash_if, (0..8u32).chain(9..12), 4).unwrap().collect();
        for (i, r) in outs.into_iter().enumerate() {
            if (4..8).contains(&i) {
                assert_eq!(r.unwrap_err().kind(), TaskErrorKind::WorkerDied, "item {i}");
            } else {
                assert!(r.is_ok(), "item {i}: {r:?}");
            }
        }
        // A per-task timeout kills the worker process that runs the task.
        let t = Instant::now();
        let mut f = ex
            .submit_with(
                TaskOptions::default().timeout(Duration::from_millis(300)),
                sleep_ms,
                20_000,
            )
            .unwrap();
        let e = f.result_timeout(Duration::from_secs(20)).unwrap_err();
        assert_eq!(e.kind(), TaskErrorKind::TaskTimedOut, "{e}");
        assert!(t.elapsed() < Duration::from_secs(10));
        assert_eq!(ex.submit(sleep_ms, 1).unwrap().result().unwrap(), 1);
        // Wrong password: a clear connection error.
        let bad = redis.url.replace("wonderland", "looking-glass");
        let e = ClusterExecutor::builder(bad).authkey(AUTHKEY).connect().unwrap_err();
        assert!(!e.to_string().contains("looking-glass"), "the password is not printed: {e}");
        // shutdown with cancel_futures: what has not run is cancelled.
        let futs: Vec<_> = (0..50).map(|_| ex.submit(sleep_ms, 100).unwrap()).collect();
        ex.shutdown(true, true);
        let cancelled = futs.iter().filter(|f| f.cancelled()).count();
        assert!(cancelled > 30, "only {cancelled} of 50 cancelled");
    });
}

/// Kills one of three hosts in the middle of a map; returns (outcomes, runs, victim name).
fn kill_mid_map(
    retries: u32,
) -> (Vec<Result<u64, multiproc_pool::Error>>, HashMap<u64, usize>, String) {
    let redis = Redis::unix(false);
    let mut hosts: Vec<Host> =
        ["h1", "h2", "h3"].iter().map(|n| Host::start(&redis, "k", n, 2)).collect();
    hosts_ready(&redis, "k", 3);
    let ex = connect(&redis, "k");
    let path = redis.dir.0.join("runs.txt").display().to_string();
    let items: Vec<(String, u64, u64)> = (0..240u64).map(|i| (path.clone(), i, 25)).collect();
    let it = ex
        .map_opts(TaskOptions::default().retries(retries), record_slow, items, 1)
        .unwrap()
        .with_deadline(Instant::now() + Duration::from_secs(60));
    eventually(20, "the map to be under way", || runs(&path).len() > 40);
    let victim = hosts.remove(1);
    let name = victim.name.clone();
    drop(victim); // SIGKILL to the host and its pool
    let outs: Vec<_> = it.collect();
    // The dead host leaves the group once it holds nothing.
    let mut con = redis.con();
    eventually(10, "the dead host to leave the consumer group", || {
        let v: Vec<redis::Value> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg("k:tasks")
            .arg("workers")
            .query(&mut con)
            .unwrap();
        v.len() == 2
    });
    (outs, runs(&path), name)
}

#[test]
fn killed_host_fails_only_its_tasks_and_nothing_runs_twice() {
    bounded(90, || {
        let (outs, runs, victim) = kill_mid_map(0);
        assert_eq!(outs.len(), 240, "nothing lost");
        let mut died = 0;
        for (i, r) in outs.iter().enumerate() {
            match r {
                Ok(v) => {
                    assert_eq!(*v, 2 * i as u64);
                    assert_eq!(runs.get(&(i as u64)), Some(&1), "item {i} ran once");
                }
                Err(e) => {
                    assert_eq!(e.kind(), TaskErrorKind::WorkerDied, "{e}");
                    assert!(e.to_string().contains(&victim), "names the host: {e}");
                    assert!(runs.get(&(i as u64)).copied().unwrap_or(0) <= 1, "item {i} ran twice");
                    died += 1;
                }
            }
        }
        // The host held at most 2 processes x 2 tasks.
        assert!((1..=4).contains(&died), "{died} tasks failed");
        assert!(runs.values().all(|&n| n == 1), "no item ran twice: {runs:?}");
    });
}

#[test]
fn killed_host_with_retries_loses_nothing() {
    bounded(90, || {
        let (outs, runs, _) = kill_mid_map(2);
        assert_eq!(outs.len(), 240);
        for (i, r) in outs.iter().enumerate() {
            assert_eq!(*r.as_ref().unwrap(), 2 * i as u64, "item {i}");
        }
        let twice = runs.values().filter(|&&n| n > 1).count();
        assert!(twice <= 4, "only the dead host's tasks ran again ({twice})");
    });
}

#[test]
fn killed_client_leaves_nothing_behind() {
    bounded(60, || {
        let redis = Redis::unix(false);
        let _hosts: Vec<Host> =
            ["c1", "c2"].iter().map(|n| Host::start(&redis, "c", n, 2)).collect();
        let mut client = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "client_entry", "--nocapture", "--test-threads=1"])
            .env("CLUSTER_TEST_CLIENT", &redis.url)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut con = redis.con();
        eventually(20, "the client's tasks", || {
            keys(&mut con, "c").iter().any(|k| k.starts_with("c:results:"))
        });
        client.kill().unwrap();
        client.wait().unwrap();
        // TTL 1 s: the heartbeat and result stream expire, the queued tasks are dropped.
        eventually(20, "the client's keys to expire and its tasks to go", || {
            let left: Vec<String> =
                keys(&mut con, "c").into_iter().filter(|k| !k.starts_with("c:worker:")).collect();
            let xlen: u64 = redis::cmd("XLEN").arg("c:tasks").query(&mut con).unwrap();
            let pending: (u64, redis::Value, redis::Value, redis::Value) =
                redis::cmd("XPENDING").arg("c:tasks").arg("workers").query(&mut con).unwrap();
            left == ["c:tasks"] && xlen == 0 && pending.0 == 0
        });
    });
}

/// The client of `killed_client_leaves_nothing_behind` (returns at once otherwise).
#[test]
fn client_entry() {
    let Ok(url) = std::env::var("CLUSTER_TEST_CLIENT") else { return };
    let ex = ClusterExecutor::builder(url)
        .authkey(AUTHKEY)
        .namespace("c")
        .ttl(Duration::from_secs(1))
        .connect()
        .unwrap();
    let futs: Vec<_> = (0..400).map(|_| ex.submit(sleep_ms, 50).unwrap()).collect();
    std::thread::sleep(Duration::from_secs(60));
    drop(futs);
}

#[test]
fn redis_restart_with_aof_during_a_run() {
    bounded(90, || {
        let mut redis = Redis::unix(true);
        let hosts: Vec<Host> =
            ["r1", "r2"].iter().map(|n| Host::start(&redis, "r", n, 2)).collect();
        hosts_ready(&redis, "r", 2);
        let ex = connect(&redis, "r");
        let it = ex
            .map_chunked(sleep_ms, std::iter::repeat(2u64).take(3000), 10)
            .unwrap()
            .with_deadline(Instant::now() + Duration::from_secs(75));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let d2 = done.clone();
        let collector = std::thread::spawn(move || {
            let mut v = Vec::new();
            for r in it {
                v.push(r);
                d2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            v
        });
        eventually(30, "a third of the run", || {
            done.load(std::sync::atomic::Ordering::SeqCst) > 1000
        });
        redis.kill(); // SIGKILL mid-run
        std::thread::sleep(Duration::from_millis(300));
        redis.start(); // same socket, same AOF
        let outs = collector.join().unwrap();
        for h in &hosts {
            for l in h.log_text().lines().filter(|l| l.contains("took up") || l.contains("is gone"))
            {
                eprintln!("{}: {l}", h.name);
            }
        }
        assert_eq!(outs.len(), 3000, "{:?}", outs.last());
        for (i, r) in outs.iter().enumerate() {
            assert_eq!(*r.as_ref().unwrap_or_else(|e| panic!("item {i}: {e}")), 2);
        }
    });
}

#[test]
fn forged_tasks_are_rejected_and_logged() {
    bounded(60, || {
        let redis = Redis::unix(false);
        let host = Host::start(&redis, "f", "guard", 1);
        let ex = connect(&redis, "f");
        assert_eq!(ex.submit(square, 3u64).unwrap().result().unwrap(), 9);
        let mut con = redis.con();
        // No signature at all; a signature under another key; garbage.
        let _: String = redis::cmd("XADD")
            .arg("f:tasks")
            .arg("*")
            .arg("m")
            .arg("run me")
            .query(&mut con)
            .unwrap();
        let _: String = redis::cmd("XADD")
            .arg("f:tasks")
            .arg("*")
            .arg("m")
            .arg(b"\x01\x02".as_slice())
            .arg("s")
            .arg([0u8; 32].as_slice())
            .query(&mut con)
            .unwrap();
        // A real task of a client with another key.
        let other = ClusterExecutor::builder(&redis.url)
            .authkey("not the key")
            .namespace("f")
            .connect()
            .unwrap();
        let mut fut = other.submit(square, 4u64).unwrap();
        eventually(20, "three rejections in the log", || {
            let n: u64 = redis::cmd("LLEN").arg("f:rejected").query(&mut con).unwrap();
            n == 3
        });
        let log = host.log_text();
        assert_eq!(log.matches("rejected task entry").count(), 3, "{log}");
        assert!(log.contains("bad signature"), "{log}");
        assert!(
            fut.result_timeout(Duration::from_millis(300)).unwrap_err().is_timeout(),
            "never run"
        );
        other.shutdown(false, true);
        let xlen: u64 = redis::cmd("XLEN").arg("f:tasks").query(&mut con).unwrap();
        assert_eq!(xlen, 0, "rejected entries are removed");
        assert_eq!(ex.submit(square, 5u64).unwrap().result().unwrap(), 25, "the host goes on");
    });
}

#[test]
fn setup_errors_are_clear() {
    let e = ClusterExecutor::builder("redis+unix:///nonexistent/socket")
        .authkey("k")
        .connect()
        .unwrap_err();
    assert_eq!(e.kind(), multiproc_cluster::ErrorKind::Redis);
    if std::env::var_os(multiproc_cluster::AUTHKEY_ENV).is_none() {
        let e = ClusterExecutor::builder("redis://127.0.0.1:1").connect().unwrap_err();
        assert!(e.to_string().contains("authkey"), "{e}");
    }
    let e = ClusterExecutor::builder("redis://127.0.0.1:1")
        .authkey("k")
        .chunksize(0)
        .connect()
        .unwrap_err();
    assert_eq!(e.kind(), multiproc_cluster::ErrorKind::InvalidArgument);
}

/// `rediss://` (cargo feature `tls-insecure`, for the self-signed test certificate;
/// `.ci/run` runs it).
#[cfg(feature = "tls-insecure")]
#[test]
fn tls_url() {
    bounded(60, || {
        let redis = Redis::tls();
        let _h = Host::start(&redis, "s", "tls-host", 1);
        let ex = connect(&redis, "s");
        let got: Vec<u64> = ex.map(square, 0..2000u64).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(got, (0..2000u64).map(|i| i * i).collect::<Vec<_>>());
    });
}
