//! [`Connection`]: one end of a message channel between processes, and [`Pipe`].

use crate::error::{Error, ErrorKind, Result};
use crate::frame::{
    Header, Mode, Progress, RecvState, Source, FIRST_PAYLOAD, FIRST_RECORD, HEADER_LEN,
    KEEP_CAPACITY, MAX_LEN, MAX_RECORD,
};
use crate::sys;
use multiproc_arena::transfer;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Creates connected pairs of [`Connection`]s (Python's `multiprocessing.Pipe`).
///
/// ```
/// use multiproc_ipc_pipe::Pipe;
/// let (a, b) = Pipe::new().unwrap();
/// a.send(&(1u32, "two")).unwrap();
/// let (n, s): (u32, String) = b.recv().unwrap();
/// assert_eq!((n, s.as_str()), (1, "two"));
/// b.send_bytes(b"back").unwrap();
/// assert_eq!(a.recv_bytes().unwrap(), b"back");
/// ```
#[derive(Debug)]
pub struct Pipe {
    _private: (),
}

impl Pipe {
    /// A duplex pipe: both ends send and receive (Python's `Pipe()`).
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> Result<(Connection, Connection)> {
        let (a, b) = pair()?;
        Ok((
            Connection::from_parts(a, true, true, false),
            Connection::from_parts(b, true, true, false),
        ))
    }

    /// A one-way pipe `(reader, writer)` (Python's `Pipe(duplex=False)`): the reader only
    /// receives, the writer only sends; the other operations fail with
    /// [`ErrorKind::WrongDirection`].
    pub fn simplex() -> Result<(Connection, Connection)> {
        let (r, w) = pair()?;
        sys::shutdown(r.as_fd(), libc::SHUT_WR).map_err(|e| Error::io(e, "shutdown"))?;
        sys::shutdown(w.as_fd(), libc::SHUT_RD).map_err(|e| Error::io(e, "shutdown"))?;
        Ok((
            Connection::from_parts(r, true, false, false),
            Connection::from_parts(w, false, true, false),
        ))
    }
}

/// Asked-for send buffer of a pipe socket: large records, several in flight.
const PIPE_SNDBUF: usize = 1 << 20;

fn pair() -> Result<(OwnedFd, OwnedFd)> {
    let (a, b) = sys::socketpair(libc::SOCK_SEQPACKET).map_err(|e| Error::io(e, "socketpair"))?;
    for s in [&a, &b] {
        let _ = sys::set_sndbuf(s.as_fd(), PIPE_SNDBUF);
    }
    Ok((a, b))
}

#[derive(Default)]
struct SendState {
    buf: Vec<u8>,
    /// An earlier send stopped in the middle of a frame: the stream is unusable.
    broken: bool,
}

/// One end of a message channel to another process: a [`Pipe`] end, or a connection made by
/// a [`Listener`](crate::Listener) / [`Client`](crate::Client).
///
/// Messages keep their boundaries; [`send`](Self::send)/[`recv`](Self::recv) carry any serde
/// value (postcard), and handles inside it — arena objects, segments, other connections —
/// travel with SCM_RIGHTS. [`send_bytes`](Self::send_bytes)/[`recv_bytes`](Self::recv_bytes)
/// carry raw bytes. Once every handle of the other end is closed or its process died, `recv`
/// fails with [`ErrorKind::Disconnected`] and `send` does too (never a SIGPIPE).
///
/// A `Connection` is `Send + Sync`: sends from several threads are serialised whole, and so
/// are receives. A connection shared by several *processes* (inherited or passed) behaves like
/// Python's: the kernel socket is the only state between messages (a receiver never reads past
/// the message it is taking), so processes may take turns under a lock.
///
/// Receiving waits blocked in the kernel; [`set_spin`](Self::set_spin) makes it first retry
/// for a bounded time, which cuts latency when the peer answers within microseconds.
pub struct Connection {
    fd: OwnedFd,
    readable: bool,
    writable: bool,
    tcp: bool,
    /// For a record socket (`SOCK_SEQPACKET`), the size of the records after the first one;
    /// `None` for a stream.
    record: Option<usize>,
    limit: AtomicUsize,
    spin_ns: AtomicU64,
    /// Set by [`shutdown`](Self::shutdown).
    shut: AtomicBool,
    send: Mutex<SendState>,
    recv: Mutex<RecvState>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("fd", &self.fd.as_raw_fd())
            .field("readable", &self.readable)
            .field("writable", &self.writable)
            .field("tcp", &self.tcp)
            .field("record", &self.record)
            .finish()
    }
}

