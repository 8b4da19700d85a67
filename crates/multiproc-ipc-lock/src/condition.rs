//! [`Condition`]: Python's `multiprocessing.Condition` (and std's `Condvar` over a
//! [`Mutex`]).

use crate::error::{ErrorKind, Result};
use crate::ident::{self, Me};
use crate::lock::{poison_result, to_lock_result, Lock};
use crate::mutex::{Mutex, MutexGuard};
use crate::raw::Acquire;
use crate::rlock::{RLock, Saved};
use crate::wait::{self, Deadline, Wake};
use multiproc_arena::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use multiproc_arena::{Arena, Shared, ShmSafe};
use std::fmt;
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};
use std::time::Duration;

/// Waiter slots per condition; more concurrent waiters share an overflow word (see
/// [`Condition`]).
#[cfg(not(multiproc_loom))]
pub const CONDITION_SLOTS: usize = 32;
/// Waiter slots per condition (small under loom to keep the models small).
#[cfg(multiproc_loom)]
pub const CONDITION_SLOTS: usize = 2;

const FREE: u32 = 0;
const CLAIMED: u32 = 1;
const WAITING: u32 = 2;
const NOTIFIED: u32 = 3;

#[repr(C)]
struct Slot {
    /// The waiter's futex word: `FREE` → (claim) `CLAIMED` → (owner and ticket written)
    /// `WAITING` → `NOTIFIED` by a notifier, or back to `FREE` by the waiter's timeout (the
    /// CAS decides which won) or by anyone who finds the owner dead. The waiter frees a
    /// `NOTIFIED` slot after waking.
    word: AtomicU32,
    /// Arrival order: notify wakes the oldest waiters first.
    ticket: AtomicU32,
    /// The waiting process's identity bits (see [`ident`](crate::ident)).
    owner: AtomicU64,
}

#[repr(C)]
pub(crate) struct CondState {
    next_ticket: AtomicU32,
    /// Waiters that found no free slot.
    overflow: AtomicU32,
    /// Futex word of the overflow waiters: bumped when a notify has more to wake than the
    /// slots held.
    overflow_gen: AtomicU32,
    _pad: u32,
    slots: [Slot; CONDITION_SLOTS],
}

crate::cell::plain_state!(CondState, [u64; 2 + 2 * CONDITION_SLOTS]);

impl CondState {
    fn new() -> CondState {
        CondState {
            next_ticket: AtomicU32::new(0),
            overflow: AtomicU32::new(0),
            overflow_gen: AtomicU32::new(0),
            _pad: 0,
            slots: std::array::from_fn(|_| Slot {
                word: AtomicU32::new(FREE),
                ticket: AtomicU32::new(0),
                owner: AtomicU64::new(0),
            }),
        }
    }

    fn slot_owner_alive(&self, s: &Slot) -> bool {
        let owner = s.owner.load(Ordering::Relaxed);
        ident::alive(owner)
    }

    /// Registers the caller (who holds the lock) as a waiter.
    fn enqueue(&self, me: Me) -> Enqueued {
        for round in 0..2 {
            for (i, s) in self.slots.iter().enumerate() {
                if s.word.load(Ordering::Relaxed) == FREE
                    && s.word
                        .compare_exchange(FREE, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    s.owner.store(me.id, Ordering::Relaxed);
                    let t = self.next_ticket.fetch_add(1, Ordering::Relaxed);
                    s.ticket.store(t, Ordering::Relaxed);
                    s.word.store(WAITING, Ordering::Release);
                    return Enqueued::Slot(i);
                }
            }
            if round == 0 {
                self.reclaim_dead();
            }
        }
        self.overflow.fetch_add(1, Ordering::Relaxed);
        Enqueued::Overflow(self.overflow_gen.load(Ordering::Acquire))
    }

