//! Regression test for a fork racing other threads' *first* use of the crate (issue #4).
//!
//! `fork` copies the descriptor table before the memory, so a descriptor another thread
//! creates in between (the lifeline pipe of a first daemonic start, the reaper's socket pair,
//! the forkserver's control socket) is recorded in the child's memory without being open in
//! the child. The forked child used to close such recorded numbers blindly, which aborted it
//! ("IO Safety violation") or closed one of its own files. Each round runs in a fresh copy of
//! this test binary, so that every round is a first use.

use multiproc_spawn::{Process, StartMethod};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn echo(x: u64) -> u64 {
    x
}

fn start_and_join(m: StartMethod, daemon: bool, x: u64) {
    let mut h = Process::builder()
        .start_method(m)
        .daemon(daemon)
        .target(echo, x)
        .start()
        .unwrap_or_else(|e| panic!("{m:?} start: {e}"));
    let got = h
        .join_timeout(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{m:?} join (a timeout: still running after 20 s): {e}"));
    assert_eq!(got, x, "{m:?}");
}

/// One round, run by `first_use_races_fork` in a fresh process: the first fork, the first
/// daemonic spawn (lifeline) and the first forkserver start, released together.
#[test]
#[ignore = "run in fresh processes by first_use_races_fork"]
fn first_use_round() {
    let go = Arc::new(Barrier::new(4));
    let threads: Vec<_> = [
        (StartMethod::Fork, false),
        (StartMethod::Fork, false),
        (StartMethod::Spawn, true),
        (StartMethod::Forkserver, true),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (m, daemon))| {
        let go = go.clone();
        std::thread::spawn(move || {
            go.wait();
            for k in 0..3 {
                start_and_join(m, daemon, (i * 10 + k) as u64);
            }
        })
    })
    .collect();
    for t in threads {
        t.join().expect("round thread panicked");
    }
}

#[test]
fn first_use_races_fork() {
    let exe = std::env::current_exe().expect("test binary path");
    for round in 0..12 {
        let mut child = Command::new(&exe)
            .args(["first_use_round", "--exact", "--ignored", "--test-threads=1", "--quiet"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("re-running the test binary");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("round {round} hung for 60 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if !status.success() {
            let out = child.wait_with_output().expect("output");
            panic!(
                "round {round} failed ({status}):\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
