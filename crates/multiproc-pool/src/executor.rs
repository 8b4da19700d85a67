//! Python's `concurrent.futures`: the [`Executor`] trait, [`ProcessPoolExecutor`] and
//! [`ThreadPoolExecutor`].

use crate::builder::PoolBuilder;
use crate::error::{Error, ErrorKind, Result};
use crate::future::{lock, Future, Slot};
use crate::pool::Pool;
use crate::task::{Payload, Plain, TaskFn};
use multiproc_spawn::StartMethod;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What both executors do: submit a call and get a [`Future`], map, shut down.
pub trait Executor {
    /// Schedules `f(arg)`; [`ErrorKind::NotRunning`] after [`shutdown`](Self::shutdown).
    fn submit<T, R, F>(&self, f: F, arg: T) -> Result<Future<R>>
    where
        T: Payload,
        R: Payload,
        F: Fn(T) -> R + Send + Sync + 'static;

    /// Schedules `f` on every item at once; the iterator yields the outcomes in input order.
    fn map<T, R, F, I>(&self, f: F, items: I) -> Result<ExecutorMap<R>>
    where
        T: Payload,
        R: Payload,
        F: Fn(T) -> R + Send + Sync + Clone + 'static,
        I: IntoIterator<Item = T>,
    {
        let mut futs = VecDeque::new();
        for item in items {
            futs.push_back(self.submit(f.clone(), item)?);
        }
        Ok(ExecutorMap { futs, deadline: None, finished: false })
    }

    /// [`map`](Self::map) with `chunksize` items per task (CPython's
    /// `Executor.map(..., chunksize=)`): fewer, larger tasks for a process pool, each
    /// item still its own outcome in input order (an item's error at its own position).
    /// A chunk's items share its fate if its worker dies. Executors without tasks to batch
    /// (threads) ignore it, as CPython's `ThreadPoolExecutor` does; 0 is an
    /// [`InvalidArgument`](ErrorKind::InvalidArgument) error.
    fn map_chunked<T, R, F, I>(&self, f: F, items: I, chunksize: usize) -> Result<ExecutorMap<R>>
    where
        T: Payload,
        R: Payload,
        F: Fn(T) -> R + Send + Sync + Clone + 'static,
        I: IntoIterator<Item = T>,
    {
        Error::at_least_one("chunksize", chunksize)?;
        self.map(f, items)
    }

    /// [`map`](Self::map) whose iterator gives up `timeout` after this call: it then yields
    /// one [`ErrorKind::Timeout`] error, cancels what has not started, and ends.
    fn map_timeout<T, R, F, I>(&self, f: F, items: I, timeout: Duration) -> Result<ExecutorMap<R>>
    where
        T: Payload,
        R: Payload,
        F: Fn(T) -> R + Send + Sync + Clone + 'static,
        I: IntoIterator<Item = T>,
    {
        let deadline = Instant::now() + timeout;
        let mut m = self.map(f, items)?;
        m.deadline = Some(deadline);
        Ok(m)
    }

    /// [`map`](Self::map) that reads `items` lazily (CPython 3.14's
    /// `Executor.map(..., buffersize=N)`): at most `buffersize` submitted tasks whose results
    /// have not been yielded yet. The first `buffersize` items are submitted now; each `next`
    /// tops the window up to `buffersize` (one item read per result taken), then waits for
    /// the oldest. So an endless input works, and an unconsumed map has read exactly
    /// `buffersize` items. Outcomes come in input order, an item's error at its own
    /// position; dropping the iterator cancels what has not started. A submission that
    /// fails later (the executor was shut down) is yielded after the results already
    /// submitted, and ends the iteration. 0 is an
    /// [`InvalidArgument`](ErrorKind::InvalidArgument) error.
    fn map_buffered<'a, T, R, F, I>(
        &'a self,
        f: F,
        items: I,
        buffersize: usize,
    ) -> Result<BufferedMap<'a, T, R>>
    where
        T: Payload,
        R: Payload,
        F: Fn(T) -> R + Send + Sync + Clone + 'static,
        I: IntoIterator<Item = T>,
        I::IntoIter: 'a,
    {
        BufferedMap::new(move |item| self.submit(f.clone(), item), items, buffersize)
    }

    /// Stops accepting work. `cancel_futures` cancels what has not started; `wait` blocks
    /// until everything started has finished and the workers are gone.
    fn shutdown(&self, wait: bool, cancel_futures: bool);
}

