//! [`Mutex`]: std's `Mutex<T>` for a `T` in shared memory (Python's synchronised `Value`).

use crate::cell::ShmCell;
use crate::error::Result;
use crate::ident;
use crate::lock::{to_lock_result, to_try_lock_result};
use crate::raw::RawLock;
use crate::wait::Deadline;
use multiproc_arena::{Arena, Shared, ShmSafe};
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::{LockResult, TryLockError, TryLockResult};
use std::time::Duration;

#[repr(C)]
pub(crate) struct MutexState<T> {
    raw: RawLock,
    data: ShmCell<T>,
}

// SAFETY: repr(C) of a ShmSafe lock and a ShmSafe value; no pointers, no Drop.
unsafe impl<T: ShmSafe> ShmSafe for MutexState<T> {}

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
    /// Places `value` behind a new lock in the [global arena](Arena::global).
    pub fn new(value: T) -> Result<Self> {
        Ok(Mutex {
            state: Shared::new(MutexState { raw: RawLock::new(), data: ShmCell::new(value) })?,
        })
    }

    /// Places `value` behind a new lock in `arena`.
    pub fn new_in(arena: &Arena, value: T) -> Result<Self> {
        let st = MutexState { raw: RawLock::new(), data: ShmCell::new(value) };
        Ok(Mutex { state: Shared::new_in(arena, st)? })
    }

    /// Creates a mutex holding `value` under `name` that unrelated processes of the user can
    /// [`open`](Self::open) (a named segment in `/dev/shm`, mode 0600). The name goes when
    /// the last process using it drops it, or is SIGKILLed (then the next
    /// `multiproc_arena::cleanup_orphans` removes it). `AlreadyExists` if the name is taken.
    #[cfg(not(multiproc_loom))]
    pub fn create_named(name: &str, value: T) -> Result<Self> {
        let st = MutexState { raw: RawLock::new(), data: ShmCell::new(value) };
        Ok(Mutex { state: Shared::create_named(name, st)? })
    }

    /// Opens the mutex another process created under `name`: `NotFound` if there is none,
    /// `WrongType` if the name holds another kind of object or another `T`.
    #[cfg(not(multiproc_loom))]
    pub fn open(name: &str) -> Result<Self> {
        Ok(Mutex { state: Shared::open_named(name)? })
    }

    /// Keeps the name after every user is gone (a named object only; remove it with
    /// `multiproc_arena::Segment::unlink_name`).
    #[cfg(not(multiproc_loom))]
    pub fn persist_name(&self) {
        self.state.persist_name()
    }

    /// Opens `name`, creating it with `init()` if it does not exist (one of several racing
    /// processes creates it).
    #[cfg(not(multiproc_loom))]
    pub fn open_or_create(name: &str, init: impl FnOnce() -> T) -> Result<Self> {
        let make = || MutexState { raw: RawLock::new(), data: ShmCell::new(init()) };
        Ok(Mutex { state: Shared::open_or_create_named(name, make)? })
    }

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

    /// Whether a holder died or panicked since the last [`clear_poison`](Self::clear_poison).
    pub fn is_poisoned(&self) -> bool {
        self.state.raw.is_poisoned()
    }

    /// Clears the poison.
    pub fn clear_poison(&self) {
        self.state.raw.clear_poison()
    }

    /// The pid of the process holding the lock, if any (a snapshot).
    pub fn owner(&self) -> Option<u32> {
        self.state.raw.holder()
    }

    /// Whether two handles name the same mutex.
    pub fn same(&self, other: &Mutex<T>) -> bool {
        std::ptr::eq(&*self.state, &*other.state)
    }
}

impl<T: ShmSafe> Clone for Mutex<T> {
    fn clone(&self) -> Self {
        Mutex { state: self.state.clone() }
    }
}

impl<T: ShmSafe> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves we hold the lock, so no process writes the value now.
        unsafe { &*self.mutex.state.data.get() }
    }
}

impl<T: ShmSafe> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves we hold the lock: this is the only access to the value in
        // any process until the guard is dropped.
        unsafe { &mut *self.mutex.state.data.get() }
    }
}

impl<T: ShmSafe> MutexGuard<'_, T> {
    pub(crate) fn mutex(&self) -> &Mutex<T> {
        self.mutex
    }
}

impl<T: ShmSafe> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        let poison = !self.panicking && std::thread::panicking();
        self.mutex.state.raw.unlock(ident::me(), poison, false);
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Ok(g) => d.field("data", &&*g),
            Err(TryLockError::Poisoned(e)) => d.field("data", &&**e.get_ref()),
            Err(TryLockError::WouldBlock) => d.field("data", &format_args!("<locked>")),
        };
        d.field("poisoned", &self.is_poisoned()).finish()
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ShmSafe> serde::Serialize for Mutex<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.state.serialize(s)
    }
}

impl<'de, T: ShmSafe> serde::Deserialize<'de> for Mutex<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Mutex { state: Shared::deserialize(d)? })
    }
}
