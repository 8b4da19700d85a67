//! [`Shared<T>`] and [`Array<T>`]: reference-counted objects in an arena, shared by processes.
//!
//! The reference count lives in the block, next to the value, so it counts handles in every
//! process: clones and drops in any process adjust it, and the last drop frees the block.
//! Passing a handle to another process (handle transfer) takes a reference for the receiver.
//! A forked child's inherited handles are counted for it by the arena's fork handler (see
//! [`fork`](crate::fork)), whoever forked — the spawn crate, `libc::fork`, nix — so parent
//! and child may each drop their copies. A process killed while holding references leaks
//! them (the block stays allocated), never frees early; a count that would fall below zero
//! aborts.

#[cfg(not(multiproc_loom))]
pub use real::*;

#[cfg(not(multiproc_loom))]
mod real {
    use crate::arena::{Arena, Offset};
    use crate::error::{Error, ErrorKind, Result};
    use crate::plain::{zeroed, AtomicCell, AtomicPlain, Zeroable};
    use crate::shm_safe::ShmSafe;
    use std::marker::PhantomData;
    use std::ptr::NonNull;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Precedes the values of every block handed out by `Shared`/`Array`.
    #[repr(C)]
    struct BlockHeader {
        refs: AtomicU32,
        _pad: u32,
        /// Hash of the element type's name, size and alignment (checked on transfer).
        tag: u64,
        /// Number of elements.
        len: u64,
        _reserved: u64,
    }
    static_assertions::assert_eq_size!(BlockHeader, [u64; 4]);

    impl BlockHeader {
        /// The header of a new block of `len` `T`s, with its one reference.
        fn first<T>(len: usize) -> BlockHeader {
            BlockHeader {
                refs: AtomicU32::new(1),
                _pad: 0,
                tag: type_tag::<T>(),
                len: len as u64,
                _reserved: 0,
            }
        }
    }

