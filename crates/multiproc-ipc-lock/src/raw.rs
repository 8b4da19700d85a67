//! [`RawLock`]: the robust lock word under `Lock`, `RLock`, `Mutex` and the write side of
//! `RwLock`.
//!
//! # Why a futex word with the holder's pid (and not a robust pthread mutex)
//!
//! Measured with `examples/lock_bench` on the 2-vCPU machines this project runs on (ratios
//! within one run; absolute figures swing with the machine's load): an uncontended
//! acquire+release of this word costs 1.0–1.3× a raw three-state futex mutex (5–15 ns),
//! glibc's process-shared robust mutex about 2×; two processes contending cost 0.75–1.2× the
//! raw mutex's contended figure. The robust pthread mutex also cannot express Python's
//! `Lock` (any process may release it; a robust mutex refuses an unlock by a non-owner), has
//! no loom model, and leaves recovery to a per-thread kernel list that only a thread's exit
//! walks (a `Lock` acquired in one thread and released in another breaks it).
//!
//! Here the word names the holder's pid, so a waiter that has slept [`POLL`] without the
//! holder changing asks whether the holder is alive (pid + start time, immune to PID reuse)
//! and, if not, takes the lock over with the poison bit set. The uncontended path is one CAS
//! to acquire and one CAS to release, like the raw futex mutex; the price of robustness is
//! paid only by waiters (a liveness check, ~5–20 µs of reading `/proc`, per [`POLL`] slept).
//!
//! [`POLL`]: crate::wait::POLL

use crate::ident::{self, Me, ID_MASK};
use crate::wait::{self, Deadline, Wake};
use multiproc_arena::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use multiproc_arena::ShmSafe;

/// Set in the lock word while some process may sleep on it: the releaser must wake one.
pub(crate) const WAITERS: u32 = 1 << 30;
/// Set in the lock word when a holder died (or a guard was dropped while panicking); sticky
/// until `clear_poison`.
pub(crate) const POISON: u32 = 1 << 31;

/// The outcome of an acquire attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquire {
    /// Acquired, not poisoned.
    Clean,
    /// Acquired, but the lock is poisoned (a holder died or panicked).
    Poisoned,
    /// Not acquired: held by someone else (non-blocking) or the deadline passed.
    Busy,
}

impl Acquire {
    pub(crate) fn acquired(self) -> bool {
        self != Acquire::Busy
    }
}

/// A robust, non-recursive lock in shared memory.
#[repr(C)]
pub(crate) struct RawLock {
    /// The futex word.
    ///
    /// | bits    | meaning                                                        |
    /// |---------|----------------------------------------------------------------|
    /// | 0..=29  | holder's pid, 0 when free                                      |
    /// | 30      | [`WAITERS`]: a waiter may sleep; the releaser wakes one        |
    /// | 31      | [`POISON`]: a holder died or panicked; kept until cleared      |
    ///
    /// Transitions (`p` = the poison bit, always carried over):
    /// - `free, p` → CAS → `me, p` (a waiter that slept sets `WAITERS` too, conservatively);
    /// - `x, w, p` → a waiter sets `WAITERS`, then sleeps on that exact value;
    /// - `x, w, p` → release → `free, p`, waking one sleeper if `w`;
    /// - `dead, w, p` → a waiter that slept `POLL` on it and found `dead` not alive → CAS →
    ///   `me, WAITERS, POISON`.
    word: AtomicU32,
    _pad: u32,
    /// `pid << 32 | start_time as u32` of the holder (0 when free): written right after the
    /// acquiring CAS and cleared right before the releasing store, so a waiter that finds it
    /// naming another pid than the word falls back to a pid-only liveness check.
    side: AtomicU64,
}

// SAFETY: repr(C) atomics only; no pointers, no Drop.
unsafe impl ShmSafe for RawLock {}

#[cfg(not(multiproc_loom))]
static_assertions::assert_eq_size!(RawLock, [u64; 2]);
#[cfg(not(multiproc_loom))]
static_assertions::const_assert_eq!(std::mem::align_of::<RawLock>(), 8);

impl RawLock {
    pub(crate) fn new() -> Self {
        RawLock { word: AtomicU32::new(0), _pad: 0, side: AtomicU64::new(0) }
    }

