//! Resource hygiene: open descriptors, zombie children, named segments and socket files of
//! ours. Used after the chaos runs (test and soak) and by the hygiene test binary.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Open descriptors of this process (`/proc/self/fd`).
pub fn open_fds() -> usize {
    // The directory handle itself is one entry while it is read.
    std::fs::read_dir("/proc/self/fd").map(|d| d.count().saturating_sub(1)).unwrap_or(0)
}

/// What each open descriptor is (`readlink /proc/self/fd/N`), for a failure message.
pub fn fd_listing() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let target = std::fs::read_link(e.path())
                        .map(|t| t.display().to_string())
                        .unwrap_or_else(|_| "?".into());
                    format!("{} -> {target}", e.file_name().to_string_lossy())
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `(pid, parent pid, state, name)` of every process, from `/proc/<pid>/stat`.
pub fn processes() -> Vec<(u32, u32, char, String)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else { return out };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // "pid (comm) S ppid ..." — comm may hold spaces and parentheses: split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = stat[open + 1..close].to_string();
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = rest.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        out.push((pid, ppid, state, name));
    }
    out
}

/// Children of this process that are zombies (ended, not reaped).
pub fn zombie_children() -> Vec<u32> {
    let me = std::process::id();
    processes().into_iter().filter(|p| p.1 == me && p.2 == 'Z').map(|p| p.0).collect()
}

/// A process the test harness started or watches, by pid and start time (read from
/// `/proc` in the harness's own PID namespace: test bookkeeping, not the library's liveness,
/// which never trusts a pid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    /// The pid.
    pub pid: u32,
    start: u64,
}

impl Proc {
    /// The running (not zombie) process with this pid now.
    pub fn of_pid(pid: u32) -> Option<Proc> {
        stat_start(pid).map(|start| Proc { pid, start })
    }

    /// Whether this very process (not a later one with its pid) still runs.
    pub fn is_running(&self) -> bool {
        stat_start(self.pid) == Some(self.start)
    }
}

/// The start time of `pid` (field 22 of `/proc/<pid>/stat`, clock ticks after boot) while it
/// runs: `None` once it is gone or a zombie (its state, field 3, is `Z` or `X`).
fn stat_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 3 on: after the command name, which is in parentheses and may hold anything.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_ascii_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).copied();
    match field(3)? {
        "Z" | "X" => None,
        _ => field(22)?.parse().ok(),
    }
}

/// Which of `ids` still run (zombies count as ended; a pid reused by another process does
/// not count).
pub fn still_running(ids: &[Proc]) -> Vec<u32> {
    ids.iter().filter(|id| id.is_running()).map(|id| id.pid).collect()
}

/// Named segments in `/dev/shm` made by one of `pids` (named `multiproc-<pid>-…`).
pub fn shm_names_of(pids: &[u32]) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/dev/shm") else { return Vec::new() };
    rd.flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| pids.iter().any(|p| n.starts_with(&format!("multiproc-{p}-"))))
        .collect()
}

/// Where private listener and manager socket directories go.
pub fn socket_base() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir)
}

/// Private socket directories (`multiproc-<pid>-…`, `multiproc-manager-<pid>-…`) made by
/// one of `pids`.
pub fn socket_dirs_of(pids: &[u32]) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(socket_base()) else { return Vec::new() };
    rd.flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            pids.iter().any(|p| {
                n.starts_with(&format!("multiproc-{p}-"))
                    || n.starts_with(&format!("multiproc-manager-{p}-"))
            })
        })
        .map(|e| e.path())
        .collect()
}

/// Polls `cond` every few milliseconds for at most `limit`; whether it came true.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if t0.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Everything left behind by this process and `children` (processes it started):
/// zombies, children still running, named segments and socket directories named after this
/// process (participants make none of their own), and descriptors beyond `fds_before +
/// slack` (skipped when `fds_before` is `None`). Waits up to 5 s for things that settle
/// (reaping, a server removing its socket). Empty when clean.
pub fn leftovers(fds_before: Option<usize>, slack: usize, children: &[Proc]) -> Vec<String> {
    let me = [std::process::id()];
    let mut problems = Vec::new();
    let settle = Duration::from_secs(5);
    if !eventually(settle, || zombie_children().is_empty()) {
        problems.push(format!("zombie children: {:?}", zombie_children()));
    }
    if !eventually(settle, || still_running(children).is_empty()) {
        problems.push(format!("children still running: {:?}", still_running(children)));
    }
    if !eventually(settle, || shm_names_of(&me).is_empty()) {
        problems.push(format!("named segments left in /dev/shm: {:?}", shm_names_of(&me)));
    }
    if !eventually(settle, || socket_dirs_of(&me).is_empty()) {
        problems.push(format!("socket directories left: {:?}", socket_dirs_of(&me)));
    }
    if let Some(before) = fds_before {
        if !eventually(settle, || open_fds() <= before + slack) {
            problems.push(format!(
                "descriptors: {before} before, {} after (slack {slack}):\n  {}",
                open_fds(),
                fd_listing().join("\n  ")
            ));
        }
    }
    problems
}
