//! [`Job`]: a job's options and its runs (`map`, `imap`, …); [`Feeder`] reads the input
//! and submits it in chunks; [`Imap`] is the lazy result iterator.

use crate::chunk::default_chunksize;
use crate::core::{Inner, Sink, TaskRec};
use crate::error::{Error, ErrorKind, Result};
use crate::func::{encode_append, FuncRef};
use crate::future::{AsyncResult, Future, Slot};
use crate::pool::Pool;
use crate::progress::{Progress, ProgressFn};
use crate::sink::{CollectSink, StreamSink};
use crate::task::{Payload, Plain, Star, StarFn, TaskFn};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tasks per worker `map` keeps submitted ahead of the results it collected.
const WINDOW_PER_WORKER: usize = 512;
/// Tasks per worker `imap` keeps submitted ahead of what its consumer took: the pool's
/// queue depth (about 2 ms of work per worker) within these bounds — a few tasks when they
/// are long, more only when they are so short that a few would leave workers idle between
/// two `next` calls. An endless or slow input is read only that far ahead.
const IMAP_AHEAD_MIN: usize = 4;
const IMAP_AHEAD_MAX: usize = 64;
/// Tasks handed to the pool per lock.
const SUBMIT_BATCH: usize = 128;
/// Reading the input for longer than this submits what was read and lets the caller look
/// for results (a slow input does not hold back results that are ready).
const FEED_SLICE: Duration = Duration::from_millis(1);

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

impl<'p, S: 'static> Job<'p, S> {
    pub(crate) fn new(pool: &'p Pool<S>) -> Self {
        Job { pool, chunksize: None, progress: Progress::default() }
    }

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

    /// What every run does first: checks the options and the pool, registers `f`.
    fn prepare<T, R, M, F>(&self, f: F) -> Result<FuncRef>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Payload,
        F: TaskFn<S, T, R, M>,
    {
        if let Some(n) = self.chunksize {
            Error::at_least_one("chunksize", n)?;
        }
        if let Some(e) = self.pool.inner.state_error() {
            return Err(e);
        }
        self.pool.func::<T, R, M, F>(f)
    }

    /// See [`Pool::map`].
    pub fn map<T, R, M, F>(self, f: F, items: impl IntoIterator<Item = T>) -> Result<Vec<R>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Payload,
        F: TaskFn<S, T, R, M>,
    {
        let func = self.prepare::<T, R, M, F>(f)?;
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
        R: Payload,
        F: TaskFn<S, T, R, M>,
        I: IntoIterator<Item = T>,
    {
        self.make_imap(f, items, true)
    }

    /// See [`Pool::imap_unordered`].
    pub fn imap_unordered<T, R, M, F, I>(self, f: F, items: I) -> Result<Imap<'p, R, I::IntoIter>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Payload,
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
        R: Payload,
        F: TaskFn<S, T, R, M>,
        I: IntoIterator<Item = T>,
    {
        let func = self.prepare::<T, R, M, F>(f)?;
        let it = items.into_iter();
        let progress = self.progress.is_some().then(|| self.progress.clone());
        let sink = Arc::new(StreamSink::<R>::new(ordered, progress));
        let dyn_sink: Arc<dyn Sink> = sink.clone();
        let chunksize = self.chunksize.unwrap_or(1);
        let workers = self.pool.processes();
        let mut feeder = Feeder::new(it, chunksize, func, dyn_sink, workers);
        feeder.streaming = true;
        feeder.window = feeder.streaming_window(self.pool.inner());
        Ok(Imap { inner: self.pool.inner(), sink, feeder, consumed: 0, failed: None, done: false })
    }

    /// See [`Pool::starmap`].
    pub fn starmap<Args, R, F>(self, f: F, items: impl IntoIterator<Item = Args>) -> Result<Vec<R>>
    where
        Args: Serialize + DeserializeOwned + 'static,
        R: Payload,
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
        R: Payload,
        F: TaskFn<S, T, R, M>,
    {
        let func = self.prepare::<T, R, M, F>(f)?;
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
        R: Payload,
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
    workers: usize,
    /// An `imap`'s feeder: a panic of the input iterator is caught and kept for the
    /// consumer (the input then ends where it panicked), and reading a slow input hands
    /// back to the caller after [`FEED_SLICE`].
    streaming: bool,
    /// The input iterator's panic, caught after `submitted` items.
    panic: Option<Box<dyn Any + Send>>,
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
            workers,
            streaming: false,
            panic: None,
        }
    }

    /// An `imap`'s window: [`IMAP_AHEAD_MIN`]..=[`IMAP_AHEAD_MAX`] tasks per worker.
    fn streaming_window(&self, inner: &Inner) -> usize {
        let per_worker = inner.depth_hint().clamp(IMAP_AHEAD_MIN, IMAP_AHEAD_MAX);
        self.workers.max(1).saturating_mul(per_worker).saturating_mul(self.chunksize)
    }

    /// The next input item; `None` at the end, or after a deferred panic.
    fn next_item(&mut self) -> Option<I::Item> {
        if !self.streaming {
            return self.it.next();
        }
        // The iterator is never touched again after a panic (the input is exhausted).
        match catch_unwind(AssertUnwindSafe(|| self.it.next())) {
            Ok(item) => item,
            Err(p) => {
                self.panic = Some(p);
                None
            }
        }
    }

    /// Submits more input while fewer than `window` items are ahead of `consumed`.
    /// Returns early (with what it read submitted) when the input is slow to read.
    pub(crate) fn feed(&mut self, inner: &Inner, consumed: usize) -> Result<()> {
        let began = Instant::now();
        if self.streaming {
            self.window = self.streaming_window(inner);
        }
        while !self.exhausted && self.submitted.saturating_sub(consumed) < self.window {
            let mut batch = Vec::new();
            let mut slow = false;
            while batch.len() < SUBMIT_BATCH
                && !slow
                && !self.exhausted
                && self.submitted.saturating_sub(consumed) < self.window
            {
                let first = self.submitted;
                let mut payload = Vec::new();
                let mut count = 0u32;
                while (count as usize) < self.chunksize {
                    let Some(item) = self.next_item() else {
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
                                e.describe(&format!("the argument of item {idx}")),
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
                slow = self.streaming && began.elapsed() >= FEED_SLICE;
            }
            if !batch.is_empty() {
                inner.submit(batch)?;
            }
            if slow {
                break;
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
                // Keep the workers fed: top the window up once half of it was consumed.
                let f = &mut self.feeder;
                if !f.exhausted && f.submitted - self.consumed <= f.window / 2 {
                    if let Err(e) = f.feed(self.inner, self.consumed) {
                        self.failed = Some(e);
                    }
                }
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
                if let Some(p) = self.feeder.panic.take() {
                    // Every item read before the input panicked has been yielded.
                    resume_unwind(p);
                }
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
