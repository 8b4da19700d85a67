//! The wire format of a [`Connection`](crate::Connection), and a socket-free decoder.
//!
//! A message travels as one *frame*: an 8-byte little-endian header followed by the payload.
//! The header word holds the payload length (bits 0–47), the number of descriptors sent with
//! the frame as SCM_RIGHTS (bits 48–55, at most [`MAX_FDS`]) and a magic byte (bits 56–63,
//! [`MAGIC`]). The payload of [`send`](crate::Connection::send) is postcard; of
//! [`send_bytes`](crate::Connection::send_bytes), the bytes as given.
//!
//! The receiver checks the header — magic, descriptor count, length against its limit —
//! before it allocates anything, reads exactly one frame at a time (never past it, so a
//! connection may be handed to another process between messages), and grows the payload buffer
//! as bytes actually arrive. [`FrameDecoder`] runs that same receive state machine over bytes
//! in memory, so hostile input can be tested without sockets.
//!
//! ```
//! use multiproc_ipc_pipe::frame::{encode_frame, FrameDecoder};
//! let mut wire = encode_frame(b"hello");
//! wire.extend(encode_frame(b""));
//! let mut d = FrameDecoder::new(1 << 20);
//! assert_eq!(d.push(&wire).unwrap(), vec![b"hello".to_vec(), Vec::new()]);
//! d.finish().unwrap();
//! // A header claiming 1 TiB is refused before any allocation:
//! let mut d = FrameDecoder::new(1 << 20);
//! let huge = multiproc_ipc_pipe::frame::Header { len: 1 << 40, fds: 0 }.encode();
//! assert!(d.push(&huge).is_err());
//! assert_eq!(d.peak_allocation(), 0);
//! ```

use crate::error::{Error, ErrorKind, Result};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;

/// Length of a frame header in bytes.
pub const HEADER_LEN: usize = 8;
/// The magic byte in the top 8 bits of every header (format version 1).
pub const MAGIC: u8 = 0xA7;
/// Most descriptors one frame may carry.
pub const MAX_FDS: usize = crate::sys::MAX_FDS;
/// Largest payload the header can describe (2^48 − 1 bytes).
pub const MAX_LEN: u64 = (1 << 48) - 1;
/// The default [`max_message_size`](crate::Connection::set_max_message_size): 4 GiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 32;

/// The payload buffer is grown in steps of at most this many bytes as data arrives, so a
/// header that lies about its length costs at most one step of memory.
const GROW_STEP: usize = 16 << 20;
/// A receive buffer larger than this is freed after its message instead of kept for reuse.
pub(crate) const KEEP_CAPACITY: usize = 4 << 20;

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Payload length in bytes.
    pub len: u64,
    /// Number of descriptors attached to the frame.
    pub fds: u8,
}

impl Header {
    /// The 8 header bytes (`len` must be at most [`MAX_LEN`]).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let word = (self.len & MAX_LEN) | ((self.fds as u64) << 48) | ((MAGIC as u64) << 56);
        word.to_le_bytes()
    }

    /// Parses and checks a header: the magic byte, the descriptor count, and the length
    /// against `limit`. A pure function: nothing is allocated.
    pub fn decode(bytes: [u8; HEADER_LEN], limit: usize) -> Result<Header> {
        let word = u64::from_le_bytes(bytes);
        if bytes[..4] == crate::listener::HS_MAGIC {
            return Err(Error::new(
                ErrorKind::Protocol,
                "the peer sent an authkey challenge: connect with the listener's authkey",
            ));
        }
        if (word >> 56) as u8 != MAGIC {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!("bad frame header {word:#018x} (not a multiproc connection?)"),
            ));
        }
        let fds = (word >> 48) as u8;
        if fds as usize > MAX_FDS {
            return Err(Error::new(ErrorKind::Protocol, format!("frame claims {fds} descriptors")));
        }
        let len = word & MAX_LEN;
        if len > limit as u64 {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!("incoming message of {len} bytes exceeds the limit of {limit}"),
            ));
        }
        Ok(Header { len, fds })
    }
}

/// The bytes of one frame carrying `payload` and no descriptors.
pub fn encode_frame(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + payload.len());
    v.extend_from_slice(&Header { len: payload.len() as u64, fds: 0 }.encode());
    v.extend_from_slice(payload);
    v
}

/// Where the receive state machine gets bytes: a socket, or memory in tests.
pub(crate) trait Source {
    /// Reads up to `buf.len()` bytes, appending received descriptors to `fds`. `Ok(0)` is end
    /// of stream; with `block == false`, nothing available is `WouldBlock`.
    fn read(
        &mut self,
        buf: &mut [MaybeUninit<u8>],
        fds: &mut Vec<OwnedFd>,
        block: bool,
    ) -> io::Result<usize>;
}

