//! Futex wait/wake on words in shared memory: the one wait/wake layer of the workspace.
//!
//! The words live in `MAP_SHARED` mappings, so the futexes are the shared (not `PRIVATE`)
//! kind. Deadlines are absolute CLOCK_MONOTONIC times (`FUTEX_WAIT_BITSET`): a spurious
//! wake-up followed by another wait does not stretch a timeout.
//!
//! Two levels:
//! - [`wait`] / [`wake`] (and the `_low` forms for the low half of a 64-bit word): the raw
//!   futex, "sleep while the word holds this value".
//! - [`park`] with a [`Deadline`] and an optional liveness poll: what every blocking call of
//!   the crates above uses. A waiter whose waker may die (a lock holder, a queue producer)
//!   sleeps at most `poll` at a time and gets [`Wake::Poll`] to check the peer's liveness.
//!
//! Measured on the 2-vCPU machines this project runs on: a futex round trip between two
//! processes costs ~12 µs (the wake-up dominates); a busy-spin round trip ~0.35 µs. Callers
//! that expect a quick answer spin a bounded number of iterations first ([`spin_until`]) —
//! bounded, because on two cores a spinner that never sleeps steals its peer's core.
//!
//! # Under loom (`--cfg multiproc_loom`)
//!
//! Waits are modelled exactly: a loom mutex and condvar stand for the kernel's futex queue,
//! which compares the word under its lock, as the kernel does under its hash-bucket lock. A
//! sleeper that the protocol fails to wake is a loom deadlock, so a lost wake-up fails the
//! model. A wait with a finite deadline never blocks: it yields and times out after one more
//! wait. A wait that polls for dead peers blocks until woken or until a model thread "dies"
//! (`model_death`, which wakes every sleeper to poll); after a death such waits only
//! yield, as the real ones whose poll interval runs out.

use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Iterations of [`spin_until`] that callers may use before sleeping. One `spin_loop` costs from
/// ~1 ns to ~25 ns depending on the CPU (AMD parts execute `pause` slowly), so measure before
/// choosing: the lock crate uses 100.
pub const DEFAULT_SPIN: u32 = 1000;

/// A futex word: a whole `AtomicU32`, or the low half of an `AtomicU64` (little-endian).
trait Word {
    /// The 32 bits the kernel compares.
    #[cfg_attr(not(multiproc_loom), allow(dead_code))]
    fn low(&self) -> u32;
    /// The word's address, the model's key.
    #[cfg(multiproc_loom)]
    fn addr(&self) -> usize
    where
        Self: Sized,
    {
        addr_of(self)
    }
    /// The kernel's (or the model's) wait.
    fn sleep(&self, expected: u32, deadline: Option<Instant>) -> bool;
    /// The kernel's (or the model's) wake.
    fn wake_n(&self, n: u32) -> usize;
}

/// `Word` for `$A`, whose low half is `$low` of its value and whose kernel wait and wake
/// (off loom) are `sys::$wait` and `sys::$wake`.
macro_rules! word {
    ($A:ty, $low:expr, $wait:ident, $wake:ident) => {
        impl Word for $A {
            #[inline]
            fn low(&self) -> u32 {
                $low(self.load(Ordering::SeqCst))
            }
            #[inline]
            fn sleep(&self, expected: u32, deadline: Option<Instant>) -> bool {
                #[cfg(not(multiproc_loom))]
                return crate::sys::$wait(self, expected, deadline);
                #[cfg(multiproc_loom)]
                return model::wait(addr_of(self), || self.low() != expected, deadline);
            }
            #[inline]
            fn wake_n(&self, n: u32) -> usize {
                #[cfg(not(multiproc_loom))]
                return crate::sys::$wake(self, n);
                #[cfg(multiproc_loom)]
                return model::wake(addr_of(self), n);
            }
        }
    };
}

word!(AtomicU32, |v: u32| v, futex_wait, futex_wake);
word!(AtomicU64, |v: u64| v as u32, futex_wait_low, futex_wake_low);

#[inline]
fn wait_on(word: &impl Word, expected: u32, deadline: Option<Instant>) -> bool {
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return false;
    }
    word.sleep(expected, deadline)
}

