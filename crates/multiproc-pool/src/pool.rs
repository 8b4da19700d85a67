//! [`Pool`]: Python's `multiprocessing.Pool`, plus worker state, per-task timeouts and
//! workers whose death fails only their own task.

use crate::chunk::default_chunksize;
use crate::core::{Config, Inner, Sink, TaskRec};
use crate::error::{Error, ErrorKind, Result};
use crate::func::{encode_append, FuncRef, InitFn, InitRef};
use crate::future::{AsyncResult, Future, Slot};
use crate::insights::WorkerInsights;
use crate::launch::SpawnLauncher;
use crate::progress::{Progress, ProgressFn};
use crate::sink::{CollectSink, SingleSink, StreamSink};
use crate::task::{init0_ref, init_ref, shim_ref, Plain, Star, StarFn, TaskFn};
use multiproc_spawn::StartMethod;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tasks per worker a streaming job keeps submitted ahead of what it consumed.
const WINDOW_PER_WORKER: usize = 512;
/// Tasks handed to the pool per lock.
const SUBMIT_BATCH: usize = 128;

/// A pool of worker processes (Python's `multiprocessing.Pool`).
///
/// `S` is the per-worker state (see [`PoolBuilder::worker_state`]); `()` for a plain pool.
/// Dropping the pool terminates it (like leaving Python's `with Pool() as p:`); call
/// [`close`](Self::close) and [`join`](Self::join) first to let queued work finish.
pub struct Pool<S = ()> {
    inner: Arc<Inner>,
    method: StartMethod,
    closure_ok: bool,
    _state: PhantomData<fn(&mut S)>,
}

/// Settings for a [`Pool`]; from [`Pool::builder`].
pub struct PoolBuilder<S = ()> {
    processes: Option<usize>,
    method: Option<StartMethod>,
    max_tasks_per_child: Option<usize>,
    task_timeout: Option<Duration>,
    init: Option<InitFn>,
    /// The initializer by name and its encoded argument, if it can be named (spawn and
    /// forkserver workers need it).
    init_ref: Option<(InitRef, Vec<u8>)>,
    _state: PhantomData<fn() -> S>,
}

impl<S> fmt::Debug for PoolBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("start_method", &self.method)
            .field("max_tasks_per_child", &self.max_tasks_per_child)
            .field("task_timeout", &self.task_timeout)
            .field("initializer", &self.init.is_some())
            .finish()
    }
}

impl<S> fmt::Debug for Pool<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.inner.processes())
            .field("start_method", &self.method)
            .finish()
    }
}

/// The number of CPUs this process may use (the default pool size).
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

impl Pool {
    /// A pool of [`cpu_count`] workers with the default start method.
    pub fn new() -> Result<Pool> {
        Pool::builder().build()
    }

    /// A builder with default settings.
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            processes: None,
            method: None,
            max_tasks_per_child: None,
            task_timeout: None,
            init: None,
            init_ref: None,
            _state: PhantomData,
        }
    }
}

impl PoolBuilder<()> {
    /// Runs `f` once in each worker before its first task (Python's `initializer`). A panic
    /// in it is an [`ErrorKind::Initializer`] error for every task, not a hang.
    pub fn initializer<F: Fn() + Send + Sync + 'static>(self, f: F) -> Self {
        let b = self.worker_state(f);
        PoolBuilder { _state: PhantomData, ..b }
    }

    /// Runs `f(arg)` once in each worker before its first task (Python's `initializer` with
    /// `initargs`); `arg` is serialised for spawn and forkserver workers.
    pub fn initializer_with<A, F>(self, f: F, arg: A) -> Self
    where
        A: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: Fn(A) + Send + Sync + 'static,
    {
        let b = self.worker_state_with(f, arg);
        PoolBuilder { _state: PhantomData, ..b }
    }

    /// Builds a state in each worker, once, with `init`; tasks of the form
    /// `Fn(&mut S, T) -> R` receive it (load a model or open a database once per worker,
    /// not once per task). A panic in `init` is an [`ErrorKind::Initializer`] error.
    pub fn worker_state<S2: 'static, F: Fn() -> S2 + Send + Sync + 'static>(
        self,
        init: F,
    ) -> PoolBuilder<S2> {
        let init_ref = init0_ref::<S2, F>(&init).ok().map(|r| (r, Vec::new()));
        let f: InitFn = Arc::new(move || Box::new(init()) as Box<dyn Any>);
        self.with_init(f, init_ref)
    }

    /// [`worker_state`](Self::worker_state) with an argument: `init(arg)` builds each
    /// worker's state (the path of a model to load, say); `arg` is serialised for spawn and
    /// forkserver workers.
    pub fn worker_state_with<S2, A, F>(self, init: F, arg: A) -> PoolBuilder<S2>
    where
        S2: 'static,
        A: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: Fn(A) -> S2 + Send + Sync + 'static,
    {
        let mut bytes = Vec::new();
        let encoded = encode_append(&arg, &mut bytes).is_ok();
        let init_ref = init_ref::<S2, A, F>(&init).ok().filter(|_| encoded).map(|r| (r, bytes));
        let f: InitFn = Arc::new(move || Box::new(init(arg.clone())) as Box<dyn Any>);
        self.with_init(f, init_ref)
    }

    fn with_init<S2>(self, f: InitFn, init_ref: Option<(InitRef, Vec<u8>)>) -> PoolBuilder<S2> {
        PoolBuilder {
            processes: self.processes,
            method: self.method,
            max_tasks_per_child: self.max_tasks_per_child,
            task_timeout: self.task_timeout,
            init: Some(f),
            init_ref,
            _state: PhantomData,
        }
    }
}