struct SockSource<'a> {
    fd: BorrowedFd<'a>,
}

impl Source for SockSource<'_> {
    fn read(
        &mut self,
        a: &mut [MaybeUninit<u8>],
        b: &mut [MaybeUninit<u8>],
        fds: &mut Vec<OwnedFd>,
        block: bool,
    ) -> io::Result<(usize, bool)> {
        sys::recvmsg(self.fd, a, b, fds, !block)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a receive stops waiting: never, or at a deadline.
fn deadline_after(timeout: Duration) -> Option<Instant> {
    Some(
        Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86400 * 365)),
    )
}

impl Connection {
    /// Wraps a connected socket; a `SOCK_SEQPACKET` one carries frames as records.
    pub(crate) fn from_parts(fd: OwnedFd, readable: bool, writable: bool, tcp: bool) -> Connection {
        let seq = !tcp && sys::socket_type(fd.as_fd()).ok() == Some(libc::SOCK_SEQPACKET);
        let record = seq.then(|| {
            let buf = sys::sndbuf(fd.as_fd()).unwrap_or(0);
            ((buf / 4) & !4095).clamp(FIRST_RECORD, MAX_RECORD)
        });
        let mode = if seq { Mode::Records } else { Mode::Stream };
        Connection {
            fd,
            readable,
            writable,
            tcp,
            record,
            limit: AtomicUsize::new(crate::frame::DEFAULT_MAX_MESSAGE_SIZE),
            spin_ns: AtomicU64::new(0),
            shut: AtomicBool::new(false),
            send: Mutex::new(SendState::default()),
            recv: Mutex::new(RecvState::new(mode)),
        }
    }

    /// Wraps a connected socket whose peer speaks this crate's frames: a Unix
    /// `SOCK_SEQPACKET` socket (as [`Pipe`] and Unix [`Listener`](crate::Listener)s make), or a
    /// Unix or TCP stream socket. Anything else is an [`ErrorKind::InvalidInput`] error.
    pub fn from_fd(fd: OwnedFd) -> Result<Connection> {
        let domain = sys::socket_domain(fd.as_fd()).map_err(|e| Error::io(e, "not a socket"))?;
        let ty = sys::socket_type(fd.as_fd()).map_err(|e| Error::io(e, "not a socket"))?;
        if ty != libc::SOCK_STREAM && ty != libc::SOCK_SEQPACKET {
            return Err(Error::new(ErrorKind::InvalidInput, "not a stream or seqpacket socket"));
        }
        let tcp = match domain {
            libc::AF_UNIX => false,
            libc::AF_INET | libc::AF_INET6 => true,
            _ => return Err(Error::new(ErrorKind::InvalidInput, "not a Unix or TCP socket")),
        };
        Ok(Connection::from_parts(fd, true, true, tcp))
    }

    /// Whether this end can receive (false for the writer of [`Pipe::simplex`]).
    pub fn readable(&self) -> bool {
        self.readable
    }

    /// Whether this end can send (false for the reader of [`Pipe::simplex`]).
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// The largest message this end sends or accepts, in bytes (default 4 GiB). A larger
    /// incoming frame is refused from its header, before anything is allocated, and breaks
    /// the connection; a larger outgoing message fails with [`ErrorKind::TooLarge`] and
    /// sends nothing.
    pub fn set_max_message_size(&self, bytes: usize) {
        self.limit.store(bytes.min(MAX_LEN as usize), Ordering::Relaxed);
    }

