//! [`SyncValue`], [`SyncArray`]: Python's synchronised `Value` and `Array` — a raw value or
//! array in shared memory paired with a [`Lock`] or [`RLock`] that the caller may supply
//! (`Value('d', 0.0, lock=L)`).

use crate::error::{ErrorKind, Result};
use crate::{Lock, RLock};
use multiproc_arena::{Arena, Array, AtomicCell, AtomicPlain, Value};
use std::fmt;
use std::marker::PhantomData;
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};
use std::time::Duration;

mod sealed {
    pub trait Sealed {}
}

/// The locks a [`SyncValue`] or [`SyncArray`] can use: [`RLock`] (the default, as in Python)
/// and [`Lock`].
pub trait ValueLock: sealed::Sealed + Clone + fmt::Debug {
    /// Python's `acquire(True, timeout)`.
    #[doc(hidden)]
    fn acquire_value(&self, timeout: Option<Duration>) -> LockResult<bool>;
    /// Python's `release()`, ignoring "not held" (another process released a plain `Lock`).
    #[doc(hidden)]
    fn release_value(&self);
}

macro_rules! value_lock {
    ($($L:ty),+) => {$(
        impl sealed::Sealed for $L {}
        impl ValueLock for $L {
            fn acquire_value(&self, timeout: Option<Duration>) -> LockResult<bool> {
                self.acquire_with(true, timeout)
            }
            fn release_value(&self) {
                let _ = self.release();
            }
        }
    )+};
}
value_lock!(Lock, RLock);

/// Acquires `lock` for a guard: `Ok(true)` clean, `Ok(false)` timed out, `Err(())` poisoned.
fn acquire<L: ValueLock>(lock: &L, timeout: Option<Duration>) -> std::result::Result<bool, ()> {
    lock.acquire_value(timeout).map_err(|_| ())
}

/// Turns an acquisition into std's lock results around `guard()`.
fn try_result<G>(a: std::result::Result<bool, ()>, guard: impl FnOnce() -> G) -> TryLockResult<G> {
    match a {
        Ok(true) => Ok(guard()),
        Ok(false) => Err(TryLockError::WouldBlock),
        Err(()) => Err(TryLockError::Poisoned(PoisonError::new(guard()))),
    }
}

macro_rules! common {
    ($T:ident, $Guard:ident, $raw:ident: $Raw:ty, $what:literal) => {
        impl<T: AtomicPlain, L: ValueLock> $T<T, L> {
            #[doc = concat!("Pairs an existing raw ", $what, " with `lock` (Python's `synchronized(obj, lock)`).")]
            pub fn from_raw($raw: $Raw, lock: L) -> Self {
                $T { $raw, lock }
            }

            /// The lock (Python's `get_lock()`); the same one every clone and every process uses.
            pub fn get_lock(&self) -> &L {
                &self.lock
            }

            #[doc = concat!("The raw ", $what, " underneath (Python's `get_obj()`): access through it takes no lock.")]
            pub fn get_obj(&self) -> &$Raw {
                &self.$raw
            }

            fn acquired(&self) {
                // A poisoned lock still hands the lock over; a single atomic access cannot have
                // been left half-done by the dead holder.
                let _ = acquire(&self.lock, None);
            }

            /// Takes the lock, blocking; `Err(PoisonError)` (still with the guard) if a holder
            /// died.
            pub fn lock(&self) -> LockResult<$Guard<'_, T, L>> {
                match acquire(&self.lock, None) {
                    Err(()) => Err(PoisonError::new(self.guard())),
                    _ => Ok(self.guard()),
                }
            }

            /// Takes the lock, waiting at most `timeout`.
            pub fn try_lock_for(&self, timeout: Duration) -> TryLockResult<$Guard<'_, T, L>> {
                try_result(acquire(&self.lock, Some(timeout)), || self.guard())
            }
        }

        impl<T: AtomicPlain, L: ValueLock> fmt::Debug for $Guard<'_, T, L> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.local, f)
            }
        }

        impl<T: AtomicPlain, L: ValueLock> Clone for $T<T, L> {
            fn clone(&self) -> Self {
                $T { $raw: self.$raw.clone(), lock: self.lock.clone() }
            }
        }

        impl<T: AtomicPlain, L: ValueLock + serde::Serialize> serde::Serialize for $T<T, L> {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                (&self.$raw, &self.lock).serialize(s)
            }
        }

        impl<'de, T: AtomicPlain, L: ValueLock + serde::Deserialize<'de>> serde::Deserialize<'de>
            for $T<T, L>
        {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let ($raw, lock) = <($Raw, L)>::deserialize(d)?;
                Ok($T { $raw, lock })
            }
        }
    };
}

