//! Every case runs: each multiproc-side and floor figure with `--smoke` (a handful of
//! iterations), each Rust peer built into this binary likewise, each CPython counterpart
//! likewise when python3 is available, and whole runner passes (the `shm.` cases; a case with a
//! peer, with and without `--no-peers`) writing a report into a scratch directory.

use std::path::{Path, PathBuf};
use std::process::Command;

const RUNNER: &str = env!("CARGO_BIN_EXE_bench-runner");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().into()
}

fn list() -> Vec<(String, String)> {
    let out = Command::new(RUNNER).arg("--list").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next().unwrap().to_string();
            let _unit = w.next();
            (name, w.next().unwrap().to_string())
        })
        .collect()
}

fn number(out: &std::process::Output, what: &str) -> f64 {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    let v: f64 = s.trim().parse().unwrap_or_else(|_| panic!("{what} printed {s:?}"));
    assert!(v.is_finite() && v > 0.0, "{what}: {v}");
    v
}

fn python() -> Option<String> {
    let exe = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&exe)
        .args(["-c", "import multiprocessing"])
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(exe)
}

#[test]
fn every_multiproc_case_and_floor_runs() {
    for (name, side) in list() {
        if side == "CPython" {
            continue; // not written yet (crate not landed)
        }
        let out = Command::new(RUNNER).args(["case", &name, "--smoke"]).output().unwrap();
        number(&out, &name);
    }
}

#[test]
fn every_peer_runs() {
    let out = Command::new(RUNNER).arg("--list-peers").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let names = ["iceoryx2", "ipc-channel", "crossbeam-channel", "procspawn", "pthread-robust"];
    let mut seen = 0;
    for line in text.lines().filter(|l| !l.starts_with('(')) {
        let mut w = line.split_whitespace();
        let (case, peer) = (w.next().unwrap(), w.next().unwrap());
        assert!(names.contains(&peer) || peer == "threads", "{line}");
        let out = Command::new(RUNNER).args(["peer", case, peer, "--smoke"]).output().unwrap();
        number(&out, &format!("{case} {peer}"));
        seen += 1;
    }
    assert!(seen >= 8, "{text}");
}

#[test]
fn a_run_reports_the_peers_and_no_peers_skips_them() {
    for (flag, expect) in [(None, true), (Some("--no-peers"), false)] {
        let dir =
            std::env::temp_dir().join(format!("mpbench-peers-{}-{}", std::process::id(), expect));
        let out = Command::new(RUNNER)
            .args(["--smoke", "--reps", "1", "--no-python", "--out"])
            .arg(&dir)
            .args(flag)
            .arg("lock.uncontended")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let json = std::fs::read_to_string(dir.join("report.json")).unwrap();
        let line = json.lines().find(|l| l.contains("\"lock.uncontended\"")).unwrap();
        assert_eq!(line.contains("\"peers\": {\"pthread-robust\": "), expect, "{line}");
        assert_eq!(line.contains("\"peers\": {}"), !expect, "{line}");
        let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
        assert!(md.contains("Rust peers (multiproc÷peer)"), "{md}");
        assert_eq!(md.contains("pthread-robust "), expect, "{md}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn every_python_counterpart_runs() {
    let Some(py) = python() else {
        eprintln!("python3 not found: skipped");
        return;
    };
    let script = root().join("benches/python/bench.py");
    let out = Command::new(&py).arg(&script).arg("--list").output().unwrap();
    let py_cases: Vec<String> =
        String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect();
    for (name, side) in list() {
        let expected = side != "floor";
        assert_eq!(py_cases.contains(&name), expected, "{name}: bench.py and the catalogue");
        if expected {
            let out = Command::new(&py)
                .arg(&script)
                .args([&name, "--smoke"])
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .output()
                .unwrap();
            number(&out, &format!("bench.py {name}"));
        }
    }
}

#[test]
fn a_whole_run_writes_the_report() {
    let dir = std::env::temp_dir().join(format!("mpbench-smoke-{}", std::process::id()));
    let out = Command::new(RUNNER)
        .args(["--smoke", "--reps", "1", "--out"])
        .arg(&dir)
        .arg("shm.")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("shm.write_64mib") && table.contains("floor.memfd_first_touch_64mib"),
        "{table}"
    );
    let json = std::fs::read_to_string(dir.join("report.json")).unwrap();
    assert!(json.starts_with("[\n  {\"case\": \"shm.segment_lifecycle_4kib\", \"unit\": \"µs\""));
    assert_eq!(json.matches("\"case\"").count(), 4, "{json}");
    for obj in json.lines().filter(|l| l.contains("\"case\"")) {
        let keys: Vec<&str> =
            obj.split("\": ").map(|part| part.rsplit('"').next().unwrap()).collect();
        let keys = &keys[..keys.len() - 1]; // the last piece is a value, not a key
        assert_eq!(
            keys,
            ["case", "unit", "better", "multiproc", "python", "floor", "peers"],
            "{obj}"
        );
        assert!(obj.ends_with("\"peers\": {}},") || obj.ends_with("\"peers\": {}}"), "{obj}");
    }
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("| case | unit | multiproc | CPython | floor |"), "{md}");
    let svg = std::fs::read_to_string(dir.join("report.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    std::fs::remove_dir_all(&dir).unwrap();
}
