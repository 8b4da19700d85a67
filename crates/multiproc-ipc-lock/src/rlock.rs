//! [`RLock`]: Python's `multiprocessing.RLock`, robust against a dead holder.

use crate::error::{ErrorKind, Result};
use crate::ident::{self, Me};
use crate::lock::{debug_lock, to_lock_result, to_try_lock_result};
use crate::raw::{Acquire, RawLock};
use crate::wait::Deadline;
use multiproc_arena::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use multiproc_arena::{Arena, Shared};
use std::fmt;
use std::marker::PhantomData;
use std::sync::{LockResult, TryLockResult};
use std::time::Duration;

#[repr(C)]
pub(crate) struct RLockState {
    raw: RawLock,
    /// The owning thread's tag within the holder process (0 while free). Written only by the
    /// owner, after acquiring `raw` and before releasing it.
    thread: AtomicU64,
    /// Recursion depth; touched only by the owning thread.
    count: AtomicU32,
    _pad: u32,
}

crate::cell::plain_state!(RLockState, [u64; 4]);

/// A recursive lock owned by one thread of one process (Python's `multiprocessing.RLock`).
///
/// The owning thread may acquire it again; it is free after as many releases. A release by
/// any other thread or process is an error of kind [`NotOwner`](ErrorKind::NotOwner). When
/// the owning process dies, the next acquirer gets it within 100 ms, poisoned (see
/// [`Lock`](crate::Lock)). A *thread* that exits holding it leaves it held, as in Python.
///
/// ```
/// use multiproc_ipc_lock::RLock;
/// let r = RLock::new().unwrap();
/// for _ in 0..3 {
///     assert!(r.acquire_with(true, None).unwrap());
/// }
/// r.release().unwrap();
/// r.release().unwrap();
/// assert!(r.locked());
/// r.release().unwrap();
/// assert!(!r.locked());
/// assert!(r.release().is_err());
/// ```
#[derive(Clone)]
pub struct RLock {
    state: Shared<RLockState>,
}

/// Holds one level of an [`RLock`]; releases it on drop. Not `Send`: the owner is a thread.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    _not_send: PhantomData<*const ()>,
}

/// What a `Condition` saves when it releases an `RLock` fully to wait.
#[derive(Debug)]
pub struct Saved {
    count: u32,
}

crate::handle::shared_handle!(RLock, state, "unlocked recursive lock", || RLock::fresh());

impl RLock {
    fn fresh() -> RLockState {
        RLockState {
            raw: RawLock::new(),
            thread: AtomicU64::new(0),
            count: AtomicU32::new(0),
            _pad: 0,
        }
    }

    fn owned_by(&self, me: Me, tag: u64) -> bool {
        self.state.raw.held_by(me) && self.state.thread.load(Ordering::Relaxed) == tag
    }

    /// Acquires (or re-enters) with `dl`; `None` deadline-passed.
    fn enter(&self, block: bool, dl: &mut Deadline) -> Acquire {
        let (me, tag) = (ident::me(), ident::thread_tag());
        if self.owned_by(me, tag) {
            let c = self.state.count.load(Ordering::Relaxed);
            assert!(c < u32::MAX, "RLock recursion depth overflow");
            self.state.count.store(c + 1, Ordering::Relaxed);
            return if self.state.raw.is_poisoned() { Acquire::Poisoned } else { Acquire::Clean };
        }
        let a = if block { self.state.raw.lock(me, dl) } else { self.state.raw.try_lock(me) };
        if a.acquired() {
            self.state.thread.store(tag, Ordering::Relaxed);
            self.state.count.store(1, Ordering::Relaxed);
        }
        a
    }

