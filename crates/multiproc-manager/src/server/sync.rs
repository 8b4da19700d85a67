//! Server-side synchronisation objects: locks, semaphores, conditions, events, barriers.
//!
//! Each is a `Mutex`-protected state with one `Condvar`; every state change wakes all waiters
//! and each waiter re-checks its own condition (simple, and robust to waiters that time out or
//! whose client vanished). Blocking requests wait with [`wait_until`], so a request whose
//! client died is abandoned within [`PROBE_EVERY`](super::wait::PROBE_EVERY).

use super::wait::{deadline, lock, wait_until, Outcome, Probe};
use crate::error::ErrorKind;
use crate::protocol::{Fault, Reply, Response, Wait};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Condvar, Mutex};

/// Who holds a lock: the session, and the thread token inside it.
pub(crate) type Holder = (u64, u64);

fn gone() -> Fault {
    Fault::new(ErrorKind::Disconnected, "the client went away while waiting")
}

/// The state of a lock (plain or recursive), also the lock inside a [`Condition`].
#[derive(Debug, Default)]
pub(crate) struct LockState {
    holder: Option<Holder>,
    count: u64,
    poisoned: bool,
}

impl LockState {
    fn acquire_now(&mut self, who: Holder, recursive: bool) -> bool {
        match self.holder {
            None => {
                self.holder = Some(who);
                self.count = 1;
                true
            }
            Some(h) if recursive && h == who => {
                self.count += 1;
                true
            }
            Some(_) => false,
        }
    }

    fn can_acquire(&self, who: Holder, recursive: bool) -> bool {
        match self.holder {
            None => true,
            Some(h) => recursive && h == who,
        }
    }

    /// Releases once. A plain lock may be released by anyone (as in Python); a recursive one
    /// only by its owner.
    fn release(&mut self, who: Holder, recursive: bool) -> Result<bool, Fault> {
        match self.holder {
            // As the local locks say it: a Lock released unheld is NotHeld, an RLock NotOwner.
            None if recursive => {
                Err(Fault::new(ErrorKind::NotOwner, "release of an unlocked lock"))
            }
            None => Err(Fault::new(ErrorKind::NotHeld, "release of an unlocked lock")),
            Some(h) if recursive && h != who => Err(Fault::new(
                ErrorKind::NotOwner,
                "cannot release a recursive lock held by another owner",
            )),
            Some(_) => {
                self.count -= 1;
                if self.count == 0 || !recursive {
                    self.holder = None;
                    self.count = 0;
                    Ok(true)
                } else {
                    Ok(false)
                }
            }
        }
    }

    /// Releases a lock whose holder's session died, and poisons it.
    fn release_dead(&mut self, session: u64) -> bool {
        match self.holder {
            Some((s, _)) if s == session => {
                self.holder = None;
                self.count = 0;
                self.poisoned = true;
                true
            }
            _ => false,
        }
    }
}

/// A manager `Lock` or `RLock`.
#[derive(Debug)]
pub(crate) struct LockObj {
    recursive: bool,
    state: Mutex<LockState>,
    cv: Condvar,
}

impl LockObj {
    pub(crate) fn new(recursive: bool) -> Self {
        LockObj { recursive, state: Mutex::default(), cv: Condvar::new() }
    }

    pub(crate) fn acquire(&self, who: Holder, wait: Wait, probe: &mut dyn Probe) -> Response {
        let rec = self.recursive;
        let g = lock(&self.state);
        let (mut g, out) =
            wait_until(&self.cv, g, deadline(wait), probe, |s| s.can_acquire(who, rec));
        match out {
            Outcome::Ready => {
                g.acquire_now(who, rec);
                Ok(Reply::Acquired { acquired: true, poisoned: g.poisoned })
            }
            Outcome::TimedOut => Ok(Reply::Acquired { acquired: false, poisoned: g.poisoned }),
            Outcome::PeerGone => Err(gone()),
        }
    }

    pub(crate) fn release(&self, who: Holder) -> Response {
        let mut g = lock(&self.state);
        if g.release(who, self.recursive)? {
            self.cv.notify_all();
        }
        Ok(Reply::Unit)
    }

