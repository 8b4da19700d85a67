//! Errors of this crate: [`PutError`] hands the value back, [`GetError`] says why nothing
//! came, [`Error`] is everything else.

use std::fmt;

multiproc_arena::error_type! {
    /// The error type of `multiproc-ipc-queue` (besides [`PutError`] and [`GetError`]).
    pub struct Error {
        undecoded: Option<Vec<u8>> = None,
    }

    /// What went wrong, without the details; see [`Error::kind`].
    pub enum ErrorKind {
        /// The item could not be serialised (its `Serialize` impl failed, or it holds a handle
        /// such as a queue or lock, which cannot travel through a queue's bytes).
        Encode => "the item could not be serialised",
        /// A message could not be deserialised into the queue's item type. It was taken, but
        /// not lost: [`Error::undecoded`] holds its bytes. The queue goes on.
        Decode => "a message could not be deserialised into the item type",
        /// The arena has no room for the queue.
        Arena => "no room in the arena for the queue",
        /// More live processes use the queue than its party table holds.
        TooManyProcesses => "too many processes use this queue",
        /// `task_done` was called more times than items were put.
        TaskDoneTooManyTimes => "task_done() called too many times",
        /// A received queue handle is invalid (wrong type, no queue at its offset).
        InvalidHandle => "invalid queue handle",
        /// A large (streamed or spilled) message could not be buffered or mapped in this
        /// process. The message was consumed; the queue goes on.
        OutOfMemory => "a large message could not be buffered or mapped",
        /// The system ran short while creating the queue or joining it: no file descriptor
        /// (`EMFILE`/`ENFILE`) or no memory (`ENOSPC`/`ENOMEM`) left; the source names which.
        /// Nothing was changed; the same call succeeds once the resource is back.
        Resources => "the system has no descriptor or memory left for the queue",
        /// A `_timeout` call's time passed first
        /// ([`JoinableQueue::join_timeout`](crate::JoinableQueue::join_timeout): tasks are
        /// still unfinished). Nothing was changed.
        Timeout => "timed out",
        /// The queue is out of reach: a manager's queue proxy
        /// (`multiproc_manager::QueueProxy`) lost its connection, or the manager shut down.
        /// No later call through this proxy can succeed. The source is the manager's error.
        Disconnected => "the queue's manager is gone (connection lost or shut down)",
        /// A manager's queue proxy: the manager refused or failed the operation for another
        /// reason (the object is gone, a message over its frame limit, a protocol error); the
        /// [`source`](std::error::Error::source) is the manager's error, with its own kind.
        Manager => "the manager holding the queue failed the operation",
    }

    io {
        Timeout => TimedOut,
        Disconnected => BrokenPipe,
        Encode => InvalidInput,
        Decode => InvalidData,
        OutOfMemory => OutOfMemory,
        Resources => OutOfMemory,
    }

    classes {
        timeout: [Timeout],
        would_block: [],
        disconnected: [Disconnected],
    }
}

impl Error {
    pub(crate) fn arena(e: multiproc_arena::Error) -> Self {
        use multiproc_arena::ErrorKind as A;
        let kind = match e.kind() {
            A::NoSpace | A::NoDescriptors => ErrorKind::Resources,
            _ => ErrorKind::Arena,
        };
        Error::with_source(kind, "", e)
    }

    pub(crate) fn io(e: std::io::Error, what: &str) -> Self {
        let kind = if multiproc_arena::is_resource_shortage(&e) {
            ErrorKind::Resources
        } else {
            ErrorKind::Arena
        };
        Error::with_source(kind, what, e)
    }

    pub(crate) fn encode(e: postcard::Error) -> Self {
        Error::with_source(ErrorKind::Encode, "", e)
    }

    /// A message taken from the queue that does not decode; it keeps the message's bytes.
    pub(crate) fn undecodable(e: postcard::Error, bytes: &[u8]) -> Self {
        let mut err = Error::with_source(
            ErrorKind::Decode,
            format!("{} bytes handed back (Error::undecoded)", bytes.len()),
            e,
        );
        err.undecoded = Some(bytes.to_vec());
        err
    }

