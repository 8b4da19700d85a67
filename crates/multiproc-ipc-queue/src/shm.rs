//! The real memory of a queue: a control block (header, party table, stream table, spill
//! table, slot words) and a data block in an [`Arena`], the spill file (a memfd), and the
//! party table's registration.

use crate::error::{Error, ErrorKind};
use crate::ring::{
    party_of, state_of, Header, Mem, Party, Ring, StreamEntry, DISCARDING, MAGIC, MAX_LOG_SLOTS,
    MAX_PARTIES, MIN_LOG_SLOTS, PARTY_READY, READING, SLOT_BYTES, WRITING,
};
use crate::spill::SpillEntry;
use multiproc_arena::os::FileMap;
use multiproc_arena::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use multiproc_arena::{Arena, Offset, ProcessId};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;
use std::sync::Arc;

/// Most stream entries.
pub(crate) const MAX_STREAMS: usize = 64;
/// Most spill entries.
pub(crate) const MAX_SPILLS: usize = 1024;

const HEADER: usize = std::mem::size_of::<Header>();
/// Alignment of the control block (the header's 128-byte blocks).
const CTRL_ALIGN: usize = 128;

/// Entries of a queue's tables and slots.
#[derive(Clone, Copy)]
struct Counts {
    slots: usize,
    parties: usize,
    streams: usize,
    spills: usize,
}

/// Byte layout of a control block: where each table starts, and its size.
struct Layout {
    parties: usize,
    streams: usize,
    spills: usize,
    slots: usize,
    total: usize,
}

fn ctrl_layout(n: Counts) -> Layout {
    let parties = HEADER;
    let streams = (parties + n.parties * std::mem::size_of::<Party>()).next_multiple_of(64);
    let spills = (streams + n.streams * std::mem::size_of::<StreamEntry>()).next_multiple_of(64);
    let slots = (spills + n.spills * std::mem::size_of::<SpillEntry>()).next_multiple_of(64);
    Layout { parties, streams, spills, slots, total: slots + n.slots * 8 }
}

/// A queue's memory in an arena.
pub(crate) struct ShmMem {
    arena: Arena,
    ctrl: NonNull<u8>,
    data: NonNull<u8>,
    ctrl_off: Offset<u8>,
    data_off: Offset<u8>,
    n: Counts,
    at: Layout,
    /// The spill file (see [`spill`](crate::spill)), one descriptor per queue and process.
    spill: Arc<File>,
}

// SAFETY: the pointers are into a shared mapping kept alive by `arena`; all shared state
// behind them is atomics or bytes owned under the ring protocol.
unsafe impl Send for ShmMem {}
// SAFETY: as above.
unsafe impl Sync for ShmMem {}

impl ShmMem {
    /// Allocates and initialises a queue in `arena`.
    pub(crate) fn create(
        arena: &Arena,
        log_slots: u32,
        n_parties: usize,
        n_streams: usize,
        n_spills: usize,
        maxsize: u64,
        tag: u64,
    ) -> Result<ShmMem, Error> {
        assert!((MIN_LOG_SLOTS..=MAX_LOG_SLOTS).contains(&log_slots));
        assert!((1..=MAX_PARTIES).contains(&n_parties) && (1..=MAX_STREAMS).contains(&n_streams));
        assert!(n_spills <= MAX_SPILLS);
        let n = Counts {
            slots: 1 << log_slots,
            parties: n_parties,
            streams: n_streams,
            spills: n_spills,
        };
        let at = ctrl_layout(n);
        let ctrl_size = at.total;
        let spill_id = random_id()?;
        let spill = new_spill_file(spill_id, "creating the queue's spill file")?;
        let spill = spill_files::adopt(spill_id, spill);
        let data_size = n.slots * SLOT_BYTES;
        let ctrl_off = arena.alloc_raw(ctrl_size, CTRL_ALIGN).map_err(Error::arena)?;
        let data_off = match arena.alloc_raw(data_size, 4096) {
            Ok(o) => o,
            Err(e) => {
                // SAFETY: allocated just above with this layout; nobody else knows it.
                unsafe { arena.free_raw(ctrl_off, ctrl_size, CTRL_ALIGN) };
                return Err(Error::arena(e));
            }
        };
        let ctrl = arena.ptr(ctrl_off, ctrl_size).expect("fresh block lies in the arena");
        let data = arena.ptr(data_off, data_size).expect("fresh block lies in the arena");
        // SAFETY: `ctrl` is a fresh block of `ctrl_size` bytes, 64-aligned, that no other
        // process knows yet: we write every structure of the layout before publishing it.
        unsafe {
            let mut h = Header::new(log_slots, n_parties as u32, n_streams as u32, maxsize, tag);
            h.data_off = AtomicU64::new(data_off.raw());
            h.n_spills = AtomicU32::new(n_spills as u32);
            h.spill_id = AtomicU64::new(spill_id);
            ctrl.cast::<Header>().write(h);
            for i in 0..n.parties {
                ctrl.add(at.parties).cast::<Party>().add(i).write(Party::new());
            }
            for i in 0..n.streams {
                ctrl.add(at.streams).cast::<StreamEntry>().add(i).write(StreamEntry::new());
            }
            for i in 0..n.spills {
                ctrl.add(at.spills).cast::<SpillEntry>().add(i).write(SpillEntry::new());
            }
            for i in 0..n.slots {
                // EMPTY on lap 0.
                ctrl.add(at.slots).cast::<AtomicU64>().add(i).write(AtomicU64::new(0));
            }
        }
        Ok(ShmMem::assemble(arena.clone(), (ctrl, ctrl_off), (data, data_off), n, spill))
    }

