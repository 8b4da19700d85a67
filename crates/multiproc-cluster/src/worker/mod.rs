//! The worker host: reads tasks from the stream as a member of the consumer group, runs
//! them in a local [`Pool`], writes signed results, and claims the tasks of hosts whose
//! heartbeat lapsed.

mod reap;
mod tasks;

use self::tasks::{drive_loop, heartbeat_loop, read_loop, reply_loop};
use crate::common::{authkey, authkey_and_namespace_setters, lock, redact, redis_client, spawn};
use crate::conn::{ensure_group, Conn};
use crate::error::{Error, ErrorKind, Result};
use crate::wire::{Keys, ResultMsg, GROUP};
use multiproc_pool::{ErrorKind as TaskErrorKind, Pool};
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The environment variable that makes a program a worker host:
/// [`run_worker_if_requested`] reads the Redis URL from it.
pub const WORKER_ENV: &str = "MULTIPROC_CLUSTER_WORKER";
/// Local worker processes of a host (default: the number of CPUs).
pub const PROCESSES_ENV: &str = "MULTIPROC_CLUSTER_PROCESSES";
/// The host's name in errors and insights (default: the hostname).
pub const NAME_ENV: &str = "MULTIPROC_CLUSTER_NAME";
/// The key prefix (default `multiproc`).
pub const NAMESPACE_ENV: &str = "MULTIPROC_CLUSTER_NAMESPACE";
/// The heartbeat lease in milliseconds (default 5000).
pub const HEARTBEAT_ENV: &str = "MULTIPROC_CLUSTER_HEARTBEAT_MS";
/// Tasks a host takes ahead of its free processes (default: twice its processes).
pub const PREFETCH_ENV: &str = "MULTIPROC_CLUSTER_PREFETCH";

/// Local pools per host: one without a time limit, and one per distinct limit.
const MAX_POOLS: usize = 9;

/// Entries kept in the log of rejected entries.
const REJECTED_KEEP: isize = 1000;

/// Settings of a worker host; from [`WorkerBuilder::new`].
pub struct WorkerBuilder {
    url: String,
    authkey: Option<Vec<u8>>,
    namespace: String,
    processes: Option<usize>,
    name: Option<String>,
    heartbeat: Duration,
    prefetch: Option<usize>,
}

impl fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        multiproc_arena::debug_fields!(f, self, "WorkerBuilder" {
            url: redact(&self.url), namespace, processes, name, heartbeat, prefetch
        } ..)
    }
}

/// Runs a worker host on `url` with the settings from the environment (see
/// [`WorkerBuilder::from_env`]); returns only on a setup error.
pub fn worker(url: &str) -> Result<Infallible> {
    WorkerBuilder::new(url).from_env().run()
}

/// If `MULTIPROC_CLUSTER_WORKER` is set, runs this process as a worker host on that Redis
/// URL and never returns (exit code 2 on a setup error); otherwise returns at once.
///
/// Call it first thing in `main`: the same executable is then both the program and its
/// workers (`MULTIPROC_CLUSTER_WORKER=redis://… ./app` on each host).
pub fn run_worker_if_requested() {
    let Some(url) = std::env::var_os(WORKER_ENV) else { return };
    let url = url.to_string_lossy().into_owned();
    let e = match worker(&url) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    eprintln!("multiproc-cluster worker: {e}");
    std::process::exit(2);
}

impl WorkerBuilder {
    /// A worker host for the Redis at `url`, with default settings.
    pub fn new(url: impl Into<String>) -> Self {
        WorkerBuilder {
            url: url.into(),
            authkey: None,
            namespace: "multiproc".into(),
            processes: None,
            name: None,
            heartbeat: Duration::from_secs(5),
            prefetch: None,
        }
    }

