//! [`Future`]: the result of a submitted task, with Python's `concurrent.futures.Future`
//! methods and `std::future::Future`; [`wait`] and [`as_completed`] over many of them.
//!
//! A future's life: *pending* (queued in the parent) → *running* (handed to a worker) →
//! *finished* (a value or an [`Error`]); or pending → *cancelled*. Done-callbacks run once, on
//! the thread that finishes the future (a pool's result collector, or the thread that
//! cancels it); a callback added after the end runs at once on the caller's thread. Waiting
//! on many futures is in [`crate::wait`].

use crate::error::{Error, ErrorKind, Result};
use crate::wait::{Listener, Waitable};
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Something that makes progress on behalf of a waiting thread (a process pool collects
/// results on the waiter's own thread, so a `result()` right after a `submit()` costs no
/// thread hand-off).
pub(crate) trait Driver: Send + Sync {
    /// Drives the pool until `cond()` holds or `deadline` passes; returns `cond()`.
    fn drive_until(&self, cond: &mut dyn FnMut() -> bool, deadline: Option<Instant>) -> bool;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pending,
    Running,
    Finished,
    Cancelled,
}

type Callback<R> = Box<dyn FnOnce(Result<&R, &Error>) + Send>;

struct State<R> {
    phase: Phase,
    /// `Some` from the end until the result is taken (out while callbacks borrow it).
    outcome: Option<Result<R>>,
    /// A thread is running callbacks with the outcome taken out of the lock.
    lent: bool,
    taken: bool,
    failed: bool,
    callbacks: Vec<Callback<R>>,
    waker: Option<Waker>,
    listeners: Vec<(Arc<Listener>, usize)>,
}

/// The shared state behind a [`Future`].
pub(crate) struct Slot<R> {
    state: Mutex<State<R>>,
    cv: Condvar,
    driver: Option<Weak<dyn Driver>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<R> Slot<R> {
    pub(crate) fn new(driver: Option<Weak<dyn Driver>>) -> Arc<Self> {
        Arc::new(Slot {
            state: Mutex::new(State {
                phase: Phase::Pending,
                outcome: None,
                lent: false,
                taken: false,
                failed: false,
                callbacks: Vec::new(),
                waker: None,
                listeners: Vec::new(),
            }),
            cv: Condvar::new(),
            driver,
        })
    }

    /// Pending → running; false if the future was cancelled (the task must not run).
    pub(crate) fn set_running(&self) -> bool {
        let mut s = lock(&self.state);
        match s.phase {
            Phase::Pending => {
                s.phase = Phase::Running;
                true
            }
            Phase::Running => true,
            _ => false,
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        lock(&self.state).phase == Phase::Cancelled
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(lock(&self.state).phase, Phase::Finished | Phase::Cancelled)
    }

    /// Finishes the future with `r`; false (and `r` dropped) if it already ended.
    pub(crate) fn complete(&self, r: Result<R>) -> bool {
        let mut s = lock(&self.state);
        if matches!(s.phase, Phase::Finished | Phase::Cancelled) {
            return false;
        }
        s.phase = Phase::Finished;
        s.failed = r.is_err();
        s.outcome = Some(r);
        self.finish(s);
        true
    }

    /// Pending → cancelled (callbacks see [`ErrorKind::Cancelled`]); true also if it was
    /// cancelled already.
    pub(crate) fn cancel(&self) -> bool {
        let mut s = lock(&self.state);
        match s.phase {
            Phase::Cancelled => true,
            Phase::Pending => {
                s.phase = Phase::Cancelled;
                s.failed = true;
                s.outcome = Some(Err(Error::kind_only(ErrorKind::Cancelled)));
                self.finish(s);
                true
            }
            _ => false,
        }
    }

    /// Runs the pending callbacks with the outcome lent out of the lock, then wakes
    /// everyone.
    fn finish<'a>(&'a self, mut s: MutexGuard<'a, State<R>>) {
        let listeners = std::mem::take(&mut s.listeners);
        s = self.run_pending_callbacks(s);
        let waker = s.waker.take();
        drop(s);
        self.cv.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
        for (l, tag) in listeners {
            l.notify(tag);
        }
    }

    /// Runs the queued callbacks (repeatedly, for any added meanwhile) outside the lock.
    fn run_pending_callbacks<'a>(
        &'a self,
        mut s: MutexGuard<'a, State<R>>,
    ) -> MutexGuard<'a, State<R>> {
        while !s.callbacks.is_empty() && !s.lent {
            let Some(out) = s.outcome.take() else { break };
            let cbs = std::mem::take(&mut s.callbacks);
            s.lent = true;
            drop(s);
            run_callbacks(cbs, &out);
            s = lock(&self.state);
            s.lent = false;
            s.outcome = Some(out);
        }
        s
    }

    fn add_callback(&self, cb: Callback<R>) {
        let mut s = lock(&self.state);
        match s.phase {
            Phase::Pending | Phase::Running => s.callbacks.push(cb),
            _ if s.taken => {
                drop(s);
                run_callbacks(vec![cb], &Err(Error::kind_only(ErrorKind::AlreadyTaken)));
            }
            _ => {
                s.callbacks.push(cb);
                // If another thread is lending the outcome, it runs this one too.
                let s = self.run_pending_callbacks(s);
                let waker = if s.lent { None } else { Some(()) };
                drop(s);
                if waker.is_some() {
                    self.cv.notify_all();
                }
            }
        }
    }

    /// Takes the outcome if the future ended and no callback holds it.
    fn try_take(&self, s: &mut State<R>) -> Option<Result<R>> {
        if !matches!(s.phase, Phase::Finished | Phase::Cancelled) || s.lent {
            return None;
        }
        if s.taken {
            return Some(Err(Error::kind_only(ErrorKind::AlreadyTaken)));
        }
        let out = s.outcome.take()?;
        s.taken = true;
        Some(out)
    }

    /// Blocks until the future ended (and its callbacks ran) or `deadline` passes.
    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        let ready = |s: &State<R>| matches!(s.phase, Phase::Finished | Phase::Cancelled) && !s.lent;
        if let Some(d) = self.driver.as_ref().and_then(|w| w.upgrade()) {
            let mut cond = || ready(&lock(&self.state));
            if d.drive_until(&mut cond, deadline) {
                return true;
            }
            // The driver gives up only at the deadline.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return ready(&lock(&self.state));
            }
        }
        let mut s = lock(&self.state);
        loop {
            if ready(&s) {
                return true;
            }
            match deadline {
                None => s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return false;
                    }
                    s = self.cv.wait_timeout(s, d - now).unwrap_or_else(|p| p.into_inner()).0;
                }
            }
        }
    }
}

