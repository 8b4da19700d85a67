//! The shared-memory half of a [`Pipe`](crate::Pipe)'s data path: one single-producer,
//! single-consumer byte ring per direction, and the doorbell handshake that tells a sender
//! when the receiver needs a wake-up through the socket.
//!
//! Not API: public (hidden) only so the loom models in `tests/loom.rs` check this code.
//!
//! # Records
//!
//! A ring is `cap` bytes (a power of two) of 8-byte-aligned records. A record is a header
//! word (`len | kind << 32 | CHECK << 56`) and `len` payload bytes padded to 8. Kinds:
//! [`MSG`] (a whole message, inline), [`MARK`] (the next message is a frame on the socket),
//! [`PAD`] (filler to the end of the ring so a record never wraps). The producer writes a
//! record, then publishes it by storing `tail` (Release): a producer killed while writing
//! never publishes, so a torn record is never seen. The consumer reads at `head`, checks every
//! header against what `tail` says is there (a peer that misbehaves — two processes using one
//! end at once — yields [`Corrupt`], never an out-of-bounds access), copies the payload out,
//! and publishes `head`.
//!
//! # Wake-ups (Dekker)
//!
//! The consumer's `state` word is [`WATCHING`] while it spins inside a receive and [`ARMED`]
//! otherwise (initially, and from every consume on: [`Ring::advance`] stores it before it
//! publishes `head`). A sender publishes, issues a SeqCst fence, then loads `head` and
//! `state` ([`Ring::after_publish`]); it sends one doorbell byte on the socket unless the
//! consumer is watching with nothing older than this record left unconsumed. A receiver about
//! to block stores [`ARMED`], issues a SeqCst fence, then re-checks the ring ([`Ring::arm`]):
//! of the two loads at least one sees the other's store, so either the receiver finds the
//! record or the sender rings.
//!
//! Receivers take doorbells out only when they have just found the ring empty (one at a
//! time, counting them in `taken` and looking at the ring again after each), and every
//! record that a watching receiver will not take next gets a doorbell of its own — unless
//! [`BELL_LIMIT`] of them (`rung - taken`) wait in the socket already. So while a record waits
//! in the ring, a doorbell waits in the socket and the descriptor polls readable — for
//! `poll`, `wait`, epoll or tokio alike — and a slow receiver leaves at most a few stale
//! doorbells to drain, whichever receive or poll next finds the ring empty.
//!
//! A producer that finds the ring full registers in `space_wait`, fences, re-checks, and
//! sleeps on the `space` futex; a consumer fences after publishing `head` and wakes it.

use multiproc_arena::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// The consumer is spinning inside a receive: a record it will take needs no doorbell.
pub const WATCHING: u32 = 1;
/// The consumer is not watching: every publish rings the doorbell. Zero, so a fresh
/// (zeroed) segment starts armed.
pub const ARMED: u32 = 0;

/// Record kind: a message, inline.
pub const MSG: u8 = 1;
/// Record kind: the next message is a frame on the socket.
pub const MARK: u8 = 2;
/// Record kind: filler up to the end of the ring.
pub const PAD: u8 = 3;
/// Check byte in the top 8 bits of every record header.
const CHECK: u8 = 0x5C;
/// Record header length.
pub const REC_HDR: usize = 8;

/// Control block of one direction: the producer's line (`tail`) and the consumer's line.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct Ctrl {
    /// Bytes published so far (written by the producer).
    tail: AtomicU64,
    /// Doorbells sent so far (written by the producer).
    rung: AtomicU64,
    _pad0: [u64; 6],
    /// Bytes consumed so far (written by the consumer).
    head: AtomicU64,
    /// [`WATCHING`] or [`ARMED`].
    state: AtomicU32,
    /// The consumer's [`set_spin`](crate::Connection::set_spin), in µs (a hint for senders).
    spin_us: AtomicU32,
    /// Futex word bumped by the consumer when it frees space for a waiting producer.
    space: AtomicU32,
    /// Set by a producer waiting for space.
    space_wait: AtomicU32,
    /// Doorbells taken out of the socket so far (written by the consumer).
    taken: AtomicU64,
    _pad1: [u64; 4],
}

#[cfg(not(multiproc_loom))]
static_assertions::const_assert_eq!(std::mem::size_of::<Ctrl>(), 128);

