//! Helpers shared by the test binaries.
#![allow(dead_code)]

use multiproc_arena::Array;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Generates one `#[test]` per start method: `name::fork`, `name::spawn`, `name::forkserver`.
#[macro_export]
macro_rules! per_method {
    ($(#[$attr:meta])* fn $name:ident($m:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn run($m: multiproc_spawn::StartMethod) $body
            #[test]
            $(#[$attr])*
            fn fork() {
                run(multiproc_spawn::StartMethod::Fork)
            }
            #[test]
            $(#[$attr])*
            fn spawn() {
                run(multiproc_spawn::StartMethod::Spawn)
            }
            #[test]
            $(#[$attr])*
            fn forkserver() {
                run(multiproc_spawn::StartMethod::Forkserver)
            }
        }
    };
}

/// `n` shared counters (inherited under fork, passed by handle transfer otherwise).
pub(crate) fn flags(n: usize) -> Array<AtomicU64> {
    Array::from_fn(n, |_| AtomicU64::new(0)).expect("arena")
}

/// Polls `cond` every millisecond until it holds or `timeout` passes.
pub(crate) fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until counter `i` is non-zero; returns it.
pub(crate) fn wait_flag(f: &Array<AtomicU64>, i: usize, timeout: Duration) -> u64 {
    assert!(
        wait_until(timeout, || f[i].load(Ordering::SeqCst) != 0),
        "flag {i} not set within {timeout:?}"
    );
    f[i].load(Ordering::SeqCst)
}

/// Open descriptors of this process.
pub(crate) fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// Whether `fd` is open in this process.
pub(crate) fn fd_open(fd: i32) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok()
}

/// The state letter of `pid` (`Z` for a zombie), or `None` if there is no such process.
pub(crate) fn proc_state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = s.rfind(')')?;
    s[close + 2..].chars().next()
}

/// The parent pid of `pid`.
pub(crate) fn ppid_of(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = s.rfind(')')?;
    s[close + 2..].split_whitespace().nth(1)?.parse().ok()
}

/// The pids of this process's children that are zombies.
pub(crate) fn zombie_children() -> Vec<u32> {
    let me = std::process::id();
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if ppid_of(pid) == Some(me) && proc_state(pid) == Some('Z') {
            v.push(pid);
        }
    }
    v
}

pub(crate) const LONG: Duration = Duration::from_secs(10);

/// Time the calling thread has spent runnable but waiting for a CPU (from
/// `/proc/thread-self/schedstat`): subtracted from timing checks so that a machine starved
/// by other work does not fail a check of this crate's own delays.
pub(crate) fn runqueue_wait() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// Runs `f`, returning its wall time and that time minus the thread's run-queue wait.
pub(crate) fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let w0 = runqueue_wait();
    let t0 = Instant::now();
    let v = f();
    let wall = t0.elapsed();
    (v, wall, wall.saturating_sub(runqueue_wait().saturating_sub(w0)))
}
