//! The error type of this crate.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// How a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkerExit {
    /// It called `exit(code)` (or returned `code` from its entry).
    Code(i32),
    /// A signal killed it (`SIGKILL` = 9, `SIGSEGV` = 11, `SIGABRT` = 6, …).
    Signal(i32),
}

impl fmt::Display for WorkerExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WorkerExit::Code(c) => write!(f, "exit code {c}"),
            WorkerExit::Signal(s) => write!(f, "signal {s} ({})", signal_name(s)),
        }
    }
}

/// The conventional name of a signal number (`9` → `SIGKILL`).
pub(crate) fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        _ => "signal",
    }
}

/// What went wrong, without the details; see [`Error::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The task panicked; [`Error::panic_message`] has the message.
    Panicked,
    /// The worker running the task died (killed by a signal, or exited) before the task
    /// finished; [`Error::worker_exit`] says how. The rest of the pool carries on.
    WorkerDied,
    /// The task ran past the pool's per-task timeout; its worker was killed and replaced.
    TaskTimedOut,
    /// Waiting for a result timed out; the task goes on and the wait can be repeated.
    Timeout,
    /// The future was cancelled before it started.
    Cancelled,
    /// The task's argument or result could not be (de)serialised.
    Codec,
    /// A worker's initializer (or state constructor) failed; the pool is broken.
    Initializer,
    /// The pool was terminated (or the executor shut down with `cancel_futures`, or dropped)
    /// before the task finished.
    Terminated,
    /// The pool no longer accepts work (`close`, `terminate`, `shutdown`, or broken).
    NotRunning,
    /// `join` was called on a pool that is still running (call `close` or `terminate` first).
    StillRunning,
    /// An argument was out of range (zero processes, zero chunksize, …).
    InvalidArgument,
    /// The operation is not supported with this start method (a capturing closure outside
    /// fork).
    Unsupported,
    /// Starting a worker process failed; [`source`](std::error::Error::source) has the
    /// operating-system error.
    Spawn,
    /// The result was already taken from this future.
    AlreadyTaken,
    /// The task was refused, never run: it came from a different build of the program, or
    /// its signature did not verify (see `remote`).
    Refused,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Panicked => "task panicked",
            ErrorKind::WorkerDied => "the worker running the task died",
            ErrorKind::TaskTimedOut => "task timed out; its worker was killed",
            ErrorKind::Timeout => "timed out waiting for the result",
            ErrorKind::Cancelled => "task was cancelled",
            ErrorKind::Codec => "could not serialise the task's argument or result",
            ErrorKind::Initializer => "worker initializer failed",
            ErrorKind::Terminated => "the pool was terminated before the task finished",
            ErrorKind::NotRunning => "the pool is not running",
            ErrorKind::StillRunning => "the pool is still running (call close or terminate first)",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::Unsupported => "not supported with this start method",
            ErrorKind::Spawn => "could not start a worker process",
            ErrorKind::AlreadyTaken => "the result was already taken",
            ErrorKind::Refused => "the task was refused",
        })
    }
}

