//! The catalogue of benchmark cases: one file per crate family, each with a `CASES` table.
//!
//! A [`Case`] names a figure (`queue.1to1_u64`), its unit, which direction is better, the floor
//! it is read against, and how to measure it: `rust` is the multiproc side (a plain function
//! run in a fresh process by `bench-runner case NAME`, returning one number), `python` says
//! whether `benches/python/bench.py` has the CPython counterpart.
//!
//! Adding the multiproc side of a case when its crate lands: add the crate as a normal
//! dependency of `benches/Cargo.toml`, write one `fn(&Opts) -> f64` in that family's file, and
//! set `rust: Some(that_fn)` in its row.

use crate::sys;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod arena;
#[cfg(feature = "cluster")]
mod cluster;
mod floor;
mod lock;
mod manager;
mod pipe;
pub(crate) mod pool;
pub(crate) mod queue;
mod shm;
mod spawn;

/// Which direction of a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Better {
    /// Times, latencies.
    Lower,
    /// Rates, speed-ups.
    Higher,
}

impl Better {
    /// As in the JSON report.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Better::Lower => "lower",
            Better::Higher => "higher",
        }
    }
}

/// What a case is read against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Floor {
    /// Nothing (floors themselves, figures without a physical limit).
    None,
    /// Another case (a `floor.*` one) measured in the same run, in the same unit.
    Case(&'static str),
    /// The ideal speed-up of this many workers: `min(workers, CPUs available)`.
    Parallel(u32),
}

/// How long to run: the iteration counts each case picks with [`Opts::iters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scale {
    /// `cargo xtask bench`.
    Full,
    /// `--quick`: about a third of the work.
    Quick,
    /// `--smoke`: a handful of iterations, to check that a case runs (tests).
    Smoke,
}

/// Options of one measurement.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Opts {
    pub(crate) scale: Scale,
}

impl Opts {
    /// `full` or `quick` iterations, by scale (smoke: a five-hundredth of quick, at least 2).
    pub(crate) fn iters(&self, full: u64, quick: u64) -> u64 {
        match self.scale {
            Scale::Full => full,
            Scale::Quick => quick,
            Scale::Smoke => (quick / 500).max(2),
        }
    }

    /// Warm-up iterations for a loop of `n`: a tenth, at least 1.
    pub(crate) fn warm(&self, n: u64) -> u64 {
        (n / 10).max(1)
    }
}

/// One benchmark figure.
#[derive(Debug)]
pub(crate) struct Case {
    /// The stable name (`family.what`), as in issue 7.
    pub(crate) name: &'static str,
    /// Unit of the number (`µs`, `ns`, `MB/s`, `msgs/s`, `ops/s`, `×`).
    pub(crate) unit: &'static str,
    /// Which direction is better.
    pub(crate) better: Better,
    /// What it is read against.
    pub(crate) floor: Floor,
    /// The multiproc (or floor) measurement; `None` until the crate lands.
    pub(crate) rust: Option<fn(&Opts) -> f64>,
    /// Whether `benches/python/bench.py` measures the CPython counterpart.
    pub(crate) python: bool,
    /// One line: what is measured.
    pub(crate) about: &'static str,
}

impl Case {
    /// Whether this is a hardware floor (`floor.*`).
    pub(crate) fn is_floor(&self) -> bool {
        self.name.starts_with("floor.")
    }
}

/// Every case, in report order: the crates' cases in issue order, then the floors.
pub(crate) fn all() -> Vec<&'static Case> {
    [
        spawn::CASES,
        pipe::CASES,
        queue::CASES,
        lock::CASES,
        manager::CASES,
        pool::CASES,
        #[cfg(feature = "cluster")]
        cluster::CASES,
        shm::CASES,
        arena::CASES,
        floor::CASES,
    ]
    .iter()
    .flat_map(|t| t.iter())
    .collect()
}

/// The case named `name`.
pub(crate) fn find(name: &str) -> Option<&'static Case> {
    all().into_iter().find(|c| c.name == name)
}

// ---- measurement helpers shared by the case files ----

/// Runs `warm` untimed iterations of `f`, then `n` timed ones; returns the timed duration.
pub(crate) fn timed(warm: u64, n: u64, mut f: impl FnMut(u64)) -> Duration {
    for i in 0..warm {
        f(i);
    }
    let t = Instant::now();
    for i in 0..n {
        f(warm + i);
    }
    t.elapsed()
}

/// As [`timed`], but the warm-up also lasts at least `min_warm` of wall time (spinning peers:
/// right after a fork both processes may share a CPU until the scheduler spreads them, and the
/// CPUs' clocks ramp up; a warm-up of a fixed count is over long before that on a fast
/// machine, so `--quick` and a full run would time different states).
pub(crate) fn timed_warm_for(
    min_warm: Duration,
    warm: u64,
    n: u64,
    mut f: impl FnMut(u64),
) -> Duration {
    let t0 = Instant::now();
    let mut i = 0;
    while i < warm || t0.elapsed() < min_warm {
        f(i);
        i += 1;
    }
    let t = Instant::now();
    for k in 0..n {
        f(i + k);
    }
    t.elapsed()
}

/// The warm-up of the cases whose processes spin for each other (see [`timed_warm_for`]).
pub(crate) const SPIN_WARM: Duration = Duration::from_millis(200);

/// Microseconds per iteration.
pub(crate) fn us_per(d: Duration, n: u64) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

