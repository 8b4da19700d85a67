//! `procspawn` (`thread::spawn` with processes: re-executes the current binary, arguments and
//! results through ipc-channel; `procspawn::init()` runs first in `main`).
//!
//! - `spawn.spawn`: `procspawn::spawn((), noop)` then `join`, one process after another.
//! - `pool.map_cs1`: a `procspawn::Pool` of 2 processes, the identity over `0..n`, one task per
//!   item, up to 100 tasks in flight (each task holds channels and a waiter thread, so not all
//!   at once), every result checked: µs per task.
//! - `pool.submit`: the same pool, spawn + join one task after another.

use super::Peer;
use crate::cases::{timed, us_per, Opts};
use std::time::Instant;

pub(crate) const PEERS: &[Peer] = &[
    Peer {
        case: "spawn.spawn",
        name: "procspawn",
        run: spawn,
        about: "procspawn::spawn of a trivial function (re-exec) + join",
    },
    Peer {
        case: "pool.map_cs1",
        name: "procspawn",
        run: map_cs1,
        about: "procspawn::Pool of 2, one task per item, 100 in flight: per task",
    },
    Peer {
        case: "pool.submit",
        name: "procspawn",
        run: submit,
        about: "procspawn::Pool of 2, spawn + join one task after another",
    },
];

fn noop(_: ()) {}

fn identity(x: u64) -> u64 {
    x
}

fn spawn(o: &Opts) -> f64 {
    let n = o.iters(60, 25);
    let d = timed(o.warm(n), n, |_| {
        procspawn::spawn((), noop).join().expect("the child failed");
    });
    us_per(d, n)
}

fn pool() -> procspawn::Pool {
    let pool = procspawn::Pool::new(2).expect("pool");
    for i in 0..20 {
        assert_eq!(pool.spawn(i, identity).join().expect("warm-up task"), i);
    }
    pool
}

fn map_cs1(o: &Opts) -> f64 {
    const IN_FLIGHT: u64 = 100;
    let n = o.iters(10_000, 3_000);
    let pool = pool();
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let hi = (i + IN_FLIGHT).min(n);
        let handles: Vec<_> = (i..hi).map(|k| pool.spawn(k, identity)).collect();
        for (k, h) in (i..hi).zip(handles) {
            assert_eq!(h.join().expect("task"), k);
        }
        i = hi;
    }
    us_per(t.elapsed(), n)
}

fn submit(o: &Opts) -> f64 {
    let n = o.iters(3_000, 1_000);
    let pool = pool();
    let d = timed(o.warm(n), n, |i| {
        assert_eq!(pool.spawn(i, identity).join().expect("task"), i);
    });
    us_per(d, n)
}
