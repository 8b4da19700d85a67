//! Bounded waiting on a condition variable, watching the client on the other end.

use crate::protocol::Wait;
use std::sync::{Condvar, MutexGuard};
use std::time::{Duration, Instant};

/// How often a blocked request checks whether its client is still there.
pub(crate) const PROBE_EVERY: Duration = Duration::from_millis(25);

/// Checks whether the client of the current request has gone away.
pub(crate) trait Probe {
    /// `true` when the peer closed its end: the wait should be abandoned.
    fn gone(&mut self) -> bool;
}

impl<F: FnMut() -> bool> Probe for F {
    fn gone(&mut self) -> bool {
        self()
    }
}

/// A probe that never reports the peer gone (tests).
#[cfg(test)]
pub(crate) struct NeverGone;

#[cfg(test)]
impl Probe for NeverGone {
    fn gone(&mut self) -> bool {
        false
    }
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ready,
    TimedOut,
    PeerGone,
}

/// Locks `m`, recovering from poisoning: a request that panicked never leaves an object
/// unusable (the object types keep their invariants between statements).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn deadline(wait: Wait) -> Option<Instant> {
    wait.map(|us| Instant::now().checked_add(Duration::from_micros(us)).unwrap_or_else(far))
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

/// Waits on `cv` until `ready(state)`, the deadline, or the peer goes away; `ready` is checked
/// first, so a zero wait is a non-blocking attempt.
pub(crate) fn wait_until<'a, T>(
    cv: &Condvar,
    mut g: MutexGuard<'a, T>,
    deadline: Option<Instant>,
    probe: &mut dyn Probe,
    mut ready: impl FnMut(&mut T) -> bool,
) -> (MutexGuard<'a, T>, Outcome) {
    let mut next_probe = Instant::now() + PROBE_EVERY;
    loop {
        if ready(&mut g) {
            return (g, Outcome::Ready);
        }
        let now = Instant::now();
        if let Some(d) = deadline {
            if now >= d {
                return (g, Outcome::TimedOut);
            }
        }
        if now >= next_probe {
            if probe.gone() {
                return (g, Outcome::PeerGone);
            }
            next_probe = now + PROBE_EVERY;
        }
        let mut slice = next_probe.saturating_duration_since(now);
        if let Some(d) = deadline {
            slice = slice.min(d.saturating_duration_since(now));
        }
        g = cv
            .wait_timeout(g, slice.max(Duration::from_micros(50)))
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}