fn run_callbacks<R>(cbs: Vec<Callback<R>>, out: &Result<R>) {
    for cb in cbs {
        let arg = match out {
            Ok(v) => Ok(v),
            Err(e) => Err(e),
        };
        // A panicking callback must not stop the others (Python logs and goes on).
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(arg))).is_err() {
            eprintln!("multiproc-pool: a done-callback panicked");
        }
    }
}

/// The result of a task submitted to an executor: Python's `concurrent.futures.Future`.
///
/// `result()` blocks for the value (or the task's [`Error`]); `.await` does the same in
/// async code, with no runtime dependency. The future owns the value: `result` consumes it,
/// `result_timeout` takes it when it is there.
pub struct Future<R> {
    slot: Arc<Slot<R>>,
}

impl<R> Future<R> {
    pub(crate) fn from_slot(slot: Arc<Slot<R>>) -> Self {
        Future { slot }
    }

    /// A future that is already finished with `r` (for tests and adapters).
    pub fn ready(r: Result<R>) -> Self {
        let slot = Slot::new(None);
        slot.complete(r);
        Future { slot }
    }

    /// Blocks until the task ends; its value, or why it has none.
    pub fn result(self) -> Result<R> {
        let mut this = self;
        this.take_until(None)
    }

    /// Like [`result`](Self::result), giving up after `timeout` with an error of kind
    /// [`ErrorKind::Timeout`] (the future stays usable). A successful call takes the value:
    /// later calls return [`ErrorKind::AlreadyTaken`].
    pub fn result_timeout(&mut self, timeout: Duration) -> Result<R> {
        self.take_until(Some(Instant::now() + timeout))
    }

    /// The value if the task has ended, without blocking; an error of kind
    /// [`ErrorKind::NotReady`] (`is_would_block()`) while it has not.
    pub fn try_result(&mut self) -> Result<R> {
        let mut s = lock(&self.slot.state);
        self.slot.try_take(&mut s).unwrap_or_else(|| Err(Error::kind_only(ErrorKind::NotReady)))
    }

    fn take_until(&mut self, deadline: Option<Instant>) -> Result<R> {
        loop {
            {
                let mut s = lock(&self.slot.state);
                if let Some(r) = self.slot.try_take(&mut s) {
                    return r;
                }
            }
            if !self.slot.wait_until(deadline) {
                return Err(Error::kind_only(ErrorKind::Timeout));
            }
        }
    }

    /// Blocks until the task ends, without taking the value.
    pub fn wait(&self) {
        self.slot.wait_until(None);
    }

