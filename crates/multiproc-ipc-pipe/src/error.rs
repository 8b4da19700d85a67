//! The error type of this crate.

use std::io;

multiproc_arena::error_type! {
    /// The error type of `multiproc-ipc-pipe`.
    pub struct Error {
        needed: Option<usize> = None,
    }

    /// What went wrong, without the details; see [`Error::kind`].
    pub enum ErrorKind {
        /// The other end is gone: every handle of it was closed, or its process died (Python's
        /// `EOFError` on receive, `BrokenPipeError` on send). Nothing more will arrive.
        Disconnected => "the other end of the connection is closed",
        /// This end was shut down with [`Connection::shutdown`](crate::Connection::shutdown)
        /// (in this process): Python's "handle is closed". (Use after
        /// [`close`](crate::Connection::close) cannot happen: it consumes the connection.)
        Closed => "the connection handle is closed",
        /// The timeout passed before a message arrived (or a connection was accepted). Nothing
        /// was lost: a message partly received is kept for the next call.
        Timeout => "timed out",
        /// A `try_` call could not proceed now: no whole message is waiting
        /// ([`try_recv`](crate::Connection::try_recv)), or there is no room to start sending
        /// ([`try_send`](crate::Connection::try_send)). Nothing was lost: a message partly
        /// received is kept for the next call. Maps to [`std::io::ErrorKind::WouldBlock`], as
        /// tokio's `AsyncFd::try_io` expects.
        WouldBlock => "would block",
        /// Receiving on a write-only end or sending on a read-only end of a one-way pipe.
        WrongDirection => "wrong direction for a one-way connection",
        /// [`recv_bytes_into`](crate::Connection::recv_bytes_into) got a buffer smaller than
        /// the message; [`Error::needed`] says how large it must be. The message stays queued.
        BufferTooSmall => "buffer too small for the message",
        /// A message is larger than the connection's
        /// [`max_message_size`](crate::Connection::set_max_message_size). On receive the frame
        /// is rejected before anything is allocated and the connection is unusable afterwards.
        TooLarge => "message larger than the connection's limit",
        /// The byte stream is not a valid sequence of frames (bad header, missing
        /// descriptors): the peer is not a multiproc connection or is misbehaving. The
        /// connection is unusable.
        Protocol => "malformed frame from the peer",
        /// The message could not be serialised, or the bytes received do not decode as the
        /// requested type (a type mismatch). The connection itself is fine. A received message
        /// that does not decode is not lost: [`Error::undecoded`] holds its bytes.
        Codec => "message does not (de)serialise",
        /// The authkey handshake failed: the peer's key differs, or it answered wrongly.
        Authentication => "authentication failed",
        /// An argument is out of range (an offset/size beyond the buffer, an unusable address,
        /// a handle sent over TCP).
        InvalidInput => "invalid argument",
        /// Some other operating-system error; see [`Error::source`](std::error::Error::source).
        Io => "I/O error",
    }

    io {
        Disconnected => UnexpectedEof,
        Timeout => TimedOut,
        WouldBlock => WouldBlock,
        InvalidInput => InvalidInput,
        WrongDirection => InvalidInput,
        BufferTooSmall => InvalidInput,
        Protocol => InvalidData,
        Codec => InvalidData,
        TooLarge => InvalidData,
        Authentication => PermissionDenied,
    }

    classes {
        timeout: [Timeout],
        would_block: [WouldBlock],
        disconnected: [Disconnected],
    }
}

/// The source of a receive's [`Codec`](ErrorKind::Codec) error: the decoder's error and the
/// message's bytes. (The bytes live in the source, not in a field of [`Error`], so that the
/// error — and every `Result` of this crate — is no larger for them.)
#[derive(Debug)]
struct Undecoded {
    err: multiproc_arena::Error,
    /// `None` once taken.
    bytes: Option<Vec<u8>>,
}

impl std::fmt::Display for Undecoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The same text as the error's detail, which is therefore not repeated.
        let n = self.bytes.as_ref().map_or(0, Vec::len);
        write!(f, "{}; {n} bytes handed back (Error::undecoded)", self.err)
    }
}

impl std::error::Error for Undecoded {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.err)
    }
}

impl Error {
    /// For [`ErrorKind::BufferTooSmall`]: the size of the waiting message, in bytes.
    pub fn needed(&self) -> Option<usize> {
        self.needed
    }

    pub(crate) fn too_small(needed: usize, have: usize) -> Self {
        let mut e = Error::new(
            ErrorKind::BufferTooSmall,
            format!("the message is {needed} bytes, the buffer {have}"),
        );
        e.needed = Some(needed);
        e
    }

    /// A received message that does not decode as the type asked for; it keeps the bytes.
    pub(crate) fn undecodable(err: multiproc_arena::Error, bytes: Vec<u8>) -> Self {
        let u = Undecoded { err, bytes: Some(bytes) };
        Error::with_source(ErrorKind::Codec, u.to_string(), u)
    }

    /// For a [`Codec`](ErrorKind::Codec) error of a receive
    /// ([`recv`](crate::Connection::recv), [`recv_timeout`](crate::Connection::recv_timeout),
    /// [`try_recv`](crate::Connection::try_recv)): the message's bytes, which did not decode
    /// as the type asked for — what [`recv_bytes`](crate::Connection::recv_bytes) would have
    /// returned (postcard, as [`send`](crate::Connection::send) wrote them; descriptors sent
    /// with it are closed). The message is not lost: decode it as the type it was sent as, or
    /// log it; the connection goes on with the next. `None` for other errors. (The queue's
    /// error has the same accessors.)
    pub fn undecoded(&self) -> Option<&[u8]> {
        self.source_as::<Undecoded>()?.bytes.as_deref()
    }

    /// Takes the message's bytes out of a [`Codec`](ErrorKind::Codec) error of a receive (see
    /// [`undecoded`](Self::undecoded)); without a copy unless the error was cloned (then a clone keeps its own).
    pub fn take_undecoded(&mut self) -> Option<Vec<u8>> {
        let src = self.source.as_mut()?;
        if let Some(u) = std::sync::Arc::get_mut(src).and_then(|s| s.downcast_mut::<Undecoded>()) {
            return u.bytes.take();
        }
        // Shared with a clone: copy them, and leave this error without them.
        let u = self.source_as::<Undecoded>()?;
        let bytes = u.bytes.clone();
        self.source = Some(std::sync::Arc::new(Undecoded { err: u.err.clone(), bytes: None }));
        bytes
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
        Error::with_source(kind, what, err)
    }

    pub(crate) fn codec(err: multiproc_arena::Error) -> Self {
        Error::with_source(ErrorKind::Codec, err.to_string(), err)
    }
}
