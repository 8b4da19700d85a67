//! A [`Pipe`](crate::Pipe)'s shared-memory halves: the arena's [`spsc`] ring per direction,
//! and the doorbell handshake that tells a sender when the receiver needs a wake-up through
//! the socket. Private (public, hidden, only under `--cfg multiproc_loom`, for the models in
//! `tests/loom.rs`).
//!
//! # Records
//!
//! Kinds: [`MSG`] (a whole message, inline), [`BULK`] (the next message is a record of this
//! direction's bulk ring, a larger ring whose records are [`MSG`]s, published before the
//! [`BULK`] record, which holds its position: 8 bytes, little-endian) and [`MARK`] (the next message is a frame on the socket); the
//! ring pads to its end itself and checks every record (see [`spsc`]). A bulk ring uses the
//! same halves: its producer waits for room with [`Tx::wait_room`] and its consumer's
//! [`Rx::advance`] wakes it; its doorbell words are unused (the [`BULK`] record rings).
//!
//! # Wake-ups (Dekker)
//!
//! The consumer's `state` word is [`WATCHING`] while it spins inside a receive and [`ARMED`]
//! otherwise (initially, and from every consume on: [`Rx::advance`] stores it before it
//! publishes `head`). A sender publishes, issues a SeqCst fence, then loads `head` and
//! `state` ([`Tx::after_publish`]); it sends one doorbell byte on the socket unless the
//! consumer is watching with nothing older than this record left unconsumed. A receiver about
//! to block stores [`ARMED`], issues a SeqCst fence, then re-checks the ring ([`Rx::arm`]):
//! of the two loads at least one sees the other's store, so either the receiver finds the
//! record or the sender rings.
//!
//! Receivers take doorbells out only when they have just found the ring empty (one at a
//! time, counting them in `taken` and looking at the ring again after each), and every
//! record that a watching receiver will not take next gets a doorbell of its own — unless
//! [`BELL_LIMIT`] of them (`rung - taken`) wait in the socket already. So while a record waits
//! in the ring, a doorbell waits in the socket and the descriptor polls readable, and a slow
//! receiver leaves at most a few stale doorbells to drain.
//!
//! A producer that finds the ring full registers in `space_wait`, fences, re-checks, and
//! parks on the `space` futex ([`Tx::wait_room`]); a consumer fences after publishing `head`
//! and wakes it.

// Public only for the loom models; private otherwise.
#![cfg_attr(not(multiproc_loom), allow(unreachable_pub))]

use multiproc_arena::futex::{self, Deadline, Wake};
use multiproc_arena::spsc::{Consumer, Corrupt, Producer, Rec, RingMem};
use multiproc_arena::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::Duration;

/// The consumer is spinning inside a receive: a record it will take needs no doorbell.
pub const WATCHING: u64 = 1;
/// The consumer is not watching: every publish rings the doorbell. Zero, so a fresh ring
/// starts armed.
pub const ARMED: u64 = 0;

/// Record kind: a message, inline.
pub const MSG: u8 = 1;
/// Record kind: the next message is a frame on the socket.
pub const MARK: u8 = 2;

/// Record kind: the next message is the bulk ring's record at the position this record holds
/// (a second ring per direction for messages too large to go inline; its records are
/// [`MSG`]s; records before that position were left by a sender killed half-way: dropped).
pub const BULK: u8 = 3;

/// Doorbells that may wait in the socket at once (see [`Tx::after_publish`]).
pub const BELL_LIMIT: u64 = 4;

/// How long a producer waiting for room sleeps before it asks whether the peer is gone.
const ROOM_POLL: Duration = Duration::from_millis(10);

// The ring's spare words. Producer's line:
/// Doorbells sent so far (written by the producer).
const RUNG: usize = 0;
// Consumer's line:
/// [`WATCHING`] or [`ARMED`].
const STATE: usize = 0;
/// The consumer's `set_spin`, in µs (a hint for senders).
const SPIN_US: usize = 1;
/// Futex (low half) bumped by the consumer when it frees space for a waiting producer.
const SPACE: usize = 2;
/// Set by a producer waiting for space.
const SPACE_WAIT: usize = 3;
/// Doorbells taken out of the socket so far (written by the consumer).
const TAKEN: usize = 4;

