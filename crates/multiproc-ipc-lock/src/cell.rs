//! [`ShmCell`]: an `UnsafeCell` that may live in shared memory, and [`plain_state!`] for the
//! states made of atomics and integers only.

use multiproc_arena::ShmSafe;
use std::cell::UnsafeCell;

/// A `T` mutated only under a lock that the containing type provides.
#[repr(transparent)]
pub(crate) struct ShmCell<T>(UnsafeCell<T>);

impl<T> ShmCell<T> {
    pub(crate) fn new(v: T) -> Self {
        ShmCell(UnsafeCell::new(v))
    }

    pub(crate) fn get(&self) -> *mut T {
        self.0.get()
    }
}

// SAFETY: every access goes through a guard of the lock next to the cell, which gives
// exclusive (`&mut`) or shared (`&`, T: Sync) access only.
unsafe impl<T: Send + Sync> Sync for ShmCell<T> {}

// SAFETY: transparent over T, which is ShmSafe; the cell adds no pointer and no Drop.
unsafe impl<T: ShmSafe> ShmSafe for ShmCell<T> {}

/// `ShmSafe` for `$T`, a lock's `#[repr(C)]` state made of atomics and integers only, and (off
/// loom, whose atomics are larger) a check that it is `$size` big.
macro_rules! plain_state {
    ($T:ty, $size:ty) => {
        // SAFETY: `$T` is repr(C) of atomics and integers only: no pointers, no Drop.
        unsafe impl multiproc_arena::ShmSafe for $T {}

        #[cfg(not(multiproc_loom))]
        static_assertions::assert_eq_size!($T, $size);
    };
}

pub(crate) use plain_state;
