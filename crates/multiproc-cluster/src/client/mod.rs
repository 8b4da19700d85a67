//! [`ClusterExecutor`]: submit calls to worker hosts through Redis; get [`Future`]s.

mod io;

use self::io::{beat, collector, sender};
use crate::common::{authkey, authkey_and_namespace_setters, lock, redact, redis_client, spawn};
use crate::conn::ensure_group;
use crate::error::{Error, ErrorKind, Result};
use crate::wire::{self, Keys, Outcome, TaskMsg};
use multiproc_pool::remote::{decode_outcomes, encode_item, Promise, RemoteFn};
use multiproc_pool::{
    Error as TaskError, ErrorKind as TaskErrorKind, Executor, ExecutorMap, Future, Payload,
    ProgressFn, Result as TaskResult,
};
use serde::de::DeserializeOwned;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Tasks written to Redis per round trip.
const SEND_BATCH: usize = 512;

/// Per-task settings: retries after a worker host dies, and a time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskOptions {
    /// How many times the task runs again when the host running it dies (0: it fails with
    /// [`WorkerDied`](multiproc_pool::ErrorKind::WorkerDied) naming the host: at most once).
    pub retries: u32,
    /// Fails the task with [`TaskTimedOut`](multiproc_pool::ErrorKind::TaskTimedOut) after
    /// this long, killing the local worker process that runs it.
    pub timeout: Option<Duration>,
}

impl TaskOptions {
    multiproc_arena::setters! {
        /// `retries` retries (at-least-once when > 0).
        fn retries(mut self, n: u32) { self.retries = n }

        /// A time limit for the task.
        fn timeout(mut self, d: Duration) { self.timeout = Some(d) }
    }
}

/// What the tasks of this executor did on one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostInsights {
    /// The worker host's name.
    pub host: String,
    /// Tasks (chunks) it finished or failed.
    pub tasks: u64,
    /// Items in those tasks.
    pub items: u64,
    /// Time they took there.
    pub busy: Duration,
}

/// Settings for a [`ClusterExecutor`]; from [`ClusterExecutor::builder`].
pub struct ClusterExecutorBuilder {
    url: String,
    authkey: Option<Vec<u8>>,
    namespace: String,
    defaults: TaskOptions,
    chunksize: usize,
    ttl: Duration,
}

impl fmt::Debug for ClusterExecutorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        multiproc_arena::debug_fields!(f, self, "ClusterExecutorBuilder" {
            namespace, defaults, chunksize, ttl
        } ..)
    }
}

impl ClusterExecutorBuilder {
    authkey_and_namespace_setters!();

    multiproc_arena::setters! {
        /// Default retries of every task (see [`TaskOptions::retries`]).
        fn retries(mut self, n: u32) { self.defaults.retries = n }

        /// Default time limit of every task (see [`TaskOptions::timeout`]).
        fn task_timeout(mut self, d: Duration) { self.defaults.timeout = Some(d) }

        /// Items per task for [`Executor::map`] (default 1); 0 is an error at `connect`.
        fn chunksize(mut self, n: usize) { self.chunksize = n }

        /// How long this client's keys (its heartbeat, its result stream) outlive it if it
        /// dies (default 60 s): after that nothing of it is left in Redis, and workers drop its
        /// queued tasks unrun.
        fn ttl(mut self, d: Duration) { self.ttl = d }
    }

    /// Connects and starts the executor's two threads (one writes tasks, one reads
    /// results).
    pub fn connect(self) -> Result<ClusterExecutor> {
        let key = authkey(self.authkey)?;
        if self.chunksize == 0 {
            return Err(Error::new(ErrorKind::InvalidArgument, "chunksize must be at least 1"));
        }
        if self.ttl < Duration::from_millis(300) {
            return Err(Error::new(ErrorKind::InvalidArgument, "ttl must be at least 300 ms"));
        }
        let client = redis_client(&self.url)?;
        let keys = Keys::new(&self.namespace);
        let id = wire::random_hex();
        // The executable's hash, once, now rather than at the first submit.
        let _ = multiproc_pool::remote::build_id();
        let mut con = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .map_err(|e| Error::redis(e, format!("cannot connect to {}", redact(&self.url))))?;
        ensure_group(&mut con, &keys.tasks())
            .map_err(|e| Error::redis(e, "cannot create the task stream's group"))?;
        // The heartbeat exists before the first task does: a worker drops tasks of clients
        // without one.
        beat(&mut con, &keys, &id, self.ttl)
            .map_err(|e| Error::redis(e, "cannot write the client's heartbeat"))?;
        drop(con);
        let shared = Arc::new(Shared {
            keys,
            key,
            id,
            ttl: self.ttl,
            defaults: self.defaults,
            chunksize: self.chunksize,
            st: Mutex::new(St { outbox: VecDeque::new(), pending: HashMap::new() }),
            cv: Condvar::new(),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            stop: Arc::new(AtomicBool::new(false)),
            insights: Mutex::new(HashMap::new()),
            redis: client,
        });
        let threads = vec![
            spawn("cluster-send", sender, shared.clone(), ErrorKind::InvalidArgument)?,
            spawn("cluster-collect", collector, shared.clone(), ErrorKind::InvalidArgument)?,
        ];
        Ok(ClusterExecutor { shared, threads: Mutex::new(threads) })
    }
}