    /// A queue's memory: its control block and data block (pointer and offset each) in
    /// `arena`, with `n` entries and slots, and its spill file.
    fn assemble(
        arena: Arena,
        (ctrl, ctrl_off): (*mut u8, Offset<u8>),
        (data, data_off): (*mut u8, Offset<u8>),
        n: Counts,
        spill: Arc<File>,
    ) -> ShmMem {
        let live = "a pointer into a live mapping is not null";
        ShmMem {
            arena,
            ctrl: NonNull::new(ctrl).expect(live),
            data: NonNull::new(data).expect(live),
            ctrl_off,
            data_off,
            n,
            at: ctrl_layout(n),
            spill,
        }
    }

    /// Maps a named queue (created without spill entries) found by name, taking a reference
    /// (unless its last user is leaving). Its spill file is a private stand-in: with no
    /// spill entry, nothing is ever written to it.
    pub(crate) fn open_named(arena: Arena, ctrl_off: u64, tag: u64) -> Result<ShmMem, Error> {
        let bad = |why: &str| Error::new(ErrorKind::InvalidHandle, why);
        let ctrl = arena
            .ptr(Offset::from_raw(ctrl_off), HEADER)
            .filter(|_| ctrl_off % CTRL_ALIGN as u64 == 0)
            .ok_or_else(|| bad("named queue offset outside its arena"))?;
        // SAFETY: HEADER bytes at `ctrl` are mapped and aligned (checked above); every field
        // of Header is an atomic, valid for any bit pattern.
        let h = unsafe { &*ctrl.cast::<Header>() };
        if h.n_spills.load(Ordering::Relaxed) != 0 {
            return Err(bad("a named queue has no spill entries"));
        }
        let mut n = h.refs.load(Ordering::Relaxed);
        loop {
            if n == 0 {
                return Err(Error::arena(multiproc_arena::Error::new(
                    multiproc_arena::ErrorKind::NotFound,
                    "the named queue's last user left",
                )));
            }
            match h.refs.compare_exchange_weak(n, n + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => break,
                Err(x) => n = x,
            }
        }
        let spill_id = h.spill_id.load(Ordering::Relaxed);
        let stand_in = new_spill_file(spill_id, "creating the queue's spill stand-in");
        let opened = stand_in.and_then(|f| Self::open(arena, ctrl_off, tag, f.into()));
        if opened.is_err() {
            h.refs.fetch_sub(1, Ordering::Release);
        }
        opened
    }