/// What a sender must do after a publish ([`Tx::after_publish`]).
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

/// Why [`Tx::wait_room`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoom {
    /// The ring is inconsistent.
    Corrupt,
    /// The deadline passed.
    TimedOut,
    /// The peer is gone.
    Gone,
}

/// Publishes the consumer's spin setting for senders.
pub fn set_spin_hint(mem: &RingMem, us: u32) {
    mem.consumer_word(SPIN_US).store(us.into(), Ordering::Relaxed);
}

/// The sending half of one direction.
#[derive(Debug)]
pub struct Tx {
    p: Producer,
    bell_limit: u64,
}

impl Tx {
    /// The producer of `mem`, or `None` while this process has one already.
    pub fn new(mem: &RingMem) -> Option<Tx> {
        Some(Tx { p: Producer::new(mem)?, bell_limit: BELL_LIMIT })
    }

    /// The same with another doorbell limit (at least 2; for the loom models).
    #[cfg(multiproc_loom)]
    pub fn with_bell_limit(mut self, limit: u64) -> Tx {
        self.bell_limit = limit.max(2);
        self
    }

    fn mem(&self) -> &RingMem {
        self.p.mem()
    }

    /// Largest payload a record may carry (a quarter of the ring).
    pub fn max_inline(&self) -> usize {
        self.p.max_record()
    }

    /// Reserves the ring's pages before its first record (a bulk ring is made without
    /// them): `false` when memory is short.
    pub fn reserve(&self) -> bool {
        self.mem().reserve().is_ok()
    }

    /// Whether a record of `len` payload bytes fits now.
    pub fn has_room(&self, len: usize) -> Result<bool, Corrupt> {
        self.p.has_room(len)
    }

    /// Writes and publishes a record: `Ok(Some(tail before it))`, or `Ok(None)` (nothing
    /// written) when the ring lacks room.
    pub fn try_push(&mut self, kind: u8, parts: &[&[u8]]) -> Result<Option<u64>, Corrupt> {
        self.p.try_push(kind, parts)
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
        let m = self.mem();
        // `head` first: a consumer stores ARMED before it publishes a new head.
        let backlog = self.p.consumed() != at;
        let watching = m.consumer_word(STATE).load(Ordering::Relaxed) == WATCHING;
        let rung = m.producer_word(RUNG).load(Ordering::Relaxed);
        let waiting = rung.wrapping_sub(m.consumer_word(TAKEN).load(Ordering::Relaxed));
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

    /// Whether the consumer has taken the record published at `at` (what
    /// [`try_push`](Self::try_push) returned): its `head` is past it.
    pub fn taken(&self, at: u64) -> bool {
        (self.p.consumed().wrapping_sub(at) as i64) > 0
    }

    /// The sender is about to send a doorbell.
    pub fn ringing(&self) {
        bump(self.mem().producer_word(RUNG), 1);
    }

    /// The doorbell could not be sent (a full socket, which is readable anyway).
    pub fn not_rung(&self) {
        bump(self.mem().producer_word(RUNG), u64::MAX);
    }

    /// Whether the consumer watches now.
    pub fn watching(&self) -> bool {
        self.mem().consumer_word(STATE).load(Ordering::Relaxed) == WATCHING
    }

    /// The consumer's spin hint in µs.
    pub fn peer_spin_us(&self) -> u32 {
        self.mem().consumer_word(SPIN_US).load(Ordering::Relaxed) as u32
    }

    /// Waits until a record of `len` payload bytes fits: registers in `space_wait`, fences,
    /// re-checks, and parks on the `space` futex; every [`ROOM_POLL`] asks `gone()` whether
    /// the consumer's side has ended.
    pub fn wait_room(
        &self,
        len: usize,
        dl: &mut Deadline,
        mut gone: impl FnMut() -> bool,
    ) -> Result<(), NoRoom> {
        let m = self.mem();
        let (space, space_wait) = (m.consumer_word(SPACE), m.consumer_word(SPACE_WAIT));
        loop {
            if self.has_room(len).map_err(|_| NoRoom::Corrupt)? {
                return Ok(());
            }
            let seq = space.load(Ordering::Acquire) as u32;
            space_wait.store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if self.has_room(len).map_err(|_| NoRoom::Corrupt)? {
                return Ok(());
            }
            match futex::park_low(space, seq, dl, Some(ROOM_POLL)) {
                Wake::Woken => {}
                Wake::Poll if gone() => return Err(NoRoom::Gone),
                Wake::Poll => {}
                Wake::TimedOut if self.has_room(len).map_err(|_| NoRoom::Corrupt)? => return Ok(()),
                Wake::TimedOut => return Err(NoRoom::TimedOut),
            }
        }
    }
}

/// Adds `by` to a word only its owner writes.
fn bump(w: &AtomicU64, by: u64) {
    w.store(w.load(Ordering::Relaxed).wrapping_add(by), Ordering::Relaxed);
}

/// The receiving half of one direction.
#[derive(Debug)]
pub struct Rx {
    c: Consumer,
}

impl Rx {
    /// The consumer of `mem`, or `None` while this process has one already.
    pub fn new(mem: &RingMem) -> Option<Rx> {
        Some(Rx { c: Consumer::new(mem)? })
    }