/// A map's options: chunk size, [`TaskOptions`], progress reporting; from
/// [`ClusterExecutor::job`].
pub struct ClusterJob<'a> {
    ex: &'a ClusterExecutor,
    chunksize: usize,
    opts: TaskOptions,
    progress: Option<ProgressFn>,
}

impl fmt::Debug for ClusterJob<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        multiproc_arena::debug_fields!(f, self, "ClusterJob" {
            chunksize, opts, progress: self.progress.is_some()
        })
    }
}

impl ClusterJob<'_> {
    multiproc_arena::setters! {
        /// Items per task (one Redis entry, one local pool task).
        fn chunksize(mut self, n: usize) { self.chunksize = n }

        /// Retries of each chunk after its host died (see [`TaskOptions::retries`]).
        fn retries(mut self, n: u32) { self.opts.retries = n }

        /// A time limit for each chunk (see [`TaskOptions::timeout`]).
        fn timeout(mut self, d: Duration) { self.opts.timeout = Some(d) }

        /// Calls `f(done, Some(total))` as each item's result comes back, from whichever host
        /// ran it (on the executor's result thread: keep it short).
        fn progress(mut self, f: impl Fn(usize, Option<usize>) + Send + Sync + 'static) {
            self.progress = Some(Arc::new(f))
        }
    }

    /// Applies `f` to every item on the cluster; the iterator yields the outcomes in input
    /// order.
    pub fn map<T, R, F, I>(self, f: F, items: I) -> TaskResult<ExecutorMap<R>>
    where
        T: Payload,
        R: Payload,
        F: Fn(T) -> R + Send + Sync + Clone + 'static,
        I: IntoIterator<Item = T>,
    {
        let futs = self.ex.map_futures(self.opts, f, items, self.chunksize)?;
        if let Some(cb) = self.progress {
            let total = futs.len();
            let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            for fut in &futs {
                let (cb, done) = (cb.clone(), done.clone());
                fut.add_done_callback(move |_| {
                    let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                    cb(n, Some(total));
                });
            }
        }
        Ok(ExecutorMap::from_futures(futs))
    }
}

/// Finishes the futures of one task.
trait Waiter: Send {
    fn finish(self: Box<Self>, outcome: Outcome);
    /// Whether every future of the task was cancelled (the task need not run).
    fn all_cancelled(&self) -> bool;
    /// Cancels every future that has not finished.
    fn cancel(&self);
    /// Items in the task.
    fn count(&self) -> u64;
}

struct Promises<R> {
    ps: Vec<Promise<R>>,
}

impl<R: DeserializeOwned + Send + 'static> Waiter for Promises<R> {
    fn finish(self: Box<Self>, outcome: Outcome) {
        match outcome {
            Outcome::Items(data) => {
                let mut outs = decode_outcomes::<R>(self.ps.len() as u32, &data).into_iter();
                for p in &self.ps {
                    let r = outs
                        .next()
                        .unwrap_or_else(|| Err(TaskError::new(TaskErrorKind::Codec, "no result")));
                    p.complete(r);
                }
            }
            Outcome::Failed { kind, detail } => {
                let e = wire::task_error(kind, detail);
                for p in &self.ps {
                    p.complete(Err(e.clone()));
                }
            }
        }
    }

    fn all_cancelled(&self) -> bool {
        self.ps.iter().all(|p| p.is_cancelled())
    }

    fn cancel(&self) {
        for p in &self.ps {
            p.cancel();
        }
    }

    fn count(&self) -> u64 {
        self.ps.len() as u64
    }
}

struct Entry {
    waiter: Box<dyn Waiter>,
    /// The task's entry in the stream, once written.
    stream_id: Option<String>,
}

struct Outgoing {
    id: u64,
    m: Vec<u8>,
    s: Vec<u8>,
}

struct St {
    outbox: VecDeque<Outgoing>,
    pending: HashMap<u64, Entry>,
}

struct Shared {
    keys: Keys,
    key: Vec<u8>,
    id: String,
    ttl: Duration,
    defaults: TaskOptions,
    chunksize: usize,
    st: Mutex<St>,
    cv: Condvar,
    next_id: AtomicU64,
    closed: AtomicBool,
    stop: Arc<AtomicBool>,
    insights: Mutex<HashMap<String, HostInsights>>,
    redis: redis::Client,
}

