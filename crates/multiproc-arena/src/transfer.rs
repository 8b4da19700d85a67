//! Handle transfer: sending shared objects (and the descriptors behind them) to other
//! processes.
//!
//! A handle — an [`Arena`](crate::Arena), a [`Shared`](crate::Shared), a lock, a queue, a
//! connection — is more than bytes: it needs the descriptor of the memory or socket it lives
//! in. Handles implement serde's traits so they can sit inside ordinary argument types, but only
//! inside a *transfer context*: [`encode`] collects the descriptors in an out-of-band table and
//! the bytes carry indices into it; [`decode`] hands the received table to the handles'
//! `Deserialize`. The table travels as SCM_RIGHTS on a Unix socket ([`send_with_fds`]) or as
//! descriptors inherited by a spawned child. Serialising a handle outside a context is an
//! error of kind [`NoTransferContext`](crate::ErrorKind::NoTransferContext).
//!
//! A receiver that gets the same arena many times maps it once and closes the duplicates, so
//! the descriptors a handle costs stay bounded however often it is passed.
//!
//! ```
//! use multiproc_arena::{transfer, Shared};
//! use std::sync::atomic::{AtomicU64, Ordering};
//! let v = Shared::new(AtomicU64::new(7)).unwrap();
//! let msg = transfer::encode(&("hello", v.clone())).unwrap();
//! // ... msg.bytes and msg.fds cross to another process ...
//! let (s, w): (String, Shared<AtomicU64>) = transfer::decode(&msg.bytes, msg.fds).unwrap();
//! assert_eq!((s.as_str(), w.load(Ordering::Relaxed)), ("hello", 7));
//! // Outside a context, a handle refuses to serialise:
//! assert!(postcard::to_allocvec(&v).is_err());
//! ```

use crate::error::{Error, ErrorKind, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::cell::RefCell;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// Most descriptors one message may carry.
pub const MAX_FDS: usize = crate::sys::MAX_FDS_PER_MSG;

#[derive(Default)]
struct SendCtx {
    fds: Vec<OwnedFd>,
    raw: Vec<RawFd>,
}

struct RecvCtx {
    fds: Vec<OwnedFd>,
}

thread_local! {
    static SENDERS: RefCell<Vec<SendCtx>> = const { RefCell::new(Vec::new()) };
    static RECEIVERS: RefCell<Vec<RecvCtx>> = const { RefCell::new(Vec::new()) };
    /// The kind and message of the last handle error (postcard keeps neither).
    static LAST_ERROR: RefCell<Option<(ErrorKind, String)>> = const { RefCell::new(None) };
}

/// A serialised message: its bytes and the descriptors its handles need.
#[derive(Debug, Default)]
pub struct Encoded {
    /// The postcard bytes.
    pub bytes: Vec<u8>,
    /// Descriptors, in the order the bytes' indices refer to.
    pub fds: Vec<OwnedFd>,
}

fn fail<T>(kind: ErrorKind, detail: impl Into<String>) -> Result<T> {
    let err = Error::new(kind, detail);
    record(&err);
    Err(err)
}

fn record(err: &Error) {
    LAST_ERROR.with(|l| *l.borrow_mut() = Some((err.kind(), err.to_string())));
}

/// Takes (and clears) the handle error recorded on this thread, if any: for wrappers that run
/// an inner serialiser ([`codec`](crate::codec)) and must keep a handle's error kind.
#[cfg(feature = "self-describing")]
pub(crate) fn take_recorded() -> Option<(ErrorKind, String)> {
    LAST_ERROR.with(|l| l.borrow_mut().take())
}

/// Records `err`'s kind for [`encode`] and returns it as a serialisation error.
pub fn ser_error<E: serde::ser::Error>(err: Error) -> E {
    record(&err);
    E::custom(err)
}

/// Records `err`'s kind for [`decode`] and returns it as a deserialisation error.
pub fn de_error<E: serde::de::Error>(err: Error) -> E {
    record(&err);
    E::custom(err)
}

/// Whether a sending transfer context is active on this thread.
pub fn in_context() -> bool {
    SENDERS.with(|s| !s.borrow().is_empty())
}

/// Serialises `value` with postcard inside a transfer context.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Encoded> {
    let mut bytes = Vec::new();
    let fds = encode_into(value, &mut bytes)?;
    Ok(Encoded { bytes, fds })
}

/// Like [`encode`], appending the bytes to `buf` (reusing its allocation); returns the
/// descriptors. On error `buf` is restored to its previous length.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<Vec<OwnedFd>> {
    SENDERS.with(|s| s.borrow_mut().push(SendCtx::default()));
    LAST_ERROR.with(|e| e.borrow_mut().take());
    let start = buf.len();
    let taken = std::mem::take(buf);
    let res = postcard::to_extend(value, taken);
    let ctx = SENDERS.with(|s| s.borrow_mut().pop()).expect("context pushed above");
    match res {
        Ok(v) => {
            *buf = v;
            if ctx.fds.len() > MAX_FDS {
                return fail(ErrorKind::Codec, format!("message needs {} fds", ctx.fds.len()));
            }
            Ok(ctx.fds)
        }
        Err(e) => {
            // postcard consumed the buffer; we cannot recover the caller's prefix bytes
            // beyond what we know, so report and leave `buf` empty-but-valid.
            buf.truncate(start.min(buf.len()));
            Err(codec_error(e))
        }
    }
}

fn codec_error(e: postcard::Error) -> Error {
    // The handle's own error (say, `NoDescriptors` naming EMFILE when a descriptor could not
    // be duplicated), not only postcard's "Serde Serialization Error".
    match LAST_ERROR.with(|l| l.borrow_mut().take()) {
        Some((kind, msg)) => Error::new(kind, msg),
        None => Error::new(ErrorKind::Codec, e.to_string()),
    }
}

