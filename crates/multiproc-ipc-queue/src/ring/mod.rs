//! The ring protocol: a bounded MPMC ring of fixed-size slots in shared memory whose every
//! slot carries a state word, robust against any party being killed at any instant.
//!
//! Not part of the stable API (it is public, hidden, for the loom models in `tests/loom.rs`).
//!
//! # Layout
//!
//! `2^log_n` slots of [`SLOT_BYTES`] payload bytes each. The payload bytes of all slots form
//! one contiguous data area, so a *record* of `span` consecutive slots is one contiguous byte
//! range (two at the ring's end). A message is one record: an 8-byte record header
//! (`len: u32`, `flags: u32`) then the serialised bytes. Messages that need more than half
//! the ring are *spilled* (see [`spill`](crate::spill): a one-slot descriptor record) or, as a
//! fallback, *streamed* (see [`stream`](crate::stream)) through a window record.
//!
//! Positions are 40-bit counters (`tail` for producers, `head` for consumers); position `p`
//! lives in slot `p mod n`, on lap `p / n`. The `tail`/`head` words also carry a 24-bit count
//! of the records they passed, so `qsize` and `maxsize` are exact without another shared
//! counter.
//!
//! # The slot word
//!
//! ```text
//!  63            32 31        13 12      3 2   0
//! +----------------+------------+---------+-----+
//! |      lap       |    span    |  party  |state|
//! +----------------+------------+---------+-----+
//! ```
//!
//! `lap` is the lap of the position the state refers to; `party` the index of the owning
//! process in the queue's party table (whose entry holds its pid and start time, so liveness
//! checks are immune to PID reuse); `span` the record's length in slots.
//!
//! State machine of the *first* slot of a record, for lap `L` (position `p`):
//!
//! ```text
//!   EMPTY(L) ──claim (producer, CAS at tail)──► WRITING(L,P,k) ──commit (swap)──► READY(L,k)
//!                                                  │                                 │
//!                  P dead (anyone, CAS), or P gives│up (timeout, close)              │ claim (consumer,
//!                                                  ▼                                 ▼ CAS at head)
//!                                               SKIP(L,k)                      READING(L,C,k)
//!                                                  │ claim (consumer, CAS)           │
//!                                                  ▼                                 │
//!                                          DISCARDING(L,C,k)                         │
//!                                                  │                                 │
//!                                                  └──── release (the claimer) ──────┴──► EMPTY(L+1)
//!
//!   READING / DISCARDING whose C is dead ──steal (anyone, CAS C -> self)──► same state, new owner
//! ```
//!
//! The `k - 1` *continuation* slots of a record keep the word `EMPTY(L)` while the record
//! lives: nobody claims them (the tail jumps over the record) and nobody else waits on them
//! at lap `L`. The record's producer writes into one only once it holds `EMPTY(L)` (the
//! previous lap's consumer released it); the record's consumer sets them to `EMPTY(L+1)`
//! before its first slot.
//!
//! - Claiming is one CAS on the slot word that also records the owner, so a party killed at
//!   any instant leaves either an unclaimed slot or one whose owner can be checked. The
//!   `tail`/`head` word is advanced after the claim by the claimer or by anyone who sees the
//!   claimed slot at that position (helping), so a death between the two steps stalls nobody.
//! - A producer waits until each continuation slot is `EMPTY(L)`, writes the payload, then
//!   publishes the first slot `READY` (release). A consumer that claimed `READY` owns all `k`
//!   slots.
//! - `SKIP` records (a dead producer's, or an aborted put) are claimed like messages and
//!   released without being delivered; their continuation slots may still be busy with the
//!   previous lap, so the releaser waits for each (with the same recovery).
//! - Anyone waiting on a slot that does not move checks the owner recorded in the word (for
//!   a continuation slot, in its record's first slot, found by scanning back) every
//!   [`CHECK_EVERY`]; a dead producer's record becomes `SKIP`, a dead consumer's record is
//!   stolen and released. So every message is delivered whole and at most once; a message is
//!   lost only if the consumer that claimed it dies; a dead party's slots are reclaimed.
//!
//! Closing sets [`TAIL_CLOSED`] in the `tail` word, after helping every record already claimed
//! at the tail past it: records before the closed position are delivered; a producer whose
//! claim lies at or after it finds out when its own `tail` advance fails on the closed bit, and
//! turns the record into `SKIP`. So `get` reports `Closed` exactly when the closed bit is set
//! and `head` has reached the tail position: nothing put successfully is left behind, and
//! nothing appears after. (One word and acquire/release CASes, so loom checks it.)
//!
//! Waiting uses two event words (futex): consumers sleep on `ev_commit`, producers (and
//! releasers) on `ev_release`. Bit 0 of an event word says "someone sleeps"; a notifier only
//! makes a system call when it is set, and clears it as it wakes everyone, so a sleeper killed
//! in its sleep costs one spurious wake-up, never a lasting slowdown.