impl<S: 'static> PoolBuilder<S> {
    /// Number of worker processes (default: [`cpu_count`]); 0 is an error at `build`.
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// How workers are started (default: `multiproc_spawn::get_start_method()`).
    /// Closures that capture run under [`StartMethod::Fork`] only.
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// Replaces a worker after it ran this many tasks (chunks); 0 is an error at `build`.
    /// No task is lost or run twice: the parent never gives a worker more than its quota.
    pub fn max_tasks_per_child(mut self, n: usize) -> Self {
        self.max_tasks_per_child = Some(n);
        self
    }

    /// Fails a task that runs longer than `d` with [`ErrorKind::TaskTimedOut`], killing its
    /// worker (a new one takes its place). Measured from the task's start in the worker, to
    /// within about 10 ms.
    pub fn task_timeout(mut self, d: Duration) -> Self {
        self.task_timeout = Some(d);
        self
    }

    /// Whether workers are recycled (`max_tasks_per_child`) under the fork start method,
    /// which CPython's `ProcessPoolExecutor` refuses.
    pub(crate) fn recycles_under_fork(&self) -> bool {
        self.max_tasks_per_child.is_some()
            && self.method.unwrap_or_else(multiproc_spawn::get_start_method) == StartMethod::Fork
    }

    /// Starts the workers. If one cannot be started, those already started are killed and
    /// the error is returned.
    pub fn build(self) -> Result<Pool<S>> {
        let processes = self.processes.unwrap_or_else(cpu_count);
        if processes == 0 {
            return Err(Error::invalid("processes must be at least 1"));
        }
        if processes > 64 * 64 {
            return Err(Error::invalid("too many processes"));
        }
        if self.max_tasks_per_child == Some(0) {
            return Err(Error::invalid("max_tasks_per_child must be at least 1"));
        }
        let method = self.method.unwrap_or_else(multiproc_spawn::get_start_method);
        if method != StartMethod::Fork && self.init.is_some() && self.init_ref.is_none() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "an initializer that captures (or whose argument cannot be serialised) \
                 needs the fork start method",
            ));
        }
        let cfg = Config {
            processes,
            max_tasks_per_child: self.max_tasks_per_child.unwrap_or(0) as u64,
            task_timeout: self.task_timeout,
            launcher: Arc::new(SpawnLauncher { method }),
            init: if method == StartMethod::Fork { self.init } else { None },
            init_off: if method == StartMethod::Fork { None } else { self.init_ref },
        };
        if method == StartMethod::Fork {
            // Before any fork: see `install_panic_hook`.
            crate::func::install_panic_hook();
        }
        let inner = Inner::start(cfg)?;
        Ok(Pool { inner, method, closure_ok: method == StartMethod::Fork, _state: PhantomData })
    }
}

/// A job's options: chunk size and progress reporting; from [`Pool::job`].
pub struct Job<'p, S> {
    pool: &'p Pool<S>,
    chunksize: Option<usize>,
    progress: Progress,
}

impl<S> fmt::Debug for Job<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("chunksize", &self.chunksize)
            .field("progress", &self.progress)
            .finish()
    }
}

