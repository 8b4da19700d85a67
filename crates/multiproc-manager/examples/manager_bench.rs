//! Key figures of the manager, measured side by side with the raw transport floor:
//!
//! - raw round trip of a small message between two processes over a socket pair (the floor);
//! - dict `get` round trip through a manager;
//! - list `append` ops/s from 1 client and from 4 client processes;
//! - `Manager::start()` to the first answered call.
//!
//! `cargo run --release -p multiproc-manager --example manager_bench [-- --quick]`

use multiproc_ipc_pipe::{Connection, Pipe};
use multiproc_manager::{BarrierProxy, ListProxy, Manager};
use multiproc_spawn::Process;
use std::time::{Duration, Instant};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn echo(conn: Connection) {
    while let Ok(b) = conn.recv_bytes() {
        if conn.send_bytes(&b).is_err() {
            break;
        }
    }
}

/// Round trip of a 16-byte message over a socket pair to another process, in µs.
fn raw_round_trip(iters: usize) -> f64 {
    let (a, b) = Pipe::new().unwrap();
    let child = Process::builder().target(echo, b).start().unwrap();
    let msg = [7u8; 16];
    for _ in 0..1000 {
        a.send_bytes(&msg).unwrap();
        a.recv_bytes().unwrap();
    }
    let t0 = Instant::now();
    for _ in 0..iters {
        a.send_bytes(&msg).unwrap();
        a.recv_bytes().unwrap();
    }
    let us = t0.elapsed().as_secs_f64() * 1e6 / iters as f64;
    drop(a);
    let _ = child.join();
    us
}

fn dict_get_round_trip(m: &Manager, iters: usize) -> f64 {
    let d = m.dict::<String, u64>().unwrap();
    d.insert("key".into(), 42).unwrap();
    let k = "key".to_string();
    for _ in 0..1000 {
        d.get(&k).unwrap();
    }
    let t0 = Instant::now();
    for _ in 0..iters {
        assert_eq!(d.get(&k).unwrap(), Some(42));
    }
    t0.elapsed().as_secs_f64() * 1e6 / iters as f64
}

fn append_rate(m: &Manager, n: usize) -> f64 {
    let l = m.list::<u64>().unwrap();
    let t0 = Instant::now();
    for i in 0..n as u64 {
        l.append(i).unwrap();
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

fn appender((l, b, n): (ListProxy<u64>, BarrierProxy, usize)) {
    l.append(0).unwrap(); // connect before the clock starts
    b.wait().unwrap();
    for i in 0..n as u64 {
        l.append(i).unwrap();
    }
    b.wait().unwrap();
}

fn append_rate_procs(m: &Manager, procs: usize, per: usize) -> f64 {
    let l = m.list::<u64>().unwrap();
    let b = m.barrier(procs + 1).unwrap();
    let kids: Vec<_> = (0..procs)
        .map(|_| Process::builder().target(appender, (l.clone(), b.clone(), per)).start().unwrap())
        .collect();
    b.wait().unwrap();
    let t0 = Instant::now();
    b.wait().unwrap();
    let rate = (procs * per) as f64 / t0.elapsed().as_secs_f64();
    for k in kids {
        k.join().unwrap();
    }
    rate
}

fn start_to_first_call() -> f64 {
    let t0 = Instant::now();
    let m = Manager::start().unwrap();
    m.list::<u8>().unwrap().append(1).unwrap();
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    m.shutdown().unwrap();
    ms
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let reps = if quick { 3 } else { 7 };
    let iters = if quick { 5_000 } else { 20_000 };
    println!("cpus: {}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));

    let raw = median((0..reps).map(|_| raw_round_trip(iters)).collect());
    let m = Manager::start().unwrap();
    let get = median((0..reps).map(|_| dict_get_round_trip(&m, iters)).collect());
    let one = median((0..reps).map(|_| append_rate(&m, iters)).collect());
    let four = median((0..reps).map(|_| append_rate_procs(&m, 4, iters / 4)).collect());
    drop(m);
    // Warm the start method's server (the forkserver) first, as a program that started one
    // process already would have.
    start_to_first_call();
    let start = median((0..reps).map(|_| start_to_first_call()).collect());

    println!("raw socketpair round trip      {raw:8.2} µs");
    println!("dict get round trip            {get:8.2} µs  ({:.2}x raw)", get / raw);
    println!("list append, 1 client          {:8.0} ops/s", one);
    println!("list append, 4 client procs    {:8.0} ops/s  ({:.2}x one client)", four, four / one);
    println!("Manager::start -> first call   {start:8.2} ms");
    std::thread::sleep(Duration::from_millis(10));
}