    /// Takes settings not yet made in code from `MULTIPROC_CLUSTER_PROCESSES`,
    /// `MULTIPROC_CLUSTER_NAME`, `MULTIPROC_CLUSTER_NAMESPACE`,
    /// `MULTIPROC_CLUSTER_HEARTBEAT_MS` and `MULTIPROC_CLUSTER_PREFETCH` (the authkey is read
    /// at `run`).
    pub fn from_env(mut self) -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if self.processes.is_none() {
            self.processes = var(PROCESSES_ENV).and_then(|v| v.parse().ok());
        }
        if self.name.is_none() {
            self.name = var(NAME_ENV);
        }
        if let Some(ns) = var(NAMESPACE_ENV) {
            self.namespace = ns;
        }
        if let Some(ms) = var(HEARTBEAT_ENV).and_then(|v| v.parse::<u64>().ok()) {
            self.heartbeat = Duration::from_millis(ms.max(300));
        }
        if self.prefetch.is_none() {
            self.prefetch = var(PREFETCH_ENV).and_then(|v| v.parse().ok());
        }
        self
    }

    authkey_and_namespace_setters!();

    /// Local worker processes (default: the number of CPUs).
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// The host's name in errors and insights (default: the hostname); the process id is
    /// appended to make it unique.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The heartbeat lease (default 5 s, at least 300 ms): a host silent for this long is
    /// taken for dead and its tasks are claimed by the others.
    pub fn heartbeat(mut self, d: Duration) -> Self {
        self.heartbeat = d.max(Duration::from_millis(300));
        self
    }

    /// How many tasks the host holds at once (default: twice its processes, at least its
    /// processes). More hides Redis round trips for short tasks; but when a host dies, every
    /// task it held fails with `WorkerDied` (or is retried), started or not.
    pub fn prefetch(mut self, n: usize) -> Self {
        self.prefetch = Some(n);
        self
    }

    /// Starts the local pool and serves tasks until the process is killed; returns only on
    /// a setup error.
    pub fn run(self) -> Result<Infallible> {
        let key = authkey(self.authkey)?;
        let processes = self.processes.unwrap_or_else(multiproc_pool::cpu_count).max(1);
        let host = self.name.unwrap_or_else(hostname);
        let name = format!("{host}/{}", std::process::id());
        let client = redis_client(&self.url)?;
        let keys = Keys::new(&self.namespace);
        let stop = Arc::new(AtomicBool::new(false));
        // Redis may come up after the hosts: wait for it (with backoff), but fail on what
        // waiting cannot fix (a refused password, say).
        let mut conn = Conn::new(client.clone(), Some(Duration::from_secs(5)), stop.clone());
        if let Some(Err(e)) = conn.run(|con| ensure_group(con, &keys.tasks())) {
            return Err(Error::redis(e, format!("cannot use {}", redact(&self.url))));
        }
        // Fail now, not at the first task, if processes cannot start; the build identity
        // is computed now too, not while a task waits.
        let pool = Pool::builder().processes(processes).build().map_err(Error::pool)?;
        let _ = multiproc_pool::remote::build_id();
        // The first heartbeat says the host is ready.
        if let Some(Err(e)) = conn.run(|con| beat(con, &keys, &name, self.heartbeat)) {
            return Err(Error::redis(e, "cannot write the heartbeat"));
        }
        drop(conn);
        let w = Arc::new(Worker {
            keys,
            key,
            name,
            processes,
            prefetch: self.prefetch.unwrap_or(processes * 2).max(processes),
            heartbeat: self.heartbeat,
            pools: Mutex::new(HashMap::from([(0, Arc::new(pool))])),
            in_flight: Mutex::new(0),
            in_flight_cv: Condvar::new(),
            held: Mutex::new(HashSet::new()),
            running: Mutex::new(Vec::new()),
            running_cv: Condvar::new(),
            redis: client,
            stop,
        });
        let (tx, rx) = mpsc::channel::<Done>();
        spawn("cluster-heartbeat", heartbeat_loop, w.clone(), ErrorKind::Pool)?;
        spawn("cluster-drive", drive_loop, w.clone(), ErrorKind::Pool)?;
        spawn("cluster-reply", reply_loop, (w.clone(), rx), ErrorKind::Pool)?;
        eprintln!(
            "multiproc-cluster worker {}: serving {} with {} processes (build {})",
            w.name,
            redact(&self.url),
            processes,
            multiproc_pool::remote::short_hex(multiproc_pool::remote::build_id())
        );
        read_loop(&w, tx);
        Err(Error::new(ErrorKind::Redis, "the worker stopped"))
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn beat(
    con: &mut redis::Connection,
    keys: &Keys,
    name: &str,
    lease: Duration,
) -> redis::RedisResult<()> {
    redis::cmd("SET")
        .arg(keys.worker(name))
        .arg(1)
        .arg("PX")
        .arg(lease.as_millis() as u64)
        .query(con)
}

struct Worker {
    keys: Keys,
    key: Vec<u8>,
    name: String,
    processes: usize,
    prefetch: usize,
    heartbeat: Duration,
    /// Local pools by per-task timeout in ms (0: none).
    pools: Mutex<HashMap<u64, Arc<Pool>>>,
    in_flight: Mutex<usize>,
    in_flight_cv: Condvar,
    /// Entries this process holds: running, or answered and not yet acknowledged.
    held: Mutex<HashSet<String>>,
    /// Futures of running tasks, for the driver thread to wait on.
    running: Mutex<Vec<multiproc_pool::Future<Vec<u8>>>>,
    running_cv: Condvar,
    redis: redis::Client,
    stop: Arc<AtomicBool>,
}

/// A finished task, for the reply thread.
struct Done {
    entry: String,
    client: String,
    ttl_ms: u64,
    msg: ResultMsg,
    /// It ran here (and counts against `in_flight`).
    ran: bool,
}

impl Worker {
    fn pool(&self, timeout_ms: u64) -> std::result::Result<Arc<Pool>, multiproc_pool::Error> {
        let mut pools = lock(&self.pools);
        if let Some(p) = pools.get(&timeout_ms) {
            return Ok(p.clone());
        }
        // Each distinct time limit costs a pool of `processes` workers on every host.
        if pools.len() >= MAX_POOLS {
            return Err(multiproc_pool::Error::new(
                TaskErrorKind::InvalidArgument,
                format!(
                    "a host runs at most {} distinct task time limits (a pool each); use \
                     fewer distinct values",
                    MAX_POOLS - 1
                ),
            ));
        }
        let p = Arc::new(
            Pool::builder()
                .processes(self.processes)
                .task_timeout(Duration::from_millis(timeout_ms))
                .build()?,
        );
        pools.insert(timeout_ms, p.clone());
        Ok(p)
    }

    fn log_rejected(&self, conn: &mut Conn, entry: &str, why: &str) {
        eprintln!("multiproc-cluster worker {}: rejected task entry {entry}: {why}", self.name);
        let line = format!("{entry} on {}: {why}", self.name);
        let _ = conn.run(|con| {
            redis::pipe()
                .cmd("LPUSH")
                .arg(self.keys.rejected())
                .arg(&line)
                .ignore()
                .cmd("LTRIM")
                .arg(self.keys.rejected())
                .arg(0)
                .arg(REJECTED_KEEP - 1)
                .ignore()
                .cmd("EXPIRE")
                .arg(self.keys.rejected())
                .arg(86_400)
                .ignore()
                .query::<()>(con)
        });
    }

    /// Removes an entry that will not run (and not be answered).
    fn drop_entry(&self, conn: &mut Conn, entry: &str) {
        lock(&self.held).remove(entry);
        let tasks = self.keys.tasks();
        let _ = conn.run(|con| {
            redis::pipe()
                .atomic()
                .cmd("XACK")
                .arg(&tasks)
                .arg(GROUP)
                .arg(entry)
                .ignore()
                .cmd("XDEL")
                .arg(&tasks)
                .arg(entry)
                .ignore()
                .query::<()>(con)
        });
    }
}