    /// The uncontended acquire: one CAS from "free, not poisoned".
    #[inline]
    pub(crate) fn try_lock_fast(&self, me: Me) -> bool {
        if self.word.compare_exchange(0, me.id, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            self.side.store(me.side, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Acquires, blocking until `dl` (non-blocking when `dl` has passed already).
    #[inline]
    pub(crate) fn lock(&self, me: Me, dl: &mut Deadline) -> Acquire {
        if self.try_lock_fast(me) {
            return Acquire::Clean;
        }
        self.lock_slow(me, dl)
    }

    /// Tries once, taking over from a dead holder.
    pub(crate) fn try_lock(&self, me: Me) -> Acquire {
        if self.try_lock_fast(me) {
            return Acquire::Clean;
        }
        loop {
            let v = self.word.load(Ordering::Relaxed);
            if v & ID_MASK == 0 {
                match self.cas_acquire(v, me, v & WAITERS) {
                    Some(a) => return a,
                    None => continue,
                }
            }
            return self.take_over_if_dead(v, me).unwrap_or(Acquire::Busy);
        }
    }

    /// CAS from the free value `v` to held by `me`, adding `extra` flag bits.
    #[inline]
    fn cas_acquire(&self, v: u32, me: Me, extra: u32) -> Option<Acquire> {
        let new = me.id | (v & POISON) | extra;
        match self.word.compare_exchange(v, new, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => {
                self.side.store(me.side, Ordering::Relaxed);
                Some(if v & POISON != 0 { Acquire::Poisoned } else { Acquire::Clean })
            }
            Err(_) => None,
        }
    }

    /// If the holder recorded in `v` is dead, takes the lock over (poisoned).
    fn take_over_if_dead(&self, v: u32, me: Me) -> Option<Acquire> {
        let holder = v & ID_MASK;
        if holder == 0 || ident::alive(holder, self.side.load(Ordering::Relaxed)) {
            return None;
        }
        let new = me.id | WAITERS | POISON;
        match self.word.compare_exchange(v, new, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => {
                self.side.store(me.side, Ordering::Relaxed);
                Some(Acquire::Poisoned)
            }
            Err(_) => None,
        }
    }

    #[cold]
    fn lock_slow(&self, me: Me, dl: &mut Deadline) -> Acquire {
        // A short spin catches a holder that releases within a few hundred nanoseconds
        // (the two-process ping-pong case) without a futex round trip.
        let mut slept = false;
        wait::spin(|| self.word.load(Ordering::Relaxed) & ID_MASK == 0);
        loop {
            let v = self.word.load(Ordering::Relaxed);
            if v & ID_MASK == 0 {
                // Once we slept, other sleepers may exist: keep WAITERS so our release wakes.
                let extra = if slept { WAITERS } else { v & WAITERS };
                match self.cas_acquire(v, me, extra) {
                    Some(a) => return a,
                    None => continue,
                }
            }
            if dl.passed() {
                return self.give_up(me);
            }
            if v & WAITERS == 0
                && self
                    .word
                    .compare_exchange(v, v | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            match wait::wait(&self.word, v | WAITERS, dl, true) {
                Wake::Woken => {}
                Wake::Poll => {
                    if let Some(a) = self.take_over_if_dead(v | WAITERS, me) {
                        return a;
                    }
                }
                Wake::TimedOut => return self.give_up(me),
            }
            slept = true;
        }
    }

    /// The deadline passed: one last try; otherwise leave `WAITERS` set so that a wake-up we
    /// may have consumed is not lost for the other sleepers.
    fn give_up(&self, me: Me) -> Acquire {
        loop {
            let v = self.word.load(Ordering::Relaxed);
            if v & ID_MASK == 0 {
                match self.cas_acquire(v, me, WAITERS) {
                    Some(a) => return a,
                    None => continue,
                }
            }
            if v & WAITERS != 0
                || self
                    .word
                    .compare_exchange(v, v | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                return Acquire::Busy;
            }
        }
    }

    /// Releases a lock `me` holds; `poison` marks it poisoned (a guard dropped while
    /// panicking). `wake_all` for words that readers sleep on too.
    ///
    /// The uncontended path is one CAS from exactly "held by me, no flags" to "free". If the
    /// word no longer names `me` (a `Lock` that another process released with `release`,
    /// as Python allows), this does nothing rather than release someone else's hold.
    #[inline]
    pub(crate) fn unlock(&self, me: Me, poison: bool, wake_all: bool) {
        // Cleared first, so that a new holder's side word is never overwritten by ours.
        self.side.store(0, Ordering::Relaxed);
        if !poison
            && self.word.compare_exchange(me.id, 0, Ordering::Release, Ordering::Relaxed).is_ok()
        {
            return;
        }
        self.unlock_slow(me, poison, wake_all);
    }

    #[cold]
    fn unlock_slow(&self, me: Me, poison: bool, wake_all: bool) {
        let mut v = self.word.load(Ordering::Relaxed);
        loop {
            if v & ID_MASK != me.id {
                return;
            }
            // Free, keeping the poison; WAITERS cleared (a woken waiter sets it again).
            let new = (v & POISON) | if poison { POISON } else { 0 };
            match self.word.compare_exchange_weak(v, new, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => {
                    if v & WAITERS != 0 {
                        self.wake(wake_all);
                    }
                    return;
                }
                Err(x) => v = x,
            }
        }
    }

    #[cold]
    fn wake(&self, all: bool) {
        if all {
            wait::wake_all(&self.word);
        } else {
            wait::wake(&self.word, 1);
        }
    }

    /// Python's `Lock.release()`: any process may release a held lock; `false` if not held.
    pub(crate) fn unlock_any(&self, me: Me) -> bool {
        // Usually the caller holds it, uncontended: one CAS.
        self.side.store(0, Ordering::Relaxed);
        let mut v = match self.word.compare_exchange(me.id, 0, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => return true,
            Err(v) => v,
        };
        loop {
            if v & ID_MASK == 0 {
                return false;
            }
            self.side.store(0, Ordering::Relaxed);
            match self.word.compare_exchange_weak(
                v,
                v & POISON,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    if v & WAITERS != 0 {
                        self.wake(false);
                    }
                    return true;
                }
                Err(x) => v = x,
            }
        }
    }

    /// The holder's pid, if held.
    pub(crate) fn holder(&self) -> Option<u32> {
        match self.word.load(Ordering::Relaxed) & ID_MASK {
            0 => None,
            id => Some(id),
        }
    }

    /// Whether `me` holds the lock (same pid and start time).
    #[inline]
    pub(crate) fn held_by(&self, me: Me) -> bool {
        self.word.load(Ordering::Relaxed) & ID_MASK == me.id
            && self.side.load(Ordering::Relaxed) == me.side
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.word.load(Ordering::Relaxed) & POISON != 0
    }

    pub(crate) fn clear_poison(&self) {
        self.word.fetch_and(!POISON, Ordering::Relaxed);
    }

    /// The word, for `RwLock`'s readers.
    pub(crate) fn word(&self) -> &AtomicU32 {
        &self.word
    }

    /// The side word, for liveness checks by `RwLock`'s readers.
    pub(crate) fn side(&self) -> &AtomicU64 {
        &self.side
    }
}
