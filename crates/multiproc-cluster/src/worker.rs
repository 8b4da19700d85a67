//! The worker host: reads tasks from the stream as a member of the consumer group, runs
//! them in a local [`Pool`], writes signed results, and claims the tasks of hosts whose
//! heartbeat lapsed.

use crate::client::{redact, AUTHKEY_ENV};
use crate::conn::{ensure_group, Conn};
use crate::error::{Error, ErrorKind, Result};
use crate::wire::{self, Keys, Outcome, ResultMsg, TaskMsg, GROUP};
use multiproc_pool::remote::RemoteFn;
use multiproc_pool::{ErrorKind as TaskErrorKind, Pool};
use redis::streams::{StreamClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

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
        f.debug_struct("WorkerBuilder")
            .field("url", &redact(&self.url))
            .field("namespace", &self.namespace)
            .field("processes", &self.processes)
            .field("name", &self.name)
            .field("heartbeat", &self.heartbeat)
            .field("prefetch", &self.prefetch)
            .finish_non_exhaustive()
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

    /// The key tasks must be signed with (default: `MULTIPROC_CLUSTER_AUTHKEY`).
    pub fn authkey(mut self, key: impl AsRef<[u8]>) -> Self {
        self.authkey = Some(key.as_ref().to_vec());
        self
    }

    /// The key prefix shared with the executors (default `multiproc`).
    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespace = ns.into();
        self
    }

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
        let key = match self.authkey {
            Some(k) => k,
            None => {
                std::env::var_os(AUTHKEY_ENV).map(|v| v.into_encoded_bytes()).ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidArgument,
                        format!("no authkey: set one with .authkey() or {AUTHKEY_ENV}"),
                    )
                })?
            }
        };
        if key.is_empty() {
            return Err(Error::new(ErrorKind::InvalidArgument, "the authkey is empty"));
        }
        let processes = self.processes.unwrap_or_else(multiproc_pool::cpu_count).max(1);
        let host = self.name.unwrap_or_else(hostname);
        let name = format!("{host}/{}", std::process::id());
        let client = redis::Client::open(self.url.as_str())
            .map_err(|e| Error::redis(e, format!("bad Redis URL {}", redact(&self.url))))?;
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
        let hb = w.clone();
        std::thread::Builder::new()
            .name("cluster-heartbeat".into())
            .spawn(move || heartbeat_loop(&hb))
            .map_err(|e| Error::new(ErrorKind::Pool, format!("thread: {e}")))?;
        let dw = w.clone();
        std::thread::Builder::new()
            .name("cluster-drive".into())
            .spawn(move || drive_loop(&dw))
            .map_err(|e| Error::new(ErrorKind::Pool, format!("thread: {e}")))?;
        let rw = w.clone();
        std::thread::Builder::new()
            .name("cluster-reply".into())
            .spawn(move || reply_loop(&rw, rx))
            .map_err(|e| Error::new(ErrorKind::Pool, format!("thread: {e}")))?;
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

fn field<'a>(e: &'a StreamId, k: &str) -> Option<&'a [u8]> {
    match e.map.get(k) {
        Some(redis::Value::BulkString(b)) => Some(b),
        _ => None,
    }
}

/// Whether a client's heartbeat exists (cached for a second).
struct Clients {
    seen: HashMap<String, (bool, Instant)>,
}

impl Clients {
    fn alive(&mut self, w: &Worker, conn: &mut Conn, client: &str) -> bool {
        if let Some((alive, at)) = self.seen.get(client) {
            if at.elapsed() < Duration::from_secs(1) {
                return *alive;
            }
        }
        let key = w.keys.client(client);
        let alive = match conn.run(|con| redis::cmd("EXISTS").arg(&key).query::<bool>(con)) {
            Some(Ok(b)) => b,
            _ => true,
        };
        if self.seen.len() > 10_000 {
            self.seen.clear();
        }
        self.seen.insert(client.to_string(), (alive, Instant::now()));
        alive
    }
}

