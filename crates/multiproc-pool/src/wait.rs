//! Waiting on many futures: [`wait`] with [`ReturnWhen`], and [`as_completed`] /
//! [`as_completed_timeout`] ([`AsCompleted`]).

use crate::error::{Error, ErrorKind, Result};
use crate::future::{lock, Driver, Future};
use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Notified by futures that end; used by [`wait`] and [`as_completed`].
pub(crate) struct Listener {
    done: Mutex<Vec<usize>>,
    cv: Condvar,
}

impl Listener {
    fn new() -> Arc<Self> {
        Arc::new(Listener { done: Mutex::new(Vec::new()), cv: Condvar::new() })
    }

    pub(crate) fn notify(&self, tag: usize) {
        lock(&self.done).push(tag);
        self.cv.notify_all();
    }
}

/// A type-erased future for [`wait`]: done? failed? tell me when.
pub(crate) trait Waitable: Send + Sync {
    /// Registers `l`; false if the future is already done (nothing registered).
    fn listen(&self, l: &Arc<Listener>, tag: usize) -> bool;
    fn unlisten(&self, l: &Arc<Listener>);
    fn state(&self) -> (bool, bool);
    fn driver(&self) -> Option<Arc<dyn Driver>>;
}

/// When [`wait`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnWhen {
    /// As soon as any future finishes or is cancelled.
    FirstCompleted,
    /// As soon as any future finishes with an error, or when all are done.
    FirstException,
    /// When every future is done.
    AllCompleted,
}

/// What [`wait`] returns: the futures that are done and those that are not, each in the
/// order given.
#[derive(Debug)]
pub struct Waited<R> {
    /// Finished or cancelled futures.
    pub done: Vec<Future<R>>,
    /// Futures still pending or running.
    pub not_done: Vec<Future<R>>,
}

/// Waits for `futures` as `return_when` says, or until `timeout` passes (a timeout is not
/// an error: the unfinished futures come back in `not_done`). Python's
/// `concurrent.futures.wait`.
pub fn wait<R: Send + 'static>(
    futures: impl IntoIterator<Item = Future<R>>,
    return_when: ReturnWhen,
    timeout: Option<Duration>,
) -> Waited<R> {
    let futures: Vec<Future<R>> = futures.into_iter().collect();
    let deadline = timeout.map(|t| Instant::now() + t);
    let handles: Vec<Arc<dyn Waitable>> = futures.iter().map(|f| f.handle()).collect();
    let satisfied = |handles: &[Arc<dyn Waitable>]| {
        let mut all = true;
        let mut any = false;
        let mut failed = false;
        for h in handles {
            let (d, f) = h.state();
            all &= d;
            any |= d;
            failed |= d && f;
        }
        match return_when {
            ReturnWhen::FirstCompleted => any || handles.is_empty(),
            ReturnWhen::FirstException => failed || all,
            ReturnWhen::AllCompleted => all,
        }
    };
    block_on_handles(&handles, deadline, &mut || satisfied(&handles));
    let (mut done, mut not_done) = (Vec::new(), Vec::new());
    for f in futures {
        if f.done() {
            done.push(f)
        } else {
            not_done.push(f)
        }
    }
    Waited { done, not_done }
}

/// Blocks until `cond()` holds or `deadline` passes, driving any process pool the futures
/// belong to.
fn block_on_handles(
    handles: &[Arc<dyn Waitable>],
    deadline: Option<Instant>,
    cond: &mut dyn FnMut() -> bool,
) -> bool {
    if cond() {
        return true;
    }
    let listener = Listener::new();
    let mut drivers: Vec<Arc<dyn Driver>> = Vec::new();
    for (i, h) in handles.iter().enumerate() {
        h.listen(&listener, i);
        if let Some(d) = h.driver() {
            if !drivers.iter().any(|x| Arc::ptr_eq(x, &d)) {
                drivers.push(d);
            }
        }
    }
    let ok = if drivers.len() == 1 {
        // One pool: its driver collects results on this thread.
        drivers[0].drive_until(cond, deadline)
    } else {
        // Threads, or several pools (their own threads collect): wait on the listener.
        let mut g = lock(&listener.done);
        loop {
            g.clear();
            drop(g);
            if cond() {
                break true;
            }
            g = lock(&listener.done);
            if !g.is_empty() {
                continue;
            }
            let slice = if drivers.is_empty() { None } else { Some(Duration::from_millis(5)) };
            let until = match (deadline, slice) {
                (Some(d), Some(s)) => Some(d.min(Instant::now() + s)),
                (d, None) => d,
                (None, Some(s)) => Some(Instant::now() + s),
            };
            match until {
                None => g = listener.cv.wait(g).unwrap_or_else(|p| p.into_inner()),
                Some(u) => {
                    let now = Instant::now();
                    if deadline.is_some_and(|d| now >= d) {
                        drop(g);
                        break cond();
                    }
                    let wait = u.saturating_duration_since(now);
                    g = listener.cv.wait_timeout(g, wait).unwrap_or_else(|p| p.into_inner()).0;
                }
            }
        }
    };
    for h in handles {
        h.unlisten(&listener);
    }
    ok
}

/// Yields futures as they finish (or are cancelled): Python's
/// `concurrent.futures.as_completed`. Created by [`as_completed`] / [`as_completed_timeout`].
pub struct AsCompleted<R> {
    pending: Vec<Option<Future<R>>>,
    handles: Vec<Arc<dyn Waitable>>,
    left: usize,
    total: usize,
    deadline: Option<Instant>,
    timed_out: bool,
}