    /// Blocks up to `timeout` until the task ends; an error of kind [`ErrorKind::Timeout`]
    /// (`is_timeout()`) if it has not by then.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        if self.slot.wait_until(Some(Instant::now() + timeout)) {
            Ok(())
        } else {
            Err(Error::kind_only(ErrorKind::Timeout))
        }
    }

    /// Cancels the task if it has not started: true if it is (now) cancelled, false if it is
    /// running or finished.
    pub fn cancel(&self) -> bool {
        self.slot.cancel()
    }

    /// Whether the task was cancelled.
    pub fn cancelled(&self) -> bool {
        self.slot.is_cancelled()
    }

    /// Whether the task has been handed to a worker and has not finished.
    pub fn running(&self) -> bool {
        lock(&self.slot.state).phase == Phase::Running
    }

    /// Whether the task finished or was cancelled.
    pub fn done(&self) -> bool {
        self.slot.is_done()
    }

    /// The task's error, if it ended with one (`None` while pending or on success).
    pub fn error(&self) -> Option<Error> {
        let s = lock(&self.slot.state);
        match &s.outcome {
            Some(Err(e)) => Some(e.clone()),
            None if s.failed && s.phase == Phase::Cancelled => {
                Some(Error::kind_only(ErrorKind::Cancelled))
            }
            _ => None,
        }
    }

    /// Calls `f` with the outcome when the task ends (at once if it has). `f` runs on the
    /// thread that finishes the task; keep it short. A panic in `f` is caught and reported.
    pub fn add_done_callback(&self, f: impl FnOnce(Result<&R, &Error>) + Send + 'static) {
        self.slot.add_callback(Box::new(f));
    }

    pub(crate) fn handle(&self) -> Arc<dyn Waitable>
    where
        R: Send + 'static,
    {
        self.slot.clone()
    }
}

impl<R> fmt::Debug for Future<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.slot.state);
        let state = match (s.phase, s.failed) {
            (Phase::Pending, _) => "pending",
            (Phase::Running, _) => "running",
            (Phase::Cancelled, _) => "cancelled",
            (Phase::Finished, true) => "finished (error)",
            (Phase::Finished, false) => "finished",
        };
        f.debug_struct("Future").field("state", &state).finish()
    }
}

impl<R> std::future::Future for Future<R> {
    type Output = Result<R>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<R>> {
        let mut s = lock(&self.slot.state);
        if let Some(r) = self.slot.try_take(&mut s) {
            return Poll::Ready(r);
        }
        if s.lent {
            // Callbacks are running; their end notifies the condvar, not the waker: poll
            // again soon.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// Python's `multiprocessing.pool.AsyncResult`: the result of `apply_async` / `map_async`.
pub struct AsyncResult<R> {
    fut: Future<R>,
}

impl<R> AsyncResult<R> {
    pub(crate) fn new(fut: Future<R>) -> Self {
        AsyncResult { fut }
    }

    /// Blocks for the result.
    pub fn get(self) -> Result<R> {
        self.fut.result()
    }

    /// Blocks up to `timeout`; [`ErrorKind::Timeout`] leaves the result pending.
    pub fn get_timeout(&mut self, timeout: Duration) -> Result<R> {
        self.fut.result_timeout(timeout)
    }

    /// Blocks until the result is ready.
    pub fn wait(&self) {
        self.fut.wait()
    }

    /// Blocks up to `timeout` until the result is ready; an error of kind
    /// [`ErrorKind::Timeout`] (`is_timeout()`) if it is not by then.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        self.fut.wait_timeout(timeout)
    }

    /// Whether the call has completed.
    pub fn ready(&self) -> bool {
        self.fut.done()
    }

    /// Whether the call completed without error; an [`ErrorKind::InvalidArgument`] error if
    /// it is not ready (Python raises `ValueError`).
    pub fn successful(&self) -> Result<bool> {
        if !self.ready() {
            return Err(Error::invalid("the result is not ready"));
        }
        Ok(self.fut.error().is_none())
    }

    pub(crate) fn as_future(&self) -> &Future<R> {
        &self.fut
    }

    /// The underlying future.
    pub fn into_future(self) -> Future<R> {
        self.fut
    }
}

impl<R> fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult").field("future", &self.fut).finish()
    }
}

