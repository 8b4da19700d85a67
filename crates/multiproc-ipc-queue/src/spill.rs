//! Spilling: a message too large for the ring waits in the queue's *spill file* instead, and
//! only a one-slot descriptor goes through the ring. So `put` returns without a consumer, as
//! for any message that fits (no put-then-join deadlock).
//!
//! The spill file is a memfd created with the queue and held by every handle (inherited by
//! fork, passed with the handle to other processes): the kernel frees it with the last
//! handle, so nothing can leak into `/dev/shm`. Entry `e` of the queue's spill table owns the
//! file range starting at [`region`]`(e)` (up to [`MAX_SPILL`] bytes, sparse); its pages are
//! given back (hole punched) as soon as the message is consumed or dropped. The file starts
//! with [`FILE_MAGIC`] and a random identity the queue's header also holds, so a received
//! handle whose descriptor is not its queue's spill file is refused.
//!
//! The entry's state word and its life:
//!
//! ```text
//!  63        32 31    15  14   13     4 3     0
//! +------------+--------+------+--------+-------+
//! | generation |   0    | tick | party  | phase |
//! +------------+--------+------+--------+-------+
//!
//!  FREE(g) ──producer P──► FILLING(g,P) ──P publishes (pos)──► QUEUED(g) ──┐
//!     ▲                        │ P gives up (itself) or                     │ the record's consumer
//!     │                        │ P dead (anyone)                            │ (after reading), its
//!     │                        ▼                                            ▼ stealer, or anyone who
//!     └──── punch, bump g ── RECLAIM(g,R) ◄─────────────────────────────────┘ sees the record gone
//!                              R dead: anyone takes it over (RECLAIM(g,me))
//! ```
//!
//! The producer writes the message into the region (`len`, the bytes it may have written, is
//! raised before each write), claims a one-slot record, writes the descriptor (entry,
//! generation, length) into it, stores the record's position in `pos` and moves the entry
//! to `QUEUED` (release) *before* committing the record. From then on the entry belongs to
//! that record, and is freed by whoever ends it:
//!
//! - its consumer, once it has read the bytes (a consumer killed while holding it loses the
//!   message, as for any message it had taken: the ring's recovery steals the record and
//!   frees the entry through `on_stolen`);
//! - the consumer that discards the record as `SKIP` (the producer died between `QUEUED` and
//!   the commit), which frees every `QUEUED` entry whose `pos` is that record (`drop_at`);
//! - anyone scanning the table ([`reclaim_dead`], run by every producer before it takes an
//!   entry, and by `Queue::reclaim_spilled`) who sees that the record at `pos` was discarded
//!   or released, or that its owner died.
//!
//! Entries in `FILLING` or `RECLAIM` whose party died are taken over by the same scan (and
//! by a process that reuses the dead party's index). So the memory of a killed producer or
//! consumer is given back by the next large `put`, at the latest when the queue's last
//! handle goes (the kernel frees the file).
//!
//! Only a party that moved the entry to `RECLAIM(g, itself)` (or the producer in `FILLING`)
//! punches the region, so live data is never punched; the generation makes every CAS on the
//! word specific to one message.

use crate::ring::entry::{self, first_of as party_of, gen_of, phase_of, FREE};
use crate::ring::{
    lap_of, party_of as slot_party, state_of, Mem, Ring, DISCARDING, FLAG_SPILL, READING, SKIP,
    WRITING,
};
use multiproc_arena::sync::atomic::{AtomicU64, Ordering};

/// log2 of the bytes each spill entry may hold.
pub const REGION_BITS: u32 = 36;
/// Largest message that can be spilled (64 GiB); larger ones are streamed.
pub const MAX_SPILL: u64 = 1 << REGION_BITS;
/// Bytes of a spill descriptor (at the start of its one-slot record).
pub const DESC_BYTES: usize = crate::ring::DESC_BYTES;

const FILLING: u64 = 1;
const QUEUED: u64 = 2;
const RECLAIM: u64 = 3;
/// Flipped by every take-over (see `take_over`).
const TICK: u64 = 1 << 14;

/// An entry of the spill table.
#[repr(C)]
pub struct SpillEntry {
    /// `gen << 32 | party << 4 | phase`.
    pub state: AtomicU64,
    /// Position of the descriptor record (valid while `QUEUED`).
    pub pos: AtomicU64,
    /// Bytes of the region that may hold data (to give back).
    pub len: AtomicU64,
    _pad: AtomicU64,
}

impl SpillEntry {
    /// A free entry.
    pub fn new() -> Self {
        SpillEntry {
            state: AtomicU64::new(0),
            pos: AtomicU64::new(0),
            len: AtomicU64::new(0),
            _pad: AtomicU64::new(0),
        }
    }
}

