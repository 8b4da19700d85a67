//! End-to-end tests of [multiproc] across its crates: a chaos workload that kills
//! participants at random while every primitive is in use ([`chaos`]), and the helpers of the
//! hostile-input, security and hygiene tests ([`rng`], [`alloc`], [`hygiene`], [`sys`]).
//!
//! - [`chaos::run`] with a [`chaos::Config`] gives a [`chaos::Report`]: kills survived,
//!   messages checked, tasks run, invariant violations (must be none). The `soak` binary
//!   (`cargo xtask soak --minutes N`) runs it for long; `tests/chaos.rs` runs a short form.
//! - `tests/hostile.rs`: deterministic pseudo-random hostile input for every decoder that
//!   reads another process's bytes (`cargo xtask fuzz --cases N` scales it with
//!   `MULTIPROC_FUZZ_CASES`).
//! - `tests/security.rs`: authkeys, slow and silent clients, oversized pre-authentication
//!   frames, file modes, another user's access.
//! - `tests/hygiene.rs`: descriptors, zombies, named segments and socket files after a run.
//! - [`short::run`]: the "machine short" phase (`/dev/shm` tiny and descriptors used up for a
//!   while, then restored), run by the soak after the chaos workload and briefly by
//!   `tests/short.rs`.
//!
//! ```no_run
//! let report = multiproc_tests::chaos::run(&multiproc_tests::chaos::Config::short(10));
//! println!("{report}");
//! assert!(report.violations.is_empty());
//! ```
//!
//! [multiproc]: https://docs.rs/multiproc

pub mod alloc;
pub mod chaos;
pub mod hygiene;
pub mod rng;
pub mod short;
pub mod sys;

/// Runs `f` on a thread and fails (panics) if it takes longer than `secs`: a hang is a test
/// failure within seconds, never a CI timeout.
pub fn bounded<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(()) => match h.join().expect("joined") {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(_) => panic!("test body still running after {secs} s: a hang"),
    }
}