    /// FNV-1a of the type's name, size and alignment: the same in every process running the
    /// same binary, different for a different element type.
    fn type_tag<T>() -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |b: u8| {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        };
        std::any::type_name::<T>().bytes().for_each(&mut eat);
        (std::mem::size_of::<T>() as u64).to_le_bytes().into_iter().for_each(&mut eat);
        (std::mem::align_of::<T>() as u64).to_le_bytes().into_iter().for_each(&mut eat);
        h
    }

    /// A block of `len` values of `T` after a header, with the reference-count logic.
    struct Block<T: ShmSafe> {
        arena: Arena,
        off: Offset<u8>,
        header: NonNull<BlockHeader>,
        data: NonNull<T>,
        len: usize,
        _owns: PhantomData<T>,
    }

    // SAFETY: the block is shared memory holding ShmSafe (Send + Sync) values; the handle
    // only adds an arena reference (Send + Sync).
    unsafe impl<T: ShmSafe> Send for Block<T> {}
    // SAFETY: as above.
    unsafe impl<T: ShmSafe> Sync for Block<T> {}

    const fn data_offset<T>() -> usize {
        let a = std::mem::align_of::<T>();
        let h = std::mem::size_of::<BlockHeader>();
        h.div_ceil(a) * a
    }

    fn layout<T>(len: usize) -> Result<(usize, usize)> {
        let size = std::mem::size_of::<T>()
            .checked_mul(len)
            .and_then(|n| n.checked_add(data_offset::<T>()))
            .ok_or_else(|| Error::new(ErrorKind::InvalidLayout, "array too large"))?;
        Ok((size, std::mem::align_of::<T>().max(8)))
    }

    impl<T: ShmSafe> Block<T> {
        fn new_with(arena: &Arena, len: usize, mut init: impl FnMut(usize) -> T) -> Result<Self> {
            let (size, align) = layout::<T>(len)?;
            let off = arena.alloc_raw(size, align)?;
            let base = arena.ptr(off, size).expect("fresh block lies in the arena");
            let header = base.cast::<BlockHeader>();
            // SAFETY: `base` is a fresh block of `size` bytes aligned to `align` (≥ 8, ≥
            // align_of::<T>) that no other process knows yet; we write the header and every
            // element before anyone can see the offset.
            let data = unsafe {
                header.write(BlockHeader::first::<T>(len));
                let data = base.add(data_offset::<T>()).cast::<T>();
                for i in 0..len {
                    data.add(i).write(init(i));
                }
                data
            };
            Ok(Block::registered(arena, off, header, data, len))
        }

        /// A block of `len` zero values whose data pages are neither written nor reserved
        /// (see [`Array::fresh_in`]): only the header's page is reserved and written.
        fn new_fresh(arena: &Arena, len: usize) -> Result<Self>
        where
            T: Zeroable,
        {
            let (size, align) = layout::<T>(len)?;
            let off = arena.alloc_fresh(size, align)?;
            let base = arena.ptr(off, size).expect("fresh block lies in the arena");
            let head = (off.raw() as usize & 4095) + data_offset::<T>();
            arena.segment().reserve(off.raw() as usize & !4095, head)?;
            let header = base.cast::<BlockHeader>();
            // The data is all zero bytes (a fresh block: memory past the bump pointer was
            // never written, and the file's unwritten pages read as zero), a valid `T` for
            // each element (`T: Zeroable`): only the header is written.
            // SAFETY: `base` is a block of `size` bytes aligned to `align` (≥ 8, ≥
            // align_of::<T>) that no other process knows yet, its header's page reserved.
            let data = unsafe {
                header.write(BlockHeader::first::<T>(len));
                base.add(data_offset::<T>()).cast::<T>()
            };
            Ok(Block::registered(arena, off, header, data, len))
        }

        /// The handle of a block just initialised at `off` (`header`, `data`: its pointers in
        /// this process's mapping), recorded in the registry.
        fn registered(
            arena: &Arena,
            off: Offset<u8>,
            header: *mut BlockHeader,
            data: *mut T,
            len: usize,
        ) -> Self {
            let b = Block {
                arena: arena.clone(),
                off,
                // SAFETY: pointers into a live mapping are non-null.
                header: unsafe { NonNull::new_unchecked(header) },
                // SAFETY: as above.
                data: unsafe { NonNull::new_unchecked(data) },
                len,
                _owns: PhantomData,
            };
            b.register();
            b
        }

        /// Records this handle in the process's registry (for forks and
        /// [`release_handles`](crate::fork::release_handles)).
        fn register(&self) {
            crate::fork::acquired(&self.header().refs, || {
                let (size, align) = layout::<T>(self.len).expect("layout was valid");
                crate::fork::Release {
                    arena: self.arena.clone(),
                    blocks: vec![(self.off, size, align)],
                }
            });
        }

        /// Rebuilds a handle from a received (arena, offset), checking every claim; the
        /// sender took the reference it adopts.
        fn adopt(arena: Arena, off: Offset<u8>, len: usize, tag: u64) -> Result<Self> {
            let b = Self::adopt_unregistered(arena, off, len, tag)?;
            b.register();
            Ok(b)
        }

        /// [`adopt`](Self::adopt) without recording the handle (the caller does, once it
        /// holds a reference).
        fn adopt_unregistered(arena: Arena, off: Offset<u8>, len: usize, tag: u64) -> Result<Self> {
            let bad = |why: &str| Error::new(ErrorKind::InvalidHandle, why.to_string());
            if tag != type_tag::<T>() {
                return Err(bad("element type differs from the sender's"));
            }
            let (size, align) = layout::<T>(len)?;
            if off.raw() % align as u64 != 0 {
                return Err(bad("misaligned offset"));
            }
            let base = arena.ptr(off, size).ok_or_else(|| bad("offset outside the arena"))?;
            let header = base.cast::<BlockHeader>();
            // SAFETY: the range is inside the mapping and aligned (checked above); header
            // fields are read-only after creation except `refs`, which is atomic.
            let (htag, hlen, refs) =
                unsafe { ((*header).tag, (*header).len, (*header).refs.load(Ordering::Acquire)) };
            if htag != tag || hlen != len as u64 || refs == 0 {
                return Err(bad("no live block of this type at the offset"));
            }
            let b = Block {
                arena,
                off,
                // SAFETY: inside a live mapping.
                header: unsafe { NonNull::new_unchecked(header) },
                // SAFETY: inside a live mapping, within the checked range.
                data: unsafe { NonNull::new_unchecked(base.add(data_offset::<T>()).cast()) },
                len,
                _owns: PhantomData,
            };
            Ok(b)
        }

        fn header(&self) -> &BlockHeader {
            // SAFETY: the block is alive while we hold a reference; see BlockHeader.
            unsafe { self.header.as_ref() }
        }

        fn slice(&self) -> &[T] {
            // SAFETY: `len` initialised values of T live at `data` while we hold a reference;
            // T: ShmSafe is Sync, so shared access from several processes is allowed.
            unsafe { std::slice::from_raw_parts(self.data.as_ptr(), self.len) }
        }

        /// Takes a reference unless the count already fell to zero (the block is being
        /// freed): for opening a named object, which no existing handle keeps alive.
        fn try_add_ref(&self) -> bool {
            let refs = &self.header().refs;
            let mut n = refs.load(Ordering::Relaxed);
            loop {
                if n == 0 || n >= u32::MAX / 2 {
                    return false;
                }
                match refs.compare_exchange_weak(n, n + 1, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) => return true,
                    Err(x) => n = x,
                }
            }
        }

        fn add_ref(&self) {
            let old = self.header().refs.fetch_add(1, Ordering::Relaxed);
            assert!(old < u32::MAX / 2, "shared object reference count overflow");
        }
    }

    impl<T: ShmSafe> Clone for Block<T> {
        fn clone(&self) -> Self {
            self.add_ref();
            let b = Block { arena: self.arena.clone(), ..*self };
            b.register();
            b
        }
    }

    impl<T: ShmSafe> Drop for Block<T> {
        fn drop(&mut self) {
            crate::fork::released(&self.header().refs);
            if !crate::fork::drop_ref(&self.header().refs) {
                return;
            }
            let (size, align) = layout::<T>(self.len).expect("layout was valid at creation");
            // SAFETY: the count reached zero, so no handle in any process uses the block;
            // it was allocated with this size and alignment. ShmSafe values need no drop.
            unsafe { self.arena.free_raw(self.off, size, align) };
        }
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Wire {
        arena: Arena,
        off: u64,
        len: u64,
        tag: u64,
    }

    impl<T: ShmSafe> Block<T> {
        fn serialize_with<S: serde::Serializer>(
            &self,
            s: S,
        ) -> std::result::Result<S::Ok, S::Error> {
            use serde::Serialize;
            if !crate::transfer::in_context() {
                return Err(crate::transfer::ser_error(Error::kind_only(
                    ErrorKind::NoTransferContext,
                )));
            }
            // The receiver adopts this reference.
            self.add_ref();
            let w = Wire {
                arena: self.arena.clone(),
                off: self.off.raw(),
                len: self.len as u64,
                tag: type_tag::<T>(),
            };
            w.serialize(s)
        }

        fn deserialize_with<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> std::result::Result<Self, D::Error> {
            use serde::Deserialize;
            let w = Wire::deserialize(d)?;
            let len = usize::try_from(w.len).map_err(serde::de::Error::custom)?;
            Block::adopt(w.arena, Offset::from_raw(w.off), len, w.tag)
                .map_err(crate::transfer::de_error)
        }
    }

    /// Opens the named object `name` as `len` values of `T`, taking a reference.
    fn open_root<T: ShmSafe>(name: &str, len: usize) -> Result<Block<T>> {
        let (arena, off, n, tag) = crate::named::root(name)?;
        if tag != type_tag::<T>() || n != len as u64 {
            return Err(Error::new(
                ErrorKind::WrongType,
                format!("{name} does not hold {len} x {}", std::any::type_name::<T>()),
            ));
        }
        let b = Block::adopt_unregistered(arena, off, len, tag)?;
        if !b.try_add_ref() {
            return Err(Error::new(ErrorKind::NotFound, format!("{name}: its last user left")));
        }
        b.register();
        Ok(b)
    }

    /// A `T` in shared memory with a cross-process reference count (an `Arc` whose count is
    /// shared by every process). Dereferences to `&T`; mutate through atomics or a lock.
    ///
    /// This is the building block of every multiproc primitive: a `Lock` is a `Shared` futex
    /// word, a `Queue` a `Shared` header. It implements serde's traits inside a transfer
    /// context, so it can be a spawned child's argument or cross a `Connection`.
    pub struct Shared<T: ShmSafe>(Block<T>);

    impl<T: ShmSafe> Shared<T> {
        /// Places `value` in the [global arena](Arena::global).
        pub fn new(value: T) -> Result<Self> {
            Self::new_in(Arena::try_global()?, value)
        }

        /// Places `value` in `arena`.
        pub fn new_in(arena: &Arena, value: T) -> Result<Self> {
            let mut v = Some(value);
            Block::new_with(arena, 1, |_| v.take().expect("one element")).map(Shared)
        }

        /// The arena holding the value.
        pub fn arena(&self) -> &Arena {
            &self.0.arena
        }

        /// A zero value (all bytes zero) in the [global arena](Arena::global).
        pub fn zeroed() -> Result<Self>
        where
            T: Zeroable,
        {
            Self::new(zeroed::<T>())
        }

        /// Where the block lies in its arena (the same in every process).
        pub fn offset(&self) -> Offset<u8> {
            self.0.off
        }

        /// How many handles exist across all processes (a snapshot).
        pub fn ref_count(&self) -> u32 {
            self.0.header().refs.load(Ordering::Relaxed)
        }

        /// Places `value` under `name` (a named segment in `/dev/shm`, mode 0600) that any
        /// process of the user can [`open_named`](Self::open_named), parent or not. The name
        /// goes when the last process using the object drops it, or is SIGKILLed (then the
        /// next [`cleanup_orphans`](crate::cleanup_orphans) removes it), unless
        /// [`persist_name`](Self::persist_name) keeps it. `AlreadyExists` if the name is
        /// taken.
        pub fn create_named(name: &str, value: T) -> Result<Self> {
            let arena = crate::named::create(name, std::mem::size_of::<T>() + 4096)?;
            let s = Self::new_in(&arena, value)?;
            crate::named::publish(&arena, s.0.off, 1, type_tag::<T>());
            Ok(s)
        }

        /// Opens the value another process placed under `name` with
        /// [`create_named`](Self::create_named). `NotFound` if there is none, `WrongType`
        /// if it holds another type, `NotInitialized` while its creator is still making it.
        pub fn open_named(name: &str) -> Result<Self> {
            open_root::<T>(name, 1).map(Shared)
        }

        /// Opens `name`, or creates it with `init()` if it does not exist; exactly one of
        /// several racing processes creates it, the others open what it made.
        pub fn open_or_create_named(name: &str, init: impl FnOnce() -> T) -> Result<Self> {
            crate::named::open_or_create(
                name,
                || Self::create_named(name, init()),
                Self::open_named,
            )
        }

        /// Keeps the name after every user is gone (remove it with
        /// [`Segment::unlink_name`](crate::Segment::unlink_name)); for named objects only.
        pub fn persist_name(&self) {
            if !crate::named::is_persistent(&self.0.arena) {
                // The name holds a reference of its own (never given back: the object's
                // memory is the named segment's, and goes with the file).
                self.0.add_ref();
                crate::named::persist(&self.0.arena);
            }
        }

        /// Whether two handles share one value.
        pub fn ptr_eq(a: &Self, b: &Self) -> bool {
            a.0.data == b.0.data
        }
    }

    impl<T: ShmSafe> std::ops::Deref for Shared<T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.0.slice()[0]
        }
    }

    impl<T: ShmSafe> Clone for Shared<T> {
        fn clone(&self) -> Self {
            Shared(self.0.clone())
        }
    }

    impl<T: ShmSafe + std::fmt::Debug> std::fmt::Debug for Shared<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_tuple("Shared").field(&**self).finish()
        }
    }

    impl<T: ShmSafe> serde::Serialize for Shared<T> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            self.0.serialize_with(s)
        }
    }

    impl<'de, T: ShmSafe> serde::Deserialize<'de> for Shared<T> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            let b = Block::deserialize_with(d)?;
            if b.len != 1 {
                return Err(serde::de::Error::custom("expected one value, got an array"));
            }
            Ok(Shared(b))
        }
    }

    /// A fixed-length array of `T` in shared memory (Python's `RawArray`): cross-process
    /// reference counted like [`Shared`], dereferences to `&[T]`.
    ///
    /// ```
    /// use multiproc_arena::Array;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// let a = Array::from_fn(4, |i| AtomicU64::new(i as u64)).unwrap();
    /// a[2].fetch_add(10, Ordering::Relaxed);
    /// assert_eq!(a[2].load(Ordering::Relaxed), 12);
    /// ```
    pub struct Array<T: ShmSafe>(Block<T>);

    impl<T: ShmSafe> Array<T> {
        /// `len` elements made by `f(index)`, in the global arena.
        pub fn from_fn(len: usize, f: impl FnMut(usize) -> T) -> Result<Self> {
            Self::from_fn_in(Arena::try_global()?, len, f)
        }

        /// `len` elements made by `f(index)`, in `arena`.
        pub fn from_fn_in(arena: &Arena, len: usize, f: impl FnMut(usize) -> T) -> Result<Self> {
            Block::new_with(arena, len, f).map(Array)
        }

        /// `len` values `f(0)`, `f(1)`, … under `name`, for processes that share no parent
        /// (see [`Shared::create_named`]). `AlreadyExists` if the name is taken.
        pub fn create_named(name: &str, len: usize, f: impl FnMut(usize) -> T) -> Result<Self> {
            let bytes = std::mem::size_of::<T>().saturating_mul(len).saturating_add(4096);
            let arena = crate::named::create(name, bytes)?;
            let a = Block::new_with(&arena, len, f).map(Array)?;
            crate::named::publish(&arena, a.0.off, len as u64, type_tag::<T>());
            Ok(a)
        }

        /// Opens the array another process created under `name` (any length): `NotFound`,
        /// `WrongType` (another element type), `NotInitialized`.
        pub fn open_named(name: &str) -> Result<Self> {
            let (_, _, len, _) = crate::named::root(name)?;
            let len = usize::try_from(len)
                .map_err(|_| Error::new(ErrorKind::WrongType, "length out of range"))?;
            open_root::<T>(name, len).map(Array)
        }

        /// Keeps the name after every user is gone (see [`Shared::persist_name`]).
        pub fn persist_name(&self) {
            if !crate::named::is_persistent(&self.0.arena) {
                self.0.add_ref();
                crate::named::persist(&self.0.arena);
            }
        }

        /// A raw pointer to the first element, for crates that synchronise access themselves
        /// (byte rings copying with `ptr::copy_nonoverlapping`).
        pub fn as_mut_ptr(&self) -> *mut T {
            self.0.data.as_ptr()
        }

        /// The arena holding the array.
        pub fn arena(&self) -> &Arena {
            &self.0.arena
        }

        /// Reserves the pages of the whole block (`fallocate`), so that writes cannot fail
        /// later for lack of memory: [`ErrorKind::NoSpace`] when memory is short. Needed only
        /// for arrays made by [`fresh_in`](Self::fresh_in); cheap when done already.
        #[doc(hidden)]
        pub fn reserve(&self) -> Result<()> {
            let (size, _) = layout::<T>(self.0.len)?;
            let off = self.0.off.raw() as usize;
            self.0.arena.segment().reserve(off & !4095, (off & 4095) + size)
        }

        /// How many handles exist across all processes (a snapshot).
        pub fn ref_count(&self) -> u32 {
            self.0.header().refs.load(Ordering::Relaxed)
        }
    }

    impl<T: ShmSafe + Copy> Array<T> {
        /// `len` copies of `value`, in the global arena.
        pub fn new(len: usize, value: T) -> Result<Self> {
            Self::from_fn(len, |_| value)
        }
    }

    impl<T: Zeroable> Array<T> {
        /// `len` zero values (all bytes zero) in the global arena, as Python's
        /// `Array('i', 10)`.
        pub fn zeroed(len: usize) -> Result<Self> {
            Self::from_fn(len, |_| zeroed::<T>())
        }

        /// `len` zero values in `arena` that cost no memory until they are touched: the
        /// block is one never handed out before, whose bytes are zero without being written,
        /// and its data pages are not reserved. Call [`reserve`](Self::reserve) before the
        /// first write (a write to an unreserved page may raise SIGBUS when shared memory
        /// runs out). For large arrays that may never be used (a pipe's bulk rings), in an
        /// arena of their own: freed, the block returns to the arena's free lists, whose
        /// blocks are assumed reserved.
        #[doc(hidden)]
        pub fn fresh_in(arena: &Arena, len: usize) -> Result<Self> {
            Block::new_fresh(arena, len).map(Array)
        }
    }

    impl<T: AtomicPlain> Array<AtomicCell<T>> {
        /// The value at `index` (an atomic load; see [`AtomicCell`]).
        ///
        /// # Panics
        /// If `index` is out of bounds, as `array[index]`.
        pub fn load(&self, index: usize) -> T {
            self[index].load()
        }

        /// Replaces the value at `index` (an atomic store; see [`AtomicCell`]).
        ///
        /// # Panics
        /// If `index` is out of bounds, as `array[index]`.
        pub fn store(&self, index: usize, value: T) {
            self[index].store(value)
        }

        /// Every value, each loaded atomically (not one snapshot of the whole array: a
        /// process writing meanwhile may show in some elements only).
        pub fn load_all(&self) -> Vec<T> {
            self.iter().map(AtomicCell::load).collect()
        }
    }

    impl<T: ShmSafe> std::ops::Deref for Array<T> {
        type Target = [T];
        fn deref(&self) -> &[T] {
            self.0.slice()
        }
    }

    impl<T: ShmSafe> Clone for Array<T> {
        fn clone(&self) -> Self {
            Array(self.0.clone())
        }
    }

    impl<T: ShmSafe + std::fmt::Debug> std::fmt::Debug for Array<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_tuple("Array").field(&&**self).finish()
        }
    }

    impl<T: ShmSafe> serde::Serialize for Array<T> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            self.0.serialize_with(s)
        }
    }

    impl<'de, T: ShmSafe> serde::Deserialize<'de> for Array<T> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            Block::deserialize_with(d).map(Array)
        }
    }
}

