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

use multiproc_arena::futex::{self, Deadline, Wake};
use multiproc_arena::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Payload bytes per slot.
pub const SLOT_BYTES: usize = 64;
/// Bytes of the record header (`len: u32`, `flags: u32`) at the start of each record.
pub const REC_HDR: usize = 8;
/// Record flag: the record is a stream window.
pub const FLAG_STREAM: u32 = 1;
/// Record flag: the record is the descriptor of a spilled message (see [`spill`](crate::spill)).
pub const FLAG_SPILL: u32 = 2;
/// Smallest ring: 2^8 slots (so a lap number always fits in 32 bits).
#[cfg(not(multiproc_loom))]
pub const MIN_LOG_SLOTS: u32 = 8;
/// Smallest ring under loom: 4 slots (positions have 34 bits there).
#[cfg(multiproc_loom)]
pub const MIN_LOG_SLOTS: u32 = 2;
/// Largest ring: 2^19 slots (32 MiB of payload).
pub const MAX_LOG_SLOTS: u32 = 19;
/// Largest party table (the party field has 10 bits).
pub const MAX_PARTIES: usize = 1024;
/// How often a waiter checks the liveness of the party it waits on.
pub const CHECK_EVERY: Duration = Duration::from_millis(2);

/// Slot states.
pub const EMPTY: u64 = 0;
/// Claimed by a producer who is writing the record.
pub const WRITING: u64 = 1;
/// Committed: a whole record, waiting for a consumer.
pub const READY: u64 = 2;
/// Claimed by a consumer (or a releaser) who is reading the record.
pub const READING: u64 = 3;
/// A record to drop: its producer died or gave up.
pub const SKIP: u64 = 4;
/// A `SKIP` record claimed by a consumer (or a releaser) who is releasing it.
pub const DISCARDING: u64 = 5;

const PARTY_SHIFT: u32 = 3;
const PARTY_MASK: u64 = 0x3ff;
const SPAN_SHIFT: u32 = 13;
const SPAN_MASK: u64 = 0x7_ffff;

/// Position bits of the `head`/`tail` words; the bits above count records.
#[cfg(not(multiproc_loom))]
pub const POS_BITS: u32 = 40;
/// Position bits under loom (so that tiny rings keep laps within 32 bits).
#[cfg(multiproc_loom)]
pub const POS_BITS: u32 = 34;
/// Mask of a position.
pub const POS_MASK: u64 = (1 << POS_BITS) - 1;
/// Mask of a record count (23 bits; 29 under loom).
pub const CNT_MASK: u64 = (1 << (63 - POS_BITS)) - 1;
/// Bit of the `tail` word: the queue is closed; no record at or after its position is valid.
pub const TAIL_CLOSED: u64 = 1 << 63;

/// Packs a slot word.
#[inline]
pub const fn pack(lap: u32, state: u64, party: u32, span: u32) -> u64 {
    ((lap as u64) << 32)
        | ((span as u64 & SPAN_MASK) << SPAN_SHIFT)
        | ((party as u64 & PARTY_MASK) << PARTY_SHIFT)
        | state
}
/// The state of a slot word.
#[inline]
pub const fn state_of(w: u64) -> u64 {
    w & 7
}
/// The party of a slot word.
#[inline]
pub const fn party_of(w: u64) -> u32 {
    ((w >> PARTY_SHIFT) & PARTY_MASK) as u32
}
/// The span (record length in slots) of a slot word.
#[inline]
pub const fn span_of(w: u64) -> u32 {
    ((w >> SPAN_SHIFT) & SPAN_MASK) as u32
}
/// The lap of a slot word.
#[inline]
pub const fn lap_of(w: u64) -> u32 {
    (w >> 32) as u32
}
/// Position part of a `head`/`tail` word.
#[inline]
pub const fn pos_of(w: u64) -> u64 {
    w & POS_MASK
}
/// Count part of a `head`/`tail` word.
#[inline]
pub const fn cnt_of(w: u64) -> u64 {
    (w >> POS_BITS) & CNT_MASK
}
/// The `head`/`tail` word after a record of `span` slots (the closed bit is kept).
#[inline]
pub const fn advanced(w: u64, span: u32) -> u64 {
    (pos_of(w).wrapping_add(span as u64) & POS_MASK)
        | (((cnt_of(w) + 1) & CNT_MASK) << POS_BITS)
        | (w & TAIL_CLOSED)
}

/// Records counted by `a` minus those counted by `b` (24-bit wrapping).
#[inline]
pub const fn cnt_diff(a: u64, b: u64) -> u64 {
    a.wrapping_sub(b) & CNT_MASK
}