/// A plain number in shared memory with a lock (Python's `Value('d', 0.0)`, and
/// `Value('d', 0.0, lock=L)` through [`with_lock`](Self::with_lock)).
///
/// [`get`](Self::get) and [`set`](Self::set) each take the lock (Python's `.value`);
/// [`lock`](Self::lock) holds it for a read-modify-write (`with v.get_lock(): v.value += 1`).
/// The default lock is an [`RLock`], as in Python, so `get`/`set` also work while the same
/// thread holds a guard. Cloning, forking and handle transfer (serde, inside a transfer
/// context) all give handles to the same value and the same lock.
///
/// The guard works on a copy taken when it was made, written back (if changed) just before
/// the lock is released: the same as in-place access for every process that takes the lock,
/// and never undefined behaviour for one that does not (a plain [`Lock`] may be released by
/// any process; such a writer's update can then be lost, not torn).
///
/// ```
/// use multiproc_ipc_lock::{Lock, SyncValue};
/// let v = SyncValue::new(0.0f64).unwrap();
/// *v.lock().unwrap() += 1.5; // a forked child sees and updates the same value
/// v.set(v.get() * 2.0);
/// assert_eq!(v.get(), 3.0);
/// let l = Lock::new().unwrap();
/// let w = SyncValue::with_lock(7i32, l.clone()).unwrap();
/// assert!(w.get_lock().same(&l));
/// ```
pub struct SyncValue<T: AtomicPlain, L: ValueLock = RLock> {
    value: Value<AtomicCell<T>>,
    lock: L,
}

/// Holds a [`SyncValue`]'s lock; dereferences to (a copy of) the value, written back on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct SyncValueGuard<'a, T: AtomicPlain, L: ValueLock = RLock> {
    owner: &'a SyncValue<T, L>,
    local: T,
    dirty: bool,
    _not_send: PhantomData<*const ()>,
}

common!(SyncValue, SyncValueGuard, value: Value<AtomicCell<T>>, "value");

impl<T: AtomicPlain> SyncValue<T, RLock> {
    /// `value` behind a new [`RLock`], in the [global arena](Arena::global).
    pub fn new(value: T) -> Result<Self> {
        Self::with_lock(value, RLock::new()?)
    }

    /// `value` behind a new [`RLock`], both in `arena`.
    pub fn new_in(arena: &Arena, value: T) -> Result<Self> {
        Self::with_lock_in(arena, value, RLock::new_in(arena)?)
    }
}

impl<T: AtomicPlain, L: ValueLock> SyncValue<T, L> {
    /// `value` behind `lock` (which other values may share), in the global arena.
    pub fn with_lock(value: T, lock: L) -> Result<Self> {
        Ok(SyncValue { value: Value::new(AtomicCell::new(value))?, lock })
    }

    /// `value` behind `lock`, in `arena`.
    pub fn with_lock_in(arena: &Arena, value: T, lock: L) -> Result<Self> {
        Ok(SyncValue { value: Value::new_in(arena, AtomicCell::new(value))?, lock })
    }

    /// The value, read under the lock (Python's `v.value`).
    pub fn get(&self) -> T {
        self.acquired();
        let v = self.value.load();
        self.lock.release_value();
        v
    }

    /// Replaces the value under the lock (Python's `v.value = x`).
    pub fn set(&self, value: T) {
        self.acquired();
        self.value.store(value);
        self.lock.release_value();
    }

    fn guard(&self) -> SyncValueGuard<'_, T, L> {
        SyncValueGuard {
            owner: self,
            local: self.value.load(),
            dirty: false,
            _not_send: PhantomData,
        }
    }
}

impl<T: AtomicPlain, L: ValueLock> std::ops::Deref for SyncValueGuard<'_, T, L> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.local
    }
}

impl<T: AtomicPlain, L: ValueLock> std::ops::DerefMut for SyncValueGuard<'_, T, L> {
    fn deref_mut(&mut self) -> &mut T {
        self.dirty = true;
        &mut self.local
    }
}

impl<T: AtomicPlain, L: ValueLock> Drop for SyncValueGuard<'_, T, L> {
    fn drop(&mut self) {
        if self.dirty {
            self.owner.value.store(self.local);
        }
        self.owner.lock.release_value();
    }
}

