//! The lock crate's waits: the arena's [`park`](multiproc_arena::futex::park) with a liveness
//! poll.
//!
//! Waiting on a word whose holder may die needs a bounded sleep: a dead process wakes no
//! one. A wait with `poll` sleeps at most [`POLL`] and then reports [`Wake::Poll`] so the
//! caller can check the holder's liveness. 20 ms keeps the "next acquirer sees the poison
//! within 100 ms of the death" promise with margin (a waiter already asleep notices within
//! one poll, a newcomer within its first), and costs a sleeping waiter 50 wake-ups a second,
//! nothing while the lock is uncontended. Under loom the arena's exact futex model applies.

use multiproc_arena::futex;
use multiproc_arena::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

pub(crate) use multiproc_arena::futex::{wake, wake_all, Deadline, Wake};

/// The longest a waiter sleeps before re-checking the liveness of a holder.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// Spin iterations before sleeping (none under loom, where a spin is a yield).
#[cfg(not(multiproc_loom))]
pub(crate) const SPIN: u32 = 100;
#[cfg(multiproc_loom)]
pub(crate) const SPIN: u32 = 0;

/// Sleeps while `*word == expected`; see [`Wake`].
#[inline]
pub(crate) fn wait(word: &AtomicU32, expected: u32, dl: &mut Deadline, poll: bool) -> Wake {
    futex::park(word, expected, dl, poll.then_some(POLL))
}

/// Sleeps while the low half of `*word` equals the low half of `expected`; see [`Wake`].
#[inline]
pub(crate) fn wait64(word: &AtomicU64, expected: u64, dl: &mut Deadline, poll: bool) -> Wake {
    futex::park_low(word, expected as u32, dl, poll.then_some(POLL))
}

/// Makes sure `word`, just read as `v`, has the `waiters` flag set before its reader sleeps
/// on it: `true` if it was set already or this set it, `false` if the word moved on meanwhile
/// (reload and retry).
#[inline]
pub(crate) fn flag(word: &AtomicU32, v: u32, waiters: u32) -> bool {
    v & waiters != 0
        || word.compare_exchange(v, v | waiters, Ordering::Relaxed, Ordering::Relaxed).is_ok()
}

/// [`flag`] for a 64-bit word.
#[inline]
pub(crate) fn flag64(word: &AtomicU64, v: u64, waiters: u64) -> bool {
    v & waiters != 0
        || word.compare_exchange(v, v | waiters, Ordering::Relaxed, Ordering::Relaxed).is_ok()
}

/// Wakes at most `n` sleepers of [`wait64`] on `word`.
#[inline]
pub(crate) fn wake64(word: &AtomicU64, n: u32) -> usize {
    futex::wake_low(word, n)
}

/// Wakes every sleeper of [`wait64`] on `word`.
#[inline]
pub(crate) fn wake_all64(word: &AtomicU64) -> usize {
    futex::wake_low(word, u32::MAX)
}

/// Spins up to [`SPIN`] times until `cond` holds.
#[inline]
pub(crate) fn spin(cond: impl FnMut() -> bool) -> bool {
    futex::spin_until(SPIN, cond)
}