/// The iterator of [`Executor::map`].
pub struct ExecutorMap<R> {
    futs: VecDeque<Future<R>>,
    deadline: Option<Instant>,
    finished: bool,
}

impl<R> ExecutorMap<R> {
    /// The iterator over `futures`, in order (for executors with their own `map`).
    pub fn from_futures(futures: impl IntoIterator<Item = Future<R>>) -> Self {
        ExecutorMap { futs: futures.into_iter().collect(), deadline: None, finished: false }
    }

    /// Gives up at `deadline`, as [`Executor::map_timeout`] does.
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }
}

impl<R> fmt::Debug for ExecutorMap<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorMap").field("left", &self.futs.len()).finish()
    }
}

impl<R> Iterator for ExecutorMap<R> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        if self.finished {
            return None;
        }
        let mut fut = self.futs.pop_front()?;
        let r = match self.deadline {
            None => fut.result(),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                match fut.result_timeout(left) {
                    Err(e) if e.kind() == ErrorKind::Timeout => {
                        fut.cancel();
                        for f in self.futs.drain(..) {
                            f.cancel();
                        }
                        self.finished = true;
                        Err(e)
                    }
                    other => other,
                }
            }
        };
        Some(r)
    }
}

impl<R> Drop for ExecutorMap<R> {
    fn drop(&mut self) {
        // Closing the iterator cancels what has not started (Python's map close).
        for f in self.futs.drain(..) {
            f.cancel();
        }
    }
}

type Submit<'a, T, R> = Box<dyn FnMut(T) -> Result<Future<R>> + 'a>;

/// The iterator of [`Executor::map_buffered`]: reads its input as results are taken, with at
/// most `buffersize` submitted tasks whose results have not been yielded.
pub struct BufferedMap<'a, T, R> {
    submit: Submit<'a, T, R>,
    /// `None` once the input ended or a submission failed.
    items: Option<Box<dyn Iterator<Item = T> + 'a>>,
    futs: VecDeque<Future<R>>,
    buffersize: usize,
    /// A submission's error, yielded after the futures before it.
    failed: Option<Error>,
}

impl<'a, T, R> BufferedMap<'a, T, R> {
    /// Submits the first `buffersize` items with `submit`; an error there is returned (as
    /// [`Executor::map`] returns it), with what was submitted cancelled.
    pub fn new<I>(
        submit: impl FnMut(T) -> Result<Future<R>> + 'a,
        items: I,
        buffersize: usize,
    ) -> Result<Self>
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: 'a,
    {
        Error::at_least_one("buffersize", buffersize)?;
        let mut m = BufferedMap {
            submit: Box::new(submit),
            items: Some(Box::new(items.into_iter())),
            futs: VecDeque::with_capacity(buffersize),
            buffersize,
            failed: None,
        };
        m.fill();
        match m.failed.take() {
            Some(e) => Err(e),
            None => Ok(m),
        }
    }

    /// Submits items until `buffersize` results are outstanding or the input ends.
    fn fill(&mut self) {
        while self.futs.len() < self.buffersize {
            let Some(items) = self.items.as_mut() else { return };
            let Some(item) = items.next() else {
                self.items = None;
                return;
            };
            match (self.submit)(item) {
                Ok(f) => self.futs.push_back(f),
                Err(e) => {
                    self.failed = Some(e);
                    self.items = None;
                }
            }
        }
    }

