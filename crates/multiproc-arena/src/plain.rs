//! [`AtomicCell`]: a plain number in shared memory that any process may read and write
//! (Python's `RawValue` / `RawArray` element), and [`Zeroable`] for the zero-filled
//! constructors.
//!
//! Why a cell and not `load`/`store` on `Value<f64>` itself: `Value<T>` dereferences to `&T`,
//! and a `&f64` promises that nobody writes the `f64` while it lives; a `store` through another
//! handle would break that promise (undefined behaviour, even within one process). An
//! `AtomicCell<f64>` keeps the bits in an `AtomicU64`, so every access is an atomic one and
//! racing readers and writers are well defined: a reader sees the old value or the new one,
//! never a mix (each supported type is at most one machine word wide).

use crate::shm_safe::ShmSafe;
use std::fmt;
use std::sync::atomic::{
    AtomicI16, AtomicI32, AtomicI64, AtomicI8, AtomicIsize, AtomicU16, AtomicU32, AtomicU64,
    AtomicU8, AtomicUsize, Ordering,
};

mod sealed {
    pub trait Sealed {}
}

/// The plain numbers an [`AtomicCell`] can hold: the integers up to 64 bits, `usize`,
/// `isize`, `f32` and `f64` — each as wide as an atomic of the platform, so a load or store
/// is never torn. Sealed: the list is fixed.
pub trait AtomicPlain:
    sealed::Sealed + Copy + Send + Sync + PartialEq + fmt::Debug + 'static
{
    /// The std atomic holding the bits.
    #[doc(hidden)]
    type Atomic: ShmSafe + Zeroable;
    /// The atomic holding `v`.
    #[doc(hidden)]
    fn atomic(v: Self) -> Self::Atomic;
    #[doc(hidden)]
    fn load(a: &Self::Atomic, o: Ordering) -> Self;
    #[doc(hidden)]
    fn store(a: &Self::Atomic, v: Self, o: Ordering);
    #[doc(hidden)]
    fn swap(a: &Self::Atomic, v: Self, o: Ordering) -> Self;
    /// Compare-and-exchange on the bits (floats compare bitwise).
    #[doc(hidden)]
    fn cas_weak(a: &Self::Atomic, current: Self, new: Self) -> Result<Self, Self>;
}