    /// Maps a queue received from another process, checking every claim.
    pub(crate) fn open(
        arena: Arena,
        ctrl_off: u64,
        tag: u64,
        spill: OwnedFd,
    ) -> Result<ShmMem, Error> {
        let bad = |why: &str| Error::new(ErrorKind::InvalidHandle, why);
        let ctrl_off = Offset::from_raw(ctrl_off);
        if ctrl_off.raw() % CTRL_ALIGN as u64 != 0 {
            return Err(bad("misaligned queue offset"));
        }
        let ctrl =
            arena.ptr(ctrl_off, HEADER).ok_or_else(|| bad("queue offset outside the arena"))?;
        // SAFETY: HEADER bytes at `ctrl` are mapped and 128-aligned (checked above); every
        // field of Header is an atomic, valid for any bit pattern.
        let h = unsafe { &*ctrl.cast::<Header>() };
        if h.magic.load(Ordering::Acquire) != MAGIC || h.refs.load(Ordering::Acquire) == 0 {
            return Err(bad("no live queue at this offset"));
        }
        if h.type_tag.load(Ordering::Relaxed) != tag {
            return Err(bad("the queue's element type differs from the sender's"));
        }
        let log_slots = h.log_slots.load(Ordering::Relaxed);
        let n = Counts {
            slots: 0, // set below, once `log_slots` is known to be in range
            parties: h.n_parties.load(Ordering::Relaxed) as usize,
            streams: h.n_streams.load(Ordering::Relaxed) as usize,
            spills: h.n_spills.load(Ordering::Relaxed) as usize,
        };
        if !(MIN_LOG_SLOTS..=MAX_LOG_SLOTS).contains(&log_slots)
            || !(1..=MAX_PARTIES).contains(&n.parties)
            || !(1..=MAX_STREAMS).contains(&n.streams)
            || n.spills > MAX_SPILLS
        {
            return Err(bad("corrupt queue header"));
        }
        let n = Counts { slots: 1 << log_slots, ..n };
        let ctrl_size = ctrl_layout(n).total;
        arena.ptr(ctrl_off, ctrl_size).ok_or_else(|| bad("queue control block out of bounds"))?;
        let spill = File::from(spill);
        let mut head = [0u8; 16];
        let spill_id = h.spill_id.load(Ordering::Relaxed);
        if spill.read_exact_at(&mut head, 0).is_err() || head != spill_file_head(spill_id) {
            return Err(bad("the descriptor passed as the queue's spill file is not it"));
        }
        let spill = spill_files::adopt(spill_id, spill);
        let data_off = Offset::from_raw(h.data_off.load(Ordering::Relaxed));
        let data = arena
            .ptr(data_off, n.slots * SLOT_BYTES)
            .filter(|_| data_off.raw() % 4096 == 0)
            .ok_or_else(|| bad("queue data block out of bounds"))?;
        Ok(ShmMem::assemble(arena, (ctrl, ctrl_off), (data, data_off), n, spill))
    }

    /// The spill file.
    pub(crate) fn spill_file(&self) -> &File {
        &self.spill
    }

    /// Writes `data` at `off` of the spill file.
    pub(crate) fn spill_write(&self, off: u64, data: &[u8]) -> std::io::Result<()> {
        self.spill.write_all_at(data, off)
    }

    /// Maps `len` bytes at `off` of the spill file, read-only (pages populated at once).
    ///
    /// # Safety
    /// The caller owns that range under the spill protocol for as long as the map lives:
    /// nobody writes it or gives its pages back meanwhile.
    pub(crate) unsafe fn spill_map(&self, off: u64, len: usize) -> std::io::Result<FileMap> {
        // SAFETY: the range is not modified while the map lives (the caller's promise).
        unsafe { FileMap::new(self.spill.as_fd(), off, len) }
    }

    /// Reads `dst.len()` bytes at `off` of the spill file.
    pub(crate) fn spill_read(&self, off: u64, dst: &mut [u8]) -> std::io::Result<()> {
        self.spill.read_exact_at(dst, off)
    }

    pub(crate) fn arena(&self) -> &Arena {
        &self.arena
    }

    pub(crate) fn ctrl_offset(&self) -> u64 {
        self.ctrl_off.raw()
    }