    /// Tasks submitted whose results have not been yielded.
    pub fn outstanding(&self) -> usize {
        self.futs.len()
    }
}

impl<T, R> fmt::Debug for BufferedMap<'_, T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferedMap")
            .field("buffersize", &self.buffersize)
            .field("outstanding", &self.futs.len())
            .field("input_done", &self.items.is_none())
            .finish()
    }
}

impl<T, R> Iterator for BufferedMap<'_, T, R> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        self.fill();
        match self.futs.pop_front() {
            Some(f) => Some(f.result()),
            None => self.failed.take().map(Err),
        }
    }
}

impl<T, R> Drop for BufferedMap<'_, T, R> {
    fn drop(&mut self) {
        // As `ExecutorMap`: closing the iterator cancels what has not started.
        for f in self.futs.drain(..) {
            f.cancel();
        }
    }
}

/// Python's `ProcessPoolExecutor`, on a [`Pool`]: submit calls, get [`Future`]s. A worker
/// that dies fails only the future it was running (CPython breaks the whole executor).
///
/// As CPython's (3.9+), workers start on demand: none at first, then one more whenever a
/// task is queued and no worker is idle, up to `max_workers`; idle workers are reused (three
/// `submit(..).result()` in a row use one process). Under [`StartMethod::Fork`] all start
/// at once, as CPython's do: starting one later would fork a parent whose other threads may
/// hold locks.
pub struct ProcessPoolExecutor<S = ()> {
    pool: Pool<S>,
}

impl<S> fmt::Debug for ProcessPoolExecutor<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPoolExecutor").field("pool", &self.pool).finish()
    }
}

impl ProcessPoolExecutor {
    /// An executor of up to `max_workers` processes with the default start method; 0 is an
    /// error.
    pub fn new(max_workers: usize) -> Result<Self> {
        Self::from_builder(Pool::builder().processes(max_workers))
    }

    /// The executor's builder: its settings are the pool's (processes, start method,
    /// initializer, worker state, `max_tasks_per_child`, task timeout); finish with
    /// [`ExecutorBuilder::build`].
    pub fn builder() -> ExecutorBuilder {
        ExecutorBuilder(Pool::builder())
    }
}

/// Builds a [`ProcessPoolExecutor`] ([`ProcessPoolExecutor::builder`]): the pool's settings,
/// whose `build` makes the executor. The usual two have setters here; any other
/// [`PoolBuilder`] setting goes through [`pool`](Self::pool):
/// `ProcessPoolExecutor::builder().processes(4).pool(|b| b.max_tasks_per_child(100)).build()`.
#[derive(Debug)]
pub struct ExecutorBuilder<S = ()>(PoolBuilder<S>);

impl<S: 'static> ExecutorBuilder<S> {
    /// Applies `f` to the pool settings (any [`PoolBuilder`] setter).
    pub fn pool<T>(self, f: impl FnOnce(PoolBuilder<S>) -> PoolBuilder<T>) -> ExecutorBuilder<T> {
        ExecutorBuilder(f(self.0))
    }

    /// Up to `n` worker processes (CPython's `max_workers`); 0 is an error at `build`.
    pub fn processes(self, n: usize) -> Self {
        ExecutorBuilder(self.0.processes(n))
    }

    /// The start method of the workers.
    pub fn start_method(self, method: StartMethod) -> Self {
        ExecutorBuilder(self.0.start_method(method))
    }

    /// The executor; see [`ProcessPoolExecutor::from_builder`].
    pub fn build(self) -> Result<ProcessPoolExecutor<S>> {
        ProcessPoolExecutor::from_builder(self.0)
    }
}

