//! Waiting and waking: how long an operation may wait ([`Block`]), the spin-then-sleep
//! [`Waiter`] over the arena's [`futex::park`], and the event-word protocol
//! ([`prepare_wait`] / [`notify`]) that makes a sleeper impossible to miss.

use multiproc_arena::futex::{self, Deadline, Wake};
use multiproc_arena::sync::atomic::{fence, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How often a waiter checks the liveness of the party it waits on.
pub const CHECK_EVERY: Duration = Duration::from_millis(2);

/// How long an operation may wait.
#[derive(Debug, Clone, Copy)]
pub enum Block {
    /// Not at all.
    No,
    /// Until the deadline (under loom: a count of waits, see [`Deadline`]).
    Until(Deadline),
    /// For ever.
    Forever,
}

impl Block {
    /// `Until(now + d)`, or `Forever` if that overflows.
    pub fn after(d: Duration) -> Block {
        let dl = Deadline::after(d);
        if dl.is_finite() {
            Block::Until(dl)
        } else {
            Block::Forever
        }
    }

    /// Whether the operation may wait at all (not [`Block::No`]).
    #[inline]
    pub fn waits(&self) -> bool {
        !matches!(self, Block::No)
    }
}

/// Why a ring operation did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No room (non-blocking put) or nothing to take (non-blocking get).
    WouldBlock,
    /// The deadline passed.
    Timeout,
    /// The queue is closed (put), or closed and drained (get).
    Closed,
}

/// Spin iterations before sleeping.
#[cfg(not(multiproc_loom))]
pub(super) const SPIN: u32 = 200;
#[cfg(multiproc_loom)]
pub(super) const SPIN: u32 = 0;

/// Spins until `cond` holds or `budget` pause instructions are spent, looking less and less
/// often: a peer about to publish keeps the cache line it writes instead of losing it to our
/// polling on every iteration.
#[inline]
pub(super) fn spin_backoff(budget: &mut u32, mut cond: impl FnMut() -> bool) -> bool {
    let mut pauses = 1u32;
    while *budget > 0 {
        if cond() {
            return true;
        }
        let n = pauses.min(*budget);
        for _ in 0..n {
            multiproc_arena::sync::spin_loop();
        }
        *budget -= n;
        pauses = (pauses * 2).min(16);
    }
    cond()
}

/// Tracks one blocking wait: its deadline and when the holder was last checked.
pub(crate) struct Waiter {
    /// `None`: not blocking ([`Block::No`]).
    deadline: Option<Deadline>,
    /// Pause instructions left to spin before sleeping (shared by every pause of the wait).
    pub(crate) spin_left: u32,
    #[cfg_attr(multiproc_loom, allow(dead_code))]
    last_check: Option<Instant>,
    /// Calls of `check_due` (the clock is read on every 8th).
    #[cfg_attr(multiproc_loom, allow(dead_code))]
    checks: u32,
}

/// `check_due` reads the clock once per this many calls (a spinning waiter calls it often).
#[cfg_attr(multiproc_loom, allow(dead_code))]
const CLOCK_EVERY: u32 = 8;

impl Waiter {
    pub(crate) fn new(block: Block) -> Self {
        let deadline = match block {
            Block::No => None,
            Block::Until(d) => Some(d),
            Block::Forever => Some(Deadline::never()),
        };
        Waiter { deadline, spin_left: SPIN, last_check: None, checks: 0 }
    }

    /// Whether it is time to check a holder's liveness again.
    pub(crate) fn check_due(&mut self) -> bool {
        #[cfg(multiproc_loom)]
        {
            true
        }
        #[cfg(not(multiproc_loom))]
        {
            // Every call must eventually read the clock (a loop that never pauses relies on it
            // to find a dead holder), but not every call need to: it costs on hot paths.
            self.checks = self.checks.wrapping_add(1);
            if self.last_check.is_some() && self.checks % CLOCK_EVERY != 0 {
                return false;
            }
            let now = Instant::now();
            match self.last_check {
                None => {
                    self.last_check = Some(now);
                    false
                }
                Some(t) if now.duration_since(t) >= CHECK_EVERY => {
                    self.last_check = Some(now);
                    true
                }
                Some(_) => false,
            }
        }
    }

    /// Waits for `cond` on the event word `ev`: spins first (once per wait), then sleeps
    /// (the arena's [`futex::park`]) until notified, [`CHECK_EVERY`] passes (with `poll`:
    /// some holder must be checked), or the deadline. Returns `Err(Timeout)` once the
    /// deadline has passed (or `WouldBlock` when not blocking); `Ok` means "look again".
    pub(crate) fn pause(
        &mut self,
        ev: &AtomicU32,
        poll: bool,
        mut cond: impl FnMut() -> bool,
    ) -> Result<(), Refused> {
        let Some(deadline) = self.deadline.as_mut() else {
            return Err(Refused::WouldBlock);
        };
        if self.spin_left > 0 && spin_backoff(&mut self.spin_left, &mut cond) {
            return Ok(());
        }
        let seen = prepare_wait(ev);
        if cond() {
            return Ok(());
        }
        match futex::park(ev, seen, deadline, poll.then_some(CHECK_EVERY)) {
            Wake::TimedOut => Err(Refused::Timeout),
            Wake::Woken | Wake::Poll => Ok(()),
        }
    }

    pub(crate) fn blocking(&self) -> bool {
        self.deadline.is_some()
    }
}

/// First half of a sleep on `ev`: announces a sleeper (bit 0) and fences; the caller then
/// re-checks its condition and, if it still does not hold, futex-waits for `ev` to leave
/// the returned value.
#[inline]
pub fn prepare_wait(ev: &AtomicU32) -> u32 {
    let seen = ev.fetch_or(1, Ordering::SeqCst) | 1;
    fence(Ordering::SeqCst);
    seen
}

/// Wakes everyone sleeping on `ev`, if anyone is (the caller changed what they wait for).
#[inline]
pub fn notify(ev: &AtomicU32) {
    fence(Ordering::SeqCst);
    let v = ev.load(Ordering::Relaxed);
    if v & 1 != 0 {
        notify_slow(ev, v);
    }
}

/// [`notify`] for a caller whose change was a `SeqCst` read-modify-write `W`: the SC load `R`
/// of the event word stands in for the fence. The waiter does `A` = SC fetch_or on the word,
/// a SC fence `F`, then reads the state. If both missed each other, `R` is coherence-ordered
/// before `A` and the waiter's state read before `W`, so C++20's single order S would need
/// `R < A < F < W < R`: impossible. Loom treats SC accesses as acquire/release only (a known
/// limitation), so under loom the fence this argument makes implicit is written out.
#[inline]
pub fn notify_after_sc(ev: &AtomicU32) {
    #[cfg(multiproc_loom)]
    fence(Ordering::SeqCst);
    let v = ev.load(Ordering::SeqCst);
    if v & 1 != 0 {
        notify_slow(ev, v);
    }
}

#[cold]
fn notify_slow(ev: &AtomicU32, mut v: u32) {
    loop {
        match ev.compare_exchange(v, (v | 1).wrapping_add(1), Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => break,
            Err(seen) if seen & 1 != 0 => v = seen,
            Err(_) => return, // someone else woke them
        }
    }
    futex::wake_all(ev);
}
