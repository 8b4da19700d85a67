//! The error types of this crate.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;
use std::sync::PoisonError;

/// What went wrong, without the details; see [`Error::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The manager server is gone (shut down, killed) or the connection to it broke.
    Disconnected,
    /// The authkey handshake failed: the two sides hold different keys.
    Authentication,
    /// The peer does not speak this protocol (version mismatch, malformed frame).
    Protocol,
    /// A message is larger than the frame limit; nothing was sent.
    TooLarge,
    /// A value could not be serialised, or the bytes stored on the server do not decode as the
    /// proxy's type.
    Codec,
    /// A list index (or range) out of bounds, or `pop` on an empty list.
    IndexOutOfRange,
    /// A dict key that is not there (`pop`).
    KeyNotFound,
    /// A list value that is not there (`remove`, `index`), or a namespace field that is not set.
    ValueNotFound,
    /// A queue had nothing to get within the time allowed.
    Empty,
    /// A queue had no room within the time allowed.
    Full,
    /// A wait ended at its timeout (queue `join`, `wait_for`).
    Timeout,
    /// Releasing a lock that is not held, or an RLock or Condition held by another owner.
    NotOwner,
    /// A bounded semaphore released above its initial value, or `task_done` called more times
    /// than items were put.
    TooManyReleases,
    /// The barrier is broken (aborted, reset while waiting, a party timed out or died).
    BrokenBarrier,
    /// The object no longer exists on the server (its last proxy was dropped).
    ObjectGone,
    /// A proxy was rebuilt for an object of another kind (a list handle used as a dict).
    WrongKind,
    /// No custom service of that name is registered on the server.
    NoSuchService,
    /// A custom service failed: its constructor returned an error or it panicked.
    ServiceFailed,
    /// The server process could not be started.
    Start,
    /// The operation is not possible on this handle or with these arguments (a barrier of
    /// zero parties, a manager started twice).
    InvalidInput,
    /// Some other operating-system error; see [`Error::source`](std::error::Error::source).
    Io,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::Disconnected => "disconnected from the manager server",
            ErrorKind::Authentication => "authentication with the manager failed (wrong authkey)",
            ErrorKind::Protocol => "manager protocol error",
            ErrorKind::TooLarge => "message larger than the frame limit",
            ErrorKind::Codec => "serialisation error",
            ErrorKind::IndexOutOfRange => "index out of range",
            ErrorKind::KeyNotFound => "key not found",
            ErrorKind::ValueNotFound => "value not found",
            ErrorKind::Empty => "queue is empty",
            ErrorKind::Full => "queue is full",
            ErrorKind::Timeout => "timed out",
            ErrorKind::NotOwner => "lock not held by the caller",
            ErrorKind::TooManyReleases => "released too many times",
            ErrorKind::BrokenBarrier => "barrier is broken",
            ErrorKind::ObjectGone => "the managed object no longer exists",
            ErrorKind::WrongKind => "the managed object is of another kind",
            ErrorKind::NoSuchService => "no such service registered on the manager",
            ErrorKind::ServiceFailed => "the managed service failed",
            ErrorKind::Start => "could not start the manager server",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Io => "I/O error",
        };
        f.write_str(s)
    }
}

/// The error type of `multiproc-manager`.
///
/// Errors raised inside the server (an index out of range, a missing key, a service that
/// panicked) travel back to the caller with their [`ErrorKind`] and message; the server keeps
/// serving.
pub struct Error {
    kind: ErrorKind,
    detail: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with a human-readable detail.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Error { kind, detail: Some(detail.into()), source: None }
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The detail message, if any (for a service failure: the panic message).
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    #[allow(dead_code)]
    pub(crate) fn io(err: io::Error, what: impl Into<String>) -> Self {
        let kind = match err.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected => ErrorKind::Disconnected,
            _ => ErrorKind::Io,
        };
        Error { kind, detail: Some(what.into()), source: Some(Box::new(err)) }
    }

    pub(crate) fn wrap(
        kind: ErrorKind,
        what: impl Into<String>,
        err: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error { kind, detail: Some(what.into()), source: Some(Box::new(err)) }
    }

    pub(crate) fn kind_only(kind: ErrorKind) -> Self {
        Error { kind, detail: None, source: None }
    }

    pub(crate) fn codec(e: impl fmt::Display) -> Self {
        Error::new(ErrorKind::Codec, e.to_string())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind);
        if let Some(detail) = &self.detail {
            d.field("detail", detail);
        }
        if let Some(s) = &self.source {
            d.field("source", s);
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
            ErrorKind::Disconnected => io::ErrorKind::BrokenPipe,
            ErrorKind::Authentication => io::ErrorKind::PermissionDenied,
            ErrorKind::Timeout => io::ErrorKind::TimedOut,
            ErrorKind::InvalidInput => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// The error of a lock acquisition: std's poisoning shape, plus the manager's own failures.
///
/// A manager lock whose holder died (its process was killed, or every connection of it closed)
/// is released by the server and marked poisoned: the next acquirer gets the lock, wrapped in
/// [`LockError::Poisoned`] so it learns that the protected state may be half-updated. The
/// poison stays until [`clear_poison`](crate::LockProxy::clear_poison), as with
/// [`std::sync::Mutex`].
pub enum LockError<G> {
    /// The lock was acquired, but its previous holder died holding it. The guard is inside.
    Poisoned(PoisonError<G>),
    /// A `try_` acquisition found the lock held (or its timeout passed).
    WouldBlock,
    /// The manager failed (disconnected, object gone, ...); the lock is not held.
    Failed(Error),
}

/// `Result` of a lock acquisition.
pub type LockResult<G> = std::result::Result<G, LockError<G>>;

impl<G> LockError<G> {
    /// The guard of a poisoned acquisition, or `None` when the lock is not held.
    pub fn into_poisoned_guard(self) -> Option<G> {
        match self {
            LockError::Poisoned(p) => Some(p.into_inner()),
            _ => None,
        }
    }

    /// Whether this is [`LockError::Poisoned`].
    pub fn is_poisoned(&self) -> bool {
        matches!(self, LockError::Poisoned(_))
    }
}

impl<G> From<Error> for LockError<G> {
    fn from(e: Error) -> Self {
        LockError::Failed(e)
    }
}

impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Poisoned(_) => f.write_str("Poisoned(..)"),
            LockError::WouldBlock => f.write_str("WouldBlock"),
            LockError::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

impl<G> fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Poisoned(_) => {
                f.write_str("lock acquired, but poisoned: a previous holder died holding it")
            }
            LockError::WouldBlock => f.write_str("lock is held elsewhere"),
            LockError::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl<G> std::error::Error for LockError<G> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LockError::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// A failed `put` on a [`QueueProxy`](crate::QueueProxy): the value comes back.
pub struct PutError<T> {
    value: T,
    error: Error,
}

impl<T> PutError<T> {
    pub(crate) fn new(value: T, error: Error) -> Self {
        PutError { value, error }
    }

    /// Why the put failed ([`ErrorKind::Full`] when the queue stayed full).
    pub fn kind(&self) -> ErrorKind {
        self.error.kind()
    }

    /// The value that was not put.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// The underlying error.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// Splits into the value and the error.
    pub fn into_parts(self) -> (T, Error) {
        (self.value, self.error)
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutError").field("error", &self.error).finish_non_exhaustive()
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "put failed: {}", self.error)
    }
}

impl<T> std::error::Error for PutError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<T> From<PutError<T>> for Error {
    fn from(e: PutError<T>) -> Error {
        e.error
    }
}
