//! Process-shared locks, semaphores, conditions, events and barriers for [multiproc], built
//! on [`multiproc_arena`]: Python's `multiprocessing` synchronisation primitives, where a
//! holder killed at any instant never deadlocks the others.
//!
//! Every primitive is a small state in an arena (the
//! [global one](multiproc_arena::Arena::global) by default, or the one given to `new_in`),
//! waits on a futex in that memory, is `Clone` (another handle to the same object), and
//! crosses processes in three ways, with this crate alone:
//! - **fork** (any fork through libc: `libc::fork`, nix, `multiproc-spawn`): a child inherits
//!   the handles, each counted for it by the arena's fork handler, so parent and child drop
//!   their own copies (see [`multiproc_arena::fork`]; a child that `_exit`s without
//!   dropping them calls `multiproc_arena::fork::release_handles` first, or leaks them);
//! - **by name**, between processes that share no parent: `create_named` / `open` /
//!   `open_or_create` on [`Lock`], [`RLock`], [`Mutex`], [`RwLock`], [`Semaphore`],
//!   [`BoundedSemaphore`] and [`Event`] (a named segment per object, mode 0600; opening
//!   another type is a typed error; see `examples/named_counter.rs`);
//! - **handle transfer** to spawned children and over a `Connection` (serde, inside a
//!   transfer context).
//!
//! - [`Lock`]: non-recursive; any process may release it (Python's `Lock`).
//! - [`RLock`]: recursive, owned by one thread of one process (Python's `RLock`).
//! - [`Mutex`]: std's `Mutex<T>` for a [`ShmSafe`](multiproc_arena::ShmSafe) `T` (Python's
//!   synchronised `Value`).
//! - [`SyncValue`], [`SyncArray`]: a plain number or array of them with a [`Lock`] or
//!   [`RLock`] the caller may supply (Python's `Value('d', 0.0, lock=L)` / `Array`).
//! - [`RwLock`]: std's `RwLock<T>` across processes.
//! - [`Semaphore`], [`BoundedSemaphore`]: counting semaphores.
//! - [`Condition`]: over a [`Lock`], an [`RLock`] (the default) or a [`Mutex`]; `notify(n)`
//!   wakes exactly the `n` oldest waiters.
//! - [`Event`]: a flag to set, clear and wait for.
//! - [`Barrier`]: parties, action, timeout, abort, reset, broken state.
//!
//! Beyond Python: when a process dies holding a [`Lock`], [`RLock`], [`Mutex`] or the write
//! side of an [`RwLock`], the next acquirer gets the lock within 100 ms with std's
//! [`PoisonError`](std::sync::PoisonError) (the guard is still handed over; `clear_poison`
//! clears it). Python deadlocks there. A waiter that dies never blocks the others, a reader
//! that dies stops blocking writers, and a [`Barrier`] party that dies while waiting breaks
//! the barrier for the rest. How: each lock word names its holder's arena identity, and a
//! waiter that slept 20 ms without the holder changing asks the kernel whether the holder
//! died ([`multiproc_arena::liveness`]: a proof, never a guess from a pid or `/proc`, so a
//! live holder in another PID namespace is never taken over) — see the notes on `RawLock` in
//! `src/raw.rs` for the measurements.
//!
//! Identity is per process and is refreshed in a forked child by a `pthread_atfork` handler,
//! so children must be made with libc's `fork` (as `multiproc-spawn` and
//! `multiproc_arena::testing::fork` do), not a raw `clone`.
//!
//! ```
//! use multiproc_ipc_lock::{Condition, Mutex};
//! let total = Mutex::new(0u64).unwrap();
//! let changed = Condition::with_lock(total.clone()).unwrap();
//! {
//!     let mut g = total.lock().unwrap();
//!     *g += 41;
//!     changed.notify_all().unwrap();
//! }
//! *total.lock().unwrap() += 1;
//! let g = changed.wait_while(total.lock().unwrap(), |v| *v < 42).unwrap();
//! assert_eq!(*g, 42);
//! ```
//!
//! [multiproc]: https://docs.rs/multiproc

mod api;
mod barrier;
mod cell;
mod condition;
mod error;
mod event;
mod handle;
mod ident;
mod lock;
mod mutex;
mod raw;
mod rlock;
mod rwlock;
mod semaphore;
#[cfg(not(multiproc_loom))]
mod synchronized;
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
#[cfg(not(multiproc_loom))]
pub use crate::synchronized::{SyncArray, SyncArrayGuard, SyncValue, SyncValueGuard, ValueLock};

/// Model-checking support (only under `--cfg multiproc_loom`).
#[cfg(multiproc_loom)]
#[doc(hidden)]
pub mod loom_support {
    /// The calling model thread "dies": liveness checks see it dead from now on, and every
    /// sleeper wakes to check (as the real code's poll timer would).
    pub fn die() {
        crate::ident::mark_dead(crate::ident::me().id);
        multiproc_arena::futex::model_death();
    }
}