/// Takes one entry: checks it, then runs it, answers it or drops it. `died` is set when
/// the entry was claimed from a dead host after `runs` deliveries.
fn handle(
    w: &Arc<Worker>,
    conn: &mut Conn,
    clients: &mut Clients,
    tx: &mpsc::Sender<Done>,
    e: &StreamId,
    died: Option<(&str, usize)>,
) {
    lock(&w.held).insert(e.id.clone());
    let (Some(m), Some(s)) = (field(e, "m"), field(e, "s")) else {
        w.log_rejected(conn, &e.id, "unsigned or malformed entry (fields m and s missing)");
        w.drop_entry(conn, &e.id);
        return;
    };
    if !wire::verify_task(&w.key, m, s) {
        w.log_rejected(conn, &e.id, "bad signature: not signed with this cluster's authkey");
        w.drop_entry(conn, &e.id);
        return;
    }
    let msg: TaskMsg = match postcard::from_bytes(m) {
        Ok(t) => t,
        Err(err) => {
            w.log_rejected(conn, &e.id, &format!("signed but undecodable ({err})"));
            w.drop_entry(conn, &e.id);
            return;
        }
    };
    let answer = |outcome: Outcome| Done {
        entry: e.id.clone(),
        client: msg.client.clone(),
        ttl_ms: msg.ttl_ms,
        msg: ResultMsg { id: msg.id, host: w.name.clone(), busy_us: 0, outcome },
        ran: false,
    };
    if !clients.alive(w, conn, &msg.client) {
        eprintln!(
            "multiproc-cluster worker {}: dropped task {} of client {}: the client is gone",
            w.name, msg.id, msg.client
        );
        w.drop_entry(conn, &e.id);
        return;
    }
    if let Some((dead, runs)) = died {
        if runs > msg.retries as usize {
            let detail = format!(
                "worker host {dead} died while running the task (run {runs} of {})",
                msg.retries as usize + 1
            );
            let _ = tx.send(answer(wire::failure(TaskErrorKind::WorkerDied, detail)));
            return;
        }
    }
    let func = match RemoteFn::unseal(&msg.func, &w.key) {
        Ok(f) => f,
        Err(err) => {
            w.log_rejected(conn, &e.id, &err.to_string());
            let _ = tx.send(answer(wire::failed(&err, &w.name)));
            return;
        }
    };
    let fut = w.pool(msg.timeout_ms).and_then(|p| p.submit_remote(func, msg.payload, msg.count));
    let fut = match fut {
        Ok(f) => f,
        Err(err) => {
            let _ = tx.send(answer(wire::failed(&err, &w.name)));
            return;
        }
    };
    *lock(&w.in_flight) += 1;
    let started = Instant::now();
    let tx = tx.clone();
    let host = w.name.clone();
    let (entry, client, ttl_ms, id) = (e.id.clone(), msg.client.clone(), msg.ttl_ms, msg.id);
    fut.add_done_callback(move |r| {
        let outcome = match r {
            Ok(data) => Outcome::Items(data.clone()),
            Err(err) => wire::failed(err, &host),
        };
        let busy_us = started.elapsed().as_micros() as u64;
        let msg = ResultMsg { id, host, busy_us, outcome };
        let _ = tx.send(Done { entry, client, ttl_ms, msg, ran: true });
    });
    lock(&w.running).push(fut);
    w.running_cv.notify_all();
}

/// Waits on the running tasks' futures, so the local pool collects their results on this
/// thread the moment they exist (the done-callbacks then hand them to the reply thread);
/// otherwise the pool's own background thread would, after a grace period meant for a
/// caller about to wait.
fn drive_loop(w: &Arc<Worker>) {
    loop {
        let futs = {
            let mut r = lock(&w.running);
            while r.is_empty() {
                r = w.running_cv.wait(r).unwrap_or_else(|p| p.into_inner());
            }
            std::mem::take(&mut *r)
        };
        let waited = multiproc_pool::wait(
            futs,
            multiproc_pool::ReturnWhen::FirstCompleted,
            Some(Duration::from_millis(5)),
        );
        drop(waited.done);
        lock(&w.running).extend(waited.not_done);
    }
}