    /// An error of `kind` caused by `cause` (its [`source`](std::error::Error::source)), for
    /// crates whose objects report this crate's errors: the manager's queue proxy carries the
    /// manager's error this way.
    pub fn with_cause(
        kind: ErrorKind,
        detail: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::with_source(kind, detail, cause)
    }

    /// This error, holding `bytes` as the message that did not decode (see
    /// [`undecoded`](Self::undecoded)); for a [`Decode`](ErrorKind::Decode) error made
    /// outside this crate (the manager's queue proxy).
    pub fn with_undecoded(mut self, bytes: Vec<u8>) -> Self {
        self.undecoded = Some(bytes);
        self
    }

    /// For a [`Decode`](ErrorKind::Decode) error of a `get`: the message's bytes (postcard, as
    /// `put` wrote them), which did not decode into the queue's item type. The message is not
    /// lost: decode it as the type it was sent as, or log it. `None` for other errors.
    pub fn undecoded(&self) -> Option<&[u8]> {
        self.undecoded.as_deref()
    }

    /// Takes the message's bytes out of a [`Decode`](ErrorKind::Decode) error (see
    /// [`undecoded`](Self::undecoded)).
    pub fn take_undecoded(&mut self) -> Option<Vec<u8>> {
        self.undecoded.take()
    }

    /// For an error from the arena, the arena's kind: `NotFound`, `AlreadyExists`,
    /// `WrongType` for the named constructors, `NoSpace`, `NoDescriptors`, ….
    pub fn arena_kind(&self) -> Option<multiproc_arena::ErrorKind> {
        self.source_as::<multiproc_arena::Error>().map(|e| e.kind())
    }
}

impl From<multiproc_arena::Error> for Error {
    fn from(e: multiproc_arena::Error) -> Self {
        Error::arena(e)
    }
}

impl multiproc_arena::named::HasArenaKind for Error {
    fn arena_kind(&self) -> Option<multiproc_arena::ErrorKind> {
        Error::arena_kind(self)
    }
}

/// Why a `put` did not happen; the item comes back.
///
/// `put` reports `Closed` and `Failed`; `try_put` adds `Full`; `put_timeout` adds `Timeout`.
/// As every error of the workspace it answers [`is_timeout`](Self::is_timeout) (`Timeout`),
/// [`is_would_block`](Self::is_would_block) (`Full`) and
/// [`is_disconnected`](Self::is_disconnected) (`Closed`, or `Failed` with a
/// [`Disconnected`](ErrorKind::Disconnected) error), also through
/// [`multiproc_arena::api::OpError`] (for an item type that is `Send + Sync + 'static`).
///
/// A manager's queue proxy (`multiproc_manager::QueueProxy`) fails with this type too: its
/// lost connection is `Failed(item, e)` with `e.is_disconnected()`, any other failure of the
/// manager `Failed(item, e)` of kind [`Manager`](ErrorKind::Manager).
pub enum PutError<T> {
    /// The queue is full (`try_put`).
    Full(T),
    /// The queue stayed full until the timeout passed (`put_timeout`).
    Timeout(T),
    /// The queue was closed.
    Closed(T),
    /// The item could not be put (it failed to serialise, or the process could not join
    /// the queue); see the [`Error`]. The queue is unchanged.
    Failed(T, Error),
}

impl<T> PutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(v) | PutError::Timeout(v) | PutError::Closed(v) => v,
            PutError::Failed(v, _) => v,
        }
    }

    /// Whether this is `Full`.
    pub fn is_full(&self) -> bool {
        matches!(self, PutError::Full(_))
    }

    /// Whether this is `Timeout`.
    pub fn is_timeout(&self) -> bool {
        matches!(self, PutError::Timeout(_))
    }

    /// Whether this is `Closed`.
    pub fn is_closed(&self) -> bool {
        matches!(self, PutError::Closed(_))
    }

    /// Whether a `try_put` found the queue full (`Full`); the item came back.
    pub fn is_would_block(&self) -> bool {
        self.is_full()
    }

    /// Whether no later `put` can succeed: the queue is closed (`Closed`), or out of reach
    /// (`Failed` with a [`Disconnected`](ErrorKind::Disconnected) error: a manager proxy's
    /// lost connection).
    pub fn is_disconnected(&self) -> bool {
        match self {
            PutError::Closed(_) => true,
            PutError::Failed(_, e) => e.is_disconnected(),
            _ => false,
        }
    }

    /// The error behind `Failed`.
    pub fn error(&self) -> Option<&Error> {
        match self {
            PutError::Failed(_, e) => Some(e),
            _ => None,
        }
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("Full(..)"),
            PutError::Timeout(_) => f.write_str("Timeout(..)"),
            PutError::Closed(_) => f.write_str("Closed(..)"),
            PutError::Failed(_, e) => f.debug_tuple("Failed").field(&"..").field(e).finish(),
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("put on a full queue"),
            PutError::Timeout(_) => f.write_str("timed out putting on a full queue"),
            PutError::Closed(_) => f.write_str("put on a closed queue"),
            PutError::Failed(_, e) => write!(f, "put failed: {e}"),
        }
    }
}

