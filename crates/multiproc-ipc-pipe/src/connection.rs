//! [`Connection`]: one end of a message channel between processes, and [`Pipe`].

use crate::bell::{Bell, NoRoom, Rx, Tx, MARK, MSG};
use crate::error::{Error, ErrorKind, Result};
use crate::frame::Signal;
use crate::frame::{
    Header, Mode, Progress, RecvState, Source, FIRST_PAYLOAD, FIRST_RECORD, HEADER_LEN,
    KEEP_CAPACITY, MAX_LEN, MAX_RECORD,
};
use crate::sys;
use multiproc_arena::futex::Deadline;
use multiproc_arena::spsc::{Rec, RingMem, HEADER_WORDS};
use multiproc_arena::{transfer, Arena};
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
        let mems = ring_mems()?;
        let mut a = Connection::from_parts(a, true, true, false);
        let mut b = Connection::from_parts(b, true, true, false);
        if let Some(mems) = mems {
            a.attach(Shm { mems: mems.clone(), end: 0 })?;
            b.attach(Shm { mems, end: 1 })?;
        }
        Ok((a, b))
    }

    /// A one-way pipe `(reader, writer)` (Python's `Pipe(duplex=False)`): the reader only
    /// receives, the writer only sends; the other operations fail with
    /// [`ErrorKind::WrongDirection`].
    pub fn simplex() -> Result<(Connection, Connection)> {
        let (r, w) = pair()?;
        sys::shutdown(r.as_fd(), libc::SHUT_WR).map_err(|e| Error::io(e, "shutdown"))?;
        sys::shutdown(w.as_fd(), libc::SHUT_RD).map_err(|e| Error::io(e, "shutdown"))?;
        let mems = ring_mems()?;
        let mut r = Connection::from_parts(r, true, false, false);
        let mut w = Connection::from_parts(w, false, true, false);
        if let Some(mems) = mems {
            r.attach(Shm { mems: mems.clone(), end: 0 })?;
            w.attach(Shm { mems, end: 1 })?;
        }
        Ok((r, w))
    }
}

/// Data words of each direction's ring (64 KiB).
const RING_WORDS: usize = 8 << 10;
/// How long a sender waits for a spinning receiver to come back into its receive before it
/// rings the doorbell (at most; and only when the receiver spins).
const BELL_GRACE: Duration = Duration::from_micros(2);
/// After this long, a spinning receive yields the CPU now and then (a peer that waits for a
/// CPU gets it).
const SPIN_POLITE: Duration = Duration::from_micros(5);
/// How often a spinning receiver, or a sender that rang no doorbell, asks the kernel whether
/// the peer is gone.
const PEER_CHECK: Duration = Duration::from_micros(50);

/// Whether new pipes get a shared-memory ring (`MULTIPROC_PIPE_RING=0` turns it off).
fn ring_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("MULTIPROC_PIPE_RING").map_or(true, |v| v != "0"))
}

/// A new pipe's two rings (one per direction) in an arena of their own.
fn ring_mems() -> Result<Option<[RingMem; 2]>> {
    if cfg!(multiproc_loom) || !ring_enabled() {
        return Ok(None);
    }
    let err = |e: multiproc_arena::Error| {
        Error::new(ErrorKind::Io, format!("creating the pipe's shared memory: {e}"))
    };
    // The allocator rounds each block up to a power of two: room for twice the rings
    // (untouched pages of the memfd cost nothing).
    let arena = Arena::new(4 * (HEADER_WORDS + RING_WORDS) * 8 + (64 << 10)).map_err(err)?;
    let ring = || RingMem::new_in(&arena, RING_WORDS).map_err(err);
    Ok(Some([ring()?, ring()?]))
}

/// A pipe end's shared memory: both directions' rings and which end this is (`mems[end]` is
/// written by this end, the other by the peer).
struct Shm {
    mems: [RingMem; 2],
    end: u8,
}