/// The shared header of a queue. All fields are atomics so the same struct serves shared
/// memory and the loom models; the first line is written once at creation.
#[repr(C)]
pub struct Header {
    /// [`MAGIC`] once initialised.
    pub magic: AtomicU64,
    /// Hash of the element type, checked when a handle is received.
    pub type_tag: AtomicU64,
    /// log2 of the slot count.
    pub log_slots: AtomicU32,
    /// Entries in the party table.
    pub n_parties: AtomicU32,
    /// Entries in the stream table.
    pub n_streams: AtomicU32,
    /// Closed flag (0/1).
    pub closed: AtomicU32,
    /// Most items in the queue (0: bounded only by the ring).
    pub maxsize: AtomicU64,
    /// Handle families alive across processes (for freeing the memory).
    pub refs: AtomicU64,
    /// Arena offset of the data area.
    pub data_off: AtomicU64,
    /// Entries in the spill table.
    pub n_spills: AtomicU32,
    _pad0: u32,
    /// Random identity of the queue's spill file (also at its start), checked when a handle
    /// is received with the file's descriptor.
    pub spill_id: AtomicU64,
    /// Most bytes of spilled messages waiting at once (`u64::MAX`: no limit); a large
    /// message that would go past it is streamed instead.
    pub spill_budget: AtomicU64,
    /// `SKIP` records (aborted or dead producers' puts) no consumer has claimed yet: counted
    /// by `tail` but not messages, so `len` leaves them out.
    pub unclaimed_skips: AtomicU64,
    _pad0b: [u64; 5],
    /// Producers' position and record count.
    pub tail: AtomicU64,
    _pad1: [u64; 15],
    /// Consumers' position and record count.
    pub head: AtomicU64,
    _pad2: [u64; 15],
    /// Event word consumers sleep on (something committed).
    pub ev_commit: AtomicU32,
    _pad3: [u32; 31],
    /// Event word producers sleep on (something released).
    pub ev_release: AtomicU32,
    _pad4: [u32; 31],
    /// `task_done` calls.
    pub done: AtomicU64,
    /// Records that were put but will never be delivered (dead producer, aborted, undecodable).
    pub skipped: AtomicU64,
    /// Messages dropped because their producer died mid-write (statistics).
    pub discarded: AtomicU64,
    /// Event word `join` sleeps on.
    pub ev_join: AtomicU32,
    _pad5: u32,
    _pad6: [u64; 12],
}

/// `magic` of an initialised queue header.
pub const MAGIC: u64 = u64::from_le_bytes(*b"MPQUEUE2");

#[cfg(not(multiproc_loom))]
mod layout {
    use super::{Header, Party, StreamEntry};
    use crate::spill::SpillEntry;
    use static_assertions::{assert_eq_align, const_assert_eq};
    use std::mem::{offset_of, size_of};
    assert_eq_align!(Header, u64);
    // Each hot word alone in a 128-byte block (a pair of cache lines, which the adjacent-line
    // prefetcher moves together): producers' `tail`, consumers' `head`, and the two event
    // words, which the other side reads on every commit / release.
    const_assert_eq!(size_of::<Header>(), 768);
    const_assert_eq!(offset_of!(Header, tail), 128);
    const_assert_eq!(offset_of!(Header, head), 256);
    const_assert_eq!(offset_of!(Header, ev_commit), 384);
    const_assert_eq!(offset_of!(Header, ev_release), 512);
    const_assert_eq!(offset_of!(Header, done), 640);
    const_assert_eq!(size_of::<Party>(), 16);
    const_assert_eq!(size_of::<StreamEntry>(), 64);
    const_assert_eq!(size_of::<SpillEntry>(), 32);
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Header").finish_non_exhaustive()
    }
}

impl Header {
    /// A fresh header.
    pub fn new(log_slots: u32, n_parties: u32, n_streams: u32, maxsize: u64, tag: u64) -> Self {
        Header {
            magic: AtomicU64::new(MAGIC),
            type_tag: AtomicU64::new(tag),
            log_slots: AtomicU32::new(log_slots),
            n_parties: AtomicU32::new(n_parties),
            n_streams: AtomicU32::new(n_streams),
            closed: AtomicU32::new(0),
            maxsize: AtomicU64::new(maxsize),
            refs: AtomicU64::new(1),
            data_off: AtomicU64::new(0),
            n_spills: AtomicU32::new(0),
            _pad0: 0,
            spill_id: AtomicU64::new(0),
            spill_budget: AtomicU64::new(u64::MAX),
            unclaimed_skips: AtomicU64::new(0),
            _pad0b: [0; 5],
            tail: AtomicU64::new(0),
            _pad1: [0; 15],
            head: AtomicU64::new(0),
            _pad2: [0; 15],
            ev_commit: AtomicU32::new(0),
            _pad3: [0; 31],
            ev_release: AtomicU32::new(0),
            _pad4: [0; 31],
            done: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
            ev_join: AtomicU32::new(0),
            _pad5: 0,
            _pad6: [0; 12],
        }
    }
}

/// An entry of the party table: a process that uses the queue.
///
/// `id`: 0 = free; otherwise the process's arena [`Identity`](multiproc_arena::Identity)
/// bits `| PARTY_READY`, set by one CAS (so a reader never sees a party half registered).
/// Whether a party died is the kernel's proof (see [`multiproc_arena::liveness`]), never a
/// pid: parties in different PID namespaces, or a process that cannot read `/proc`, are
/// never taken for dead. `pid`: the pid as the process saw it, for messages only.
#[repr(C)]
pub struct Party {
    /// Identity bits `|` [`PARTY_READY`], 0 when free.
    pub id: AtomicU64,
    /// The process's pid in its own PID namespace (informational).
    pub pid: AtomicU64,
}

/// Party state: registered (bit 31, which identities leave clear).
pub const PARTY_READY: u64 = 1 << 31;

impl std::fmt::Debug for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Party").finish_non_exhaustive()
    }
}

impl Party {
    /// A free entry.
    pub fn new() -> Self {
        Party { id: AtomicU64::new(0), pid: AtomicU64::new(0) }
    }
}

impl Default for Party {
    fn default() -> Self {
        Self::new()
    }
}

