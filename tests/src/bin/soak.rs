//! The chaos soak: `cargo xtask soak --minutes N` (or `--seconds N`, `--seed S`).
//!
//! Runs the chaos workload of `multiproc_tests::chaos` for the given time, checks hygiene
//! afterwards, prints the figures and exits non-zero on any invariant violation.

use multiproc_tests::{chaos, hygiene, short};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn usage() -> ExitCode {
    eprintln!("usage: soak [--minutes N | --seconds N] [--seed S]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut secs = 60.0f64;
    let mut seed = None;
    let mut i = 0;
    while i < args.len() {
        let val = args.get(i + 1).and_then(|v| v.parse::<f64>().ok());
        match (args[i].as_str(), val) {
            ("--minutes", Some(v)) if v > 0.0 => secs = v * 60.0,
            ("--seconds", Some(v)) if v > 0.0 => secs = v,
            ("--seed", Some(v)) => seed = Some(v as u64),
            _ => return usage(),
        }
        i += 2;
    }
    let duration = Duration::from_secs_f64(secs);
    // A watchdog: a hang is a failure, never a run that does not end.
    let limit = duration + Duration::from_secs(180);
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("soak: still running {} s after its end: a hang", limit.as_secs());
        std::process::exit(3);
    });
    let t0 = Instant::now();
    // A short warm-up (forkserver, lazily opened descriptors), then the descriptor baseline.
    let mut warm = chaos::Config::short(2);
    warm.progress = false;
    let warm_report = chaos::run(&warm);
    let fds_before = hygiene::open_fds();
    let mut cfg = chaos::Config::soak(duration);
    if let Some(s) = seed {
        cfg.seed = s;
    }
    eprintln!("soak: running for {:.0} s (seed {:#x})", duration.as_secs_f64(), cfg.seed);
    let mut report = chaos::run(&cfg);
    // Then the machine runs short for a while (a tenth of the run, 5 to 60 s).
    let short_for = (duration / 10).clamp(Duration::from_secs(5), Duration::from_secs(60));
    eprintln!("soak: machine short for {:.0} s", short_for.as_secs_f64());
    let short_report = short::run(short_for, cfg.seed);
    report.violations.extend(warm_report.violations);
    let mut pids = report.pids.clone();
    pids.extend(&warm_report.pids);
    let problems = hygiene::leftovers(Some(fds_before), 2, &pids);
    println!("{report}");
    println!("{short_report}");
    println!(
        "  hygiene:              {} problems (descriptors {} before, {} after; zombies, \
         children, /dev/shm, socket files checked)",
        problems.len(),
        fds_before,
        hygiene::open_fds()
    );
    for p in &problems {
        println!("    - {p}");
    }
    println!("  wall time:            {:.1} s", t0.elapsed().as_secs_f64());
    if report.violations.is_empty() && problems.is_empty() && short_report.violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