/// Receive progress of one connection: at most one frame partly read.
#[derive(Default)]
pub(crate) struct RecvState {
    hdr: [u8; HEADER_LEN],
    hdr_filled: usize,
    header: Option<Header>,
    /// Payload bytes received so far (`len()`), in a buffer reused between messages.
    pub(crate) payload: Vec<u8>,
    /// Descriptors of the current frame.
    pub(crate) fds: Vec<OwnedFd>,
    /// Set once the stream is unusable; every later call reports it.
    broken: Option<(ErrorKind, String)>,
    /// Largest payload capacity ever reserved (for tests of the allocation bound).
    pub(crate) peak: usize,
}

impl std::fmt::Debug for RecvState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvState")
            .field("header", &self.header)
            .field("received", &(self.hdr_filled + self.payload.len()))
            .field("broken", &self.broken)
            .finish()
    }
}

/// Whether a receive step completed a frame or needs the source to become readable.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    Ready,
    Pending,
}

impl RecvState {
    /// Whether part of a frame has been read (so the connection has data pending even if the
    /// socket has none).
    pub(crate) fn in_progress(&self) -> bool {
        self.hdr_filled > 0
    }

    /// The header of the current frame, once complete.
    pub(crate) fn header(&self) -> Option<Header> {
        self.header
    }

    fn fail(&mut self, err: Error) -> Error {
        if matches!(err.kind(), ErrorKind::Protocol | ErrorKind::TooLarge | ErrorKind::Disconnected)
        {
            self.broken = Some((err.kind(), err.to_string()));
        }
        err
    }

    pub(crate) fn check_broken(&self) -> Result<()> {
        match &self.broken {
            Some((kind, why)) => Err(Error::new(*kind, why.clone())),
            None => Ok(()),
        }
    }

    /// Reads until the header is complete and checked. `Ok(Pending)` when the source has
    /// nothing more now (only without `block`).
    pub(crate) fn read_header(
        &mut self,
        src: &mut impl Source,
        limit: usize,
        block: bool,
    ) -> Result<Progress> {
        self.check_broken()?;
        while self.header.is_none() {
            let mut extra = Vec::new();
            let buf = &mut self.hdr[self.hdr_filled..];
            // SAFETY: reinterpreting initialised bytes as MaybeUninit is always sound, and
            // `read` only writes initialised bytes into it.
            let buf = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
            let n = match src.read(buf, &mut extra, block) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Progress::Pending),
                Err(e) => return Err(self.fail(Error::io(e, "receiving"))),
            };
            if n == 0 {
                let why = if self.hdr_filled == 0 {
                    "the peer closed the connection"
                } else {
                    "the peer closed the connection in the middle of a message"
                };
                return Err(self.fail(Error::new(ErrorKind::Disconnected, why)));
            }
            if !extra.is_empty() {
                if self.hdr_filled != 0 || !self.fds.is_empty() {
                    let e = Error::new(ErrorKind::Protocol, "descriptors inside a frame");
                    return Err(self.fail(e));
                }
                self.fds = extra;
            }
            self.hdr_filled += n;
            if self.hdr_filled == HEADER_LEN {
                let h = match Header::decode(self.hdr, limit) {
                    Ok(h) => h,
                    Err(e) => return Err(self.fail(e)),
                };
                if self.fds.len() != h.fds as usize {
                    let e = Error::new(
                        ErrorKind::Protocol,
                        format!("frame declares {} descriptors, {} came", h.fds, self.fds.len()),
                    );
                    return Err(self.fail(e));
                }
                self.header = Some(h);
                self.payload.clear();
            }
        }
        Ok(Progress::Ready)
    }

    /// Reads the payload of the current frame (header already complete) into `self.payload`.
    pub(crate) fn read_payload(&mut self, src: &mut impl Source, block: bool) -> Result<Progress> {
        let len = self.header.expect("header read first").len as usize;
        while self.payload.len() < len {
            let have = self.payload.len();
            if self.payload.capacity() == have {
                let step = (len - have).min(GROW_STEP.max(have));
                if self.payload.try_reserve_exact(step).is_err() {
                    let e = Error::new(ErrorKind::Io, format!("cannot allocate {len} bytes"));
                    return Err(self.fail(e));
                }
                self.peak = self.peak.max(self.payload.capacity());
            }
            let want = (len - have).min(self.payload.capacity() - have);
            let mut extra = Vec::new();
            let spare = &mut self.payload.spare_capacity_mut()[..want];
            let n = match src.read(spare, &mut extra, block) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Progress::Pending),
                Err(e) => return Err(self.fail(Error::io(e, "receiving"))),
            };
            if !extra.is_empty() {
                let e = Error::new(ErrorKind::Protocol, "descriptors inside a frame");
                return Err(self.fail(e));
            }
            if n == 0 {
                let e = Error::new(
                    ErrorKind::Disconnected,
                    "the peer closed the connection in the middle of a message",
                );
                return Err(self.fail(e));
            }
            // SAFETY: `read` initialised the first `n` bytes of the spare capacity.
            unsafe { self.payload.set_len(have + n) };
        }
        Ok(Progress::Ready)
    }

    /// Reads the payload of the current frame straight into `dst` (at least `len` bytes long),
    /// when nothing of it has been read yet. On `Pending` or an error the bytes read so far
    /// move into `self.payload`, so nothing is lost.
    pub(crate) fn read_payload_direct(
        &mut self,
        src: &mut impl Source,
        dst: &mut [u8],
        block: bool,
    ) -> Result<Progress> {
        let len = self.header.expect("header read first").len as usize;
        debug_assert!(self.payload.is_empty() && dst.len() >= len);
        let mut got = 0;
        while got < len {
            let mut extra = Vec::new();
            let buf = &mut dst[got..len];
            // SAFETY: reinterpreting initialised bytes as MaybeUninit is always sound, and
            // `read` only writes initialised bytes into it.
            let buf = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
            let res = src.read(buf, &mut extra, block);
            let stop = match res {
                Ok(0) => Some(Err(Error::new(
                    ErrorKind::Disconnected,
                    "the peer closed the connection in the middle of a message",
                ))),
                Ok(_) if !extra.is_empty() => {
                    Some(Err(Error::new(ErrorKind::Protocol, "descriptors inside a frame")))
                }
                Ok(n) => {
                    got += n;
                    None
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(Ok(Progress::Pending)),
                Err(e) => Some(Err(Error::io(e, "receiving"))),
            };
            if let Some(out) = stop {
                self.payload.extend_from_slice(&dst[..got]);
                self.peak = self.peak.max(self.payload.capacity());
                return out.map_err(|e| self.fail(e));
            }
        }
        Ok(Progress::Ready)
    }

    /// Ends the current frame (its payload and descriptors consumed or dropped), ready for
    /// the next header.
    pub(crate) fn finish_frame(&mut self) {
        self.hdr_filled = 0;
        self.header = None;
        self.payload.clear();
        if self.payload.capacity() > KEEP_CAPACITY {
            self.payload = Vec::new();
        }
        self.fds.clear();
    }
}