/// An entry of the stream table: the control words of one message being streamed.
#[repr(C)]
pub struct StreamEntry {
    /// `gen << 32 | phase | producer << 4 | consumer << 14`; see [`crate::stream`].
    pub state: AtomicU64,
    /// Total message bytes.
    pub total: AtomicU64,
    /// Bytes the producer has written.
    pub written: AtomicU64,
    /// Bytes the consumer has read.
    pub read: AtomicU64,
    /// Event word both sides sleep on.
    pub ev: AtomicU32,
    _pad: u32,
    _pad2: [u64; 3],
}

impl std::fmt::Debug for StreamEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamEntry").finish_non_exhaustive()
    }
}

impl StreamEntry {
    /// A free entry.
    pub fn new() -> Self {
        StreamEntry {
            state: AtomicU64::new(0),
            total: AtomicU64::new(0),
            written: AtomicU64::new(0),
            read: AtomicU64::new(0),
            ev: AtomicU32::new(0),
            _pad: 0,
            _pad2: [0; 3],
        }
    }
}

impl Default for StreamEntry {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a ring's memory lives: shared memory (the real queue) or the heap (loom models).
pub trait Mem {
    /// The header.
    fn header(&self) -> &Header;
    /// The slot words.
    fn slots(&self) -> &[AtomicU64];
    /// The party table.
    fn parties(&self) -> &[Party];
    /// The stream table.
    fn streams(&self) -> &[StreamEntry];
    /// The spill table (none by default: big messages are streamed).
    fn spills(&self) -> &[crate::spill::SpillEntry] {
        &[]
    }
    /// Gives back the memory of spill entry `e`'s region (its first `len` bytes at least);
    /// called only by the entry's exclusive owner.
    fn spill_discard(&self, _e: usize, _len: u64) {}
    /// Copies `src` into the data area at byte `off`.
    ///
    /// # Safety
    /// `off + src.len()` is within the data area, and the caller owns those bytes under the
    /// protocol (a reservation it has not committed, or a stream window it may write).
    unsafe fn write(&self, off: usize, src: &[u8]);
    /// Copies bytes at `off` of the data area into `dst`.
    ///
    /// # Safety
    /// `off + dst.len()` is within the data area and the caller owns those bytes (a claimed
    /// record, or the part of a stream window the producer has published).
    unsafe fn read(&self, off: usize, dst: &mut [u8]);
    /// A view of `len` bytes at `off`, where the memory allows it (not under loom).
    ///
    /// # Safety
    /// As for [`read`](Mem::read), for as long as the view lives.
    unsafe fn view(&self, off: usize, len: usize) -> Option<&[u8]>;
    /// Copies one whole slot at `off` (a multiple of [`SLOT_BYTES`]).
    ///
    /// # Safety
    /// As for [`write`](Mem::write).
    #[inline]
    unsafe fn write_slot(&self, off: usize, src: &[u8; SLOT_BYTES]) {
        // SAFETY: forwarded.
        unsafe { self.write(off, src) }
    }
    /// Whether the process registered as `party` still runs.
    fn alive(&self, party: u32) -> bool;
}

/// How long an operation may wait.
#[derive(Debug, Clone, Copy)]
pub enum Block {
    /// Not at all.
    No,
    /// Until the deadline (under loom: a count of waits, see [`Deadline`]).
    Until(Deadline),
    /// For ever.
    Forever,
}

impl Block {
    /// `Until(now + d)`, or `Forever` if that overflows.
    pub fn after(d: Duration) -> Block {
        let dl = Deadline::after(d);
        if dl.is_finite() {
            Block::Until(dl)
        } else {
            Block::Forever
        }
    }

    /// Whether the operation may wait at all (not [`Block::No`]).
    #[inline]
    pub fn waits(&self) -> bool {
        !matches!(self, Block::No)
    }
}

/// Why a ring operation did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No room (non-blocking put) or nothing to take (non-blocking get).
    WouldBlock,
    /// The deadline passed.
    Timeout,
    /// The queue is closed (put), or closed and drained (get).
    Closed,
}

/// Spin iterations before sleeping.
#[cfg(not(multiproc_loom))]
const SPIN: u32 = 200;
#[cfg(multiproc_loom)]
const SPIN: u32 = 0;

/// Slots a producer waiting on a full ring lets the consumers free before it resumes (in its
/// spin phase).
const FULL_BATCH: u64 = 128;

/// Spins until `cond` holds or `budget` pause instructions are spent, looking less and less
/// often: a peer about to publish keeps the cache line it writes instead of losing it to our
/// polling on every iteration.
#[inline]
fn spin_backoff(budget: &mut u32, mut cond: impl FnMut() -> bool) -> bool {
    let mut pauses = 1u32;
    while *budget > 0 {
        if cond() {
            return true;
        }
        let n = pauses.min(*budget);
        for _ in 0..n {
            multiproc_arena::sync::spin_loop();
        }
        *budget -= n;
        pauses = (pauses * 2).min(16);
    }
    cond()
}

/// Tracks one blocking wait: its deadline and when the holder was last checked.
pub(crate) struct Waiter {
    /// `None`: not blocking ([`Block::No`]).
    deadline: Option<Deadline>,
    /// Pause instructions left to spin before sleeping (shared by every pause of the wait).
    pub(crate) spin_left: u32,
    #[cfg_attr(multiproc_loom, allow(dead_code))]
    last_check: Option<Instant>,
    /// Calls of `check_due` (the clock is read on every 8th).
    #[cfg_attr(multiproc_loom, allow(dead_code))]
    checks: u32,
}

