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
//! Here the word names the holder's whole identity (see [`ident`](crate::ident)), so a
//! waiter that has slept [`POLL`] without the holder changing asks the kernel whether the
//! holder died and, only on that proof, takes the lock over with the poison bit set. The
//! uncontended path is one CAS to acquire and one CAS to release, like the raw futex mutex;
//! the price of robustness is paid only by waiters (one `F_OFD_GETLK`, ~1 µs, per [`POLL`]
//! slept). The word is 64 bits: the futex waits on its low half (flags and the 30-bit
//! token), the high half holds the holder's registry fingerprint.
//!
//! [`POLL`]: crate::wait::POLL

use crate::ident::{self, Me, ID_MASK};
use crate::wait::{self, Deadline, Wake};
use multiproc_arena::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Set in the lock word while some process may sleep on it: the releaser must wake one.
pub(crate) const WAITERS: u64 = 1 << 30;
/// Set in the lock word when a holder died (or a guard was dropped while panicking); sticky
/// until `clear_poison`.
pub(crate) const POISON: u64 = 1 << 31;

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
    /// The state word.
    ///
    /// | bits    | meaning                                                        |
    /// |---------|----------------------------------------------------------------|
    /// | 0..=29  | holder's identity token, 0 when free                           |
    /// | 30      | [`WAITERS`]: a waiter may sleep; the releaser wakes one        |
    /// | 31      | [`POISON`]: a holder died or panicked; kept until cleared      |
    /// | 32..=63 | holder's identity registry (0 when free)                       |
    ///
    /// Bits 0..=31 are the futex word (waiters sleep on the low half).
    ///
    /// Transitions (`p` = the poison bit, always carried over):
    /// - `free, p` → CAS → `me, p` (a waiter that slept sets `WAITERS` too, conservatively);
    /// - `x, w, p` → a waiter sets `WAITERS`, then sleeps on that exact low half;
    /// - `x, w, p` → release → `free, p`, waking one sleeper if `w`;
    /// - `dead, w, p` → a waiter that slept `POLL` on it and got the kernel's proof that
    ///   `dead` ended → CAS → `me, WAITERS, POISON`.
    word: AtomicU64,
    /// The last holder's pid in its own PID namespace, for [`holder`](Self::holder) only
    /// (never used to judge liveness): written right after each acquiring CAS, never
    /// cleared.
    pid: AtomicU32,
    _pad: u32,
}

crate::cell::plain_state!(RawLock, [u64; 2]);
#[cfg(not(multiproc_loom))]
static_assertions::const_assert_eq!(std::mem::align_of::<RawLock>(), 8);

impl RawLock {
    pub(crate) fn new() -> Self {
        RawLock { word: AtomicU64::new(0), pid: AtomicU32::new(0), _pad: 0 }
    }

    /// The uncontended acquire: one CAS from "free, not poisoned".
    #[inline]
    pub(crate) fn try_lock_fast(&self, me: Me) -> bool {
        if self.word.compare_exchange(0, me.id, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            self.note_pid();
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
    fn cas_acquire(&self, v: u64, me: Me, extra: u64) -> Option<Acquire> {
        let new = me.id | (v & POISON) | extra;
        match self.word.compare_exchange(v, new, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => {
                self.note_pid();
                Some(if v & POISON != 0 { Acquire::Poisoned } else { Acquire::Clean })
            }
            Err(_) => None,
        }
    }

    /// If the holder recorded in `v` is dead, takes the lock over (poisoned).
    fn take_over_if_dead(&self, v: u64, me: Me) -> Option<Acquire> {
        let holder = v & ID_MASK;
        if holder == 0 || ident::alive(holder) {
            return None;
        }
        let new = me.id | WAITERS | POISON;
        match self.word.compare_exchange(v, new, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => {
                self.note_pid();
                multiproc_arena::event!(
                    warn,
                    target: "multiproc::lock",
                    dead_holder = holder,
                    "lock taken over from a dead holder (poisoned)"
                );
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
            if !wait::flag64(&self.word, v, WAITERS) {
                continue;
            }
            match wait::wait64(&self.word, v | WAITERS, dl, true) {
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
            if wait::flag64(&self.word, v, WAITERS) {
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
            wait::wake_all64(&self.word);
        } else {
            wait::wake64(&self.word, 1);
        }
    }

    /// Python's `Lock.release()`: any process may release a held lock; `false` if not held.
    pub(crate) fn unlock_any(&self, me: Me) -> bool {
        // Usually the caller holds it, uncontended: one CAS.
        let mut v = match self.word.compare_exchange(me.id, 0, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => return true,
            Err(v) => v,
        };
        loop {
            if v & ID_MASK == 0 {
                return false;
            }
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

    /// Records our pid for [`holder`](Self::holder) (after an acquiring CAS).
    #[inline]
    fn note_pid(&self) {
        #[cfg(not(multiproc_loom))]
        self.pid.store(multiproc_arena::liveness::current_pid(), Ordering::Relaxed);
    }

    /// The holder's pid as it sees itself (a snapshot, for messages), if held (for a few
    /// nanoseconds after an acquire: the previous holder's).
    pub(crate) fn holder(&self) -> Option<u32> {
        match self.word.load(Ordering::Relaxed) & ID_MASK {
            0 => None,
            _ => Some(self.pid.load(Ordering::Relaxed)),
        }
    }

    /// Whether `me` holds the lock (the whole identity).
    #[inline]
    pub(crate) fn held_by(&self, me: Me) -> bool {
        self.word.load(Ordering::Relaxed) & ID_MASK == me.id
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.word.load(Ordering::Relaxed) & POISON != 0
    }

    pub(crate) fn clear_poison(&self) {
        self.word.fetch_and(!POISON, Ordering::Relaxed);
    }

    /// The word, for `RwLock`'s readers.
    pub(crate) fn word(&self) -> &AtomicU64 {
        &self.word
    }
}