mod consume;
pub(crate) mod entry;
mod header;
mod produce;
mod recover;
mod wait;
mod word;

pub use consume::Claim;
pub use header::{Header, Mem, Party, StreamEntry, MAGIC, PARTY_READY};
pub use produce::Reservation;
pub(crate) use wait::Waiter;
pub use wait::{notify, notify_after_sc, prepare_wait, Block, Refused, CHECK_EVERY};
use wait::{spin_backoff, SPIN};
pub use word::{
    advanced, cnt_diff, cnt_of, descriptor, lap_of, pack, parse_descriptor, party_of, pos_of,
    span_of, state_of, CNT_MASK, DESC_BYTES, DISCARDING, EMPTY, FLAG_SPILL, FLAG_STREAM,
    MAX_LOG_SLOTS, MAX_PARTIES, MIN_LOG_SLOTS, POS_BITS, POS_MASK, READING, READY, REC_HDR, SKIP,
    SLOT_BYTES, TAIL_CLOSED, WRITING,
};

use multiproc_arena::futex;
use multiproc_arena::sync::atomic::{AtomicU64, Ordering};

/// The ring: the protocol over a [`Mem`].
pub struct Ring<M: Mem> {
    /// The memory.
    pub mem: M,
    log_n: u32,
    n: u64,
    lap_mask: u64,
    maxsize: u64,
}

impl<M: Mem> std::fmt::Debug for Ring<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring").field("slots", &self.n).field("maxsize", &self.maxsize).finish()
    }
}

impl<M: Mem> Ring<M> {
    /// Wraps initialised memory.
    pub fn new(mem: M) -> Self {
        let h = mem.header();
        let log_n = h.log_slots.load(Ordering::Relaxed);
        let maxsize = h.maxsize.load(Ordering::Relaxed);
        debug_assert!((MIN_LOG_SLOTS..=MAX_LOG_SLOTS).contains(&log_n));
        Ring { log_n, n: 1 << log_n, lap_mask: (1u64 << (POS_BITS - log_n)) - 1, maxsize, mem }
    }

    /// The header.
    #[inline]
    pub fn header(&self) -> &Header {
        self.mem.header()
    }

    /// Number of slots.
    #[inline]
    pub fn slots(&self) -> u64 {
        self.n
    }

    /// Bytes of the data area.
    #[inline]
    pub fn data_bytes(&self) -> usize {
        self.n as usize * SLOT_BYTES
    }

    /// The largest record span put inline (larger messages are streamed).
    #[inline]
    pub fn max_inline_span(&self) -> u32 {
        (self.n / 2) as u32
    }

    /// Item limit (0: none).
    pub fn maxsize(&self) -> u64 {
        self.maxsize
    }

    /// The state word of slot `i`. Words are interleaved so that the slots of neighbouring
    /// positions (`i`, `i+1`, ... `i+7`) have their words on different cache lines: a consumer
    /// right behind a producer does not fight it for one line on every message, while a run
    /// of `k` positions still covers about `k/8` lines.
    #[inline]
    fn slot(&self, i: usize) -> &AtomicU64 {
        let w = if self.log_n >= 6 { ((i & 7) << (self.log_n - 3)) | (i >> 3) } else { i };
        &self.mem.slots()[w]
    }

    /// Slot index of a position.
    #[inline]
    pub fn idx(&self, p: u64) -> usize {
        (p & (self.n - 1)) as usize
    }

    /// Lap of a position.
    #[inline]
    pub fn lap(&self, p: u64) -> u32 {
        ((p & POS_MASK) >> self.log_n) as u32
    }

    #[inline]
    fn pos_at(&self, lap: u32, idx: usize) -> u64 {
        (((lap as u64) << self.log_n) | idx as u64) & POS_MASK
    }

    #[inline]
    fn add(&self, p: u64, k: u64) -> u64 {
        p.wrapping_add(k) & POS_MASK
    }

    /// `a - b` of two laps, signed.
    #[inline]
    pub(crate) fn lap_diff(&self, a: u32, b: u32) -> i64 {
        let m = self.lap_mask;
        let d = (a as u64).wrapping_sub(b as u64) & m;
        if d > m / 2 {
            d as i64 - (m as i64 + 1)
        } else {
            d as i64
        }
    }

    /// Byte offset in the data area of position `p`.
    #[inline]
    fn byte_of(&self, p: u64) -> usize {
        self.idx(p) * SLOT_BYTES
    }

