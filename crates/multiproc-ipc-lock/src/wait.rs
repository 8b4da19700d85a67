//! Deadlines and futex waits with a liveness poll.
//!
//! Waiting on a word whose holder may die needs a bounded sleep: a dead process wakes no
//! one. [`wait`] with `poll` sleeps at most [`POLL`] and then reports [`Wake::Poll`] so the
//! caller can check the holder's liveness. 20 ms keeps the "next acquirer sees the poison
//! within 100 ms of the death" promise with margin (a waiter already asleep notices within
//! one poll, a newcomer within its first), and costs a sleeping waiter 50 wake-ups a second,
//! nothing while the lock is uncontended.
//!
//! Under `--cfg multiproc_loom` waits are modelled exactly: a loom mutex and condvar stand
//! for the kernel's futex queue (a lost wake-up is a loom deadlock); a wait with a finite
//! deadline never blocks and times out after a couple of loom yields; [`wait`] with `poll`
//! blocks until woken or until a model thread "dies" (which wakes every sleeper with
//! [`Wake::Poll`]).

use std::time::Duration;

/// The longest a waiter sleeps before re-checking the liveness of a holder.
#[cfg_attr(multiproc_loom, allow(dead_code))]
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// Spin iterations before sleeping (none under loom, where a spin is a yield).
#[cfg(not(multiproc_loom))]
pub(crate) const SPIN: u32 = 100;
#[cfg(multiproc_loom)]
pub(crate) const SPIN: u32 = 0;

/// Why [`wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Woken, the word changed, or spuriously: look again.
    Woken,
    /// [`POLL`] elapsed (only with `poll`): check the holder's liveness, then look again.
    Poll,
    /// The deadline passed.
    TimedOut,
}

pub(crate) use imp::{wait, wait64, wake, wake64, wake_all, wake_all64, Deadline};

#[cfg(not(multiproc_loom))]
mod imp {
    use super::{Wake, POLL};
    use multiproc_arena::futex;
    use multiproc_arena::sync::atomic::{AtomicU32, AtomicU64};
    use std::time::{Duration, Instant};

    /// When a blocking call gives up: never, or at an instant.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Deadline(Option<Instant>);

    impl Deadline {
        pub(crate) fn never() -> Self {
            Deadline(None)
        }
        pub(crate) fn after(timeout: Duration) -> Self {
            Deadline(futex::deadline_after(timeout))
        }
        pub(crate) fn from_option(timeout: Option<Duration>) -> Self {
            timeout.map_or(Self::never(), Self::after)
        }
        pub(crate) fn passed(&mut self) -> bool {
            self.0.is_some_and(|d| Instant::now() >= d)
        }
    }

    /// Sleeps while `*word == expected`; see [`Wake`].
    pub(crate) fn wait(word: &AtomicU32, expected: u32, dl: &mut Deadline, poll: bool) -> Wake {
        wait_with(dl, poll, |until| futex::wait(word, expected, until))
    }

    /// Sleeps while the low half of `*word` equals the low half of `expected`; see [`Wake`].
    pub(crate) fn wait64(word: &AtomicU64, expected: u64, dl: &mut Deadline, poll: bool) -> Wake {
        wait_with(dl, poll, |until| futex::wait_low(word, expected as u32, until))
    }

    #[inline]
    fn wait_with(
        dl: &mut Deadline,
        poll: bool,
        sleep: impl FnOnce(Option<Instant>) -> bool,
    ) -> Wake {
        let now = Instant::now();
        if dl.0.is_some_and(|d| now >= d) {
            return Wake::TimedOut;
        }
        let (until, is_poll) = match (poll, dl.0) {
            (false, d) => (d, false),
            (true, Some(d)) if d <= now + POLL => (Some(d), false),
            (true, _) => (Some(now + POLL), true),
        };
        if sleep(until) {
            Wake::Woken
        } else if is_poll {
            Wake::Poll
        } else {
            Wake::TimedOut
        }
    }

    #[inline]
    pub(crate) fn wake(word: &AtomicU32, n: u32) -> usize {
        futex::wake(word, n)
    }

    #[inline]
    pub(crate) fn wake_all(word: &AtomicU32) -> usize {
        futex::wake_all(word)
    }

    #[inline]
    pub(crate) fn wake64(word: &AtomicU64, n: u32) -> usize {
        futex::wake_low(word, n)
    }