/// Python's `ProcessPoolExecutor` across hosts: tasks go to a Redis stream that worker
/// hosts read as a consumer group; each host runs them in a local [`multiproc_pool::Pool`],
/// so a crashing task fails only itself.
///
/// Functions travel by name, so they must be function items or closures without captures,
/// and every worker must run the same executable as the client (a task from another build
/// is refused with [`Refused`](multiproc_pool::ErrorKind::Refused)). Tasks and results are
/// signed with the authkey; workers drop entries without a valid signature.
///
/// Dropping the executor waits for its tasks (Python's `with` block); see
/// [`shutdown`](Executor::shutdown) to cancel them instead.
pub struct ClusterExecutor {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl fmt::Debug for ClusterExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        multiproc_arena::debug_fields!(f, self, "ClusterExecutor" {
            client: self.shared.id, pending: lock(&self.shared.st).pending.len()
        })
    }
}

impl ClusterExecutor {
    /// Settings for an executor that connects to `url` (`redis://[user:password@]host:port/db`,
    /// `redis+unix:///path/to/socket`, `rediss://…` with the `tls` feature).
    pub fn builder(url: impl Into<String>) -> ClusterExecutorBuilder {
        ClusterExecutorBuilder {
            url: url.into(),
            authkey: None,
            namespace: "multiproc".into(),
            defaults: TaskOptions::default(),
            chunksize: 1,
            ttl: Duration::from_secs(60),
        }
    }

    /// Connects to `url` with the default settings (the authkey from
    /// `MULTIPROC_CLUSTER_AUTHKEY`).
    pub fn connect(url: impl Into<String>) -> Result<Self> {
        Self::builder(url).connect()
    }

    /// This client's id (part of its Redis keys).
    pub fn client_id(&self) -> &str {
        &self.shared.id
    }

    /// Schedules `f(arg)` with its own [`TaskOptions`].
    pub fn submit_with<T, R, F>(&self, opts: TaskOptions, f: F, arg: T) -> TaskResult<Future<R>>
    where
        T: Payload,
        R: Payload,
        F: Fn(T) -> R + Send + Sync + 'static,
    {
        let sealed = RemoteFn::of::<T, R, F>(&f)?.seal(&self.shared.key);
        let mut payload = Vec::new();
        if let Err(e) = encode_item(&arg, &mut payload) {
            return Ok(Future::ready(Err(e)));
        }
        let (p, fut) = Promise::new();
        self.enqueue(&sealed, payload, 1, opts, Box::new(Promises { ps: vec![p] }))?;
        Ok(fut)
    }

    /// [`Executor::map_chunked`] with [`TaskOptions`] for every chunk.
    pub fn map_opts<T, R, F, I>(
        &self,
        opts: TaskOptions,
        f: F,
        items: I,
        chunksize: usize,
    ) -> TaskResult<ExecutorMap<R>>
    where
        T: Payload,
        R: Payload,
        F: Fn(T) -> R + Send + Sync + Clone + 'static,
        I: IntoIterator<Item = T>,
    {
        Ok(ExecutorMap::from_futures(self.map_futures(opts, f, items, chunksize)?))
    }

    fn map_futures<T, R, F, I>(
        &self,
        opts: TaskOptions,
        f: F,
        items: I,
        chunksize: usize,
    ) -> TaskResult<Vec<Future<R>>>
    where
        T: Payload,
        R: Payload,
        F: Fn(T) -> R + Send + Sync + Clone + 'static,
        I: IntoIterator<Item = T>,
    {
        if chunksize == 0 {
            return Err(TaskError::new(
                TaskErrorKind::InvalidArgument,
                "chunksize must be at least 1",
            ));
        }
        let sealed = RemoteFn::of::<T, R, F>(&f)?.seal(&self.shared.key);
        let mut futs = Vec::new();
        let mut it = items.into_iter().peekable();
        while it.peek().is_some() {
            let mut payload = Vec::new();
            let mut ps = Vec::new();
            while ps.len() < chunksize {
                let Some(item) = it.next() else { break };
                match encode_item(&item, &mut payload) {
                    Ok(()) => {
                        let (p, fut) = Promise::new();
                        ps.push(p);
                        futs.push(fut);
                    }
                    Err(e) => futs.push(Future::ready(Err(e))),
                }
            }
            if !ps.is_empty() {
                let n = ps.len() as u32;
                self.enqueue(&sealed, payload, n, opts, Box::new(Promises { ps }))?;
            }
        }
        Ok(futs)
    }

