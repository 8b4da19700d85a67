//! Bounded, adaptive polling before a blocking receive.
//!
//! A round trip through the kernel costs two wake-ups (~5 µs of CPU each on these machines);
//! when the peer answers within microseconds, polling the socket for a short while avoids the
//! sleep. Polling only
//! pays when answers are fast, so each side keeps a score: a wait that ended within the budget
//! raises it, a longer one lowers it four times as much, and polling happens only while the
//! score is positive. Under load (more runnable threads than cores, or a slow peer) polling
//! switches itself off; it comes back when answers are fast again.

use multiproc_ipc_pipe::Connection;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

const MAX_SCORE: i32 = 16;
const MIN_SCORE: i32 = -64;

/// The adaptive score of one side (shared by the threads of a client).
#[derive(Debug)]
pub(crate) struct Adaptive {
    score: AtomicI32,
}

impl Default for Adaptive {
    fn default() -> Self {
        Adaptive { score: AtomicI32::new(1) }
    }
}

impl Adaptive {
    pub(crate) fn should_spin(&self) -> bool {
        self.score.load(Ordering::Relaxed) > 0
    }

    /// Records how long a wait took against the budget.
    pub(crate) fn record(&self, waited: Duration, budget: Duration) {
        let s = self.score.load(Ordering::Relaxed);
        let n = if waited <= budget { (s + 1).min(MAX_SCORE) } else { (s - 4).max(MIN_SCORE) };
        if n != s {
            self.score.store(n, Ordering::Relaxed);
        }
    }
}

/// Polls `conn` until it is readable or `budget` has passed.
pub(crate) fn poll_for(conn: &Connection, budget: Duration) {
    let until = Instant::now() + budget;
    while !conn.poll(Duration::ZERO).unwrap_or(true) && Instant::now() < until {
        for _ in 0..32 {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_answers_switch_polling_off_and_fast_ones_back_on() {
        let a = Adaptive::default();
        let b = Duration::from_micros(50);
        assert!(a.should_spin());
        a.record(Duration::from_micros(500), b);
        assert!(!a.should_spin());
        for _ in 0..3 {
            a.record(Duration::from_micros(5), b);
        }
        assert!(!a.should_spin());
        for _ in 0..5 {
            a.record(Duration::from_micros(5), b);
        }
        assert!(a.should_spin());
        for _ in 0..100 {
            a.record(Duration::from_micros(500), b);
        }
        for _ in 0..64 {
            a.record(Duration::from_micros(5), b);
        }
        assert!(!a.should_spin(), "the floor bounds how long it takes to come back");
        for _ in 0..2 {
            a.record(Duration::from_micros(5), b);
        }
        assert!(a.should_spin());
    }
}