/// Blocks while `*word == expected`, until woken, `deadline` passes, or spuriously.
///
/// Returns `false` only when the deadline passed; `true` means "look again" (woken, value
/// changed, or a spurious wake-up). Callers loop on their own condition.
#[inline]
pub fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool {
    wait_on(word, expected, deadline)
}

/// [`wait`] on the low 32 bits of a 64-bit word: blocks while `*word as u32 == expected`.
///
/// For a state word that keeps a futex-sized part (flags and a small id) beside more data in
/// the same atomic (the lock crate's word holds its holder's whole
/// [`Identity`](crate::Identity), so a waiter never sees a holder half recorded).
#[inline]
pub fn wait_low(word: &AtomicU64, expected: u32, deadline: Option<Instant>) -> bool {
    wait_on(word, expected, deadline)
}

/// Wakes at most `n` waiters blocked in [`wait`] on `word`; returns how many were woken.
#[inline]
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    word.wake_n(n)
}

/// [`wake`] for waiters in [`wait_low`] on `word`.
#[inline]
pub fn wake_low(word: &AtomicU64, n: u32) -> usize {
    word.wake_n(n)
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

/// Why [`park`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Woken, the word changed, or spuriously: look again.
    Woken,
    /// The poll interval elapsed (only with a poll): check the peer's liveness, look again.
    Poll,
    /// The deadline passed.
    TimedOut,
}

/// When a blocking call gives up: never, or at an instant.
///
/// Under loom a finite deadline is a count of waits (it passes after one more), so models
/// with timeouts terminate without a clock.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(DeadlineRepr);

#[cfg(not(multiproc_loom))]
type DeadlineRepr = Option<Instant>;
#[cfg(multiproc_loom)]
type DeadlineRepr = Option<u32>;

impl Deadline {
    /// Waits forever.
    #[inline]
    pub fn never() -> Self {
        Deadline(None)
    }

    /// Gives up `timeout` from now (never, if that overflows the clock).
    #[inline]
    pub fn after(timeout: Duration) -> Self {
        #[cfg(not(multiproc_loom))]
        {
            Deadline(deadline_after(timeout))
        }
        #[cfg(multiproc_loom)]
        {
            Deadline(Some(if timeout.is_zero() { 0 } else { 1 }))
        }
    }

    /// `None` waits forever, `Some(t)` gives up after `t`.
    #[inline]
    pub fn from_option(timeout: Option<Duration>) -> Self {
        timeout.map_or(Self::never(), Self::after)
    }

    /// Whether the deadline has passed.
    #[inline]
    pub fn passed(&mut self) -> bool {
        #[cfg(not(multiproc_loom))]
        {
            self.0.is_some_and(|d| Instant::now() >= d)
        }
        #[cfg(multiproc_loom)]
        {
            self.0 == Some(0)
        }
    }

    /// Whether this deadline is finite.
    #[inline]
    pub fn is_finite(&self) -> bool {
        self.0.is_some()
    }

    /// Time left, `None` for never (zero once passed). Under loom: zero or one second.
    pub fn remaining(&self) -> Option<Duration> {
        #[cfg(not(multiproc_loom))]
        {
            self.0.map(|d| d.saturating_duration_since(Instant::now()))
        }
        #[cfg(multiproc_loom)]
        {
            self.0.map(|n| Duration::from_secs(u64::from(n > 0)))
        }
    }
}

/// Sleeps while `*word == expected`, until woken, the deadline passes, or — with `poll` —
/// at most `poll` (then [`Wake::Poll`]: check the peer that should wake you is alive).
#[inline]
pub fn park(word: &AtomicU32, expected: u32, dl: &mut Deadline, poll: Option<Duration>) -> Wake {
    park_on(word, expected, dl, poll)
}

/// [`park`] on the low half of a 64-bit word (see [`wait_low`]).
#[inline]
pub fn park_low(
    word: &AtomicU64,
    expected: u32,
    dl: &mut Deadline,
    poll: Option<Duration>,
) -> Wake {
    park_on(word, expected, dl, poll)
}

#[inline]
fn park_on(word: &impl Word, expected: u32, dl: &mut Deadline, poll: Option<Duration>) -> Wake {
    #[cfg(not(multiproc_loom))]
    {
        park_with(dl, poll, |until| wait_on(word, expected, until))
    }
    #[cfg(multiproc_loom)]
    {
        model::park(word.addr(), || word.low() != expected, dl, poll.is_some())
    }
}

