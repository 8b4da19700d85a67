//! The arena's allocator algorithm, independent of where its memory lives.
//!
//! Power-of-two size classes from 16 bytes up; each class has a lock-free free list (a Treiber
//! stack whose head word carries a 32-bit tag against ABA), and fresh blocks come from a bump
//! pointer. Blocks of a class are aligned to their size up to 4096 bytes. `free` takes the same
//! size and alignment as `alloc` (like `std::alloc::dealloc`), so blocks carry no header.
//!
//! A process killed at any instant leaves the structure consistent: every step that publishes
//! anything is one CAS; a process that dies between its CAS and using the block leaks that block,
//! never corrupts a list. The same code runs over mapped shared memory and, under
//! `--cfg multiproc_loom`, over a heap-backed word array (`tests/loom.rs`).

use crate::error::{Error, ErrorKind, Result};
use crate::sync::atomic::{AtomicU64, Ordering};

/// Smallest block: 16 bytes (one granule).
pub(crate) const GRANULE: u64 = 16;
/// Size classes: class `k` holds blocks of `16 << k` bytes.
pub(crate) const NUM_CLASSES: usize = 36;
/// Largest alignment served.
pub(crate) const MAX_ALIGN: usize = 4096;
/// Where the heap starts, relative to the arena base (the header lives below).
pub(crate) const HEAP_START: u64 = 4096;

/// Shared state of an arena, at its base.
///
/// `heads[k]`: `tag << 32 | granule index` of the first free block of class `k` (0 = empty;
/// granule 0 is inside the header, never a block). Each free block's first word holds the
/// granule index of the next. `bump`: the offset of the first never-allocated byte.
#[repr(C)]
pub(crate) struct ArenaHeader {
    pub(crate) magic: u64,
    /// End of the heap (offset from the base).
    pub(crate) limit: u64,
    pub(crate) bump: AtomicU64,
    /// Bytes held in live blocks (statistics only).
    pub(crate) used: AtomicU64,
    pub(crate) heads: [AtomicU64; NUM_CLASSES],
}

pub(crate) const ARENA_MAGIC: u64 = u64::from_le_bytes(*b"MPARENA1");

#[cfg(not(multiproc_loom))]
const _: () = assert!(std::mem::size_of::<ArenaHeader>() as u64 <= HEAP_START);
crate::assert_layout!(
    ArenaHeader { magic: 0, limit: 8, bump: 16, used: 24, heads: 32 },
    size 32 + 8 * NUM_CLASSES,
    align u64
);

/// Where the allocator's words live.
pub(crate) trait Memory {
    /// The header at the base.
    fn header(&self) -> &ArenaHeader;
    /// The first word of the block at byte offset `off` (a multiple of [`GRANULE`]).
    fn link(&self, off: u64) -> &AtomicU64;
    /// Makes sure the memory of `[start, end)` exists (reserves its pages), before the bump
    /// pointer hands that range out: a block is never handed out that a first touch would
    /// find missing (a SIGBUS when `/dev/shm` is full). Heap-backed memory always exists.
    fn reserve(&self, _start: u64, _end: u64) -> Result<()> {
        Ok(())
    }
}

/// The class serving `size` bytes aligned to `align`, and its block size.
pub(crate) fn class_of(size: usize, align: usize) -> Result<(usize, u64)> {
    if !align.is_power_of_two() || align > MAX_ALIGN {
        return Err(Error::new(ErrorKind::InvalidLayout, format!("alignment {align}")));
    }
    let need = (size.max(align).max(GRANULE as usize) as u64)
        .checked_next_power_of_two()
        .ok_or_else(|| Error::new(ErrorKind::InvalidLayout, format!("size {size}")))?;
    let class = (need.trailing_zeros() - GRANULE.trailing_zeros()) as usize;
    if class >= NUM_CLASSES {
        return Err(Error::new(ErrorKind::InvalidLayout, format!("size {size}")));
    }
    Ok((class, need))
}