impl Default for SpillEntry {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for SpillEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillEntry").finish_non_exhaustive()
    }
}

/// An entry word: `gen << 32 | party << 4 | phase` (and the tick, bit 14).
#[inline]
fn pack(gen: u32, phase: u64, party: u32) -> u64 {
    entry::pack(gen, phase, party, 0)
}

/// File offset of entry `e`'s region (the file's first region holds its identity header).
#[inline]
pub fn region(e: usize) -> u64 {
    (e as u64 + 1) << REGION_BITS
}

/// Magic at the start of a spill file, followed by the queue's `spill_id`.
pub const FILE_MAGIC: u64 = u64::from_le_bytes(*b"MPQSPILL");

/// Encodes a descriptor (the record header's `flags` carry [`FLAG_SPILL`] and the entry).
pub fn descriptor(entry: usize, gen: u32, total: u64) -> [u8; DESC_BYTES] {
    crate::ring::descriptor(FLAG_SPILL, entry, gen, total)
}

/// Decodes a descriptor: (entry, generation, total), if the header is one.
pub fn parse(hdr: &[u8]) -> Option<(usize, u32, u64)> {
    crate::ring::parse_descriptor(FLAG_SPILL, hdr)
}

/// Takes a free entry for a message (`FILLING(g, me)`), first reclaiming entries whose
/// holder is gone (so the memory of a killed party is given back by the next large put).
/// `None`: every entry holds a message.
pub fn acquire<M: Mem>(ring: &Ring<M>, me: u32) -> Option<(usize, u32)> {
    reclaim_dead(ring, me);
    let (e, gen) = entry::claim_free(ring.mem.spills().iter().map(|e| &e.state), FILLING, me)?;
    ring.mem.spills()[e].len.store(0, Ordering::Relaxed);
    Some((e, gen))
}

/// The producer is about to write bytes up to `end` of its region.
#[inline]
pub fn will_write<M: Mem>(ring: &Ring<M>, e: usize, end: u64) {
    let ent = &ring.mem.spills()[e];
    if ent.len.load(Ordering::Relaxed) < end {
        ent.len.store(end, Ordering::Relaxed);
    }
}

/// The producer of entry `e` (in `FILLING`) is about to write a `size`-byte message:
/// records it as the bytes the entry may hold, then checks that the bytes held by every
/// entry stay within `budget`. `false`: over budget (the caller gives the entry back).
pub fn charge<M: Mem>(ring: &Ring<M>, e: usize, size: u64, budget: u64) -> bool {
    let ent = &ring.mem.spills()[e];
    ent.len.fetch_max(size, Ordering::SeqCst);
    let mut total: u64 = 0;
    for ent in ring.mem.spills() {
        if phase_of(ent.state.load(Ordering::SeqCst)) != FREE {
            total = total.saturating_add(ent.len.load(Ordering::SeqCst));
        }
    }
    total <= budget
}