    /// Copies `src` into the data area starting at byte `at` (wrapping at the end).
    ///
    /// # Safety
    /// The caller owns the bytes under the protocol.
    pub(crate) unsafe fn copy_in(&self, at: usize, src: &[u8]) {
        let size = self.data_bytes();
        let at = at & (size - 1);
        let first = src.len().min(size - at);
        // SAFETY: both pieces lie inside the data area; ownership is the caller's promise.
        unsafe {
            self.mem.write(at, &src[..first]);
            if first < src.len() {
                self.mem.write(0, &src[first..]);
            }
        }
    }

    /// Copies bytes starting at byte `at` of the data area (wrapping) into `dst`.
    ///
    /// # Safety
    /// The caller owns the bytes under the protocol.
    pub(crate) unsafe fn copy_out(&self, at: usize, dst: &mut [u8]) {
        let size = self.data_bytes();
        let at = at & (size - 1);
        let first = dst.len().min(size - at);
        let (a, b) = dst.split_at_mut(first);
        // SAFETY: both pieces lie inside the data area; ownership is the caller's promise.
        unsafe {
            self.mem.read(at, a);
            if !b.is_empty() {
                self.mem.read(0, b);
            }
        }
    }

    fn help_advance(a: &AtomicU64, seen: u64, span: u32) {
        let _ = a.compare_exchange(seen, advanced(seen, span), Ordering::AcqRel, Ordering::Relaxed);
    }

    /// Advances `tail` past the record at `pos` if it still points there.
    fn help_tail(&self, pos: u64, span: u32) {
        let t = &self.header().tail;
        let w = t.load(Ordering::Acquire);
        if pos_of(w) == pos {
            Self::help_advance(t, w, span);
        }
    }

    /// Advances `head` past the record at `pos` if it still points there.
    fn help_head(&self, pos: u64, span: u32) {
        let h = &self.header().head;
        let w = h.load(Ordering::Acquire);
        if pos_of(w) == pos {
            Self::help_advance(h, w, span);
        }
    }

    /// Records in the queue (counted at claim time), less the `SKIP` records waiting to be
    /// discarded (a put that timed out or was abandoned is not a message).
    pub fn len(&self) -> u64 {
        let h = self.header();
        let head = h.head.load(Ordering::Acquire);
        let tail = h.tail.load(Ordering::Acquire);
        let skips = h.unclaimed_skips.load(Ordering::Acquire);
        cnt_diff(cnt_of(tail), cnt_of(head)).saturating_sub(skips)
    }

    /// Whether no record is in the queue.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a put of one slot would not fit now.
    pub fn is_full(&self) -> bool {
        let h = self.header();
        let tw = h.tail.load(Ordering::Acquire);
        if self.maxsize != 0 {
            let hw = h.head.load(Ordering::Acquire);
            if cnt_diff(cnt_of(tw), cnt_of(hw)) >= self.maxsize {
                return true;
            }
        }
        let t = pos_of(tw);
        let s = self.slot(self.idx(t)).load(Ordering::Acquire);
        self.lap_diff(lap_of(s), self.lap(t)) < 0
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        self.header().tail.load(Ordering::Acquire) & TAIL_CLOSED != 0
    }

    /// Whether the queue is closed and every record before the closed position was taken.
    fn drained_and_closed(&self) -> bool {
        let h = self.header();
        let hw = h.head.load(Ordering::Acquire);
        let tw = h.tail.load(Ordering::Acquire);
        tw & TAIL_CLOSED != 0 && pos_of(tw) == pos_of(hw)
    }

    /// Closes the queue and wakes every waiter.
    pub fn close(&self) {
        let h = self.header();
        loop {
            let tw = h.tail.load(Ordering::Acquire);
            if tw & TAIL_CLOSED != 0 {
                break;
            }
            let t = pos_of(tw);
            let s = self.slot(self.idx(t)).load(Ordering::Acquire);
            if lap_of(s) == self.lap(t) && state_of(s) != EMPTY {
                // A record claimed before the close: it goes in.
                Self::help_advance(&h.tail, tw, span_of(s));
                continue;
            }
            if h.tail
                .compare_exchange(tw, tw | TAIL_CLOSED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                break;
            }
        }
        h.closed.store(1, Ordering::Release);
        for ev in [&h.ev_commit, &h.ev_release, &h.ev_join] {
            ev.fetch_add(2, Ordering::SeqCst);
            futex::wake_all(ev);
        }
        for s in self.mem.streams() {
            s.ev.fetch_add(2, Ordering::SeqCst);
            futex::wake_all(&s.ev);
        }
    }
}