    fn enqueue(
        &self,
        sealed: &[u8],
        payload: Vec<u8>,
        count: u32,
        opts: TaskOptions,
        waiter: Box<dyn Waiter>,
    ) -> TaskResult<()> {
        let sh = &self.shared;
        if sh.closed.load(Ordering::SeqCst) {
            return Err(TaskError::new(
                TaskErrorKind::NotRunning,
                "cannot schedule new futures after shutdown",
            ));
        }
        let id = sh.next_id.fetch_add(1, Ordering::Relaxed);
        let msg = TaskMsg {
            client: sh.id.clone(),
            id,
            func: sealed.to_vec(),
            count,
            retries: opts.retries,
            timeout_ms: opts.timeout.map_or(0, |d| d.as_millis().max(1) as u64),
            ttl_ms: sh.ttl.as_millis() as u64,
            payload,
        };
        let m = postcard::to_stdvec(&msg)
            .map_err(|e| TaskError::new(TaskErrorKind::Codec, e.to_string()))?;
        let s = wire::sign_task(&sh.key, &m);
        let mut st = lock(&sh.st);
        st.pending.insert(id, Entry { waiter, stream_id: None });
        st.outbox.push_back(Outgoing { id, m, s });
        drop(st);
        sh.cv.notify_all();
        Ok(())
    }

    /// Options for the next map: `ex.job().chunksize(100).retries(1).progress(cb).map(f, items)`.
    pub fn job(&self) -> ClusterJob<'_> {
        ClusterJob {
            ex: self,
            chunksize: self.shared.chunksize,
            opts: self.shared.defaults,
            progress: None,
        }
    }

    /// What this executor's tasks did on each host, by host name.
    pub fn insights(&self) -> Vec<HostInsights> {
        let mut v: Vec<HostInsights> = lock(&self.shared.insights).values().cloned().collect();
        v.sort_by(|a, b| a.host.cmp(&b.host));
        v
    }

    /// Tasks (chunks) submitted and not finished.
    pub fn pending(&self) -> usize {
        lock(&self.shared.st).pending.len()
    }

    fn stop_threads(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.cv.notify_all();
        let me = std::thread::current().id();
        for h in lock(&self.threads).drain(..) {
            if h.thread().id() != me {
                let _ = h.join();
            }
        }
    }
}

impl Executor for ClusterExecutor {
    fn submit<T, R, F>(&self, f: F, arg: T) -> TaskResult<Future<R>>
    where
        T: Payload,
        R: Payload,
        F: Fn(T) -> R + Send + Sync + 'static,
    {
        self.submit_with(self.shared.defaults, f, arg)
    }

    /// Chunks of the executor's [`chunksize`](ClusterExecutorBuilder::chunksize).
    fn map<T, R, F, I>(&self, f: F, items: I) -> TaskResult<ExecutorMap<R>>
    where
        T: Payload,
        R: Payload,
        F: Fn(T) -> R + Send + Sync + Clone + 'static,
        I: IntoIterator<Item = T>,
    {
        self.map_chunked(f, items, self.shared.chunksize)
    }

    /// `chunksize` items per task: one Redis entry and one local pool task per chunk (a host
    /// dying fails, or retries, its whole chunk).
    fn map_chunked<T, R, F, I>(
        &self,
        f: F,
        items: I,
        chunksize: usize,
    ) -> TaskResult<ExecutorMap<R>>
    where
        T: Payload,
        R: Payload,
        F: Fn(T) -> R + Send + Sync + Clone + 'static,
        I: IntoIterator<Item = T>,
    {
        self.map_opts(self.shared.defaults, f, items, chunksize)
    }

    fn shutdown(&self, wait: bool, cancel_futures: bool) {
        let sh = &self.shared;
        sh.closed.store(true, Ordering::SeqCst);
        if cancel_futures {
            let st = lock(&sh.st);
            for e in st.pending.values() {
                e.waiter.cancel();
            }
            drop(st);
            sh.cv.notify_all();
        }
        if wait {
            let mut st = lock(&sh.st);
            while !st.pending.is_empty() && !sh.stop.load(Ordering::SeqCst) {
                st = sh
                    .cv
                    .wait_timeout(st, Duration::from_millis(50))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            drop(st);
            self.stop_threads();
            // Leave nothing behind: the heartbeat and the result stream go now.
            if let Ok(mut con) = sh.redis.get_connection_with_timeout(Duration::from_secs(2)) {
                let _ = con.set_read_timeout(Some(Duration::from_secs(2)));
                let _: redis::RedisResult<()> = redis::pipe()
                    .cmd("DEL")
                    .arg(sh.keys.client(&sh.id))
                    .arg(sh.keys.results(&sh.id))
                    .query(&mut con);
            }
        }
    }
}

impl Drop for ClusterExecutor {
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}
