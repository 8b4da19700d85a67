//! `pool.*`: worker pools (multiproc-pool; CPython's `multiprocessing.Pool` and
//! `concurrent.futures.ProcessPoolExecutor`).
//!
//! The multiproc side lands with multiproc-pool: one `fn(&Opts) -> f64` per case here (the pool
//! of 2 workers started and warmed before the timed window, results checked), then
//! `rust: Some(..)` below.

use super::{Better, Case, Floor};

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "pool.map_cs1",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::None,
        rust: None,
        python: true,
        about: "map of a trivial function over 100,000 items, chunksize 1, 2 workers: per task",
    },
    Case {
        name: "pool.map_default_cs",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::None,
        rust: None,
        python: true,
        about: "map of a trivial function over 1,000,000 items, default chunksize, 2 workers",
    },
    Case {
        name: "pool.submit",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::None,
        rust: None,
        python: true,
        about: "submit + result, one task after another, 10,000 trivial tasks, 2 workers",
    },
    Case {
        name: "pool.cpu_speedup",
        unit: "×",
        better: Better::Higher,
        floor: Floor::Parallel(2),
        rust: None,
        python: true,
        about: "8 equal CPU-bound pieces: serial time / time on a pool of 2 workers",
    },
];