    pub(crate) fn locked(&self) -> Response {
        Ok(Reply::Bool(lock(&self.state).holder.is_some()))
    }

    pub(crate) fn is_poisoned(&self) -> Response {
        Ok(Reply::Bool(lock(&self.state).poisoned))
    }

    pub(crate) fn clear_poison(&self) -> Response {
        lock(&self.state).poisoned = false;
        Ok(Reply::Unit)
    }

    pub(crate) fn release_dead(&self, session: u64) {
        if lock(&self.state).release_dead(session) {
            self.cv.notify_all();
        }
    }
}

/// A manager `Semaphore` / `BoundedSemaphore`.
#[derive(Debug)]
pub(crate) struct SemObj {
    initial: u64,
    bounded: bool,
    value: Mutex<u64>,
    cv: Condvar,
}

impl SemObj {
    pub(crate) fn new(value: u64, bounded: bool) -> Self {
        SemObj { initial: value, bounded, value: Mutex::new(value), cv: Condvar::new() }
    }

    pub(crate) fn acquire(&self, wait: Wait, probe: &mut dyn Probe) -> Response {
        let g = lock(&self.value);
        let (mut g, out) = wait_until(&self.cv, g, deadline(wait), probe, |v| *v > 0);
        match out {
            Outcome::Ready => {
                *g -= 1;
                Ok(Reply::Bool(true))
            }
            Outcome::TimedOut => Ok(Reply::Bool(false)),
            Outcome::PeerGone => Err(gone()),
        }
    }

    pub(crate) fn release(&self, n: u64) -> Response {
        let mut g = lock(&self.value);
        let new =
            g.checked_add(n).ok_or_else(|| Fault::new(ErrorKind::TooManyReleases, "overflow"))?;
        if self.bounded && new > self.initial {
            return Err(Fault::new(
                ErrorKind::TooManyReleases,
                format!("bounded semaphore released above its initial value {}", self.initial),
            ));
        }
        *g = new;
        self.cv.notify_all();
        Ok(Reply::Unit)
    }

    pub(crate) fn value(&self) -> Response {
        Ok(Reply::Count(*lock(&self.value)))
    }
}

#[derive(Debug, Default)]
struct CondState {
    lock: LockState,
    waiting: VecDeque<u64>,
    notified: HashSet<u64>,
    next_ticket: u64,
}

/// A manager `Condition` (with its own recursive lock, as Python's default).
#[derive(Debug, Default)]
pub(crate) struct CondObj {
    state: Mutex<CondState>,
    cv: Condvar,
}

fn not_held() -> Fault {
    Fault::new(ErrorKind::NotOwner, "the condition's lock is not held by the caller")
}

impl CondObj {
    pub(crate) fn acquire(&self, who: Holder, wait: Wait, probe: &mut dyn Probe) -> Response {
        let g = lock(&self.state);
        let (mut g, out) =
            wait_until(&self.cv, g, deadline(wait), probe, |s| s.lock.can_acquire(who, true));
        match out {
            Outcome::Ready => {
                g.lock.acquire_now(who, true);
                Ok(Reply::Acquired { acquired: true, poisoned: g.lock.poisoned })
            }
            Outcome::TimedOut => Ok(Reply::Acquired { acquired: false, poisoned: g.lock.poisoned }),
            Outcome::PeerGone => Err(gone()),
        }
    }

    pub(crate) fn release(&self, who: Holder) -> Response {
        let mut g = lock(&self.state);
        if g.lock.release(who, true)? {
            self.cv.notify_all();
        }
        Ok(Reply::Unit)
    }

    pub(crate) fn locked(&self) -> Response {
        Ok(Reply::Bool(lock(&self.state).lock.holder.is_some()))
    }

