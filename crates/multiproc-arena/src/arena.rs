//! [`Arena`]: many small shared objects in one segment, and [`Offset`] into it.

use crate::alloc::{self, ArenaHeader, Memory, ARENA_MAGIC, HEAP_START};
use crate::error::{Error, ErrorKind, Result};
use crate::sync::atomic::AtomicU64;
use std::marker::PhantomData;

/// A position-independent pointer into an [`Arena`]: a byte offset from the arena's base.
///
/// Each process maps an arena at its own address, so shared structures link to each other with
/// offsets, never pointers. `Offset<T>` is `ShmSafe`, `Copy`, and 8 bytes.
#[repr(transparent)]
pub struct Offset<T> {
    raw: u64,
    _type: PhantomData<fn() -> T>,
}

impl<T> Offset<T> {
    /// An offset from its raw byte value.
    pub const fn from_raw(raw: u64) -> Self {
        Offset { raw, _type: PhantomData }
    }

    /// The raw byte offset.
    pub const fn raw(self) -> u64 {
        self.raw
    }

    /// The same position seen as another type.
    pub const fn cast<U>(self) -> Offset<U> {
        Offset::from_raw(self.raw)
    }
}

impl<T> Clone for Offset<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Offset<T> {}
impl<T> PartialEq for Offset<T> {
    fn eq(&self, o: &Self) -> bool {
        self.raw == o.raw
    }
}
impl<T> Eq for Offset<T> {}
impl<T> std::fmt::Debug for Offset<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Offset({:#x})", self.raw)
    }
}
// SAFETY: a plain u64.
unsafe impl<T: 'static> crate::ShmSafe for Offset<T> {}

#[cfg(not(multiproc_loom))]
pub use real::*;

#[cfg(not(multiproc_loom))]
mod real {
    use super::*;
    use crate::segment::{Segment, FLAG_ARENA};
    use std::os::fd::{BorrowedFd, OwnedFd};
    use std::sync::atomic::AtomicPtr;
    use std::sync::atomic::Ordering::{AcqRel, Acquire};
    use std::sync::Arc;

    /// Default capacity of [`Arena::global`]: 256 MiB of address space (pages are only
    /// allocated when touched). Override with `MULTIPROC_ARENA_BYTES`.
    pub const DEFAULT_GLOBAL_CAPACITY: usize = 256 << 20;

    /// An allocator in a shared-memory segment, used from several processes at once.
    ///
    /// Cheap to clone (a reference count). Many small objects — locks, values, queue headers —
    /// share one arena and so one descriptor. [`Arena::global`] is the process-wide default,
    /// inherited by forked children and passed to spawned ones.
    #[derive(Clone)]
    pub struct Arena {
        inner: Arc<ArenaInner>,
    }

    pub(crate) struct ArenaInner {
        seg: Segment,
        /// How far (offset from the base) this process knows the pages to be reserved; any
        /// process may have reserved more (reserving again is harmless).
        reserved: std::sync::atomic::AtomicU64,
    }

    impl ArenaInner {
        fn new(seg: Segment) -> ArenaInner {
            ArenaInner { seg, reserved: std::sync::atomic::AtomicU64::new(HEAP_START) }
        }
    }

    /// The arena reserves its pages this many bytes at a time as the bump pointer advances.
    const RESERVE_STEP: u64 = 1 << 20;

