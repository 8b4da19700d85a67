//! `bench-runner`: the benchmark harness of multiproc (`cargo xtask bench`).
//!
//! Every figure is measured in a fresh process — the multiproc side by this same binary
//! (`bench-runner case NAME`), the CPython side by `benches/python/bench.py NAME`, the hardware
//! floors by raw libc calls here too, the Rust peers (iceoryx2, ipc-channel, crossbeam-channel,
//! procspawn, a robust pthread mutex, a thread pool) by `bench-runner peer CASE NAME` — round-robin over at least five repetitions with the
//! sides alternating, and reported as medians: a table on stdout and `target/bench/report.json`,
//! `report.md` and `report.svg`. See `benches/README.md`.

mod cases;
mod peers;
mod report;
mod runner;
mod sys;

use std::process::ExitCode;

fn main() -> ExitCode {
    // A process started by procspawn (a peer) runs its function here and exits.
    peers::init();
    // The `cluster.*` cases re-run this binary as their worker host.
    #[cfg(feature = "cluster")]
    multiproc_cluster::run_worker_if_requested();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        // The posix_spawn floor's child: exits at once.
        Some("noop") => ExitCode::SUCCESS,
        Some("case") => runner::case_main(&args[1..]),
        Some("peer") => runner::peer_main(&args[1..]),
        _ => runner::main(&args),
    }
}
