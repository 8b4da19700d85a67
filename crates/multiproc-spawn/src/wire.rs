//! The frames between a parent and its child.
//!
//! A frame is a 16-byte header `[magic (4)][kind][flags][pad 2][len u64]` and a payload of
//! `len` bytes. Descriptors ride on the header's `sendmsg` (SCM_RIGHTS).
//!
//! - Boot (parent → spawned or forkserver child), magic `MPB1`: a `u32` length, the postcard
//!   [`Boot`](crate::child::Boot) header, the transfer-encoded arguments.
//! - Result (child → parent), magic `MPR1`: the transfer-encoded value (kind [`OK`]), a
//!   postcard `(message, location)` ([`PANIC`]) or a UTF-8 message ([`ERROR`]).
//!
//! A small payload follows its header on the socket: sent whole into an empty socket buffer,
//! it never blocks the sender. A larger one goes into a memfd passed as the last descriptor
//! ([`FLAG_MEMFD`]), so no sender ever waits for its reader: a child hands over a result of
//! any size and exits (no deadlock, the bug class of mem-isolate #54), and the parent needs to
//! wake only once, when the child has ended. Lengths are checked against [`MAX_FRAME`] before
//! anything is allocated.

use crate::sys;
use multiproc_arena::transfer;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;

pub(crate) const BOOT_MAGIC: [u8; 4] = *b"MPB1";
pub(crate) const RESULT_MAGIC: [u8; 4] = *b"MPR1";
pub(crate) const HEADER: usize = 16;
/// Largest payload accepted (1 TiB): a corrupt length is an error, not an allocation.
pub(crate) const MAX_FRAME: u64 = 1 << 40;
/// Largest payload sent inline (also bounded by a quarter of the socket's send buffer).
const INLINE_MAX: usize = 64 * 1024;
/// The payload is in a memfd, the frame's last descriptor.
pub(crate) const FLAG_MEMFD: u8 = 1;

/// The value came back.
pub(crate) const OK: u8 = 0;
/// The target panicked.
pub(crate) const PANIC: u8 = 1;
/// The child hit a protocol error (decoding its arguments, encoding its result, a type
/// mismatch).
pub(crate) const ERROR: u8 = 2;

/// Writes a 16-byte header into `buf[..16]`.
fn put_header(buf: &mut [u8], magic: [u8; 4], kind: u8, flags: u8, len: u64) {
    buf[..4].copy_from_slice(&magic);
    buf[4] = kind;
    buf[5] = flags;
    buf[6..8].fill(0);
    buf[8..16].copy_from_slice(&len.to_le_bytes());
}

/// A frame ready to send: bytes (header, and the payload if inline) and descriptors.
pub(crate) struct Frame {
    pub(crate) bytes: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
}

/// Makes a frame of `buf` (whose first [`HEADER`] bytes are reserved for the header), moving
/// a payload larger than `inline_max` into a memfd.
pub(crate) fn frame(
    magic: [u8; 4],
    kind: u8,
    mut buf: Vec<u8>,
    mut fds: Vec<OwnedFd>,
    inline_max: usize,
) -> io::Result<Frame> {
    let len = buf.len() - HEADER;
    if len <= inline_max {
        put_header(&mut buf, magic, kind, 0, len as u64);
        return Ok(Frame { bytes: buf, fds });
    }
    let memfd = multiproc_arena::os::memfd("multiproc-frame")?;
    File::from(memfd.try_clone()?).write_all(&buf[HEADER..])?;
    buf.truncate(HEADER);
    put_header(&mut buf, magic, kind, FLAG_MEMFD, len as u64);
    fds.push(memfd);
    Ok(Frame { bytes: buf, fds })
}

/// The largest payload `sock` takes inline without its sender ever blocking on an empty
/// buffer.
pub(crate) fn inline_max(sock: BorrowedFd<'_>) -> usize {
    sys::send_buffer(sock).map_or(4096, |b| (b / 4).min(INLINE_MAX))
}

/// Sends all of `data` on a blocking stream socket, `fds` attached to the first chunk.
pub(crate) fn send_all(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let mut sent = transfer::send_with_fds(sock, data, fds)?;
    while sent < data.len() {
        let n = transfer::send_with_fds(sock, &data[sent..], &[])?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        sent += n;
    }
    Ok(())
}

