//! Futex wait/wake on words in shared memory.
//!
//! The words live in `MAP_SHARED` mappings, so the futexes are the shared (not `PRIVATE`)
//! kind. Deadlines are absolute CLOCK_MONOTONIC times (`FUTEX_WAIT_BITSET`): a spurious
//! wake-up followed by another wait does not stretch a timeout.
//!
//! Measured on the 2-vCPU machines this project runs on: a futex round trip between two
//! processes costs ~12 µs (the wake-up dominates); a busy-spin round trip ~0.35 µs. Callers
//! that expect a quick answer spin a bounded number of iterations first ([`spin_until`]) —
//! bounded, because on two cores a spinner that never sleeps steals its peer's core.

use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Iterations of [`spin_until`] that callers may use before sleeping. One `spin_loop` costs from
/// ~1 ns to ~25 ns depending on the CPU (AMD parts execute `pause` slowly), so measure before
/// choosing: the lock crate uses 100.
pub const DEFAULT_SPIN: u32 = 1000;

/// Blocks while `*word == expected`, until woken, `deadline` passes, or spuriously.
///
/// Returns `false` only when the deadline passed; `true` means "look again" (woken, value
/// changed, or a spurious wake-up). Callers loop on their own condition.
#[inline]
pub fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool {
    if let Some(d) = deadline {
        if Instant::now() >= d {
            return false;
        }
    }
    #[cfg(not(multiproc_loom))]
    {
        crate::sys::futex_wait(word, expected, deadline)
    }
    #[cfg(multiproc_loom)]
    {
        // Loom stand-in: a wait is a loom-visible yield; callers re-check their condition.
        let _ = (word.load(Ordering::Acquire), expected);
        loom::thread::yield_now();
        true
    }
}

/// Wakes at most `n` waiters blocked in [`wait`] on `word`; returns how many were woken.
#[inline]
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    #[cfg(not(multiproc_loom))]
    {
        crate::sys::futex_wake(word, n)
    }
    #[cfg(multiproc_loom)]
    {
        let _ = (word, n);
        0
    }
}

/// [`wait`] on the low 32 bits of a 64-bit word: blocks while `*word as u32 == expected`.
///
/// For a state word that keeps a futex-sized part (flags and a small id) beside more data in
/// the same atomic (the lock crate's word holds its holder's whole
/// [`Identity`](crate::Identity), so a waiter never sees a holder half recorded).
#[inline]
pub fn wait_low(word: &AtomicU64, expected: u32, deadline: Option<Instant>) -> bool {
    if let Some(d) = deadline {
        if Instant::now() >= d {
            return false;
        }
    }
    #[cfg(not(multiproc_loom))]
    {
        crate::sys::futex_wait_low(word, expected, deadline)
    }
    #[cfg(multiproc_loom)]
    {
        let _ = (word.load(Ordering::Acquire), expected);
        loom::thread::yield_now();
        true
    }
}

/// [`wake`] for waiters in [`wait_low`] on `word`.
#[inline]
pub fn wake_low(word: &AtomicU64, n: u32) -> usize {
    #[cfg(not(multiproc_loom))]
    {
        crate::sys::futex_wake_low(word, n)
    }
    #[cfg(multiproc_loom)]
    {
        let _ = (word, n);
        0
    }
}

/// Wakes one waiter.
#[inline]
pub fn wake_one(word: &AtomicU32) -> usize {
    wake(word, 1)
}

/// Wakes every waiter.
#[inline]
pub fn wake_all(word: &AtomicU32) -> usize {
    wake(word, u32::MAX)
}

/// Spins up to `iterations` times until `cond()` holds; returns whether it did.
#[inline]
pub fn spin_until(iterations: u32, mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..iterations {
        if cond() {
            return true;
        }
        crate::sync::spin_loop();
    }
    cond()
}

/// `Instant::now() + timeout`, or `None` (wait forever) when that overflows.
#[inline]
pub fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Waits until `word` no longer holds `expected` or the deadline passes; returns the value
/// seen last. A convenience loop over [`wait`] for callers whose condition is "changed".
pub fn wait_while_eq(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> u32 {
    loop {
        let v = word.load(Ordering::Acquire);
        if v != expected {
            return v;
        }
        if !wait(word, expected, deadline) {
            return word.load(Ordering::Acquire);
        }
    }
}