pub(crate) fn init_header(h: &ArenaHeader, limit: u64) -> ArenaHeaderInit {
    h.bump.store(HEAP_START, Ordering::Relaxed);
    h.used.store(0, Ordering::Relaxed);
    for head in &h.heads {
        head.store(0, Ordering::Relaxed);
    }
    ArenaHeaderInit { limit }
}

/// The plain fields to write after [`init_header`] (done by the owner of the raw memory).
pub(crate) struct ArenaHeaderInit {
    pub(crate) limit: u64,
}

/// Allocates a block for `size` bytes aligned to `align`; returns its byte offset.
pub(crate) fn alloc<M: Memory>(m: &M, size: usize, align: usize) -> Result<u64> {
    let (class, block) = class_of(size, align)?;
    let h = m.header();
    let off = match pop(m, class) {
        Some(off) => off,
        None => bump(m, block, true)?,
    };
    h.used.fetch_add(block, Ordering::Relaxed);
    Ok(off)
}

/// Like [`alloc`], but always a block never handed out before (from the bump pointer, never a
/// free list), and without reserving its pages: the caller reserves what it touches. Its
/// bytes are zero as long as nothing writes outside the blocks it was given (memory past the
/// bump pointer has never been written: a fresh file's pages, allocated on first touch).
#[cfg_attr(multiproc_loom, allow(dead_code))]
pub(crate) fn alloc_fresh<M: Memory>(m: &M, size: usize, align: usize) -> Result<u64> {
    let (_, block) = class_of(size, align)?;
    let off = bump(m, block, false)?;
    m.header().used.fetch_add(block, Ordering::Relaxed);
    Ok(off)
}

/// Returns a block obtained from [`alloc`] with the same `size` and `align`.
pub(crate) fn free<M: Memory>(m: &M, off: u64, size: usize, align: usize) {
    let (class, block) = class_of(size, align).expect("free with a layout alloc accepted");
    let h = m.header();
    h.used.fetch_sub(block, Ordering::Relaxed);
    push(m, class, off);
}

fn bump<M: Memory>(m: &M, block: u64, reserve: bool) -> Result<u64> {
    let h = m.header();
    let align = block.min(MAX_ALIGN as u64);
    let limit = h.limit;
    let mut cur = h.bump.load(Ordering::Relaxed);
    loop {
        let start = cur.next_multiple_of(align);
        let end = start.checked_add(block).filter(|&e| e <= limit).ok_or_else(|| {
            Error::new(
                ErrorKind::ArenaFull,
                format!("no room for a {block}-byte block ({} of {limit} bytes bumped)", cur),
            )
        })?;
        // Before the range is ours: a failed reservation leaves the bump pointer as it was.
        if reserve {
            m.reserve(start, end)?;
        }
        match h.bump.compare_exchange_weak(cur, end, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return Ok(start),
            Err(seen) => cur = seen,
        }
    }
}

const TAG_ONE: u64 = 1 << 32;

fn pop<M: Memory>(m: &M, class: usize) -> Option<u64> {
    let head = &m.header().heads[class];
    let mut cur = head.load(Ordering::Acquire);
    loop {
        let granule = cur & 0xffff_ffff;
        if granule == 0 {
            return None;
        }
        let off = granule * GRANULE;
        // May read a block another process just popped and is writing; the tag makes the
        // CAS below fail in that case, so the value read is then discarded.
        let next = m.link(off).load(Ordering::Acquire) & 0xffff_ffff;
        let new = (cur & !0xffff_ffff).wrapping_add(TAG_ONE) | next;
        match head.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Some(off),
            Err(seen) => cur = seen,
        }
    }
}

fn push<M: Memory>(m: &M, class: usize, off: u64) {
    let head = &m.header().heads[class];
    let granule = off / GRANULE;
    let mut cur = head.load(Ordering::Relaxed);
    loop {
        m.link(off).store(cur & 0xffff_ffff, Ordering::Relaxed);
        let new = (cur & !0xffff_ffff).wrapping_add(TAG_ONE) | granule;
        match head.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return,
            Err(seen) => cur = seen,
        }
    }
}
