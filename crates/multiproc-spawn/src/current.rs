//! [`current_process`], [`parent_process`], [`active_children`], [`cpu_count`].

use crate::error::{Error, ErrorKind, Result};
use crate::method::StartMethod;
use crate::state;
use crate::sys;
use multiproc_arena::ProcessId;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// The calling process, as this crate knows it (Python's `current_process()`).
#[derive(Clone, PartialEq, Eq)]
pub struct CurrentProcess {
    name: String,
    pid: u32,
    daemon: bool,
    identity: Vec<u32>,
    method: Option<StartMethod>,
    authkey: Vec<u8>,
}

impl fmt::Debug for CurrentProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the authkey: a Debug print must not leak the secret.
        multiproc_arena::debug_fields!(f, self, "CurrentProcess" {
            name, pid, daemon, identity, method
        } ..)
    }
}

impl CurrentProcess {
    /// `"MainProcess"` in the main process; in a child, the name it was started with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether this process is daemonic (then it may not start children).
    pub fn daemon(&self) -> bool {
        self.daemon
    }

    /// The child numbers from the main process down (empty in the main process): the
    /// `N:M` of the default name `Process-N:M`.
    pub fn identity(&self) -> &[u32] {
        &self.identity
    }

    /// The method that started this process; `None` in the main process.
    pub fn start_method(&self) -> Option<StartMethod> {
        self.method
    }

    /// Python's `current_process().authkey`: 32 random bytes in the main process, inherited
    /// by every child (unless its builder set another with `authkey`). A key to share with
    /// the process tree, e.g. for a `Listener`/`Client` or a manager.
    pub fn authkey(&self) -> &[u8] {
        &self.authkey
    }

    /// Always true: the calling process is running.
    pub fn is_alive(&self) -> bool {
        true
    }
}

/// The calling process (Python's `current_process()`).
pub fn current_process() -> CurrentProcess {
    let info = state::state().info();
    CurrentProcess {
        name: info.name,
        pid: sys::getpid(),
        daemon: info.daemon,
        identity: info.identity,
        method: info.method.and_then(StartMethod::from_u8),
        authkey: info.authkey,
    }
}

/// The process that started this one (Python's `parent_process()`): it may have died since,
/// which [`is_alive`](ParentProcess::is_alive) and [`join_timeout`](ParentProcess::join_timeout)
/// tell without being fooled by a recycled pid. For a forkserver child it is the process that
/// asked for it, not the server.
pub struct ParentProcess {
    name: String,
    id: ProcessId,
    pidfd: Option<OwnedFd>,
}

impl fmt::Debug for ParentProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        multiproc_arena::debug_fields!(f, self, "ParentProcess" { name, pid: self.id.pid() })
    }
}

impl ParentProcess {
    /// The parent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parent's pid.
    pub fn pid(&self) -> u32 {
        self.id.pid()
    }

    /// Whether the parent is still running: `false` once its pidfd reports its end or the
    /// kernel proved it dead (see [`multiproc_arena::liveness`]); `true` while that cannot
    /// be told.
    pub fn is_alive(&self) -> bool {
        if self.pidfd.as_ref().is_some_and(|fd| sys::readable_now(fd.as_fd())) {
            return false;
        }
        self.id.is_alive()
    }

    /// Waits up to `timeout` for the parent to end: `Ok(())` once it has; `Err(e)` with
    /// `e.is_timeout()` ([`ErrorKind::Timeout`](crate::ErrorKind::Timeout)) while it still
    /// runs when the time passes.
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        if self.wait_until(Instant::now().checked_add(timeout)) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Timeout,
                format!("the parent (pid {}) is still running", self.pid()),
            ))
        }
    }

    /// Waits until the parent has ended or `deadline` passed; whether it has ended.
    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        let Some(fd) = &self.pidfd else {
            // No pidfd (another PID namespace, or the parent had ended): ask the kernel's
            // liveness proof every few milliseconds.
            loop {
                if !self.is_alive() {
                    return true;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        let mut p = [sys::poll_in(fd.as_raw_fd())];
        matches!(sys::poll(&mut p, deadline), Ok(n) if n > 0) || !self.is_alive()
    }

    /// Waits for the parent to end.
    pub fn join(&self) {
        let Some(fd) = &self.pidfd else {
            self.wait_until(None);
            return;
        };
        let mut p = [sys::poll_in(fd.as_raw_fd())];
        while !matches!(sys::poll(&mut p, None), Ok(n) if n > 0) {}
    }

    /// A descriptor readable once the parent has ended (`None`: it had ended already when
    /// this handle was made, or it could not be proved to name the parent — another PID
    /// namespace; [`join_timeout`](Self::join_timeout) still works then).
    pub fn sentinel(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|f| f.as_fd())
    }
}

/// The process that started this one; `None` in the main process.
pub fn parent_process() -> Option<ParentProcess> {
    let parent = state::state().info().parent?;
    let id = ProcessId::from_parts(parent.pid, parent.identity);
    // Open first, then ask the kernel whether the parent still runs: if it does, it ran
    // when the pidfd was opened, so the pid was still its own (a pid is not reused while
    // its process lives) and the pidfd names it. Without that proof, no pidfd.
    let pidfd = sys::pidfd_open(parent.pid)
        .ok()
        .filter(|_| id.liveness() == multiproc_arena::Liveness::Alive);
    Some(ParentProcess { name: parent.name, id, pidfd })
}

/// A child of this process that is still running (an entry of [`active_children`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveChild {
    /// Its pid.
    pub pid: u32,
    /// Its name.
    pub name: String,
    /// Whether it is daemonic.
    pub daemon: bool,
}

/// The children started by this process that are still running (Python's
/// `active_children()`), ordered by pid. Children whose handles were dropped count until they
/// end.
pub fn active_children() -> Vec<ActiveChild> {
    let st = state::state();
    st.reap_orphans();
    let live = st.live_children();
    // Whatever ended before the list was made is reaped now too, so a dropped child missing
    // from the list holds no descriptor of this process any more.
    st.reap_orphans();
    live.into_iter().map(|(pid, name, daemon)| ActiveChild { pid, name, daemon }).collect()
}

/// The number of CPUs this process may run on: its affinity mask (`sched_getaffinity`),
/// which `taskset` and container CPU sets narrow; at least 1.
pub fn cpu_count() -> usize {
    sys::affinity_cpu_count()
        .filter(|&n| n > 0)
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
}
