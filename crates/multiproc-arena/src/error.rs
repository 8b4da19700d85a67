//! The error type of this crate.

use std::fmt;
use std::io;

/// What went wrong, without the details; see [`Error::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No segment has this name.
    NotFound,
    /// A segment with this name exists already (creation uses `O_EXCL`).
    AlreadyExists,
    /// The name is empty, too long, or holds `/` or NUL after the optional leading `/`.
    InvalidName,
    /// The object does not start with a multiproc segment header (wrong magic).
    InvalidHeader,
    /// The header was written by an incompatible layout version.
    VersionMismatch,
    /// The object is shorter than its header says.
    Truncated,
    /// The creator has not finished initialising the segment.
    NotInitialized,
    /// The operating system refused access (file mode, another user).
    PermissionDenied,
    /// The arena has no free block large enough.
    ArenaFull,
    /// A size or alignment the arena cannot serve (zero-sized is fine; this is too large).
    InvalidLayout,
    /// A handle was serialised outside a transfer context, or its descriptors are missing.
    NoTransferContext,
    /// A received handle does not match what it claims to be (type, arena, offset).
    InvalidHandle,
    /// A serialisation or deserialisation error.
    Codec,
    /// The memory for a segment cannot be had: `/dev/shm` (a tmpfs) is full, or the memory
    /// limit was reached (`ENOSPC`, `ENOMEM`). Reported when the segment is created or grows,
    /// never later as a SIGBUS on first touch: the pages are reserved up front.
    NoSpace,
    /// The process (`EMFILE`) or the system (`ENFILE`) has no file descriptors left.
    NoDescriptors,
    /// A named object holds another type than the one asked for (or is no named object).
    WrongType,
    /// Some other operating-system error; see [`Error::source`](std::error::Error::source).
    Io,
}

/// The error type of `multiproc-arena`.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    detail: Option<String>,
    source: Option<io::Error>,
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

    pub(crate) fn io(err: io::Error, what: impl Into<String>) -> Self {
        let kind = match (err.raw_os_error(), err.kind()) {
            (Some(libc::ENOSPC | libc::ENOMEM), _) => ErrorKind::NoSpace,
            (Some(libc::EMFILE | libc::ENFILE), _) => ErrorKind::NoDescriptors,
            (_, io::ErrorKind::NotFound) => ErrorKind::NotFound,
            (_, io::ErrorKind::AlreadyExists) => ErrorKind::AlreadyExists,
            (_, io::ErrorKind::PermissionDenied) => ErrorKind::PermissionDenied,
            _ => ErrorKind::Io,
        };
        Error { kind, detail: Some(what.into()), source: Some(err) }
    }

    pub(crate) fn kind_only(kind: ErrorKind) -> Self {
        Error { kind, detail: None, source: None }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::NotFound => "no such shared-memory segment",
            ErrorKind::AlreadyExists => "a shared-memory segment with this name already exists",
            ErrorKind::InvalidName => "invalid shared-memory name",
            ErrorKind::InvalidHeader => "not a multiproc segment (bad magic)",
            ErrorKind::VersionMismatch => "segment layout version mismatch",
            ErrorKind::Truncated => "segment is truncated",
            ErrorKind::NotInitialized => "segment is still being initialised by its creator",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::ArenaFull => "arena is full",
            ErrorKind::InvalidLayout => "size or alignment not supported by the arena",
            ErrorKind::NoTransferContext => {
                "a process handle can only be serialised inside a transfer context \
                 (pass it as a process argument or over a Connection)"
            }
            ErrorKind::InvalidHandle => "received handle is invalid",
            ErrorKind::Codec => "serialisation error",
            ErrorKind::NoSpace => {
                "no memory left for shared memory (/dev/shm or the memory limit is full)"
            }
            ErrorKind::NoDescriptors => "no file descriptors left",
            ErrorKind::WrongType => "the named object holds another type",
            ErrorKind::Io => "I/O error",
        };
        f.write_str(s)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        if let Some(s) = &self.source {
            match s.raw_os_error().and_then(errno_name) {
                Some(name) => write!(f, " ({name}: {s})")?,
                None => write!(f, " ({s})")?,
            }
        }
        Ok(())
    }
}

/// The symbolic name of the `errno` values that mean "the machine ran short" (and a few
/// others worth naming), so that error messages say `ENOSPC` rather than only "os error 28".
pub fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::ENOSPC => "ENOSPC",
        libc::ENOMEM => "ENOMEM",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::EAGAIN => "EAGAIN",
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::ENOBUFS => "ENOBUFS",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ETIMEDOUT => "ETIMEDOUT",
        _ => return None,
    })
}

/// Whether an I/O error means the machine ran short of a resource (memory, `/dev/shm`
/// space, descriptors, processes): a condition that may pass, unlike a bad argument.
pub fn is_resource_shortage(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(
            libc::ENOSPC
                | libc::ENOMEM
                | libc::EMFILE
                | libc::ENFILE
                | libc::EAGAIN
                | libc::ENOBUFS
        )
    )
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
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
            ErrorKind::NotFound => io::ErrorKind::NotFound,
            ErrorKind::AlreadyExists => io::ErrorKind::AlreadyExists,
            ErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
            ErrorKind::NoSpace => io::ErrorKind::OutOfMemory,
            ErrorKind::InvalidName | ErrorKind::InvalidLayout => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
