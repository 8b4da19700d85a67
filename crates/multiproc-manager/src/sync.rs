//! Typed proxies of the managed synchronisation objects, and of custom services.
//!
//! They let processes that share nothing but the manager's address synchronise. Every
//! blocking call waits in the server, on a connection of its own, so it never stalls other
//! threads or processes; each has a timeout variant.

use crate::client::thread_token;
use crate::error::{Error, ErrorKind, LockError, LockResult, Result};
use crate::handle::{boolean, count, proxy, unexpected, unit};
use crate::protocol::*;
use crate::service::Service;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

/// Turns an acquisition reply into std's poisoning shape around `guard`.
fn acquired<G>(r: Result<Reply>, guard: impl FnOnce() -> G) -> LockResult<G> {
    match r {
        Ok(Reply::Acquired { acquired: true, poisoned: false }) => Ok(guard()),
        Ok(Reply::Acquired { acquired: true, poisoned: true }) => {
            Err(LockError::Poisoned(PoisonError::new(guard())))
        }
        Ok(Reply::Acquired { acquired: false, .. }) => Err(LockError::WouldBlock),
        Ok(other) => Err(LockError::Failed(unexpected(&other))),
        Err(e) => Err(LockError::Failed(e)),
    }
}

/// `Ok` when a wait succeeded, else an error of `kind` (a `try_` call or a timeout).
fn took(done: bool, kind: ErrorKind) -> Result<()> {
    if done {
        Ok(())
    } else {
        Err(kind.into())
    }
}

macro_rules! lock_api {
    ($name:ident, $guard:ident, $op:ident) => {
        impl $name {
            fn acquire_wait(&self, wait: Wait) -> Result<Reply> {
                self.op($op::Acquire { owner: thread_token(), wait })
            }

            /// Acquires, waiting as long as it takes. A lock whose previous holder died while
            /// holding it is acquired but reported as [`LockError::Poisoned`].
            pub fn lock(&self) -> LockResult<$guard<'_>> {
                acquired(self.acquire_wait(None), || $guard { lock: self })
            }

            /// Acquires if free now ([`LockError::WouldBlock`] otherwise).
            pub fn try_lock(&self) -> LockResult<$guard<'_>> {
                acquired(self.acquire_wait(Some(0)), || $guard { lock: self })
            }

            /// Acquires, waiting at most `timeout` ([`LockError::WouldBlock`] after it).
            pub fn try_lock_for(&self, timeout: Duration) -> LockResult<$guard<'_>> {
                acquired(self.acquire_wait(wait_from(Some(timeout))), || $guard { lock: self })
            }

            /// Acquires without a guard (Python's `acquire()`); pair with
            /// [`release`](Self::release).
            pub fn acquire(&self) -> LockResult<()> {
                acquired(self.acquire_wait(None), || ())
            }

            /// Acquires without a guard if free now.
            pub fn try_acquire(&self) -> LockResult<()> {
                acquired(self.acquire_wait(Some(0)), || ())
            }

            /// Acquires without a guard, waiting at most `timeout`.
            pub fn acquire_timeout(&self, timeout: Duration) -> LockResult<()> {
                acquired(self.acquire_wait(wait_from(Some(timeout))), || ())
            }

            /// Whether the lock is held by anyone.
            pub fn is_locked(&self) -> Result<bool> {
                self.op($op::Locked).and_then(boolean)
            }
        }

        /// Releases the lock when dropped.
        #[must_use = "the lock is released as soon as the guard is dropped"]
        pub struct $guard<'a> {
            lock: &'a $name,
        }

        impl std::fmt::Debug for $guard<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($guard)).field("lock", self.lock).finish()
            }
        }

        impl Drop for $guard<'_> {
            fn drop(&mut self) {
                let _ = self.lock.release();
            }
        }
    };
}

// ---- Lock / RLock -------------------------------------------------------------------------

