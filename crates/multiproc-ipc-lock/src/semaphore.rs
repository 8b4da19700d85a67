//! [`Semaphore`] and [`BoundedSemaphore`]: Python's counting semaphores.

use crate::error::{Error, ErrorKind, Result};
use crate::wait::{self, Deadline, Wake};
use multiproc_arena::sync::atomic::{AtomicU32, Ordering};
use multiproc_arena::{Arena, Shared};
use std::fmt;
use std::time::Duration;

/// The largest value a semaphore holds (POSIX's `SEM_VALUE_MAX` on Linux).
pub const SEMAPHORE_VALUE_MAX: u32 = i32::MAX as u32;

const VALUE: u32 = SEMAPHORE_VALUE_MAX;
/// Set while a waiter may sleep on the word; a release wakes one.
const WAITERS: u32 = 1 << 31;

#[repr(C)]
pub(crate) struct SemState {
    /// The futex word.
    ///
    /// | bits   | meaning                                             |
    /// |--------|-----------------------------------------------------|
    /// | 0..=30 | the value                                           |
    /// | 31     | `WAITERS`: someone may sleep; a release wakes one   |
    ///
    /// - acquire: CAS `v` → `v - 1` when the value is positive; a waiter that slept sets
    ///   `WAITERS` as it takes a unit (others may still sleep) and, if units remain, wakes one
    ///   more (passing the baton, since releases that found `WAITERS` clear woke no one);
    /// - a waiter that finds 0 sets `WAITERS` and sleeps on exactly `WAITERS`;
    /// - release: CAS `v` → `value + 1` with `WAITERS` cleared, waking one if it was set;
    /// - a waiter whose deadline passes takes a unit if there is one, else leaves `WAITERS`
    ///   set (a wake-up it consumed is then not lost for the others).
    ///
    /// Sleepers also wake every `POLL` to look again, so a woken waiter killed before taking
    /// its unit delays the others by at most that.
    word: AtomicU32,
    /// Highest value a release may reach.
    max: u32,
}

crate::cell::plain_state!(SemState, u64);

impl SemState {
    fn new(value: u32, max: u32) -> Result<SemState> {
        if value > max {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("semaphore value {value} above its maximum {max}"),
            ));
        }
        Ok(SemState { word: AtomicU32::new(value), max })
    }

    #[inline]
    fn try_acquire(&self) -> bool {
        let mut v = self.word.load(Ordering::Relaxed);
        while v & VALUE > 0 {
            match self.word.compare_exchange_weak(v, v - 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(x) => v = x,
            }
        }
        false
    }

    #[inline]
    fn acquire(&self, dl: &mut Deadline) -> bool {
        self.try_acquire() || self.acquire_slow(dl)
    }

    #[cold]
    fn acquire_slow(&self, dl: &mut Deadline) -> bool {
        if dl.passed() {
            return false;
        }
        let mut slept = false;
        wait::spin(|| self.word.load(Ordering::Relaxed) & VALUE > 0);
        loop {
            match self.take_or_flag(slept) {
                Some(true) => return true,
                Some(false) => {}
                None => continue,
            }
            match wait::wait(&self.word, WAITERS, dl, true) {
                Wake::Woken | Wake::Poll => slept = true,
                Wake::TimedOut => return self.give_up(),
            }
        }
    }

    /// Takes a unit from `v` (value > 0); `slept`: see the word's table.
    fn take(&self, v: u32, slept: bool) -> bool {
        let new = (v - 1) | if slept { WAITERS } else { 0 };
        if self.word.compare_exchange(v, new, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return false;
        }
        if slept && new & VALUE > 0 {
            wait::wake(&self.word, 1);
        }
        true
    }

    /// One look at the word by a waiting acquirer: `Some(true)` if it took a unit (see
    /// [`take`](Self::take) for `slept`), `Some(false)` if the value is 0 and `WAITERS` is set
    /// (it may sleep), `None` if the word moved on meanwhile (look again).
    #[inline]
    fn take_or_flag(&self, slept: bool) -> Option<bool> {
        let v = self.word.load(Ordering::Relaxed);
        if v & VALUE > 0 {
            return self.take(v, slept).then_some(true);
        }
        wait::flag(&self.word, v, WAITERS).then_some(false)
    }

    fn give_up(&self) -> bool {
        loop {
            if let Some(took) = self.take_or_flag(true) {
                return took;
            }
        }
    }

    fn release(&self, n: u32) -> Result<u32> {
        let mut v = self.word.load(Ordering::Relaxed);
        loop {
            let val = v & VALUE;
            if n > self.max - val {
                return Err(Error::new(
                    ErrorKind::TooManyReleases,
                    format!("value {val} + {n} would exceed {}", self.max),
                ));
            }
            match self.word.compare_exchange_weak(v, val + n, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => {
                    if v & WAITERS != 0 {
                        wait::wake(&self.word, n);
                    }
                    return Ok(val + n);
                }
                Err(x) => v = x,
            }
        }
    }

    fn value(&self) -> u32 {
        self.word.load(Ordering::Relaxed) & VALUE
    }
}

