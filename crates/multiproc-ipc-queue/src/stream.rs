//! Streaming: the fallback for messages larger than half the ring when they cannot be
//! spilled (every spill entry taken, no memory for the spill file, or `max_spilled(0)`): they
//! pass through a *window* record in chunks, and their `put` returns only once a consumer has
//! taken most of the message.
//!
//! The producer takes an entry of the queue's stream table, puts a window record (a quarter
//! of the ring) whose first slot holds a descriptor (entry, generation, total length), and
//! commits it at once. The consumer that claims the record attaches to the entry and reads
//! the message through the window as the producer writes it: `written` and `read` in the
//! entry are a single-producer single-consumer byte ring over the window's slots. Records of
//! other producers keep flowing through the rest of the ring meanwhile, and arrive whole.
//!
//! The entry's state word:
//!
//! ```text
//!  63        32 31      24 23        14 13         4 3     0
//! +------------+----------+------------+------------+-------+
//! | generation |    0     |  consumer  |  producer  | phase |
//! +------------+----------+------------+------------+-------+
//!
//!   FREE(g) ──producer──► OFFERED(g,P) ──consumer attaches──► STREAMING(g,P,C)
//!      ▲                      │    │                                │   │
//!      │  producer gives up   │    │ deadline passed                │   │ deadline passed
//!      │  before committing,  │    ▼                                │   ▼
//!      │  P dead (anyone)     │  ABORTED(g) ◄───────────────────────┼───┘
//!      │                      │    │ the record's consumer          │
//!      └──────────────────────┴────┴────────────────────────────────┘
//!         every way back to FREE bumps the generation: FREE(g+1)
//! ```
//!
//! Two more phases: `DONE(g,P,C)` — the producer wrote every byte and will not touch the
//! window again (set by the producer, from `STREAMING`); `ORPHANED(g,P)` — the consumer died
//! while the producer still writes into the window.
//!
//! Back to `FREE(g+1)`: the consumer when it has read everything; the consumer when the
//! producer died (the partial message is dropped) or aborted; the producer when the consumer
//! died (the message was taken: it counts as lost); whoever steals the window record of a
//! dead consumer once its producer no longer writes. A party that finds the generation
//! changed under it knows the other side is gone. Stream entries of dead producers that never
//! committed are reclaimed by the next producer that needs an entry.
//!
//! The window's slots must never be released while its producer may still write into them:
//! a recoverer that steals the window record of a dead consumer while the producer is alive
//! and not `DONE` marks the entry `ORPHANED` and hands the record (the slot word's party) to
//! the producer, which releases it when it sees `ORPHANED`. If the producer dies first, the
//! record names a dead party again and the next recoverer releases it.

use crate::ring::entry::{
    self, first_of as prod_of, gen_of, pack, phase_of, second_of as cons_of, FREE,
};
use crate::ring::{
    lap_of, notify, party_of, state_of, Block, Claim, Mem, Refused, Ring, StreamEntry, Waiter,
    FLAG_STREAM, READING, SLOT_BYTES,
};
use multiproc_arena::sync::atomic::Ordering;

const OFFERED: u64 = 1;
const STREAMING: u64 = 2;
const ABORTED: u64 = 3;
const ORPHANED: u64 = 4;
const DONE: u64 = 5;

/// Bytes of the stream descriptor at the start of a window record.
pub const DESC_BYTES: usize = crate::ring::DESC_BYTES;

/// Span of a window record.
pub fn window_span<M: Mem>(ring: &Ring<M>) -> u32 {
    (ring.slots() / 4).max(2) as u32
}

/// Encodes a descriptor.
fn descriptor(entry: usize, gen: u32, total: u64) -> [u8; DESC_BYTES] {
    crate::ring::descriptor(FLAG_STREAM, entry, gen, total)
}

/// Decodes a descriptor: (entry, generation, total), if the header is one.
pub fn parse(hdr: &[u8; DESC_BYTES]) -> Option<(usize, u32, u64)> {
    crate::ring::parse_descriptor(FLAG_STREAM, hdr)
}

