//! The words of the ring: slot states, the slot word's fields and the `head`/`tail` words
//! (positions and record counts). See the [`ring`](super) module for the protocol.

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

/// Bytes of a descriptor: the start of a record that stands for a message kept elsewhere (a
/// spilled message's entry, or a stream's window).
pub const DESC_BYTES: usize = 24;

/// Encodes a descriptor: the record header's `flags` carry `flag` and the entry (from bit 8),
/// then the entry's generation (bytes 8..12) and the message's length (bytes 16..24).
pub fn descriptor(flag: u32, entry: usize, gen: u32, total: u64) -> [u8; DESC_BYTES] {
    let mut d = [0u8; DESC_BYTES];
    d[4..8].copy_from_slice(&(flag | (entry as u32) << 8).to_le_bytes());
    d[8..12].copy_from_slice(&gen.to_le_bytes());
    d[16..24].copy_from_slice(&total.to_le_bytes());
    d
}

/// Decodes a descriptor whose flags carry `flag`: (entry, generation, length).
pub fn parse_descriptor(flag: u32, hdr: &[u8]) -> Option<(usize, u32, u64)> {
    let flags = u32::from_le_bytes(hdr.get(4..8)?.try_into().ok()?);
    if flags & flag == 0 {
        return None;
    }
    let gen = u32::from_le_bytes(hdr.get(8..12)?.try_into().ok()?);
    let total = u64::from_le_bytes(hdr.get(16..24)?.try_into().ok()?);
    Some(((flags >> 8) as usize, gen, total))
}