    /// Releases the lock fully, waits for a notify (or the timeout), re-acquires the lock
    /// (always, as Python does) and answers whether it was notified.
    pub(crate) fn wait(&self, who: Holder, wait: Wait, probe: &mut dyn Probe) -> Response {
        let mut g = lock(&self.state);
        if g.lock.holder != Some(who) {
            return Err(not_held());
        }
        let saved = g.lock.count;
        g.lock.holder = None;
        g.lock.count = 0;
        let ticket = g.next_ticket;
        g.next_ticket += 1;
        g.waiting.push_back(ticket);
        self.cv.notify_all();
        let (mut g, out) =
            wait_until(&self.cv, g, deadline(wait), probe, |s| s.notified.contains(&ticket));
        let notified = g.notified.remove(&ticket);
        if !notified {
            g.waiting.retain(|&t| t != ticket);
        }
        if out == Outcome::PeerGone {
            return Err(gone());
        }
        let (mut g, out) = wait_until(&self.cv, g, None, probe, |s| s.lock.holder.is_none());
        if out == Outcome::PeerGone {
            return Err(gone());
        }
        g.lock.holder = Some(who);
        g.lock.count = saved;
        Ok(Reply::Bool(notified))
    }

    pub(crate) fn notify(&self, who: Holder, n: u64) -> Response {
        let mut g = lock(&self.state);
        if g.lock.holder != Some(who) {
            return Err(not_held());
        }
        let mut woke = false;
        for _ in 0..n {
            match g.waiting.pop_front() {
                Some(t) => {
                    g.notified.insert(t);
                    woke = true;
                }
                None => break,
            }
        }
        if woke {
            self.cv.notify_all();
        }
        Ok(Reply::Unit)
    }

    pub(crate) fn release_dead(&self, session: u64) {
        if lock(&self.state).lock.release_dead(session) {
            self.cv.notify_all();
        }
    }
}

/// A manager `Event`.
#[derive(Debug, Default)]
pub(crate) struct EventObj {
    set: Mutex<bool>,
    cv: Condvar,
}

impl EventObj {
    pub(crate) fn set(&self, on: bool) -> Response {
        *lock(&self.set) = on;
        if on {
            self.cv.notify_all();
        }
        Ok(Reply::Unit)
    }

    pub(crate) fn is_set(&self) -> Response {
        Ok(Reply::Bool(*lock(&self.set)))
    }

    pub(crate) fn wait(&self, wait: Wait, probe: &mut dyn Probe) -> Response {
        let g = lock(&self.set);
        let (g, out) = wait_until(&self.cv, g, deadline(wait), probe, |s| *s);
        match out {
            Outcome::PeerGone => Err(gone()),
            _ => Ok(Reply::Bool(*g)),
        }
    }
}

#[derive(Debug, Default)]
struct BarrierState {
    /// Tickets of the parties waiting in the current round, in arrival order.
    waiting: Vec<u64>,
    /// How each finished wait ended: `true` released, `false` broken.
    outcome: HashMap<u64, bool>,
    broken: bool,
    next_ticket: u64,
}

/// A manager `Barrier`. Beyond Python: a party whose client dies while waiting breaks the
/// barrier, so the others get a broken-barrier error instead of waiting for it forever.
#[derive(Debug)]
pub(crate) struct BarrierObj {
    parties: u64,
    timeout: Wait,
    state: Mutex<BarrierState>,
    cv: Condvar,
}

fn broken() -> Fault {
    Fault::new(ErrorKind::BrokenBarrier, "the barrier is broken")
}

impl BarrierObj {
    pub(crate) fn new(parties: u64, timeout: Wait) -> Self {
        BarrierObj { parties, timeout, state: Mutex::default(), cv: Condvar::new() }
    }

    fn break_round(&self, s: &mut BarrierState) {
        s.broken = true;
        for t in std::mem::take(&mut s.waiting) {
            s.outcome.insert(t, false);
        }
        self.cv.notify_all();
    }