impl Ctrl {
    /// A fresh control block (as a zeroed segment holds).
    #[allow(clippy::new_without_default)]
    pub fn new() -> Ctrl {
        Ctrl {
            tail: AtomicU64::new(0),
            rung: AtomicU64::new(0),
            _pad0: [0; 6],
            head: AtomicU64::new(0),
            state: AtomicU32::new(ARMED),
            spin_us: AtomicU32::new(0),
            space: AtomicU32::new(0),
            space_wait: AtomicU32::new(0),
            taken: AtomicU64::new(0),
            _pad1: [0; 4],
        }
    }
}

/// What a sender must do after a publish ([`Ring::after_publish`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bell {
    /// Ring: older records are waiting.
    Ring,
    /// Ring, unless the consumer starts watching (it spins in its receives and may be on its
    /// way back into one).
    Armed,
    /// No doorbell: the consumer watches and takes this record next.
    Watching,
    /// No doorbell: enough wait in the socket already.
    Enough,
}

/// The ring's memory says something impossible: a peer wrote it out of turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

/// A record at the consumer's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rec {
    /// [`MSG`] or [`MARK`] (padding is skipped).
    pub kind: u8,
    /// Payload length.
    pub len: usize,
    /// Payload offset in the ring's data.
    pub pos: usize,
    /// `head` once this record is consumed.
    pub next: u64,
}

/// One direction's view: its control block and data bytes.
#[derive(Debug)]
pub struct Ring {
    ctrl: *const Ctrl,
    data: *mut u8,
    cap: usize,
    bell_limit: u64,
}

/// Doorbells that may wait in the socket at once (see [`Ring::after_publish`]).
pub const BELL_LIMIT: u64 = 4;

// SAFETY: the pointers refer to shared memory that outlives the Ring (the owner keeps the
// mapping), and every access to it goes through atomics or the record protocol.
unsafe impl Send for Ring {}
// SAFETY: as above; `&Ring` methods are safe to call from several threads (a Connection
// serialises producers and consumers with its own locks).
unsafe impl Sync for Ring {}

fn round8(n: usize) -> usize {
    (n + 7) & !7
}

impl Ring {
    /// A view of the ring at `ctrl` with `cap` data bytes at `data`.
    ///
    /// # Safety
    ///
    /// `ctrl` must point at a valid [`Ctrl`] and `data` at `cap` bytes (a power of two, at
    /// least 64), both alive as long as the `Ring`, shared only with other `Ring`s of the
    /// same memory.
    pub unsafe fn new(ctrl: *const Ctrl, data: *mut u8, cap: usize) -> Ring {
        debug_assert!(cap.is_power_of_two() && cap >= 64);
        Ring { ctrl, data, cap, bell_limit: BELL_LIMIT }
    }

    /// The same ring with another doorbell limit (at least 2; for the loom models).
    pub fn with_bell_limit(mut self, limit: u64) -> Ring {
        self.bell_limit = limit.max(2);
        self
    }

    fn ctrl(&self) -> &Ctrl {
        // SAFETY: valid for the Ring's life (see `new`).
        unsafe { &*self.ctrl }
    }

    /// Data bytes.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Largest payload a record may carry (a quarter of the ring).
    pub fn max_inline(&self) -> usize {
        self.cap / 4
    }

    // ----- producer -----

    /// Bytes the producer can write now.
    fn free(&self, tail: u64) -> Result<usize, Corrupt> {
        let head = self.ctrl().head.load(Ordering::Acquire);
        let used = tail.wrapping_sub(head);
        if used > self.cap as u64 {
            return Err(Corrupt);
        }
        Ok(self.cap - used as usize)
    }

    /// Ring bytes a record of `len` payload bytes takes when written at `tail` (with the
    /// padding to the end of the ring if it would not fit before it).
    fn need(&self, tail: u64, len: usize) -> usize {
        let rec = REC_HDR + round8(len);
        let pos = tail as usize & (self.cap - 1);
        let to_end = self.cap - pos;
        if rec <= to_end {
            rec
        } else {
            to_end + rec
        }
    }

    /// Whether a record of `len` payload bytes fits now.
    pub fn has_room(&self, len: usize) -> Result<bool, Corrupt> {
        let tail = self.ctrl().tail.load(Ordering::Acquire);
        Ok(self.need(tail, len) <= self.free(tail)?)
    }