/// The two proxies of the server's `Lock` object (which serves both kinds; the docs say
/// what differs): the proxy type, the lock API, and `release`,
/// `is_poisoned` and `clear_poison`.
macro_rules! lock_object_proxy {
    (
        $(#[$doc:meta])*
        $name:ident, $guard:ident, $kind:expr, #[$release:meta], #[$poisoned:meta]
    ) => {
        proxy! {
            $(#[$doc])*
            pub struct $name: $kind, Lock(LockOp);
        }
        lock_api!($name, $guard, LockOp);

        impl $name {
            #[$release]
            pub fn release(&self) -> Result<()> {
                self.op(LockOp::Release { owner: thread_token() }).and_then(unit)
            }

            #[$poisoned]
            pub fn is_poisoned(&self) -> Result<bool> {
                self.op(LockOp::IsPoisoned).and_then(boolean)
            }

            /// Clears the poison flag.
            pub fn clear_poison(&self) -> Result<()> {
                self.op(LockOp::ClearPoison).and_then(unit)
            }
        }
    };
}

lock_object_proxy!(
    /// A proxy of a manager `Lock`.
    ///
    /// As in Python, it is not owner-bound: any process may [`release`](Self::release) it.
    /// Beyond Python, a lock whose holder process dies (or drops its last connection) is
    /// released by the server and *poisoned*: the next acquirer gets it wrapped in
    /// [`LockError::Poisoned`], as with [`std::sync::Mutex`], until
    /// [`clear_poison`](Self::clear_poison).
    LockProxy,
    LockGuard,
    Kind::Lock,
    #[doc = "Releases the lock (held by anyone: [`NotHeld`](ErrorKind::NotHeld) only if unlocked, as the local `Lock`)."],
    #[doc = "Whether a holder died holding the lock since the poison was last cleared."]
);

lock_object_proxy!(
    /// A proxy of a manager `RLock`: recursive, owned by the thread (of the process) that
    /// acquired it. Poisoned like [`LockProxy`] when its owner dies holding it.
    RLockProxy,
    RLockGuard,
    Kind::RLock,
    #[doc = "Releases one level ([`NotOwner`](ErrorKind::NotOwner) if the calling thread does not own it)."],
    #[doc = "Whether an owner died holding the lock since the poison was last cleared."]
);

// ---- Condition ----------------------------------------------------------------------------

proxy! {
    /// A proxy of a manager `Condition` (over its own recursive lock, as Python's default).
    pub struct ConditionProxy: Kind::Condition, Condition(CondOp);
}
lock_api!(ConditionProxy, ConditionGuard, CondOp);

impl ConditionProxy {
    /// Releases one level of the lock.
    pub fn release(&self) -> Result<()> {
        let op = CondOp::Release { owner: thread_token() };
        self.op(op).and_then(unit)
    }

    fn wait_for_notify(&self, wait: Wait) -> Result<bool> {
        let op = CondOp::Wait { owner: thread_token(), wait };
        self.op(op).and_then(boolean)
    }

    /// Releases the lock (which the caller must hold: [`NotOwner`](ErrorKind::NotOwner)
    /// otherwise), waits for a notify, and re-acquires it.
    pub fn wait(&self) -> Result<()> {
        self.wait_for_notify(None).map(|_| ())
    }

    /// As [`wait`](Self::wait), at most `timeout`: an error of kind
    /// [`Timeout`](ErrorKind::Timeout) when no notification came. The lock is re-acquired
    /// either way.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        took(self.wait_for_notify(wait_from(Some(timeout)))?, ErrorKind::Timeout)
    }

    /// Waits until `predicate()` holds (checked with the lock held, first before waiting), or
    /// `timeout` passes; returns the predicate's last value.
    pub fn wait_for(
        &self,
        mut predicate: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if predicate() {
                return Ok(true);
            }
            match deadline {
                None => self.wait()?,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(false);
                    }
                    match self.wait_timeout(left) {
                        Err(e) if !e.is_timeout() => return Err(e),
                        _ => {}
                    }
                }
            }
        }
    }

    /// Wakes one waiter (the caller must hold the lock).
    pub fn notify(&self) -> Result<()> {
        self.notify_n(1)
    }

    /// Wakes up to `n` waiters (the caller must hold the lock).
    pub fn notify_n(&self, n: usize) -> Result<()> {
        let op = CondOp::Notify { owner: thread_token(), n: n as u64 };
        self.op(op).and_then(unit)
    }

    /// Wakes every waiter (the caller must hold the lock).
    pub fn notify_all(&self) -> Result<()> {
        self.notify_n(usize::MAX)
    }
}

// ---- Semaphore ----------------------------------------------------------------------------

proxy! {
    /// A proxy of a manager `Semaphore` or `BoundedSemaphore`. Not owned: a permit taken by a
    /// process that dies is not given back.
    pub struct SemaphoreProxy: Kind::Semaphore, Semaphore(SemOp);
}

impl SemaphoreProxy {
    fn acquire_wait(&self, wait: Wait) -> Result<bool> {
        self.op(SemOp::Acquire(wait)).and_then(boolean)
    }

    /// Takes a permit, waiting for one.
    pub fn acquire(&self) -> Result<()> {
        self.acquire_wait(None).map(|_| ())
    }

    /// Takes a permit if one is free now; an error of kind
    /// [`WouldBlock`](ErrorKind::WouldBlock) otherwise.
    pub fn try_acquire(&self) -> Result<()> {
        took(self.acquire_wait(Some(0))?, ErrorKind::WouldBlock)
    }

