//! Shared test helpers: child processes with bounded waits.
#![allow(dead_code, unreachable_pub)]

use multiproc_manager::EventProxy;
use multiproc_spawn::{JoinHandle, Process};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Every wait in these tests is bounded by this.
pub const LIMIT: Duration = Duration::from_secs(20);

/// Starts `f(args)` in a child process (the default start method: the arguments, proxies
/// included, are serialised and the child reconnects to the manager).
pub fn child<A, R>(f: fn(A) -> R, args: A) -> JoinHandle<R>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    Process::builder().daemon(true).target(f, args).start().expect("start child")
}

/// Starts `f((obj, ready))` in a child process and waits (within [`LIMIT`]) until the child
/// sets `ready`, cleared first: the child is then at the point the test needs.
pub fn child_ready<T, R>(f: fn((T, EventProxy)) -> R, obj: T, ready: &EventProxy) -> JoinHandle<R>
where
    T: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    ready.clear().expect("clear the ready event");
    let h = child(f, (obj, ready.clone()));
    assert!(ready.wait_timeout(LIMIT).is_ok(), "child {} not ready", h.pid());
    h
}

/// Joins within [`LIMIT`]; panics on a hang or a failure.
pub fn join<R: DeserializeOwned>(mut h: JoinHandle<R>) -> R {
    match h.join_timeout(LIMIT) {
        Ok(r) => r,
        Err(e) if !e.is_timeout() => panic!("child {} failed: {e}", h.pid()),
        Err(_) => {
            let _ = h.kill();
            panic!("child {} still running after {LIMIT:?}", h.pid())
        }
    }
}

/// Kills a child and reaps it.
pub fn kill<R: DeserializeOwned>(mut h: JoinHandle<R>) {
    h.kill().expect("kill");
    assert!(!h.join_timeout(LIMIT).is_err_and(|e| e.is_timeout()), "killed child not reaped");
}

/// Polls `cond` until it holds; panics after [`LIMIT`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < LIMIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Open descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// Kills a process by pid with SIGKILL (the test's own processes only).
/// Sends SIGINT (a Ctrl-C) to `pid`.
pub fn interrupt_pid(pid: u32) {
    let st = std::process::Command::new("kill").arg("-INT").arg(pid.to_string()).status();
    assert!(st.map(|s| s.success()).unwrap_or(false), "kill -INT {pid}");
}

pub fn kill_pid(pid: u32) {
    let st = std::process::Command::new("kill").arg("-9").arg(pid.to_string()).status();
    assert!(st.map(|s| s.success()).unwrap_or(false), "kill -9 {pid}");
}
