//! Project automation, run as `cargo xtask <command>` (std only).
//!
//! - `ci`: fmt --check, clippy -D warnings, tests, docs -D warnings, loom — what `.ci/run` does.
//! - `loom [-p CRATE]`: the loom models (`--cfg multiproc_loom`, release + debug assertions).
//! - `tidy`: hygiene checks (also run by `cargo test -p xtask`).
//! - `bench [--quick] [CASE…]`: the benchmark harness (see `benches/`), built with its `peers`
//!   feature (iceoryx2, ipc-channel, procspawn), which the workspace's tests leave out.
//! - `soak --minutes N`: the chaos soak of `tests/` (package `multiproc-tests`).
//! - `fuzz [--cases N]`: every package's hostile-input tests (`tests/hostile.rs`), release
//!   mode, with `MULTIPROC_FUZZ_CASES=N` (default 1,000,000).

mod tidy;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => ("help", &[][..]),
    };
    let res = match cmd {
        "ci" => ci(),
        "loom" => loom(rest),
        "tidy" => tidy::run(&root()).map_err(|v| v.join("\n")),
        "bench" => bench(rest),
        "soak" => soak(rest),
        "fuzz" => fuzz(rest),
        _ => {
            eprintln!("usage: cargo xtask <ci | loom [-p CRATE] | tidy | bench [--quick] [--cluster] [CASE...] | soak --minutes N | fuzz [--cases N]>");
            return ExitCode::from(2);
        }
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace this xtask works on: the nearest directory above the current one whose
/// `Cargo.toml` is this workspace's (it has an `xtask` member), so that an xtask binary built
/// in one checkout and run from another (a shared target directory) works on the checkout it
/// is run in; else the checkout it was built in.
pub(crate) fn root() -> PathBuf {
    let built_in = || -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").into()
    };
    let Ok(mut dir) = std::env::current_dir() else { return built_in() };
    loop {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
        if manifest.contains("[workspace]") && dir.join("xtask/Cargo.toml").is_file() {
            return dir;
        }
        if !dir.pop() {
            return built_in();
        }
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("$ {cmd:?}");
    let st = cmd.current_dir(root()).status().map_err(|e| format!("{cmd:?}: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {st}"))
    }
}

fn cargo() -> Command {
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn ci() -> Result<(), String> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    run(cargo().args(["test", "--workspace"]))?;
    run(cargo().args(["doc", "--workspace", "--no-deps"]).env("RUSTDOCFLAGS", "-D warnings"))?;
    tidy::run(&root()).map_err(|v| v.join("\n"))?;
    loom(&[])
}

/// Member crates that have the test `name` (`crates/<crate>/tests/<name>.rs`), sorted.
fn crates_with_test(name: &str) -> Vec<String> {
    let test = format!("tests/{name}.rs");
    let mut v: Vec<String> = std::fs::read_dir(root().join("crates"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join(&test).exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn loom(args: &[String]) -> Result<(), String> {
    let crates = match args {
        // Crates that have loom models.
        [] => crates_with_test("loom"),
        [p, name] if p == "-p" => vec![name.clone()],
        _ => return Err("usage: cargo xtask loom [-p CRATE]".into()),
    };
    for krate in crates {
        let preemptions = env::var("LOOM_MAX_PREEMPTIONS").unwrap_or_else(|_| "2".into());
        run(cargo()
            .args(["test", "--release", "-p", &krate, "--test", "loom"])
            .env("RUSTFLAGS", "--cfg multiproc_loom -C debug-assertions")
            .env("LOOM_MAX_PREEMPTIONS", preemptions)
            .env("CARGO_TARGET_DIR", root().join("target/loom")))?;
    }
    Ok(())
}

fn bench(args: &[String]) -> Result<(), String> {
    if !root().join("benches/Cargo.toml").exists() {
        return Err("the benchmark package (benches/) is not built yet".into());
    }
    // The heavy Rust peers are behind the `peers` feature, off in `cargo test --workspace`;
    // `--cluster` opts in to the cluster.* cases (they need redis-server).
    let cluster = args.iter().any(|a| a == "--cluster");
    let rest: Vec<&String> = args.iter().filter(|a| *a != "--cluster").collect();
    let mut c = cargo();
    c.args(["run", "--release", "-p", "multiproc-benches", "--bin", "bench-runner"]);
    c.args(["--features", if cluster { "peers,cluster" } else { "peers" }]);
    run(c.arg("--").args(rest))
}

fn soak(args: &[String]) -> Result<(), String> {
    if !root().join("tests/Cargo.toml").exists() {
        return Err("the end-to-end test package (tests/) is not built yet".into());
    }
    run(cargo()
        .args(["run", "--release", "-p", "multiproc-tests", "--bin", "soak", "--"])
        .args(args))
}

/// Packages with hostile-input tests (`tests/hostile.rs`): member crates, then `tests/`.
fn hostile_packages() -> Vec<String> {
    let mut v = crates_with_test("hostile");
    if root().join("tests/tests/hostile.rs").exists() {
        v.push("multiproc-tests".into());
    }
    v
}

fn fuzz(args: &[String]) -> Result<(), String> {
    let cases: u64 = match args {
        [] => 1_000_000,
        [flag, n] if flag == "--cases" => {
            n.parse().map_err(|_| format!("--cases wants a number, not {n:?}"))?
        }
        _ => return Err("usage: cargo xtask fuzz [--cases N]".into()),
    };
    let t0 = std::time::Instant::now();
    let packages = hostile_packages();
    for p in &packages {
        let t = std::time::Instant::now();
        run(cargo()
            .args(["test", "--release", "-p", p, "--test", "hostile", "--"])
            .args(["--include-ignored", "--nocapture"])
            .env("MULTIPROC_FUZZ_CASES", cases.to_string()))?;
        eprintln!("fuzz: {p}: {:.1} s", t.elapsed().as_secs_f64());
    }
    eprintln!(
        "fuzz: MULTIPROC_FUZZ_CASES={cases}: {} packages ({}) passed in {:.1} s",
        packages.len(),
        packages.join(", "),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