    /// Frees both blocks.
    ///
    /// # Safety
    /// No handle in any process uses the queue any more (the reference count hit zero).
    /// What the arena's fork registry needs to give this queue back (see
    /// `multiproc_arena::fork`).
    pub(crate) fn release(&self) -> multiproc_arena::fork::Release {
        multiproc_arena::fork::Release {
            arena: self.arena.clone(),
            blocks: vec![
                (self.data_off, self.n.slots * SLOT_BYTES, 4096),
                (self.ctrl_off, self.at.total, CTRL_ALIGN),
            ],
        }
    }

    pub(crate) unsafe fn free(&self) {
        // SAFETY: allocated in `create` with these layouts; the caller promises no users.
        unsafe {
            self.arena.free_raw(self.data_off, self.n.slots * SLOT_BYTES, 4096);
            self.arena.free_raw(self.ctrl_off, self.at.total, CTRL_ALIGN);
        }
    }
}

impl Mem for ShmMem {
    #[inline]
    fn header(&self) -> &Header {
        // SAFETY: the control block starts with an initialised Header (all atomics).
        unsafe { &*self.ctrl.as_ptr().cast::<Header>() }
    }

    #[inline]
    fn slots(&self) -> &[AtomicU64] {
        // SAFETY: `n.slots` initialised atomics at `at.slots`, 8-aligned, inside the block.
        unsafe {
            std::slice::from_raw_parts(self.ctrl.as_ptr().add(self.at.slots).cast(), self.n.slots)
        }
    }

    fn parties(&self) -> &[Party] {
        // SAFETY: `n.parties` initialised entries (atomics) at `at.parties`.
        unsafe {
            std::slice::from_raw_parts(
                self.ctrl.as_ptr().add(self.at.parties).cast(),
                self.n.parties,
            )
        }
    }

    fn streams(&self) -> &[StreamEntry] {
        // SAFETY: `n.streams` initialised entries (atomics) at `at.streams`, 64-aligned.
        unsafe {
            std::slice::from_raw_parts(
                self.ctrl.as_ptr().add(self.at.streams).cast(),
                self.n.streams,
            )
        }
    }

    #[inline]
    unsafe fn write(&self, off: usize, src: &[u8]) {
        debug_assert!(off + src.len() <= self.n.slots * SLOT_BYTES);
        // SAFETY: in bounds (caller); the caller owns the bytes, so nobody reads them now.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.data.as_ptr().add(off), src.len())
        }
    }

    #[inline]
    unsafe fn write_slot(&self, off: usize, src: &[u8; SLOT_BYTES]) {
        debug_assert!(off + SLOT_BYTES <= self.n.slots * SLOT_BYTES);
        // SAFETY: in bounds (caller); the caller owns the slot's bytes.
        unsafe { self.data.as_ptr().add(off).cast::<[u8; SLOT_BYTES]>().write_unaligned(*src) }
    }

    #[inline]
    unsafe fn read(&self, off: usize, dst: &mut [u8]) {
        debug_assert!(off + dst.len() <= self.n.slots * SLOT_BYTES);
        // SAFETY: in bounds (caller); the caller owns the bytes, so nobody writes them now.
        unsafe {
            std::ptr::copy_nonoverlapping(self.data.as_ptr().add(off), dst.as_mut_ptr(), dst.len())
        }
    }

    #[inline]
    unsafe fn view(&self, off: usize, len: usize) -> Option<&[u8]> {
        debug_assert!(off + len <= self.n.slots * SLOT_BYTES);
        // SAFETY: in bounds (caller); nobody writes the bytes while the caller owns them.
        Some(unsafe { std::slice::from_raw_parts(self.data.as_ptr().add(off), len) })
    }

    fn spills(&self) -> &[SpillEntry] {
        // SAFETY: `n.spills` initialised entries (atomics) at `at.spills`, 64-aligned.
        unsafe {
            std::slice::from_raw_parts(self.ctrl.as_ptr().add(self.at.spills).cast(), self.n.spills)
        }
    }

    fn spill_discard(&self, e: usize, len: u64) {
        // Best effort: an error leaves the pages in place until the file goes.
        let len = len.next_multiple_of(4096);
        let _ = multiproc_arena::os::punch_hole(self.spill.as_fd(), crate::spill::region(e), len);
    }

    fn alive(&self, party: u32) -> bool {
        let Some(p) = self.parties().get(party as usize) else { return false };
        let id = p.id.load(Ordering::Acquire);
        if id & PARTY_READY == 0 {
            // Free, or being registered by someone new: the party a slot names is gone.
            return false;
        }
        !multiproc_arena::Identity::from_bits(id & !PARTY_READY).is_some_and(|i| i.is_dead())
    }
}

