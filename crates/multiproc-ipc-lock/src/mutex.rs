//! [`Mutex`]: std's `Mutex<T>` for a `T` in shared memory (Python's synchronised `Value`).

use crate::cell::ShmCell;
use crate::error::Result;
use crate::ident;
use crate::lock::{to_lock_result, to_try_lock_result};
use crate::raw::RawLock;
use crate::wait::Deadline;
use multiproc_arena::{Arena, Shared, ShmSafe};
use std::marker::PhantomData;
use std::sync::{LockResult, TryLockResult};
use std::time::Duration;

#[repr(C)]
pub(crate) struct MutexState<T> {
    raw: RawLock,
    data: ShmCell<T>,
}

// SAFETY: repr(C) of a ShmSafe lock and a ShmSafe value; no pointers, no Drop.
unsafe impl<T: ShmSafe> ShmSafe for MutexState<T> {}

impl<T> MutexState<T> {
    fn new(value: T) -> Self {
        MutexState { raw: RawLock::new(), data: ShmCell::new(value) }
    }
}

/// A `T` in shared memory behind a robust lock: std's `Mutex` for processes, and the
/// synchronised `Value` of Python.
///
/// [`lock`](Self::lock) returns a guard that dereferences to the value. When a process dies
/// holding the guard (or a thread panics with it), the lock is poisoned: the next `lock`
/// returns `Err(PoisonError)` with the guard inside, within 100 ms of a death, until
/// [`clear_poison`](Self::clear_poison).
///
/// ```
/// use multiproc_ipc_lock::Mutex;
/// let counter = Mutex::new(0u64).unwrap();
/// *counter.lock().unwrap() += 1; // a forked child sees and updates the same value
/// assert_eq!(*counter.lock().unwrap(), 1);
/// ```
pub struct Mutex<T: ShmSafe> {
    state: Shared<MutexState<T>>,
}

/// Exclusive access to a [`Mutex`]'s value; unlocks on drop.
#[must_use = "the mutex is unlocked as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: ShmSafe> {
    mutex: &'a Mutex<T>,
    panicking: bool,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared guard only gives `&T`, and T: ShmSafe is Sync.
unsafe impl<T: ShmSafe> Sync for MutexGuard<'_, T> {}

impl<T: ShmSafe> Mutex<T> {
    pub(crate) fn raw(&self) -> &RawLock {
        &self.state.raw
    }

    pub(crate) fn guard(&self) -> MutexGuard<'_, T> {
        MutexGuard { mutex: self, panicking: std::thread::panicking(), _not_send: PhantomData }
    }

    /// Locks, blocking until the lock is free.
    #[inline]
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        let a = self.state.raw.lock(ident::me(), &mut Deadline::never());
        to_lock_result(a, self.guard())
    }

    /// Locks if free now (or its holder is dead).
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        to_try_lock_result(self.state.raw.try_lock(ident::me()), || self.guard())
    }

    /// Locks, waiting at most `timeout`.
    pub fn try_lock_for(&self, timeout: Duration) -> TryLockResult<MutexGuard<'_, T>> {
        let a = self.state.raw.lock(ident::me(), &mut Deadline::after(timeout));
        to_try_lock_result(a, || self.guard())
    }
}

impl<T: ShmSafe> MutexGuard<'_, T> {
    pub(crate) fn mutex(&self) -> &Mutex<T> {
        self.mutex
    }
}

crate::handle::value_lock!(
    Mutex(MutexState), raw: raw, peek: try_lock, guards: MutexGuard;
    exclusive: MutexGuard.mutex, wake_all: false;
    docs: "mutex", "mutex", "holder", " (one of several racing processes creates it).";
    /// The pid of the process holding the lock, if any (a snapshot).
    owner: owner
);
