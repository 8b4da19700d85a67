//! The state word of a spill or stream table entry (see [`spill`](crate::spill) and
//! [`stream`](crate::stream)):
//!
//! ```text
//!  63        32 31      24 23       14 13       4 3     0
//! +------------+----------+-----------+----------+-------+
//! | generation |    0     |  second   |  first   | phase |
//! +------------+----------+-----------+----------+-------+
//! ```
//!
//! `first` and `second` are 10-bit party indices (a stream's producer and consumer; a spill
//! entry's holder, with the low bit of `second` as its take-over tick). Phase 0 is free in
//! both tables.

use multiproc_arena::sync::atomic::{AtomicU64, Ordering};

/// The phase of a free entry.
pub(crate) const FREE: u64 = 0;

/// Packs an entry word.
#[inline]
pub(crate) fn pack(gen: u32, phase: u64, first: u32, second: u32) -> u64 {
    ((gen as u64) << 32) | ((second as u64 & 0x3ff) << 14) | ((first as u64 & 0x3ff) << 4) | phase
}

/// The generation of an entry word.
#[inline]
pub(crate) fn gen_of(s: u64) -> u32 {
    (s >> 32) as u32
}

/// The phase of an entry word.
#[inline]
pub(crate) fn phase_of(s: u64) -> u64 {
    s & 0xf
}

/// The first party of an entry word.
#[inline]
pub(crate) fn first_of(s: u64) -> u32 {
    ((s >> 4) & 0x3ff) as u32
}

/// The second party of an entry word.
#[inline]
pub(crate) fn second_of(s: u64) -> u32 {
    ((s >> 14) & 0x3ff) as u32
}

/// Takes the first free entry among `words`, moving it to `phase` held by `me` (one CAS, the
/// generation kept): its index and generation, or `None` when none is free.
pub(crate) fn claim_free<'a>(
    words: impl Iterator<Item = &'a AtomicU64>,
    phase: u64,
    me: u32,
) -> Option<(usize, u32)> {
    for (e, word) in words.enumerate() {
        let s = word.load(Ordering::Acquire);
        if phase_of(s) == FREE
            && word
                .compare_exchange(
                    s,
                    pack(gen_of(s), phase, me, 0),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some((e, gen_of(s)));
        }
    }
    None
}