/// This process's open spill files by identity, so that a queue received many times keeps
/// one descriptor (as the arena does for its mapping).
mod spill_files {
    use std::fs::File;
    use std::sync::Arc;

    /// Fork-safe (see [`multiproc_arena::fork::WeakMap`]).
    static OPEN: multiproc_arena::fork::WeakMap<File> = multiproc_arena::fork::WeakMap::new();

    /// The open file with identity `id` if this process has one (`file` is closed), else
    /// `file`, registered.
    pub(super) fn adopt(id: u64, file: File) -> Arc<File> {
        OPEN.adopt(id, Arc::new(file))
    }
}

/// A new spill file for the queue whose spill identity is `spill_id` (a memory file that
/// starts with [`spill_file_head`]); `what` names the step in an error.
fn new_spill_file(spill_id: u64, what: &str) -> Result<File, Error> {
    multiproc_arena::os::memfd("multiproc-queue-spill")
        .map(File::from)
        .and_then(|f| f.write_all_at(&spill_file_head(spill_id), 0).map(|()| f))
        .map_err(|e| Error::io(e, what))
}

/// The first bytes of a queue's spill file: [`FILE_MAGIC`](crate::spill::FILE_MAGIC), then
/// the queue's `spill_id` (written at creation, checked on every open).
fn spill_file_head(spill_id: u64) -> [u8; 16] {
    let mut head = [0u8; 16];
    head[..8].copy_from_slice(&crate::spill::FILE_MAGIC.to_le_bytes());
    head[8..].copy_from_slice(&spill_id.to_le_bytes());
    head
}

/// A random 64-bit identity (not a secret, only unlikely to repeat): the kernel's
/// randomness through the arena.
fn random_id() -> Result<u64, Error> {
    let mut b = [0u8; 8];
    multiproc_arena::os::random_bytes(&mut b)
        .map_err(|e| Error::io(e, "drawing the queue's spill identity"))?;
    Ok(u64::from_le_bytes(b))
}

/// Registers the calling process in the party table (or finds its entry); returns its index.
pub(crate) fn register(ring: &Ring<ShmMem>) -> Result<u32, Error> {
    let me = ProcessId::current();
    let mine = me.identity_bits() | PARTY_READY;
    let parties = ring.mem.parties();
    for (i, p) in parties.iter().enumerate() {
        if p.id.load(Ordering::Acquire) == mine {
            return Ok(i as u32);
        }
    }
    let take = |i: usize, seen: u64| -> bool {
        let p = &parties[i];
        if p.id.compare_exchange(seen, mine, Ordering::AcqRel, Ordering::Relaxed).is_err() {
            return false;
        }
        p.pid.store(me.pid() as u64, Ordering::Relaxed);
        true
    };
    for (i, p) in parties.iter().enumerate() {
        if p.id.load(Ordering::Relaxed) == 0 && take(i, 0) {
            return Ok(i as u32);
        }
    }
    // Full: reuse entries of processes proved dead that no slot or stream still names.
    for (i, p) in parties.iter().enumerate() {
        let id = p.id.load(Ordering::Acquire);
        let dead = id & PARTY_READY != 0 && !ring.mem.alive(i as u32);
        if dead && !referenced(ring, i as u32) && take(i, id) {
            // Spill entries the dead process held still name this index: ours to free now.
            crate::spill::adopt_orphans(ring, i as u32);
            return Ok(i as u32);
        }
    }
    Err(Error::new(
        ErrorKind::TooManyProcesses,
        format!(
            "{} live processes use this queue (see QueueBuilder::max_processes)",
            parties.len()
        ),
    ))
}

fn referenced(ring: &Ring<ShmMem>, party: u32) -> bool {
    ring.mem.slots().iter().any(|s| {
        let w = s.load(Ordering::Acquire);
        matches!(state_of(w), WRITING | READING | DISCARDING) && party_of(w) == party
    }) || crate::stream::references(ring, party)
}
