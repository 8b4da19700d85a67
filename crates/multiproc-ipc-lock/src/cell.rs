//! [`ShmCell`]: an `UnsafeCell` that may live in shared memory.

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
