//! Test support for the crates of multiproc: fork a closure into a child process, kill it,
//! wait for it with a timeout. Not part of the stable API (`multiproc-spawn` is the real
//! process API); lower crates use it in tests because they cannot depend on spawn.

use std::time::{Duration, Instant};

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// `_exit(code)`.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

/// A forked child; killed and reaped on drop if still running.
#[derive(Debug)]
pub struct Child {
    pid: u32,
    exit: Option<Exit>,
}

/// Forks; the child runs `f` and exits with its return value (101 if it panics), without
/// running destructors of the parent's objects. In the parent `f` is forgotten, not dropped.
pub fn fork(f: impl FnOnce() -> i32) -> Child {
    // SAFETY: test support; callers fork from tests whose other threads hold no locks the
    // child needs (the child only runs `f`, which the test controls, then `_exit`s).
    match unsafe { crate::sys::fork() }.expect("fork") {
        0 => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            crate::sys::exit_now(code)
        }
        pid => {
            // The child owns the closure's captures now (it drops them); dropping them here
            // too would release cross-process references twice.
            std::mem::forget(f);
            Child { pid, exit: None }
        }
    }
}

fn decode(status: i32) -> Exit {
    match crate::sys::decode_wait_status(status) {
        Ok(code) => Exit::Code(code),
        Err(sig) => Exit::Signal(sig),
    }
}

impl Child {
    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `SIGKILL`.
    pub fn kill(&self) {
        let _ = crate::sys::kill(self.pid, libc::SIGKILL);
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        let _ = crate::sys::kill(self.pid, sig);
    }

    /// Polls for the end of the child without blocking.
    pub fn try_wait(&mut self) -> Option<Exit> {
        if self.exit.is_none() {
            if let Ok(Some(st)) = crate::sys::try_wait(self.pid) {
                self.exit = Some(decode(st));
            }
        }
        self.exit
    }

    /// Waits up to `timeout` for the child to end.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Exit> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.try_wait() {
                return Some(e);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// Waits up to `timeout`; panics if the child is still running or did not exit 0.
    pub fn expect_success(mut self, timeout: Duration) {
        match self.wait_timeout(timeout) {
            Some(Exit::Code(0)) => {}
            other => panic!("child {} ended with {other:?} (None = still running)", self.pid),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            self.kill();
            let _ = self.wait_timeout(Duration::from_secs(5));
        }
    }
}

/// Whether a process with this pid runs now (not a zombie), from `/proc/<pid>/stat` in the
/// caller's own PID namespace. Test bookkeeping for a test's own children only: the library
/// never judges liveness by pid (see [`liveness`](crate::liveness)).
pub fn pid_running(pid: u32) -> bool {
    let Ok(line) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let Some(close) = line.rfind(')') else { return false };
    !matches!(line.get(close + 2..close + 3), Some("Z" | "X") | None)
}
