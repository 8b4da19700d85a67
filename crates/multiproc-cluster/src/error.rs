//! The errors of connecting an executor or running a worker.
//!
//! Tasks fail with the pool's [`multiproc_pool::Error`] (what a future holds); this
//! [`Error`] is for setting up: a bad URL, no authkey, Redis unreachable.

use std::fmt;

/// What went wrong, without the details; see [`Error::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A setting is missing or out of range (no authkey, a zero chunk size, a bad URL).
    InvalidArgument,
    /// Redis could not be reached or answered with an error.
    Redis,
    /// The local pool of a worker could not be started.
    Pool,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::Redis => "redis error",
            ErrorKind::Pool => "cannot start the local pool",
        })
    }
}

/// The error type of `multiproc-cluster`'s setup calls.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    detail: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Error { kind, detail: detail.into(), source: None }
    }

    pub(crate) fn redis(e: redis::RedisError, what: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Redis, detail: what.into(), source: Some(Box::new(e)) }
    }

    pub(crate) fn pool(e: multiproc_pool::Error) -> Self {
        Error {
            kind: ErrorKind::Pool,
            detail: "the worker's local pool".into(),
            source: Some(Box::new(e)),
        }
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)?;
        if let Some(s) = &self.source {
            write!(f, " ({s})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}
