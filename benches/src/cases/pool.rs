//! `pool.*`: worker pools (multiproc-pool; CPython's `multiprocessing.Pool` and
//! `concurrent.futures.ProcessPoolExecutor`).
//!
//! As in benches/python/bench.py: a pool (or executor) of 2 workers started with the fork
//! start method and warmed before the timed window; the identity function over `0..n`, results
//! checked; the CPU-bound speed-up times the same 8 pieces serially and on the pool in one run
//! (CPython's LCG pieces, with as many more steps as make a piece last about as long as
//! CPython's: [`STEPS_PER_CPYTHON_STEP`]).

use super::{us_per, Better, Case, Floor, Opts};
use multiproc_pool::{Executor, Pool, ProcessPoolExecutor, StartMethod};
use std::hint::black_box;
use std::time::Instant;

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "pool.map_cs1",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::None,
        rust: Some(map_cs1),
        python: true,
        about: "map of a trivial function over 100,000 items, chunksize 1, 2 workers: per task",
    },
    Case {
        name: "pool.map_default_cs",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::None,
        rust: Some(map_default_cs),
        python: true,
        about: "map of a trivial function over 1,000,000 items, default chunksize, 2 workers",
    },
    Case {
        name: "pool.submit",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::None,
        rust: Some(submit),
        python: true,
        about: "submit + result, one task after another, 10,000 trivial tasks, 2 workers",
    },
    Case {
        name: "pool.cpu_speedup",
        unit: "×",
        better: Better::Higher,
        floor: Floor::Parallel(2),
        rust: Some(cpu_speedup),
        python: true,
        about: "8 equal CPU-bound pieces: serial time / time on a pool of 2 workers",
    },
];

/// CPython's `noop_arg`.
fn identity(x: u64) -> u64 {
    x
}

fn pool() -> Pool {
    Pool::builder().processes(2).start_method(StartMethod::Fork).build().expect("pool")
}

fn map_cs1(o: &Opts) -> f64 {
    let n = o.iters(100_000, 20_000);
    let pool = pool();
    pool.job().chunksize(1).map(identity, 0..1000u64).expect("warm-up map");
    let t = Instant::now();
    let r = pool.job().chunksize(1).map(identity, 0..n).expect("map");
    let d = t.elapsed();
    assert!(r.len() == n as usize && r[n as usize - 1] == n - 1, "wrong results");
    us_per(d, n)
}

fn map_default_cs(o: &Opts) -> f64 {
    let n = o.iters(1_000_000, 300_000);
    let pool = pool();
    pool.map(identity, 0..10_000u64).expect("warm-up map");
    let t = Instant::now();
    let r = pool.map(identity, 0..n).expect("map");
    let d = t.elapsed();
    assert!(r.len() == n as usize && r[n as usize - 1] == n - 1, "wrong results");
    us_per(d, n)
}

fn submit(o: &Opts) -> f64 {
    let n = o.iters(10_000, 3_000);
    let ex = ProcessPoolExecutor::builder()
        .processes(2)
        .start_method(StartMethod::Fork)
        .build()
        .expect("executor");
    let one = |i: u64| {
        assert_eq!(ex.submit(identity, i).expect("submit").result().expect("result"), i);
    };
    (0..o.warm(n)).for_each(one);
    let t = Instant::now();
    (0..n).for_each(one);
    us_per(t.elapsed(), n)
}

/// How many more LCG steps a piece takes here than in CPython's `cpu_piece`: CPython takes
/// about a hundred times as long per step (~130 ns against ~1.3 ns), so with this factor a
/// piece lasts about as long on both sides (tens of ms). With CPython's step count a piece
/// would last under a millisecond, and the figure would measure the scheduler's time slices
/// rather than the pool.
pub(crate) const STEPS_PER_CPYTHON_STEP: u64 = 100;

/// CPython's `cpu_piece`: `k` through `steps` steps of a 64-bit LCG.
pub(crate) fn cpu_piece((k, steps): (u64, u64)) -> u64 {
    let mut x = k;
    for _ in 0..black_box(steps) {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    }
    x
}

fn cpu_speedup(o: &Opts) -> f64 {
    let steps = o.iters(600_000, 250_000) * STEPS_PER_CPYTHON_STEP;
    let pieces: Vec<(u64, u64)> = (0..8).map(|k| (k, steps)).collect();
    let pool = pool();
    pool.map(identity, 0..100u64).expect("warm-up map");
    let t = Instant::now();
    let serial: Vec<u64> = pieces.iter().map(|&p| cpu_piece(black_box(p))).collect();
    let ts = t.elapsed();
    let t = Instant::now();
    let par = pool.job().chunksize(1).map(cpu_piece, pieces).expect("map");
    let tp = t.elapsed();
    assert_eq!(par, serial, "the pool computed something else");
    ts.as_secs_f64() / tp.as_secs_f64()
}
