//! `threads`: an in-process pool of 2 threads doing the `pool.*` cases' work (the in-process
//! limit for a pool: no process boundary, no serialisation).
//!
//! A minimal pool on std threads and a `crossbeam-channel` task channel: `map` hands out
//! chunks of the same size as the process pool's (1, or CPython's default
//! `ceil(n / (4 × workers))`), each chunk's results come back through a results channel and are
//! put in order; `submit` sends one boxed task and waits for its result on its own channel.

use super::Peer;
use crate::cases::pool::{cpu_piece, STEPS_PER_CPYTHON_STEP};
use crate::cases::{us_per, Opts};
use crossbeam_channel::{Receiver, Sender};
use std::hint::black_box;
use std::thread::JoinHandle;
use std::time::Instant;

pub(crate) const PEERS: &[Peer] = &[
    Peer {
        case: "pool.map_cs1",
        name: "threads",
        run: map_cs1,
        about: "2 threads, map of the identity over 100,000 items, chunks of 1: per task",
    },
    Peer {
        case: "pool.map_default_cs",
        name: "threads",
        run: map_default_cs,
        about: "2 threads, map over 1,000,000 items in CPython's default chunks",
    },
    Peer {
        case: "pool.submit",
        name: "threads",
        run: submit,
        about: "2 threads, submit + wait for the result, one task after another",
    },
    Peer {
        case: "pool.cpu_speedup",
        name: "threads",
        run: cpu_speedup,
        about: "the same 8 CPU-bound pieces on 2 threads: serial time / pool time",
    },
];

type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of worker threads taking jobs from one channel.
struct ThreadPool {
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl ThreadPool {
    fn new(n: usize) -> ThreadPool {
        let (tx, rx): (Sender<Job>, Receiver<Job>) = crossbeam_channel::unbounded();
        let workers = (0..n)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || rx.iter().for_each(|job| job()))
            })
            .collect();
        ThreadPool { jobs: Some(tx), workers }
    }

    fn execute(&self, job: impl FnOnce() + Send + 'static) {
        self.jobs.as_ref().expect("open").send(Box::new(job)).expect("send a job");
    }

    /// `f` over `0..n` in chunks of `chunksize`, results in order.
    fn map(&self, f: fn(u64) -> u64, n: u64, chunksize: u64) -> Vec<u64> {
        let (tx, rx) = crossbeam_channel::unbounded::<(u64, Vec<u64>)>();
        let chunks = n.div_ceil(chunksize);
        for c in 0..chunks {
            let tx = tx.clone();
            self.execute(move || {
                let (lo, hi) = (c * chunksize, ((c + 1) * chunksize).min(n));
                tx.send((c, (lo..hi).map(f).collect())).expect("send results");
            });
        }
        drop(tx);
        let mut parts: Vec<Option<Vec<u64>>> = vec![None; chunks as usize];
        for (c, part) in rx.iter().take(chunks as usize) {
            parts[c as usize] = Some(part);
        }
        parts.into_iter().flat_map(|p| p.expect("a chunk came back")).collect()
    }

    /// Runs `f(x)` on a worker and waits for its result.
    fn submit<T: Send + 'static>(&self, f: fn(T) -> T, x: T) -> T {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.execute(move || tx.send(f(x)).expect("send the result"));
        rx.recv().expect("the result")
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        drop(self.jobs.take());
        self.workers.drain(..).for_each(|w| w.join().expect("a worker panicked"));
    }
}

/// CPython's `noop_arg`.
fn identity(x: u64) -> u64 {
    x
}

fn timed_map(n: u64, chunksize: impl Fn(u64) -> u64) -> f64 {
    let pool = ThreadPool::new(2);
    pool.map(identity, 1000, chunksize(1000));
    let t = Instant::now();
    let r = pool.map(identity, n, chunksize(n));
    let d = t.elapsed();
    assert!(r.len() == n as usize && r[n as usize - 1] == n - 1, "wrong results");
    us_per(d, n)
}

fn map_cs1(o: &Opts) -> f64 {
    timed_map(o.iters(100_000, 20_000), |_| 1)
}

fn map_default_cs(o: &Opts) -> f64 {
    // CPython's (and multiproc's) default: ceil(n / (4 × workers)).
    timed_map(o.iters(1_000_000, 300_000), |n| n.div_ceil(4 * 2).max(1))
}

fn submit(o: &Opts) -> f64 {
    let n = o.iters(10_000, 3_000);
    let pool = ThreadPool::new(2);
    for i in 0..o.warm(n) {
        assert_eq!(pool.submit(identity, i), i);
    }
    let t = Instant::now();
    for i in 0..n {
        assert_eq!(pool.submit(identity, i), i);
    }
    us_per(t.elapsed(), n)
}

fn cpu_speedup(o: &Opts) -> f64 {
    let steps = o.iters(600_000, 250_000) * STEPS_PER_CPYTHON_STEP;
    let pool = ThreadPool::new(2);
    pool.map(identity, 100, 1);
    let t = Instant::now();
    let serial: Vec<u64> = (0..8).map(|k| cpu_piece(black_box((k, steps)))).collect();
    let ts = t.elapsed();
    let t = Instant::now();
    let (tx, rx) = crossbeam_channel::unbounded();
    for k in 0..8u64 {
        let tx = tx.clone();
        pool.execute(move || tx.send((k, cpu_piece((k, steps)))).expect("send"));
    }
    drop(tx);
    let mut par = vec![0u64; 8];
    for (k, v) in rx.iter().take(8) {
        par[k as usize] = v;
    }
    let tp = t.elapsed();
    assert_eq!(par, serial, "the threads computed something else");
    ts.as_secs_f64() / tp.as_secs_f64()
}
