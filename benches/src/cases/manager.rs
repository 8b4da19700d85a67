//! `manager.*`: a Manager server and its proxies (multiproc-manager; CPython's
//! `multiprocessing.Manager`).
//!
//! As in benches/python/bench.py: the manager is started (with the fork start method, as
//! CPython's `FORK.Manager()`) before the timed window; `d.get("key")` round trips; list
//! appends of `(k, i)` pairs from this process, or from 4 forked client processes released
//! together by a manager barrier and timed until all are joined; the final length checked.

use super::{timed, us_per, Better, Case, Floor, Opts};
use multiproc_manager::{BarrierProxy, ListProxy, Manager};
use multiproc_spawn::{Process, StartMethod};
use std::time::Instant;

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "manager.dict_get_rtt",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::Case("floor.socketpair_rtt"),
        rust: Some(dict_get_rtt),
        python: true,
        about: "d[key] through a dict proxy: one request/response with the server process",
    },
    Case {
        name: "manager.list_append_1client",
        unit: "ops/s",
        better: Better::Higher,
        floor: Floor::None,
        rust: Some(list_append_1client),
        python: true,
        about: "list proxy append from one client, final length checked",
    },
    Case {
        name: "manager.list_append_4clients",
        unit: "ops/s",
        better: Better::Higher,
        floor: Floor::None,
        rust: Some(list_append_4clients),
        python: true,
        about: "list proxy append from 4 client processes at once, final length checked",
    },
];

/// A manager server process started with the fork start method.
fn start() -> Manager {
    multiproc_spawn::force_start_method(StartMethod::Fork);
    Manager::start().expect("start the manager")
}

fn dict_get_rtt(o: &Opts) -> f64 {
    let n = o.iters(30_000, 10_000);
    let m = start();
    let d = m.dict::<String, u64>().expect("dict");
    d.insert("key".into(), 42).expect("insert");
    let dt = timed(o.warm(n), n, |_| assert_eq!(d.get("key").expect("get"), Some(42)));
    m.shutdown().expect("shutdown");
    us_per(dt, n)
}

fn list_append_1client(o: &Opts) -> f64 {
    let n = o.iters(40_000, 12_000);
    let m = start();
    let l = m.list::<(u64, u64)>().expect("list");
    for i in 0..o.warm(n) {
        l.append((0, i)).expect("append");
    }
    l.clear().expect("clear");
    let t = Instant::now();
    for i in 0..n {
        l.append((0, i)).expect("append");
    }
    let d = t.elapsed();
    assert_eq!(l.len().expect("len"), n as usize);
    m.shutdown().expect("shutdown");
    n as f64 / d.as_secs_f64()
}

/// A client process of `list_append_4clients`: connects (first use of the inherited proxy),
/// waits at the start line, appends `(k, i)` for i in 0..count.
fn appender((l, start, k, count): (ListProxy<(u64, u64)>, BarrierProxy, u64, u64)) {
    l.len().expect("connect"); // a proxy inherited through fork connects on first use
    start.wait().expect("barrier");
    for i in 0..count {
        l.append((k, i)).expect("append");
    }
}

fn list_append_4clients(o: &Opts) -> f64 {
    let n = o.iters(60_000, 20_000);
    let per = n / 4;
    let m = start();
    let l = m.list::<(u64, u64)>().expect("list");
    let start = m.barrier(5).expect("barrier");
    let kids: Vec<_> = (0..4)
        .map(|k| {
            Process::builder()
                .start_method(StartMethod::Fork)
                .target(appender, (l.clone(), start.clone(), k, per))
                .start()
                .expect("start a client")
        })
        .collect();
    start.wait().expect("barrier");
    let t = Instant::now();
    for k in kids {
        k.join().expect("a client failed");
    }
    let d = t.elapsed();
    assert_eq!(l.len().expect("len"), 4 * per as usize);
    m.shutdown().expect("shutdown");
    (4 * per) as f64 / d.as_secs_f64()
}