/// Sends a frame on a stream socket.
pub(crate) fn send_frame(sock: BorrowedFd<'_>, f: &Frame) -> io::Result<()> {
    let fds: Vec<BorrowedFd<'_>> = f.fds.iter().map(|f| f.as_fd()).collect();
    send_all(sock, &f.bytes, &fds)
}

/// A received frame.
pub(crate) struct Received {
    pub(crate) kind: u8,
    pub(crate) payload: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
}

/// Reads one frame incrementally from a stream socket, blocking or not.
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    buf: Vec<u8>,
    filled: usize,
    total: Option<usize>,
    fds: Vec<OwnedFd>,
    /// The stream ended.
    pub(crate) eof: bool,
    /// A malformed header (bad magic or length): the stream is not read further.
    pub(crate) bad: Option<String>,
}

impl FrameReader {
    /// A reader over a frame already in memory (the forkserver received it).
    pub(crate) fn from_parts(bytes: Vec<u8>, fds: Vec<OwnedFd>, expect: [u8; 4]) -> FrameReader {
        let mut r = FrameReader { filled: bytes.len(), buf: bytes, fds, ..FrameReader::default() };
        r.parse_header(expect);
        r
    }

    /// Whether a whole frame has arrived.
    pub(crate) fn complete(&self) -> bool {
        self.total.is_some_and(|t| self.filled >= t)
    }

    /// Whether reading can make progress (no frame yet, no end of stream, no bad header).
    pub(crate) fn wants_data(&self) -> bool {
        !self.complete() && !self.eof && self.bad.is_none()
    }

    fn parse_header(&mut self, expect: [u8; 4]) {
        if self.total.is_some() || self.filled < HEADER {
            return;
        }
        let h = &self.buf[..HEADER];
        let len = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
        if h[..4] != expect {
            self.bad = Some("bad frame magic".into());
        } else if len > MAX_FRAME {
            self.bad = Some(format!("frame of {len} bytes exceeds the limit"));
        } else if h[5] & FLAG_MEMFD != 0 {
            self.total = Some(HEADER);
        } else {
            self.total = Some(HEADER + len as usize);
        }
    }

    /// Reads what is available (with `blocking`, until a whole frame is here or the stream
    /// ends). `WouldBlock` is not an error: it returns `Ok(())`.
    pub(crate) fn pump(
        &mut self,
        sock: BorrowedFd<'_>,
        expect: [u8; 4],
        blocking: bool,
    ) -> io::Result<()> {
        while self.wants_data() {
            let want = match self.total {
                Some(t) => (t - self.filled).min(1 << 20),
                None => HEADER - self.filled,
            };
            if self.buf.len() < self.filled + want {
                self.buf.resize(self.filled + want, 0);
            }
            let dst = &mut self.buf[self.filled..self.filled + want];
            match transfer::recv_with_fds(sock, dst, &mut self.fds, !blocking) {
                Ok(0) => self.eof = true,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
            self.parse_header(expect);
        }
        Ok(())
    }

    /// Takes the complete frame (reading a memfd payload): `None` if there is none.
    pub(crate) fn take(&mut self) -> Option<Result<Received, String>> {
        if let Some(why) = self.bad.take() {
            return Some(Err(why));
        }
        let total = self.total?;
        if self.filled < total {
            return None;
        }
        let kind = self.buf[4];
        let len = u64::from_le_bytes(self.buf[8..16].try_into().expect("8 bytes")) as usize;
        let mut fds = std::mem::take(&mut self.fds);
        let payload = if self.buf[5] & FLAG_MEMFD != 0 {
            let Some(memfd) = fds.pop() else {
                return Some(Err("frame lacks its memfd".into()));
            };
            let file = File::from(memfd);
            match file.metadata() {
                Ok(m) if m.len() >= len as u64 => {}
                _ => return Some(Err("memfd shorter than its frame".into())),
            }
            let mut v = vec![0u8; len];
            if let Err(e) = file.read_exact_at(&mut v, 0) {
                return Some(Err(format!("reading the frame's memfd: {e}")));
            }
            v
        } else {
            self.buf.truncate(total);
            self.buf.split_off(HEADER)
        };
        self.total = None;
        Some(Ok(Received { kind, payload, fds }))
    }
}