impl<S: 'static> Pool<S> {
    /// The number of worker processes.
    pub fn processes(&self) -> usize {
        self.inner.processes()
    }

    /// The start method of the workers.
    pub fn start_method(&self) -> StartMethod {
        self.method
    }

    /// Options for the next job: `pool.job().chunksize(64).progress(cb).map(f, items)`.
    pub fn job(&self) -> Job<'_, S> {
        Job { pool: self, chunksize: None, progress: Progress::default() }
    }

    pub(crate) fn func<T, R, M, F>(&self, f: F) -> Result<FuncRef>
    where
        T: DeserializeOwned + 'static,
        R: Serialize + 'static,
        F: TaskFn<S, T, R, M>,
    {
        if let Ok(r) = shim_ref::<S, T, R, M, F>(&f) {
            return Ok(FuncRef::Portable(r));
        }
        if !self.closure_ok {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "a closure that captures needs the fork start method (this pool uses {}); \
                     pass a function item or a closure without captures",
                    self.method.name()
                ),
            ));
        }
        self.inner.register(crate::func::runner::<S, T, R, _>(move |s: &mut S, t: T| f.call(s, t)))
    }

    /// Applies `f` to every item, in parallel; the results in input order, or the first
    /// error by index (after every task finished: no result is lost to a fast failure).
    /// The chunk size follows CPython's heuristic (`len / (4 * processes)`, rounded up).
    pub fn map<T, R, M, F>(&self, f: F, items: impl IntoIterator<Item = T>) -> Result<Vec<R>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        F: TaskFn<S, T, R, M>,
    {
        self.job().map(f, items)
    }

    /// Like [`map`](Self::map), yielding each item's outcome in input order as it is ready.
    /// The input is read lazily, a bounded number of items ahead (an endless iterator
    /// works). Chunk size 1 unless set with [`Job::chunksize`].
    pub fn imap<T, R, M, F, I>(&self, f: F, items: I) -> Result<Imap<'_, R, I::IntoIter>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        F: TaskFn<S, T, R, M>,
        I: IntoIterator<Item = T>,
    {
        self.job().imap(f, items)
    }

    /// Like [`imap`](Self::imap), in completion order.
    pub fn imap_unordered<T, R, M, F, I>(&self, f: F, items: I) -> Result<Imap<'_, R, I::IntoIter>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        F: TaskFn<S, T, R, M>,
        I: IntoIterator<Item = T>,
    {
        self.job().imap_unordered(f, items)
    }

    /// `map` over tuples spread into `f`'s arguments (`f(a, b)` for each `(a, b)`).
    pub fn starmap<Args, R, F>(&self, f: F, items: impl IntoIterator<Item = Args>) -> Result<Vec<R>>
    where
        Args: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        F: StarFn<Args, R>,
    {
        self.job().starmap(f, items)
    }

    /// Runs `f(arg)` in a worker and waits for it.
    pub fn apply<T, R, M, F>(&self, f: F, arg: T) -> Result<R>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        F: TaskFn<S, T, R, M>,
    {
        self.apply_async(f, arg)?.get()
    }

    /// Runs `f(arg)` in a worker; the result comes later.
    pub fn apply_async<T, R, M, F>(&self, f: F, arg: T) -> Result<AsyncResult<R>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        F: TaskFn<S, T, R, M>,
    {
        Ok(AsyncResult::new(self.submit_one(f, arg)?))
    }

    pub(crate) fn submit_one<T, R, M, F>(&self, f: F, arg: T) -> Result<Future<R>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        F: TaskFn<S, T, R, M>,
    {
        let func = self.func::<T, R, M, F>(f)?;
        let slot = Slot::new(Some(self.inner.driver()));
        let fut = Future::from_slot(slot.clone());
        let mut payload = Vec::new();
        if let Err(e) = encode_append(&arg, &mut payload) {
            slot.complete(Err(Error::new(
                ErrorKind::Codec,
                format!("cannot serialise the argument: {e}"),
            )));
            return Ok(fut);
        }
        let sink: Arc<dyn Sink> = Arc::new(SingleSink::first_value(slot));
        self.inner.submit([TaskRec::new(sink, 0, 1, func, payload)])?;
        Ok(fut)
    }

    /// `map` without waiting: the whole `Vec` (or the first error) comes later. The input is
    /// read at once (as Python's `map_async` does).
    pub fn map_async<T, R, M, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        F: TaskFn<S, T, R, M>,
    {
        self.job().map_async(f, items)
    }

    /// `starmap` without waiting.
    pub fn starmap_async<Args, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = Args>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        Args: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        F: StarFn<Args, R>,
    {
        self.job().starmap_async(f, items)
    }

    /// No more work is accepted; queued work finishes, then the workers exit.
    pub fn close(&self) {
        self.inner.close()
    }

    /// Kills the workers now; unfinished tasks fail with [`ErrorKind::Terminated`].
    pub fn terminate(&self) {
        self.inner.terminate()
    }

    /// Waits for the workers to exit, after [`close`](Self::close) or
    /// [`terminate`](Self::terminate) ([`ErrorKind::StillRunning`] otherwise).
    pub fn join(&self) -> Result<()> {
        self.inner.join(None)
    }

    /// [`join`](Self::join), giving up after `timeout` ([`ErrorKind::Timeout`]).
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        self.inner.join(Some(Instant::now() + timeout))
    }

    /// What each worker did: tasks, items, busy and waiting time, restarts.
    pub fn insights(&self) -> Vec<WorkerInsights> {
        self.inner.insights()
    }

    /// The pids of the live workers.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.inner.worker_pids()
    }
}

