//! `spawn.*`: starting a process and joining it (multiproc-spawn; CPython's `Process` with each
//! start method).
//!
//! The multiproc side lands with multiproc-spawn: add it to benches/Cargo.toml, write e.g.
//! `fn fork(o: &Opts) -> f64` (start→join of a trivial target, µs per process, warm-up first,
//! `o.iters(..)` processes) and set `rust: Some(fork)` below.

use super::{Better, Case, Floor};

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "spawn.fork",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::Case("floor.fork_exit_wait"),
        rust: None,
        python: true,
        about: "start→join of a trivial target, fork start method",
    },
    Case {
        name: "spawn.spawn",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::Case("floor.posix_spawn"),
        rust: None,
        python: true,
        about: "start→join of a trivial target, spawn start method (re-exec)",
    },
    Case {
        name: "spawn.forkserver",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::Case("floor.fork_exit_wait"),
        rust: None,
        python: true,
        about: "start→join of a trivial target, forkserver start method (server already up)",
    },
    Case {
        name: "spawn.forkserver_big_parent",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::Case("floor.fork_exit_wait"),
        rust: None,
        python: true,
        about: "the same while the parent holds 256 MiB of touched memory",
    },
];