/// Yields each of `futures` once, as it finishes. Duplicates are impossible (a
/// [`Future`] is unique), so each is yielded exactly once.
pub fn as_completed<R: Send + 'static>(
    futures: impl IntoIterator<Item = Future<R>>,
) -> AsCompleted<R> {
    make_as_completed(futures, None)
}

/// Like [`as_completed`], but once `timeout` (from now) passes, the iterator yields one
/// [`ErrorKind::Timeout`] error ("2 (of 4) futures unfinished") and ends.
pub fn as_completed_timeout<R: Send + 'static>(
    futures: impl IntoIterator<Item = Future<R>>,
    timeout: Duration,
) -> AsCompleted<R> {
    make_as_completed(futures, Some(Instant::now() + timeout))
}

fn make_as_completed<R: Send + 'static>(
    futures: impl IntoIterator<Item = Future<R>>,
    deadline: Option<Instant>,
) -> AsCompleted<R> {
    let pending: Vec<Option<Future<R>>> = futures.into_iter().map(Some).collect();
    let handles = pending.iter().map(|f| f.as_ref().expect("just built").handle()).collect();
    let n = pending.len();
    AsCompleted { pending, handles, left: n, total: n, deadline, timed_out: false }
}

impl<R: Send + 'static> AsCompleted<R> {
    fn take_done(&mut self) -> Option<Future<R>> {
        for (i, f) in self.pending.iter_mut().enumerate() {
            if f.is_some() && self.handles[i].state().0 {
                self.left -= 1;
                return f.take();
            }
        }
        None
    }

    /// The futures not yielded yet (after a timeout, say).
    pub fn into_remaining(self) -> Vec<Future<R>> {
        self.pending.into_iter().flatten().collect()
    }
}

impl<R: Send + 'static> Iterator for AsCompleted<R> {
    type Item = Result<Future<R>>;

    fn next(&mut self) -> Option<Result<Future<R>>> {
        if self.left == 0 || self.timed_out {
            return None;
        }
        if let Some(f) = self.take_done() {
            return Some(Ok(f));
        }
        let live: Vec<Arc<dyn Waitable>> = self
            .pending
            .iter()
            .zip(&self.handles)
            .filter(|(f, _)| f.is_some())
            .map(|(_, h)| h.clone())
            .collect();
        let any_done = |hs: &[Arc<dyn Waitable>]| hs.iter().any(|h| h.state().0);
        block_on_handles(&live, self.deadline, &mut || any_done(&live));
        if let Some(f) = self.take_done() {
            return Some(Ok(f));
        }
        self.timed_out = true;
        Some(Err(Error::new(
            ErrorKind::Timeout,
            format!("{} (of {}) futures unfinished", self.left, self.total),
        )))
    }
}

impl<R> fmt::Debug for AsCompleted<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted").field("left", &self.left).field("total", &self.total).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::future::pending;

    #[test]
    fn wait_and_as_completed() {
        let (ok, s_ok) = pending::<i32>();
        let (bad, s_bad) = pending::<i32>();
        let (blocked, _s_blocked) = pending::<i32>();
        let (cancelled, _) = pending::<i32>();
        cancelled.cancel();
        s_ok.complete(Ok(1));
        let w = wait(vec![cancelled, blocked], ReturnWhen::FirstCompleted, None);
        assert_eq!((w.done.len(), w.not_done.len()), (1, 1));
        let blocked = w.not_done.into_iter().next().unwrap();
        let t = Instant::now();
        let w = wait(vec![blocked], ReturnWhen::AllCompleted, Some(Duration::from_millis(50)));
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert_eq!((w.done.len(), w.not_done.len()), (0, 1));
        let blocked = w.not_done.into_iter().next().unwrap();
        let th = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            s_bad.complete(Err(Error::new(ErrorKind::Panicked, "x")));
        });
        let w =
            wait(vec![ok, bad, blocked], ReturnWhen::FirstException, Some(Duration::from_secs(5)));
        th.join().unwrap();
        assert_eq!((w.done.len(), w.not_done.len()), (2, 1));

        // A cancelled future is done but did not raise: FIRST_EXCEPTION keeps waiting (here
        // until the timeout), as CPython's does.
        let (cancelled, _sc) = pending::<i32>();
        assert!(cancelled.cancel());
        let (still, _ss) = pending::<i32>();
        let t0 = Instant::now();
        let w = wait(
            vec![cancelled, still],
            ReturnWhen::FirstException,
            Some(Duration::from_millis(60)),
        );
        assert!(t0.elapsed() >= Duration::from_millis(50), "returned at once for a cancellation");
        assert_eq!((w.done.len(), w.not_done.len()), (1, 1));

        let (a, sa) = pending::<i32>();
        let (b, _sb) = pending::<i32>();
        let c = Future::ready(Ok(3));
        sa.complete(Ok(1));
        let mut it = as_completed_timeout(vec![a, b, c], Duration::from_millis(30));
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().unwrap().is_ok());
        let e = it.next().unwrap().unwrap_err();
        assert_eq!(e.to_string(), "timed out waiting for the result: 1 (of 3) futures unfinished");
        assert!(it.next().is_none());
        assert_eq!(it.into_remaining().len(), 1);
    }
}