impl Shm {
    /// This end's halves: the producer of its own ring (if it sends), the consumer of the
    /// peer's (if it receives).
    fn halves(&self, rx: bool, tx: bool) -> Result<(Option<Rx>, Option<Tx>)> {
        let e = self.end as usize;
        let dup = || {
            Error::new(
                ErrorKind::InvalidInput,
                "this pipe end is open in this process already (a pipe end passed back to \
                 its own process must be dropped there first)",
            )
        };
        let rx = if rx { Some(Rx::new(&self.mems[1 - e]).ok_or_else(dup)?) } else { None };
        let tx = if tx { Some(Tx::new(&self.mems[e]).ok_or_else(dup)?) } else { None };
        Ok((rx, tx))
    }

    /// The ring this end receives from.
    fn rx_mem(&self) -> &RingMem {
        &self.mems[1 - self.end as usize]
    }
}

fn corrupt() -> Error {
    Error::new(
        ErrorKind::Protocol,
        "the pipe's shared ring is inconsistent (one end used by two processes at once?)",
    )
}

/// The next message of a ring pipe, once known.
enum Next {
    /// Inline in the ring.
    Ring(Rec),
    /// A frame on the socket, its first record read (`in_dst` payload bytes of it in the
    /// caller's buffer).
    Socket { in_dst: usize },
}

/// What a first-record read of a ring pipe's socket found.
enum Sock {
    Frame(usize),
    Doorbell,
    Eof,
    Nothing,
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
    link: Link,
    /// A pipe end's producer half of its ring.
    tx: Option<Tx>,
}

/// Receiving state: the frame decoder and a pipe end's consumer half of the peer's ring.
struct RecvSide {
    st: RecvState,
    rx: Option<Rx>,
}

impl Link {
    fn check(&self) -> Result<()> {
        if self.broken {
            return Err(Error::new(
                ErrorKind::Protocol,
                "an earlier send failed in the middle of a message; the connection is unusable",
            ));
        }
        if self.gone {
            return Err(Error::new(ErrorKind::Disconnected, "the peer closed the connection"));
        }
        Ok(())
    }
}

