//! Driving the pool: a waiting caller's loop (spin, then sleep on the doorbell) and the
//! background thread.

use super::{lock, Core, Deliveries, Inner, PoolState};
use crate::future::Driver;
use multiproc_arena::futex::{self, Deadline, Wake};
use multiproc_arena::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::{Duration, Instant};

/// How often a waiting parent looks for dead workers while work is in flight.
const POLL: Duration = Duration::from_millis(10);
/// How long a waiting parent spins for results before sleeping.
const SPIN: Duration = Duration::from_micros(20);
/// How long the background thread leaves new work to a caller that may be about to wait
/// for it (so `submit` + `result` costs no thread hand-off).
const BG_GRACE: Duration = Duration::from_millis(2);

impl Inner {
    fn results_waiting(&self) -> bool {
        self.slots.iter().any(|s| s.results().used_words() > 0)
    }

    fn results_waiting_seqcst(&self) -> bool {
        multiproc_arena::sync::atomic::fence(Ordering::SeqCst);
        self.slots.iter().any(|s| !s.results().is_empty_seqcst())
    }

    /// Drives the pool on this thread until `cond()` or the deadline.
    pub(super) fn drive(
        &self,
        cond: &mut dyn FnMut() -> bool,
        deadline: Option<Instant>,
        foreground: bool,
    ) -> bool {
        struct Fg<'a>(&'a Inner, bool);
        impl Drop for Fg<'_> {
            fn drop(&mut self) {
                if self.1 && self.0.fg_active.fetch_sub(1, Ordering::SeqCst) == 1 {
                    self.0.kick_bg();
                }
            }
        }
        if foreground {
            self.fg_active.fetch_add(1, Ordering::SeqCst);
        }
        let _fg = Fg(self, foreground);
        let mut timed_out_sleep = false;
        loop {
            if cond() {
                return true;
            }
            self.pump(timed_out_sleep);
            if cond() {
                return true;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return false;
            }
            // Spin briefly: a short task's result is usually a microsecond away.
            let spin_end = now + SPIN;
            let mut found = false;
            while Instant::now() < spin_end {
                for _ in 0..32 {
                    std::hint::spin_loop();
                }
                if self.results_waiting() {
                    found = true;
                    break;
                }
            }
            if found {
                timed_out_sleep = false;
                continue;
            }
            timed_out_sleep = self.sleep(cond, deadline);
        }
    }

    /// Sleeps on the doorbell; true if it woke by timeout (time to look at the workers).
    fn sleep(&self, cond: &mut dyn FnMut() -> bool, deadline: Option<Instant>) -> bool {
        let bell = self.global.doorbell();
        let seq = bell.load(Ordering::SeqCst);
        self.global.parent_waiting().fetch_add(1, Ordering::SeqCst);
        let mut timed_out = false;
        if !self.results_waiting_seqcst() && !cond() {
            let mut wait = POLL;
            if let Some(d) = deadline {
                wait = wait.min(d.saturating_duration_since(Instant::now()));
            }
            let wake = futex::park(bell, seq, &mut Deadline::after(wait), None);
            timed_out = wake == Wake::TimedOut || bell.load(Ordering::SeqCst) == seq;
        }
        self.global.parent_waiting().fetch_sub(1, Ordering::SeqCst);
        timed_out
    }

    /// Whether any work is queued, running, or any worker must still be stopped or reaped.
    pub(super) fn busy(core: &Core) -> bool {
        !core.pending.is_empty()
            || core.workers.iter().any(|w| !w.inflight.is_empty())
            || (!matches!(core.state, PoolState::Running)
                && core.workers.iter().any(|w| w.proc.is_some()))
    }
}

impl Driver for Inner {
    fn drive_until(&self, cond: &mut dyn FnMut() -> bool, deadline: Option<Instant>) -> bool {
        self.drive(cond, deadline, true)
    }
}

/// The background thread: drives the pool while work is in flight and nobody waits.
pub(super) fn background(weak: Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        {
            let mut core = lock(&inner.core);
            let mut grace_until: Option<Instant> = None;
            loop {
                if core.bg_stop {
                    return;
                }
                let busy = Inner::busy(&core);
                inner.work.store(busy, Ordering::SeqCst);
                let timeout = if busy && inner.fg_active.load(Ordering::SeqCst) == 0 {
                    let until = *grace_until.get_or_insert_with(|| Instant::now() + BG_GRACE);
                    let now = Instant::now();
                    if now >= until {
                        break;
                    }
                    until - now
                } else {
                    grace_until = None;
                    Duration::from_millis(100)
                };
                inner.bg_idle.store(grace_until.is_none(), Ordering::SeqCst);
                let (c, t) =
                    inner.bg_cv.wait_timeout(core, timeout).unwrap_or_else(|p| p.into_inner());
                inner.bg_idle.store(false, Ordering::SeqCst);
                core = c;
                if t.timed_out() && grace_until.is_none() {
                    // Idle: look at the workers now and then (deaths, replacements).
                    let mut d = Deliveries::default();
                    inner.check_workers(&mut core, &mut d);
                    drop(core);
                    d.run();
                    core = lock(&inner.core);
                }
            }
        }
        let mut cond = || {
            inner.fg_active.load(Ordering::SeqCst) > 0 || {
                let core = lock(&inner.core);
                core.bg_stop || !Inner::busy(&core)
            }
        };
        inner.drive(&mut cond, None, false);
    }
}
