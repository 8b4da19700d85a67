//! Process-shared locks, semaphores, conditions, events and barriers for [multiproc], built
//! on [`multiproc_arena`]: Python's `multiprocessing` synchronisation primitives, with a
//! dead holder never deadlocking the others.
//!
//! Every primitive is a small state in an arena (the [global one](multiproc_arena::Arena::global)
//! by default, or one you give to `new_in`), waits on a futex in that memory, is `Clone`
//! (another handle to the same object), is inherited by forked children, and passes to
//! spawned children and over a `Connection` through the arena's handle transfer (serde).
//!
//! - [`Lock`]: non-recursive; any process may release it (Python's `Lock`).
//! - [`RLock`]: recursive, owned by one thread of one process (Python's `RLock`).
//! - [`Mutex`]: std's `Mutex<T>` for a [`ShmSafe`](multiproc_arena::ShmSafe) `T` (Python's
//!   synchronised `Value`).
//!
//! When a process is killed while holding a [`Lock`] or [`Mutex`], the next acquirer gets
//! the lock within 100 ms with std's [`PoisonError`](std::sync::PoisonError) (the guard is
//! still handed over; `clear_poison` clears it). Python deadlocks there.
//!
//! ```
//! use multiproc_ipc_lock::Mutex;
//! let total = Mutex::new(0u64).unwrap();
//! {
//!     let mut g = total.lock().unwrap();
//!     *g += 41;
//! }
//! *total.lock().unwrap() += 1;
//! assert_eq!(*total.lock().unwrap(), 42);
//! ```
//!
//! [multiproc]: https://docs.rs/multiproc

mod barrier;
mod cell;
mod condition;
mod error;
mod event;
mod ident;
mod lock;
mod mutex;
mod raw;
mod rlock;
mod rwlock;
mod semaphore;
#[cfg(not(multiproc_loom))]
mod sys;
mod wait;

pub use crate::barrier::{Barrier, BarrierBuilder, BARRIER_MAX_PARTIES};
pub use crate::condition::{Condition, ConditionLock, PythonLock, CONDITION_SLOTS};
pub use crate::error::{Error, ErrorKind, Result};
pub use crate::event::Event;
pub use crate::lock::{Lock, LockGuard};
pub use crate::mutex::{Mutex, MutexGuard};
pub use crate::rlock::{RLock, RLockGuard};
pub use crate::rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard, RWLOCK_READER_SLOTS};
pub use crate::semaphore::{
    BoundedSemaphore, BoundedSemaphoreGuard, Semaphore, SemaphoreGuard, SEMAPHORE_VALUE_MAX,
};

/// Model-checking support (only under `--cfg multiproc_loom`).
#[cfg(multiproc_loom)]
#[doc(hidden)]
pub mod loom_support {
    /// The calling model thread "dies": liveness checks see it dead from now on, and every
    /// sleeper wakes to check (as the real code's poll timer would).
    pub fn die() {
        crate::ident::mark_dead(crate::ident::me().id);
        crate::wait::wake_everyone_to_poll();
    }
}