    /// Acquires (or re-enters), blocking; the guard releases one level.
    pub fn lock(&self) -> LockResult<RLockGuard<'_>> {
        let a = self.enter(true, &mut Deadline::never());
        to_lock_result(a, self.guard())
    }

    /// Acquires (or re-enters) if possible now.
    pub fn try_lock(&self) -> TryLockResult<RLockGuard<'_>> {
        let a = self.enter(false, &mut Deadline::never());
        to_try_lock_result(a, || self.guard())
    }

    /// Acquires (or re-enters), waiting at most `timeout`.
    pub fn try_lock_for(&self, timeout: Duration) -> TryLockResult<RLockGuard<'_>> {
        let a = self.enter(true, &mut Deadline::after(timeout));
        to_try_lock_result(a, || self.guard())
    }

    fn guard(&self) -> RLockGuard<'_> {
        RLockGuard { lock: self, _not_send: PhantomData }
    }

    /// Acquires (or re-enters), blocking, without a guard (release one level with
    /// [`release`](Self::release)); `Err(PoisonError)` when acquired after an owner died.
    pub fn acquire(&self) -> LockResult<()> {
        to_lock_result(self.enter(true, &mut Deadline::never()), ())
    }

    /// Acquires (or re-enters) if possible now, without a guard.
    pub fn try_acquire(&self) -> TryLockResult<()> {
        to_try_lock_result(self.enter(false, &mut Deadline::never()), || ())
    }

    /// Acquires (or re-enters), waiting at most `timeout`, without a guard.
    pub fn acquire_timeout(&self, timeout: Duration) -> TryLockResult<()> {
        to_try_lock_result(self.enter(true, &mut Deadline::after(timeout)), || ())
    }

    /// Python's `acquire(block=True, timeout=None)`; see
    /// [`Lock::acquire_with`](crate::Lock::acquire_with).
    pub fn acquire_with(&self, block: bool, timeout: Option<Duration>) -> LockResult<bool> {
        let a = self.enter(block, &mut Deadline::from_option(timeout));
        to_lock_result(a, a.acquired())
    }

    /// Releases one level; an error of kind [`NotOwner`](ErrorKind::NotOwner) unless the
    /// calling thread owns the lock.
    pub fn release(&self) -> Result<()> {
        let (me, tag) = (ident::me(), ident::thread_tag());
        if !self.owned_by(me, tag) {
            return Err(ErrorKind::NotOwner.into());
        }
        self.release_owned(false);
        Ok(())
    }

    fn release_owned(&self, poison: bool) {
        let c = self.state.count.load(Ordering::Relaxed);
        if c > 1 {
            self.state.count.store(c - 1, Ordering::Relaxed);
            return;
        }
        self.state.count.store(0, Ordering::Relaxed);
        self.state.thread.store(0, Ordering::Relaxed);
        self.state.raw.unlock(ident::me(), poison, false);
    }

    /// Whether the calling thread owns the lock.
    pub fn is_owned(&self) -> bool {
        self.owned_by(ident::me(), ident::thread_tag())
    }

    /// Whether some thread holds the lock (a snapshot).
    pub fn locked(&self) -> bool {
        self.state.raw.holder().is_some()
    }

    /// The pid of the process holding the lock, if any (a snapshot).
    pub fn owner(&self) -> Option<u32> {
        self.state.raw.holder()
    }

    /// The recursion depth (meaningful to the owning thread; a snapshot for others).
    pub fn count(&self) -> u32 {
        if self.locked() {
            self.state.count.load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// Whether a holder died since the last [`clear_poison`](Self::clear_poison).
    pub fn is_poisoned(&self) -> bool {
        self.state.raw.is_poisoned()
    }

    /// Clears the poison left by a dead holder.
    pub fn clear_poison(&self) {
        self.state.raw.clear_poison()
    }

    /// Whether two handles name the same lock.
    pub fn same(&self, other: &RLock) -> bool {
        std::ptr::eq(&*self.state, &*other.state)
    }

    /// For `Condition::wait`: releases every level the calling thread holds.
    pub(crate) fn release_all(&self) -> Saved {
        let count = self.state.count.load(Ordering::Relaxed);
        self.state.count.store(0, Ordering::Relaxed);
        self.state.thread.store(0, Ordering::Relaxed);
        self.state.raw.unlock(ident::me(), false, false);
        Saved { count }
    }

    /// For `Condition::wait`: re-acquires `saved.count` levels; whether poisoned.
    pub(crate) fn reacquire(&self, saved: Saved) -> bool {
        let me = ident::me();
        let a = self.state.raw.lock(me, &mut Deadline::never());
        self.state.thread.store(ident::thread_tag(), Ordering::Relaxed);
        self.state.count.store(saved.count, Ordering::Relaxed);
        a == Acquire::Poisoned
    }
}

impl Drop for RLockGuard<'_> {
    /// Releases one level (a panic does not poison an `RLock`, as for [`Lock`](crate::Lock)).
    /// A copy of a guard inherited by a forked child releases nothing: the child does not
    /// own the lock.
    fn drop(&mut self) {
        if self.lock.owned_by(ident::me(), ident::thread_tag()) {
            self.lock.release_owned(false);
        }
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_lock(f, "RLock", self.owner(), &[("count", &self.count())], self.is_poisoned())
    }
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard").field("lock", self.lock).finish()
    }
}
