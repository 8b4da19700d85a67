//! The error type of this crate.

multiproc_arena::error_type! {
    /// The error type of `multiproc-ipc-lock`.
    pub struct Error {}

    /// What went wrong, without the details; see [`Error::kind`].
    pub enum ErrorKind {
        /// [`Lock::release`](crate::Lock::release) of a lock that nobody holds (Python's
        /// `ValueError`).
        NotHeld => "released a lock that is not held",
        /// The caller does not own the lock: [`RLock::release`](crate::RLock::release) by
        /// another thread or process, or a [`Condition`](crate::Condition) wait/notify without
        /// holding its lock (Python's `AssertionError` / `RuntimeError`).
        NotOwner => "the calling thread does not own the lock",
        /// A [`BoundedSemaphore`](crate::BoundedSemaphore) released above its initial value, or
        /// a semaphore above [`SEMAPHORE_VALUE_MAX`](crate::SEMAPHORE_VALUE_MAX) (Python's
        /// `ValueError`).
        TooManyReleases => "semaphore or lock released too many times",
        /// The [`Barrier`](crate::Barrier) is broken: aborted, reset while waiting, timed out,
        /// its action panicked, or a waiting party died (Python's `BrokenBarrierError`).
        BrokenBarrier => "the barrier is broken",
        /// A `_timeout` call's time passed first (nothing was taken or done).
        Timeout => "timed out",
        /// A `try_` call could not proceed now (nothing was taken or done).
        WouldBlock => "would block",
        /// An argument out of range (a barrier of zero parties, a semaphore value too large).
        InvalidArgument => "invalid argument",
        /// The arena could not hold the object; see
        /// [`source`](std::error::Error::source) for the arena's error.
        Arena => "could not place or find the object in shared memory",
    }

    io {
        Timeout => TimedOut,
        WouldBlock => WouldBlock,
        InvalidArgument => InvalidInput,
        Arena => OutOfMemory,
    }

    classes {
        timeout: [Timeout],
        would_block: [WouldBlock],
        disconnected: [],
    }
}

impl Error {
    /// For an [`ErrorKind::Arena`] error, the arena's kind: `NotFound`, `AlreadyExists`,
    /// `WrongType` for the named constructors, `NoSpace`, `NoDescriptors`, ….
    pub fn arena_kind(&self) -> Option<multiproc_arena::ErrorKind> {
        self.source_as::<multiproc_arena::Error>().map(|e| e.kind())
    }
}

impl From<multiproc_arena::Error> for Error {
    fn from(e: multiproc_arena::Error) -> Self {
        Error::with_source(ErrorKind::Arena, "", e)
    }
}
