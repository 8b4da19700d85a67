//! The error type of this crate.

use std::fmt;
use std::io;

/// What went wrong, without the details; see [`Error::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The other end is gone: every handle of it was closed, or its process died (Python's
    /// `EOFError` on receive, `BrokenPipeError` on send). Nothing more will arrive.
    Disconnected,
    /// This end was shut down with [`Connection::shutdown`](crate::Connection::shutdown) (in
    /// this process): Python's "handle is closed". (Use after
    /// [`close`](crate::Connection::close) cannot happen: it consumes the connection.)
    Closed,
    /// The timeout passed before a message arrived (or a connection was accepted). Nothing was
    /// lost: a message partly received is kept for the next call.
    Timeout,
    /// Receiving on a write-only end or sending on a read-only end of a one-way pipe.
    WrongDirection,
    /// [`recv_bytes_into`](crate::Connection::recv_bytes_into) got a buffer smaller than the
    /// message; [`Error::needed`] says how large it must be. The message stays queued.
    BufferTooSmall,
    /// A message is larger than the connection's
    /// [`max_message_size`](crate::Connection::set_max_message_size). On receive the frame is
    /// rejected before anything is allocated and the connection is unusable afterwards.
    TooLarge,
    /// The byte stream is not a valid sequence of frames (bad header, missing descriptors):
    /// the peer is not a multiproc connection or is misbehaving. The connection is unusable.
    Protocol,
    /// The message could not be serialised, or the bytes received do not decode as the
    /// requested type (a type mismatch). The connection itself is fine.
    Codec,
    /// The authkey handshake failed: the peer's key differs, or it answered wrongly.
    Authentication,
    /// An argument is out of range (an offset/size beyond the buffer, an unusable address, a
    /// handle sent over TCP).
    InvalidInput,
    /// Some other operating-system error; see [`Error::source`](std::error::Error::source).
    Io,
}

/// The error type of `multiproc-ipc-pipe`.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    detail: Option<String>,
    needed: Option<usize>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with a human-readable detail.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Error { kind, detail: Some(detail.into()), needed: None, source: None }
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// For [`ErrorKind::BufferTooSmall`]: the size of the waiting message, in bytes.
    pub fn needed(&self) -> Option<usize> {
        self.needed
    }

    /// Whether this is [`ErrorKind::Disconnected`] (Python's `EOFError`).
    pub fn is_disconnected(&self) -> bool {
        self.kind == ErrorKind::Disconnected
    }

    /// Whether this is [`ErrorKind::Timeout`].
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    pub(crate) fn kind_only(kind: ErrorKind) -> Self {
        Error { kind, detail: None, needed: None, source: None }
    }

    pub(crate) fn too_small(needed: usize, have: usize) -> Self {
        Error {
            kind: ErrorKind::BufferTooSmall,
            detail: Some(format!("the message is {needed} bytes, the buffer {have}")),
            needed: Some(needed),
            source: None,
        }
    }

    /// An error from the operating system while doing `what`; disconnection errors
    /// (`EPIPE`, `ECONNRESET`) become [`ErrorKind::Disconnected`].
    pub(crate) fn io(err: io::Error, what: impl Into<String>) -> Self {
        let kind = match err.raw_os_error() {
            Some(libc::EPIPE) | Some(libc::ECONNRESET) | Some(libc::ENOTCONN) => {
                ErrorKind::Disconnected
            }
            Some(libc::EBADF) | Some(libc::ENOTSOCK) => ErrorKind::InvalidInput,
            _ => match err.kind() {
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ErrorKind::Timeout,
                io::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
                _ => ErrorKind::Io,
            },
        };
        Error { kind, detail: Some(what.into()), needed: None, source: Some(Box::new(err)) }
    }

    pub(crate) fn codec(err: multiproc_arena::Error) -> Self {
        let detail = err.to_string();
        Error {
            kind: ErrorKind::Codec,
            detail: Some(detail),
            needed: None,
            source: Some(Box::new(err)),
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::Disconnected => "the other end of the connection is closed",
            ErrorKind::Closed => "the connection handle is closed",
            ErrorKind::Timeout => "timed out",
            ErrorKind::WrongDirection => "wrong direction for a one-way connection",
            ErrorKind::BufferTooSmall => "buffer too small for the message",
            ErrorKind::TooLarge => "message larger than the connection's limit",
            ErrorKind::Protocol => "malformed frame from the peer",
            ErrorKind::Codec => "message does not (de)serialise",
            ErrorKind::Authentication => "authentication failed",
            ErrorKind::InvalidInput => "invalid argument",
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
            if self.kind != ErrorKind::Codec {
                write!(f, " ({s})")?;
            }
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
            ErrorKind::Disconnected => io::ErrorKind::UnexpectedEof,
            ErrorKind::Timeout => io::ErrorKind::TimedOut,
            ErrorKind::InvalidInput | ErrorKind::WrongDirection | ErrorKind::BufferTooSmall => {
                io::ErrorKind::InvalidInput
            }
            ErrorKind::Protocol | ErrorKind::Codec | ErrorKind::TooLarge => {
                io::ErrorKind::InvalidData
            }
            ErrorKind::Authentication => io::ErrorKind::PermissionDenied,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
