//! Start→join of a trivial target under each start method, beside the raw floors; the
//! forkserver from a parent holding 256 MiB of touched memory; 100 processes started then
//! joined; the RSS of idle children.
//!
//! `cargo run --release -p multiproc-spawn --example spawn_bench [-- --quick]`

mod sys;

use multiproc_arena::Array;
use multiproc_spawn::{Process, StartMethod};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

fn trivial(x: u32) -> u32 {
    x
}

fn idle(f: Array<AtomicU64>) {
    f[0].store(1, SeqCst);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

type Stats = (Duration, Duration, Duration);

fn median(mut v: Vec<Duration>) -> Stats {
    v.sort();
    let n = v.len();
    (v[n / 10], v[n / 2], v[n * 9 / 10])
}

fn measure(n: usize, mut f: impl FnMut()) -> Stats {
    for _ in 0..(n / 10).max(3) {
        f();
    }
    median(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

/// One line: p10, median, p90, and the ratios of the median and of the p10 to the floor's
/// (on a busy machine the p10 ratio is the steadier one).
fn row(what: &str, (p10, p50, p90): (Duration, Duration, Duration), floor: Option<Stats>) {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let ratio = floor.map_or(String::new(), |(f10, f50, _)| {
        format!("x{:.2} (p10 x{:.2})", us(p50) / us(f50), us(p10) / us(f10))
    });
    println!(
        "{what:<56} p10 {:>8.1} µs  median {:>8.1} µs  p90 {:>8.1} µs  {ratio}",
        us(p10),
        us(p50),
        us(p90)
    );
}

fn start_join(m: StartMethod) {
    let h = Process::builder().start_method(m).target(trivial, 7).start().unwrap();
    assert_eq!(h.join().unwrap(), 7);
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--exit-now") {
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 50 } else { 300 };
    let me = std::env::args().next().unwrap();

    println!("start→join of a trivial target ({n} runs each)");
    let fork_floor = measure(n, sys::fork_exit_wait);
    row("raw fork + _exit + waitpid (floor)", fork_floor, None);
    let spawn_floor = measure(n / 3, || sys::posix_spawn_wait(&[&me, "--exit-now"]));
    row("raw posix_spawn of this binary + waitpid (floor)", spawn_floor, None);
    row("fork", measure(n, || start_join(StartMethod::Fork)), Some(fork_floor));
    row("spawn", measure(n / 3, || start_join(StartMethod::Spawn)), Some(spawn_floor));
    row(
        "forkserver (vs the fork floor)",
        measure(n, || start_join(StartMethod::Forkserver)),
        Some(fork_floor),
    );

    println!("\nfrom a parent holding 256 MiB of touched memory");
    let mut ballast = vec![0u8; 256 << 20];
    for i in (0..ballast.len()).step_by(4096) {
        ballast[i] = i as u8;
    }
    row(
        "raw fork + _exit + waitpid, big parent",
        measure(n / 3, sys::fork_exit_wait),
        Some(fork_floor),
    );
    row("fork, big parent", measure(n / 3, || start_join(StartMethod::Fork)), Some(fork_floor));
    row("spawn, big parent", measure(n / 3, || start_join(StartMethod::Spawn)), Some(spawn_floor));
    row(
        "forkserver, big parent (vs the small-parent fork floor)",
        measure(n, || start_join(StartMethod::Forkserver)),
        Some(fork_floor),
    );
    std::hint::black_box(&ballast);
    drop(ballast);

    println!("\n100 processes: start all, then join all (median of 5)");
    for m in [StartMethod::Fork, StartMethod::Spawn, StartMethod::Forkserver] {
        let runs: Vec<Duration> = (0..5)
            .map(|_| {
                let t = Instant::now();
                let hs: Vec<_> = (0..100)
                    .map(|i| Process::builder().start_method(m).target(trivial, i).start().unwrap())
                    .collect();
                for (i, h) in hs.into_iter().enumerate() {
                    assert_eq!(h.join().unwrap(), i as u32);
                }
                t.elapsed()
            })
            .collect();
        let (lo, med, hi) = median(runs);
        println!(
            "{:<56} min {:>7.1} ms  median {:>7.1} ms  max {:>7.1} ms",
            m.name(),
            lo.as_secs_f64() * 1e3,
            med.as_secs_f64() * 1e3,
            hi.as_secs_f64() * 1e3
        );
    }

    println!("\nRSS of an idle child (VmRSS)");
    for m in [StartMethod::Fork, StartMethod::Spawn, StartMethod::Forkserver] {
        let f = Array::from_fn(1, |_| AtomicU64::new(0)).unwrap();
        let h = Process::builder()
            .daemon(true)
            .start_method(m)
            .target(idle, f.clone())
            .start()
            .unwrap();
        while f[0].load(SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(50));
        println!("{:<56} {:>7} KiB", m.name(), rss_kib(h.pid()));
        h.kill().unwrap();
        let _ = h.join();
    }
    if let Some(pid) = multiproc_spawn::forkserver_pid() {
        println!("{:<56} {:>7} KiB", "the forkserver itself", rss_kib(pid));
    }
    println!("{:<56} {:>7} KiB", "this parent", rss_kib(std::process::id()));
}