#[cfg(multiproc_loom)]
pub use heap::*;

#[cfg(multiproc_loom)]
mod heap {
    use crate::arena::Arena;
    use crate::error::{Error, ErrorKind, Result};
    use crate::shm_safe::ShmSafe;

    /// Under `--cfg multiproc_loom`: a loom `Arc`, so primitives built on `Shared` run in loom
    /// models unchanged (loom threads stand in for processes).
    #[derive(Debug)]
    pub struct Shared<T: ShmSafe>(loom::sync::Arc<T>);

    impl<T: ShmSafe> Shared<T> {
        /// Boxes `value`.
        pub fn new(value: T) -> Result<Self> {
            Ok(Shared(loom::sync::Arc::new(value)))
        }
        /// Boxes `value` (the arena is not used under loom).
        pub fn new_in(_arena: &Arena, value: T) -> Result<Self> {
            Self::new(value)
        }
        /// Boxes a zero value.
        pub fn zeroed() -> Result<Self>
        where
            T: crate::plain::Zeroable,
        {
            Self::new(crate::plain::zeroed::<T>())
        }
    }

    impl<T: ShmSafe> Clone for Shared<T> {
        fn clone(&self) -> Self {
            Shared(self.0.clone())
        }
    }

    impl<T: ShmSafe> std::ops::Deref for Shared<T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.0
        }
    }

    impl<T: ShmSafe> serde::Serialize for Shared<T> {
        fn serialize<S: serde::Serializer>(&self, _s: S) -> std::result::Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom(Error::kind_only(ErrorKind::NoTransferContext)))
        }
    }

    impl<'de, T: ShmSafe> serde::Deserialize<'de> for Shared<T> {
        fn deserialize<D: serde::Deserializer<'de>>(_d: D) -> std::result::Result<Self, D::Error> {
            Err(serde::de::Error::custom(Error::kind_only(ErrorKind::NoTransferContext)))
        }
    }
}