impl<S> Pool<S> {
    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }
}

impl<S> Drop for Pool<S> {
    fn drop(&mut self) {
        self.inner.terminate();
    }
}

impl<'p, S: 'static> Job<'p, S> {
    /// Items per task (default: CPython's heuristic for `map`, 1 for `imap`). A larger
    /// chunk costs less per item; a worker's death fails its whole chunk.
    pub fn chunksize(mut self, n: usize) -> Self {
        self.chunksize = Some(n);
        self
    }

    /// Calls `f(done, total)` as each item completes (`total` is `None` while an input of
    /// unknown length is still being read). It runs on the thread that collects results.
    pub fn progress(mut self, f: impl Fn(usize, Option<usize>) + Send + Sync + 'static) -> Self {
        let cb: ProgressFn = Arc::new(f);
        self.progress = self.progress.with_callback(cb);
        self
    }

    /// Shows a progress bar on the terminal (cargo feature `progress`).
    #[cfg(feature = "progress")]
    pub fn progress_bar(mut self) -> Self {
        self.progress = self.progress.with_bar();
        self
    }

    fn check_chunksize(&self) -> Result<()> {
        if self.chunksize == Some(0) {
            return Err(Error::invalid("chunksize must be at least 1"));
        }
        Ok(())
    }

    /// See [`Pool::map`].
    pub fn map<T, R, M, F>(self, f: F, items: impl IntoIterator<Item = T>) -> Result<Vec<R>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        F: TaskFn<S, T, R, M>,
    {
        self.check_chunksize()?;
        if let Some(e) = self.pool.inner.state_error() {
            return Err(e);
        }
        let func = self.pool.func::<T, R, M, F>(f)?;
        let it = items.into_iter();
        match it.size_hint() {
            (lo, Some(hi)) if lo == hi => self.run_collect(func, it, lo),
            _ => {
                let v: Vec<T> = it.collect();
                let n = v.len();
                self.run_collect(func, v.into_iter(), n)
            }
        }
    }

    fn run_collect<T: Serialize, R, I>(self, func: FuncRef, it: I, len: usize) -> Result<Vec<R>>
    where
        R: DeserializeOwned + Send + 'static,
        I: Iterator<Item = T>,
    {
        let chunksize =
            self.chunksize.unwrap_or_else(|| default_chunksize(len, self.pool.processes()));
        let sink = Arc::new(CollectSink::<R>::new(
            self.progress.is_some().then(|| self.progress.clone()),
            None,
        ));
        let dyn_sink: Arc<dyn Sink> = sink.clone();
        let mut feeder = Feeder::new(it, chunksize.max(1), func, dyn_sink, self.pool.processes());
        let inner = self.pool.inner();
        let guard = Abandon(|| sink.abandon());
        let mut err = None;
        let mut cond = || {
            if let Err(e) = feeder.feed(inner, sink.filled()) {
                err = Some(e);
                return true;
            }
            if feeder.exhausted && !feeder.total_set {
                feeder.total_set = true;
                sink.set_total(feeder.submitted);
            }
            feeder.exhausted && sink.is_complete()
        };
        inner.drive_fg(&mut cond, None);
        std::mem::forget(guard);
        if let Some(e) = err {
            sink.abandon();
            return Err(e);
        }
        sink.take()
    }

    /// See [`Pool::imap`].
    pub fn imap<T, R, M, F, I>(self, f: F, items: I) -> Result<Imap<'p, R, I::IntoIter>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        F: TaskFn<S, T, R, M>,
        I: IntoIterator<Item = T>,
    {
        self.make_imap(f, items, true)
    }

    /// See [`Pool::imap_unordered`].
    pub fn imap_unordered<T, R, M, F, I>(self, f: F, items: I) -> Result<Imap<'p, R, I::IntoIter>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        F: TaskFn<S, T, R, M>,
        I: IntoIterator<Item = T>,
    {
        self.make_imap(f, items, false)
    }

    fn make_imap<T, R, M, F, I>(
        self,
        f: F,
        items: I,
        ordered: bool,
    ) -> Result<Imap<'p, R, I::IntoIter>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        F: TaskFn<S, T, R, M>,
        I: IntoIterator<Item = T>,
    {
        self.check_chunksize()?;
        if let Some(e) = self.pool.inner.state_error() {
            return Err(e);
        }
        let func = self.pool.func::<T, R, M, F>(f)?;
        let it = items.into_iter();
        let progress = self.progress.is_some().then(|| self.progress.clone());
        let sink = Arc::new(StreamSink::<R>::new(ordered, progress));
        let dyn_sink: Arc<dyn Sink> = sink.clone();
        let feeder =
            Feeder::new(it, self.chunksize.unwrap_or(1), func, dyn_sink, self.pool.processes());
        Ok(Imap { inner: self.pool.inner(), sink, feeder, consumed: 0, failed: None, done: false })
    }

    /// See [`Pool::starmap`].
    pub fn starmap<Args, R, F>(self, f: F, items: impl IntoIterator<Item = Args>) -> Result<Vec<R>>
    where
        Args: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        F: StarFn<Args, R>,
    {
        self.map::<Args, R, Plain, _>(Star::new(f), items)
    }

    /// See [`Pool::map_async`].
    pub fn map_async<T, R, M, F>(
        self,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        F: TaskFn<S, T, R, M>,
    {
        self.check_chunksize()?;
        if let Some(e) = self.pool.inner.state_error() {
            return Err(e);
        }
        let func = self.pool.func::<T, R, M, F>(f)?;
        let v: Vec<T> = items.into_iter().collect();
        let n = v.len();
        let chunksize =
            self.chunksize.unwrap_or_else(|| default_chunksize(n, self.pool.processes()));
        let slot = Slot::new(Some(self.pool.inner.driver()));
        let fut = Future::from_slot(slot.clone());
        let progress = self.progress.is_some().then(|| self.progress.clone());
        let sink = Arc::new(CollectSink::<R>::new(progress, Some(slot)));
        let dyn_sink: Arc<dyn Sink> = sink.clone();
        let mut feeder =
            Feeder::new(v.into_iter(), chunksize.max(1), func, dyn_sink, self.pool.processes());
        feeder.window = usize::MAX;
        feeder.feed(self.pool.inner(), 0)?;
        sink.set_total(feeder.submitted);
        Ok(AsyncResult::new(fut))
    }

    /// See [`Pool::starmap_async`].
    pub fn starmap_async<Args, R, F>(
        self,
        f: F,
        items: impl IntoIterator<Item = Args>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        Args: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        F: StarFn<Args, R>,
    {
        self.map_async::<Args, R, Plain, _>(Star::new(f), items)
    }
}

/// Runs a closure on drop unless forgotten (abandons a job whose caller unwinds).
struct Abandon<F: FnMut()>(F);

impl<F: FnMut()> Drop for Abandon<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// Reads a job's input lazily and submits it in chunks.
pub(crate) struct Feeder<I> {
    it: I,
    chunksize: usize,
    func: FuncRef,
    sink: Arc<dyn Sink>,
    /// Items submitted (or failed at encoding).
    pub(crate) submitted: usize,
    pub(crate) exhausted: bool,
    pub(crate) total_set: bool,
    /// Items allowed ahead of the consumer.
    pub(crate) window: usize,
}

impl<I: Iterator> Feeder<I>
where
    I::Item: Serialize,
{
    pub(crate) fn new(
        it: I,
        chunksize: usize,
        func: FuncRef,
        sink: Arc<dyn Sink>,
        workers: usize,
    ) -> Self {
        let window = workers.max(1).saturating_mul(WINDOW_PER_WORKER).saturating_mul(chunksize);
        Feeder {
            it,
            chunksize,
            func,
            sink,
            submitted: 0,
            exhausted: false,
            total_set: false,
            window,
        }
    }

    /// Submits more input while fewer than `window` items are ahead of `consumed`.
    pub(crate) fn feed(&mut self, inner: &Inner, consumed: usize) -> Result<()> {
        while !self.exhausted && self.submitted.saturating_sub(consumed) < self.window {
            let mut batch = Vec::new();
            while batch.len() < SUBMIT_BATCH
                && !self.exhausted
                && self.submitted.saturating_sub(consumed) < self.window
            {
                let first = self.submitted;
                let mut payload = Vec::new();
                let mut count = 0u32;
                while (count as usize) < self.chunksize {
                    let Some(item) = self.it.next() else {
                        self.exhausted = true;
                        break;
                    };
                    match encode_append(&item, &mut payload) {
                        Ok(()) => count += 1,
                        Err(e) => {
                            // The item fails on its own; the chunk ends before it.
                            let idx = (first + count as usize) as u64;
                            if count > 0 {
                                let p = std::mem::take(&mut payload);
                                batch.push(TaskRec::new(
                                    self.sink.clone(),
                                    first as u64,
                                    count,
                                    self.func,
                                    p,
                                ));
                            }
                            let err = Error::new(
                                ErrorKind::Codec,
                                format!("cannot serialise the argument: {e}"),
                            );
                            self.sink.fail(idx, 1, &err);
                            self.submitted = idx as usize + 1;
                            count = 0;
                            break;
                        }
                    }
                }
                if count > 0 {
                    batch.push(TaskRec::new(
                        self.sink.clone(),
                        first as u64,
                        count,
                        self.func,
                        payload,
                    ));
                    self.submitted = first + count as usize;
                }
            }
            if !batch.is_empty() {
                inner.submit(batch)?;
            }
        }
        Ok(())
    }
}

/// The iterator of [`Pool::imap`] / [`Pool::imap_unordered`]: one `Result` per input item.
/// Dropping it abandons the tasks not yet started.
pub struct Imap<'p, R, I> {
    inner: &'p Arc<Inner>,
    sink: Arc<StreamSink<R>>,
    feeder: Feeder<I>,
    consumed: usize,
    failed: Option<Error>,
    done: bool,
}