/// Sending state besides the buffer.
#[derive(Default)]
struct Link {
    /// An earlier send stopped in the middle of a frame: the stream is unusable.
    broken: bool,
    /// The peer was seen gone (ring pipes learn it without a system call per message).
    gone: bool,
    /// When a ring send last asked the kernel whether the peer is gone.
    checked: Option<Instant>,
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
/// Python's: the kernel socket and a pipe's shared ring are the only state between messages
/// (a receiver never reads past the message it is taking), so processes may take turns under
/// a lock; using one end from two processes at the same time is not supported (messages may
/// be lost or the connection report a protocol error, but memory is never corrupted).
///
/// A [`Pipe`]'s connections carry small messages through shared memory (see the crate's
/// "Data path"). Receiving waits blocked in the kernel; [`set_spin`](Self::set_spin) makes it
/// first spin on the ring for a bounded time, which cuts latency when the peer answers within
/// microseconds.
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
    recv: Mutex<RecvSide>,
    /// The shared-memory rings of a [`Pipe`] end.
    shm: Option<Shm>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("fd", &self.fd.as_raw_fd())
            .field("readable", &self.readable)
            .field("writable", &self.writable)
            .field("tcp", &self.tcp)
            .field("record", &self.record)
            .field("ring", &self.shm.is_some())
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
            recv: Mutex::new(RecvSide { st: RecvState::new(mode), rx: None }),
            shm: None,
        }
    }

    /// Adds the shared-memory rings (a [`Pipe`] end).
    fn attach(&mut self, shm: Shm) -> Result<()> {
        let (rx, tx) = shm.halves(self.readable, self.writable)?;
        let recv = self.recv.get_mut().unwrap_or_else(|e| e.into_inner());
        recv.st.doorbells = true;
        recv.rx = rx;
        self.send.get_mut().unwrap_or_else(|e| e.into_inner()).tx = tx;
        self.shm = Some(shm);
        self.set_spin(self.spin());
        Ok(())
    }

    /// Wraps a connected socket whose peer speaks this crate's frames: a Unix
    /// `SOCK_SEQPACKET` socket (as Unix [`Listener`](crate::Listener)s make), or a Unix or
    /// TCP stream socket. Anything else is an [`ErrorKind::InvalidInput`] error. The result
    /// uses the socket alone, so its peer must too (not a [`Pipe`] end, whose small messages
    /// travel through shared memory: pass those as `Connection`s instead).
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

    /// Makes each receive spin (watch the pipe's ring, or retry the socket) for at most `spin`
    /// before it blocks in the kernel (default zero: block at once). `spin` bounds every call:
    /// an idle connection sleeps after it and burns no core. While a [`Pipe`] receive spins,
    /// the sender skips the doorbell system call, so a round trip between two spinning
    /// processes costs no system call at all; a spinning receive yields the CPU now and then
    /// once it has spun for 5 µs, and asks the kernel every 50 µs whether the peer is gone. Worth it only when the peer answers within that time
    /// and each process has a core of its own; on a machine with more runnable processes than
    /// cores it steals time from the peer and makes things slower. A sender to a spinning
    /// receiver waits up to 2 µs for it to come back into its receive before it rings.
    pub fn set_spin(&self, spin: Duration) {
        self.spin_ns.store(spin.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
        if let Some(shm) = self.shm.as_ref().filter(|_| self.readable) {
            crate::bell::set_spin_hint(shm.rx_mem(), spin.as_micros().min(u32::MAX as u128) as u32);
        }
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
        let st = &mut *st;
        let res = self.send_message(&mut st.link, st.tx.as_mut(), &[&st.buf], &borrowed, deadline);
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
        let st = &mut *st;
        self.send_message(&mut st.link, st.tx.as_mut(), &[&header, bytes], &[], deadline)
    }

    /// Sends one message given as its whole frame (`frame`: the header first, in up to two
    /// pieces): inline through the ring when this is a ring pipe and it fits, else as a
    /// frame on the socket (with a mark in the ring, so the order holds).
    fn send_message(
        &self,
        link: &mut Link,
        tx: Option<&mut Tx>,
        frame: &[&[u8]],
        fds: &[BorrowedFd<'_>],
        deadline: Option<Instant>,
    ) -> Result<()> {
        let Some(tx) = tx else {
            return self.write_frame(link, frame, fds, deadline, None);
        };
        let total: usize = frame.iter().map(|b| b.len()).sum();
        if fds.is_empty() && total - HEADER_LEN <= tx.max_inline() {
            let mut parts: [&[u8]; 2] = [&[], &[]];
            let mut skip = HEADER_LEN;
            for (slot, b) in parts.iter_mut().zip(frame) {
                let cut = skip.min(b.len());
                *slot = &b[cut..];
                skip -= cut;
            }
            return self.ring_send(tx, link, &parts, deadline);
        }
        link.check()?;
        self.wait_room(tx, link, 0, deadline)?;
        self.write_frame(link, frame, fds, deadline, Some(tx))
    }

    /// Publishes a message in the ring (waiting for room), then rings the doorbell if the
    /// receiver is not watching the ring.
    fn ring_send(
        &self,
        tx: &mut Tx,
        link: &mut Link,
        parts: &[&[u8]],
        deadline: Option<Instant>,
    ) -> Result<()> {
        link.check()?;
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let at = loop {
            match tx.try_push(MSG, parts) {
                Ok(Some(at)) => break at,
                Ok(None) => self.wait_room(tx, link, len, deadline)?,
                Err(_) => {
                    link.broken = true;
                    return Err(corrupt());
                }
            }
        };
        self.bell(tx, link, at)
    }

    /// The sender's half of the wake-up handshake, after publishing a record at `at`.
    fn bell(&self, tx: &Tx, link: &mut Link, at: u64) -> Result<()> {
        let bell = tx.after_publish(at);
        let mut ring = matches!(bell, Bell::Ring | Bell::Armed);
        if bell == Bell::Armed && tx.peer_spin_us() > 0 {
            // The receiver spins when it receives: it may be on its way back into a receive
            // (a ping-pong peer sending its answer). Give it a moment; once it watches, it
            // takes this record itself.
            let spin = Duration::from_micros(tx.peer_spin_us().into());
            let until = Instant::now() + BELL_GRACE.min(spin);
            let mut i = 0u32;
            while ring {
                std::hint::spin_loop();
                ring = !tx.watching();
                i += 1;
                if i % 32 == 0 && Instant::now() >= until {
                    break;
                }
            }
        }
        if ring {
            tx.ringing();
            return match sys::sendmsg(self.fd.as_fd(), &[&[0u8]], &[], true) {
                Ok(_) => Ok(()),
                // A full socket is readable already (and keeps a doorbell: receivers take
                // them out only when the ring is empty).
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tx.not_rung();
                    Ok(())
                }
                Err(e) => {
                    tx.not_rung();
                    link.gone = true;
                    Err(Error::io(e, "sending"))
                }
            };
        }
        // No system call on this path: now and then, ask whether the peer is gone.
        let now = Instant::now();
        if link.checked.map_or(true, |t| now.saturating_duration_since(t) >= PEER_CHECK) {
            link.checked = Some(now);
            if sys::hung_up(self.fd.as_fd()) {
                link.gone = true;
                return Err(Error::new(ErrorKind::Disconnected, "the peer closed the connection"));
            }
        }
        Ok(())
    }

    /// Waits until the ring has room for a record of `len` payload bytes: a short spin, then
    /// sleeps on the ring's futex in slices, asking between them whether the peer is gone.
    fn wait_room(
        &self,
        tx: &Tx,
        link: &mut Link,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let spin_until = Instant::now() + PEER_CHECK;
        let mut i = 0u32;
        loop {
            match tx.has_room(len) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(_) => {
                    link.broken = true;
                    return Err(corrupt());
                }
            }
            i += 1;
            if i % 32 == 0 && Instant::now() >= spin_until {
                break;
            }
            std::hint::spin_loop();
        }
        let mut dl =
            Deadline::from_option(deadline.map(|d| d.saturating_duration_since(Instant::now())));
        match tx.wait_room(len, &mut dl, || sys::hung_up(self.fd.as_fd())) {
            Ok(()) => Ok(()),
            Err(NoRoom::Corrupt) => {
                link.broken = true;
                Err(corrupt())
            }
            Err(NoRoom::TimedOut) => Err(Error::kind_only(ErrorKind::Timeout)),
            Err(NoRoom::Gone) => {
                link.gone = true;
                Err(Error::new(ErrorKind::Disconnected, "the peer closed the connection"))
            }
        }
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

    /// Writes a whole frame: `bufs` concatenated, `fds` attached to its first byte. With
    /// `mark`, publishes a mark record in that ring once the first record is sent (the
    /// caller made room for it).
    fn write_frame(
        &self,
        link: &mut Link,
        bufs: &[&[u8]],
        fds: &[BorrowedFd<'_>],
        deadline: Option<Instant>,
        mut mark: Option<&mut Tx>,
    ) -> Result<()> {
        link.check()?;
        let broken = &mut link.broken;
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
                    if sent == 0 {
                        if let Some(tx) = mark.as_deref_mut() {
                            if !matches!(tx.try_push(MARK, &[]), Ok(Some(_))) {
                                *broken = true;
                                return Err(corrupt());
                            }
                        }
                    }
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
        let mut g = lock(&self.recv);
        let RecvSide { st, rx } = &mut *g;
        self.receive_any(st, rx.as_mut(), deadline)?;
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
        let mut g = lock(&self.recv);
        let RecvSide { st, rx } = &mut *g;
        self.receive_any(st, rx.as_mut(), deadline)?;
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
        let mut g = lock(&self.recv);
        let RecvSide { st, rx } = &mut *g;
        if let Some(rx) = rx {
            let r = self.ring_recv_into(rx, st, buf, deadline);
            rx.leave();
            return r;
        }
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
        self.finish_into(st, buf, in_dst, deadline)
    }

    /// The rest of a receive into `buf` once the frame's header is in (`in_dst` payload bytes
    /// of its first record already in `buf`).
    fn finish_into(
        &self,
        st: &mut RecvState,
        buf: &mut [u8],
        mut in_dst: usize,
        deadline: Option<Instant>,
    ) -> Result<usize> {
        let mut src = SockSource { fd: self.fd.as_fd() };
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
        if self.shm.is_some() {
            // (Another thread receiving holds the state: its receive takes what comes.)
            if let Ok(mut g) = self.recv.try_lock() {
                if let RecvSide { st, rx: Some(rx) } = &mut *g {
                    return self.ring_poll(rx, st, deadline_after(timeout));
                }
            }
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

    /// Whether part of a message has already been read from the socket, or a message waits
    /// in the ring (so the connection is ready although the socket may not be).
    pub(crate) fn pending(&self) -> bool {
        match self.recv.try_lock() {
            Ok(g) => {
                g.st.in_progress() || g.st.eof || g.rx.as_ref().is_some_and(|rx| rx.nonempty())
            }
            Err(_) => false,
        }
    }

    /// After the descriptor polled readable: whether a message really waits (a ring pipe's
    /// socket may hold only stale doorbells, which this drains).
    pub(crate) fn confirm_ready(&self) -> bool {
        if self.shm.is_none() || !self.readable {
            return true;
        }
        self.poll(Duration::ZERO).unwrap_or(true)
    }

    // ----- the ring path -----

    /// Receives one whole message into `st.payload`/`st.fds`, from the ring or the socket.
    fn receive_any(
        &self,
        st: &mut RecvState,
        rx: Option<&mut Rx>,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let Some(rx) = rx else {
            return self.receive(st, deadline, true);
        };
        let r = self.ring_receive(rx, st, deadline);
        rx.leave();
        r
    }

    fn ring_receive(
        &self,
        rx: &mut Rx,
        st: &mut RecvState,
        deadline: Option<Instant>,
    ) -> Result<()> {
        match self.ring_next(rx, st, deadline, None)? {
            Next::Ring(rec) => {
                st.payload.clear();
                if st.payload.try_reserve_exact(rec.len()).is_err() {
                    return Err(Error::new(ErrorKind::Io, "out of memory"));
                }
                st.payload.resize(rec.len(), 0);
                rx.read(&rec, &mut st.payload);
                rx.advance(rec);
                st.fds.clear();
                Ok(())
            }
            Next::Socket { .. } => {
                self.receive(st, deadline, true)?;
                self.settle_marks(rx, st);
                Ok(())
            }
        }
    }

    fn ring_recv_into(
        &self,
        rx: &mut Rx,
        st: &mut RecvState,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize> {
        match self.ring_next(rx, st, deadline, Some(&mut *buf))? {
            Next::Ring(rec) => {
                let len = rec.len();
                if buf.len() < len {
                    return Err(Error::too_small(len, buf.len()));
                }
                rx.read(&rec, &mut buf[..len]);
                rx.advance(rec);
                Ok(len)
            }
            Next::Socket { in_dst } => {
                let n = self.finish_into(st, buf, in_dst, deadline)?;
                self.settle_marks(rx, st);
                Ok(n)
            }
        }
    }

    /// Waits until the next message is known: a ring record at the head, or a socket frame
    /// whose first record is read (into `dst` if it is given and at least 64 KiB long).
    fn ring_next(
        &self,
        rx: &mut Rx,
        st: &mut RecvState,
        deadline: Option<Instant>,
        mut dst: Option<&mut [u8]>,
    ) -> Result<Next> {
        let mut spun = false;
        loop {
            st.check_broken()?;
            if st.in_progress() {
                return Ok(Next::Socket { in_dst: 0 });
            }
            let rec = match rx.peek() {
                Ok(r) => r,
                Err(_) => return Err(st.fail(corrupt())),
            };
            match rec {
                Some(rec) if rec.kind() == MSG => {
                    if st.marks_owed > 0 {
                        return Err(st.fail(corrupt()));
                    }
                    let limit = self.max_message_size();
                    if rec.len() > limit {
                        let e = Error::new(
                            ErrorKind::TooLarge,
                            format!(
                                "incoming message of {} bytes exceeds the limit of {limit}",
                                rec.len()
                            ),
                        );
                        return Err(st.fail(e));
                    }
                    return Ok(Next::Ring(rec));
                }
                Some(rec) => {
                    if st.marks_owed > 0 {
                        // The mark of a frame taken already.
                        st.marks_owed -= 1;
                        rx.advance(rec);
                        continue;
                    }
                    // The frame's first record was sent before its mark was published.
                    match self.read_first_sock(st, dst.as_deref_mut(), deadline.is_none())? {
                        Sock::Frame(in_dst) => {
                            rx.advance(rec);
                            return Ok(Next::Socket { in_dst });
                        }
                        Sock::Doorbell => rx.took_bell(),
                        Sock::Eof => {
                            let e = Error::new(
                                ErrorKind::Disconnected,
                                "the peer closed the connection in the middle of a message",
                            );
                            return Err(st.fail(e));
                        }
                        Sock::Nothing => self.wait_readable(deadline)?,
                    }
                }
                None => {
                    if st.eof {
                        self.check_shut()?;
                        let e =
                            Error::new(ErrorKind::Disconnected, "the peer closed the connection");
                        return Err(st.fail(e));
                    }
                    if !spun {
                        spun = true;
                        if self.spin_on(rx, deadline) {
                            continue;
                        }
                    }
                    if rx.arm() {
                        continue;
                    }
                    match self.read_first_sock(st, dst.as_deref_mut(), deadline.is_none())? {
                        Sock::Frame(in_dst) => {
                            self.frame_arrived(rx, st)?;
                            return Ok(Next::Socket { in_dst });
                        }
                        Sock::Doorbell => rx.took_bell(),
                        Sock::Eof => st.eof = true,
                        Sock::Nothing => self.wait_readable(deadline)?,
                    }
                }
            }
        }
    }

    /// Spins on the ring for up to [`spin`](Self::spin) (and `deadline`), watching it so
    /// senders need not ring; `true` when a record arrived. Asks the kernel every 50 µs
    /// whether the peer is gone (then stops).
    fn spin_on(&self, rx: &Rx, deadline: Option<Instant>) -> bool {
        let spin = self.spin_ns.load(Ordering::Relaxed);
        if spin == 0 {
            return false;
        }
        rx.watch();
        let start = Instant::now();
        let mut until = start.checked_add(Duration::from_nanos(spin)).unwrap_or(start);
        if let Some(d) = deadline {
            until = until.min(d);
        }
        let mut check = start + PEER_CHECK;
        let mut i = 0u32;
        loop {
            if rx.nonempty() {
                return true;
            }
            std::hint::spin_loop();
            i = i.wrapping_add(1);
            if i % 64 == 0 {
                let now = Instant::now();
                if now >= until {
                    return false;
                }
                if now >= check {
                    check = now + PEER_CHECK;
                    if sys::hung_up(self.fd.as_fd()) {
                        return false;
                    }
                }
                if now - start >= SPIN_POLITE {
                    // The answer is late: perhaps the peer waits for this CPU.
                    std::thread::yield_now();
                }
            }
        }
    }

    /// Reads the next record of a ring pipe's socket, if it begins a frame (into `dst` when
    /// it is at least 64 KiB long).
    fn read_first_sock(
        &self,
        st: &mut RecvState,
        dst: Option<&mut [u8]>,
        block: bool,
    ) -> Result<Sock> {
        let limit = self.max_message_size();
        let mut src = SockSource { fd: self.fd.as_fd() };
        st.signal = None;
        let got = match dst {
            Some(d) if d.len() >= FIRST_PAYLOAD => {
                st.read_first_record_into(&mut src, limit, block, d)?
            }
            _ => match st.read_header(&mut src, limit, block)? {
                Progress::Ready => Some(0),
                Progress::Pending => None,
            },
        };
        Ok(match (got, st.signal.take()) {
            (Some(n), _) => Sock::Frame(n),
            (None, Some(Signal::Doorbell)) => Sock::Doorbell,
            (None, Some(Signal::Eof)) => Sock::Eof,
            (None, None) => Sock::Nothing,
        })
    }

    /// A frame came on the socket while the ring looked empty: its mark is the next record
    /// (or is about to be published).
    fn frame_arrived(&self, rx: &mut Rx, st: &mut RecvState) -> Result<()> {
        match rx.peek() {
            Ok(Some(rec)) if rec.kind() == MARK => rx.advance(rec),
            Ok(None) => st.marks_owed += 1,
            _ => return Err(st.fail(corrupt())),
        }
        Ok(())
    }

    /// After a frame taken before its mark: consumes the mark, which the sender publishes
    /// right after its first system call (waits a few ms at most; a mark still missing then
    /// is consumed by a later receive).
    fn settle_marks(&self, rx: &mut Rx, st: &mut RecvState) {
        let start = Instant::now();
        let mut i = 0u32;
        while st.marks_owed > 0 {
            match rx.peek() {
                Ok(Some(rec)) if rec.kind() == MARK => {
                    rx.advance(rec);
                    st.marks_owed -= 1;
                    continue;
                }
                Ok(None) => {}
                _ => return,
            }
            i += 1;
            if i < 256 {
                std::hint::spin_loop();
            } else if start.elapsed() > Duration::from_millis(5) || sys::hung_up(self.fd.as_fd()) {
                return;
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// [`poll`](Self::poll) of a ring pipe: the ring, then the socket, where stale doorbells
    /// are drained (never a frame: those are only peeked at).
    fn ring_poll(
        &self,
        rx: &mut Rx,
        st: &mut RecvState,
        deadline: Option<Instant>,
    ) -> Result<bool> {
        loop {
            if st.in_progress() || st.eof || st.check_broken().is_err() {
                return Ok(true);
            }
            match rx.peek() {
                Ok(Some(rec)) if rec.kind() == MARK && st.marks_owed > 0 => {
                    st.marks_owed -= 1;
                    rx.advance(rec);
                    continue;
                }
                Ok(Some(_)) | Err(_) => return Ok(true),
                Ok(None) => {}
            }
            if rx.arm() {
                continue;
            }
            match sys::peek_record(self.fd.as_fd()) {
                Ok((1, false)) => {
                    // A doorbell: drain it and look again.
                    let mut b = [MaybeUninit::<u8>::uninit(); 1];
                    let mut fds = Vec::new();
                    if let Ok((1, false)) =
                        sys::recvmsg(self.fd.as_fd(), &mut b, &mut [], &mut fds, true)
                    {
                        rx.took_bell();
                    }
                }
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match self.wait_readable(deadline) {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::Timeout => return Ok(false),
                        Err(e) => return Err(e),
                    }
                }
                Err(_) => return Ok(true),
            }
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

/// The socket alone: a [`Pipe`] end's shared ring is dropped, so its peer's small messages
/// would no longer be seen; use this for connections made by [`Listener`](crate::Listener) /
/// [`Client`](crate::Client) or [`Connection::from_fd`], or before any message is sent.
impl From<Connection> for OwnedFd {
    fn from(c: Connection) -> OwnedFd {
        c.fd
    }
}

/// What a connection looks like inside a message: its descriptor's index in the transfer
/// table, its direction and transport, its limit, and a pipe end's shared memory (the
/// segment and which end this is).
#[derive(Serialize)]
struct WireOut<'a> {
    fd: u32,
    flags: u8,
    limit: u64,
    shm: Option<(&'a [RingMem; 2], u8)>,
}

#[derive(Deserialize)]
struct WireIn {
    fd: u32,
    flags: u8,
    limit: u64,
    shm: Option<([RingMem; 2], u8)>,
}

const F_READ: u8 = 1;
const F_WRITE: u8 = 2;
const F_TCP: u8 = 4;

impl Serialize for Connection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        // (A receive in progress in another thread holds the lock: as before, that does not
        // stop the send; the receiving thread keeps what it takes.)
        if self.recv.try_lock().is_ok_and(|g| g.st.in_progress() || g.st.marks_owed > 0) {
            return Err(S::Error::custom(
                "a connection in the middle of receiving a message cannot be sent",
            ));
        }
        let fd = transfer::push_fd(self.fd.as_fd()).map_err(S::Error::custom)?;
        let flags = (self.readable as u8 * F_READ)
            | (self.writable as u8 * F_WRITE)
            | (self.tcp as u8 * F_TCP);
        let shm = self.shm.as_ref().map(|m| (&m.mems, m.end));
        WireOut { fd, flags, limit: self.max_message_size() as u64, shm }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let w = WireIn::deserialize(d)?;
        let fd = transfer::take_fd(w.fd).map_err(D::Error::custom)?;
        let (readable, writable) = (w.flags & F_READ != 0, w.flags & F_WRITE != 0);
        let mut c = Connection::from_parts(fd, readable, writable, w.flags & F_TCP != 0);
        if let Some((mems, end)) = w.shm {
            if end > 1 {
                return Err(D::Error::custom("a pipe end's shared memory names no end"));
            }
            c.attach(Shm { mems, end }).map_err(D::Error::custom)?;
        }
        c.set_max_message_size(w.limit.min(usize::MAX as u64) as usize);
        Ok(c)
    }
}