    /// Frees the slots of waiters that died.
    fn reclaim_dead(&self) {
        for s in &self.slots {
            if s.word.load(Ordering::Acquire) == WAITING && !self.slot_owner_alive(s) {
                let _ =
                    s.word.compare_exchange(WAITING, FREE, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
    }

    /// Sleeps until notified or `dl`; whether notified.
    fn sleep(&self, at: Enqueued, dl: &mut Deadline) -> bool {
        match at {
            Enqueued::Slot(i) => {
                let s = &self.slots[i];
                loop {
                    if s.word.load(Ordering::Acquire) != WAITING {
                        break;
                    }
                    if wait::wait(&s.word, WAITING, dl, true) == Wake::TimedOut {
                        if s.word
                            .compare_exchange(WAITING, FREE, Ordering::Relaxed, Ordering::Relaxed)
                            .is_ok()
                        {
                            return false;
                        }
                        break;
                    }
                }
                // Notified (or, after a misjudged reclaim, woken spuriously): free the slot.
                let _ =
                    s.word.compare_exchange(NOTIFIED, FREE, Ordering::Release, Ordering::Relaxed);
                true
            }
            Enqueued::Overflow(g) => {
                let w = &self.overflow_gen;
                let notified = loop {
                    if w.load(Ordering::Acquire) != g {
                        break true;
                    }
                    if wait::wait(w, g, dl, true) == Wake::TimedOut {
                        break w.load(Ordering::Acquire) != g;
                    }
                };
                self.overflow.fetch_sub(1, Ordering::Relaxed);
                notified
            }
        }
    }

    /// Wakes up to `n` waiters, oldest first; returns how many.
    fn notify(&self, n: u32) -> u32 {
        let mut woken = 0;
        while woken < n {
            let now = self.next_ticket.load(Ordering::Relaxed);
            let oldest = self
                .slots
                .iter()
                .filter(|s| s.word.load(Ordering::Acquire) == WAITING)
                .max_by_key(|s| now.wrapping_sub(s.ticket.load(Ordering::Relaxed)));
            let Some(s) = oldest else { break };
            if !self.slot_owner_alive(s) {
                // A dead waiter must not swallow the notification.
                let _ =
                    s.word.compare_exchange(WAITING, FREE, Ordering::Relaxed, Ordering::Relaxed);
                continue;
            }
            if s.word
                .compare_exchange(WAITING, NOTIFIED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                wait::wake(&s.word, 1);
                woken += 1;
            }
        }
        if woken < n {
            let over = self.overflow.load(Ordering::Relaxed);
            if over > 0 {
                self.overflow_gen.fetch_add(1, Ordering::Release);
                wait::wake_all(&self.overflow_gen);
                woken += over.min(n - woken);
            }
        }
        woken
    }
}

#[derive(Debug, Clone, Copy)]
enum Enqueued {
    Slot(usize),
    Overflow(u32),
}

mod sealed {
    /// The hooks a [`Condition`](super::Condition) needs from its lock.
    pub trait Sealed {
        /// What releasing for a wait saved.
        type Saved;
        /// Whether the calling thread may wait/notify (holds the lock).
        fn held_by_caller(&self) -> bool;
        /// Releases the lock completely for a wait.
        fn unlock_for_wait(&self) -> Self::Saved;
        /// Re-acquires after a wait; whether it is poisoned.
        fn relock_after_wait(&self, saved: Self::Saved) -> bool;
    }
}

/// The locks a [`Condition`] can use: [`Lock`], [`RLock`] (Python's default) and
/// [`Mutex<T>`](Mutex) (std's `Condvar` shape).
pub trait ConditionLock: sealed::Sealed + Clone {}

/// The locks with Python's `acquire`/`release` and guard-less `wait`: [`Lock`] and [`RLock`].
pub trait PythonLock: ConditionLock + py::PythonAcquire {}

impl sealed::Sealed for Lock {
    type Saved = ();
    fn held_by_caller(&self) -> bool {
        self.raw().held_by(ident::me())
    }
    fn unlock_for_wait(&self) {
        self.raw().unlock(ident::me(), false, false);
    }
    fn relock_after_wait(&self, _: ()) -> bool {
        self.raw().lock(ident::me(), &mut Deadline::never()) == Acquire::Poisoned
    }
}
impl ConditionLock for Lock {}
impl PythonLock for Lock {}

impl sealed::Sealed for RLock {
    type Saved = Saved;
    fn held_by_caller(&self) -> bool {
        self.is_owned()
    }
    fn unlock_for_wait(&self) -> Saved {
        self.release_all()
    }
    fn relock_after_wait(&self, saved: Saved) -> bool {
        self.reacquire(saved)
    }
}
impl ConditionLock for RLock {}
impl PythonLock for RLock {}

impl<T: ShmSafe> sealed::Sealed for Mutex<T> {
    type Saved = ();
    fn held_by_caller(&self) -> bool {
        true // std's Condvar lets anyone notify; waits take the guard as proof.
    }
    fn unlock_for_wait(&self) {
        self.raw().unlock(ident::me(), false, false);
    }
    fn relock_after_wait(&self, _: ()) -> bool {
        self.raw().lock(ident::me(), &mut Deadline::never()) == Acquire::Poisoned
    }
}
impl<T: ShmSafe> ConditionLock for Mutex<T> {}

/// A condition variable shared by processes (Python's `multiprocessing.Condition`).
///
/// Over a [`Lock`] or [`RLock`] (the default, as in Python) it has Python's shape: hold the
/// lock ([`acquire`](Self::acquire) or a guard of [`get_lock`](Self::get_lock)), then
/// [`wait`](Self::wait) / [`wait_timeout`](Self::wait_timeout) / [`wait_for`](Self::wait_for)
/// and [`notify`](Self::notify) / [`notify_all`](Self::notify_all); waiting or notifying
/// without holding the lock is an error of kind [`NotOwner`](ErrorKind::NotOwner). Over a
/// [`Mutex<T>`](Mutex) it has std's `Condvar` shape: `wait(guard) -> guard`.
///
/// For a [`Lock`], "holding" is per process (any thread of the holding process passes), as
/// the lock itself is; for an [`RLock`] it is the owning thread. Over a [`Mutex`], `notify`
/// needs no lock (std's rule).
///
/// `notify_n(n)` wakes exactly the `n` oldest waiters that were waiting when it was called —
/// no lost wake-ups, no stale ones (a later waiter never takes an earlier one's turn), no
/// spurious ones. A waiter that dies never swallows a notification: the notifier skips dead
/// waiters. Each of the first [`CONDITION_SLOTS`] concurrent waiters has a slot; waiters
/// beyond that share one word and a notify that reaches them wakes all of them (extra
/// wake-ups, never lost ones).
///
/// ```
/// use multiproc_ipc_lock::Condition;
/// use std::time::Duration;
/// let cond = Condition::new().unwrap(); // over an RLock
/// let _held = cond.get_lock().lock().unwrap();
/// assert!(cond.wait_timeout(Duration::from_millis(10)).unwrap_err().is_timeout()); // nobody notifies
/// assert_eq!(cond.notify_all().unwrap(), 0);
/// ```
#[derive(Clone)]
pub struct Condition<L: ConditionLock = RLock> {
    lock: L,
    state: Shared<CondState>,
}

impl Condition<RLock> {
    /// A condition over a new [`RLock`], in the [global arena](Arena::global).
    pub fn new() -> Result<Self> {
        Self::with_lock(RLock::new()?)
    }

    /// A condition over a new [`RLock`], in `arena`.
    pub fn new_in(arena: &Arena) -> Result<Self> {
        Self::with_lock_in(arena, RLock::new_in(arena)?)
    }
}

impl<L: ConditionLock> Condition<L> {
    /// A condition over `lock` (its state in the [global arena](Arena::global)).
    pub fn with_lock(lock: L) -> Result<Self> {
        Ok(Condition { lock, state: Shared::new(CondState::new())? })
    }

    /// A condition over `lock`, its state in `arena`.
    pub fn with_lock_in(arena: &Arena, lock: L) -> Result<Self> {
        Ok(Condition { lock, state: Shared::new_in(arena, CondState::new())? })
    }

    /// The lock.
    pub fn get_lock(&self) -> &L {
        &self.lock
    }

    /// Wakes up to `n` waiters, oldest first; returns how many. For a [`Lock`]/[`RLock`]
    /// the caller must hold the lock (Python's rule).
    pub fn notify_n(&self, n: usize) -> Result<usize> {
        if !self.lock.held_by_caller() {
            return Err(ErrorKind::NotOwner.into());
        }
        Ok(self.state.notify(n.min(u32::MAX as usize) as u32) as usize)
    }

    /// Wakes one waiter (Python's `notify()`); see [`notify_n`](Self::notify_n).
    pub fn notify(&self) -> Result<usize> {
        self.notify_n(1)
    }

    /// Wakes every waiter; returns how many.
    pub fn notify_all(&self) -> Result<usize> {
        self.notify_n(usize::MAX)
    }

    /// The core of every wait: enqueue (lock held), release, sleep, re-acquire.
    /// Returns (notified, poisoned).
    fn wait_core(&self, dl: &mut Deadline) -> (bool, bool) {
        let at = self.state.enqueue(ident::me());
        let saved = self.lock.unlock_for_wait();
        let notified = self.state.sleep(at, dl);
        let poisoned = self.lock.relock_after_wait(saved);
        (notified, poisoned)
    }

    /// Whether two handles name the same condition.
    pub fn same(&self, other: &Condition<L>) -> bool {
        std::ptr::eq(&*self.state, &*other.state)
    }
}

impl<L: PythonLock> Condition<L> {
    fn check_held(&self) -> Result<()> {
        if self.lock.held_by_caller() {
            Ok(())
        } else {
            Err(crate::Error::new(ErrorKind::NotOwner, "Condition.wait without holding its lock"))
        }
    }

    /// Acquires the lock, blocking; see [`Lock::acquire`].
    pub fn acquire(&self) -> LockResult<()> {
        match self.lock.py_acquire(true, None) {
            Ok(_) => Ok(()),
            Err(_) => Err(PoisonError::new(())),
        }
    }

    /// Acquires the lock if it is free now; see [`Lock::try_acquire`].
    pub fn try_acquire(&self) -> TryLockResult<()> {
        self.acquire_timeout_or_now(None)
    }

    /// Acquires the lock, waiting at most `timeout`; see [`Lock::acquire_timeout`].
    pub fn acquire_timeout(&self, timeout: Duration) -> TryLockResult<()> {
        self.acquire_timeout_or_now(Some(timeout))
    }

    fn acquire_timeout_or_now(&self, timeout: Option<Duration>) -> TryLockResult<()> {
        match self.lock.py_acquire(timeout.is_some(), timeout) {
            Ok(true) => Ok(()),
            Ok(false) => Err(TryLockError::WouldBlock),
            Err(_) => Err(TryLockError::Poisoned(PoisonError::new(()))),
        }
    }

    /// Python's `Condition.acquire(block, timeout)`; see [`Lock::acquire_with`].
    pub fn acquire_with(&self, block: bool, timeout: Option<Duration>) -> LockResult<bool> {
        self.lock.py_acquire(block, timeout)
    }

    /// Releases the lock (Python's `Condition.release`).
    pub fn release(&self) -> Result<()> {
        self.lock.py_release()
    }

    /// Releases the lock, waits for a notification, re-acquires the lock. The caller must
    /// hold the lock. If a process died holding the lock meanwhile, the lock is re-acquired
    /// all the same and stays [poisoned](Lock::is_poisoned).
    pub fn wait(&self) -> Result<()> {
        self.check_held()?;
        self.wait_core(&mut Deadline::never());
        Ok(())
    }

    /// [`wait`](Self::wait) for at most `timeout`: an error of kind
    /// [`Timeout`](ErrorKind::Timeout) when no notification came (Python's `wait(timeout)`
    /// returning `False`). The lock is held again either way.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        self.check_held()?;
        if self.wait_core(&mut Deadline::after(timeout)).0 {
            Ok(())
        } else {
            Err(ErrorKind::Timeout.into())
        }
    }

    /// Waits until `predicate()` holds or `timeout` passes (`None`: no limit); returns the
    /// predicate's last value (Python's `wait_for`). The predicate runs with the lock held.
    pub fn wait_for(
        &self,
        mut predicate: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool> {
        self.check_held()?;
        let mut dl = Deadline::from_option(timeout);
        loop {
            if predicate() {
                return Ok(true);
            }
            if dl.passed() {
                return Ok(false);
            }
            self.wait_core(&mut dl);
        }
    }
}

mod py {
    use std::sync::LockResult;
    use std::time::Duration;

    /// Python's `acquire`/`release` on the lock of a [`Condition`](super::Condition).
    pub trait PythonAcquire {
        /// See [`Lock::acquire`](crate::Lock::acquire).
        fn py_acquire(&self, block: bool, timeout: Option<Duration>) -> LockResult<bool>;
        /// See [`Lock::release`](crate::Lock::release).
        fn py_release(&self) -> crate::Result<()>;
    }
}
use py::PythonAcquire;

impl PythonAcquire for Lock {
    fn py_acquire(&self, block: bool, timeout: Option<Duration>) -> LockResult<bool> {
        self.acquire_with(block, timeout)
    }
    fn py_release(&self) -> Result<()> {
        self.release()
    }
}

impl PythonAcquire for RLock {
    fn py_acquire(&self, block: bool, timeout: Option<Duration>) -> LockResult<bool> {
        self.acquire_with(block, timeout)
    }
    fn py_release(&self) -> Result<()> {
        self.release()
    }
}

impl<T: ShmSafe> Condition<Mutex<T>> {
    fn check_guard(&self, guard: &MutexGuard<'_, T>) {
        assert!(
            guard.mutex().same(&self.lock),
            "Condition::wait with a guard of another mutex than the condition's"
        );
    }

    /// Releases the guard's lock, waits for a notification, re-locks (std's
    /// `Condvar::wait`). `Err(PoisonError)` with the guard when the mutex is poisoned.
    ///
    /// # Panics
    /// If `guard` belongs to another mutex than the condition's.
    pub fn wait<'a>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        self.check_guard(&guard);
        let (_, poisoned) = self.wait_guard(&guard, &mut Deadline::never());
        poison_result(poisoned, guard)
    }

    /// [`wait`](Self::wait) for at most `timeout`; the `bool` is `true` if it timed out.
    pub fn wait_timeout<'a>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, bool)> {
        self.check_guard(&guard);
        let (notified, poisoned) = self.wait_guard(&guard, &mut Deadline::after(timeout));
        poison_result(poisoned, (guard, !notified))
    }

    /// Waits while `condition(&mut value)` holds (std's `Condvar::wait_while`).
    pub fn wait_while<'a>(
        &self,
        guard: MutexGuard<'a, T>,
        condition: impl FnMut(&mut T) -> bool,
    ) -> LockResult<MutexGuard<'a, T>> {
        match self.wait_while_deadline(guard, &mut Deadline::never(), condition) {
            Ok((g, _)) => Ok(g),
            Err(e) => Err(PoisonError::new(e.into_inner().0)),
        }
    }

    /// Waits while `condition(&mut value)` holds, at most `timeout`; the `bool` is `true`
    /// if it timed out with the condition still holding.
    pub fn wait_timeout_while<'a>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
        condition: impl FnMut(&mut T) -> bool,
    ) -> LockResult<(MutexGuard<'a, T>, bool)> {
        self.wait_while_deadline(guard, &mut Deadline::after(timeout), condition)
    }

    fn wait_while_deadline<'a>(
        &self,
        mut guard: MutexGuard<'a, T>,
        dl: &mut Deadline,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> LockResult<(MutexGuard<'a, T>, bool)> {
        self.check_guard(&guard);
        let mut poisoned = false;
        let timed_out = loop {
            if !condition(&mut guard) {
                break false;
            }
            if dl.passed() {
                break true;
            }
            poisoned |= self.wait_guard(&guard, dl).1;
        };
        to_lock_result(
            if poisoned { Acquire::Poisoned } else { Acquire::Clean },
            (guard, timed_out),
        )
    }

    /// Waits with the lock that `_guard` proves we hold; returns (notified, poisoned).
    fn wait_guard(&self, _guard: &MutexGuard<'_, T>, dl: &mut Deadline) -> (bool, bool) {
        self.wait_core(dl)
    }
}

impl<L: ConditionLock + fmt::Debug> fmt::Debug for Condition<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waiting =
            self.state.slots.iter().filter(|s| s.word.load(Ordering::Relaxed) == WAITING).count()
                + self.state.overflow.load(Ordering::Relaxed) as usize;
        f.debug_struct("Condition").field("lock", &self.lock).field("waiting", &waiting).finish()
    }
}

impl<L: ConditionLock + serde::Serialize> serde::Serialize for Condition<L> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (&self.lock, &self.state).serialize(s)
    }
}

impl<'de, L: ConditionLock + serde::Deserialize<'de>> serde::Deserialize<'de> for Condition<L> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (lock, state) = <(L, Shared<CondState>)>::deserialize(d)?;
        Ok(Condition { lock, state })
    }
}