/// Runs a connection's receive state machine over bytes in memory: the frames a socket would
/// deliver, without the socket. For tests and fuzzing of the wire format.
#[derive(Debug)]
pub struct FrameDecoder {
    state: RecvState,
    limit: usize,
    input: Vec<u8>,
}

struct MemSource<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Source for MemSource<'_> {
    fn read(
        &mut self,
        buf: &mut [MaybeUninit<u8>],
        _fds: &mut Vec<OwnedFd>,
        _block: bool,
    ) -> io::Result<usize> {
        let rest = &self.data[self.pos..];
        if rest.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = rest.len().min(buf.len());
        for (d, s) in buf[..n].iter_mut().zip(rest) {
            d.write(*s);
        }
        self.pos += n;
        Ok(n)
    }
}

impl FrameDecoder {
    /// A decoder that accepts payloads up to `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> FrameDecoder {
        FrameDecoder { state: RecvState::default(), limit: max_message_size, input: Vec::new() }
    }

    /// Feeds the next bytes of the stream; returns the payloads of the frames they complete.
    /// An error (bad header, a length over the limit, a frame that declares descriptors —
    /// none can arrive in memory) is final: every later call repeats it.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.input.clear();
        self.input.extend_from_slice(bytes);
        let mut src = MemSource { data: &self.input, pos: 0 };
        let mut out = Vec::new();
        loop {
            if self.state.read_header(&mut src, self.limit, false)? == Progress::Pending {
                return Ok(out);
            }
            if self.state.read_payload(&mut src, false)? == Progress::Pending {
                return Ok(out);
            }
            out.push(self.state.payload.clone());
            self.state.finish_frame();
        }
    }

    /// Ends the stream: an error if it stopped in the middle of a frame.
    pub fn finish(self) -> Result<()> {
        self.state.check_broken()?;
        if self.state.in_progress() {
            return Err(Error::new(ErrorKind::Disconnected, "stream ended inside a frame"));
        }
        Ok(())
    }

    /// The largest payload buffer this decoder has reserved, in bytes: never more than the
    /// limit, and never more than 16 MiB beyond the bytes actually received.
    pub fn peak_allocation(&self) -> usize {
        self.state.peak
    }
}
