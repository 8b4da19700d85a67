//! The one shape of the workspace's public operations, as traits: what a caller can count on
//! whichever crate, and whether the object is local (in shared memory) or a manager proxy.
//!
//! The convention (the umbrella crate's API guide says it in full):
//!
//! - `x()` blocks; `try_x()` never waits and fails with an error whose
//!   [`is_would_block`](OpError::is_would_block) is true when it cannot proceed now;
//!   `x_timeout(Duration)` waits at most that long and fails with an error whose
//!   [`is_timeout`](OpError::is_timeout) is true when the time passed. Nothing is done by a
//!   call that fails this way.
//! - Every crate has one error type (made by [`error_type!`](crate::error_type)), with
//!   `kind()`, `is_timeout()`, `is_would_block()` and `is_disconnected()`.
//! - A proxy's operation has the local operation's shape; its transport failures are errors
//!   of the same type. Where a local operation cannot fail (an [`Event`](EventOps)'s `set`),
//!   its inherent method returns the plain value and the trait method wraps it in `Ok`: code
//!   written against these traits works with either.
//!
//! The traits are implemented by `multiproc-ipc-lock`'s objects and `multiproc-manager`'s
//! proxies of them.

use std::time::Duration;

/// What every error of the workspace can say about itself.
pub trait OpError: std::error::Error + Send + Sync + 'static {
    /// A `_timeout` call's deadline passed (nothing was done).
    fn is_timeout(&self) -> bool;
    /// A `try_` call could not proceed now (nothing was done).
    fn is_would_block(&self) -> bool;
    /// The other side (peer, server, closed object) is gone: a retry cannot succeed.
    fn is_disconnected(&self) -> bool;
}

/// An event flag (Python's `Event`).
pub trait EventOps {
    /// The error of every operation.
    type Error: OpError;
    /// Sets the flag and wakes every waiter.
    fn set(&self) -> Result<(), Self::Error>;
    /// Clears the flag.
    fn clear(&self) -> Result<(), Self::Error>;
    /// Whether the flag is set (a snapshot).
    fn is_set(&self) -> Result<bool, Self::Error>;
    /// Waits until the flag is set.
    fn wait(&self) -> Result<(), Self::Error>;
    /// Waits at most `timeout` for the flag; a timeout error when it stays clear.
    fn wait_timeout(&self, timeout: Duration) -> Result<(), Self::Error>;
}

/// A counting semaphore (Python's `Semaphore`, `BoundedSemaphore`).
pub trait SemaphoreOps {
    /// The error of every operation.
    type Error: OpError;
    /// Takes one unit, waiting for it.
    fn acquire(&self) -> Result<(), Self::Error>;
    /// Takes one unit if one is there now; a would-block error otherwise.
    fn try_acquire(&self) -> Result<(), Self::Error>;
    /// Takes one unit, waiting at most `timeout`; a timeout error when none came.
    fn acquire_timeout(&self, timeout: Duration) -> Result<(), Self::Error>;
    /// Gives back one unit.
    fn release(&self) -> Result<(), Self::Error>;
    /// The current value (a snapshot).
    fn value(&self) -> Result<u32, Self::Error>;
}

/// A barrier (Python's `Barrier`).
pub trait BarrierOps {
    /// The error of every operation.
    type Error: OpError;
    /// Waits for all parties; this party's index (`0..parties`).
    fn wait(&self) -> Result<usize, Self::Error>;
    /// [`wait`](Self::wait) for at most `timeout`; the barrier breaks when it passes.
    fn wait_timeout(&self, timeout: Duration) -> Result<usize, Self::Error>;
    /// Breaks the barrier: waiters and later callers fail.
    fn abort(&self) -> Result<(), Self::Error>;
    /// Returns the barrier to its empty, unbroken state.
    fn reset(&self) -> Result<(), Self::Error>;
    /// The number of parties.
    fn parties(&self) -> Result<usize, Self::Error>;
    /// Parties waiting now (a snapshot).
    fn n_waiting(&self) -> Result<usize, Self::Error>;
    /// Whether the barrier is broken.
    fn is_broken(&self) -> Result<bool, Self::Error>;
}

/// A lock acquired and released by calls (Python's `Lock`/`RLock` `acquire`/`release`);
/// the guard-returning `lock()` / `try_lock()` / `try_lock_for()` follow `std::sync::Mutex`.
pub trait LockOps {
    /// The error of every operation.
    type Error: OpError;
    /// Acquires, waiting for the lock. A lock taken over from a dead holder is acquired
    /// (and poisoned; see the type's `is_poisoned`).
    fn acquire(&self) -> Result<(), Self::Error>;
    /// Acquires if the lock is free now; a would-block error otherwise.
    fn try_acquire(&self) -> Result<(), Self::Error>;
    /// Acquires, waiting at most `timeout`; a timeout error when it stays held.
    fn acquire_timeout(&self, timeout: Duration) -> Result<(), Self::Error>;
    /// Releases it.
    fn release(&self) -> Result<(), Self::Error>;
}

/// A condition variable with its own lock (Python's `Condition`): the lock is taken with
/// [`LockOps`]; waits and notifications need it held.
pub trait ConditionOps: LockOps {
    /// Releases the lock, waits for a notification, takes the lock again.
    fn wait(&self) -> Result<(), Self::Error>;
    /// [`wait`](Self::wait) for at most `timeout`; a timeout error when no notification
    /// came (the lock is held again either way).
    fn wait_timeout(&self, timeout: Duration) -> Result<(), Self::Error>;
    /// Wakes one waiter.
    fn notify(&self) -> Result<(), Self::Error>;
    /// Wakes every waiter.
    fn notify_all(&self) -> Result<(), Self::Error>;
}