    fn mem(&self) -> &RingMem {
        self.c.mem()
    }

    /// The record at the head, `None` when the ring is empty.
    pub fn peek(&self) -> Result<Option<Rec>, Corrupt> {
        self.c.peek()
    }

    /// Whether a record is waiting (a cheap look, for spinning).
    pub fn nonempty(&self) -> bool {
        self.c.nonempty()
    }

    /// Copies the payload of `rec` into `dst` (`rec.len()` bytes long).
    pub fn read(&self, rec: &Rec, dst: &mut [u8]) {
        self.c.read(rec, dst)
    }

    /// The payload of `rec` in place (no copy; see `Consumer::payload`).
    #[cfg(not(multiproc_loom))]
    pub fn view(&self, rec: &Rec) -> &[u8] {
        self.c.payload(rec)
    }

    /// Under loom pipes have no ring; the models never view.
    #[cfg(multiproc_loom)]
    pub fn view(&self, _rec: &Rec) -> &[u8] {
        unreachable!("no in-place views under loom")
    }

    /// Consumes `rec` and wakes a producer waiting for room. The consumer stops watching
    /// first (it is leaving its receive with a record): a record published after this
    /// consume rings, so none is left behind without a doorbell.
    pub fn advance(&mut self, rec: Rec) {
        self.mem().consumer_word(STATE).store(ARMED, Ordering::Relaxed);
        self.c.advance(rec);
        fence(Ordering::SeqCst);
        let m = self.mem();
        let (space, space_wait) = (m.consumer_word(SPACE), m.consumer_word(SPACE_WAIT));
        if space_wait.load(Ordering::Relaxed) != 0 {
            space_wait.store(0, Ordering::Relaxed);
            space.fetch_add(1, Ordering::Release);
            futex::wake_low(space, u32::MAX);
        }
    }

    /// The consumer starts spinning inside a receive: senders need not ring.
    pub fn watch(&self) {
        self.mem().consumer_word(STATE).store(WATCHING, Ordering::Relaxed);
    }

    /// The consumer leaves a receive (without a record): senders ring again.
    pub fn leave(&self) {
        // Only the consumer writes `state`.
        let state = self.mem().consumer_word(STATE);
        if state.load(Ordering::Relaxed) == WATCHING {
            state.store(ARMED, Ordering::Relaxed);
        }
    }

    /// The consumer took a doorbell out of the socket (call before looking at the ring
    /// again, which [`arm`](Self::arm) does after its fence).
    pub fn took_bell(&self) {
        bump(self.mem().consumer_word(TAKEN), 1);
    }

    /// The consumer's half of the handshake before it blocks: arms, fences, and returns
    /// whether a record is waiting after all (then it must not block).
    pub fn arm(&self) -> bool {
        self.mem().consumer_word(STATE).store(ARMED, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        self.nonempty()
    }
}
