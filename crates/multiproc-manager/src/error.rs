//! The error types of this crate.

use multiproc_ipc_queue::{Error as QueueError, ErrorKind as QueueErrorKind, GetError, PutError};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;
use std::sync::PoisonError;

multiproc_arena::error_type! {
    /// The error type of `multiproc-manager`.
    ///
    /// Errors raised inside the server (an index out of range, a missing key, a service that
    /// panicked) travel back to the caller with their [`ErrorKind`] and message; the server
    /// keeps serving.
    pub struct Error {}

    /// What went wrong, without the details; see [`Error::kind`].
    #[derive(Serialize, Deserialize)]
    pub enum ErrorKind {
        /// The manager server is gone (shut down, killed) or the connection to it broke.
        Disconnected => "disconnected from the manager server",
        /// The authkey handshake failed: the two sides hold different keys.
        Authentication => "authentication with the manager failed (wrong authkey)",
        /// The peer does not speak this protocol (version mismatch, malformed frame).
        Protocol => "manager protocol error",
        /// A message is larger than the frame limit; nothing was sent.
        TooLarge => "message larger than the frame limit",
        /// A value could not be serialised, or the bytes stored on the server do not decode as the
        /// proxy's type.
        Codec => "serialisation error",
        /// A list index (or range) out of bounds, or `pop` on an empty list.
        IndexOutOfRange => "index out of range",
        /// A dict key that is not there (`pop`).
        KeyNotFound => "key not found",
        /// A list value that is not there (`remove`, `index`), or a namespace field that is not set.
        ValueNotFound => "value not found",
        /// A queue's `try_get` found nothing (a timed `get_timeout` fails with `Timeout`).
        Empty => "queue is empty",
        /// A queue's `try_put` found no room (a timed `put_timeout` fails with `Timeout`).
        Full => "queue is full",
        /// A wait ended at its timeout (a `_timeout` call; queue `join`, `wait_for`).
        Timeout => "timed out",
        /// A `try_` call could not proceed now (nothing was taken or done).
        WouldBlock => "would block",
        /// Releasing an RLock or Condition that the caller does not own (held by another
        /// owner, or by nobody); a plain lock released unheld is [`NotHeld`](Self::NotHeld).
        NotOwner => "lock not held by the caller",
        /// A bounded semaphore released above its initial value, or `task_done` called more times
        /// than items were put.
        TooManyReleases => "released too many times",
        /// The barrier is broken (aborted, reset while waiting, a party timed out or died).
        BrokenBarrier => "barrier is broken",
        /// The object no longer exists on the server (its last proxy was dropped).
        ObjectGone => "the managed object no longer exists",
        /// A proxy was rebuilt for an object of another kind (a list handle used as a dict).
        WrongKind => "the managed object is of another kind",
        /// No custom service of that name is registered on the server.
        NoSuchService => "no such service registered on the manager",
        /// A custom service failed: its constructor returned an error or it panicked.
        ServiceFailed => "the managed service failed",
        /// The server process could not be started.
        Start => "could not start the manager server",
        /// The operation is not possible on this handle or with these arguments (a barrier of
        /// zero parties, a manager started twice).
        InvalidInput => "invalid input",
        /// Some other operating-system error; see [`Error::source`](std::error::Error::source).
        Io => "I/O error",
        /// Releasing a [`LockProxy`](crate::LockProxy) that nobody holds (Python's
        /// `ValueError`), as the local `Lock` reports it (`multiproc_ipc_lock::ErrorKind::NotHeld`).
        /// (Last in the enum: kinds cross the wire, and new ones are added at the end.)
        NotHeld => "released a lock that is not held",
    }

    io {
        Disconnected => BrokenPipe,
        Authentication => PermissionDenied,
        Timeout => TimedOut,
        WouldBlock => WouldBlock,
        InvalidInput => InvalidInput,
    }

    classes {
        timeout: [Timeout],
        would_block: [WouldBlock, Empty, Full],
        disconnected: [Disconnected],
    }
}