    /// Writes `len` bytes at data offset `pos` from the concatenation of `parts`.
    fn write_at(&self, mut pos: usize, parts: &[&[u8]]) {
        for p in parts {
            debug_assert!(pos + p.len() <= self.cap);
            // SAFETY: `pos + p.len()` is within the data (the caller checked the record fits
            // before the end), and the consumer reads these bytes only after `tail` is
            // published.
            unsafe { std::ptr::copy_nonoverlapping(p.as_ptr(), self.data.add(pos), p.len()) };
            pos += p.len();
        }
    }

    fn write_word(&self, pos: usize, w: u64) {
        self.write_at(pos, &[&w.to_le_bytes()]);
    }

    /// Writes and publishes a record of `kind` holding the concatenation of `parts`:
    /// `Ok(Some(tail before it))`, or `Ok(None)` (nothing written) when the ring lacks room.
    pub fn try_push(&self, kind: u8, parts: &[&[u8]]) -> Result<Option<u64>, Corrupt> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        debug_assert!(len <= self.max_inline());
        let c = self.ctrl();
        let tail = c.tail.load(Ordering::Acquire);
        let need = self.need(tail, len);
        if need > self.free(tail)? {
            return Ok(None);
        }
        let mut pos = tail as usize & (self.cap - 1);
        let rec = REC_HDR + round8(len);
        if rec > self.cap - pos {
            let fill = self.cap - pos - REC_HDR;
            self.write_word(pos, header(PAD, fill));
            pos = 0;
        }
        self.write_word(pos, header(kind, len));
        self.write_at(pos + REC_HDR, parts);
        c.tail.store(tail.wrapping_add(need as u64), Ordering::Release);
        Ok(Some(tail))
    }

    /// The sender's half of the handshake, after publishing a record at `at` (what
    /// [`try_push`](Self::try_push) returned): a SeqCst fence, then what the consumer's words
    /// say about the doorbell.
    ///
    /// A doorbell is needed unless the consumer is [`WATCHING`] with no record older than
    /// this one unconsumed — and unless [`BELL_LIMIT`] doorbells already wait in the socket:
    /// consumers take doorbells out only when the ring is empty, and between finding it
    /// empty and seeing this record a consumer takes at most one more, so one still waits.
    pub fn after_publish(&self, at: u64) -> Bell {
        fence(Ordering::SeqCst);
        let c = self.ctrl();
        // `head` first: a consumer stores ARMED before it publishes a new head.
        let backlog = c.head.load(Ordering::Acquire) != at;
        let watching = c.state.load(Ordering::Relaxed) == WATCHING;
        let waiting = c.rung.load(Ordering::Relaxed).wrapping_sub(c.taken.load(Ordering::Relaxed));
        if waiting >= self.bell_limit && waiting < 1 << 32 {
            Bell::Enough
        } else if backlog {
            Bell::Ring
        } else if watching {
            Bell::Watching
        } else {
            Bell::Armed
        }
    }

    /// The sender is about to send a doorbell.
    pub fn ringing(&self) {
        let c = self.ctrl();
        c.rung.store(c.rung.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    /// The doorbell could not be sent (a full socket, which is readable anyway).
    pub fn not_rung(&self) {
        let c = self.ctrl();
        c.rung.store(c.rung.load(Ordering::Relaxed).wrapping_sub(1), Ordering::Relaxed);
    }

    /// The consumer's state now.
    pub fn state(&self) -> u32 {
        self.ctrl().state.load(Ordering::Relaxed)
    }

    /// The consumer's spin hint in µs.
    pub fn peer_spin_us(&self) -> u32 {
        self.ctrl().spin_us.load(Ordering::Relaxed)
    }

    /// Producer about to sleep for room: registers, fences, and returns the futex value to
    /// wait on, or `None` when `len` fits now after all.
    pub fn prepare_space_wait(&self, len: usize) -> Result<Option<u32>, Corrupt> {
        let c = self.ctrl();
        let seq = c.space.load(Ordering::Acquire);
        c.space_wait.store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.has_room(len)? {
            return Ok(None);
        }
        Ok(Some(seq))
    }

    /// The futex word a producer waiting for room sleeps on.
    pub fn space_word(&self) -> &AtomicU32 {
        &self.ctrl().space
    }

    // ----- consumer -----

    fn read_word(&self, pos: usize) -> u64 {
        let mut b = [0u8; 8];
        // SAFETY: `pos` is 8-aligned and below `cap`, so 8 bytes are within the data.
        unsafe { std::ptr::copy_nonoverlapping(self.data.add(pos), b.as_mut_ptr(), 8) };
        u64::from_le_bytes(b)
    }

    /// The record at the consumer's head (padding skipped), `None` when the ring is empty.
    pub fn peek(&self) -> Result<Option<Rec>, Corrupt> {
        let c = self.ctrl();
        let mut head = c.head.load(Ordering::Acquire);
        let tail = c.tail.load(Ordering::Acquire);
        loop {
            let avail = tail.wrapping_sub(head);
            if avail == 0 {
                return Ok(None);
            }
            if avail > self.cap as u64 || avail < REC_HDR as u64 || head % 8 != 0 {
                return Err(Corrupt);
            }
            let pos = head as usize & (self.cap - 1);
            let w = self.read_word(pos);
            let (kind, len) = ((w >> 32) as u8, (w & 0xFFFF_FFFF) as usize);
            if (w >> 56) as u8 != CHECK || (w >> 40) & 0xFFFF != 0 {
                return Err(Corrupt);
            }
            let rec = REC_HDR + round8(len);
            if rec as u64 > avail || rec > self.cap - pos {
                return Err(Corrupt);
            }
            match kind {
                PAD => {
                    if rec != self.cap - pos {
                        return Err(Corrupt);
                    }
                    head = head.wrapping_add(rec as u64);
                }
                MSG | MARK => {
                    return Ok(Some(Rec {
                        kind,
                        len,
                        pos: pos + REC_HDR,
                        next: head.wrapping_add(rec as u64),
                    }))
                }
                _ => return Err(Corrupt),
            }
        }
    }

    /// Whether a record is waiting (a cheap look, for spinning).
    pub fn nonempty(&self) -> bool {
        let c = self.ctrl();
        c.tail.load(Ordering::Acquire) != c.head.load(Ordering::Relaxed)
    }

    /// Copies the payload of `rec` into `dst` (`rec.len` bytes long).
    pub fn copy_out(&self, rec: &Rec, dst: &mut [u8]) {
        assert!(dst.len() == rec.len && rec.pos + rec.len <= self.cap);
        // SAFETY: the range is within the data (checked by `peek` and above); the producer
        // does not write it until `head` moves past it.
        unsafe { std::ptr::copy_nonoverlapping(self.data.add(rec.pos), dst.as_mut_ptr(), rec.len) }
    }

    /// Consumes up to `next` (a [`Rec::next`]) and wakes a producer waiting for room. The
    /// consumer stops watching first (it is leaving its receive with a record): a record
    /// published after this consume rings, so none is left behind without a doorbell.
    pub fn advance(&self, next: u64) {
        let c = self.ctrl();
        c.state.store(ARMED, Ordering::Relaxed);
        c.head.store(next, Ordering::Release);
        fence(Ordering::SeqCst);
        if c.space_wait.load(Ordering::Relaxed) != 0 {
            c.space_wait.store(0, Ordering::Relaxed);
            c.space.fetch_add(1, Ordering::Release);
            multiproc_arena::futex::wake_all(&c.space);
        }
    }

    /// The consumer starts spinning inside a receive: senders need not ring.
    pub fn watch(&self) {
        self.ctrl().state.store(WATCHING, Ordering::Relaxed);
    }

    /// The consumer leaves a receive (without a record): senders ring again.
    pub fn leave(&self) {
        // Only the consumer writes `state`.
        let c = self.ctrl();
        if c.state.load(Ordering::Relaxed) == WATCHING {
            c.state.store(ARMED, Ordering::Relaxed);
        }
    }

    /// The consumer took a doorbell out of the socket (call before looking at the ring
    /// again, which [`arm`](Self::arm) does after its fence).
    pub fn took_bell(&self) {
        let c = self.ctrl();
        c.taken.store(c.taken.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    /// The consumer's half of the handshake before it blocks: arms, fences, and returns
    /// whether a record is waiting after all (then it must not block).
    pub fn arm(&self) -> bool {
        self.ctrl().state.store(ARMED, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        self.nonempty()
    }

    /// Publishes the consumer's spin setting for senders.
    pub fn set_spin_hint(&self, us: u32) {
        self.ctrl().spin_us.store(us, Ordering::Relaxed);
    }
}

fn header(kind: u8, len: usize) -> u64 {
    len as u64 | (kind as u64) << 32 | (CHECK as u64) << 56
}
