//! `spawn.*`: starting a process and joining it (multiproc-spawn; CPython's `Process` with each
//! start method).
//!
//! Each case starts a process running a trivial target with the named start method and joins
//! it, one after another, as `_start_join` in benches/python/bench.py does: µs per process,
//! warm-up first (which also starts the forkserver), exit status checked.

use super::{timed, us_per, Better, Case, Floor, Opts};
use multiproc_spawn::{Process, StartMethod};
use std::hint::black_box;

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "spawn.fork",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::Case("floor.fork_exit_wait"),
        rust: Some(fork),
        python: true,
        about: "start→join of a trivial target, fork start method",
    },
    Case {
        name: "spawn.spawn",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::Case("floor.posix_spawn"),
        rust: Some(spawn),
        python: true,
        about: "start→join of a trivial target, spawn start method (re-exec)",
    },
    Case {
        name: "spawn.forkserver",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::Case("floor.fork_exit_wait"),
        rust: Some(forkserver),
        python: true,
        about: "start→join of a trivial target, forkserver start method (server already up)",
    },
    Case {
        name: "spawn.forkserver_big_parent",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::Case("floor.fork_exit_wait"),
        rust: Some(forkserver_big_parent),
        python: true,
        about: "the same while the parent holds 256 MiB of touched memory",
    },
];

/// The trivial target (Python's `noop`).
fn noop(_: ()) {}

/// `n` processes (after a tenth as many untimed ones) started with `method` and joined one
/// after another: µs per process.
fn start_join(o: &Opts, method: StartMethod, n: u64) -> f64 {
    let d = timed(o.warm(n), n, |_| {
        let h = Process::builder().start_method(method).target(noop, ()).start().expect("start");
        h.join().expect("the child failed");
    });
    us_per(d, n)
}

fn fork(o: &Opts) -> f64 {
    start_join(o, StartMethod::Fork, o.iters(300, 100))
}

fn spawn(o: &Opts) -> f64 {
    start_join(o, StartMethod::Spawn, o.iters(60, 25))
}

fn forkserver(o: &Opts) -> f64 {
    start_join(o, StartMethod::Forkserver, o.iters(300, 100))
}

fn forkserver_big_parent(o: &Opts) -> f64 {
    let big = vec![1u8; 256 << 20]; // written, so every page is present
    black_box(&big);
    let r = start_join(o, StartMethod::Forkserver, o.iters(300, 100));
    assert_eq!(black_box(&big)[(256 << 20) - 1], 1);
    r
}