fn read_loop(w: &Arc<Worker>, tx: mpsc::Sender<Done>) {
    let mut conn = Conn::new(w.redis.clone(), Some(Duration::from_secs(5)), w.stop.clone());
    let mut clients = Clients { seen: HashMap::new() };
    let tasks = w.keys.tasks();
    let capacity = w.prefetch;
    let mut next_reap = Instant::now() + w.heartbeat / 2;
    let mut gen_seen = 0;
    loop {
        if conn.generation != gen_seen {
            // After a reconnect (Redis restarted?) every host needs time to renew its
            // heartbeat before any looks dead; and entries Redis handed to this host while
            // the answer was lost are taken up now.
            if gen_seen != 0 {
                recover_own(w, &mut conn, &mut clients, &tx);
            }
            gen_seen = conn.generation;
            next_reap = Instant::now() + w.heartbeat;
        }
        if Instant::now() >= next_reap {
            reap(w, &mut conn, &mut clients, &tx);
            next_reap = Instant::now() + w.heartbeat / 2;
        }
        let free = {
            let mut n = lock(&w.in_flight);
            let deadline = Instant::now() + Duration::from_millis(200);
            while *n >= capacity && Instant::now() < deadline {
                n = w
                    .in_flight_cv
                    .wait_timeout(n, Duration::from_millis(20))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            capacity.saturating_sub(*n)
        };
        if free == 0 {
            continue;
        }
        let r = conn.run(|con| {
            redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(&w.name)
                .arg("COUNT")
                .arg(free)
                .arg("BLOCK")
                .arg(200)
                .arg("STREAMS")
                .arg(&tasks)
                .arg(">")
                .query::<Option<StreamReadReply>>(con)
        });
        match r {
            None => return,
            Some(Ok(Some(reply))) => {
                for k in reply.keys {
                    for e in &k.ids {
                        handle(w, &mut conn, &mut clients, &tx, e, None);
                    }
                }
            }
            Some(Ok(None)) => {}
            Some(Err(e)) if e.code() == Some("NOGROUP") => {
                // Redis restarted without its data: the group is made again.
                let _ = conn.run(|con| ensure_group(con, &tasks));
            }
            Some(Err(e)) => {
                eprintln!("multiproc-cluster worker {}: reading tasks failed: {e}", w.name);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Takes up the entries pending for this host that it does not hold: Redis delivered them
/// (and recorded the delivery) but the reply never arrived, as when Redis dies mid-reply.
fn recover_own(w: &Arc<Worker>, conn: &mut Conn, clients: &mut Clients, tx: &mpsc::Sender<Done>) {
    let tasks = w.keys.tasks();
    let Some(Ok(pending)) = conn.run(|con| {
        redis::cmd("XPENDING")
            .arg(&tasks)
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(1000)
            .arg(&w.name)
            .query::<StreamPendingCountReply>(con)
    }) else {
        return;
    };
    let lost: Vec<String> = {
        let held = lock(&w.held);
        pending.ids.into_iter().map(|p| p.id).filter(|id| !held.contains(id)).collect()
    };
    if lost.is_empty() {
        return;
    }
    let claimed = conn.run(|con| {
        redis::cmd("XCLAIM")
            .arg(&tasks)
            .arg(GROUP)
            .arg(&w.name)
            .arg(0)
            .arg(&lost)
            .query::<StreamClaimReply>(con)
    });
    let Some(Ok(claimed)) = claimed else { return };
    eprintln!(
        "multiproc-cluster worker {}: took up {} entries delivered while the reply was lost",
        w.name,
        claimed.ids.len()
    );
    for e in &claimed.ids {
        handle(w, conn, clients, tx, e, None);
    }
}

/// Claims the pending tasks of hosts whose heartbeat lapsed: each runs again here (within
/// its retries) or fails with `WorkerDied` naming the dead host. Then forgets dead hosts
/// that hold nothing.
fn reap(w: &Arc<Worker>, conn: &mut Conn, clients: &mut Clients, tx: &mpsc::Sender<Done>) {
    let tasks = w.keys.tasks();
    // Only entries idle for half a lease can belong to a host whose lease lapsed (it
    // renews every quarter lease); pages of 1,000, at most 20 per round.
    let idle_ms = (w.heartbeat / 2).as_millis() as u64;
    let mut ids = Vec::new();
    let mut start = "-".to_string();
    for _ in 0..20 {
        let Some(Ok(page)) = conn.run(|con| {
            redis::cmd("XPENDING")
                .arg(&tasks)
                .arg(GROUP)
                .arg("IDLE")
                .arg(idle_ms)
                .arg(&start)
                .arg("+")
                .arg(1000)
                .query::<StreamPendingCountReply>(con)
        }) else {
            return;
        };
        let full = page.ids.len() == 1000;
        if let Some(last) = page.ids.last() {
            start = format!("({}", last.id);
        }
        ids.extend(page.ids);
        if !full {
            break;
        }
    }
    let mut alive: HashMap<String, bool> = HashMap::new();
    let mut by_dead: HashMap<String, Vec<(String, usize)>> = HashMap::new();
    for p in ids {
        if p.consumer == w.name {
            continue;
        }
        let is_alive = match alive.get(&p.consumer) {
            Some(a) => *a,
            None => {
                let key = w.keys.worker(&p.consumer);
                let a = !matches!(
                    conn.run(|con| redis::cmd("EXISTS").arg(&key).query::<bool>(con)),
                    Some(Ok(false))
                );
                alive.insert(p.consumer.clone(), a);
                a
            }
        };
        if !is_alive {
            by_dead.entry(p.consumer).or_default().push((p.id, p.times_delivered));
        }
    }
    for (dead, ids) in by_dead {
        let id_list: Vec<&str> = ids.iter().map(|(i, _)| i.as_str()).collect();
        // A short min-idle: of two hosts claiming at once, only the first gets an entry.
        let claimed = conn.run(|con| {
            redis::cmd("XCLAIM")
                .arg(&tasks)
                .arg(GROUP)
                .arg(&w.name)
                .arg(100)
                .arg(&id_list)
                .query::<StreamClaimReply>(con)
        });
        let Some(Ok(claimed)) = claimed else { continue };
        eprintln!(
            "multiproc-cluster worker {}: host {dead} is gone; claimed {} of its tasks",
            w.name,
            claimed.ids.len()
        );
        for e in &claimed.ids {
            let runs = ids.iter().find(|(i, _)| *i == e.id).map_or(1, |(_, n)| *n);
            handle(w, conn, clients, tx, e, Some((&dead, runs)));
        }
    }
    forget_dead_consumers(w, conn);
    recover_own(w, conn, clients, tx);
}

/// Removes group members that are gone and hold nothing, so the group stays bounded.
fn forget_dead_consumers(w: &Arc<Worker>, conn: &mut Conn) {
    let tasks = w.keys.tasks();
    let Some(Ok(info)) = conn.run(|con| {
        redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&tasks)
            .arg(GROUP)
            .query::<Vec<HashMap<String, redis::Value>>>(con)
    }) else {
        return;
    };
    for c in info {
        let name = match c.get("name") {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(redis::Value::SimpleString(s)) => s.clone(),
            _ => continue,
        };
        let pending = matches!(c.get("pending"), Some(redis::Value::Int(n)) if *n > 0);
        if name == w.name || pending {
            continue;
        }
        let key = w.keys.worker(&name);
        let gone = matches!(
            conn.run(|con| redis::cmd("EXISTS").arg(&key).query::<bool>(con)),
            Some(Ok(false))
        );
        if gone {
            let _ = conn.run(|con| {
                redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(&tasks)
                    .arg(GROUP)
                    .arg(&name)
                    .query::<i64>(con)
            });
        }
    }
}

fn heartbeat_loop(w: &Arc<Worker>) {
    let mut conn = Conn::new(w.redis.clone(), Some(Duration::from_secs(2)), w.stop.clone());
    loop {
        if conn.run(|con| beat(con, &w.keys, &w.name, w.heartbeat)).is_none() {
            return;
        }
        std::thread::sleep(w.heartbeat / 4);
    }
}

/// Writes results: the result entry, its stream's expiry, and the task's ack and removal
/// in one transaction, so a task is answered and acknowledged together or not at all.
fn reply_loop(w: &Arc<Worker>, rx: mpsc::Receiver<Done>) {
    let mut conn = Conn::new(w.redis.clone(), Some(Duration::from_secs(5)), w.stop.clone());
    let tasks = w.keys.tasks();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        let encoded: Vec<(Vec<u8>, Vec<u8>)> = batch
            .iter()
            .map(|d| {
                let m = postcard::to_stdvec(&d.msg).expect("a result message serialises");
                let s = wire::sign_result(&w.key, &m);
                (m, s)
            })
            .collect();
        let r = conn.run(|con| {
            let mut p = redis::pipe();
            p.atomic();
            for (d, (m, s)) in batch.iter().zip(&encoded) {
                let results = w.keys.results(&d.client);
                p.cmd("XADD")
                    .arg(&results)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(1_000_000)
                    .arg("*")
                    .arg("m")
                    .arg(&m[..])
                    .arg("s")
                    .arg(&s[..])
                    .ignore();
                p.cmd("PEXPIRE").arg(&results).arg(d.ttl_ms.max(1)).ignore();
                p.cmd("XACK").arg(&tasks).arg(GROUP).arg(&d.entry).ignore();
                p.cmd("XDEL").arg(&tasks).arg(&d.entry).ignore();
            }
            p.query::<()>(con)
        });
        match r {
            Some(Ok(())) => {
                let mut held = lock(&w.held);
                for d in &batch {
                    held.remove(&d.entry);
                }
            }
            Some(Err(e)) => {
                eprintln!("multiproc-cluster worker {}: writing results failed: {e}", w.name)
            }
            None => {}
        }
        let ran = batch.iter().filter(|d| d.ran).count();
        if ran > 0 {
            let mut n = lock(&w.in_flight);
            *n = n.saturating_sub(ran);
            w.in_flight_cv.notify_all();
        }
    }
}
