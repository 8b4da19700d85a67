//! The errors of connecting an executor or running a worker.
//!
//! Tasks fail with the pool's [`multiproc_pool::Error`] (what a future holds); this
//! [`Error`] is for setting up: a bad URL, no authkey, Redis unreachable.

multiproc_arena::error_type! {
    /// The error type of `multiproc-cluster`'s setup calls.
    pub struct Error {}

    /// What went wrong, without the details; see [`Error::kind`].
    pub enum ErrorKind {
        /// A setting is missing or out of range (no authkey, a zero chunk size, a bad URL).
        InvalidArgument => "invalid argument",
        /// Redis could not be reached or answered with an error.
        Redis => "redis error",
        /// The local pool of a worker could not be started.
        Pool => "cannot start the local pool",
    }

    io {
        InvalidArgument => InvalidInput,
    }
}

impl Error {
    pub(crate) fn redis(e: redis::RedisError, what: impl Into<String>) -> Self {
        Error::with_source(ErrorKind::Redis, what, e)
    }

    pub(crate) fn pool(e: multiproc_pool::Error) -> Self {
        Error::with_source(ErrorKind::Pool, "the worker's local pool", e)
    }
}
