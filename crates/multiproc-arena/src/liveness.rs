//! Process identity that survives PID reuse, and "is it still alive?".
//!
//! A [`ProcessId`] is a pid plus the process's start time (field 22 of `/proc/<pid>/stat`, in
//! clock ticks since boot). A recycled pid has a different start time, so it never passes for
//! the dead process. A zombie (dead, not yet reaped) counts as dead.

use std::sync::atomic::{AtomicU64, Ordering};

/// A process, identified without PID-reuse mistakes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessId {
    pid: u32,
    _pad: u32,
    start_time: u64,
}

// SAFETY: repr(C) plain integers.
unsafe impl crate::ShmSafe for ProcessId {}

#[cfg(not(multiproc_loom))]
static_assertions::assert_eq_size!(ProcessId, [u64; 2]);

/// (pid, start time) of this process, cached; refreshed when the pid changes (after fork).
static CURRENT: AtomicU64 = AtomicU64::new(0);
static CURRENT_START: AtomicU64 = AtomicU64::new(0);

impl ProcessId {
    /// The calling process.
    pub fn current() -> ProcessId {
        let pid = crate::sys::getpid();
        if CURRENT.load(Ordering::Acquire) == pid as u64 {
            return ProcessId { pid, _pad: 0, start_time: CURRENT_START.load(Ordering::Relaxed) };
        }
        let start_time = read_start_time(pid).unwrap_or(0);
        CURRENT_START.store(start_time, Ordering::Relaxed);
        CURRENT.store(pid as u64, Ordering::Release);
        ProcessId { pid, _pad: 0, start_time }
    }

    /// The process that has `pid` now, or `None` if there is none (or it is a zombie).
    pub fn of_pid(pid: u32) -> Option<ProcessId> {
        let (state, start_time) = read_stat(pid)?;
        if state == b'Z' || state == b'X' {
            return None;
        }
        Some(ProcessId { pid, _pad: 0, start_time })
    }

    /// Rebuilds an identity from its parts (as stored in shared memory).
    pub fn from_parts(pid: u32, start_time: u64) -> ProcessId {
        ProcessId { pid, _pad: 0, start_time }
    }

    /// The pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The start time in clock ticks since boot.
    pub fn start_time(&self) -> u64 {
        self.start_time
    }

    /// Whether this very process (not a later one with the same pid) is still running.
    /// Costs one `kill(pid, 0)` when the pid is gone, else one read of `/proc/<pid>/stat`.
    pub fn is_alive(&self) -> bool {
        if !crate::sys::pid_exists(self.pid) {
            return false;
        }
        match try_read_stat(self.pid) {
            // Gone between the two checks.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            // Cannot tell (out of descriptors, /proc not mounted): a live process must never
            // be taken for dead (its locks and queue slots would be recovered under it).
            Err(_) => true,
            Ok(None) => true,
            Ok(Some((state, start))) => {
                state != b'Z' && state != b'X' && (self.start_time == 0 || start == self.start_time)
            }
        }
    }
}

/// Whether a process with this pid is running (not a zombie). Cheaper than a full
/// [`ProcessId`] check when a start time is not at hand; may be fooled by PID reuse.
pub fn pid_alive(pid: u32) -> bool {
    crate::sys::pid_exists(pid) && matches!(read_stat(pid), Some((s, _)) if s != b'Z' && s != b'X')
}

fn read_start_time(pid: u32) -> Option<u64> {
    read_stat(pid).map(|(_, t)| t)
}

/// (state byte, start time) from `/proc/<pid>/stat`.
fn read_stat(pid: u32) -> Option<(u8, u64)> {
    try_read_stat(pid).ok().flatten()
}

/// Like [`read_stat`], telling "no such process" (`NotFound`) from "could not read"; `Ok(None)`
/// is an unparsable line.
fn try_read_stat(pid: u32) -> std::io::Result<Option<(u8, u64)>> {
    use std::io::Read;
    let mut buf = [0u8; 1024];
    let mut f = std::fs::File::open(format!("/proc/{pid}/stat"))?;
    let n = f.read(&mut buf)?;
    Ok(parse_stat(&buf[..n]))
}

/// Parses the state and the start time out of a `/proc/<pid>/stat` line. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(line: &[u8]) -> Option<(u8, u64)> {
    let close = line.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(line.get(close + 2..)?).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.as_bytes().first().copied()?;
    // `state` is field 3; start time is field 22.
    let start = fields.nth(22 - 4)?.parse().ok()?;
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = b"1234 (a) b (c)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 20 21\n";
        assert_eq!(parse_stat(line), Some((b'S', 424242)));
        assert_eq!(parse_stat(b"garbage"), None);
    }

    #[test]
    fn current_is_alive_and_has_start_time() {
        let me = ProcessId::current();
        assert_eq!(me.pid(), std::process::id());
        assert!(me.start_time() > 0);
        assert!(me.is_alive());
        let reused = ProcessId::from_parts(me.pid(), me.start_time() + 1);
        assert!(!reused.is_alive(), "a different start time is a different process");
        assert!(!ProcessId::from_parts(0, 0).is_alive());
    }
}