impl<T> std::error::Error for PutError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PutError::Failed(_, e) => Some(e),
            _ => None,
        }
    }
}

multiproc_arena::op_error_by_inherent!([T: Send + Sync + 'static] PutError<T>);

/// Why a `get` returned no item.
///
/// `get` reports `Closed` and `Failed`; `try_get` adds `Empty`; `get_timeout` adds `Timeout`.
/// As every error of the workspace it answers [`is_timeout`](Self::is_timeout) (`Timeout`),
/// [`is_would_block`](Self::is_would_block) (`Empty`) and
/// [`is_disconnected`](Self::is_disconnected) (`Closed`, or `Failed` with a
/// [`Disconnected`](ErrorKind::Disconnected) error), also through
/// [`multiproc_arena::api::OpError`].
///
/// A manager's queue proxy (`multiproc_manager::QueueProxy`) fails with this type too: a
/// value that does not decode is `Failed(e)` of kind [`Decode`](ErrorKind::Decode) with the
/// bytes in [`undecoded`](Error::undecoded), as here; its lost connection is `Failed(e)` with
/// `e.is_disconnected()`.
#[derive(Debug)]
#[non_exhaustive]
pub enum GetError {
    /// The queue is empty (`try_get`).
    Empty,
    /// The queue stayed empty until the timeout passed (`get_timeout`).
    Timeout,
    /// The queue is closed and every message was taken.
    Closed,
    /// A message was taken but could not be deserialised into the item type: the error's
    /// [`undecoded`](Error::undecoded) hands its bytes back, so nothing is lost; the next
    /// `get` returns the next message. (Or the process could not join the queue.)
    Failed(Error),
}

impl GetError {
    /// Whether this is `Empty`.
    pub fn is_empty(&self) -> bool {
        matches!(self, GetError::Empty)
    }

    /// Whether this is `Timeout`.
    pub fn is_timeout(&self) -> bool {
        matches!(self, GetError::Timeout)
    }

    /// Whether this is `Closed`.
    pub fn is_closed(&self) -> bool {
        matches!(self, GetError::Closed)
    }

    /// Whether a `try_get` found the queue empty (`Empty`).
    pub fn is_would_block(&self) -> bool {
        self.is_empty()
    }

    /// Whether no later `get` can succeed: the queue is closed and drained (`Closed`), or out
    /// of reach (`Failed` with a [`Disconnected`](ErrorKind::Disconnected) error: a manager
    /// proxy's lost connection).
    pub fn is_disconnected(&self) -> bool {
        match self {
            GetError::Closed => true,
            GetError::Failed(e) => e.is_disconnected(),
            _ => false,
        }
    }

    /// The error behind `Failed`.
    pub fn error(&self) -> Option<&Error> {
        match self {
            GetError::Failed(e) => Some(e),
            _ => None,
        }
    }
}

multiproc_arena::op_error_by_inherent!(GetError);

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Empty => f.write_str("get on an empty queue"),
            GetError::Timeout => f.write_str("timed out getting from an empty queue"),
            GetError::Closed => f.write_str("get on a closed and empty queue"),
            GetError::Failed(e) => write!(f, "get failed: {e}"),
        }
    }
}

impl std::error::Error for GetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GetError::Failed(e) => Some(e),
            _ => None,
        }
    }
}
