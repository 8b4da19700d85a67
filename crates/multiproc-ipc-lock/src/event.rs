//! [`Event`]: Python's `multiprocessing.Event`.

use crate::error::Result;
use crate::wait::{self, Deadline, Wake};
use multiproc_arena::sync::atomic::{fence, AtomicU32, Ordering};
use multiproc_arena::{Arena, Shared, ShmSafe};
use std::fmt;
use std::time::Duration;

const SET: u32 = 1;
const WAITERS: u32 = 2;
/// The generation counts `set` calls that found the flag clear (bits 2..=31).
const GEN_ONE: u32 = 4;

#[repr(C)]
pub(crate) struct EventState {
    /// The futex word.
    ///
    /// | bits   | meaning                                                  |
    /// |--------|----------------------------------------------------------|
    /// | 0      | `SET`: the flag                                          |
    /// | 1      | `WAITERS`: someone may sleep; `set` wakes everyone       |
    /// | 2..=31 | generation: bumped by each `set` that finds the flag clear |
    ///
    /// A waiter returns `true` once the flag is set *or* the generation moved since it
    /// started, so a `set` quickly followed by `clear` still releases every waiter that was
    /// there (no lost wake-up); a `set` before the wait began never wakes it later (no stale
    /// one). `set` clears `WAITERS` as it wakes everyone; a dead waiter costs one needless wake.
    word: AtomicU32,
}

// SAFETY: repr(C), one atomic.
unsafe impl ShmSafe for EventState {}

/// A flag that processes can set, clear and wait for (Python's `multiprocessing.Event`).
///
/// ```
/// use multiproc_ipc_lock::Event;
/// use std::time::Duration;
/// let e = Event::new().unwrap();
/// assert!(e.wait_timeout(Duration::ZERO).unwrap_err().is_timeout());
/// e.set();
/// assert!(e.is_set());
/// e.wait_timeout(Duration::from_secs(1)).unwrap();
/// e.clear();
/// assert!(!e.is_set());
/// ```
#[derive(Clone)]
pub struct Event {
    state: Shared<EventState>,
}

crate::handle::shared_handle!(Event, state, "clear event", || EventState {
    word: AtomicU32::new(0)
});

impl Event {
    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.state.word.load(Ordering::Acquire) & SET != 0
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        let w = &self.state.word;
        let mut v = w.load(Ordering::Relaxed);
        loop {
            if v & SET != 0 {
                // Already set; still order our earlier writes before the waiters' reads.
                if w.compare_exchange_weak(v, v, Ordering::Release, Ordering::Relaxed).is_ok() {
                    return;
                }
                v = w.load(Ordering::Relaxed);
                continue;
            }
            let new = (v & !(SET | WAITERS)).wrapping_add(GEN_ONE) | SET;
            match w.compare_exchange_weak(v, new, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => {
                    if v & WAITERS != 0 {
                        wait::wake_all(w);
                    }
                    return;
                }
                Err(x) => v = x,
            }
        }
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.state.word.fetch_and(!SET, Ordering::Relaxed);
    }

    /// Blocks until the flag is set.
    pub fn wait(&self) {
        self.wait_deadline(&mut Deadline::never());
    }

    /// Blocks until the flag is set or `timeout` passes: an error of kind
    /// [`Timeout`](crate::ErrorKind::Timeout) when it stays clear (Python's `wait(timeout)`
    /// returning `False`).
    pub fn wait_timeout(&self, timeout: Duration) -> crate::Result<()> {
        if self.wait_deadline(&mut Deadline::after(timeout)) {
            Ok(())
        } else {
            Err(crate::ErrorKind::Timeout.into())
        }
    }

    fn wait_deadline(&self, dl: &mut Deadline) -> bool {
        let w = &self.state.word;
        let v0 = w.load(Ordering::Acquire);
        if v0 & SET != 0 {
            return true;
        }
        let released = |v: u32| v & SET != 0 || (v ^ v0) & !(SET | WAITERS) != 0;
        if dl.passed() {
            return false;
        }
        // A setter that answers within a couple of microseconds costs no futex round trip.
        if wait::spin(|| released(w.load(Ordering::Relaxed))) {
            fence(Ordering::Acquire);
            return true;
        }
        loop {
            let v = w.load(Ordering::Acquire);
            if released(v) {
                return true;
            }
            if !wait::flag(w, v, WAITERS) {
                continue;
            }
            if wait::wait(w, v | WAITERS, dl, true) == Wake::TimedOut {
                return released(w.load(Ordering::Acquire));
            }
        }
    }

    /// Whether two handles name the same event.
    pub fn same(&self, other: &Event) -> bool {
        std::ptr::eq(&*self.state, &*other.state)
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event").field("set", &self.is_set()).finish()
    }
}