    /// See [`set_max_message_size`](Self::set_max_message_size).
    pub fn max_message_size(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Makes receives retry without sleeping for up to `spin` before they block in the kernel
    /// (default zero: block at once). Worth it only when the peer answers within that time
    /// and each process has a core of its own: it saves the kernel's wake-up (several
    /// microseconds a message); on a machine with more runnable processes than cores it
    /// steals time from the peer and makes things slower. An idle connection still sleeps
    /// after `spin`.
    pub fn set_spin(&self, spin: Duration) {
        self.spin_ns.store(spin.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// See [`set_spin`](Self::set_spin).
    pub fn spin(&self) -> Duration {
        Duration::from_nanos(self.spin_ns.load(Ordering::Relaxed))
    }

    /// The error for a use after [`shutdown`](Self::shutdown) by this process.
    fn check_shut(&self) -> Result<()> {
        if self.shut.load(Ordering::Relaxed) {
            return Err(Error::new(ErrorKind::Closed, "the connection was shut down"));
        }
        Ok(())
    }

    fn check_read(&self) -> Result<()> {
        self.check_shut()?;
        if !self.readable {
            return Err(Error::new(ErrorKind::WrongDirection, "connection is write-only"));
        }
        Ok(())
    }

    fn check_write(&self) -> Result<()> {
        self.check_shut()?;
        if !self.writable {
            return Err(Error::new(ErrorKind::WrongDirection, "connection is read-only"));
        }
        Ok(())
    }

    // ----- sending -----

    /// Sends `value` (postcard; handles inside it travel with SCM_RIGHTS). Blocks only while
    /// the peer's receive buffer is full.
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.send_deadline(value, None)
    }

    /// [`send`](Self::send) that gives up after `timeout` if the peer does not make room:
    /// [`ErrorKind::Timeout`]. If nothing was sent yet, the connection is unchanged; if the
    /// peer stopped reading in the middle of a large message, the message is abandoned and
    /// the connection can no longer send.
    pub fn send_timeout<T: Serialize + ?Sized>(&self, value: &T, timeout: Duration) -> Result<()> {
        self.send_deadline(value, deadline_after(timeout))
    }

    fn send_deadline<T: Serialize + ?Sized>(
        &self,
        value: &T,
        deadline: Option<Instant>,
    ) -> Result<()> {
        self.check_write()?;
        let mut st = lock(&self.send);
        let st = &mut *st;
        st.buf.clear();
        st.buf.extend_from_slice(&[0; HEADER_LEN]);
        let fds = match transfer::encode_into(value, &mut st.buf) {
            Ok(fds) => fds,
            Err(e) => return Err(Error::codec(e)),
        };
        let len = st.buf.len() - HEADER_LEN;
        let header = self.header_for(len, fds.len())?;
        st.buf[..HEADER_LEN].copy_from_slice(&header);
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        let res = self.write_frame(&mut st.broken, &[&st.buf], &borrowed, deadline);
        if st.buf.capacity() > KEEP_CAPACITY {
            st.buf = Vec::new();
        }
        res
    }

    /// Sends `bytes` as one message (Python's `send_bytes(buf)`).
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.send_bytes_deadline(bytes, None)
    }

    /// [`send_bytes`](Self::send_bytes) with a timeout, as [`send_timeout`](Self::send_timeout).
    pub fn send_bytes_timeout(&self, bytes: &[u8], timeout: Duration) -> Result<()> {
        self.send_bytes_deadline(bytes, deadline_after(timeout))
    }

    fn send_bytes_deadline(&self, bytes: &[u8], deadline: Option<Instant>) -> Result<()> {
        self.check_write()?;
        let header = self.header_for(bytes.len(), 0)?;
        let mut st = lock(&self.send);
        self.write_frame(&mut st.broken, &[&header, bytes], &[], deadline)
    }

    /// Sends `bytes[offset..offset + size]` (`size` `None`: to the end), checking the range as
    /// Python's `send_bytes(buf, offset, size)` does: out of range is
    /// [`ErrorKind::InvalidInput`].
    pub fn send_bytes_range(&self, bytes: &[u8], offset: usize, size: Option<usize>) -> Result<()> {
        if offset > bytes.len() {
            return Err(Error::new(ErrorKind::InvalidInput, "offset beyond the buffer"));
        }
        let size = size.unwrap_or(bytes.len() - offset);
        if size > bytes.len() - offset {
            return Err(Error::new(ErrorKind::InvalidInput, "offset + size beyond the buffer"));
        }
        self.send_bytes(&bytes[offset..offset + size])
    }

    fn header_for(&self, len: usize, nfds: usize) -> Result<[u8; HEADER_LEN]> {
        let limit = self.max_message_size();
        if len > limit {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!("message of {len} bytes exceeds the limit of {limit}"),
            ));
        }
        if nfds > 0 && self.tcp {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "handles (descriptors) cannot be sent over a TCP connection",
            ));
        }
        Ok(Header { len: len as u64, fds: nfds as u8 }.encode())
    }

    /// Writes a whole frame: `bufs` concatenated, `fds` attached to its first byte.
    fn write_frame(
        &self,
        broken: &mut bool,
        bufs: &[&[u8]],
        fds: &[BorrowedFd<'_>],
        deadline: Option<Instant>,
    ) -> Result<()> {
        if *broken {
            return Err(Error::new(
                ErrorKind::Protocol,
                "an earlier send failed in the middle of a message; the connection is unusable",
            ));
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut sent = 0;
        let mut fds = fds;
        while sent < total {
            // A record socket takes the frame in records; a stream takes what it can (all of
            // it unless a signal interrupts a large blocking send).
            let end = match self.record {
                Some(_) if sent == 0 => total.min(FIRST_RECORD),
                Some(r) => total.min(sent + r),
                None => total,
            };
            let mut rest: [&[u8]; 2] = [&[], &[]];
            let mut k = 0;
            let mut pos = 0;
            for b in bufs {
                let (lo, hi) = (sent.max(pos), end.min(pos + b.len()));
                if lo < hi {
                    rest[k] = &b[lo - pos..hi - pos];
                    k += 1;
                }
                pos += b.len();
            }
            match sys::sendmsg(self.fd.as_fd(), &rest[..k], fds, deadline.is_some()) {
                Ok(n) => {
                    sent += n;
                    fds = &[];
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && deadline.is_some() => {
                    if let Err(e) = self.wait_writable(deadline) {
                        if sent > 0 {
                            *broken = true;
                            return Err(Error::new(
                                ErrorKind::Timeout,
                                "the peer stopped reading in the middle of the message; it was \
                                 abandoned and the connection is unusable for sending",
                            ));
                        }
                        return Err(e);
                    }
                }
                Err(e) => {
                    if sent > 0 {
                        *broken = true;
                    }
                    return Err(Error::io(e, "sending"));
                }
            }
        }
        Ok(())
    }

    // ----- receiving -----

    /// Waits until `st` holds a whole frame (or its header only, without `payload`).
    fn receive(&self, st: &mut RecvState, deadline: Option<Instant>, payload: bool) -> Result<()> {
        let limit = self.max_message_size();
        let mut src = SockSource { fd: self.fd.as_fd() };
        self.retry(deadline, |block| {
            let mut p = st.read_header(&mut src, limit, block)?;
            if p == Progress::Ready && payload {
                p = st.read_payload(&mut src, block)?;
            }
            Ok(p)
        })
    }

    /// Runs `attempt` (its argument: whether it may block in the kernel) until it is
    /// `Ready`: first without blocking, spinning for [`spin`](Self::spin), then blocking —
    /// in the receive itself without a deadline, in `poll` with one.
    fn retry(
        &self,
        deadline: Option<Instant>,
        mut attempt: impl FnMut(bool) -> Result<Progress>,
    ) -> Result<()> {
        let spin = self.spin_ns.load(Ordering::Relaxed);
        let mut spin_until = None;
        let mut block = deadline.is_none() && spin == 0;
        loop {
            match attempt(block) {
                Ok(Progress::Ready) => return Ok(()),
                Ok(Progress::Pending) => {}
                Err(e) if e.kind() == ErrorKind::Disconnected => {
                    // A shutdown by another thread of ours reads as end of stream.
                    self.check_shut()?;
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
            if spin > 0 {
                let now = Instant::now();
                let until = *spin_until.get_or_insert(now + Duration::from_nanos(spin));
                if now < until {
                    std::hint::spin_loop();
                    continue;
                }
                if deadline.is_none() {
                    block = true;
                    continue;
                }
            }
            self.wait_readable(deadline)?;
        }
    }

    /// Blocks until the socket is readable; a passed deadline is [`ErrorKind::Timeout`].
    fn wait_readable(&self, deadline: Option<Instant>) -> Result<()> {
        self.wait_for(sys::POLL_IN, deadline)
    }

    /// Blocks until the socket is writable; a passed deadline is [`ErrorKind::Timeout`].
    fn wait_writable(&self, deadline: Option<Instant>) -> Result<()> {
        self.wait_for(sys::POLL_OUT, deadline)
    }

    fn wait_for(&self, events: i16, deadline: Option<Instant>) -> Result<()> {
        loop {
            let timeout = match deadline {
                None => None,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(Error::kind_only(ErrorKind::Timeout));
                    }
                    Some(d - now)
                }
            };
            let mut set = [sys::PollFd::new(self.fd.as_fd(), events)];
            match sys::poll(&mut set, timeout) {
                Ok(_) if set[0].ready() => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(e, "poll")),
            }
        }
    }

    fn recv_deadline<T: DeserializeOwned>(&self, deadline: Option<Instant>) -> Result<T> {
        self.check_read()?;
        let mut st = lock(&self.recv);
        self.receive(&mut st, deadline, true)?;
        let fds = std::mem::take(&mut st.fds);
        let res = transfer::decode(&st.payload, fds);
        st.finish_frame();
        res.map_err(Error::codec)
    }

    /// Receives one message sent by [`send`](Self::send) and decodes it as `T`, blocking until
    /// one arrives. A type mismatch is an [`ErrorKind::Codec`] error (the message is consumed;
    /// the connection stays usable); a closed or dead peer is [`ErrorKind::Disconnected`].
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T> {
        self.recv_deadline(None)
    }

    /// [`recv`](Self::recv) that gives up after `timeout` with [`ErrorKind::Timeout`]
    /// (`Duration::ZERO`: only what has arrived). A message partly received is kept.
    pub fn recv_timeout<T: DeserializeOwned>(&self, timeout: Duration) -> Result<T> {
        self.recv_deadline(deadline_after(timeout))
    }

    fn recv_bytes_deadline(&self, deadline: Option<Instant>) -> Result<Vec<u8>> {
        self.check_read()?;
        let mut st = lock(&self.recv);
        self.receive(&mut st, deadline, true)?;
        let len = st.payload.len();
        let out = if st.payload.capacity() <= 2 * len.max(64) {
            std::mem::take(&mut st.payload)
        } else {
            st.payload.clone()
        };
        st.finish_frame();
        Ok(out)
    }

    /// Receives one message as bytes (Python's `recv_bytes()`); descriptors sent with it are
    /// closed.
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        self.recv_bytes_deadline(None)
    }

    /// [`recv_bytes`](Self::recv_bytes) with a timeout.
    pub fn recv_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        self.recv_bytes_deadline(deadline_after(timeout))
    }

    fn recv_into_deadline(&self, buf: &mut [u8], deadline: Option<Instant>) -> Result<usize> {
        self.check_read()?;
        let mut st = lock(&self.recv);
        let st = &mut *st;
        let mut src = SockSource { fd: self.fd.as_fd() };
        // Payload bytes that are in `buf` only.
        let mut in_dst = 0;
        if self.record.is_some() && st.header().is_none() && buf.len() >= FIRST_PAYLOAD {
            // The first record goes straight into the caller's buffer.
            let limit = self.max_message_size();
            self.retry(deadline, |block| {
                Ok(match st.read_first_record_into(&mut src, limit, block, buf)? {
                    Some(got) => {
                        in_dst = got;
                        Progress::Ready
                    }
                    None => Progress::Pending,
                })
            })?;
        } else {
            self.receive(st, deadline, false)?;
        }
        let len = st.header().expect("header complete").len as usize;
        if buf.len() < len {
            st.keep(&buf[..in_dst]);
            return Err(Error::too_small(len, buf.len()));
        }
        self.retry(deadline, |block| {
            let p = st.read_payload_direct(&mut src, buf, in_dst, block);
            // Whatever happened, the bytes now live in `st` (or the frame is complete).
            in_dst = 0;
            p
        })?;
        st.finish_frame();
        Ok(len)
    }

    /// Receives one message into `buf` and returns its length (Python's
    /// `recv_bytes_into`; pass `&mut buf[offset..]` for an offset). A buffer shorter than the
    /// message is an [`ErrorKind::BufferTooSmall`] error whose [`Error::needed`] is the
    /// message length; the message stays queued for the next call.
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_into_deadline(buf, None)
    }

    /// [`recv_bytes_into`](Self::recv_bytes_into) with a timeout.
    pub fn recv_bytes_into_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.recv_into_deadline(buf, deadline_after(timeout))
    }

    /// Whether a message (or the end of the stream) is waiting, waiting up to `timeout` for
    /// one (`Duration::ZERO`: just look). Consumes nothing.
    pub fn poll(&self, timeout: Duration) -> Result<bool> {
        self.check_read()?;
        if self.pending() {
            return Ok(true);
        }
        match self.wait_readable(deadline_after(timeout)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::Timeout => {
                // A zero timeout still checks once.
                let mut set = [sys::PollFd::new(self.fd.as_fd(), sys::POLL_IN)];
                Ok(sys::poll(&mut set, Some(Duration::ZERO)).is_ok() && set[0].ready())
            }
            Err(e) => Err(e),
        }
    }

    /// Whether part of a message has already been read from the socket (so the connection
    /// is ready although the socket may not be).
    pub(crate) fn pending(&self) -> bool {
        match self.recv.try_lock() {
            Ok(st) => st.in_progress(),
            Err(_) => false,
        }
    }

    /// Shuts the connection down in both directions for every process that holds it: the
    /// peer sees end of stream, receives blocked in other threads return, and later calls
    /// here fail with [`ErrorKind::Closed`]. The descriptor stays open until drop.
    pub fn shutdown(&self) -> Result<()> {
        self.shut.store(true, Ordering::Relaxed);
        sys::shutdown(self.fd.as_fd(), libc::SHUT_RDWR).map_err(|e| Error::io(e, "shutdown"))
    }

    /// Closes this handle (Python's `close()`; dropping does the same). The peer sees end of
    /// stream once every handle of this end, in every process, is closed.
    pub fn close(self) {
        drop(self)
    }
}

impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Connection {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<Connection> for OwnedFd {
    fn from(c: Connection) -> OwnedFd {
        c.fd
    }
}

/// What a connection looks like inside a message: its descriptor's index in the transfer
/// table, its direction and transport, its limit.
#[derive(Serialize, Deserialize)]
struct Wire {
    fd: u32,
    flags: u8,
    limit: u64,
}

const F_READ: u8 = 1;
const F_WRITE: u8 = 2;
const F_TCP: u8 = 4;

impl Serialize for Connection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        if self.pending() {
            return Err(S::Error::custom(
                "a connection in the middle of receiving a message cannot be sent",
            ));
        }
        let fd = transfer::push_fd(self.fd.as_fd()).map_err(S::Error::custom)?;
        let flags = (self.readable as u8 * F_READ)
            | (self.writable as u8 * F_WRITE)
            | (self.tcp as u8 * F_TCP);
        Wire { fd, flags, limit: self.max_message_size() as u64 }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let w = Wire::deserialize(d)?;
        let fd = transfer::take_fd(w.fd).map_err(D::Error::custom)?;
        let c = Connection::from_parts(
            fd,
            w.flags & F_READ != 0,
            w.flags & F_WRITE != 0,
            w.flags & F_TCP != 0,
        );
        c.set_max_message_size(w.limit.min(usize::MAX as u64) as usize);
        Ok(c)
    }
}
