//! Bounded, adaptive polling before a blocking receive.
//!
//! A round trip through the kernel costs two wake-ups (5–50 µs each on the VMs this was
//! measured on); when the peer answers within microseconds, polling the socket for a short
//! while avoids the sleep. Both sides must poll for a round trip to avoid both sleeps:
//!
//! - The server's connection threads poll for the next request after each answer while the
//!   server serves one connection only (no request from another within a millisecond, no
//!   other thread awake or polling: [`Gate`]): a client that sends its next request at once
//!   finds its thread awake, and several busy clients cannot make the server spin (the CPU
//!   goes to the requests).
//! - A client polls for its answer while its score says answers come that fast: a wait that
//!   ended within the budget raises it (to 1 at least: one fast answer is proof enough), a
//!   longer one lowers it by 4, and polling happens while the score is positive. Under load
//!   (more runnable threads than cores, a slow request) polling switches itself off; a few
//!   calls in every [`PROBE`] poll anyway, so it comes back when answers are fast again. Each answer
//!   carries a hint byte after the response: [`BUSY`] when the server was serving other
//!   clients at the same time, which switches the client's polling off too (several clients
//!   and the server's threads compete for the cores; measured on 2 CPUs, polling there
//!   halved the throughput of 4 clients).

use multiproc_ipc_pipe::Connection;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The default polling budget of clients and of the server's connection threads.
pub(crate) const DEFAULT_SPIN: Option<Duration> = Some(Duration::from_micros(30));

const MAX_SCORE: i32 = 16;
const MIN_SCORE: i32 = -64;
/// While polling is off, [`BURST`] waits in every `PROBE` poll anyway.
pub(crate) const PROBE: u32 = 64;
/// Consecutive waits of a probe: the first answer comes from a server thread that slept, but
/// the client, polling, sends its next request at once, which a polling server thread
/// answers at once (one probe alone would never see a fast answer).
const BURST: u32 = 3;

/// The byte after an answer's response when other clients were being served at the same
/// time ([`Adaptive::server_busy`]); `0` otherwise.
pub(crate) const BUSY: u8 = 1;

/// The adaptive score of a client (shared by its threads).
#[derive(Debug)]
pub(crate) struct Adaptive {
    score: AtomicI32,
    /// Waits while off, for [`PROBE`].
    off: AtomicU32,
}

impl Default for Adaptive {
    fn default() -> Self {
        Adaptive { score: AtomicI32::new(1), off: AtomicU32::new(0) }
    }
}

impl Adaptive {
    /// Whether this wait polls: while the score is positive, and [`BURST`] waits in every
    /// [`PROBE`].
    pub(crate) fn should_spin(&self) -> bool {
        self.score.load(Ordering::Relaxed) > 0
            || self.off.fetch_add(1, Ordering::Relaxed) % PROBE >= PROBE - BURST
    }

    /// The server says other clients are being served: polling would take the CPU from them
    /// (and from the server), so it is off until a probe finds answers fast again.
    pub(crate) fn server_busy(&self) {
        if self.score.load(Ordering::Relaxed) > 0 {
            self.score.store(0, Ordering::Relaxed);
        }
    }

    /// Records how long a wait took against the budget.
    pub(crate) fn record(&self, waited: Duration, budget: Duration) {
        let s = self.score.load(Ordering::Relaxed);
        let n = if waited <= budget { (s + 1).clamp(1, MAX_SCORE) } else { (s - 4).max(MIN_SCORE) };
        if n != s {
            self.score.store(n, Ordering::Relaxed);
        }
    }
}

/// How long after requests came from more than one connection the server counts as shared.
const SHARED_WINDOW: Duration = Duration::from_millis(1);

/// The server's connection threads: how many are awake (serving a request), how many poll
/// (see [`server_poll`]), and whether requests came from more than one connection lately.
#[derive(Debug)]
pub(crate) struct Gate {
    awake: AtomicU32,
    polling: AtomicU32,
    /// The connection of the latest request.
    last: AtomicU64,
    /// When `last` last changed, µs after `epoch`.
    switched: AtomicU64,
    epoch: Instant,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            awake: AtomicU32::new(0),
            polling: AtomicU32::new(0),
            last: AtomicU64::new(u64::MAX),
            switched: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl Gate {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Whether the server serves more than one connection now or did within
    /// [`SHARED_WINDOW`]: then nobody should poll (the hint byte an answer carries, [`BUSY`]).
    pub(crate) fn shared(&self) -> bool {
        self.awake.load(Ordering::Relaxed) > 1
            || self.now_us().saturating_sub(self.switched.load(Ordering::Relaxed))
                < SHARED_WINDOW.as_micros() as u64
    }

    /// Connection `conn` received a request; its thread is awake until the guard drops.
    pub(crate) fn request(&self, conn: u64) -> Awake<'_> {
        self.awake.fetch_add(1, Ordering::Relaxed);
        if self.last.load(Ordering::Relaxed) != conn {
            self.last.store(conn, Ordering::Relaxed);
            self.switched.store(self.now_us(), Ordering::Relaxed);
        }
        Awake(self)
    }
}