    impl Memory for ArenaInner {
        fn header(&self) -> &ArenaHeader {
            // SAFETY: the segment begins with an initialised ArenaHeader (checked on open),
            // page aligned; its mutable fields are atomics.
            unsafe { &*self.seg.as_ptr().cast::<ArenaHeader>() }
        }
        fn link(&self, off: u64) -> &AtomicU64 {
            debug_assert!(off >= HEAP_START && off + 8 <= self.seg.len() as u64);
            // SAFETY: `off` is a block offset inside the heap (granule aligned, within limit),
            // so 8 aligned bytes there are mapped; the word is only accessed atomically.
            unsafe { &*self.seg.as_ptr().add(off as usize).cast::<AtomicU64>() }
        }
        fn reserve(&self, start: u64, end: u64) -> Result<()> {
            use std::sync::atomic::Ordering::{AcqRel, Acquire};
            if end <= self.reserved.load(Acquire) {
                return Ok(());
            }
            let limit = self.seg.len() as u64;
            let from = start.min(self.reserved.load(Acquire)) & !4095;
            // A step ahead, so that most bumps cost no system call; if the step cannot be had,
            // the block alone may still fit.
            let step = end.next_multiple_of(RESERVE_STEP).min(limit);
            let upto = match self.seg.reserve(from as usize, (step - from) as usize) {
                Ok(()) => step,
                Err(_) => {
                    let exact = end.next_multiple_of(4096).min(limit);
                    let from = start & !4095;
                    self.seg.reserve(from as usize, (exact - from) as usize).map_err(|e| {
                        Error::new(
                            e.kind(),
                            format!("no memory for a {}-byte arena block: {e}", end - start),
                        )
                    })?;
                    return Ok(()); // not contiguous with `reserved`: do not raise it
                }
            };
            self.reserved.fetch_max(upto, AcqRel);
            Ok(())
        }
    }

    /// This process's arenas by segment identity (fork-safe: a child forked while another
    /// thread registers one finds it unlocked).
    static REGISTRY: crate::fork::WeakMap<ArenaInner> = crate::fork::WeakMap::new();

    fn register(inner: &Arc<ArenaInner>) {
        REGISTRY.insert(inner.seg.id(), inner);
    }

    fn lookup(id: u64) -> Option<Arena> {
        REGISTRY.get(id).map(|inner| Arena { inner })
    }