impl<S: 'static> ProcessPoolExecutor<S> {
    /// An executor from pool settings (initializer, worker state, `max_tasks_per_child`,
    /// per-task timeout, start method). As CPython's, it refuses `max_tasks_per_child`
    /// with the fork start method ([`Unsupported`](crate::ErrorKind::Unsupported)): a
    /// recycled worker would be forked from a parent whose other threads may hold locks
    /// (`Pool` allows it, as CPython's `Pool` does).
    pub fn from_builder(b: PoolBuilder<S>) -> Result<Self> {
        if b.recycles_under_fork() {
            return Err(crate::Error::new(
                crate::ErrorKind::Unsupported,
                "max_tasks_per_child is incompatible with the fork start method",
            ));
        }
        // As CPython (3.9+): workers start on demand and idle ones are reused, except under
        // fork, where all start at once (forking later means forking a parent whose other
        // threads may hold locks).
        let on_demand = b.method() != StartMethod::Fork;
        Ok(ProcessPoolExecutor { pool: b.on_demand(on_demand).build()? })
    }

    /// The pool underneath (insights, worker pids).
    pub fn pool(&self) -> &Pool<S> {
        &self.pool
    }

    /// Schedules `f(state, arg)` or `f(arg)` (any [`TaskFn`]).
    pub fn submit_with<T, R, M, F>(&self, f: F, arg: T) -> Result<Future<R>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Payload,
        F: TaskFn<S, T, R, M>,
    {
        self.pool.submit_one(f, arg)
    }
}

impl<S: 'static> Executor for ProcessPoolExecutor<S> {
    fn submit<T, R, F>(&self, f: F, arg: T) -> Result<Future<R>>
    where
        T: Payload,
        R: Payload,
        F: Fn(T) -> R + Send + Sync + 'static,
    {
        self.pool.submit_one::<T, R, Plain, F>(f, arg)
    }

    fn map_chunked<T, R, F, I>(&self, f: F, items: I, chunksize: usize) -> Result<ExecutorMap<R>>
    where
        T: Payload,
        R: Payload,
        F: Fn(T) -> R + Send + Sync + Clone + 'static,
        I: IntoIterator<Item = T>,
    {
        let futs = self.pool.submit_chunked::<T, R, Plain, F>(f, items, chunksize)?;
        Ok(ExecutorMap::from_futures(futs))
    }

    /// As the trait's, with the function named once for the whole stream (a capturing
    /// closure under fork is registered once, not once per item).
    fn map_buffered<'a, T, R, F, I>(
        &'a self,
        f: F,
        items: I,
        buffersize: usize,
    ) -> Result<BufferedMap<'a, T, R>>
    where
        T: Payload,
        R: Payload,
        F: Fn(T) -> R + Send + Sync + Clone + 'static,
        I: IntoIterator<Item = T>,
        I::IntoIter: 'a,
    {
        Error::at_least_one("buffersize", buffersize)?;
        let func = self.pool.func::<T, R, Plain, F>(f)?;
        BufferedMap::new(move |item| self.pool.submit_func(func, item), items, buffersize)
    }

    fn shutdown(&self, wait: bool, cancel_futures: bool) {
        let inner = self.pool.inner();
        if cancel_futures {
            inner.cancel_pending();
        }
        inner.close();
        if wait {
            let _ = inner.join(None);
        }
    }
}

impl<S> Drop for ProcessPoolExecutor<S> {
    fn drop(&mut self) {
        // Python's `with` block: shutdown(wait=True); the pool's own drop then terminates.
        let inner = self.pool.inner();
        inner.close();
        let _ = inner.join(None);
    }
}

type Job = Box<dyn FnOnce(bool) + Send>;

struct TpState {
    jobs: VecDeque<Job>,
    shutdown: bool,
    idle: usize,
    threads: usize,
    running: usize,
}

struct TpShared {
    st: Mutex<TpState>,
    cv: Condvar,
    done_cv: Condvar,
}