/// Nanoseconds per iteration.
pub(crate) fn ns_per(d: Duration, n: u64) -> f64 {
    d.as_secs_f64() * 1e9 / n as f64
}

/// Megabytes (10^6 bytes) per second.
pub(crate) fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

/// A forked child process; [`Child::join`] waits for it and panics unless it exited 0.
#[derive(Debug)]
pub(crate) struct Child {
    pid: u32,
    joined: bool,
}

/// Forks a child that runs `f` and exits 0 (101 if `f` panics), without running any
/// destructor it inherited. In the parent, `f` is dropped unrun: what it captured by value is
/// dropped there (use that to close the child's end of a socket in the parent), so capture
/// by reference whatever the parent keeps using.
///
/// Case processes are single-threaded, which makes fork safe here.
pub(crate) fn fork(f: impl FnOnce()) -> Child {
    // SAFETY: a case process has one thread (bench-runner's `case` subcommand starts none).
    match unsafe { sys::fork() }.expect("fork") {
        0 => {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_ok();
            sys::exit_now(if ok { 0 } else { 101 })
        }
        pid => Child { pid, joined: false },
    }
}

impl Child {
    /// Waits for the child; panics if it did not exit 0.
    pub(crate) fn join(mut self) {
        self.joined = true;
        let st = sys::wait(self.pid).expect("waitpid");
        if let Err(e) = sys::check_status(st) {
            panic!("child {}: {e}", self.pid);
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.joined {
            let _ = sys::kill(self.pid as i32, libc::SIGKILL);
            let _ = sys::wait(self.pid);
        }
    }
}

/// Spins until `cond()` holds; panics after a minute (a peer died), so a broken case fails
/// instead of hanging until the runner's timeout.
pub(crate) fn spin_until(mut cond: impl FnMut() -> bool) {
    let mut spins = 0u32;
    let mut since: Option<Instant> = None;
    while !cond() {
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins % (1 << 16) == 0 {
            let t0 = *since.get_or_insert_with(Instant::now);
            assert!(t0.elapsed() < Duration::from_secs(60), "spun for a minute: a peer died?");
        }
    }
}

/// This process and a forked child each run `work`, released together from a [`Start`] line
/// (the fork is not timed); returns the wall time from the release until both are done.
pub(crate) fn both_processes(work: impl Fn()) -> Duration {
    let start = Start::new();
    let child = fork(|| {
        start.ready_then_wait();
        work();
        start.done();
    });
    let t = start.go(1);
    work();
    start.wait_done(1);
    let d = t.elapsed();
    child.join();
    d
}

/// The lock figures, as benches/python/bench.py measures them (`lock.*`, their floors
/// `floor.futex_mutex*` and peers): `acquire_release` is one acquire+release of a lock nobody
/// else wants, timed `n` times (`o.iters(20M, 6M)`); nanoseconds each.
pub(crate) fn lock_uncontended(o: &Opts, mut acquire_release: impl FnMut()) -> f64 {
    let n = o.iters(20_000_000, 6_000_000);
    ns_per(timed(o.warm(n), n, |_| acquire_release()), n)
}

/// The contended lock figures (`lock.contended_2proc` and its floor and peers): two processes
/// ([`both_processes`]) each do `n` times (`o.iters(5M, 2M)`): `lock()`, increment `counter`,
/// `unlock(guard)`. The counter is a plain one (CPython's RawValue: read and written
/// separately, so only the lock keeps increments from being lost), in memory both share.
/// Nanoseconds per operation over all, the counter checked.
pub(crate) fn lock_contended_2proc<G>(
    o: &Opts,
    counter: &AtomicU64,
    lock: impl Fn() -> G,
    unlock: impl Fn(G),
) -> f64 {
    let n = o.iters(5_000_000, 2_000_000);
    let d = both_processes(|| {
        for _ in 0..n {
            let g = lock();
            counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            unlock(g);
        }
    });
    assert_eq!(counter.load(Ordering::Relaxed), 2 * n, "the lock let two holders in");
    ns_per(d, 2 * n)
}

/// A start line for two or more processes in a [`sys::SharedMap`]: children call
/// [`Start::ready_then_wait`], the parent [`Start::go`] once all are ready, so the timed
/// window holds the work only, not the fork.
#[derive(Debug)]
pub(crate) struct Start {
    map: sys::SharedMap,
}

impl Start {
    /// A fresh start line.
    pub(crate) fn new() -> Start {
        Start { map: sys::SharedMap::new(4096).expect("mmap") }
    }

    /// In a child: count itself ready, then spin until the parent says go.
    pub(crate) fn ready_then_wait(&self) {
        self.map.u32_at(0).fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        spin_until(|| self.map.u32_at(64).load(std::sync::atomic::Ordering::Acquire) == 1);
    }

    /// In the parent: wait for `children` ready children, then release them; returns the
    /// instant of the release (the start of the timed window).
    pub(crate) fn go(&self, children: u32) -> Instant {
        spin_until(|| self.map.u32_at(0).load(std::sync::atomic::Ordering::Acquire) == children);
        let t = Instant::now();
        self.map.u32_at(64).store(1, std::sync::atomic::Ordering::Release);
        t
    }

    /// Marks one child done (call at the end of the child's timed work).
    pub(crate) fn done(&self) {
        self.map.u32_at(128).fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// In the parent: spin until `children` children are done.
    pub(crate) fn wait_done(&self, children: u32) {
        spin_until(|| self.map.u32_at(128).load(std::sync::atomic::Ordering::Acquire) == children);
    }
}