    impl std::fmt::Debug for Arena {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Arena")
                .field("id", &format_args!("{:#x}", self.id()))
                .field("name", &self.inner.seg.name())
                .field("capacity", &self.capacity())
                .field("used", &self.used())
                .finish()
        }
    }

    impl Arena {
        /// A new anonymous arena (memfd) with room for `capacity` bytes of blocks.
        pub fn new(capacity: usize) -> Result<Arena> {
            let seg = Segment::anonymous_uninit(heap_len(capacity)?, FLAG_ARENA)?;
            Self::init(seg)
        }

        /// A new named arena that unrelated processes can [`open`](Arena::open).
        pub fn create(name: &str, capacity: usize) -> Result<Arena> {
            let seg = Segment::create_with_flags(name, heap_len(capacity)?, FLAG_ARENA)?;
            Self::init(seg)
        }

        /// Opens a named arena created by [`Arena::create`].
        pub fn open(name: &str) -> Result<Arena> {
            Self::adopt(Segment::open(name)?)
        }

        /// Maps an arena from a descriptor received from another process. If this process has
        /// the arena mapped already, that mapping is reused and `fd` is closed, so passing the
        /// same arena many times costs one descriptor.
        pub fn from_fd(fd: OwnedFd) -> Result<Arena> {
            use std::os::unix::fs::FileExt;
            let file = std::fs::File::from(fd);
            let mut id = [0u8; 8];
            if file.read_exact_at(&mut id, 24).is_ok() {
                if let Some(a) = lookup(u64::from_le_bytes(id)) {
                    return Ok(a);
                }
            }
            Self::adopt(Segment::from_fd(OwnedFd::from(file))?)
        }

        fn init(seg: Segment) -> Result<Arena> {
            let inner = ArenaInner::new(seg);
            let limit = inner.seg.len() as u64;
            let plain = alloc::init_header(inner.header(), limit);
            let hdr = inner.seg.as_ptr().cast::<ArenaHeader>();
            // SAFETY: the segment is not yet published (not READY, not registered); we are the
            // only writer of these two plain fields, which are read-only from here on.
            unsafe {
                (*hdr).limit = plain.limit;
                (*hdr).magic = ARENA_MAGIC;
            }
            inner.seg.mark_ready();
            let inner = Arc::new(inner);
            register(&inner);
            Ok(Arena { inner })
        }

        fn adopt(seg: Segment) -> Result<Arena> {
            if let Some(a) = lookup(seg.id()) {
                return Ok(a);
            }
            if seg.flags() & FLAG_ARENA == 0 || seg.len() < HEAP_START as usize {
                return Err(Error::new(ErrorKind::InvalidHeader, "segment is not an arena"));
            }
            let inner = ArenaInner::new(seg);
            let h = inner.header();
            if h.magic != ARENA_MAGIC || h.limit > inner.seg.len() as u64 {
                return Err(Error::new(ErrorKind::InvalidHeader, "bad arena header"));
            }
            let inner = Arc::new(inner);
            register(&inner);
            Ok(Arena { inner })
        }

        /// The process-wide default arena (anonymous, created on first use, inherited by
        /// forked children, passed to spawned ones with the handles that live in it).
        ///
        /// # Panics
        /// If it cannot be created (no descriptor or memory left): constructors use
        /// [`try_global`](Self::try_global), which returns that error instead.
        pub fn global() -> &'static Arena {
            match Self::try_global() {
                Ok(a) => a,
                Err(e) => panic!("creating the global multiproc arena: {e}"),
            }
        }

        /// [`global`](Self::global), or the error that kept it from being created (for
        /// example [`ErrorKind::NoDescriptors`] when the process has no descriptor left for
        /// its memfd). A failure is not remembered: the next call tries again, so the arena
        /// appears once the resource is back.
        pub fn try_global() -> Result<&'static Arena> {
            // Lock-free (a forked child must never find a lock or a `Once` held by a thread
            // it does not have): threads that race here each create one; the first stored
            // is kept for the life of the process, the others are dropped.
            static GLOBAL: AtomicPtr<Arena> = AtomicPtr::new(std::ptr::null_mut());
            let current = GLOBAL.load(Acquire);
            if !current.is_null() {
                // SAFETY: a non-null pointer here came from `Box::into_raw` below and is never
                // freed: it lives as long as the process.
                return Ok(unsafe { &*current });
            }
            let cap = std::env::var("MULTIPROC_ARENA_BYTES")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(DEFAULT_GLOBAL_CAPACITY);
            let arena = Arena::new(cap).map_err(|e| {
                Error::new(e.kind(), format!("creating the global multiproc arena: {e}"))
            })?;
            let mine = Box::into_raw(Box::new(arena));
            match GLOBAL.compare_exchange(std::ptr::null_mut(), mine, AcqRel, Acquire) {
                // SAFETY: stored for good, as above.
                Ok(_) => Ok(unsafe { &*mine }),
                // SAFETY: `mine` came from `Box::into_raw` above and was not stored: ours
                // alone to free. `first` is the stored one, never freed.
                Err(first) => unsafe {
                    drop(Box::from_raw(mine));
                    Ok(&*first)
                },
            }
        }

        /// Allocates a block of `size` bytes aligned to `align` (≤ 4096); returns its offset.
        /// [`ErrorKind::ArenaFull`] when there is no room.
        pub fn alloc_raw(&self, size: usize, align: usize) -> Result<Offset<u8>> {
            alloc::alloc(&*self.inner, size, align).map(Offset::from_raw)
        }

        /// A block never handed out before (zero bytes, pages not reserved yet: reserve
        /// what will be written with [`Segment::reserve`] first), for large blocks that may
        /// never be touched (a pipe's bulk rings).
        pub(crate) fn alloc_fresh(&self, size: usize, align: usize) -> Result<Offset<u8>> {
            alloc::alloc_fresh(&*self.inner, size, align).map(Offset::from_raw)
        }

        /// Returns a block to the arena.
        ///
        /// # Safety
        /// `off` came from [`alloc_raw`](Self::alloc_raw) on this arena (in any process) with
        /// the same `size` and `align`, was not freed since, and nobody uses it any more.
        pub unsafe fn free_raw(&self, off: Offset<u8>, size: usize, align: usize) {
            alloc::free(&*self.inner, off.raw(), size, align)
        }

        /// The address of `off` in this process, if `size` bytes there lie within the heap.
        pub fn ptr(&self, off: Offset<u8>, size: usize) -> Option<*mut u8> {
            let end = off.raw().checked_add(size as u64)?;
            if off.raw() < HEAP_START || end > self.inner.header().limit {
                return None;
            }
            // SAFETY: checked above that [off, off+size) is within the mapping.
            Some(unsafe { self.inner.seg.as_ptr().add(off.raw() as usize) })
        }

        /// Identity shared by every process mapping this arena.
        pub fn id(&self) -> u64 {
            self.inner.seg.id()
        }

        /// Bytes available to blocks in all.
        pub fn capacity(&self) -> usize {
            (self.inner.header().limit - HEAP_START) as usize
        }

        /// Bytes held by live blocks (rounded up to their size classes).
        pub fn used(&self) -> usize {
            self.inner.header().used.load(crate::sync::atomic::Ordering::Relaxed) as usize
        }

        /// The segment holding the arena.
        pub fn segment(&self) -> &Segment {
            &self.inner.seg
        }

        /// The descriptor to pass the arena to another process.
        pub fn fd(&self) -> BorrowedFd<'_> {
            self.inner.seg.fd()
        }

        /// Whether two handles name the same mapping.
        pub fn same(&self, other: &Arena) -> bool {
            Arc::ptr_eq(&self.inner, &other.inner)
        }
    }

    fn heap_len(capacity: usize) -> Result<usize> {
        capacity
            .checked_add(HEAP_START as usize)
            .filter(|&n| n as u64 <= (u32::MAX as u64) * alloc::GRANULE)
            .ok_or_else(|| Error::new(ErrorKind::InvalidLayout, "arena larger than 64 GiB"))
    }

    impl serde::Serialize for Arena {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            crate::transfer::serialize_fd(self.fd(), self.id(), s)
        }
    }

    impl<'de> serde::Deserialize<'de> for Arena {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            let (fd, id): (_, u64) = crate::transfer::deserialize_fd(d)?;
            let a = Arena::from_fd(fd).map_err(crate::transfer::de_error)?;
            if a.id() != id {
                return Err(crate::transfer::de_error(Error::new(
                    ErrorKind::InvalidHandle,
                    "arena descriptor does not match its id",
                )));
            }
            Ok(a)
        }
    }
}

