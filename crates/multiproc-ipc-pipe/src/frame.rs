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
use crate::sys;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

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

/// The payload buffer starts at this size and doubles as data actually arrives (never beyond
/// what the frame still owes), so a header that lies about its length costs at most this, or
/// as much again as has truly arrived.
const MIN_GROW: usize = 64 << 10;
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

/// Where the receive state machine gets bytes.
pub(crate) enum Source<'a> {
    /// A connected socket.
    Sock(BorrowedFd<'a>),
    /// Bytes in memory, for [`FrameDecoder`]: a byte stream (each push continues it), or one
    /// record per push.
    Mem { data: &'a [u8], pos: usize, records: bool },
}

impl Source<'_> {
    /// Reads into `a` then `b` (`b` may be empty), appending received descriptors to `fds`.
    /// Returns the byte count (`0` is end of stream) and whether a record was cut short
    /// because it did not fit (record sockets only). With `block == false`, nothing available
    /// is `WouldBlock`.
    fn read(
        &mut self,
        a: &mut [MaybeUninit<u8>],
        b: &mut [MaybeUninit<u8>],
        fds: &mut Vec<OwnedFd>,
        block: bool,
    ) -> io::Result<(usize, bool)> {
        let (data, pos, records) = match self {
            Source::Sock(fd) => return sys::recvmsg(*fd, a, b, fds, !block),
            Source::Mem { data, pos, records } => (*data, pos, *records),
        };
        let rest = &data[*pos..];
        if rest.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut n = 0;
        for (d, s) in a.iter_mut().chain(b.iter_mut()).zip(rest) {
            d.write(*s);
            n += 1;
        }
        let cut = records && n < rest.len();
        *pos = if records { data.len() } else { *pos + n };
        Ok((n, cut))
    }
}

/// How a connection's socket delivers frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A byte stream (TCP, Unix stream): the header is read on its own, then exactly the
    /// payload, so a read never takes bytes of the next frame.
    Stream,
    /// Records (Unix `SOCK_SEQPACKET`): a frame is a first record (header and up to
    /// 64 KiB of payload) followed by records of at most [`MAX_RECORD`]
    /// bytes. One read takes one record, so a small message costs one system call.
    Records,
}

/// Payload bytes in the first record of a frame, at most.
pub(crate) const FIRST_PAYLOAD: usize = 64 << 10;
/// Largest first record of a frame: the header and 64 KiB of payload.
pub(crate) const FIRST_RECORD: usize = HEADER_LEN + FIRST_PAYLOAD;
/// Largest later record of a frame.
pub(crate) const MAX_RECORD: usize = 512 << 10;