/// Python's `ThreadPoolExecutor`: the same [`Executor`] on threads of this process.
/// Threads start on demand up to `max_workers`.
pub struct ThreadPoolExecutor {
    shared: Arc<TpShared>,
    max_workers: usize,
    handles: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl fmt::Debug for ThreadPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolExecutor").field("max_workers", &self.max_workers).finish()
    }
}

impl ThreadPoolExecutor {
    /// An executor of up to `max_workers` threads; 0 is an error.
    pub fn new(max_workers: usize) -> Result<Self> {
        if max_workers == 0 {
            return Err(Error::invalid("max_workers must be greater than 0"));
        }
        Ok(ThreadPoolExecutor {
            shared: Arc::new(TpShared {
                st: Mutex::new(TpState {
                    jobs: VecDeque::new(),
                    shutdown: false,
                    idle: 0,
                    threads: 0,
                    running: 0,
                }),
                cv: Condvar::new(),
                done_cv: Condvar::new(),
            }),
            max_workers,
            handles: Mutex::new(Vec::new()),
        })
    }

    /// Schedules any closure (threads need no serialisation).
    pub fn spawn<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<Future<R>> {
        let slot = Slot::<R>::new(None);
        let fut = Future::from_slot(slot.clone());
        let job: Job = Box::new(move |run: bool| {
            if !run {
                slot.cancel();
                return;
            }
            if !slot.set_running() {
                return;
            }
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                .map_err(|p| Error::new(ErrorKind::Panicked, crate::func::panic_message(p)));
            slot.complete(r);
        });
        let mut st = lock(&self.shared.st);
        if st.shutdown {
            return Err(Error::new(
                ErrorKind::NotRunning,
                "cannot schedule new futures after shutdown",
            ));
        }
        st.jobs.push_back(job);
        if st.idle == 0 && st.threads < self.max_workers {
            st.threads += 1;
            let shared = self.shared.clone();
            let h = std::thread::Builder::new()
                .name("ThreadPoolExecutor".into())
                .spawn(move || thread_main(shared))
                .map_err(|e| Error::io(ErrorKind::Spawn, e, "cannot start a thread"));
            match h {
                Ok(h) => lock(&self.handles).push(h),
                Err(e) => {
                    st.threads -= 1;
                    if st.threads == 0 {
                        st.jobs.pop_back();
                        return Err(e);
                    }
                }
            }
        }
        drop(st);
        self.shared.cv.notify_one();
        Ok(fut)
    }
}

fn thread_main(shared: Arc<TpShared>) {
    let mut st = lock(&shared.st);
    loop {
        if let Some(job) = st.jobs.pop_front() {
            st.running += 1;
            drop(st);
            job(true);
            st = lock(&shared.st);
            st.running -= 1;
            shared.done_cv.notify_all();
            continue;
        }
        if st.shutdown {
            st.threads -= 1;
            shared.done_cv.notify_all();
            return;
        }
        st.idle += 1;
        st = shared.cv.wait(st).unwrap_or_else(|p| p.into_inner());
        st.idle -= 1;
    }
}

impl Executor for ThreadPoolExecutor {
    fn submit<T, R, F>(&self, f: F, arg: T) -> Result<Future<R>>
    where
        T: Payload,
        R: Payload,
        F: Fn(T) -> R + Send + Sync + 'static,
    {
        self.spawn(move || f(arg))
    }

    fn shutdown(&self, wait: bool, cancel_futures: bool) {
        let mut st = lock(&self.shared.st);
        st.shutdown = true;
        let cancelled: Vec<Job> =
            if cancel_futures { st.jobs.drain(..).collect() } else { Vec::new() };
        drop(st);
        for j in cancelled {
            j(false);
        }
        self.shared.cv.notify_all();
        if wait {
            let handles: Vec<_> = lock(&self.handles).drain(..).collect();
            let me = std::thread::current().id();
            for h in handles {
                if h.thread().id() != me {
                    let _ = h.join();
                }
            }
        }
    }
}

impl Drop for ThreadPoolExecutor {
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}