    /// Waits for the round; answers the arrival index (0 for the first to arrive).
    pub(crate) fn wait(&self, wait: Wait, probe: &mut dyn Probe) -> Response {
        let mut g = lock(&self.state);
        if g.broken {
            return Err(broken());
        }
        let index = g.waiting.len() as u64;
        let ticket = g.next_ticket;
        g.next_ticket += 1;
        g.waiting.push(ticket);
        if g.waiting.len() as u64 >= self.parties {
            for t in std::mem::take(&mut g.waiting) {
                g.outcome.insert(t, true);
            }
            g.outcome.remove(&ticket);
            self.cv.notify_all();
            return Ok(Reply::Count(index));
        }
        let wait = wait.or(self.timeout);
        let (mut g, out) =
            wait_until(&self.cv, g, deadline(wait), probe, |s| s.outcome.contains_key(&ticket));
        match out {
            Outcome::Ready => {
                if g.outcome.remove(&ticket) == Some(true) {
                    Ok(Reply::Count(index))
                } else {
                    Err(broken())
                }
            }
            Outcome::TimedOut | Outcome::PeerGone => {
                self.break_round(&mut g);
                g.outcome.remove(&ticket);
                if out == Outcome::PeerGone {
                    Err(gone())
                } else {
                    Err(broken())
                }
            }
        }
    }

    pub(crate) fn abort(&self) -> Response {
        let mut g = lock(&self.state);
        self.break_round(&mut g);
        Ok(Reply::Unit)
    }

    pub(crate) fn reset(&self) -> Response {
        let mut g = lock(&self.state);
        self.break_round(&mut g);
        g.broken = false;
        Ok(Reply::Unit)
    }

    pub(crate) fn parties(&self) -> Response {
        Ok(Reply::Count(self.parties))
    }

    pub(crate) fn n_waiting(&self) -> Response {
        Ok(Reply::Count(lock(&self.state).waiting.len() as u64))
    }

    pub(crate) fn broken(&self) -> Response {
        Ok(Reply::Bool(lock(&self.state).broken))
    }
}