fn free_entry<M: Mem>(ring: &Ring<M>, e: usize, seen: u64) -> bool {
    let ent = &ring.mem.streams()[e];
    let ok = ent
        .state
        .compare_exchange(
            seen,
            pack(gen_of(seen).wrapping_add(1), FREE, 0, 0),
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_ok();
    if ok {
        notify(&ent.ev);
        notify(&ring.header().ev_release);
    }
    ok
}

/// Takes a free stream entry, reclaiming those of dead producers.
fn acquire_entry<M: Mem>(ring: &Ring<M>, me: u32, block: Block) -> Result<(usize, u32), Refused> {
    let mut w = Waiter::new(block);
    loop {
        if let Some(got) =
            entry::claim_free(ring.mem.streams().iter().map(|e| &e.state), OFFERED, me)
        {
            return Ok(got);
        }
        if ring.is_closed() {
            return Err(Refused::Closed);
        }
        if w.check_due() || !w.blocking() {
            for (e, ent) in ring.mem.streams().iter().enumerate() {
                let s = ent.state.load(Ordering::Acquire);
                let dead = match phase_of(s) {
                    OFFERED | ORPHANED => !ring.mem.alive(prod_of(s)),
                    STREAMING => !ring.mem.alive(prod_of(s)) && !ring.mem.alive(cons_of(s)),
                    DONE => !ring.mem.alive(cons_of(s)),
                    _ => false,
                };
                if dead {
                    free_entry(ring, e, s);
                }
            }
        }
        let h = ring.header();
        let before = h.ev_release.load(Ordering::Relaxed);
        w.pause(&h.ev_release, true, || {
            ring.mem.streams().iter().any(|s| phase_of(s.state.load(Ordering::Acquire)) == FREE)
                || h.ev_release.load(Ordering::Relaxed) & !1 != before & !1
        })?;
    }
}

/// Sends `data` as a stream. Returns once every byte is in the window (or the consumer that
/// took the message died: it is lost, as any message a dead consumer had taken).
pub fn send<M: Mem>(ring: &Ring<M>, me: u32, data: &[u8], block: Block) -> Result<(), Refused> {
    let mut tx = Sender::open(ring, me, data.len() as u64, block)?;
    tx.write(data)?;
    tx.finish()
}

/// The producer's end of one stream: [`open`](Sender::open) puts the window record,
/// [`write`](Sender::write) streams bytes through it, [`finish`](Sender::finish) ends it.
/// Dropped unfinished, it aborts the stream (the consumer drops what it got).
pub struct Sender<'a, M: Mem> {
    ring: &'a Ring<M>,
    me: u32,
    e: usize,
    gen: u32,
    pos: u64,
    span: u32,
    base: usize,
    wb: u64,
    off: u64,
    total: u64,
    w: Waiter,
    /// The consumer died holding the message: the rest is discarded.
    lost: bool,
    ended: bool,
}

impl<M: Mem> std::fmt::Debug for Sender<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("off", &self.off).field("total", &self.total).finish()
    }
}

impl<'a, M: Mem> Sender<'a, M> {
    /// Takes a stream entry and puts (commits) the window record of a `total`-byte message.
    pub fn open(ring: &'a Ring<M>, me: u32, total: u64, block: Block) -> Result<Self, Refused> {
        if !block.waits() {
            return Err(Refused::WouldBlock);
        }
        let (e, gen) = acquire_entry(ring, me, block)?;
        let ent = &ring.mem.streams()[e];
        let offered = pack(gen, OFFERED, me, 0);
        ent.total.store(total, Ordering::Relaxed);
        ent.written.store(0, Ordering::Relaxed);
        ent.read.store(0, Ordering::Relaxed);
        let span = window_span(ring);
        let mut res = match ring.reserve(me, span, block) {
            Ok(r) => r,
            Err(err) => {
                free_entry(ring, e, offered);
                return Err(err);
            }
        };
        if let Err(err) = res.prepare(me, block) {
            free_entry(ring, e, offered);
            return Err(err);
        }
        res.write(0, &descriptor(e, gen, total));
        let base = res.byte_offset() + SLOT_BYTES;
        let pos = res.pos;
        res.commit();
        Ok(Sender {
            ring,
            me,
            e,
            gen,
            pos,
            span,
            base,
            wb: (span as u64 - 1) * SLOT_BYTES as u64,
            off: 0,
            total,
            w: Waiter::new(block),
            lost: false,
            ended: false,
        })
    }

