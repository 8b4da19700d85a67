//! Streaming: messages larger than half the ring pass through a *window* record in chunks.
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
//! Back to `FREE(g+1)`: the consumer when it has read everything; the consumer when the
//! producer died (the partial message is dropped) or aborted; the producer when the consumer
//! died (the message was taken: it counts as lost); whoever steals the window record of a
//! dead consumer. A party that finds the generation changed under it knows the other side is
//! gone. Stream entries of dead producers that never committed are reclaimed by the next
//! producer that needs an entry.

use crate::ring::{notify, Block, Claim, Mem, Refused, Ring, Waiter, FLAG_STREAM, SLOT_BYTES};
use multiproc_arena::sync::atomic::Ordering;

const FREE: u64 = 0;
const OFFERED: u64 = 1;
const STREAMING: u64 = 2;
const ABORTED: u64 = 3;

/// Bytes of the stream descriptor at the start of a window record.
pub const DESC_BYTES: usize = 24;

#[inline]
fn pack(gen: u32, phase: u64, prod: u32, cons: u32) -> u64 {
    ((gen as u64) << 32) | ((cons as u64 & 0x3ff) << 14) | ((prod as u64 & 0x3ff) << 4) | phase
}
#[inline]
fn gen_of(s: u64) -> u32 {
    (s >> 32) as u32
}
#[inline]
fn phase_of(s: u64) -> u64 {
    s & 0xf
}
#[inline]
fn prod_of(s: u64) -> u32 {
    ((s >> 4) & 0x3ff) as u32
}
#[inline]
fn cons_of(s: u64) -> u32 {
    ((s >> 14) & 0x3ff) as u32
}

/// Span of a window record.
pub fn window_span<M: Mem>(ring: &Ring<M>) -> u32 {
    (ring.slots() / 4) as u32
}

/// Encodes a descriptor.
fn descriptor(entry: usize, gen: u32, total: u64) -> [u8; DESC_BYTES] {
    let mut d = [0u8; DESC_BYTES];
    d[4..8].copy_from_slice(&(FLAG_STREAM | (entry as u32) << 8).to_le_bytes());
    d[8..12].copy_from_slice(&gen.to_le_bytes());
    d[16..24].copy_from_slice(&total.to_le_bytes());
    d
}

/// Decodes a descriptor: (entry, generation, total), if the header is one.
pub fn parse(hdr: &[u8; DESC_BYTES]) -> Option<(usize, u32, u64)> {
    let flags = u32::from_le_bytes(hdr[4..8].try_into().ok()?);
    if flags & FLAG_STREAM == 0 {
        return None;
    }
    let gen = u32::from_le_bytes(hdr[8..12].try_into().ok()?);
    let total = u64::from_le_bytes(hdr[16..24].try_into().ok()?);
    Some(((flags >> 8) as usize, gen, total))
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
        for (e, ent) in ring.mem.streams().iter().enumerate() {
            let s = ent.state.load(Ordering::Acquire);
            if phase_of(s) == FREE
                && ent
                    .state
                    .compare_exchange(
                        s,
                        pack(gen_of(s), OFFERED, me, 0),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                return Ok((e, gen_of(s)));
            }
        }
        if ring.is_closed() {
            return Err(Refused::Closed);
        }
        if w.check_due() || !w.blocking() {
            for (e, ent) in ring.mem.streams().iter().enumerate() {
                let s = ent.state.load(Ordering::Acquire);
                let dead = match phase_of(s) {
                    OFFERED => !ring.mem.alive(prod_of(s)),
                    STREAMING => !ring.mem.alive(prod_of(s)) && !ring.mem.alive(cons_of(s)),
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
    if block == Block::No {
        return Err(Refused::WouldBlock);
    }
    let total = data.len() as u64;
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
    res.commit();

    let wb = (span as u64 - 1) * SLOT_BYTES as u64;
    let mut off = 0u64;
    let mut w = Waiter::new(block);
    while off < total {
        let rd = ent.read.load(Ordering::Acquire);
        let room = wb - (off - rd);
        if room > 0 {
            let at = off % wb;
            let n = room.min(total - off).min(wb - at);
            // SAFETY: window bytes [at, at+n) are free: the consumer has read everything
            // before `off - wb + n` (`read` acquired above), and nobody else writes the
            // window, which our committed record owns until its consumer releases it.
            unsafe {
                ring.copy_in(base + at as usize, &data[off as usize..(off + n) as usize]);
            }
            off += n;
            ent.written.store(off, Ordering::Release);
            notify(&ent.ev);
            continue;
        }
        let s = ent.state.load(Ordering::Acquire);
        if gen_of(s) != gen {
            return Ok(()); // the consumer died holding the message
        }
        if phase_of(s) == STREAMING && w.check_due() && !ring.mem.alive(cons_of(s)) {
            free_entry(ring, e, s);
            return Ok(());
        }
        let waited = w.pause(&ent.ev, true, || {
            ent.read.load(Ordering::Acquire) != rd || ent.state.load(Ordering::Acquire) != s
        });
        if let Err(err) = waited {
            // Give up: the consumer (now or later) drops what it got.
            loop {
                let s = ent.state.load(Ordering::Acquire);
                if gen_of(s) != gen {
                    return Ok(());
                }
                if ent
                    .state
                    .compare_exchange(
                        s,
                        pack(gen, ABORTED, 0, 0),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    notify(&ent.ev);
                    return Err(err);
                }
            }
        }
    }
    Ok(())
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
            _ => {
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
            ent.read.store(rd + n as u64, Ordering::Release);
            notify(&ent.ev);
            continue;
        }
        let s = ent.state.load(Ordering::Acquire);
        if gen_of(s) != gen {
            return Err(Lost::Producer);
        }
        if phase_of(s) == ABORTED || (w.check_due() && !ring.mem.alive(prod_of(s))) {
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

/// A dead consumer's record was stolen by `me`: if it was a stream window, free its entry so
/// that its producer stops waiting (the message counts as lost).
pub(crate) fn recovered<M: Mem>(ring: &Ring<M>, _me: u32, hdr: &[u8; DESC_BYTES]) {
    let Some((e, gen, _)) = parse(hdr) else { return };
    let Some(ent) = ring.mem.streams().get(e) else { return };
    let s = ent.state.load(Ordering::Acquire);
    if gen_of(s) == gen && phase_of(s) != FREE {
        free_entry(ring, e, s);
    }
}

/// Whether `party` appears in an active stream entry (for party-table reuse).
#[cfg_attr(multiproc_loom, allow(dead_code))]
pub(crate) fn references<M: Mem>(ring: &Ring<M>, party: u32) -> bool {
    ring.mem.streams().iter().any(|ent| {
        let s = ent.state.load(Ordering::Acquire);
        match phase_of(s) {
            OFFERED => prod_of(s) == party,
            STREAMING => prod_of(s) == party || cons_of(s) == party,
            _ => false,
        }
    })
}
