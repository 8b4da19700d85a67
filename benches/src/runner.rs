//! The runner: picks the cases, measures every figure in a fresh process (multiproc side,
//! CPython side, floors) round-robin over the repetitions, takes medians and writes the report.

use crate::cases::{self, Case, Floor, Opts, Scale};
use crate::peers::{self, Peer};
use crate::report::{self, Figure, Machine, Row};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: bench-runner [--quick] [--reps N] [--no-python] [--no-peers] [--skip-absent] [--out DIR]
                    [CASE...]
       bench-runner --list | --list-peers
       bench-runner case NAME [--quick|--smoke]        (one figure of the multiproc side)
       bench-runner peer CASE PEER [--quick|--smoke]   (one figure of a Rust peer)

CASE is a case name or a prefix (`queue.`, `lock`); the floors the chosen cases are read
against are measured too. Default: everything, 5 repetitions (--quick: 3, less work each).";

/// `bench-runner case NAME [--quick|--smoke]`: measures one figure in this process and prints
/// it on stdout.
pub(crate) fn case_main(args: &[String]) -> ExitCode {
    let Some(name) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let scale = scale_of(&args[1..]);
    let Some(case) = cases::find(name) else {
        eprintln!("no case named {name:?} (see bench-runner --list)");
        return ExitCode::from(2);
    };
    let Some(run) = case.rust else {
        eprintln!("{name}: the multiproc side is not written yet (its crate has not landed)");
        return ExitCode::from(2);
    };
    let v = run(&Opts { scale });
    if !(v.is_finite() && v > 0.0) {
        eprintln!("{name}: measured {v}, not a positive number");
        return ExitCode::FAILURE;
    }
    println!("{v}");
    ExitCode::SUCCESS
}

/// `bench-runner peer CASE PEER [--quick|--smoke]`: measures one peer figure in this process
/// and prints it on stdout.
pub(crate) fn peer_main(args: &[String]) -> ExitCode {
    let (Some(case), Some(name)) = (args.first(), args.get(1)) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let Some(peer) = peers::find(case, name) else {
        eprintln!("no peer {name:?} of {case:?} in this build (see bench-runner --list-peers)");
        return ExitCode::from(2);
    };
    let v = (peer.run)(&Opts { scale: scale_of(&args[2..]) });
    if !(v.is_finite() && v > 0.0) {
        eprintln!("{case} {name}: measured {v}, not a positive number");
        return ExitCode::FAILURE;
    }
    println!("{v}");
    ExitCode::SUCCESS
}

fn scale_of(flags: &[String]) -> Scale {
    if flags.iter().any(|f| f == "--smoke") {
        Scale::Smoke
    } else if flags.iter().any(|f| f == "--quick") {
        Scale::Quick
    } else {
        Scale::Full
    }
}

#[derive(Debug)]
struct Cli {
    scale: Scale,
    reps: usize,
    python: bool,
    peers: bool,
    skip_absent: bool,
    list: bool,
    list_peers: bool,
    out: Option<PathBuf>,
    filters: Vec<String>,
}

fn parse(args: &[String]) -> Result<Cli, String> {
    let mut cli = Cli {
        scale: Scale::Full,
        reps: 0,
        python: true,
        peers: true,
        skip_absent: false,
        list: false,
        list_peers: false,
        out: None,
        filters: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => cli.scale = Scale::Quick,
            "--smoke" => cli.scale = Scale::Smoke,
            "--no-python" => cli.python = false,
            "--no-peers" => cli.peers = false,
            "--list-peers" => cli.list_peers = true,
            "--skip-absent" => cli.skip_absent = true,
            "--list" => cli.list = true,
            "--reps" => {
                let n = it.next().and_then(|s| s.parse().ok()).filter(|&n| n > 0);
                cli.reps = n.ok_or("--reps takes a positive number")?;
            }
            "--out" => cli.out = Some(it.next().ok_or("--out takes a directory")?.into()),
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => cli.filters.push(s.to_string()),
        }
    }
    if cli.reps == 0 {
        cli.reps = if cli.scale == Scale::Full { 5 } else { 3 };
    }
    Ok(cli)
}

/// The workspace root (benches/ is one level down): from `CARGO_MANIFEST_DIR`, as `cargo run`
/// sets it, else as it was when this binary was built.
pub(crate) fn root() -> PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|d| d.join("python/bench.py").exists())
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    dir.parent().map_or_else(|| dir.clone(), Path::to_path_buf)
}

