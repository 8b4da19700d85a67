//! Errors of this crate: [`PutError`] hands the value back, [`GetError`] says why nothing
//! came, [`Error`] is everything else.

use std::fmt;

/// What went wrong, without the details; see [`Error::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The item could not be serialised (its `Serialize` impl failed, or it holds a handle
    /// such as a queue or lock, which cannot travel through a queue's bytes).
    Encode,
    /// A message could not be deserialised into the queue's item type. The message was
    /// consumed; the queue goes on.
    Decode,
    /// The arena has no room for the queue.
    Arena,
    /// More live processes use the queue than its party table holds.
    TooManyProcesses,
    /// `task_done` was called more times than items were put.
    TaskDoneTooManyTimes,
    /// A received queue handle is invalid (wrong type, no queue at its offset).
    InvalidHandle,
    /// A large (streamed or spilled) message could not be buffered or mapped in this
    /// process. The message was consumed; the queue goes on.
    OutOfMemory,
    /// The system ran short while creating the queue or joining it: no file descriptor
    /// (`EMFILE`/`ENFILE`) or no memory (`ENOSPC`/`ENOMEM`) left; the source names which.
    /// Nothing was changed; the same call succeeds once the resource is back.
    Resources,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Encode => "the item could not be serialised",
            ErrorKind::Decode => "a message could not be deserialised into the item type",
            ErrorKind::Arena => "no room in the arena for the queue",
            ErrorKind::TooManyProcesses => "too many processes use this queue",
            ErrorKind::TaskDoneTooManyTimes => "task_done() called too many times",
            ErrorKind::InvalidHandle => "invalid queue handle",
            ErrorKind::OutOfMemory => "a large message could not be buffered or mapped",
            ErrorKind::Resources => "the system has no descriptor or memory left for the queue",
        })
    }
}

/// The error type of `multiproc-ipc-queue` (besides [`PutError`] and [`GetError`]).
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    detail: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Error { kind, detail: Some(detail.into()), source: None }
    }

    pub(crate) fn kind_only(kind: ErrorKind) -> Self {
        Error { kind, detail: None, source: None }
    }

    pub(crate) fn arena(e: multiproc_arena::Error) -> Self {
        use multiproc_arena::ErrorKind as A;
        let kind = match e.kind() {
            A::NoSpace | A::NoDescriptors => ErrorKind::Resources,
            _ => ErrorKind::Arena,
        };
        Error { kind, detail: None, source: Some(Box::new(e)) }
    }

    pub(crate) fn io(e: std::io::Error, what: &str) -> Self {
        let kind = if multiproc_arena::is_resource_shortage(&e) {
            ErrorKind::Resources
        } else {
            ErrorKind::Arena
        };
        let name = e.raw_os_error().and_then(multiproc_arena::errno_name);
        let detail = match name {
            Some(n) => format!("{what}: {n}"),
            None => what.to_string(),
        };
        Error { kind, detail: Some(detail), source: Some(Box::new(e)) }
    }

    pub(crate) fn encode(e: postcard::Error) -> Self {
        Error { kind: ErrorKind::Encode, detail: None, source: Some(Box::new(e)) }
    }

    pub(crate) fn decode(e: postcard::Error) -> Self {
        Error { kind: ErrorKind::Decode, detail: None, source: Some(Box::new(e)) }
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// For an error from the arena, the arena's kind: `NotFound`, `AlreadyExists`,
    /// `WrongType` for the named constructors, `NoSpace`, `NoDescriptors`, ….
    pub fn arena_kind(&self) -> Option<multiproc_arena::ErrorKind> {
        self.source.as_ref()?.downcast_ref::<multiproc_arena::Error>().map(|e| e.kind())
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

/// Why a `put` did not happen; the item comes back.
///
/// `put` reports `Closed` and `Failed`; `try_put` adds `Full`; `put_timeout` adds `Timeout`.
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

/// Why a `get` returned no item.
///
/// `get` reports `Closed` and `Failed`; `try_get` adds `Empty`; `get_timeout` adds `Timeout`.
#[derive(Debug)]
#[non_exhaustive]
pub enum GetError {
    /// The queue is empty (`try_get`).
    Empty,
    /// The queue stayed empty until the timeout passed (`get_timeout`).
    Timeout,
    /// The queue is closed and every message was taken.
    Closed,
    /// A message was taken but could not be deserialised into the item type (it is
    /// consumed; the next `get` returns the next message).
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
}

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
