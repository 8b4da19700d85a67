//! The error types of this crate: [`Error`] for starting a process, for the process-wide
//! settings and for waiting on the parent, [`JoinError`] for how a child's run went wrong.

use std::fmt;
use std::io;

multiproc_arena::error_type! {
    /// The error of starting a process, changing a process-wide setting, or waiting for the
    /// parent ([`ParentProcess::join_timeout`](crate::ParentProcess::join_timeout)).
    pub struct Error {}

    /// What went wrong when starting a process; see [`Error::kind`].
    pub enum ErrorKind {
        /// The calling process is daemonic, and daemonic processes may not have children
        /// (Python's rule: a daemon is killed with its parent and could not clean them up).
        DaemonicParent => "daemonic processes are not allowed to have children",
        /// A closure target needs [`StartMethod::Fork`](crate::StartMethod::Fork): only a forked
        /// child shares the memory the closure captured. Use `target(fn, args)` for the other
        /// start methods.
        ClosureNeedsFork => "a closure target can only be started with StartMethod::Fork \
                 (use target(fn, args) for spawn and forkserver)",
        /// The arguments could not be serialised (no process was created).
        Encode => "the process arguments could not be serialised",
        /// The target function does not live in the main executable (it is in a shared library),
        /// so a re-executed child cannot find it.
        Unsupported => "the target cannot be started with this start method",
        /// A function reference ([`FnRef`](crate::FnRef)) was refused: of another type,
        /// made by another program or process tree, garbled, sealed under another key, or
        /// naming a function outside the main executable. Nothing was called.
        InvalidReference => "invalid function reference",
        /// The start method was set already ([`set_start_method`](crate::set_start_method) may
        /// be called once; use [`force_start_method`](crate::force_start_method) to change it).
        AlreadySet => "the start method has already been set",
        /// The forkserver could not be started or did not answer.
        Forkserver => "the forkserver failed",
        /// The system ran short: no process slot (`EAGAIN` under `RLIMIT_NPROC` or the pid
        /// limit), no memory (`ENOMEM`) or no descriptor (`EMFILE`/`ENFILE`) left; the message
        /// names which. Nothing was started; the same call may succeed once the resource is back.
        Resources => "the system has no process, memory or descriptor left",
        /// A `_timeout` call's time passed first
        /// ([`ParentProcess::join_timeout`](crate::ParentProcess::join_timeout): the parent
        /// is still running).
        Timeout => "timed out",
        /// An operating-system call failed; see [`Error::source`](std::error::Error::source).
        Io => "I/O error",
    }

    io {
        Timeout => TimedOut,
        InvalidReference => InvalidData,
        Encode => InvalidInput,
        ClosureNeedsFork => InvalidInput,
        Unsupported => Unsupported,
    }

    classes {
        timeout: [Timeout],
        would_block: [],
        disconnected: [],
    }
}

impl Error {
    pub(crate) fn io(err: io::Error, what: impl Into<String>) -> Self {
        let kind = if multiproc_arena::is_resource_shortage(&err) {
            ErrorKind::Resources
        } else {
            ErrorKind::Io
        };
        Error::with_source(kind, what, err)
    }

    /// The arguments did not serialise: `Encode`, unless a handle in them could not be
    /// passed because the system ran short (no descriptor to duplicate): `Resources`.
    pub(crate) fn encode(err: multiproc_arena::Error) -> Self {
        use multiproc_arena::ErrorKind as A;
        let kind = match err.kind() {
            A::NoDescriptors | A::NoSpace => ErrorKind::Resources,
            _ => ErrorKind::Encode,
        };
        let detail =
            if kind == ErrorKind::Resources { "passing the arguments' handles" } else { "" };
        Error::with_source(kind, detail, err)
    }
}

/// A signal number, displayed by name (`SIGTERM`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Signal(pub i32);

impl Signal {
    /// `SIGTERM`, sent by [`JoinHandle::terminate`](crate::JoinHandle::terminate).
    pub const TERM: Signal = Signal(libc::SIGTERM);
    /// `SIGKILL`, sent by [`JoinHandle::kill`](crate::JoinHandle::kill).
    pub const KILL: Signal = Signal(libc::SIGKILL);

    /// The signal's number.
    pub fn number(self) -> i32 {
        self.0
    }