/// A connection thread serving a request ([`Gate::request`]).
pub(crate) struct Awake<'a>(&'a Gate);

impl Drop for Awake<'_> {
    fn drop(&mut self) {
        self.0.awake.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Polls `conn` until it is readable or `budget` has passed (or `stop()`).
fn poll_for(conn: &Connection, budget: Duration, stop: impl Fn() -> bool) {
    let until = Instant::now() + budget;
    while !conn.poll(Duration::ZERO).unwrap_or(true) && Instant::now() < until && !stop() {
        for _ in 0..32 {
            std::hint::spin_loop();
        }
    }
}

/// The server's half: polls `conn` for its next request for up to `budget` unless the
/// server is shared ([`Gate::shared`]) or another thread polls; stops early when another
/// thread wakes.
pub(crate) fn server_poll(conn: &Connection, budget: Option<Duration>, gate: &Gate) {
    let Some(budget) = budget else { return };
    if gate.awake.load(Ordering::Relaxed) != 0 || gate.shared() {
        return;
    }
    if gate.polling.fetch_add(1, Ordering::Relaxed) == 0 {
        poll_for(conn, budget, || gate.awake.load(Ordering::Relaxed) != 0);
    }
    gate.polling.fetch_sub(1, Ordering::Relaxed);
}

/// A client's wait for its answer: polls first while its score says answers come that fast
/// ([`Timed::poll`]), then (the caller's blocking receive) in the kernel; [`Timed::done`]
/// records how long it took.
pub(crate) struct Timed<'a> {
    t0: Instant,
    budget: Duration,
    score: &'a Adaptive,
}

impl<'a> Timed<'a> {
    /// Starts the clock and polls if `score` says so; `None` when `budget` is `None`.
    pub(crate) fn poll(
        conn: &Connection,
        budget: Option<Duration>,
        score: &'a Adaptive,
    ) -> Option<Self> {
        let budget = budget?;
        let t0 = Instant::now();
        if score.should_spin() {
            poll_for(conn, budget, || false);
        }
        Some(Timed { t0, budget, score })
    }

    /// The wait is over (the answer was received): records its length.
    pub(crate) fn done(self) {
        self.score.record(self.t0.elapsed(), self.budget);
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
        // Off: only BURST waits in every PROBE poll.
        let polls = (0..4 * PROBE).filter(|_| a.should_spin()).count();
        assert_eq!(polls, 4 * BURST as usize, "probes while off");
        // A fast answer (a probe's) turns it back on; fast answers build a margin.
        a.record(Duration::from_micros(5), b);
        assert!(a.should_spin());
        for _ in 0..4 {
            a.record(Duration::from_micros(5), b);
        }
        a.record(Duration::from_micros(500), b);
        assert!(a.should_spin(), "one slow answer after five fast ones");
        a.record(Duration::from_micros(500), b);
        assert!(!a.should_spin());
        for _ in 0..100 {
            a.record(Duration::from_micros(500), b);
        }
        a.record(Duration::from_micros(5), b);
        assert!(a.should_spin(), "one fast answer is proof enough");
    }

    #[test]
    fn the_server_polls_only_while_no_other_thread_is_awake() {
        let g = Gate::default();
        let (a, b) = multiproc_ipc_pipe::Pipe::new().unwrap();
        let busy = g.request(1); // another connection thread serves a request
        let t = Instant::now();
        server_poll(&a, Some(Duration::from_millis(200)), &g);
        assert!(t.elapsed() < Duration::from_millis(100), "polled beside a busy thread");
        drop(busy);
        drop(g.request(2)); // a request from another connection: shared for a while
        assert!(g.shared());
        server_poll(&a, Some(Duration::from_millis(200)), &g);
        assert!(t.elapsed() < Duration::from_millis(100), "polled while shared");
        std::thread::sleep(SHARED_WINDOW * 2);
        drop(g.request(2)); // the same connection again: not shared once the window passed
        assert!(!g.shared());
        let t = Instant::now();
        server_poll(&a, Some(Duration::from_millis(50)), &g);
        assert!(t.elapsed() >= Duration::from_millis(50), "did not poll when alone");
        assert_eq!(g.polling.load(Ordering::Relaxed), 0);
        assert_eq!(g.awake.load(Ordering::Relaxed), 0);
        drop(b);
    }
}
