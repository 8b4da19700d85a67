//! The frames between a parent and its child on their private socket.
//!
//! - Boot (parent → spawned or forkserver child): `[magic "MPB1"][kind 0][pad 3][len u64]`
//!   then `len` bytes: a `u32` header length, the postcard [`Boot`] header, the transfer-encoded
//!   arguments. The arguments' descriptors ride on the first chunk (SCM_RIGHTS).
//! - Result (child → parent, every start method): `[magic "MPR1"][kind][pad 3][len u64]` then
//!   `len` bytes: the transfer-encoded value (kind [`OK`]), a postcard `(message, location)`
//!   ([`PANIC`]) or a UTF-8 message ([`ERROR`]). Descriptors of handles in the value ride on
//!   the first chunk.
//!
//! Lengths are checked against [`MAX_FRAME`] before anything is allocated, and the buffer
//! grows with the data actually received.

use multiproc_arena::transfer;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

pub(crate) const BOOT_MAGIC: [u8; 4] = *b"MPB1";
pub(crate) const RESULT_MAGIC: [u8; 4] = *b"MPR1";
pub(crate) const HEADER: usize = 16;
/// Largest frame accepted (1 TiB): a corrupt length is an error, not an allocation.
pub(crate) const MAX_FRAME: u64 = 1 << 40;

/// The value came back.
pub(crate) const OK: u8 = 0;
/// The target panicked.
pub(crate) const PANIC: u8 = 1;
/// The child hit a protocol error (decoding its arguments, encoding its result, a type
/// mismatch).
pub(crate) const ERROR: u8 = 2;

/// Writes a 16-byte header for a frame of `len` payload bytes into `buf[..16]`.
pub(crate) fn put_header(buf: &mut [u8], magic: [u8; 4], kind: u8, len: u64) {
    buf[..4].copy_from_slice(&magic);
    buf[4] = kind;
    buf[5..8].fill(0);
    buf[8..16].copy_from_slice(&len.to_le_bytes());
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

/// Reads one frame incrementally from a stream socket, blocking or not.
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    buf: Vec<u8>,
    filled: usize,
    total: Option<usize>,
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) eof: bool,
    /// A malformed header (bad magic or length): the stream is not read further.
    pub(crate) bad: Option<String>,
}

impl FrameReader {
    /// Whether a whole frame has arrived.
    pub(crate) fn complete(&self) -> bool {
        self.total.is_some_and(|t| self.filled >= t)
    }

    /// Whether reading can make progress (no frame yet, no end of stream, no bad header).
    pub(crate) fn wants_data(&self) -> bool {
        !self.complete() && !self.eof && self.bad.is_none()
    }

    /// Reads what is available (all of it with `blocking`, until a whole frame is here or
    /// the stream ends). `WouldBlock` is not an error: it returns `Ok(())`.
    pub(crate) fn pump(
        &mut self,
        sock: BorrowedFd<'_>,
        expect: [u8; 4],
        blocking: bool,
    ) -> io::Result<()> {
        while self.wants_data() {
            let want = match self.total {
                Some(t) => (t - self.filled).min(1 << 20),
                None => 16 * 1024,
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
            if self.total.is_none() && self.filled >= HEADER {
                let h = &self.buf[..HEADER];
                let len = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
                if h[..4] != expect {
                    self.bad = Some("bad frame magic".into());
                } else if len > MAX_FRAME {
                    self.bad = Some(format!("frame of {len} bytes exceeds the limit"));
                } else {
                    let total = HEADER + len as usize;
                    self.total = Some(total);
                    // The buffer grows with the data; reserving the frame once (up to 1 GiB)
                    // avoids copying a large one again and again.
                    let cap = total.min(1 << 30);
                    if self.buf.capacity() < cap {
                        self.buf.reserve_exact(cap - self.buf.len());
                    }
                }
            }
        }
        Ok(())
    }

    /// The kind and payload of the complete frame.
    pub(crate) fn frame(&self) -> Option<(u8, &[u8])> {
        let t = self.total?;
        (self.filled >= t).then(|| (self.buf[4], &self.buf[HEADER..t]))
    }

    /// Takes the received descriptors.
    pub(crate) fn take_fds(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.fds)
    }
}
