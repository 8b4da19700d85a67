//! [`Pool`]: Python's `multiprocessing.Pool`, plus worker state, per-task timeouts and
//! workers whose death fails only their own task.

use crate::core::{Inner, Sink, TaskRec};
use crate::error::{Error, ErrorKind, Result};
use crate::func::{encode_append, FuncRef};
use crate::future::{AsyncResult, Future, Slot};
use crate::insights::WorkerInsights;
use crate::job::{Imap, Job};
use crate::sink::{ChunkSink, SingleSink};
use crate::task::{is_stateful_pointer, pointer_ref, shim_ref, Payload, StarFn, TaskFn};
use multiproc_spawn::StartMethod;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A pool of worker processes (Python's `multiprocessing.Pool`).
///
/// `S` is the per-worker state (see [`PoolBuilder::worker_state`](crate::PoolBuilder::worker_state)); `()` for a plain pool.
/// Dropping the pool terminates it (like leaving Python's `with Pool() as p:`); call
/// [`close`](Self::close) and [`join`](Self::join) first to let queued work finish.
pub struct Pool<S = ()> {
    pub(crate) inner: Arc<Inner>,
    pub(crate) method: StartMethod,
    pub(crate) closure_ok: bool,
    pub(crate) _state: PhantomData<fn(&mut S)>,
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
        Job::new(self)
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
        if let Some(r) = pointer_ref::<S, T, R, M, F>(&f) {
            return r;
        }
        if !self.closure_ok && is_stateful_pointer::<S, T, R, F>(&f) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "a fn pointer that takes the worker state needs the fork start method \
                     (this pool uses {}); pass the function item itself (`f`, not \
                     `f as fn(..)`)",
                    self.method.name()
                ),
            ));
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
        R: Payload,
        F: TaskFn<S, T, R, M>,
    {
        self.job().map(f, items)
    }

    /// Like [`map`](Self::map), yielding each item's outcome in input order as it is ready.
    /// The input is read lazily, at most 4 tasks per worker (`4 × processes × chunksize`
    /// items) ahead of what was consumed, so an endless or slow input works. Chunk size 1
    /// unless set with [`Job::chunksize`].
    ///
    /// If the input iterator panics, every item read before it still runs and is yielded
    /// in order; the `next` call after the last of them resumes the input's panic (its
    /// original payload), and the iterator is then finished (CPython raises the input's
    /// error at its position too; it drops the failing chunk's earlier items, this does
    /// not). The pool stays usable.
    pub fn imap<T, R, M, F, I>(&self, f: F, items: I) -> Result<Imap<'_, R, I::IntoIter>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Payload,
        F: TaskFn<S, T, R, M>,
        I: IntoIterator<Item = T>,
    {
        self.job().imap(f, items)
    }

    /// Like [`imap`](Self::imap), in completion order. An input panic comes after every
    /// item read before it was yielded.
    pub fn imap_unordered<T, R, M, F, I>(&self, f: F, items: I) -> Result<Imap<'_, R, I::IntoIter>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Payload,
        F: TaskFn<S, T, R, M>,
        I: IntoIterator<Item = T>,
    {
        self.job().imap_unordered(f, items)
    }

    /// `map` over tuples spread into `f`'s arguments (`f(a, b)` for each `(a, b)`).
    pub fn starmap<Args, R, F>(&self, f: F, items: impl IntoIterator<Item = Args>) -> Result<Vec<R>>
    where
        Args: Serialize + DeserializeOwned + 'static,
        R: Payload,
        F: StarFn<Args, R>,
    {
        self.job().starmap(f, items)
    }

    /// Runs `f(arg)` in a worker and waits for it.
    pub fn apply<T, R, M, F>(&self, f: F, arg: T) -> Result<R>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Payload,
        F: TaskFn<S, T, R, M>,
    {
        self.apply_async(f, arg)?.get()
    }

    /// Runs `f(arg)` in a worker; the result comes later.
    pub fn apply_async<T, R, M, F>(&self, f: F, arg: T) -> Result<AsyncResult<R>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Payload,
        F: TaskFn<S, T, R, M>,
    {
        Ok(AsyncResult::new(self.submit_one(f, arg)?))
    }

    pub(crate) fn submit_one<T, R, M, F>(&self, f: F, arg: T) -> Result<Future<R>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Payload,
        F: TaskFn<S, T, R, M>,
    {
        let func = self.func::<T, R, M, F>(f)?;
        self.submit_func(func, arg)
    }

    /// Submits `func(arg)` with the function already named ([`func`](Self::func)): a
    /// stream of submissions of one closure registers it once.
    pub(crate) fn submit_func<T, R>(&self, func: FuncRef, arg: T) -> Result<Future<R>>
    where
        T: Serialize,
        R: DeserializeOwned + Send + 'static,
    {
        let slot = Slot::new(Some(self.inner.driver()));
        let fut = Future::from_slot(slot.clone());
        let mut payload = Vec::new();
        if let Err(e) = encode_append(&arg, &mut payload) {
            slot.complete(Err(Error::new(ErrorKind::Codec, e.describe("the argument"))));
            return Ok(fut);
        }
        let sink: Arc<dyn Sink> = Arc::new(SingleSink::first_value(slot));
        self.inner.submit([TaskRec::new(sink, 0, 1, func, payload)])?;
        Ok(fut)
    }

    /// One future per item, `chunksize` items per task (the executor's `map_chunked`). An
    /// item that cannot be serialised fails its own future and is left out of its chunk.
    pub(crate) fn submit_chunked<T, R, M, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
        chunksize: usize,
    ) -> Result<Vec<Future<R>>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Payload,
        F: TaskFn<S, T, R, M>,
    {
        Error::at_least_one("chunksize", chunksize)?;
        let func = self.func::<T, R, M, F>(f)?;
        let mut futs = Vec::new();
        let mut recs = Vec::new();
        let mut it = items.into_iter().peekable();
        while it.peek().is_some() {
            let (mut payload, mut slots) = (Vec::new(), Vec::new());
            for item in it.by_ref().take(chunksize) {
                let slot = Slot::new(Some(self.inner.driver()));
                futs.push(Future::from_slot(slot.clone()));
                match encode_append(&item, &mut payload) {
                    Ok(()) => slots.push(slot),
                    Err(e) => {
                        let what = format!("the argument of item {}", futs.len() - 1);
                        slot.complete(Err(Error::new(ErrorKind::Codec, e.describe(&what))));
                    }
                }
            }
            if !slots.is_empty() {
                let count = slots.len() as u32;
                let sink: Arc<dyn Sink> = Arc::new(ChunkSink::new(slots));
                recs.push(TaskRec::new(sink, 0, count, func, payload));
            }
        }
        if !recs.is_empty() {
            self.inner.submit(recs)?;
        }
        Ok(futs)
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
        R: Payload,
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
        R: Payload,
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