    /// Takes a permit, waiting at most `timeout`; an error of kind
    /// [`Timeout`](ErrorKind::Timeout) when none came.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<()> {
        took(self.acquire_wait(wait_from(Some(timeout)))?, ErrorKind::Timeout)
    }

    /// Gives a permit back (a bounded semaphore refuses to go above its initial value:
    /// [`TooManyReleases`](ErrorKind::TooManyReleases)).
    pub fn release(&self) -> Result<()> {
        self.release_n(1)
    }

    /// Gives `n` permits back.
    pub fn release_n(&self, n: usize) -> Result<()> {
        self.op(SemOp::Release(n as u64)).and_then(unit)
    }

    /// The number of free permits (Python's `get_value()`).
    pub fn value(&self) -> Result<u32> {
        let n = self.op(SemOp::Value).and_then(count)?;
        u32::try_from(n)
            .map_err(|_| Error::new(ErrorKind::Protocol, "semaphore value out of range"))
    }
}

// ---- Event --------------------------------------------------------------------------------

proxy! {
    /// A proxy of a manager `Event`.
    pub struct EventProxy: Kind::Event, Event(EventOp);
}

impl EventProxy {
    /// Sets the flag and wakes every waiter.
    pub fn set(&self) -> Result<()> {
        self.op(EventOp::Set).and_then(unit)
    }

    /// Clears the flag.
    pub fn clear(&self) -> Result<()> {
        self.op(EventOp::Clear).and_then(unit)
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> Result<bool> {
        self.op(EventOp::IsSet).and_then(boolean)
    }

    /// Waits until the flag is set.
    pub fn wait(&self) -> Result<()> {
        self.op(EventOp::Wait(None)).and_then(boolean).map(|_| ())
    }

    /// Waits at most `timeout`: an error of kind [`Timeout`](ErrorKind::Timeout) when the
    /// flag stays clear.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        took(
            self.op(EventOp::Wait(wait_from(Some(timeout)))).and_then(boolean)?,
            ErrorKind::Timeout,
        )
    }
}

// ---- Barrier ------------------------------------------------------------------------------

proxy! {
    /// A proxy of a manager `Barrier`.
    ///
    /// Beyond Python: a party whose process dies while waiting breaks the barrier, so the others
    /// get [`BrokenBarrier`](ErrorKind::BrokenBarrier) rather than waiting forever. (Python's
    /// `action` callable is not supported: run it in the party that gets index 0.)
    pub struct BarrierProxy: Kind::Barrier, Barrier(BarrierOp);
}

impl BarrierProxy {
    /// Waits for all parties (or the barrier's default timeout); returns this party's arrival
    /// index, `0..parties` (exactly one party gets 0).
    pub fn wait(&self) -> Result<usize> {
        self.op(BarrierOp::Wait(None)).and_then(count)
    }

    /// As [`wait`](Self::wait), at most `timeout`; a timeout breaks the barrier for everyone.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize> {
        self.op(BarrierOp::Wait(wait_from(Some(timeout)))).and_then(count)
    }

    /// Breaks the barrier: current and future waiters fail until [`reset`](Self::reset).
    pub fn abort(&self) -> Result<()> {
        self.op(BarrierOp::Abort).and_then(unit)
    }

    /// Returns the barrier to its initial state; current waiters fail.
    pub fn reset(&self) -> Result<()> {
        self.op(BarrierOp::Reset).and_then(unit)
    }

    /// The number of parties.
    pub fn parties(&self) -> Result<usize> {
        self.op(BarrierOp::Parties).and_then(count)
    }

    /// How many parties wait now.
    pub fn n_waiting(&self) -> Result<usize> {
        self.op(BarrierOp::NWaiting).and_then(count)
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> Result<bool> {
        self.op(BarrierOp::Broken).and_then(boolean)
    }
}

// ---- services -----------------------------------------------------------------------------

proxy! {
    /// A typed proxy of an instance of a custom [`Service`] living in the server.
    pub struct ServiceProxy<S>: Kind::Service;
}

impl<S: Service> ServiceProxy<S> {
    /// Calls the instance. A panic inside it comes back as
    /// [`ServiceFailed`](ErrorKind::ServiceFailed) with the message.
    pub fn call(&self, request: S::Request) -> Result<S::Response> {
        let req = postcard::to_allocvec(&request).map_err(Error::codec)?;
        match self.h.call(&Request::Service(self.h.id, req))? {
            Reply::Bytes(b) => postcard::from_bytes(&b).map_err(|e| {
                Error::new(ErrorKind::Codec, format!("service response does not decode: {e}"))
            }),
            other => Err(unexpected(&other)),
        }
    }
}
