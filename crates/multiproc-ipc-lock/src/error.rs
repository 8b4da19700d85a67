//! The error type of this crate.

use std::fmt;

/// What went wrong, without the details; see [`Error::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Lock::release`](crate::Lock::release) of a lock that nobody holds (Python's
    /// `ValueError`).
    NotHeld,
    /// The caller does not own the lock: [`RLock::release`](crate::RLock::release) by another
    /// thread or process, or a [`Condition`](crate::Condition) wait/notify without holding its
    /// lock (Python's `AssertionError` / `RuntimeError`).
    NotOwner,
    /// A [`BoundedSemaphore`](crate::BoundedSemaphore) released above its initial value, or a
    /// semaphore above [`SEMAPHORE_VALUE_MAX`](crate::SEMAPHORE_VALUE_MAX) (Python's
    /// `ValueError`).
    TooManyReleases,
    /// The [`Barrier`](crate::Barrier) is broken: aborted, reset while waiting, timed out, its
    /// action panicked, or a waiting party died (Python's `BrokenBarrierError`).
    BrokenBarrier,
    /// An argument out of range (a barrier of zero parties, a semaphore value too large).
    InvalidArgument,
    /// The arena could not hold the object; see
    /// [`source`](std::error::Error::source) for the arena's error.
    Arena,
}

/// The error type of `multiproc-ipc-lock`.
pub struct Error {
    kind: ErrorKind,
    detail: Option<String>,
    source: Option<multiproc_arena::Error>,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Error { kind, detail: Some(detail.into()), source: None }
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// For an [`ErrorKind::Arena`] error, the arena's kind: `NotFound`, `AlreadyExists`,
    /// `WrongType` for the named constructors, `NoSpace`, `NoDescriptors`, ….
    pub fn arena_kind(&self) -> Option<multiproc_arena::ErrorKind> {
        self.source.as_ref().map(|e| e.kind())
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error { kind, detail: None, source: None }
    }
}

impl From<multiproc_arena::Error> for Error {
    fn from(e: multiproc_arena::Error) -> Self {
        Error { kind: ErrorKind::Arena, detail: None, source: Some(e) }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::NotHeld => "released a lock that is not held",
            ErrorKind::NotOwner => "the calling thread does not own the lock",
            ErrorKind::TooManyReleases => "semaphore or lock released too many times",
            ErrorKind::BrokenBarrier => "the barrier is broken",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::Arena => "could not place or find the object in shared memory",
        })
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

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind);
        if let Some(x) = &self.detail {
            d.field("detail", x);
        }
        if let Some(s) = &self.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        let kind = match e.kind {
            ErrorKind::InvalidArgument => std::io::ErrorKind::InvalidInput,
            ErrorKind::Arena => std::io::ErrorKind::OutOfMemory,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}