/// `check_due` reads the clock once per this many calls (a spinning waiter calls it often).
#[cfg_attr(multiproc_loom, allow(dead_code))]
const CLOCK_EVERY: u32 = 8;

impl Waiter {
    pub(crate) fn new(block: Block) -> Self {
        let deadline = match block {
            Block::No => None,
            Block::Until(d) => Some(d),
            Block::Forever => Some(Deadline::never()),
        };
        Waiter { deadline, spin_left: SPIN, last_check: None, checks: 0 }
    }

    /// Whether it is time to check a holder's liveness again.
    pub(crate) fn check_due(&mut self) -> bool {
        #[cfg(multiproc_loom)]
        {
            true
        }
        #[cfg(not(multiproc_loom))]
        {
            // Every call must eventually read the clock (a loop that never pauses relies on it
            // to find a dead holder), but not every call need to: it costs on hot paths.
            self.checks = self.checks.wrapping_add(1);
            if self.last_check.is_some() && self.checks % CLOCK_EVERY != 0 {
                return false;
            }
            let now = Instant::now();
            match self.last_check {
                None => {
                    self.last_check = Some(now);
                    false
                }
                Some(t) if now.duration_since(t) >= CHECK_EVERY => {
                    self.last_check = Some(now);
                    true
                }
                Some(_) => false,
            }
        }
    }

    /// Waits for `cond` on the event word `ev`: spins first (once per wait), then sleeps
    /// (the arena's [`futex::park`]) until notified, [`CHECK_EVERY`] passes (with `poll`:
    /// some holder must be checked), or the deadline. Returns `Err(Timeout)` once the
    /// deadline has passed (or `WouldBlock` when not blocking); `Ok` means "look again".
    pub(crate) fn pause(
        &mut self,
        ev: &AtomicU32,
        poll: bool,
        mut cond: impl FnMut() -> bool,
    ) -> Result<(), Refused> {
        let Some(deadline) = self.deadline.as_mut() else {
            return Err(Refused::WouldBlock);
        };
        if self.spin_left > 0 && spin_backoff(&mut self.spin_left, &mut cond) {
            return Ok(());
        }
        let seen = prepare_wait(ev);
        if cond() {
            return Ok(());
        }
        match futex::park(ev, seen, deadline, poll.then_some(CHECK_EVERY)) {
            Wake::TimedOut => Err(Refused::Timeout),
            Wake::Woken | Wake::Poll => Ok(()),
        }
    }

    pub(crate) fn blocking(&self) -> bool {
        self.deadline.is_some()
    }
}

/// First half of a sleep on `ev`: announces a sleeper (bit 0) and fences; the caller then
/// re-checks its condition and, if it still does not hold, futex-waits for `ev` to leave
/// the returned value.
#[inline]
pub fn prepare_wait(ev: &AtomicU32) -> u32 {
    let seen = ev.fetch_or(1, Ordering::SeqCst) | 1;
    fence(Ordering::SeqCst);
    seen
}

/// Wakes everyone sleeping on `ev`, if anyone is (the caller changed what they wait for).
#[inline]
pub fn notify(ev: &AtomicU32) {
    fence(Ordering::SeqCst);
    let v = ev.load(Ordering::Relaxed);
    if v & 1 != 0 {
        notify_slow(ev, v);
    }
}

/// [`notify`] for a caller whose change was a `SeqCst` read-modify-write `W`: the SC load `R`
/// of the event word stands in for the fence. The waiter does `A` = SC fetch_or on the word,
/// a SC fence `F`, then reads the state. If both missed each other, `R` is coherence-ordered
/// before `A` and the waiter's state read before `W`, so C++20's single order S would need
/// `R < A < F < W < R`: impossible. Loom treats SC accesses as acquire/release only (a known
/// limitation), so under loom the fence this argument makes implicit is written out.
#[inline]
pub fn notify_after_sc(ev: &AtomicU32) {
    #[cfg(multiproc_loom)]
    fence(Ordering::SeqCst);
    let v = ev.load(Ordering::SeqCst);
    if v & 1 != 0 {
        notify_slow(ev, v);
    }
}

#[cold]
fn notify_slow(ev: &AtomicU32, mut v: u32) {
    loop {
        match ev.compare_exchange(v, (v | 1).wrapping_add(1), Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => break,
            Err(seen) if seen & 1 != 0 => v = seen,
            Err(_) => return, // someone else woke them
        }
    }
    futex::wake_all(ev);
}

/// A claimed record a producer is filling; commit or abort it (dropping it aborts).
pub struct Reservation<'a, M: Mem> {
    ring: &'a Ring<M>,
    /// First position.
    pub pos: u64,
    /// Slots.
    pub span: u32,
    done: bool,
}