fn as_uninit(b: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and every writer of the result (the
    // sources above) writes only initialised bytes, so `b` stays initialised.
    unsafe { &mut *(b as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

/// Receive progress of one connection: at most one frame partly read.
pub(crate) struct RecvState {
    mode: Mode,
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
    /// The socket also carries one-byte doorbell records and end of stream is not final
    /// (a pipe with a shared-memory ring): a first-record read reports them in `signal`
    /// instead of failing.
    pub(crate) doorbells: bool,
    /// What a first-record read found instead of a frame (with `doorbells`).
    pub(crate) signal: Option<Signal>,
    /// End of stream seen on the socket (with `doorbells`: the ring may still hold messages).
    pub(crate) eof: bool,
    /// Socket frames taken whose ring mark has not been consumed yet.
    pub(crate) marks_owed: u32,
}

/// What a first-record read of a ring pipe's socket found instead of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// A one-byte wake-up record.
    Doorbell,
    /// End of stream.
    Eof,
}

impl std::fmt::Debug for RecvState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvState")
            .field("mode", &self.mode)
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

fn disconnected_mid() -> Error {
    Error::new(ErrorKind::Disconnected, "the peer closed the connection in the middle of a message")
}

fn fds_inside() -> Error {
    Error::new(ErrorKind::Protocol, "descriptors inside a frame")
}

impl RecvState {
    pub(crate) fn new(mode: Mode) -> RecvState {
        RecvState {
            mode,
            hdr: [0; HEADER_LEN],
            hdr_filled: 0,
            header: None,
            payload: Vec::new(),
            fds: Vec::new(),
            broken: None,
            peak: 0,
            doorbells: false,
            signal: None,
            eof: false,
            marks_owed: 0,
        }
    }

    /// Whether part of a frame has been read (so the connection has data pending even if the
    /// socket has none).
    pub(crate) fn in_progress(&self) -> bool {
        self.hdr_filled > 0
    }

    /// The header of the current frame, once complete.
    pub(crate) fn header(&self) -> Option<Header> {
        self.header
    }

    pub(crate) fn fail(&mut self, err: Error) -> Error {
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

    /// Makes sure the payload buffer has room for `want` more bytes (`want` ≤ what the frame
    /// still owes, so never beyond its checked length).
    fn reserve(&mut self, want: usize) -> Result<()> {
        let have = self.payload.len();
        let cap = self.payload.capacity();
        if cap - have < want {
            // Double (from 64 KiB), but never past the frame's end.
            let target =
                cap.saturating_mul(2).max(MIN_GROW).min(have + self.owed()).max(have + want);
            let step = target - have;
            if self.payload.try_reserve_exact(step).is_err() {
                let e = Error::new(ErrorKind::Io, format!("cannot allocate {step} bytes"));
                return Err(self.fail(e));
            }
            self.peak = self.peak.max(self.payload.capacity());
        }
        Ok(())
    }

    /// Payload bytes the current frame still owes.
    fn owed(&self) -> usize {
        self.header.map_or(0, |h| h.len as usize - self.payload.len())
    }

    /// Checks a complete header and the descriptors that came with it.
    fn accept_header(&mut self, limit: usize) -> Result<()> {
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
        Ok(())
    }

    /// Reads until the header is complete and checked (in record mode, with the first
    /// record's payload). `Ok(Pending)` when the source has nothing more now (only without
    /// `block`).
    pub(crate) fn read_header(
        &mut self,
        src: &mut Source<'_>,
        limit: usize,
        block: bool,
    ) -> Result<Progress> {
        self.check_broken()?;
        if self.header.is_some() {
            return Ok(Progress::Ready);
        }
        match self.mode {
            Mode::Stream => self.read_header_stream(src, limit, block),
            Mode::Records => self.read_first_record(src, limit, block),
        }
    }

    fn read_header_stream(
        &mut self,
        src: &mut Source<'_>,
        limit: usize,
        block: bool,
    ) -> Result<Progress> {
        while self.header.is_none() {
            let mut extra = Vec::new();
            let filled = self.hdr_filled;
            let n = match src.read(as_uninit(&mut self.hdr[filled..]), &mut [], &mut extra, block) {
                Ok((n, _)) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Progress::Pending),
                Err(e) => return Err(self.fail(Error::io(e, "receiving"))),
            };
            if n == 0 {
                if self.hdr_filled == 0 {
                    let e = Error::new(ErrorKind::Disconnected, "the peer closed the connection");
                    return Err(self.fail(e));
                }
                return Err(self.fail(disconnected_mid()));
            }
            if !extra.is_empty() {
                if self.hdr_filled != 0 || !self.fds.is_empty() {
                    return Err(self.fail(fds_inside()));
                }
                self.fds = extra;
            }
            self.hdr_filled += n;
            if self.hdr_filled == HEADER_LEN {
                self.payload.clear();
                self.accept_header(limit)?;
            }
        }
        Ok(Progress::Ready)
    }

    fn read_first_record(
        &mut self,
        src: &mut Source<'_>,
        limit: usize,
        block: bool,
    ) -> Result<Progress> {
        self.payload.clear();
        if self.payload.capacity() < FIRST_PAYLOAD {
            if self.payload.try_reserve_exact(FIRST_PAYLOAD).is_err() {
                return Err(self.fail(Error::new(ErrorKind::Io, "cannot allocate 64 KiB")));
            }
            self.peak = self.peak.max(self.payload.capacity());
        }
        let mut extra = Vec::new();
        let spare = &mut self.payload.spare_capacity_mut()[..FIRST_PAYLOAD];
        let res = src.read(as_uninit(&mut self.hdr), spare, &mut extra, block);
        match self.first_record_read(res, extra, limit)? {
            Some(got) => {
                // SAFETY: `read` initialised the first `got` bytes of the spare capacity.
                unsafe { self.payload.set_len(got) };
                Ok(Progress::Ready)
            }
            None => Ok(Progress::Pending),
        }
    }

    /// Record mode, no frame started: reads the first record with its payload straight into
    /// `dst` (at least 64 KiB long). Returns how many payload bytes are now in `dst` (they are
    /// the caller's to keep or to hand back with [`read_payload_direct`](Self::read_payload_direct)),
    /// or `None` when nothing has arrived.
    pub(crate) fn read_first_record_into(
        &mut self,
        src: &mut Source<'_>,
        limit: usize,
        block: bool,
        dst: &mut [u8],
    ) -> Result<Option<usize>> {
        self.check_broken()?;
        debug_assert!(self.mode == Mode::Records && self.header.is_none());
        self.payload.clear();
        let mut extra = Vec::new();
        let res = src.read(
            as_uninit(&mut self.hdr),
            as_uninit(&mut dst[..FIRST_PAYLOAD]),
            &mut extra,
            block,
        );
        self.first_record_read(res, extra, limit)
    }

    /// Checks what a first-record read returned: the header, its descriptors, the payload
    /// length. `Some(payload bytes)`, or `None` when nothing was available.
    fn first_record_read(
        &mut self,
        res: io::Result<(usize, bool)>,
        extra: Vec<OwnedFd>,
        limit: usize,
    ) -> Result<Option<usize>> {
        let (n, cut) = match res {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            // A ring pipe's peer that exits with a doorbell of ours unread in its socket
            // resets the connection: an end like any other, which the caller reports only
            // after it has taken what the peer published in the ring before it went.
            Err(e) if self.doorbells && e.kind() == io::ErrorKind::ConnectionReset => {
                self.signal = Some(Signal::Eof);
                return Ok(None);
            }
            Err(e) => return Err(self.fail(Error::io(e, "receiving"))),
        };
        if self.doorbells && extra.is_empty() && !cut && n <= 1 {
            self.signal = Some(if n == 0 { Signal::Eof } else { Signal::Doorbell });
            return Ok(None);
        }
        if n == 0 {
            let e = Error::new(ErrorKind::Disconnected, "the peer closed the connection");
            return Err(self.fail(e));
        }
        if cut || n < HEADER_LEN {
            let e = Error::new(ErrorKind::Protocol, format!("malformed first record ({n} bytes)"));
            return Err(self.fail(e));
        }
        self.fds = extra;
        self.hdr_filled = HEADER_LEN;
        self.accept_header(limit)?;
        let got = n - HEADER_LEN;
        if got as u64 > self.header.map_or(0, |h| h.len) {
            let e = Error::new(ErrorKind::Protocol, "record longer than its frame");
            return Err(self.fail(e));
        }
        Ok(Some(got))
    }

    /// Reads the payload of the current frame (header already complete) into `self.payload`.
    pub(crate) fn read_payload(&mut self, src: &mut Source<'_>, block: bool) -> Result<Progress> {
        while self.owed() > 0 {
            let owed = self.owed();
            let want = match self.mode {
                Mode::Stream => owed.min(MIN_GROW),
                Mode::Records => owed.min(MAX_RECORD),
            };
            self.reserve(want)?;
            let have = self.payload.len();
            let room = owed.min(self.payload.capacity() - have);
            let mut extra = Vec::new();
            let spare = &mut self.payload.spare_capacity_mut()[..room];
            let (n, cut) = match src.read(spare, &mut [], &mut extra, block) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Progress::Pending),
                Err(e) => return Err(self.fail(Error::io(e, "receiving"))),
            };
            if !extra.is_empty() {
                return Err(self.fail(fds_inside()));
            }
            if n == 0 {
                return Err(self.fail(disconnected_mid()));
            }
            if cut {
                let e = Error::new(ErrorKind::Protocol, "record longer than its frame");
                return Err(self.fail(e));
            }
            // SAFETY: `read` initialised the first `n` bytes of the spare capacity.
            unsafe { self.payload.set_len(have + n) };
        }
        Ok(Progress::Ready)
    }

    /// Reads the payload of the current frame straight into `dst` (at least `len` bytes
    /// long). The first `in_dst` payload bytes are already in `dst` (then `self.payload` is
    /// empty); otherwise what `self.payload` holds is copied over first. On `Pending` or an
    /// error every byte received moves into `self.payload`, so nothing is lost.
    pub(crate) fn read_payload_direct(
        &mut self,
        src: &mut Source<'_>,
        dst: &mut [u8],
        in_dst: usize,
        block: bool,
    ) -> Result<Progress> {
        let len = self.header.expect("header read first").len as usize;
        let have = self.payload.len();
        debug_assert!(in_dst == 0 || have == 0);
        dst[..have].copy_from_slice(&self.payload);
        let mut got = have.max(in_dst);
        while got < len {
            let mut extra = Vec::new();
            let res = src.read(as_uninit(&mut dst[got..len]), &mut [], &mut extra, block);
            let stop = match res {
                Ok((0, _)) => Some(Err(disconnected_mid())),
                Ok(_) if !extra.is_empty() => Some(Err(fds_inside())),
                Ok((_, true)) => {
                    Some(Err(Error::new(ErrorKind::Protocol, "record longer than its frame")))
                }
                Ok((n, false)) => {
                    got += n;
                    None
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(Ok(Progress::Pending)),
                Err(e) => Some(Err(Error::io(e, "receiving"))),
            };
            if let Some(out) = stop {
                self.keep(&dst[have..got]);
                return out.map_err(|e| self.fail(e));
            }
        }
        Ok(Progress::Ready)
    }

    /// Appends payload bytes received into a caller's buffer to `self.payload`, so the frame
    /// survives the call.
    pub(crate) fn keep(&mut self, bytes: &[u8]) {
        if self.payload.try_reserve_exact(bytes.len()).is_ok() {
            self.payload.extend_from_slice(bytes);
            self.peak = self.peak.max(self.payload.capacity());
        }
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
}

impl FrameDecoder {
    /// A decoder of a byte stream (a TCP or Unix stream connection) that accepts payloads up
    /// to `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> FrameDecoder {
        FrameDecoder { state: RecvState::new(Mode::Stream), limit: max_message_size }
    }

    /// A decoder of records (a [`Pipe`](crate::Pipe)'s `SOCK_SEQPACKET` socket): each
    /// [`push`](Self::push) is one record.
    pub fn records(max_message_size: usize) -> FrameDecoder {
        FrameDecoder { state: RecvState::new(Mode::Records), limit: max_message_size }
    }

    /// Feeds the next bytes of the stream (or the next record); returns the payloads of the
    /// frames they complete. An error (bad header, a length over the limit, a frame that
    /// declares descriptors — none can arrive in memory — a malformed record) is final: every
    /// later call repeats it.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
        let records = self.state.mode == Mode::Records;
        let mut src = Source::Mem { data: bytes, pos: 0, records };
        let mut out = Vec::new();
        if records && bytes.is_empty() {
            // An empty record reads as end of stream on a socket.
            self.state.check_broken()?;
            let e = Error::new(ErrorKind::Disconnected, "the peer closed the connection");
            return Err(self.state.fail(e));
        }
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
    /// limit (except the 64 KiB buffer a record decoder keeps for first records), and never
    /// more than twice the payload bytes actually received plus one record (512 KiB) and
    /// 64 KiB, whatever a header claims.
    pub fn peak_allocation(&self) -> usize {
        self.state.peak
    }
}
