//! The error type of this crate.

use multiproc_spawn::Signal;
use std::fmt;
use std::io;
use std::time::Duration;

/// How a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkerExit {
    /// It called `exit(code)` (or returned `code` from its entry).
    Code(i32),
    /// A signal killed it (displayed by name: `SIGKILL`, `SIGSEGV`, …).
    Signal(Signal),
}

impl fmt::Display for WorkerExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WorkerExit::Code(c) => write!(f, "exit code {c}"),
            WorkerExit::Signal(s) => write!(f, "signal {} ({})", s.number(), s.name()),
        }
    }
}

multiproc_arena::error_type! {
    /// The error type of `multiproc-pool`: a task's failure or a pool operation's.
    ///
    /// Cheap to clone: when one event fails several tasks (a worker dying with a chunk of
    /// items), each gets its own `Error`.
    pub struct Error {
        exit: Option<WorkerExit> = None,
    }

    /// What went wrong, without the details; see [`Error::kind`].
    pub enum ErrorKind {
        /// The task panicked; [`Error::panic_message`] has the message.
        Panicked => "task panicked",
        /// The worker running the task died (killed by a signal, or exited) before the task
        /// finished; [`Error::worker_exit`] says how. The rest of the pool carries on.
        WorkerDied => "the worker running the task died",
        /// The task ran past the pool's per-task timeout; its worker was killed and replaced.
        TaskTimedOut => "task timed out; its worker was killed",
        /// Waiting for a result timed out; the task goes on and the wait can be repeated.
        Timeout => "timed out waiting for the result",
        /// A non-blocking look ([`Future::try_result`](crate::Future::try_result)) found the
        /// task not finished yet.
        NotReady => "the task has not finished yet",
        /// The future was cancelled before it started.
        Cancelled => "task was cancelled",
        /// The task's argument or result could not be (de)serialised.
        Codec => "could not serialise the task's argument or result",
        /// A worker's initializer (or state constructor) failed; the pool is broken.
        Initializer => "worker initializer failed",
        /// The pool was terminated (or the executor shut down with `cancel_futures`, or
        /// dropped) before the task finished.
        Terminated => "the pool was terminated before the task finished",
        /// The pool no longer accepts work (`close`, `terminate`, `shutdown`, or broken).
        NotRunning => "the pool is not running",
        /// `join` was called on a pool that is still running (call `close` or `terminate`
        /// first).
        StillRunning => "the pool is still running (call close or terminate first)",
        /// An argument was out of range (zero processes, zero chunksize, …).
        InvalidArgument => "invalid argument",
        /// The operation is not supported with this start method (a capturing closure outside
        /// fork).
        Unsupported => "not supported with this start method",
        /// Starting a worker process failed; [`source`](std::error::Error::source) has the
        /// operating-system error.
        Spawn => "could not start a worker process",
        /// The result was already taken from this future.
        AlreadyTaken => "the result was already taken",
        /// The task was refused, never run: it came from a different build of the program, or
        /// its signature did not verify (see `remote`).
        Refused => "the task was refused",
    }

    io {
        Timeout => TimedOut,
        NotReady => WouldBlock,
        TaskTimedOut => TimedOut,
        InvalidArgument => InvalidInput,
        Unsupported => Unsupported,
    }

    // A timeout of a *wait* (the work goes on), not a task's time limit (`TaskTimedOut`).
    classes {
        timeout: [Timeout],
        would_block: [NotReady],
        disconnected: [],
    }
}

impl Error {
    pub(crate) fn worker_died(exit: WorkerExit, pid: u32) -> Self {
        let mut e = Error::new(ErrorKind::WorkerDied, format!("worker {pid} ended with {exit}"));
        e.exit = Some(exit);
        e
    }

    pub(crate) fn task_timed_out(after: Duration, pid: u32) -> Self {
        let mut e = Error::new(
            ErrorKind::TaskTimedOut,
            format!("ran longer than {after:?}; worker {pid} killed"),
        );
        e.exit = Some(WorkerExit::Signal(Signal::KILL));
        e
    }

    pub(crate) fn io(kind: ErrorKind, err: io::Error, what: impl Into<String>) -> Self {
        Error::with_source(kind, what, err)
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

    /// A task's result that does not decode as the result type; it keeps the bytes.
    pub(crate) fn undecodable(why: String, bytes: Vec<u8>) -> Self {
        let u = Undecoded { why, bytes: Some(bytes) };
        Error::with_source(ErrorKind::Codec, u.to_string(), u)
    }

    /// For a [`Codec`](ErrorKind::Codec) error of a task's result that did not decode as the
    /// result type: the result's bytes (postcard, as the worker wrote them), to decode as
    /// another type or to log. `None` for other errors — and for an item of a `map` chunk other
    /// than its last: the worker writes a chunk's results back to back, without lengths (a
    /// length per result would cost every result on the success path), so where a result
    /// that does not decode ends is known only when it is the chunk's last; such an item, and
    /// the chunk's items after it, fail without bytes. A task of its own (`apply`,
    /// `apply_async`, `submit`, a `map` of `chunksize(1)`) always hands them back. (The
    /// queue's and the pipe's errors have the same accessors.)
    pub fn undecoded(&self) -> Option<&[u8]> {
        self.source_as::<Undecoded>()?.bytes.as_deref()
    }

    /// Takes the result's bytes out of the error (see [`undecoded`](Self::undecoded));
    /// without a copy unless the error was cloned (then a clone keeps its own).
    pub fn take_undecoded(&mut self) -> Option<Vec<u8>> {
        let src = self.source.as_mut()?;
        if let Some(u) = std::sync::Arc::get_mut(src).and_then(|s| s.downcast_mut::<Undecoded>()) {
            return u.bytes.take();
        }
        // Shared with a clone: copy them, and leave this error without them.
        let u = self.source_as::<Undecoded>()?;
        let bytes = u.bytes.clone();
        self.source = Some(std::sync::Arc::new(Undecoded { why: u.why.clone(), bytes: None }));
        bytes
    }

    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, detail)
    }

    /// A count argument's check: `Err` ([`InvalidArgument`](ErrorKind::InvalidArgument),
    /// "`what` must be at least 1") if `n` is 0.
    pub(crate) fn at_least_one(what: &str, n: usize) -> Result<()> {
        if n == 0 {
            return Err(Error::invalid(format!("{what} must be at least 1")));
        }
        Ok(())
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
    pub fn signal(&self) -> Option<Signal> {
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
}

/// The source of a result's [`Codec`](ErrorKind::Codec) error: why it did not decode, and its
/// bytes. (In the source rather than a field of [`Error`], so that the error — and every
/// `Result` of this crate — is no larger for them.)
#[derive(Debug)]
struct Undecoded {
    why: String,
    /// `None` once taken.
    bytes: Option<Vec<u8>>,
}

impl fmt::Display for Undecoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The same text as the error's detail, which is therefore not repeated.
        let n = self.bytes.as_ref().map_or(0, Vec::len);
        write!(f, "{}; {n} bytes handed back (Error::undecoded)", self.why)
    }
}

impl std::error::Error for Undecoded {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_signal() {
        let e = Error::worker_died(WorkerExit::Signal(Signal::KILL), 42);
        assert_eq!(e.kind(), ErrorKind::WorkerDied);
        assert_eq!(e.signal(), Some(Signal::KILL));
        let s = e.to_string();
        assert!(s.contains("SIGKILL") && s.contains("42"), "{s}");
        let e = Error::worker_died(WorkerExit::Code(99), 7);
        assert_eq!(e.exit_code(), Some(99));
        assert!(e.to_string().contains("exit code 99"));
    }
}