#[cfg(not(multiproc_loom))]
#[inline]
fn park_with(
    dl: &mut Deadline,
    poll: Option<Duration>,
    sleep: impl FnOnce(Option<Instant>) -> bool,
) -> Wake {
    let now = Instant::now();
    if dl.0.is_some_and(|d| now >= d) {
        return Wake::TimedOut;
    }
    let (until, is_poll) = match (poll, dl.0) {
        (None, d) => (d, false),
        (Some(p), Some(d)) if d <= now + p => (Some(d), false),
        (Some(p), _) => (Some(now + p), true),
    };
    if sleep(until) {
        Wake::Woken
    } else if is_poll {
        Wake::Poll
    } else {
        Wake::TimedOut
    }
}

/// A model thread died (loom only): every sleeper wakes to poll, and from now on waits that
/// poll only yield — what the real waits' poll timers do once a peer is gone.
#[cfg(multiproc_loom)]
pub fn model_death() {
    model::death();
}

#[cfg(multiproc_loom)]
fn addr_of<T>(word: &T) -> usize {
    word as *const T as usize
}

#[cfg(multiproc_loom)]
mod model {
    use super::{Deadline, Wake};
    use loom::sync::{Condvar, Mutex};
    use std::time::Instant;

    struct Sleeper {
        addr: usize,
        ticket: u64,
        /// 0 asleep, 1 woken, 2 woken to poll.
        state: u8,
    }

    struct Queue {
        sleepers: Vec<Sleeper>,
        next: u64,
        dead: bool,
    }

    struct Park {
        q: Mutex<Queue>,
        cv: Condvar,
    }

    loom::lazy_static! {
        static ref PARK: Park = Park {
            q: Mutex::new(Queue { sleepers: Vec::new(), next: 0, dead: false }),
            cv: Condvar::new(),
        };
    }

    /// The raw wait: a finite deadline yields (the caller re-checks); none blocks exactly.
    pub(super) fn wait(addr: usize, changed: impl Fn() -> bool, deadline: Option<Instant>) -> bool {
        if deadline.is_some() {
            loom::thread::yield_now();
            return true;
        }
        sleep(addr, changed, false) != Wake::TimedOut
    }

    pub(super) fn park(
        addr: usize,
        changed: impl Fn() -> bool,
        dl: &mut Deadline,
        poll: bool,
    ) -> Wake {
        if let Some(n) = dl.0 {
            if n == 0 {
                return Wake::TimedOut;
            }
            dl.0 = Some(n - 1);
            loom::thread::yield_now();
            return Wake::Woken;
        }
        sleep(addr, changed, poll)
    }

    /// The futex: sleeps on `addr` unless `changed()` (checked under the queue's lock, which
    /// every waker takes after changing the word).
    fn sleep(addr: usize, changed: impl Fn() -> bool, poll: bool) -> Wake {
        let mut q = PARK.q.lock().unwrap();
        if poll && q.dead {
            drop(q);
            loom::thread::yield_now();
            return Wake::Poll;
        }
        if changed() {
            return Wake::Woken;
        }
        let ticket = q.next;
        q.next += 1;
        q.sleepers.push(Sleeper { addr, ticket, state: 0 });
        loop {
            q = PARK.cv.wait(q).unwrap();
            let pos = q.sleepers.iter().position(|s| s.ticket == ticket).expect("own entry");
            match q.sleepers[pos].state {
                0 => continue,
                s => {
                    q.sleepers.remove(pos);
                    return if s == 2 && poll { Wake::Poll } else { Wake::Woken };
                }
            }
        }
    }

    pub(super) fn wake(addr: usize, n: u32) -> usize {
        let mut q = PARK.q.lock().unwrap();
        let mut woken = 0usize;
        for s in q.sleepers.iter_mut().filter(|s| s.addr == addr && s.state == 0) {
            if woken as u64 >= u64::from(n) {
                break;
            }
            s.state = 1;
            woken += 1;
        }
        if woken > 0 {
            PARK.cv.notify_all();
        }
        woken
    }

    pub(super) fn death() {
        let mut q = PARK.q.lock().unwrap();
        q.dead = true;
        for s in q.sleepers.iter_mut().filter(|s| s.state == 0) {
            s.state = 2;
        }
        PARK.cv.notify_all();
    }
}