/// `AtomicPlain` for each `$t`, kept in the atomic `$a` of its bits: the integers as they
/// are, the floats through `to_bits`/`from_bits` (so they compare bitwise).
macro_rules! plain {
    (integers: $($t:ty => $a:ty),* $(,)?) => {$(
        plain!(@impl $t => $a, ::std::convert::identity, ::std::convert::identity);
    )*};
    (floats: $($t:ty => $a:ty),* $(,)?) => {$(
        plain!(@impl $t => $a, <$t>::to_bits, <$t>::from_bits);
    )*};
    (@impl $t:ty => $a:ty, $to_bits:expr, $from_bits:expr) => {
        impl sealed::Sealed for $t {}
        impl AtomicPlain for $t {
            type Atomic = $a;
            fn atomic(v: Self) -> $a {
                <$a>::new($to_bits(v))
            }
            fn load(a: &$a, o: Ordering) -> Self {
                $from_bits(a.load(o))
            }
            fn store(a: &$a, v: Self, o: Ordering) {
                a.store($to_bits(v), o)
            }
            fn swap(a: &$a, v: Self, o: Ordering) -> Self {
                $from_bits(a.swap($to_bits(v), o))
            }
            fn cas_weak(a: &$a, current: Self, new: Self) -> Result<Self, Self> {
                a.compare_exchange_weak(
                    $to_bits(current),
                    $to_bits(new),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .map($from_bits)
                .map_err($from_bits)
            }
        }
    };
}

plain!(integers:
    u8 => AtomicU8, u16 => AtomicU16, u32 => AtomicU32, u64 => AtomicU64, usize => AtomicUsize,
    i8 => AtomicI8, i16 => AtomicI16, i32 => AtomicI32, i64 => AtomicI64, isize => AtomicIsize,
);
plain!(floats: f32 => AtomicU32, f64 => AtomicU64);

/// A plain number (`i32`, `u64`, `f64`, …; see [`AtomicPlain`]) that several processes read and
/// write at once, without a lock — Python's `RawValue('d', 0.0)` is
/// `Value<AtomicCell<f64>>`, its `RawArray('i', 10)` is `Array<AtomicCell<i32>>`.
///
/// Every access is one atomic operation on the value's bits (sequentially consistent), so a
/// racing reader sees the old value or the new one, never a torn mix. As in Python, several
/// steps (`v.store(v.load() + 1.0)`) are not one: use [`update`](Self::update), or a lock
/// (`multiproc_ipc_lock::SyncValue`, Python's synchronised `Value`).
///
/// ```
/// use multiproc_arena::{Array, AtomicCell, Value};
/// let v = Value::new(AtomicCell::new(0.5f64)).unwrap();
/// v.store(2.25); // a forked child sees and updates the same value
/// v.update(|x| x * 2.0);
/// assert_eq!(v.load(), 4.5);
///
/// let a = Array::<AtomicCell<i32>>::zeroed(10).unwrap();
/// a.store(3, -7);
/// assert_eq!(a.load(3), -7);
/// assert_eq!(a.load_all()[..4], [0, 0, 0, -7]);
/// ```
///
/// Under `--cfg multiproc_loom` the cell still uses std's atomics: it is storage, not an
/// algorithm (a lock around it is what loom models check).
#[repr(transparent)]
pub struct AtomicCell<T: AtomicPlain>(T::Atomic);

// SAFETY: repr(transparent) over a std atomic integer (ShmSafe): no pointers, no Drop, every
// bit pattern valid.
unsafe impl<T: AtomicPlain> ShmSafe for AtomicCell<T> {}

// SAFETY: repr(transparent) over a std atomic integer, for which all-zero is the value 0
// (and 0.0 for the floats).
unsafe impl<T: AtomicPlain> Zeroable for AtomicCell<T> {}

impl<T: AtomicPlain> AtomicCell<T> {
    /// A cell holding `v`.
    pub fn new(v: T) -> Self {
        AtomicCell(T::atomic(v))
    }

    /// The value now.
    pub fn load(&self) -> T {
        T::load(&self.0, Ordering::SeqCst)
    }

    /// Replaces the value.
    pub fn store(&self, v: T) {
        T::store(&self.0, v, Ordering::SeqCst)
    }

    /// Replaces the value, returning the old one.
    pub fn swap(&self, v: T) -> T {
        T::swap(&self.0, v, Ordering::SeqCst)
    }

    /// Replaces the value `x` with `f(x)` in one atomic step (retrying if another process
    /// wrote in between, so `f` may run more than once); returns the new value.
    pub fn update(&self, mut f: impl FnMut(T) -> T) -> T {
        let mut cur = self.load();
        loop {
            let new = f(cur);
            match T::cas_weak(&self.0, cur, new) {
                Ok(_) => return new,
                Err(seen) => cur = seen,
            }
        }
    }
}

impl<T: AtomicPlain + Default> Default for AtomicCell<T> {
    fn default() -> Self {
        AtomicCell::new(T::default())
    }
}

impl<T: AtomicPlain> From<T> for AtomicCell<T> {
    fn from(v: T) -> Self {
        AtomicCell::new(v)
    }
}

impl<T: AtomicPlain> fmt::Debug for AtomicCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.load(), f)
    }
}

/// Shared-memory types for which all-zero bytes are a valid value (the integers, floats, std
/// atomics, [`AtomicCell`], and arrays of them): what [`Shared::zeroed`](crate::Shared::zeroed)
/// and [`Array::zeroed`](crate::Array::zeroed) need, as Python's `Array('i', 10)` is zero-filled.
///
/// # Safety
/// The all-zero bit pattern must be a valid value of the type.
pub unsafe trait Zeroable: ShmSafe {}

macro_rules! zeroable {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: an integer, float or std atomic: zero is the value 0.
        unsafe impl Zeroable for $t {}
    )*};
}

zeroable!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64);
zeroable!(
    std::sync::atomic::AtomicBool,
    AtomicU8,
    AtomicU16,
    AtomicU32,
    AtomicU64,
    AtomicUsize,
    AtomicI8,
    AtomicI16,
    AtomicI32,
    AtomicI64,
    AtomicIsize,
);

// SAFETY: an array of zeroable values is all-zero exactly when each element is.
unsafe impl<T: Zeroable, const N: usize> Zeroable for [T; N] {}

/// A value of `T` with all bytes zero.
pub(crate) fn zeroed<T: Zeroable>() -> T {
    // SAFETY: `T: Zeroable` promises all-zero bytes are a valid `T`.
    unsafe { std::mem::zeroed() }
}