    fn entry(&self) -> &'a StreamEntry {
        &self.ring.mem.streams()[self.e]
    }

    /// Looks at the entry: `false` when the message is lost (the consumer died), after
    /// taking the window back if it was handed to us.
    fn still_wanted(&mut self, s: u64) -> bool {
        if gen_of(s) != self.gen {
            self.lost = true; // the consumer died holding the message; the window is gone
        } else if phase_of(s) == ORPHANED {
            take_back(self.ring, self.me, self.pos, self.span);
            free_entry(self.ring, self.e, s);
            self.lost = true;
        }
        !self.lost
    }

    /// Streams `data` (the next bytes of the message), waiting for the consumer as the
    /// deadline allows. A deadline that passes aborts the stream.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), Refused> {
        let ring = self.ring;
        let ent = self.entry();
        assert!(self.off + data.len() as u64 <= self.total, "stream longer than announced");
        while !data.is_empty() && !self.lost {
            let s = ent.state.load(Ordering::Acquire);
            if !self.still_wanted(s) {
                break;
            }
            let rd = ent.read.load(Ordering::Acquire);
            let room = self.wb - (self.off - rd);
            if room > 0 {
                let at = self.off % self.wb;
                let n = room.min(data.len() as u64).min(self.wb - at) as usize;
                let (chunk, rest) = data.split_at(n);
                // The window's record is ours to write until we mark the entry DONE or
                // release it: recoverers hand it back to us instead (see the module docs).
                // SAFETY: window bytes [at, at+n) are free: the consumer read everything
                // before `off - wb + n` (`read` acquired above); the record is ours.
                unsafe { ring.copy_in(self.base + at as usize, chunk) };
                data = rest;
                self.off += n as u64;
                ent.written.store(self.off, Ordering::Release);
                // Wake a sleeping consumer only for a good batch (and before we sleep).
                if self.off - rd >= self.wb / 2 || self.off == self.total {
                    notify(&ent.ev);
                }
                continue;
            }
            notify(&ent.ev);
            if phase_of(s) == STREAMING && self.w.check_due() && !ring.mem.alive(cons_of(s)) {
                // The consumer died: take the window back ourselves if nobody did yet.
                let word = ring.word_at(self.pos);
                if state_of(word) == READING
                    && party_of(word) == cons_of(s)
                    && ring.hand_over(self.pos, word, self.me)
                {
                    let o = pack(self.gen, ORPHANED, self.me, 0);
                    if ent.state.compare_exchange(s, o, Ordering::AcqRel, Ordering::Relaxed).is_ok()
                    {
                        notify(&ent.ev);
                    }
                }
                continue;
            }
            let waited = self.w.pause(&ent.ev, true, || {
                ent.read.load(Ordering::Acquire) != rd || ent.state.load(Ordering::Acquire) != s
            });
            if let Err(err) = waited {
                return if self.abort() { Err(err) } else { Ok(()) };
            }
        }
        Ok(())
    }

    /// Gives up: marks the stream ABORTED (the consumer drops what it got). Returns false if
    /// the message turned out to be lost already (so nothing was aborted).
    fn abort(&mut self) -> bool {
        self.ended = true;
        let ent = self.entry();
        loop {
            let s = ent.state.load(Ordering::Acquire);
            if !self.still_wanted(s) {
                return false;
            }
            let aborted = pack(self.gen, ABORTED, 0, 0);
            // Not yet attached: the record waits in the ring for a consumer that will only
            // drop it, so it stops counting as a message (`qsize`) now; that consumer takes
            // it off the count again (`recv`). Counted before the CAS so the count never dips
            // below zero.
            let unattached = phase_of(s) == OFFERED;
            let h = self.ring.header();
            if unattached {
                h.unclaimed_skips.fetch_add(1, Ordering::AcqRel);
            }
            if ent.state.compare_exchange(s, aborted, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                notify(&ent.ev);
                return true;
            }
            if unattached {
                h.unclaimed_skips.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Ends the stream once every announced byte was written (marks it DONE: the window is
    /// no longer ours to write).
    pub fn finish(mut self) -> Result<(), Refused> {
        self.ended = true;
        if self.lost {
            return Ok(());
        }
        assert_eq!(self.off, self.total, "stream shorter than announced");
        let ent = self.entry();
        loop {
            let s = ent.state.load(Ordering::Acquire);
            if !self.still_wanted(s) {
                return Ok(());
            }
            let done = pack(self.gen, DONE, prod_of(s), cons_of(s));
            if ent.state.compare_exchange(s, done, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                notify(&ent.ev);
                return Ok(());
            }
        }
    }

    /// Whether the message was lost (its consumer died); further writes are discarded.
    pub fn is_lost(&self) -> bool {
        self.lost
    }
}

impl<M: Mem> Drop for Sender<'_, M> {
    fn drop(&mut self) {
        if !self.ended && !self.lost {
            self.abort();
        }
    }
}

/// The window record at `pos` was handed to us (`ORPHANED`): wait for the hand-over (a
/// recoverer marks the entry first, then moves the claim), taking it over ourselves if the
/// recoverer died in between, and release it.
fn take_back<M: Mem>(ring: &Ring<M>, me: u32, pos: u64, span: u32) {
    let lap = ring.lap(pos);
    let mut w = Waiter::new(Block::Forever);
    loop {
        let word = ring.word_at(pos);
        if lap_of(word) != lap || state_of(word) != READING {
            return; // released already
        }
        let owner = party_of(word);
        if owner == me {
            ring.release_claimed(me, pos, span, word);
            return;
        }
        if w.check_due() && !ring.mem.alive(owner) {
            ring.hand_over(pos, word, me);
            continue;
        }
        let h = ring.header();
        let _ = w.pause(&h.ev_release, true, || ring.word_at(pos) != word);
    }
}

/// Why a streamed message was not received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// The producer died or gave up: the partial message is dropped.
    Producer,
    /// The message could not be buffered (allocation failed).
    NoMemory,
}

/// Receives the stream of the window record `claim` (descriptor `desc`) into `out`.
pub fn recv<M: Mem>(
    ring: &Ring<M>,
    me: u32,
    claim: &Claim<'_, M>,
    desc: (usize, u32, u64),
    out: &mut Vec<u8>,
) -> Result<(), Lost> {
    let (e, gen, total) = desc;
    let h = ring.header();
    let Some(ent) = ring.mem.streams().get(e) else {
        return Err(Lost::Producer);
    };
    let attached = loop {
        let s = ent.state.load(Ordering::Acquire);
        if gen_of(s) != gen {
            return Err(Lost::Producer);
        }
        match phase_of(s) {
            OFFERED => {
                let a = pack(gen, STREAMING, prod_of(s), me);
                if ent.state.compare_exchange(s, a, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                    notify(&ent.ev);
                    break a;
                }
            }
            phase => {
                if phase == ABORTED {
                    // Aborted before anyone attached: counted out of `qsize` by the producer.
                    h.unclaimed_skips.fetch_sub(1, Ordering::AcqRel);
                }
                free_entry(ring, e, s);
                return Err(Lost::Producer);
            }
        }
    };
    out.clear();
    if usize::try_from(total).ok().and_then(|t| out.try_reserve_exact(t).ok()).is_none() {
        free_entry(ring, e, attached);
        return Err(Lost::NoMemory);
    }
    let span = claim.span as u64;
    let wb = (span - 1) * SLOT_BYTES as u64;
    let base = claim.byte_offset() + SLOT_BYTES;
    let mut w = Waiter::new(Block::Forever);
    let _ = h;
    while (out.len() as u64) < total {
        let rd = out.len() as u64;
        let wr = ent.written.load(Ordering::Acquire);
        if wr > rd {
            let at = rd % wb;
            let n = (wr - rd).min(wb - at) as usize;
            out.resize(rd as usize + n, 0);
            // SAFETY: window bytes [at, at+n) hold data the producer published (`written`
            // acquired above) and will not touch until we advance `read`.
            unsafe { ring.copy_out(base + at as usize, &mut out[rd as usize..]) };
            let room_after = wb - (wr - (rd + n as u64));
            ent.read.store(rd + n as u64, Ordering::Release);
            // Wake a producer waiting for room only for a good batch (and before sleeping).
            if room_after >= wb / 2 || rd + n as u64 == total {
                notify(&ent.ev);
            }
            continue;
        }
        notify(&ent.ev);
        let s = ent.state.load(Ordering::Acquire);
        if gen_of(s) != gen {
            return Err(Lost::Producer);
        }
        let producer_gone =
            phase_of(s) == STREAMING && w.check_due() && !ring.mem.alive(prod_of(s));
        if phase_of(s) == ABORTED || producer_gone {
            free_entry(ring, e, s);
            return Err(Lost::Producer);
        }
        let _ = w.pause(&ent.ev, true, || {
            ent.written.load(Ordering::Acquire) != wr || ent.state.load(Ordering::Acquire) != s
        });
    }
    let s = ent.state.load(Ordering::Acquire);
    if gen_of(s) == gen {
        free_entry(ring, e, s);
    }
    Ok(())
}

/// `me` stole the record at `pos` (claim `word`, header `hdr`) from a dead consumer. If it is
/// a stream window whose producer is alive and still writing, mark the entry `ORPHANED`,
/// hand the record to the producer and return true; otherwise free the entry (if the stream
/// is still active) and return false: the caller releases the window.
pub(crate) fn on_stolen<M: Mem>(
    ring: &Ring<M>,
    _me: u32,
    pos: u64,
    _span: u32,
    word: u64,
    hdr: &[u8; DESC_BYTES],
) -> bool {
    let Some((e, gen, _)) = parse(hdr) else { return false };
    let Some(ent) = ring.mem.streams().get(e) else { return false };
    loop {
        let s = ent.state.load(Ordering::Acquire);
        if gen_of(s) != gen || phase_of(s) == FREE {
            return false;
        }
        let writing = matches!(phase_of(s), OFFERED | STREAMING | ORPHANED);
        if writing && ring.mem.alive(prod_of(s)) {
            let o = pack(gen, ORPHANED, prod_of(s), 0);
            if s != o
                && ent.state.compare_exchange(s, o, Ordering::AcqRel, Ordering::Relaxed).is_err()
            {
                continue;
            }
            let handed = ring.hand_over(pos, word, prod_of(s));
            notify(&ent.ev);
            return handed;
        }
        if free_entry(ring, e, s) {
            return false;
        }
    }
}

/// Whether `party` appears in an active stream entry (for party-table reuse).
#[cfg_attr(multiproc_loom, allow(dead_code))]
pub(crate) fn references<M: Mem>(ring: &Ring<M>, party: u32) -> bool {
    ring.mem.streams().iter().any(|ent| {
        let s = ent.state.load(Ordering::Acquire);
        match phase_of(s) {
            OFFERED | ORPHANED => prod_of(s) == party,
            STREAMING | DONE => prod_of(s) == party || cons_of(s) == party,
            _ => false,
        }
    })
}