/// A record a consumer claimed; dropping it releases the slots.
pub struct Claim<'a, M: Mem> {
    ring: &'a Ring<M>,
    me: u32,
    /// First position.
    pub pos: u64,
    /// Slots.
    pub span: u32,
    /// The record is a `SKIP` (to drop, not deliver).
    pub discard: bool,
    word: u64,
}

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

    // ----------------------------------------------------------------------------------
    // Producer side
    // ----------------------------------------------------------------------------------

    /// One attempt to claim `span` slots at the tail. `Err(None)`: closed;
    /// `Err(Some(i, w))`: slot `i` (word `w`) is not free yet (`i == usize::MAX`: maxsize).
    fn try_claim(&self, me: u32, span: u32) -> Result<u64, Option<(usize, u64)>> {
        let h = self.header();
        loop {
            let tw = h.tail.load(Ordering::Acquire);
            if tw & TAIL_CLOSED != 0 {
                return Err(None);
            }
            if self.maxsize != 0 {
                let hw = h.head.load(Ordering::Acquire);
                if cnt_diff(cnt_of(tw), cnt_of(hw)) >= self.maxsize {
                    return Err(Some((usize::MAX, hw)));
                }
            }
            let t = pos_of(tw);
            let (i, l) = (self.idx(t), self.lap(t));
            let s = self.slot(i).load(Ordering::Acquire);
            if s == pack(l, EMPTY, 0, 0) {
                let w = pack(l, WRITING, me, span);
                if self.slot(i).compare_exchange(s, w, Ordering::AcqRel, Ordering::Relaxed).is_err()
                {
                    continue;
                }
                let adv = advanced(tw, span);
                let Err(mut cw) =
                    h.tail.compare_exchange(tw, adv, Ordering::AcqRel, Ordering::Acquire)
                else {
                    return Ok(t);
                };
                if cw & TAIL_CLOSED == 0 || pos_of(cw) != t {
                    return Ok(t); // a helper advanced past our claim: it precedes any close
                }
                // Closed at our position: the claim came after the close. Drop it: the
                // tail first, so that `head` (a consumer discarding the SKIP) never passes
                // `tail` (found by the exact futex model: a consumer then watched the wrong
                // slot).
                while pos_of(cw) == t {
                    match h.tail.compare_exchange(
                        cw,
                        advanced(cw, span),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => break,
                        Err(seen) => cw = seen,
                    }
                }
                h.skipped.fetch_add(1, Ordering::Relaxed);
                h.unclaimed_skips.fetch_add(1, Ordering::AcqRel);
                self.slot(i).store(pack(l, SKIP, 0, span), Ordering::Release);
                notify(&h.ev_commit);
                return Err(None);
            }
            let d = self.lap_diff(lap_of(s), l);
            if d == 0 {
                if state_of(s) != EMPTY {
                    Self::help_advance(&h.tail, tw, span_of(s));
                }
                continue;
            }
            if d > 0 {
                continue; // stale tail
            }
            return Err(Some((i, s)));
        }
    }

    /// Claims a record of `span` slots (1 ..= [`max_inline_span`](Self::max_inline_span))
    /// at the tail, waiting for room as `block` allows. Its continuation slots are not
    /// prepared yet: call [`Reservation::prepare`].
    pub fn reserve(&self, me: u32, span: u32, block: Block) -> Result<Reservation<'_, M>, Refused> {
        debug_assert!(span >= 1 && span <= self.max_inline_span());
        let mut w = Waiter::new(block);
        let mut batched = false;
        loop {
            match self.try_claim(me, span) {
                Ok(pos) => return Ok(Reservation { ring: self, pos, span, done: false }),
                Err(None) => return Err(Refused::Closed),
                Err(Some((i, s))) => {
                    if !w.blocking() {
                        return Err(Refused::WouldBlock);
                    }
                    if i != usize::MAX && w.check_due() {
                        self.check_stuck(me, i, s);
                    }
                    let h = self.header();
                    if i != usize::MAX && !batched && w.spin_left == SPIN {
                        // The ring is full: the consumer works on the very slot we wait for.
                        // While spinning, wait for a batch of slots to be free instead, so
                        // the two sides stop fighting over one cache line; the sleep below
                        // waits for our slot alone (no batch is owed to us). Once per wait:
                        // if our slot stays taken while the batch is free (its consumer is
                        // slow or dead), the pauses below keep the deadline and the checks.
                        batched = true;
                        let t = pos_of(h.tail.load(Ordering::Relaxed));
                        let ahead = self.add(t, FULL_BATCH.min(self.n / 4));
                        let free = pack(self.lap(ahead), EMPTY, 0, 0);
                        let ai = self.idx(ahead);
                        if spin_backoff(&mut w.spin_left, || {
                            self.slot(ai).load(Ordering::Acquire) == free || self.is_closed()
                        }) {
                            continue;
                        }
                    }
                    let slice = i != usize::MAX;
                    w.pause(&h.ev_release, slice, || {
                        self.is_closed()
                            || if i == usize::MAX {
                                h.head.load(Ordering::Acquire) != s
                            } else {
                                self.slot(i).load(Ordering::Acquire) != s
                            }
                    })?;
                }
            }
        }
    }

    /// Waits until position `p` (not claimed by anyone else at its lap) is free for its
    /// lap; returns the free word.
    fn wait_free(&self, me: u32, p: u64, w: &mut Waiter) -> Result<u64, Refused> {
        let (i, l) = (self.idx(p), self.lap(p));
        let free = pack(l, EMPTY, 0, 0);
        loop {
            let s = self.slot(i).load(Ordering::Acquire);
            if s == free {
                return Ok(s);
            }
            debug_assert!(self.lap_diff(lap_of(s), l) < 0, "continuation slot moved ahead");
            if w.check_due() {
                self.check_stuck(me, i, s);
            }
            let h = self.header();
            w.pause(&h.ev_release, true, || self.slot(i).load(Ordering::Acquire) != s)?;
        }
    }

    // ----------------------------------------------------------------------------------
    // Consumer side
    // ----------------------------------------------------------------------------------

    /// One attempt to claim the record at the head. `Err(None)`: nothing there;
    /// `Err(Some(i, w))`: a producer is still writing it.
    fn try_take(&self, me: u32) -> Result<Claim<'_, M>, Option<(usize, u64)>> {
        let h = self.header();
        loop {
            let hw = h.head.load(Ordering::Acquire);
            let p = pos_of(hw);
            let (i, l) = (self.idx(p), self.lap(p));
            let s = self.slot(i).load(Ordering::Acquire);
            let d = self.lap_diff(lap_of(s), l);
            if d < 0 {
                return Err(None);
            }
            if d > 0 {
                continue;
            }
            match state_of(s) {
                READY | SKIP => {
                    let span = span_of(s);
                    let claimed = if state_of(s) == SKIP { DISCARDING } else { READING };
                    let w = pack(l, claimed, me, span);
                    if self
                        .slot(i)
                        .compare_exchange(s, w, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        if state_of(s) == SKIP {
                            h.unclaimed_skips.fetch_sub(1, Ordering::AcqRel);
                        }
                        Self::help_advance(&h.head, hw, span);
                        return Ok(Claim {
                            ring: self,
                            me,
                            pos: p,
                            span,
                            discard: state_of(s) == SKIP,
                            word: w,
                        });
                    }
                }
                READING | DISCARDING => Self::help_advance(&h.head, hw, span_of(s)),
                WRITING => return Err(Some((i, s))),
                EMPTY => return Err(None),
                _ => {}
            }
        }
    }

    /// Claims the record at the head, waiting as `block` allows. `Closed` once the queue is
    /// closed and nothing is left.
    pub fn take(&self, me: u32, block: Block) -> Result<Claim<'_, M>, Refused> {
        let h = self.header();
        let mut w = Waiter::new(block);
        loop {
            match self.try_take(me) {
                Ok(c) => return Ok(c),
                Err(None) => {
                    if self.drained_and_closed() {
                        return Err(Refused::Closed);
                    }
                    // Empty: watch the tail (a claim moves it) rather than the slot word, which
                    // the producer is about to claim and commit: it keeps that line to itself.
                    let hw = h.head.load(Ordering::Acquire);
                    let tw = h.tail.load(Ordering::Acquire);
                    if tw & TAIL_CLOSED != 0 && pos_of(tw) == pos_of(hw) {
                        // Closed since the check above: nothing will move `tail` again, so
                        // the wait below would never end (found by the exact futex model).
                        return Err(Refused::Closed);
                    }
                    if pos_of(tw) != pos_of(hw) {
                        // A claim is under way at the head: watch its slot.
                        let i = self.idx(pos_of(hw));
                        let s = self.slot(i).load(Ordering::Acquire);
                        // The claim may have been committed between `try_take` and the load
                        // above, and the producer may then have filled the ring and gone to
                        // sleep: `s` would already be the committed word and nothing would
                        // change it. Try once more after the load; a commit after it changes
                        // the word, so the wait below cannot miss it.
                        if let Ok(c) = self.try_take(me) {
                            return Ok(c);
                        }
                        w.pause(&h.ev_commit, true, || {
                            self.slot(i).load(Ordering::Acquire) != s
                                || h.head.load(Ordering::Acquire) != hw
                                || h.tail.load(Ordering::Acquire) != tw
                        })?;
                        continue;
                    }
                    w.pause(&h.ev_commit, false, || {
                        h.tail.load(Ordering::Acquire) != tw || h.head.load(Ordering::Acquire) != hw
                    })?;
                }
                Err(Some((i, s))) => {
                    if self.drained_and_closed() {
                        return Err(Refused::Closed); // a claim after the close: it aborts
                    }
                    if !w.blocking() {
                        return Err(Refused::WouldBlock);
                    }
                    if w.check_due() {
                        self.check_stuck(me, i, s);
                    }
                    let closed = self.is_closed();
                    w.pause(&h.ev_commit, true, || {
                        self.slot(i).load(Ordering::Acquire) != s || self.is_closed() != closed
                    })?;
                }
            }
        }
    }

    /// Releases the record at `pos` (claimed with `word`): continuation slots first, then
    /// the first slot; waits (with recovery) for continuation slots still busy with the
    /// previous lap (only a `SKIP` record can have those).
    fn release(&self, me: u32, pos: u64, span: u32, word: u64, exclusive: bool) {
        let mut w = Waiter::new(Block::Forever);
        for j in 1..span as u64 {
            let p = self.add(pos, j);
            let (i, l) = (self.idx(p), self.lap(p));
            let next = pack(self.lap(self.add(p, self.n)), EMPTY, 0, 0);
            if exclusive {
                // Our own live claim of a committed record: every continuation slot is
                // EMPTY(l) and nobody else writes it.
                debug_assert_eq!(self.slot(i).load(Ordering::Relaxed), pack(l, EMPTY, 0, 0));
                self.slot(i).store(next, Ordering::Release);
                continue;
            }
            loop {
                let s = self.slot(i).load(Ordering::Acquire);
                let d = self.lap_diff(lap_of(s), l);
                if d > 0 {
                    break; // released already (by an earlier releaser of this record)
                }
                if d == 0 {
                    debug_assert_eq!(state_of(s), EMPTY);
                    if self
                        .slot(i)
                        .compare_exchange(s, next, Ordering::Release, Ordering::Relaxed)
                        .is_ok()
                    {
                        break;
                    }
                    continue;
                }
                if w.check_due() {
                    self.check_stuck(me, i, s);
                }
                let h = self.header();
                let _ = w.pause(&h.ev_release, true, || self.slot(i).load(Ordering::Acquire) != s);
            }
        }
        let i = self.idx(pos);
        let next = pack(self.lap(self.add(pos, self.n)), EMPTY, 0, 0);
        if exclusive {
            let _old = self.slot(i).swap(next, Ordering::SeqCst);
            debug_assert_eq!(_old, word);
            notify_after_sc(&self.header().ev_release);
        } else {
            let _ = self.slot(i).compare_exchange(word, next, Ordering::SeqCst, Ordering::Relaxed);
            notify_after_sc(&self.header().ev_release);
        }
    }

    // ----------------------------------------------------------------------------------
    // Recovery
    // ----------------------------------------------------------------------------------

    /// Someone waits on slot `i`, which holds `s` and does not move: if the record holding
    /// it belongs to a dead party, do what that party would have done.
    pub fn check_stuck(&self, me: u32, i: usize, s: u64) {
        match state_of(s) {
            WRITING | READING | DISCARDING => self.recover_first(me, i, s),
            EMPTY => {
                // A continuation slot of a record of its lap: find the record's first slot
                // (before it, only more continuation slots) and check that.
                let p = self.pos_at(lap_of(s), i);
                for back in 1..=self.max_inline_span() as u64 {
                    let q = p.wrapping_sub(back) & POS_MASK;
                    let (qi, ql) = (self.idx(q), self.lap(q));
                    let w = self.slot(qi).load(Ordering::Acquire);
                    if lap_of(w) != ql {
                        return;
                    }
                    if state_of(w) != EMPTY {
                        if span_of(w) as u64 > back {
                            self.recover_first(me, qi, w);
                        }
                        return;
                    }
                }
            }
            _ => {} // READY / SKIP: waiting for a consumer, nobody to recover
        }
    }

    fn recover_first(&self, me: u32, i: usize, s: u64) {
        let owner = party_of(s);
        match state_of(s) {
            WRITING => {
                if self.mem.alive(owner) {
                    return;
                }
                let skip = pack(lap_of(s), SKIP, 0, span_of(s));
                let h = self.header();
                // The tail past the record first (as the dead producer would have), so that
                // `head` never passes `tail`. Counted before the record can be claimed.
                self.help_tail(self.pos_at(lap_of(s), i), span_of(s));
                h.unclaimed_skips.fetch_add(1, Ordering::AcqRel);
                if self
                    .slot(i)
                    .compare_exchange(s, skip, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    h.skipped.fetch_add(1, Ordering::Relaxed);
                    h.discarded.fetch_add(1, Ordering::Relaxed);
                    notify(&h.ev_commit);
                    notify(&h.ev_join);
                } else {
                    h.unclaimed_skips.fetch_sub(1, Ordering::AcqRel);
                }
            }
            phase @ (READING | DISCARDING) => {
                if owner == me || self.mem.alive(owner) {
                    return;
                }
                let mine = pack(lap_of(s), phase, me, span_of(s));
                if self
                    .slot(i)
                    .compare_exchange(s, mine, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    let pos = self.pos_at(lap_of(s), i);
                    self.help_head(pos, span_of(s));
                    if phase == DISCARDING {
                        // A dead consumer was dropping a SKIP record (already counted out of
                        // `join`, never a stream it could hand back): just release it.
                        crate::spill::drop_at(self, me, pos);
                        self.release(me, pos, span_of(s), mine, false);
                        return;
                    }
                    let h = self.header();
                    // The dead consumer's message (if it was one) is lost and will never
                    // see `task_done`: count it out of `join`.
                    h.skipped.fetch_add(1, Ordering::Relaxed);
                    notify(&h.ev_join);
                    if !self.stolen_window_handed_back(me, pos, span_of(s), mine) {
                        self.release(me, pos, span_of(s), mine, false);
                    }
                }
            }
            _ => {}
        }
    }

    /// A record we stole from a dead consumer: if it is the window of a stream whose
    /// producer is still writing into it, hand it to that producer (which releases it once
    /// it stopped writing) and return true.
    fn stolen_window_handed_back(&self, me: u32, pos: u64, span: u32, word: u64) -> bool {
        let mut hdr = [0u8; crate::stream::DESC_BYTES];
        if (span as usize) * SLOT_BYTES < hdr.len() {
            return false;
        }
        // SAFETY: we own the record (stolen with a CAS); its header was written before the
        // producer committed it (or it is a SKIP, whose bytes we only parse).
        unsafe { self.copy_out(self.byte_of(pos), &mut hdr) };
        if crate::spill::parse(&hdr).is_some() {
            crate::spill::on_stolen(self, me, &hdr);
            return false;
        }
        crate::stream::on_stolen(self, me, pos, span, word, &hdr)
    }

    /// The slot word of position `pos`.
    pub(crate) fn word_at(&self, pos: u64) -> u64 {
        self.slot(self.idx(pos)).load(Ordering::Acquire)
    }

    /// Moves the claim of the record at `pos` from `from` to party `to`.
    pub(crate) fn hand_over(&self, pos: u64, from: u64, to: u32) -> bool {
        let w = pack(lap_of(from), READING, to, span_of(from));
        self.slot(self.idx(pos))
            .compare_exchange(from, w, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Releases the record at `pos` claimed with `word` (not necessarily by us: a window
    /// handed back by a recoverer).
    pub(crate) fn release_claimed(&self, me: u32, pos: u64, span: u32, word: u64) {
        self.release(me, pos, span, word, false);
    }
}

impl<'a, M: Mem> Reservation<'a, M> {
    /// Waits for the continuation slots to be free (released by the previous lap); `Err`
    /// (the record was aborted) when the deadline passes.
    pub fn prepare(&mut self, me: u32, block: Block) -> Result<(), Refused> {
        let ring = self.ring;
        let mut w = Waiter::new(block);
        for j in 1..self.span as u64 {
            if let Err(e) = ring.wait_free(me, ring.add(self.pos, j), &mut w) {
                self.abort_inner();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Writes one whole slot (the record must be one slot long): a fixed-size copy.
    #[inline]
    pub fn write_slot(&mut self, src: &[u8; SLOT_BYTES]) {
        assert_eq!(self.span, 1);
        // SAFETY: the reservation owns its one slot (WRITING, ours).
        unsafe { self.ring.mem.write_slot(self.ring.byte_of(self.pos), src) };
    }

    /// Writes `src` at byte `off` of the record.
    pub fn write(&mut self, off: usize, src: &[u8]) {
        assert!(off + src.len() <= self.span as usize * SLOT_BYTES, "write past the record");
        // SAFETY: the reservation owns these bytes: its first slot is WRITING (ours) and
        // `prepare` made the continuation slots ours.
        unsafe { self.ring.copy_in(self.ring.byte_of(self.pos) + off, src) };
    }

    /// Byte offset of the record in the data area.
    pub fn byte_offset(&self) -> usize {
        self.ring.byte_of(self.pos)
    }

    /// Publishes the record.
    pub fn commit(mut self) {
        let r = self.ring;
        self.done = true;
        let i = r.idx(self.pos);
        r.slot(i).swap(pack(r.lap(self.pos), READY, 0, self.span), Ordering::SeqCst);
        notify_after_sc(&r.header().ev_commit);
    }

    /// Publishes the record as `SKIP` (nothing is delivered).
    pub fn abort(mut self) {
        self.abort_inner();
    }

    fn abort_inner(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let r = self.ring;
        let h = r.header();
        // Counted as put (by `tail`) and never delivered.
        h.skipped.fetch_add(1, Ordering::Relaxed);
        h.unclaimed_skips.fetch_add(1, Ordering::AcqRel);
        r.slot(r.idx(self.pos)).store(pack(r.lap(self.pos), SKIP, 0, self.span), Ordering::Release);
        notify(&h.ev_commit);
        notify(&h.ev_join);
    }
}

impl<M: Mem> Drop for Reservation<'_, M> {
    fn drop(&mut self) {
        self.abort_inner();
    }
}

impl<M: Mem> std::fmt::Debug for Reservation<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation").field("pos", &self.pos).field("span", &self.span).finish()
    }
}

impl<'a, M: Mem> Claim<'a, M> {
    /// Copies bytes at `off` of the record into `dst`.
    pub fn read(&self, off: usize, dst: &mut [u8]) {
        assert!(off + dst.len() <= self.span as usize * SLOT_BYTES, "read past the record");
        // SAFETY: the claim owns the record (its first slot is READING(us)); it was
        // published whole by its producer (READY, acquired in `take`).
        unsafe { self.ring.copy_out(self.ring.byte_of(self.pos) + off, dst) };
    }

    /// A view of `len` bytes at `off` if they do not wrap (and the memory allows views).
    pub fn view(&self, off: usize, len: usize) -> Option<&[u8]> {
        assert!(off + len <= self.span as usize * SLOT_BYTES, "view past the record");
        let at = self.ring.byte_of(self.pos) + off;
        if at + len > self.ring.data_bytes() {
            return None;
        }
        // SAFETY: as for `read`; the view borrows the claim, which holds the record.
        unsafe { self.ring.mem.view(at, len) }
    }

    /// Byte offset of the record in the data area.
    pub fn byte_offset(&self) -> usize {
        self.ring.byte_of(self.pos)
    }

    /// Releases the record (also done on drop).
    pub fn release(self) {}
}

impl<M: Mem> Drop for Claim<'_, M> {
    #[inline]
    fn drop(&mut self) {
        if self.span == 1 && !self.discard {
            // The common case, inline: our own one-slot record.
            let r = self.ring;
            let next = pack(r.lap(r.add(self.pos, r.n)), EMPTY, 0, 0);
            let _old = r.slot(r.idx(self.pos)).swap(next, Ordering::SeqCst);
            debug_assert_eq!(_old, self.word);
            notify_after_sc(&r.header().ev_release);
            return;
        }
        if self.discard {
            crate::spill::drop_at(self.ring, self.me, self.pos);
        }
        // A SKIP record may have continuation slots its dead producer never prepared.
        self.ring.release(self.me, self.pos, self.span, self.word, !self.discard);
    }
}

impl<M: Mem> std::fmt::Debug for Claim<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("pos", &self.pos)
            .field("span", &self.span)
            .field("discard", &self.discard)
            .finish()
    }
}