/// Deserialises `bytes` with postcard, giving handles the received descriptors `fds`.
/// Every byte must belong to the value (trailing bytes are a [`Codec`](ErrorKind::Codec) error).
/// Descriptors no handle took are closed.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<T> {
    RECEIVERS.with(|r| r.borrow_mut().push(RecvCtx { fds }));
    LAST_ERROR.with(|e| e.borrow_mut().take());
    let res = postcard::take_from_bytes(bytes);
    RECEIVERS.with(|r| r.borrow_mut().pop());
    match res {
        // Trailing bytes mean the message was not a `T` (e.g. a type mismatch whose prefix
        // happened to decode): refuse it rather than return a wrong value.
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(Error::new(
            ErrorKind::Codec,
            format!("{} trailing bytes after the value: not the expected type", rest.len()),
        )),
        Err(e) => Err(codec_error(e)),
    }
}

/// For `Serialize` impls of handles: records `fd` (duplicated) in the current context and
/// returns its index. The same descriptor recorded twice gets one index.
pub fn push_fd(fd: BorrowedFd<'_>) -> Result<u32> {
    SENDERS.with(|s| {
        let mut s = s.borrow_mut();
        let Some(ctx) = s.last_mut() else {
            return fail(
                ErrorKind::NoTransferContext,
                "pass handles as process arguments or over a Connection",
            );
        };
        let raw = fd.as_raw_fd();
        if let Some(i) = ctx.raw.iter().position(|&r| r == raw) {
            return Ok(i as u32);
        }
        let dup = fd.try_clone_to_owned().map_err(|e| Error::io(e, "dup"))?;
        ctx.raw.push(raw);
        ctx.fds.push(dup);
        Ok(ctx.fds.len() as u32 - 1)
    })
}

/// A `Serialize` impl's body for a handle that travels as its descriptor `fd` (see
/// [`push_fd`]) and `meta`.
pub(crate) fn serialize_fd<S: serde::Serializer>(
    fd: BorrowedFd<'_>,
    meta: impl Serialize,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    let idx = push_fd(fd).map_err(ser_error)?;
    (idx, meta).serialize(s)
}

/// The matching `Deserialize` side of [`serialize_fd`]: the descriptor (see [`take_fd`]) and
/// the meta.
pub(crate) fn deserialize_fd<'de, D: serde::Deserializer<'de>, M: serde::Deserialize<'de>>(
    d: D,
) -> std::result::Result<(OwnedFd, M), D::Error> {
    let (idx, meta): (u32, M) = serde::Deserialize::deserialize(d)?;
    Ok((take_fd(idx).map_err(de_error)?, meta))
}

/// For `Deserialize` impls of handles: a descriptor of the current message by index (a fresh
/// duplicate each time, so two handles may name the same index).
pub fn take_fd(idx: u32) -> Result<OwnedFd> {
    RECEIVERS.with(|r| {
        let r = r.borrow();
        let Some(ctx) = r.last() else {
            return fail(ErrorKind::NoTransferContext, "no receiving transfer context");
        };
        match ctx.fds.get(idx as usize) {
            Some(fd) => fd.try_clone().map_err(|e| Error::io(e, "dup")),
            None => fail(
                ErrorKind::InvalidHandle,
                format!("descriptor index {idx} of {} received", ctx.fds.len()),
            ),
        }
    })
}

/// Sends `data` with `fds` attached (SCM_RIGHTS) on a Unix socket; never raises SIGPIPE.
/// Returns the number of data bytes sent (a stream socket may take fewer than all).
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    crate::sys::send_with_fds(sock, data, fds)
}

/// Receives into `buf` on a Unix socket, appending any descriptors that came with the data to
/// `fds` (close-on-exec). Returns the number of bytes (0: end of stream). With `nonblocking`,
/// an empty socket is `WouldBlock`.
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    nonblocking: bool,
) -> io::Result<usize> {
    crate::sys::recv_with_fds(sock, buf, fds, nonblocking)
}

/// `sendmsg` of the concatenation of `bufs` (at most 4) with `fds` attached (SCM_RIGHTS, at
/// most [`MAX_FDS`]): the vectored, allocation-free form of [`send_with_fds`]. A closed peer is
/// `EPIPE` (never SIGPIPE); with `nonblocking`, a full socket is `WouldBlock`. Returns the
/// number of bytes sent.
pub fn send_vectored_with_fds(
    sock: BorrowedFd<'_>,
    bufs: &[&[u8]],
    fds: &[BorrowedFd<'_>],
    nonblocking: bool,
) -> io::Result<usize> {
    crate::sys::sendmsg(sock, bufs, fds, nonblocking)
}

/// `recvmsg` into `a` then `b` (uninitialised space is fine), appending received descriptors
/// (close-on-exec) to `fds`: the vectored form of [`recv_with_fds`]. Returns the number of
/// bytes (0: end of stream) and whether a datagram or record was truncated (`MSG_TRUNC`).
/// Descriptors beyond [`MAX_FDS`] are closed by the kernel, never leaked.
pub fn recv_vectored_with_fds(
    sock: BorrowedFd<'_>,
    a: &mut [MaybeUninit<u8>],
    b: &mut [MaybeUninit<u8>],
    fds: &mut Vec<OwnedFd>,
    nonblocking: bool,
) -> io::Result<(usize, bool)> {
    crate::sys::recvmsg(sock, a, b, fds, nonblocking)
}

/// Makes `fd` survive (or not) an `exec`, for passing descriptors to a re-executed child.
pub fn set_inheritable(fd: BorrowedFd<'_>, inheritable: bool) -> io::Result<()> {
    crate::sys::set_cloexec(fd, !inheritable)
}