/// A fixed-length array of plain numbers in shared memory with a lock (Python's
/// `Array('i', 10)` and `Array('i', [1, 2], lock=L)`); see [`SyncValue`] for the lock, the
/// guard's copy and how handles cross processes. The guard dereferences to `&mut [T]`.
///
/// ```
/// use multiproc_ipc_lock::SyncArray;
/// let a = SyncArray::<i32>::zeroed(4).unwrap();
/// a.set(1, 5).unwrap();
/// {
///     let mut g = a.lock().unwrap();
///     g[2] = g[1] * 2;
/// }
/// assert_eq!(a.to_vec(), [0, 5, 10, 0]);
/// assert!(a.get(4).is_err()); // Python's IndexError
/// ```
pub struct SyncArray<T: AtomicPlain, L: ValueLock = RLock> {
    array: Array<AtomicCell<T>>,
    lock: L,
}

/// Holds a [`SyncArray`]'s lock; dereferences to (a copy of) the elements, written back on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct SyncArrayGuard<'a, T: AtomicPlain, L: ValueLock = RLock> {
    owner: &'a SyncArray<T, L>,
    local: Vec<T>,
    dirty: bool,
    _not_send: PhantomData<*const ()>,
}

common!(SyncArray, SyncArrayGuard, array: Array<AtomicCell<T>>, "array");

impl<T: AtomicPlain> SyncArray<T, RLock> {
    /// A copy of `values` behind a new [`RLock`], in the global arena.
    pub fn new(values: &[T]) -> Result<Self> {
        Self::with_lock(values, RLock::new()?)
    }

    /// `len` zeros behind a new [`RLock`] (Python's `Array('i', len)`).
    pub fn zeroed(len: usize) -> Result<Self> {
        Ok(SyncArray { array: Array::zeroed(len)?, lock: RLock::new()? })
    }
}

impl<T: AtomicPlain, L: ValueLock> SyncArray<T, L> {
    /// A copy of `values` behind `lock` (which other values may share), in the global arena.
    pub fn with_lock(values: &[T], lock: L) -> Result<Self> {
        Ok(SyncArray { array: Array::from_fn(values.len(), |i| AtomicCell::new(values[i]))?, lock })
    }

    /// A copy of `values` behind `lock`, in `arena`.
    pub fn with_lock_in(arena: &Arena, values: &[T], lock: L) -> Result<Self> {
        let array = Array::from_fn_in(arena, values.len(), |i| AtomicCell::new(values[i]))?;
        Ok(SyncArray { array, lock })
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.array.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.array.is_empty()
    }

    fn cell(&self, index: usize) -> Result<&AtomicCell<T>> {
        self.array.get(index).ok_or_else(|| {
            crate::Error::new(
                ErrorKind::InvalidArgument,
                format!("index {index} out of range for length {}", self.len()),
            )
        })
    }

    /// The element at `index`, read under the lock; `InvalidArgument` past the end.
    pub fn get(&self, index: usize) -> Result<T> {
        let cell = self.cell(index)?;
        self.acquired();
        let v = cell.load();
        self.lock.release_value();
        Ok(v)
    }

    /// Replaces the element at `index` under the lock; `InvalidArgument` past the end.
    pub fn set(&self, index: usize, value: T) -> Result<()> {
        let cell = self.cell(index)?;
        self.acquired();
        cell.store(value);
        self.lock.release_value();
        Ok(())
    }

    /// Every element, read under the lock (one consistent snapshot; Python's `arr[:]`).
    pub fn to_vec(&self) -> Vec<T> {
        self.acquired();
        let v = self.array.load_all();
        self.lock.release_value();
        v
    }

    fn guard(&self) -> SyncArrayGuard<'_, T, L> {
        let local = self.array.load_all();
        SyncArrayGuard { owner: self, local, dirty: false, _not_send: PhantomData }
    }
}

impl<T: AtomicPlain, L: ValueLock> std::ops::Deref for SyncArrayGuard<'_, T, L> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.local
    }
}

impl<T: AtomicPlain, L: ValueLock> std::ops::DerefMut for SyncArrayGuard<'_, T, L> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.dirty = true;
        &mut self.local
    }
}

impl<T: AtomicPlain, L: ValueLock> Drop for SyncArrayGuard<'_, T, L> {
    fn drop(&mut self) {
        if self.dirty {
            for (cell, v) in self.owner.array.iter().zip(&self.local) {
                cell.store(*v);
            }
        }
        self.owner.lock.release_value();
    }
}

impl<T: AtomicPlain, L: ValueLock> fmt::Debug for SyncValue<T, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The raw value, without the lock (Debug must not block).
        f.debug_struct("SyncValue").field("value", &*self.value).field("lock", &self.lock).finish()
    }
}

impl<T: AtomicPlain, L: ValueLock> fmt::Debug for SyncArray<T, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncArray").field("array", &&*self.array).field("lock", &self.lock).finish()
    }
}