impl<R, I> fmt::Debug for Imap<'_, R, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap")
            .field("submitted", &self.feeder.submitted)
            .field("consumed", &self.consumed)
            .finish()
    }
}

impl<R, I> Iterator for Imap<'_, R, I>
where
    R: DeserializeOwned + Send + 'static,
    I: Iterator,
    I::Item: Serialize,
{
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        loop {
            if self.done {
                return None;
            }
            if let Some((_, r)) = self.sink.pop() {
                self.consumed += 1;
                return Some(r);
            }
            if let Some(e) = self.failed.take() {
                self.done = true;
                return Some(Err(e));
            }
            if self.feeder.exhausted && self.consumed >= self.feeder.submitted {
                if !self.feeder.total_set {
                    self.feeder.total_set = true;
                    self.sink.set_total(self.feeder.submitted);
                }
                self.done = true;
                return None;
            }
            let (sink, feeder, consumed, failed) =
                (&self.sink, &mut self.feeder, self.consumed, &mut self.failed);
            let inner: &Inner = self.inner;
            let mut cond = || {
                if let Err(e) = feeder.feed(inner, consumed) {
                    *failed = Some(e);
                    return true;
                }
                sink.has_next() || (feeder.exhausted && consumed >= feeder.submitted)
            };
            self.inner.drive_fg(&mut cond, None);
        }
    }
}

impl<R, I> Drop for Imap<'_, R, I> {
    fn drop(&mut self) {
        self.sink.abandon();
    }
}

impl<R: Send + 'static> AsyncResult<R> {
    /// Calls `f` with the value when the call succeeds (Python's `callback`).
    pub fn callback(self, f: impl FnOnce(&R) + Send + 'static) -> Self {
        self.as_future().add_done_callback(move |r| {
            if let Ok(v) = r {
                f(v)
            }
        });
        self
    }

    /// Calls `f` with the error when the call fails (Python's `error_callback`).
    pub fn error_callback(self, f: impl FnOnce(&Error) + Send + 'static) -> Self {
        self.as_future().add_done_callback(move |r| {
            if let Err(e) = r {
                f(e)
            }
        });
        self
    }
}