/// The error type of `multiproc-pool`: a task's failure or a pool operation's.
///
/// Cheap to clone: when one event fails several tasks (a worker dying with a chunk of
/// items), each gets its own `Error`.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    detail: Option<Arc<str>>,
    exit: Option<WorkerExit>,
    source: Option<Arc<io::Error>>,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with a human-readable detail.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        let d: String = detail.into();
        Error { kind, detail: Some(d.into()), exit: None, source: None }
    }

    pub(crate) fn kind_only(kind: ErrorKind) -> Self {
        Error { kind, detail: None, exit: None, source: None }
    }

    pub(crate) fn worker_died(exit: WorkerExit, pid: u32) -> Self {
        Error {
            kind: ErrorKind::WorkerDied,
            detail: Some(format!("worker {pid} ended with {exit}").into()),
            exit: Some(exit),
            source: None,
        }
    }

    pub(crate) fn task_timed_out(after: Duration, pid: u32) -> Self {
        Error {
            kind: ErrorKind::TaskTimedOut,
            detail: Some(format!("ran longer than {after:?}; worker {pid} killed").into()),
            exit: Some(WorkerExit::Signal(libc_sigkill())),
            source: None,
        }
    }

    pub(crate) fn io(kind: ErrorKind, err: io::Error, what: impl Into<String>) -> Self {
        let d: String = what.into();
        Error { kind, detail: Some(d.into()), exit: None, source: Some(Arc::new(err)) }
    }

    /// Whether this is the system running short (no process, memory or descriptor left):
    /// a condition that passes, so the pool retries rather than breaking.
    pub(crate) fn is_resource_shortage(&self) -> bool {
        let mut cur: Option<&(dyn std::error::Error + 'static)> =
            self.source.as_deref().map(|e| e as _);
        while let Some(e) = cur {
            if let Some(io) = e.downcast_ref::<io::Error>() {
                if multiproc_arena::is_resource_shortage(io) {
                    return true;
                }
                let inner = io.get_ref().and_then(|i| i.downcast_ref::<multiproc_spawn::Error>());
                if inner.is_some_and(|sp| sp.kind() == multiproc_spawn::ErrorKind::Resources) {
                    return true;
                }
            }
            if let Some(sp) = e.downcast_ref::<multiproc_spawn::Error>() {
                if sp.kind() == multiproc_spawn::ErrorKind::Resources {
                    return true;
                }
            }
            cur = e.source();
        }
        false
    }

    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, detail)
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The details (a panic message, the worker's pid and exit, …), if any.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// For [`ErrorKind::Panicked`]: the panic message, with the location in the worker.
    pub fn panic_message(&self) -> Option<&str> {
        if self.kind == ErrorKind::Panicked {
            self.detail.as_deref()
        } else {
            None
        }
    }

    /// For [`ErrorKind::WorkerDied`] and [`ErrorKind::TaskTimedOut`]: how the worker ended.
    pub fn worker_exit(&self) -> Option<WorkerExit> {
        self.exit
    }

    /// The signal that killed the worker, if one did.
    pub fn signal(&self) -> Option<i32> {
        match self.exit {
            Some(WorkerExit::Signal(s)) => Some(s),
            _ => None,
        }
    }

    /// The worker's exit code, if it exited rather than being killed.
    pub fn exit_code(&self) -> Option<i32> {
        match self.exit {
            Some(WorkerExit::Code(c)) => Some(c),
            _ => None,
        }
    }

    /// Whether this is a timeout of a *wait* ([`ErrorKind::Timeout`]): the work goes on.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }
}

const fn libc_sigkill() -> i32 {
    9
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind);
        if let Some(s) = &self.detail {
            d.field("detail", s);
        }
        if let Some(e) = &self.exit {
            d.field("exit", e);
        }
        if let Some(e) = &self.source {
            d.field("source", e);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        if let Some(s) = &self.source {
            write!(f, " ({s})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| &**e as _)
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error::kind_only(kind)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match e.kind {
            ErrorKind::Timeout | ErrorKind::TaskTimedOut => io::ErrorKind::TimedOut,
            ErrorKind::InvalidArgument => io::ErrorKind::InvalidInput,
            ErrorKind::Unsupported => io::ErrorKind::Unsupported,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_signal() {
        let e = Error::worker_died(WorkerExit::Signal(9), 42);
        assert_eq!(e.kind(), ErrorKind::WorkerDied);
        assert_eq!(e.signal(), Some(9));
        let s = e.to_string();
        assert!(s.contains("SIGKILL") && s.contains("42"), "{s}");
        let e = Error::worker_died(WorkerExit::Code(99), 7);
        assert_eq!(e.exit_code(), Some(99));
        assert!(e.to_string().contains("exit code 99"));
    }
}
