//! Release-mode measurements of the pool's key figures.
//!
//! `cargo run --release -p multiproc-pool --example pool_bench [-- fork|spawn|forkserver]`

use multiproc_pool::{Executor, Pool, ProcessPoolExecutor, StartMethod};
use std::time::Instant;

fn trivial(x: u64) -> u64 {
    x.wrapping_add(1)
}

fn burn(n: u64) -> u64 {
    let mut h = std::hint::black_box(n);
    for i in 0..n {
        h = h.rotate_left(5) ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    h
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn main() {
    let method = match std::env::args().nth(1).as_deref() {
        Some("spawn") => StartMethod::Spawn,
        Some("forkserver") => StartMethod::Forkserver,
        _ => StartMethod::Fork,
    };
    let reps = 5;
    println!("start method: {}", method.name());

    // Pool start to first result.
    let mut start_ms = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let pool = Pool::builder().processes(2).start_method(method).build().expect("pool");
        pool.apply(trivial, 1).expect("apply");
        start_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!("pool start to first result: {:.2} ms", median(start_ms));

    let pool = Pool::builder().processes(2).start_method(method).build().expect("pool");
    pool.map(trivial, 0..1000u64).expect("warm up");

    // map, chunksize 1.
    let n = 100_000u64;
    let mut us = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let v = pool.job().chunksize(1).map(trivial, 0..n).expect("map");
        us.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
        assert_eq!(v[7], 8);
    }
    println!("map, chunksize 1, {n} tasks, 2 workers: {:.3} us/task", median(us));

    // map, default chunksize.
    let mut us = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let v = pool.map(trivial, 0..n).expect("map");
        us.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
        assert_eq!(v.len(), n as usize);
    }
    println!("map, default chunksize, {n} items: {:.4} us/item", median(us));

    // CPU-bound: 8 equal pieces, 2 workers vs serial.
    let piece = 60_000_000u64;
    let mut speedups = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let serial: Vec<u64> = (0..8).map(|_| burn(std::hint::black_box(piece))).collect();
        let ts = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let par = pool.job().chunksize(1).map(burn, vec![piece; 8]).expect("map");
        let tp = t.elapsed().as_secs_f64();
        assert_eq!(serial, par);
        speedups.push(ts / tp);
        println!("  serial {:.1} ms, 2 workers {:.1} ms", ts * 1e3, tp * 1e3);
    }
    println!("CPU-bound 8 pieces on 2 workers vs serial: {:.2}x", median(speedups));
    drop(pool);

    // Executor submit + result.
    let ex =
        ProcessPoolExecutor::builder().processes(2).start_method(method).build().expect("executor");
    ex.submit(trivial, 0).expect("submit").result().expect("result");
    let m = 10_000u64;
    let mut us = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        for i in 0..m {
            let r = ex.submit(trivial, i).expect("submit").result().expect("result");
            assert_eq!(r, i + 1);
        }
        us.push(t.elapsed().as_secs_f64() * 1e6 / m as f64);
    }
    println!("executor submit+result, {m} sequential tasks: {:.2} us/task", median(us));
}