impl<R: Send + 'static> Waitable for Slot<R> {
    fn listen(&self, l: &Arc<Listener>, tag: usize) -> bool {
        let mut s = lock(&self.state);
        if matches!(s.phase, Phase::Finished | Phase::Cancelled) {
            return false;
        }
        s.listeners.push((l.clone(), tag));
        true
    }

    fn unlisten(&self, l: &Arc<Listener>) {
        lock(&self.state).listeners.retain(|(x, _)| !Arc::ptr_eq(x, l));
    }

    /// (done, raised): `raised` only for a task that finished with an error — a cancelled
    /// future did not raise (CPython's `FIRST_EXCEPTION` does not return for it).
    fn state(&self) -> (bool, bool) {
        let s = lock(&self.state);
        (
            matches!(s.phase, Phase::Finished | Phase::Cancelled),
            s.phase == Phase::Finished && s.failed,
        )
    }

    fn driver(&self) -> Option<Arc<dyn Driver>> {
        self.driver.as_ref().and_then(|w| w.upgrade())
    }
}

/// A pending future and its slot, for tests.
#[cfg(test)]
pub(crate) fn pending<R>() -> (Future<R>, Arc<Slot<R>>) {
    let slot = Slot::new(None);
    (Future::from_slot(slot.clone()), slot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future as _;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    #[test]
    fn callbacks_run_on_result_error_cancel_and_after_the_end() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (f, slot) = pending::<i32>();
        let s2 = seen.clone();
        f.add_done_callback(move |r| s2.lock().unwrap().push(format!("{:?}", r.copied())));
        assert!(!f.done() && !f.running());
        assert!(slot.set_running());
        assert!(f.running());
        assert!(slot.complete(Ok(5)));
        assert!(!slot.complete(Ok(6)), "a second completion is refused");
        let s3 = seen.clone();
        f.add_done_callback(move |r| s3.lock().unwrap().push(format!("late {:?}", r.copied())));
        assert_eq!(*seen.lock().unwrap(), vec!["Ok(5)".to_string(), "late Ok(5)".to_string()]);
        assert_eq!(f.result().unwrap(), 5);

        let (f, slot) = pending::<i32>();
        f.add_done_callback(|_| panic!("a panicking callback"));
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        f.add_done_callback(move |r| {
            assert_eq!(r.unwrap_err().kind(), ErrorKind::Panicked);
            h.fetch_add(1, Ordering::SeqCst);
        });
        slot.complete(Err(Error::new(ErrorKind::Panicked, "boom")));
        assert_eq!(hits.load(Ordering::SeqCst), 1, "later callbacks still run");
        assert_eq!(f.error().unwrap().kind(), ErrorKind::Panicked);

        let (f, _slot) = pending::<i32>();
        let h = hits.clone();
        f.add_done_callback(move |r| {
            assert_eq!(r.unwrap_err().kind(), ErrorKind::Cancelled);
            h.fetch_add(1, Ordering::SeqCst);
        });
        assert!(f.cancel() && f.cancel() && f.cancelled() && f.done());
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert_eq!(f.result().unwrap_err().kind(), ErrorKind::Cancelled);
    }

    #[test]
    fn cancel_refused_once_running_or_finished() {
        let (f, slot) = pending::<i32>();
        slot.set_running();
        assert!(!f.cancel() && !f.cancelled());
        slot.complete(Ok(1));
        assert!(!f.cancel());
        let (f, slot) = pending::<i32>();
        assert!(f.cancel());
        assert!(!slot.set_running(), "a cancelled task is not started");
    }

    #[test]
    fn result_timeout_table() {
        let (mut f, slot) = pending::<i32>();
        let t = Instant::now();
        assert_eq!(f.result_timeout(Duration::ZERO).unwrap_err().kind(), ErrorKind::Timeout);
        assert_eq!(
            f.result_timeout(Duration::from_millis(50)).unwrap_err().kind(),
            ErrorKind::Timeout
        );
        assert!(t.elapsed() >= Duration::from_millis(50));
        let th = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            slot.complete(Ok(42));
        });
        assert_eq!(f.result_timeout(Duration::from_secs(5)).unwrap(), 42);
        assert_eq!(f.result_timeout(Duration::ZERO).unwrap_err().kind(), ErrorKind::AlreadyTaken);
        th.join().unwrap();
        let mut f = Future::ready(Err::<i32, _>(Error::kind_only(ErrorKind::Codec)));
        assert_eq!(f.result_timeout(Duration::ZERO).unwrap_err().kind(), ErrorKind::Codec);
    }

    struct CountWake(AtomicUsize);
    impl Wake for CountWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn poll_registers_the_waker() {
        let (mut f, slot) = pending::<String>();
        let w = Arc::new(CountWake(AtomicUsize::new(0)));
        let waker = Waker::from(w.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        slot.complete(Ok("hi".into()));
        assert_eq!(w.0.load(Ordering::SeqCst), 1);
        match Pin::new(&mut f).poll(&mut cx) {
            Poll::Ready(Ok(s)) => assert_eq!(s, "hi"),
            other => panic!("{other:?}"),
        }
    }
}