impl Error {
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
        Error::with_source(kind, what, err)
    }

    pub(crate) fn wrap(
        kind: ErrorKind,
        what: impl Into<String>,
        err: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::with_source(kind, what, err)
    }

    pub(crate) fn codec(e: impl fmt::Display) -> Self {
        Error::new(ErrorKind::Codec, e.to_string())
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

// ---- the queue proxy's errors: the queue crate's own -----------------------------------------

/// The queue crate's error kind for a manager error met by a queue proxy.
fn queue_kind(kind: ErrorKind) -> QueueErrorKind {
    match kind {
        ErrorKind::Disconnected => QueueErrorKind::Disconnected,
        ErrorKind::Timeout => QueueErrorKind::Timeout,
        ErrorKind::TooManyReleases => QueueErrorKind::TaskDoneTooManyTimes,
        _ => QueueErrorKind::Manager,
    }
}

impl Error {
    /// As the queue crate's error (the error of a [`QueueProxy`](crate::QueueProxy)'s
    /// operations); this error is its source, and converts back with `From`.
    pub(crate) fn into_queue(self) -> QueueError {
        let kind = match self.kind() {
            ErrorKind::Codec => QueueErrorKind::Encode,
            k => queue_kind(k),
        };
        QueueError::with_cause(kind, "", self)
    }

    /// A failed `get` of a queue proxy, in the local queue's shape.
    pub(crate) fn into_get_error(self) -> GetError {
        match self.kind() {
            ErrorKind::Empty | ErrorKind::WouldBlock => GetError::Empty,
            ErrorKind::Timeout => GetError::Timeout,
            _ => GetError::Failed(self.into_queue()),
        }
    }

    /// A failed `put` of a queue proxy, in the local queue's shape: the value comes back.
    pub(crate) fn into_put_error<T>(self, value: T) -> PutError<T> {
        match self.kind() {
            ErrorKind::Full | ErrorKind::WouldBlock => PutError::Full(value),
            ErrorKind::Timeout => PutError::Timeout(value),
            _ => PutError::Failed(value, self.into_queue()),
        }
    }
}

/// The queue crate's error (from a [`QueueProxy`](crate::QueueProxy)) as the manager's: the
/// manager error it carries, as it was; a queue's own error by its kind, with it as the source.
impl From<QueueError> for Error {
    fn from(e: QueueError) -> Error {
        if let Some(m) = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<Error>()) {
            return m.clone();
        }
        let kind = match e.kind() {
            QueueErrorKind::Disconnected => ErrorKind::Disconnected,
            QueueErrorKind::Timeout => ErrorKind::Timeout,
            QueueErrorKind::Encode | QueueErrorKind::Decode => ErrorKind::Codec,
            QueueErrorKind::TaskDoneTooManyTimes => ErrorKind::TooManyReleases,
            _ => ErrorKind::Io,
        };
        Error::with_source(kind, "", e)
    }
}

/// A failed `get` (of a [`QueueProxy`](crate::QueueProxy)) as the manager's error, so that `?`
/// passes it on in a function returning [`Result`]: `Empty`, `Timeout`, `Closed`
/// ([`Disconnected`](ErrorKind::Disconnected)), or the error behind `Failed`.
impl From<GetError> for Error {
    fn from(e: GetError) -> Error {
        match e {
            GetError::Empty => Error::kind_only(ErrorKind::Empty),
            GetError::Timeout => Error::kind_only(ErrorKind::Timeout),
            GetError::Closed => Error::new(ErrorKind::Disconnected, "the queue is closed"),
            GetError::Failed(e) => e.into(),
            other => Error::new(ErrorKind::Io, other.to_string()),
        }
    }
}

/// A failed `put` (of a [`QueueProxy`](crate::QueueProxy)) as the manager's error, for `?`;
/// the value is dropped (take it first with [`PutError::into_inner`] to keep it).
impl<T> From<PutError<T>> for Error {
    fn from(e: PutError<T>) -> Error {
        match e {
            PutError::Full(_) => Error::kind_only(ErrorKind::Full),
            PutError::Timeout(_) => Error::kind_only(ErrorKind::Timeout),
            PutError::Closed(_) => Error::new(ErrorKind::Disconnected, "the queue is closed"),
            PutError::Failed(_, e) => e.into(),
        }
    }
}
