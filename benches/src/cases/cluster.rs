//! `cluster.*`: the executor across hosts (multiproc-cluster), beside the local pool's
//! `pool.submit` and `pool.map_cs1` in the same run. Opt-in (cargo feature `cluster`:
//! `cargo xtask bench --cluster`), because it needs `redis-server`.
//!
//! Each figure starts a private redis-server on a Unix socket in a temp dir and one worker
//! host (this binary re-run with `MULTIPROC_CLUSTER_WORKER`) of 2 local processes, warms
//! them up, then times the work; the identity function, results checked. There is no
//! CPython counterpart.

use super::{us_per, Better, Case, Floor, Opts};
use multiproc_cluster::{ClusterExecutor, Executor};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "cluster.submit",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::None,
        rust: Some(submit),
        python: false,
        about: "submit + result, one task after another, 2,000 trivial tasks, 1 host of 2 \
                workers, Redis on a Unix socket",
    },
    Case {
        name: "cluster.map_cs1",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::None,
        rust: Some(map_cs1),
        python: false,
        about: "map of a trivial function over 20,000 items, chunksize 1, 1 host of 2 \
                workers: per task",
    },
];

const KEY: &str = "bench key";

fn identity(x: u64) -> u64 {
    x
}

/// Redis and one worker host; both killed on drop.
struct Cluster {
    dir: PathBuf,
    redis: Child,
    host: Child,
    url: String,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "mpbench-cluster-{}-{:x}",
            std::process::id(),
            multiproc_arena::random_u64()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let sock = dir.join("redis.sock");
        let redis = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--unixsocketperm", "700", "--unixsocket"])
            .arg(&sock)
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the cluster benchmarks need redis-server (apt-get install redis-server)");
        let url = format!("redis+unix://{}", sock.display());
        let host = Command::new(std::env::current_exe().expect("current exe"))
            .env("MULTIPROC_CLUSTER_WORKER", &url)
            .env("MULTIPROC_CLUSTER_AUTHKEY", KEY)
            .env("MULTIPROC_CLUSTER_PROCESSES", "2")
            .env("MULTIPROC_CLUSTER_NAME", "bench-host")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("host.log")).expect("host log"))
            .process_group(0)
            .spawn()
            .expect("worker host");
        Cluster { dir, redis, host, url }
    }

    /// An executor, once Redis answers; the first task waits for the host to be ready.
    fn executor(&self) -> ClusterExecutor {
        let deadline = Instant::now() + Duration::from_secs(20);
        let ex = loop {
            match ClusterExecutor::builder(&self.url).authkey(KEY).connect() {
                Ok(ex) => break ex,
                Err(e) if Instant::now() > deadline => panic!("redis-server did not come up: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let mut f = ex.submit(identity, 7).expect("submit");
        if let Err(e) = f.result_timeout(Duration::from_secs(60)) {
            let log = std::fs::read_to_string(self.dir.join("host.log")).unwrap_or_default();
            panic!("the worker host did not answer ({e}); its log:\n{log}");
        }
        ex
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let pgid = self.host.id();
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
        let _ = self.host.wait();
        let _ = self.redis.kill();
        let _ = self.redis.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn submit(o: &Opts) -> f64 {
    let n = o.iters(2_000, 500);
    let c = Cluster::start();
    let ex = c.executor();
    let one = |i: u64| {
        assert_eq!(ex.submit(identity, i).expect("submit").result().expect("result"), i);
    };
    (0..o.warm(n)).for_each(one);
    let t = Instant::now();
    (0..n).for_each(one);
    let d = t.elapsed();
    drop(ex);
    us_per(d, n)
}

fn map_cs1(o: &Opts) -> f64 {
    let n = o.iters(20_000, 5_000);
    let c = Cluster::start();
    let ex = c.executor();
    let check = |r: Vec<u64>, n: u64| {
        assert!(r.len() == n as usize && r.iter().enumerate().all(|(i, v)| *v == i as u64));
    };
    let warm: Vec<u64> =
        ex.map_chunked(identity, 0..1000u64, 1).expect("map").map(|r| r.expect("item")).collect();
    check(warm, 1000);
    let t = Instant::now();
    let r: Vec<u64> =
        ex.map_chunked(identity, 0..n, 1).expect("map").map(|r| r.expect("item")).collect();
    let d = t.elapsed();
    check(r, n);
    drop(ex);
    us_per(d, n)
}