/// The producer hands its filled entry to the record at `pos` (before committing it).
pub fn publish<M: Mem>(ring: &Ring<M>, me: u32, e: usize, gen: u32, pos: u64) -> bool {
    let ent = &ring.mem.spills()[e];
    ent.pos.store(pos, Ordering::Relaxed);
    ent.state
        .compare_exchange(
            pack(gen, FILLING, me),
            pack(gen, QUEUED, 0),
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_ok()
}

/// The producer gives its entry up (timeout, close, error): gives the pages back, frees it.
pub fn abandon<M: Mem>(ring: &Ring<M>, me: u32, e: usize, gen: u32) {
    take_over(ring, me, e, pack(gen, FILLING, me));
}

/// Whether entry `e` holds the queued message `gen`.
pub fn is_queued<M: Mem>(ring: &Ring<M>, e: usize, gen: u32) -> bool {
    ring.mem
        .spills()
        .get(e)
        .is_some_and(|ent| ent.state.load(Ordering::Acquire) == pack(gen, QUEUED, 0))
}

/// The consumer of the queued message `gen` in entry `e` is done with it: free the entry.
pub fn consumed<M: Mem>(ring: &Ring<M>, me: u32, e: usize, gen: u32) {
    if e < ring.mem.spills().len() {
        take_over(ring, me, e, pack(gen, QUEUED, 0));
    }
}

/// Moves entry `e` from `seen` to `RECLAIM(me)`, gives its pages back and frees it. Returns
/// false if the word was no longer `seen`.
fn take_over<M: Mem>(ring: &Ring<M>, me: u32, e: usize, seen: u64) -> bool {
    let ent = &ring.mem.spills()[e];
    let gen = gen_of(seen);
    // Every take-over changes the word (the tick flips), even from `RECLAIM(me)`: a process
    // that reused a dead party's index adopts its entries while another party may be taking
    // them over from the dead one; with equal words both CASes would succeed.
    let mine = pack(gen, RECLAIM, me) | ((seen & TICK) ^ TICK);
    if ent.state.compare_exchange(seen, mine, Ordering::AcqRel, Ordering::Relaxed).is_err() {
        return false;
    }
    // The region is ours alone now: nobody reads or writes it until the entry is FREE.
    ring.mem.spill_discard(e, ent.len.load(Ordering::Relaxed));
    ent.len.store(0, Ordering::Relaxed);
    ent.state.store(pack(gen.wrapping_add(1), FREE, 0), Ordering::Release);
    true
}

/// `me` stole a committed record (descriptor `hdr`) from a dead consumer: free its entry.
pub(crate) fn on_stolen<M: Mem>(ring: &Ring<M>, me: u32, hdr: &[u8]) {
    let Some((e, gen, _)) = parse(hdr) else { return };
    let Some(ent) = ring.mem.spills().get(e) else { return };
    let s = ent.state.load(Ordering::Acquire);
    if gen_of(s) != gen {
        return;
    }
    match phase_of(s) {
        QUEUED => {
            take_over(ring, me, e, s);
        }
        RECLAIM if party_of(s) != me && !ring.mem.alive(party_of(s)) => {
            take_over(ring, me, e, s);
        }
        _ => {}
    }
}

/// A `SKIP` record at `pos` is being discarded: free any entry queued for it (its producer
/// died between publishing the entry and committing the record).
pub(crate) fn drop_at<M: Mem>(ring: &Ring<M>, me: u32, pos: u64) {
    for (e, ent) in ring.mem.spills().iter().enumerate() {
        let s = ent.state.load(Ordering::Acquire);
        if phase_of(s) == QUEUED
            && ent.pos.load(Ordering::Relaxed) == pos
            && ent.state.load(Ordering::Acquire) == s
        {
            take_over(ring, me, e, s);
        }
    }
}

/// Frees the entries whose holder is gone: a dead producer or reclaimer, a descriptor record
/// that was discarded or released; recovers records of dead parties that hold an entry.
pub fn reclaim_dead<M: Mem>(ring: &Ring<M>, me: u32) {
    for (e, ent) in ring.mem.spills().iter().enumerate() {
        let s = ent.state.load(Ordering::Acquire);
        match phase_of(s) {
            FILLING | RECLAIM if party_of(s) != me && !ring.mem.alive(party_of(s)) => {
                take_over(ring, me, e, s);
            }
            QUEUED => {
                let pos = ent.pos.load(Ordering::Relaxed);
                if ent.state.load(Ordering::Acquire) != s {
                    continue;
                }
                let w = ring.word_at(pos);
                let d = ring.lap_diff(lap_of(w), ring.lap(pos));
                if d > 0 || (d == 0 && matches!(state_of(w), SKIP | DISCARDING)) {
                    // The record was released or is being dropped: nobody will read it.
                    take_over(ring, me, e, s);
                } else if d == 0 && matches!(state_of(w), WRITING | READING) && slot_party(w) != me
                {
                    // Its producer or consumer may be dead: recover the record (a stolen
                    // record frees the entry; a dead producer's becomes SKIP).
                    ring.check_stuck(me, ring.idx(pos), w);
                }
            }
            _ => {}
        }
    }
}

/// `me` just took over the party index of a dead process: free the entries that process
/// held (they name the index, which now looks alive to everyone else).
#[cfg_attr(multiproc_loom, allow(dead_code))]
pub(crate) fn adopt_orphans<M: Mem>(ring: &Ring<M>, me: u32) {
    for (e, ent) in ring.mem.spills().iter().enumerate() {
        let s = ent.state.load(Ordering::Acquire);
        if matches!(phase_of(s), FILLING | RECLAIM) && party_of(s) == me {
            take_over(ring, me, e, s);
        }
    }
}

/// Bytes of messages that were spilled and not yet consumed or dropped, as the table says
/// (statistics and tests).
pub fn held<M: Mem>(ring: &Ring<M>) -> (usize, u64) {
    let mut n = 0;
    let mut bytes = 0;
    for ent in ring.mem.spills() {
        if phase_of(ent.state.load(Ordering::Acquire)) != FREE {
            n += 1;
            bytes += ent.len.load(Ordering::Relaxed);
        }
    }
    (n, bytes)
}