macro_rules! semaphore_api {
    ($name:ident, $guard:ident) => {
        impl $name {
            /// Takes one unit, waiting for it (without a guard: give it back with
            /// `release`).
            pub fn acquire(&self) {
                self.state.acquire(&mut Deadline::never());
            }

            /// Takes one unit if one is there now; an error of kind
            /// [`WouldBlock`](ErrorKind::WouldBlock) otherwise.
            pub fn try_acquire(&self) -> Result<()> {
                if self.state.try_acquire() {
                    Ok(())
                } else {
                    Err(ErrorKind::WouldBlock.into())
                }
            }

            /// Takes one unit, waiting at most `timeout`; an error of kind
            /// [`Timeout`](ErrorKind::Timeout) when none came.
            pub fn acquire_timeout(&self, timeout: Duration) -> Result<()> {
                if self.state.acquire(&mut Deadline::after(timeout)) {
                    Ok(())
                } else {
                    Err(ErrorKind::Timeout.into())
                }
            }

            /// Python's `acquire(block=True, timeout=None)`: takes one unit; `false` when
            /// none came (non-blocking, or the timeout passed). `timeout` is ignored when
            /// `block` is false, as in Python.
            pub fn acquire_with(&self, block: bool, timeout: Option<Duration>) -> bool {
                if !block {
                    return self.state.try_acquire();
                }
                self.state.acquire(&mut Deadline::from_option(timeout))
            }

            /// Takes one unit, blocking; the guard gives it back on drop.
            pub fn permit(&self) -> $guard<'_> {
                self.state.acquire(&mut Deadline::never());
                $guard { sem: self }
            }

            /// Takes one unit if one is there now.
            pub fn try_permit(&self) -> Option<$guard<'_>> {
                self.state.try_acquire().then(|| $guard { sem: self })
            }

            /// Takes one unit, waiting at most `timeout`.
            pub fn permit_for(&self, timeout: Duration) -> Option<$guard<'_>> {
                self.state.acquire(&mut Deadline::after(timeout)).then(|| $guard { sem: self })
            }

            /// The current value (Python's `get_value()`; a snapshot).
            pub fn value(&self) -> u32 {
                self.state.value()
            }

            /// Whether two handles name the same semaphore.
            pub fn same(&self, other: &$name) -> bool {
                std::ptr::eq(&*self.state, &*other.state)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).field("value", &self.value()).finish()
            }
        }

        /// One unit of a semaphore, given back on drop.
        #[must_use = "the unit is given back as soon as the guard is dropped"]
        pub struct $guard<'a> {
            sem: &'a $name,
        }

        impl Drop for $guard<'_> {
            fn drop(&mut self) {
                // The unit we took is ours to give back: it cannot overflow the maximum.
                let _ = self.sem.state.release(1);
            }
        }

        impl fmt::Debug for $guard<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($guard)).field("sem", self.sem).finish()
            }
        }
    };
}

/// A counting semaphore shared by processes (Python's `multiprocessing.Semaphore`).
///
/// Releases are unbounded up to [`SEMAPHORE_VALUE_MAX`]. A process that dies holding units
/// does not give them back (as in Python: a semaphore has no owner); a waiter that dies
/// never blocks the others.
///
/// ```
/// use multiproc_ipc_lock::Semaphore;
/// let s = Semaphore::new(2).unwrap();
/// s.acquire();
/// assert!(s.acquire_with(true, None)); // Python's shape
/// assert!(s.try_acquire().unwrap_err().is_would_block());
/// assert_eq!(s.release().unwrap(), 1);
/// assert_eq!(s.release().unwrap(), 2);
/// assert_eq!(s.release().unwrap(), 3); // unbounded
/// ```
#[derive(Clone)]
pub struct Semaphore {
    state: Shared<SemState>,
}

/// A semaphore that refuses to be released above its initial value (Python's
/// `multiprocessing.BoundedSemaphore`).
///
/// ```
/// use multiproc_ipc_lock::{BoundedSemaphore, ErrorKind};
/// let s = BoundedSemaphore::new(1).unwrap();
/// assert_eq!(s.release().unwrap_err().kind(), ErrorKind::TooManyReleases);
/// let _p = s.permit();
/// assert_eq!(s.value(), 0);
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    state: Shared<SemState>,
}

semaphore_api!(Semaphore, SemaphoreGuard);
semaphore_api!(BoundedSemaphore, BoundedSemaphoreGuard);
crate::handle::shared_handle!(Semaphore, state, "semaphore holding `value` units", |value: u32| {
    SemState::new(value, SEMAPHORE_VALUE_MAX)?
});
crate::handle::shared_handle!(
    BoundedSemaphore,
    state,
    "bounded semaphore holding `value` units (also its maximum)",
    |value: u32| SemState::new(value, value)?
);

impl Semaphore {
    /// Gives back one unit, waking a waiter; returns the new value. An error of kind
    /// [`TooManyReleases`](ErrorKind::TooManyReleases) above [`SEMAPHORE_VALUE_MAX`].
    pub fn release(&self) -> Result<u32> {
        self.state.release(1)
    }

    /// Gives back `n` units at once (Python's `release(n)`); returns the new value.
    pub fn release_n(&self, n: u32) -> Result<u32> {
        self.state.release(n)
    }
}

impl BoundedSemaphore {
    /// Gives back one unit; an error of kind [`TooManyReleases`](ErrorKind::TooManyReleases)
    /// if that would exceed the initial value. Returns the new value.
    pub fn release(&self) -> Result<u32> {
        self.state.release(1)
    }

    /// The initial (and highest) value.
    pub fn max_value(&self) -> u32 {
        self.state.max
    }
}
