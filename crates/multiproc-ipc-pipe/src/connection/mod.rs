//! [`Connection`]: one end of a message channel between processes, and [`Pipe`].

mod recv;
mod ring;
mod send;
mod wire;

use crate::bell::{Rx, Tx};
use crate::error::{Error, ErrorKind, Result};
use crate::frame::{Mode, RecvState, FIRST_RECORD, MAX_LEN, MAX_RECORD};
use crate::sys;
use multiproc_arena::spsc::{RingMem, HEADER_WORDS};
use multiproc_arena::Arena;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
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
        pipe_ends(a, b, (true, true), (true, true))
    }

    /// A one-way pipe `(reader, writer)` (Python's `Pipe(duplex=False)`): the reader only
    /// receives, the writer only sends; the other operations fail with
    /// [`ErrorKind::WrongDirection`].
    pub fn simplex() -> Result<(Connection, Connection)> {
        let (r, w) = pair()?;
        sys::shutdown(r.as_fd(), libc::SHUT_WR).map_err(|e| Error::io(e, "shutdown"))?;
        sys::shutdown(w.as_fd(), libc::SHUT_RD).map_err(|e| Error::io(e, "shutdown"))?;
        pipe_ends(r, w, (true, false), (false, true))
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

/// Data words of each direction's bulk ring (8 MiB; its records carry up to a quarter,
/// 2 MiB).
const BULK_WORDS: usize = 1 << 20;

/// Bytes of the arena block of a ring of `words` data words (the allocator rounds blocks up
/// to a power of two; 32 bytes of block header, 7 words of alignment pad).
const fn ring_block(words: usize) -> usize {
    (32 + (HEADER_WORDS + words + 7) * 8).next_power_of_two()
}

/// A new pipe's rings (per direction: the small ring, then the bulk ring) in an arena of
/// their own.
///
/// Every ring is a fresh block of the new memfd (zero, not written). The small rings reserve
/// their pages now (exactly: no reservation step ahead); the bulk rings only when their
/// producer first sends through them ([`BulkTx::usable`]), so a pipe that never carries a
/// large message costs only their address space.
fn ring_mems() -> Result<Option<[RingMem; 4]>> {
    if cfg!(multiproc_loom) || !ring_enabled() {
        return Ok(None);
    }
    let err = |e: multiproc_arena::Error| {
        Error::new(ErrorKind::Io, format!("creating the pipe's shared memory: {e}"))
    };
    let arena = Arena::new(2 * ring_block(RING_WORDS) + 2 * ring_block(BULK_WORDS) + (64 << 10))
        .map_err(err)?;
    let small = || {
        let m = RingMem::new_fresh_in(&arena, RING_WORDS).map_err(err)?;
        m.reserve().map_err(err)?;
        Ok::<_, Error>(m)
    };
    let (a, b) = (small()?, small()?);
    let bulk = || RingMem::new_fresh_in(&arena, BULK_WORDS).map_err(err);
    Ok(Some([a, b, bulk()?, bulk()?]))
}

/// A pipe end's shared memory: both directions' rings and which end this is (`mems[end]` and
/// `bulk[end]` are written by this end, the others by the peer).
struct Shm {
    mems: [RingMem; 2],
    bulk: [RingMem; 2],
    end: u8,
}

/// The halves of one end: its consumers of the peer's small and bulk rings, its producers of
/// its own.
type Halves = (Option<(Rx, Rx)>, Option<(Tx, Tx)>);

impl Shm {
    /// This end's halves: the producers of its own rings (if it sends), the consumers of the
    /// peer's (if it receives).
    fn halves(&self, rx: bool, tx: bool) -> Result<Halves> {
        let e = self.end as usize;
        let dup = || {
            Error::new(
                ErrorKind::InvalidInput,
                "this pipe end is open in this process already (a pipe end passed back to \
                 its own process must be dropped there first)",
            )
        };
        let rx = match rx {
            true => Some((
                Rx::new(&self.mems[1 - e]).ok_or_else(dup)?,
                Rx::new(&self.bulk[1 - e]).ok_or_else(dup)?,
            )),
            false => None,
        };
        let tx = match tx {
            true => Some((
                Tx::new(&self.mems[e]).ok_or_else(dup)?,
                Tx::new(&self.bulk[e]).ok_or_else(dup)?,
            )),
            false => None,
        };
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

/// Asked-for send buffer of a pipe socket: large records, several in flight.
const PIPE_SNDBUF: usize = 1 << 20;

/// The two ends of a pipe over the socketpair `a`, `b`, each `(readable, writable)`, with
/// their rings (unless rings are off).
fn pipe_ends(
    a: OwnedFd,
    b: OwnedFd,
    a_dir: (bool, bool),
    b_dir: (bool, bool),
) -> Result<(Connection, Connection)> {
    let mems = ring_mems()?;
    let mut a = Connection::from_parts(a, a_dir.0, a_dir.1, false);
    let mut b = Connection::from_parts(b, b_dir.0, b_dir.1, false);
    if let Some([s0, s1, b0, b1]) = mems {
        let (mems, bulk) = ([s0, s1], [b0, b1]);
        a.attach(Shm { mems: mems.clone(), bulk: bulk.clone(), end: 0 })?;
        b.attach(Shm { mems, bulk, end: 1 })?;
    }
    Ok((a, b))
}

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
    /// A pipe end's producer half of its bulk ring.
    bulk: Option<BulkTx>,
}

/// The producer half of a bulk ring, whose pages are reserved before its first record.
#[derive(Debug)]
struct BulkTx {
    tx: Tx,
    /// Whether the ring's pages are reserved (`None`: not tried yet in this process).
    reserved: Option<bool>,
}

impl BulkTx {
    /// Whether the bulk ring can be written: reserves its pages the first time (a failure is
    /// kept: large messages then go on the socket).
    fn usable(&mut self) -> bool {
        let tx = &self.tx;
        *self.reserved.get_or_insert_with(|| tx.reserve())
    }
}

/// Receiving state: the frame decoder and a pipe end's consumer halves of the peer's rings.
struct RecvSide {
    st: RecvState,
    rx: Option<Rx>,
    bulk: Option<Rx>,
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
        multiproc_arena::debug_fields!(f, self, "Connection" {
            fd: self.fd.as_raw_fd(), readable, writable, tcp, record, ring: self.shm.is_some()
        })
    }
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
            recv: Mutex::new(RecvSide { st: RecvState::new(mode), rx: None, bulk: None }),
            shm: None,
        }
    }

    /// Adds the shared-memory rings (a [`Pipe`] end).
    fn attach(&mut self, shm: Shm) -> Result<()> {
        let (rx, tx) = shm.halves(self.readable, self.writable)?;
        let recv = self.recv.get_mut().unwrap_or_else(|e| e.into_inner());
        recv.st.doorbells = true;
        (recv.rx, recv.bulk) = rx.map_or((None, None), |(r, b)| (Some(r), Some(b)));
        let send = self.send.get_mut().unwrap_or_else(|e| e.into_inner());
        (send.tx, send.bulk) =
            tx.map_or((None, None), |(t, b)| (Some(t), Some(BulkTx { tx: b, reserved: None })));
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

crate::impl_as_fd!(Connection, fd);

/// The socket alone: a [`Pipe`] end's shared ring is dropped, so its peer's small messages
/// would no longer be seen; use this for connections made by [`Listener`](crate::Listener) /
/// [`Client`](crate::Client) or [`Connection::from_fd`], or before any message is sent.
impl From<Connection> for OwnedFd {
    fn from(c: Connection) -> OwnedFd {
        c.fd
    }
}

#[cfg(all(test, not(multiproc_loom)))]
mod tests {
    use super::*;
    use crate::bell::MSG;

    const T: Duration = Duration::from_secs(10);

    /// A sender killed between publishing a message in the bulk ring and the record that
    /// names it leaves a bulk record nobody names; a process holding the same end sends on,
    /// and the receiver drops the orphan instead of taking it for the next message.
    #[test]
    fn a_bulk_record_that_no_record_names_is_dropped() {
        let (a, b) = Pipe::new().unwrap();
        for round in 0..3u8 {
            {
                let mut st = crate::lock(&a.send);
                let bulk = st.bulk.as_mut().unwrap();
                assert!(bulk.usable());
                bulk.tx.try_push(MSG, &[&[0xEE; 100_000]]).unwrap().unwrap();
            }
            a.send_bytes(&[round; 50_000]).unwrap();
            a.send_bytes(b"inline").unwrap();
            a.send_bytes(&[round + 1; 60_000]).unwrap();
            assert_eq!(b.recv_bytes_timeout(T).unwrap(), vec![round; 50_000]);
            assert_eq!(b.recv_bytes_timeout(T).unwrap(), b"inline");
            let mut buf = vec![0u8; 1 << 20];
            assert_eq!(b.recv_bytes_into_timeout(&mut buf, T).unwrap(), 60_000);
            assert!(buf[..60_000].iter().all(|&x| x == round + 1));
        }
        assert!(b.recv_bytes_timeout(Duration::ZERO).unwrap_err().is_timeout());
    }
}
