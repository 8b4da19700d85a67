//! [`Lock`]: Python's `multiprocessing.Lock`, robust against a dead holder.

use crate::error::{ErrorKind, Result};
use crate::ident;
use crate::raw::{Acquire, RawLock};
use crate::wait::Deadline;
use multiproc_arena::{Arena, Shared};
use std::fmt;
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};
use std::time::Duration;

/// A non-recursive lock shared by processes (Python's `multiprocessing.Lock`).
///
/// Any process may release it, as in Python, and releasing an unheld lock is an error. When
/// a process dies holding it, the next acquirer gets it within 100 ms with a poisoned result
/// (std's [`PoisonError`], which still hands over the guard or the `true`); the poison stays
/// until [`clear_poison`](Self::clear_poison). Python would deadlock there.
///
/// Cloning gives another handle to the same lock; a forked child inherits it, and it passes
/// to spawned children and over a `Connection` by serde inside a transfer context.
///
/// ```
/// use multiproc_ipc_lock::Lock;
/// let lock = Lock::new().unwrap();
/// {
///     let _guard = lock.lock().unwrap(); // released on drop
///     assert!(lock.locked());
/// }
/// assert_eq!(lock.acquire_with(true, None).unwrap(), true);
/// assert_eq!(lock.acquire_with(false, None).unwrap(), false);
/// lock.release().unwrap();
/// assert!(lock.release().is_err()); // not held
/// ```
#[derive(Clone)]
pub struct Lock {
    raw: Shared<RawLock>,
}

/// Holds a [`Lock`]; releases it on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

pub(crate) fn to_lock_result<G>(a: Acquire, g: G) -> LockResult<G> {
    match a {
        Acquire::Poisoned => Err(PoisonError::new(g)),
        _ => Ok(g),
    }
}

/// `Err(PoisonError)` around `g` if `poisoned`, else `Ok(g)`.
pub(crate) fn poison_result<G>(poisoned: bool, g: G) -> LockResult<G> {
    if poisoned {
        Err(PoisonError::new(g))
    } else {
        Ok(g)
    }
}

/// The `Debug` of a robust lock named `name`: its `owner`, the `extra` fields of its kind,
/// and whether it is `poisoned`.
pub(crate) fn debug_lock(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    owner: Option<u32>,
    extra: &[(&str, &dyn fmt::Debug)],
    poisoned: bool,
) -> fmt::Result {
    let mut d = f.debug_struct(name);
    d.field("owner", &owner);
    for (field, value) in extra {
        d.field(field, value);
    }
    d.field("poisoned", &poisoned).finish()
}

pub(crate) fn to_try_lock_result<G>(a: Acquire, g: impl FnOnce() -> G) -> TryLockResult<G> {
    match a {
        Acquire::Clean => Ok(g()),
        Acquire::Poisoned => Err(TryLockError::Poisoned(PoisonError::new(g()))),
        Acquire::Busy => Err(TryLockError::WouldBlock),
    }
}

crate::handle::shared_handle!(Lock, raw, "unlocked lock", || RawLock::new());

impl Lock {
    pub(crate) fn raw(&self) -> &RawLock {
        &self.raw
    }

    /// Acquires, blocking until the lock is free; the guard releases it.
    ///
    /// `Err(PoisonError)` (still holding the guard) when a previous holder died holding it.
    #[inline]
    pub fn lock(&self) -> LockResult<LockGuard<'_>> {
        let a = self.raw.lock(ident::me(), &mut Deadline::never());
        to_lock_result(a, LockGuard { lock: self })
    }

    /// Acquires if the lock is free now (or its holder is dead).
    pub fn try_lock(&self) -> TryLockResult<LockGuard<'_>> {
        to_try_lock_result(self.raw.try_lock(ident::me()), || LockGuard { lock: self })
    }

    /// Acquires, waiting at most `timeout`.
    pub fn try_lock_for(&self, timeout: Duration) -> TryLockResult<LockGuard<'_>> {
        let a = self.raw.lock(ident::me(), &mut Deadline::after(timeout));
        to_try_lock_result(a, || LockGuard { lock: self })
    }

    /// Acquires, blocking, without a guard (release with [`release`](Self::release));
    /// `Err(PoisonError)` when acquired after a holder died (the lock is held then too).
    pub fn acquire(&self) -> LockResult<()> {
        to_lock_result(self.raw.lock(ident::me(), &mut Deadline::never()), ())
    }

    /// Acquires if the lock is free now (or its holder is dead), without a guard.
    pub fn try_acquire(&self) -> TryLockResult<()> {
        to_try_lock_result(self.raw.try_lock(ident::me()), || ())
    }

    /// Acquires, waiting at most `timeout`, without a guard (`WouldBlock` when the time
    /// passed).
    pub fn acquire_timeout(&self, timeout: Duration) -> TryLockResult<()> {
        to_try_lock_result(self.raw.lock(ident::me(), &mut Deadline::after(timeout)), || ())
    }

    /// Python's `acquire(block=True, timeout=None)`: `Ok(true)` when acquired, `Ok(false)` when
    /// not (non-blocking and held, or the timeout passed); `Err(PoisonError(true))` when
    /// acquired after a holder died. `timeout` is ignored when `block` is false, as in Python.
    /// Release with [`release`](Self::release).
    pub fn acquire_with(&self, block: bool, timeout: Option<Duration>) -> LockResult<bool> {
        let me = ident::me();
        let a = if !block {
            self.raw.try_lock(me)
        } else {
            self.raw.lock(me, &mut Deadline::from_option(timeout))
        };
        to_lock_result(a, a.acquired())
    }

    /// Releases the lock, whoever acquired it (as Python allows); an error of kind
    /// [`NotHeld`](ErrorKind::NotHeld) if it is not held.
    pub fn release(&self) -> Result<()> {
        if self.raw.unlock_any(ident::me()) {
            Ok(())
        } else {
            Err(ErrorKind::NotHeld.into())
        }
    }

    /// Whether some process holds the lock (a snapshot).
    pub fn locked(&self) -> bool {
        self.raw.holder().is_some()
    }

    /// The pid of the process holding the lock, if any (a snapshot).
    pub fn owner(&self) -> Option<u32> {
        self.raw.holder()
    }

    /// Whether a holder died holding the lock since the last
    /// [`clear_poison`](Self::clear_poison).
    pub fn is_poisoned(&self) -> bool {
        self.raw.is_poisoned()
    }

    /// Clears the poison left by a dead holder.
    pub fn clear_poison(&self) {
        self.raw.clear_poison()
    }

    /// Whether two handles name the same lock.
    pub fn same(&self, other: &Lock) -> bool {
        std::ptr::eq(&*self.raw, &*other.raw)
    }
}

impl Drop for LockGuard<'_> {
    /// Releases the lock. Unlike [`MutexGuard`](crate::MutexGuard), a panic does not poison a
    /// `Lock` (it guards no data, and Python's `with lock:` releases on an exception too).
    #[inline]
    fn drop(&mut self) {
        self.lock.raw.unlock(ident::me(), false, false);
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_lock(f, "Lock", self.owner(), &[], self.is_poisoned())
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").field("lock", self.lock).finish()
    }
}