    /// The signal's name (`"SIGSEGV"`), or `"SIG?"` for a number without one.
    pub fn name(self) -> &'static str {
        match self.0 {
            libc::SIGHUP => "SIGHUP",
            libc::SIGINT => "SIGINT",
            libc::SIGQUIT => "SIGQUIT",
            libc::SIGILL => "SIGILL",
            libc::SIGTRAP => "SIGTRAP",
            libc::SIGABRT => "SIGABRT",
            libc::SIGBUS => "SIGBUS",
            libc::SIGFPE => "SIGFPE",
            libc::SIGKILL => "SIGKILL",
            libc::SIGUSR1 => "SIGUSR1",
            libc::SIGSEGV => "SIGSEGV",
            libc::SIGUSR2 => "SIGUSR2",
            libc::SIGPIPE => "SIGPIPE",
            libc::SIGALRM => "SIGALRM",
            libc::SIGTERM => "SIGTERM",
            libc::SIGSTKFLT => "SIGSTKFLT",
            libc::SIGCHLD => "SIGCHLD",
            libc::SIGCONT => "SIGCONT",
            libc::SIGSTOP => "SIGSTOP",
            libc::SIGTSTP => "SIGTSTP",
            libc::SIGTTIN => "SIGTTIN",
            libc::SIGTTOU => "SIGTTOU",
            libc::SIGURG => "SIGURG",
            libc::SIGXCPU => "SIGXCPU",
            libc::SIGXFSZ => "SIGXFSZ",
            libc::SIGVTALRM => "SIGVTALRM",
            libc::SIGPROF => "SIGPROF",
            libc::SIGWINCH => "SIGWINCH",
            libc::SIGIO => "SIGIO",
            libc::SIGPWR => "SIGPWR",
            libc::SIGSYS => "SIGSYS",
            n if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&n) => "SIGRT",
            _ => "SIG?",
        }
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// Where a panic happened (from the child's panic hook).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PanicLocation {
    /// Source file.
    pub file: String,
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
}

impl fmt::Display for PanicLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Why [`JoinHandle::join`](crate::JoinHandle::join) (or `join_timeout`, `try_join`) has no
/// value to return.
///
/// Like every error of the workspace it answers [`is_timeout`](Self::is_timeout),
/// [`is_would_block`](Self::is_would_block) and [`is_disconnected`](Self::is_disconnected),
/// also through [`multiproc_arena::api::OpError`].
#[derive(Debug)]
#[non_exhaustive]
pub enum JoinError {
    /// The target panicked (exit code 1).
    Panicked {
        /// The panic message (`"<non-string panic payload>"` when it was not a string).
        message: String,
        /// Where it panicked, when the child's panic hook could see it.
        location: Option<PanicLocation>,
    },
    /// The child was killed by a signal (its [`exitcode`](crate::JoinHandle::exitcode) is
    /// the negated number, as in Python).
    Signaled(Signal),
    /// The child exited with this code without delivering a result (`std::process::exit(n)`
    /// inside the target). 255 when the exit status could not be learned (a forkserver
    /// child whose server died, as in Python).
    Exited(i32),
    /// Reading the result failed.
    Io(io::Error),
    /// The result (or, in the child, the arguments) could not be decoded, or the child
    /// reported a protocol error (for instance a type mismatch).
    Decode(String),
    /// The result was taken already by an earlier `join_timeout`/`try_join`.
    AlreadyJoined,
    /// [`join_timeout`](crate::JoinHandle::join_timeout)'s time passed with the child still
    /// running. Nothing was taken: the handle can be joined again.
    Timeout,
    /// [`try_join`](crate::JoinHandle::try_join) found the child still running. Nothing was
    /// taken: the handle can be joined again.
    WouldBlock,
}

impl JoinError {
    /// Whether this is [`Timeout`](JoinError::Timeout): the child was still running when
    /// `join_timeout`'s time passed (join again for its result).
    pub fn is_timeout(&self) -> bool {
        matches!(self, JoinError::Timeout)
    }

    /// Whether this is [`WouldBlock`](JoinError::WouldBlock): `try_join` found the child
    /// still running (join again for its result).
    pub fn is_would_block(&self) -> bool {
        matches!(self, JoinError::WouldBlock)
    }

    /// Always false: a child that ended — by a panic, a signal or an exit without a result —
    /// has delivered its outcome (the other variants say which); there is no peer or server
    /// whose loss a join could report.
    pub fn is_disconnected(&self) -> bool {
        false
    }
}

multiproc_arena::op_error_by_inherent!(JoinError);

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked { message, location: Some(l) } => {
                write!(f, "the child process panicked at {l}: {message}")
            }
            JoinError::Panicked { message, location: None } => {
                write!(f, "the child process panicked: {message}")
            }
            JoinError::Signaled(s) => write!(f, "the child process was killed by {s}"),
            JoinError::Exited(c) => {
                write!(f, "the child process exited with code {c} without a result")
            }
            JoinError::Io(e) => write!(f, "reading the child's result failed: {e}"),
            JoinError::Decode(m) => write!(f, "the child's result could not be decoded: {m}"),
            JoinError::AlreadyJoined => f.write_str("the result was already taken"),
            JoinError::Timeout => f.write_str("timed out: the child process is still running"),
            JoinError::WouldBlock => f.write_str("the child process is still running"),
        }
    }
}

impl std::error::Error for JoinError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JoinError::Io(e) => Some(e),
            _ => None,
        }
    }
}
