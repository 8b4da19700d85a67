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

/// Exit code of a child that could not set up its fault (no privilege): the test is skipped.
pub const SKIP_CODE: i32 = 77;

/// How a fault-injection child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The body ran and returned normally.
    Passed,
    /// The fault could not be set up here (no privilege); the reason was printed loudly.
    Skipped,
}

/// Runs `body` in a forked child whose `/dev/shm` is a private tmpfs of `bytes` (a private
/// mount namespace: nothing outside the child sees it), waiting at most `timeout`. Panics if
/// the body panics, is killed by a signal (SIGBUS included) or runs past `timeout`. Without
/// the privilege to mount (not root, no `CAP_SYS_ADMIN`) it prints why, loudly, and returns
/// [`Outcome::Skipped`].
pub fn with_small_dev_shm(bytes: u64, timeout: Duration, body: impl FnOnce()) -> Outcome {
    run_faulted(timeout, "a private tmpfs over /dev/shm", move || {
        crate::sys::private_small_dev_shm(bytes).map_err(|e| format!("mounting: {e}"))?;
        body();
        Ok(())
    })
}

/// Resizes the private `/dev/shm` of a [`with_small_dev_shm`] body (the fault passes).
pub fn resize_dev_shm(bytes: u64) {
    crate::sys::resize_dev_shm(bytes).expect("remounting /dev/shm");
}

/// Sets this process's soft limit of open descriptors (`RLIMIT_NOFILE`); returns the old one.
pub fn set_nofile_limit(n: u64) -> std::io::Result<u64> {
    crate::sys::set_soft_limit(libc::RLIMIT_NOFILE, n)
}

/// Sets this process's soft limit of processes of its user (`RLIMIT_NPROC`); returns the old
/// one. Root ignores it: see [`with_process_quota`].
pub fn set_nproc_limit(n: u64) -> std::io::Result<u64> {
    crate::sys::set_soft_limit(libc::RLIMIT_NPROC, n)
}

/// The user the process-quota tests run as (`nobody`).
pub const QUOTA_UID: u32 = 65534;

/// Runs `body` in a forked child that is not root (uid/gid 65534, so that `RLIMIT_NPROC`
/// applies to it; root ignores the limit), waiting at most `timeout`; panics as
/// [`with_small_dev_shm`] does. Skips loudly when the test does not run as root (it cannot
/// change user); a non-root user's own limit would count every process of that user.
pub fn with_process_quota(timeout: Duration, body: impl FnOnce()) -> Outcome {
    run_faulted(timeout, "switching to uid 65534 for RLIMIT_NPROC", move || {
        if crate::sys::getuid() != 0 {
            return Err("not root: cannot become another user".into());
        }
        crate::sys::become_user(QUOTA_UID, QUOTA_UID).map_err(|e| format!("setresuid: {e}"))?;
        body();
        Ok(())
    })
}

/// Runs `body` in a forked child with at most `n` open descriptors (`RLIMIT_NOFILE`; no
/// privilege needed), waiting at most `timeout`.
pub fn with_descriptor_limit(n: u64, timeout: Duration, body: impl FnOnce()) -> Outcome {
    run_faulted(timeout, "RLIMIT_NOFILE", move || {
        set_nofile_limit(n).map_err(|e| format!("setrlimit: {e}"))?;
        body();
        Ok(())
    })
}

fn run_faulted(
    timeout: Duration,
    what: &str,
    body: impl FnOnce() -> Result<(), String>,
) -> Outcome {
    let mut child = fork(move || match body() {
        Ok(()) => 0,
        Err(why) => {
            eprintln!("{why}");
            SKIP_CODE
        }
    });
    match child.wait_timeout(timeout) {
        Some(Exit::Code(0)) => Outcome::Passed,
        Some(Exit::Code(SKIP_CODE)) => {
            eprintln!(
                "\n*** SKIPPED: this test needs {what} and could not set it up here \
                 (it runs as root in CI) ***\n"
            );
            Outcome::Skipped
        }
        other => panic!(
            "the faulted child {} ended with {other:?} (None = still running after {timeout:?})",
            child.pid()
        ),
    }
}

/// Sets the process-wide file-mode creation mask; returns the old one. Test support for
/// "never reachable by another user" checks (with umask 0 a careless bind is world-writable).
pub fn set_umask(mask: u32) -> u32 {
    crate::sys::umask(mask)
}