#[cfg(test)]
mod tests {
    use super::super::wait::NeverGone;
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    fn acquired(r: Response) -> (bool, bool) {
        match r.unwrap() {
            Reply::Acquired { acquired, poisoned } => (acquired, poisoned),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lock_is_not_owner_bound_and_poisons_on_dead_holder() {
        let l = LockObj::new(false);
        assert_eq!(acquired(l.acquire((1, 1), None, &mut NeverGone)), (true, false));
        assert_eq!(acquired(l.acquire((2, 1), Some(0), &mut NeverGone)), (false, false));
        l.release((2, 1)).unwrap(); // another session may release, as in Python
        assert_eq!(l.release((2, 1)).unwrap_err().kind, ErrorKind::NotHeld);
        assert_eq!(acquired(l.acquire((3, 1), None, &mut NeverGone)), (true, false));
        l.release_dead(3);
        assert_eq!(acquired(l.acquire((4, 1), Some(0), &mut NeverGone)), (true, true));
        l.clear_poison().unwrap();
        l.release((4, 1)).unwrap();
        assert_eq!(acquired(l.acquire((4, 1), Some(0), &mut NeverGone)), (true, false));
    }

    #[test]
    fn rlock_counts_and_checks_owner() {
        let l = LockObj::new(true);
        for _ in 0..3 {
            assert!(acquired(l.acquire((1, 7), Some(0), &mut NeverGone)).0);
        }
        assert!(!acquired(l.acquire((1, 8), Some(0), &mut NeverGone)).0);
        assert_eq!(l.release((1, 8)).unwrap_err().kind, ErrorKind::NotOwner);
        l.release((1, 7)).unwrap();
        l.release((1, 7)).unwrap();
        assert!(matches!(l.locked().unwrap(), Reply::Bool(true)));
        l.release((1, 7)).unwrap();
        assert!(matches!(l.locked().unwrap(), Reply::Bool(false)));
        assert_eq!(l.release((1, 7)).unwrap_err().kind, ErrorKind::NotOwner);
    }

    #[test]
    fn timed_acquire_times_out_and_a_gone_peer_abandons() {
        let l = LockObj::new(false);
        acquired(l.acquire((1, 1), None, &mut NeverGone));
        let t0 = Instant::now();
        assert!(!acquired(l.acquire((2, 1), Some(100_000), &mut NeverGone)).0);
        assert!(t0.elapsed() >= Duration::from_millis(95));
        let t0 = Instant::now();
        let r = l.acquire((2, 1), None, &mut || true);
        assert_eq!(r.unwrap_err().kind, ErrorKind::Disconnected);
        assert!(t0.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn bounded_semaphore_refuses_over_release() {
        let s = SemObj::new(2, true);
        assert!(matches!(s.acquire(Some(0), &mut NeverGone).unwrap(), Reply::Bool(true)));
        assert!(matches!(s.acquire(Some(0), &mut NeverGone).unwrap(), Reply::Bool(true)));
        assert!(matches!(s.acquire(Some(0), &mut NeverGone).unwrap(), Reply::Bool(false)));
        s.release(1).unwrap();
        s.release(1).unwrap();
        assert_eq!(s.release(1).unwrap_err().kind, ErrorKind::TooManyReleases);
        let u = SemObj::new(0, false);
        u.release(3).unwrap();
        assert!(matches!(u.value().unwrap(), Reply::Count(3)));
    }

    #[test]
    fn condition_notify_wakes_exactly_n() {
        let c = Arc::new(CondObj::default());
        let woken = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut threads = Vec::new();
        for i in 0..3u64 {
            let (c, woken) = (c.clone(), woken.clone());
            threads.push(std::thread::spawn(move || {
                let who = (1, 100 + i);
                acquired(c.acquire(who, None, &mut NeverGone));
                let r = c.wait(who, Some(5_000_000), &mut NeverGone).unwrap();
                assert!(matches!(r, Reply::Bool(true)));
                woken.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                c.release(who).unwrap();
            }));
        }
        let me = (2, 1);
        let t0 = Instant::now();
        while lock(&c.state).waiting.len() < 3 {
            assert!(t0.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(c.notify(me, 1).unwrap_err().kind, ErrorKind::NotOwner);
        acquired(c.acquire(me, None, &mut NeverGone));
        c.notify(me, 2).unwrap();
        c.release(me).unwrap();
        while woken.load(std::sync::atomic::Ordering::SeqCst) < 2 {
            assert!(t0.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(woken.load(std::sync::atomic::Ordering::SeqCst), 2);
        acquired(c.acquire(me, None, &mut NeverGone));
        c.notify(me, u64::MAX).unwrap();
        c.release(me).unwrap();
        for t in threads {
            t.join().unwrap();
        }
        // wait(0) with nobody notifying answers false and still re-acquires.
        acquired(c.acquire(me, None, &mut NeverGone));
        assert!(matches!(c.wait(me, Some(0), &mut NeverGone).unwrap(), Reply::Bool(false)));
        assert!(matches!(c.locked().unwrap(), Reply::Bool(true)));
    }

    #[test]
    fn barrier_releases_breaks_and_resets() {
        let b = Arc::new(BarrierObj::new(3, None));
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || match b.wait(Some(5_000_000), &mut NeverGone) {
                    Ok(Reply::Count(i)) => i,
                    other => panic!("{other:?}"),
                })
            })
            .collect();
        let mut idx: Vec<u64> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        idx.sort();
        assert_eq!(idx, [0, 1, 2]);
        // A timeout breaks the barrier for everyone until reset.
        let r = b.wait(Some(10_000), &mut NeverGone);
        assert_eq!(r.unwrap_err().kind, ErrorKind::BrokenBarrier);
        assert!(matches!(b.broken().unwrap(), Reply::Bool(true)));
        assert_eq!(b.wait(None, &mut NeverGone).unwrap_err().kind, ErrorKind::BrokenBarrier);
        b.reset().unwrap();
        assert!(matches!(b.broken().unwrap(), Reply::Bool(false)));
        assert!(matches!(b.n_waiting().unwrap(), Reply::Count(0)));
        let single = BarrierObj::new(1, None);
        assert!(matches!(single.wait(None, &mut NeverGone).unwrap(), Reply::Count(0)));
        assert!(matches!(single.wait(None, &mut NeverGone).unwrap(), Reply::Count(0)));
    }

    #[test]
    fn event_wait_returns_state() {
        let e = EventObj::default();
        assert!(matches!(e.wait(Some(0), &mut NeverGone).unwrap(), Reply::Bool(false)));
        e.set(true).unwrap();
        assert!(matches!(e.wait(None, &mut NeverGone).unwrap(), Reply::Bool(true)));
        e.set(false).unwrap();
        assert!(matches!(e.is_set().unwrap(), Reply::Bool(false)));
    }
}