    #[inline]
    pub(crate) fn wake_all64(word: &AtomicU64) -> usize {
        futex::wake_low(word, u32::MAX)
    }
}

#[cfg(multiproc_loom)]
mod imp {
    use super::Wake;
    use loom::sync::{Condvar, Mutex};
    use multiproc_arena::sync::atomic::{AtomicU32, AtomicU64, Ordering};
    use std::time::Duration;

    /// Loom deadline: `None` = never; `Some(n)` = times out after `n` more waits.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Deadline(Option<u32>);

    /// Waits a finite deadline allows before it passes.
    const TICKS: u32 = 1;

    impl Deadline {
        pub(crate) fn never() -> Self {
            Deadline(None)
        }
        pub(crate) fn after(timeout: Duration) -> Self {
            Deadline(Some(if timeout.is_zero() { 0 } else { TICKS }))
        }
        pub(crate) fn from_option(timeout: Option<Duration>) -> Self {
            timeout.map_or(Self::never(), Self::after)
        }
        pub(crate) fn passed(&mut self) -> bool {
            self.0 == Some(0)
        }
    }

    struct Sleeper {
        addr: usize,
        ticket: u64,
        /// 0 asleep, 1 woken, 2 woken to poll.
        state: u8,
    }

    struct Queue {
        sleepers: Vec<Sleeper>,
        next: u64,
    }

    pub(crate) struct Park {
        q: Mutex<Queue>,
        cv: Condvar,
    }

    loom::lazy_static! {
        static ref PARK: Park =
            Park { q: Mutex::new(Queue { sleepers: Vec::new(), next: 0 }), cv: Condvar::new() };
    }

    pub(crate) fn wait(word: &AtomicU32, expected: u32, dl: &mut Deadline, poll: bool) -> Wake {
        let addr = word as *const AtomicU32 as usize;
        wait_at(addr, || word.load(Ordering::SeqCst) != expected, dl, poll)
    }

    pub(crate) fn wait64(word: &AtomicU64, expected: u64, dl: &mut Deadline, poll: bool) -> Wake {
        let addr = word as *const AtomicU64 as usize;
        wait_at(addr, || word.load(Ordering::SeqCst) as u32 != expected as u32, dl, poll)
    }

    /// The futex model: sleeps on `addr` unless `changed()` (checked under the queue's lock,
    /// as the kernel checks the word under its hash-bucket lock).
    fn wait_at(addr: usize, changed: impl Fn() -> bool, dl: &mut Deadline, poll: bool) -> Wake {
        if let Some(n) = dl.0 {
            if n == 0 {
                return Wake::TimedOut;
            }
            dl.0 = Some(n - 1);
            loom::thread::yield_now();
            return Wake::Woken;
        }
        let mut q = PARK.q.lock().unwrap();
        if poll && crate::ident::any_dead() {
            // Once a model thread died, every poll wait behaves like the real one whose
            // timer fires: yield (let the others run), then report the poll. Checked under
            // the queue's lock, which `die` takes after marking the death.
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

    pub(crate) fn wake(word: &AtomicU32, n: u32) -> usize {
        wake_at(word as *const AtomicU32 as usize, n)
    }

    pub(crate) fn wake64(word: &AtomicU64, n: u32) -> usize {
        wake_at(word as *const AtomicU64 as usize, n)
    }

    pub(crate) fn wake_all64(word: &AtomicU64) -> usize {
        wake64(word, u32::MAX)
    }

    fn wake_at(addr: usize, n: u32) -> usize {
        let mut q = PARK.q.lock().unwrap();
        let mut woken = 0;
        for s in q.sleepers.iter_mut().filter(|s| s.addr == addr && s.state == 0) {
            if woken as u32 >= n {
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

    pub(crate) fn wake_all(word: &AtomicU32) -> usize {
        wake(word, u32::MAX)
    }

    /// A model thread died: every sleeper wakes to poll liveness (the real code's timer).
    pub(crate) fn wake_everyone_to_poll() {
        let mut q = PARK.q.lock().unwrap();
        for s in q.sleepers.iter_mut().filter(|s| s.state == 0) {
            s.state = 2;
        }
        PARK.cv.notify_all();
    }
}

#[cfg(multiproc_loom)]
pub(crate) use imp::wake_everyone_to_poll;

/// Spins up to [`SPIN`] times until `cond` holds.
#[inline]
pub(crate) fn spin(cond: impl FnMut() -> bool) -> bool {
    multiproc_arena::futex::spin_until(SPIN, cond)
}