#[cfg(multiproc_loom)]
pub use heap::*;

#[cfg(multiproc_loom)]
mod heap {
    use super::*;
    use crate::sync::atomic::Ordering;

    /// Under `--cfg multiproc_loom`: the same allocator over heap-backed loom atomics, with
    /// loom threads standing in for processes.
    #[derive(Clone, Debug)]
    pub struct Arena {
        inner: loom::sync::Arc<HeapMemory>,
    }

    #[derive(Debug)]
    struct HeapMemory {
        header: ArenaHeader,
        links: Vec<AtomicU64>,
    }

    impl std::fmt::Debug for ArenaHeader {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("ArenaHeader")
        }
    }

    impl Memory for HeapMemory {
        fn header(&self) -> &ArenaHeader {
            &self.header
        }
        fn link(&self, off: u64) -> &AtomicU64 {
            &self.links[(off / alloc::GRANULE) as usize]
        }
    }

    impl Arena {
        /// A heap-backed arena with `capacity` bytes of blocks.
        pub fn new(capacity: usize) -> Result<Arena> {
            let limit = HEAP_START + capacity as u64;
            let header = ArenaHeader {
                magic: ARENA_MAGIC,
                limit,
                bump: AtomicU64::new(0),
                used: AtomicU64::new(0),
                heads: std::array::from_fn(|_| AtomicU64::new(0)),
            };
            let _ = alloc::init_header(&header, limit);
            let links = (0..limit / alloc::GRANULE).map(|_| AtomicU64::new(0)).collect();
            Ok(Arena { inner: loom::sync::Arc::new(HeapMemory { header, links }) })
        }

        /// Allocates; see the real arena.
        pub fn alloc_raw(&self, size: usize, align: usize) -> Result<Offset<u8>> {
            alloc::alloc(&*self.inner, size, align).map(Offset::from_raw)
        }

        /// Frees; see the real arena.
        ///
        /// # Safety
        /// As for the real arena.
        pub unsafe fn free_raw(&self, off: Offset<u8>, size: usize, align: usize) {
            alloc::free(&*self.inner, off.raw(), size, align)
        }

        /// Bytes held by live blocks.
        pub fn used(&self) -> usize {
            self.inner.header.used.load(Ordering::Relaxed) as usize
        }

        /// Bytes available to blocks.
        pub fn capacity(&self) -> usize {
            (self.inner.header.limit - HEAP_START) as usize
        }
    }
}
