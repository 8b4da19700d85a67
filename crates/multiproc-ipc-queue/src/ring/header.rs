//! The shared structures of a queue (the header, the party and stream tables) and the
//! [`Mem`] trait through which the ring reaches them.

use super::SLOT_BYTES;
use multiproc_arena::sync::atomic::{AtomicU32, AtomicU64};

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