/// The cases matching `filters` (all when empty), plus the floors they are read against, in
/// catalogue order.
fn select(filters: &[String]) -> Result<Vec<&'static Case>, String> {
    let all = cases::all();
    let matches = |c: &Case, f: &str| c.name == f || c.name.starts_with(f);
    for f in filters {
        if !all.iter().any(|c| matches(c, f)) {
            return Err(format!("no case matches {f:?} (see bench-runner --list)"));
        }
    }
    let mut chosen: Vec<&str> = all
        .iter()
        .filter(|c| filters.is_empty() || filters.iter().any(|f| matches(c, f)))
        .map(|c| c.name)
        .collect();
    let floors: Vec<&str> = all
        .iter()
        .filter(|c| chosen.contains(&c.name))
        .filter_map(|c| match c.floor {
            Floor::Case(f) => Some(f),
            _ => None,
        })
        .collect();
    chosen.extend(floors);
    Ok(all.into_iter().filter(|c| chosen.contains(&c.name)).collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Multiproc,
    Python,
    /// The peer at this index of the run's peer list.
    Peer(usize),
}

/// The CPython interpreter: `$PYTHON` or `python3`, with its version, if it runs and has
/// multiprocessing.
fn find_python() -> Option<(String, String)> {
    let exe = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&exe)
        .args(["-c", "import multiprocessing, sys; print(sys.version.split()[0])"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some((exe, String::from_utf8_lossy(&out.stdout).trim().to_string()))
}

/// The whole run: `bench-runner [OPTIONS] [CASE...]`.
pub(crate) fn main(args: &[String]) -> ExitCode {
    let cli = match parse(args) {
        Ok(c) => c,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("bench-runner: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if cli.list {
        for c in cases::all() {
            let side = match (c.rust.is_some(), c.python) {
                (true, true) => "multiproc+CPython",
                (true, false) => "floor",
                (false, true) => "CPython only (crate not landed)",
                (false, false) => "-",
            };
            println!("{:<32} {:<7} {:<32} {}", c.name, c.unit, side, c.about);
        }
        return ExitCode::SUCCESS;
    }
    if cli.list_peers {
        for p in peers::all() {
            println!("{:<32} {:<18} {}", p.case, p.name, p.about);
        }
        if !peers::heavy_built() {
            println!("(not built: {}; build with --features peers)", peers::HEAVY.join(", "));
        }
        return ExitCode::SUCCESS;
    }
    let chosen = match select(&cli.filters) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench-runner: {e}");
            return ExitCode::from(2);
        }
    };
    let root = root();
    let out_dir = cli.out.clone().unwrap_or_else(|| root.join("target/bench"));
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        eprintln!("bench-runner: cannot create {}: {e}", out_dir.display());
        return ExitCode::FAILURE;
    }
    let bench_py = root.join("benches/python/bench.py");
    let python = if cli.python { find_python() } else { None };
    let mut notes = Vec::new();
    match (&python, cli.python) {
        (None, true) => notes.push(
            "python3 (with multiprocessing) was not found: the CPython column is empty.".into(),
        ),
        (None, false) => notes.push("--no-python: the CPython side was not measured.".into()),
        _ => {}
    }

    let measurable =
        |c: &Case| c.rust.is_some() || (c.python && python.is_some() && !cli.skip_absent);
    let dropped: Vec<&str> =
        chosen.iter().filter(|c| !c.is_floor() && !measurable(c)).map(|c| c.name).collect();
    // A floor comes along only for a case that is measured (or when asked for by name).
    let rows: Vec<&Case> = chosen
        .iter()
        .copied()
        .filter(|c| {
            if !c.is_floor() {
                return measurable(c);
            }
            cli.filters.is_empty()
                || cli.filters.iter().any(|f| c.name.starts_with(f.as_str()))
                || chosen.iter().any(|k| {
                    !dropped.contains(&k.name) && !k.is_floor() && k.floor == Floor::Case(c.name)
                })
        })
        .collect();
    if !dropped.is_empty() {
        notes.push(format!(
            "Left out, no multiproc side yet (crate not landed): {}.",
            dropped.join(", ")
        ));
    }
    // The peers of the measured cases (a peer is read against the multiproc figure).
    let peer_list: Vec<&Peer> = if cli.peers {
        rows.iter().filter(|c| c.rust.is_some()).flat_map(|c| peers::of(c.name)).collect()
    } else {
        Vec::new()
    };
    if !cli.peers {
        notes.push("--no-peers: the Rust peers were not measured.".into());
    } else if !peers::heavy_built() {
        notes.push(format!(
            "This bench-runner was built without the `peers` feature: {} were not measured \
             (`cargo xtask bench` builds with it).",
            peers::HEAVY.join(", ")
        ));
    }
    let mut items: Vec<(usize, Side)> = Vec::new();
    for (i, c) in rows.iter().enumerate() {
        if c.rust.is_some() {
            items.push((i, Side::Multiproc));
        }
        if c.python && python.is_some() {
            items.push((i, Side::Python));
        }
        for (k, p) in peer_list.iter().enumerate() {
            if p.case == c.name {
                items.push((i, Side::Peer(k)));
            }
        }
    }
    let exe = std::env::current_exe().expect("current_exe");
    let scale_flag = match cli.scale {
        Scale::Full => None,
        Scale::Quick => Some("--quick"),
        Scale::Smoke => Some("--smoke"),
    };
    let timeout = Duration::from_secs(if cli.scale == Scale::Full { 300 } else { 120 });
    let (out_path, err_path) = (out_dir.join("last-stdout.txt"), out_dir.join("last-stderr.txt"));

    let machine = Machine::detect(python.as_ref().map(|p| p.1.clone()), cli.scale, cli.reps);
    let started = Instant::now();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); items.len()];
    let mut errors: Vec<Option<String>> = vec![None; items.len()];
    eprintln!(
        "bench-runner: {} figures × {} repetitions ({:?}), CPython {}",
        items.len(),
        cli.reps,
        cli.scale,
        python.as_ref().map_or("not measured", |p| p.1.as_str())
    );
    let mut max_load = load_average();
    for rep in 0..cli.reps {
        max_load = max_load.max(load_average());
        // Round-robin over every figure, reversed on odd repetitions: the two sides of a case
        // alternate in order, and drift over the run reaches every figure alike.
        let mut order: Vec<usize> = (0..items.len()).collect();
        if rep % 2 == 1 {
            order.reverse();
        }
        for k in order {
            if errors[k].is_some() {
                continue;
            }
            let (row, side) = items[k];
            let case = rows[row];
            let mut cmd = match side {
                Side::Multiproc => {
                    let mut c = Command::new(&exe);
                    c.args(["case", case.name]);
                    c
                }
                Side::Python => {
                    let mut c = Command::new(&python.as_ref().expect("python").0);
                    c.arg(&bench_py).arg(case.name).env("PYTHONDONTWRITEBYTECODE", "1");
                    c
                }
                Side::Peer(p) => {
                    let mut c = Command::new(&exe);
                    c.args(["peer", case.name, peer_list[p].name]);
                    c
                }
            };
            cmd.args(scale_flag);
            let t = Instant::now();
            let res = measure(&mut cmd, timeout, &out_path, &err_path);
            let who = match side {
                Side::Multiproc => "multiproc",
                Side::Python => "CPython",
                Side::Peer(p) => peer_list[p].name,
            };
            match res {
                Ok(v) => {
                    eprintln!(
                        "[{}/{}] {:<32} {:<17} {:>12} {:<7} ({:.1} s)",
                        rep + 1,
                        cli.reps,
                        case.name,
                        who,
                        report::fmt_num(v),
                        case.unit,
                        t.elapsed().as_secs_f64()
                    );
                    samples[k].push(v);
                }
                Err(e) => {
                    eprintln!("[{}/{}] {} {who}: FAILED: {e}", rep + 1, cli.reps, case.name);
                    errors[k] = Some(e);
                }
            }
        }
    }
    max_load = max_load.max(load_average());
    eprintln!("bench-runner: measured in {:.0} s", started.elapsed().as_secs_f64());
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);

    let figure = |row: usize, side: Side| -> Figure {
        match items.iter().position(|&it| it == (row, side)) {
            None => Figure::Absent,
            Some(k) => match &errors[k] {
                Some(e) => Figure::Failed(e.clone()),
                None => Figure::Value(median(&mut samples[k].clone())),
            },
        }
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The run itself keeps up to two processes busy; more than that on top of the CPUs means
    // other work competed for them.
    if max_load > cpus as f64 + 2.0 {
        notes.push(format!(
            "The machine was busy during this run (1-minute load average up to {max_load:.1} on \
             {cpus} CPUs): figures of processes that spin or contend (rtt_active, rings, \
             *_2proc) suffer most; compare ratios, or rerun on a quiet machine."
        ));
    }
    let mut out_rows: Vec<Row> = Vec::new();
    for (i, c) in rows.iter().enumerate() {
        let python_fig = if c.is_floor() || !c.python {
            Figure::Absent
        } else if python.is_none() {
            Figure::Unavailable
        } else {
            figure(i, Side::Python)
        };
        let floor = match c.floor {
            Floor::None => None,
            Floor::Case(f) => rows
                .iter()
                .position(|r| r.name == f)
                .and_then(|j| figure(j, Side::Multiproc).value()),
            Floor::Parallel(w) => Some(w.min(cpus as u32) as f64),
        };
        let peer_figs = peer_list
            .iter()
            .enumerate()
            .filter(|(_, p)| p.case == c.name)
            .map(|(k, p)| (p.name, figure(i, Side::Peer(k))))
            .collect();
        out_rows.push(Row {
            case: c,
            multiproc: figure(i, Side::Multiproc),
            python: python_fig,
            floor,
            peers: peer_figs,
        });
    }
    let failed: Vec<String> = out_rows
        .iter()
        .flat_map(|r| {
            [(&r.multiproc, "multiproc"), (&r.python, "CPython")]
                .into_iter()
                .chain(r.peers.iter().map(|(n, f)| (f, *n)))
                .filter_map(move |(f, who)| match f {
                    Figure::Failed(e) => Some(format!("{} ({who}): {e}", r.case.name)),
                    _ => None,
                })
        })
        .collect();
    if rows.iter().any(|c| c.rust.is_none()) {
        notes.push(
            "\"not yet\": the crate behind this case has not landed; only CPython was measured."
                .into(),
        );
    }

    let table = report::table(&out_rows);
    println!("{table}");
    for n in &notes {
        println!("note: {n}");
    }
    for f in &failed {
        println!("FAILED: {f}");
    }
    let files = [
        ("report.json", report::json(&out_rows)),
        ("report.md", report::markdown(&out_rows, &machine, &notes)),
        ("report.svg", report::svg(&out_rows, &machine)),
    ];
    for (name, text) in files {
        let p = out_dir.join(name);
        if let Err(e) = std::fs::write(&p, text) {
            eprintln!("bench-runner: writing {}: {e}", p.display());
            return ExitCode::FAILURE;
        }
    }
    println!("report: {}/report.{{json,md,svg}}", out_dir.display());
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs one measurement process (its own process group, killed whole on timeout); its last
/// stdout line is the figure.
fn measure(
    cmd: &mut Command,
    timeout: Duration,
    out_path: &Path,
    err_path: &Path,
) -> Result<f64, String> {
    use std::os::unix::process::CommandExt;
    let out = File::create(out_path).map_err(|e| e.to_string())?;
    let err = File::create(err_path).map_err(|e| e.to_string())?;
    let mut child = cmd
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(st) => break st,
            None if Instant::now() >= deadline => {
                let _ = crate::sys::kill(-(child.id() as i32), libc::SIGKILL);
                let _ = child.wait();
                return Err(format!("timed out after {} s", timeout.as_secs()));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let stdout = std::fs::read_to_string(out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(err_path).unwrap_or_default();
    let tail = |s: &str| {
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n    ")
    };
    if !status.success() {
        return Err(format!("{status}\n    {}", tail(&stderr)));
    }
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    match last.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("printed {last:?}, not a positive number\n    {}", tail(&stderr))),
    }
}

/// The 1-minute load average (0 if unknown).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// The median (mean of the middle two for an even count).
pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn selection_adds_floors_and_keeps_order() {
        let s: Vec<&str> = select(&["shm.".into()]).unwrap().iter().map(|c| c.name).collect();
        assert_eq!(
            s,
            [
                "shm.segment_lifecycle_4kib",
                "shm.write_64mib",
                "floor.memfd_first_touch_64mib",
                "floor.shm_lifecycle_4kib"
            ]
        );
        assert!(select(&["nope".into()]).is_err());
        assert_eq!(select(&[]).unwrap().len(), cases::all().len());
    }

    #[test]
    fn every_floor_named_exists_with_the_same_unit() {
        for c in cases::all() {
            if let Floor::Case(f) = c.floor {
                let fc = cases::find(f).unwrap_or_else(|| panic!("{}: no floor {f}", c.name));
                assert!(fc.is_floor() && fc.rust.is_some(), "{f}");
                assert_eq!(fc.unit, c.unit, "{} vs {f}", c.name);
                assert_eq!(fc.better, c.better, "{} vs {f}", c.name);
            }
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = cases::all().iter().map(|c| c.name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len());
    }

    #[test]
    fn parses_options() {
        let a: Vec<String> = ["--quick", "queue.", "--reps", "4"].map(String::from).to_vec();
        let cli = parse(&a).unwrap();
        assert_eq!((cli.scale, cli.reps, cli.filters.as_slice()), (Scale::Quick, 4, &a[1..2]));
        assert_eq!(parse(&[]).unwrap().reps, 5);
        assert!(parse(&["--bogus".into()]).is_err());
    }
}
