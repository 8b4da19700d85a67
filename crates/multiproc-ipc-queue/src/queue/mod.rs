//! [`Queue`]: the multi-producer multi-consumer queue across processes, and its builder.

use crate::error::{Error, ErrorKind, GetError, Result};
use crate::ring::{cnt_of, notify, Block, Ring, Waiter, CNT_MASK};
use crate::shm::{self, ShmMem};
use crate::spill;
use multiproc_arena::sync::atomic::{AtomicU64, Ordering};
use multiproc_arena::Arena;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;
use std::os::fd::AsFd;
use std::sync::Arc;

mod builder;
mod flavor;
mod get;
mod put;

pub(crate) use builder::type_tag;
pub use builder::QueueBuilder;
pub use get::pause_after_spill_claim;

/// Default ring capacity: 1 MiB of payload.
pub const DEFAULT_CAPACITY: usize = 1 << 20;
/// Default size of the party table (processes using one queue at once).
pub(crate) const DEFAULT_MAX_PROCESSES: usize = 1024;
const DEFAULT_STREAMS: usize = 8;
/// Default size of the spill table (large messages waiting at once).
pub(crate) const DEFAULT_SPILLS: usize = 64;
/// Default spill budget: bytes of large messages that may wait in a queue's spill file at
/// once (see [`QueueBuilder::spill_budget`]).
pub const DEFAULT_SPILL_BUDGET: u64 = 1 << 30;

/// A queue shared by processes: any number of producers and consumers, FIFO per producer.
///
/// Python's `multiprocessing.Queue`. Items are serialised with postcard into a ring of slots
/// in shared memory (an [`Arena`]); the ring's byte capacity and an optional item limit
/// (`maxsize`) bound it. A message larger than half the ring is *spilled*: its bytes go to
/// the queue's spill file (anonymous shared memory that lives as long as the queue's
/// handles) and a small descriptor goes through the ring, so `put` of any size returns
/// without waiting for a consumer, and a producer may exit before anyone reads (no
/// put-then-join deadlock) — as long as the queue's spill budget allows: up to
/// [`spill_budget`](QueueBuilder::spill_budget) bytes (default 1 GiB) in at most
/// [`max_spilled`](QueueBuilder::max_spilled) messages (default 64) wait at once. Beyond
/// that, or when the memory cannot be had, a large message is streamed through the ring
/// instead, and that `put` returns only once a consumer has taken most of it.
///
/// Handles are cheap to clone, are inherited by forked children, and implement serde's
/// traits inside a handle-transfer context, so a queue can be a spawned child's argument or
/// travel over a `Connection`.
///
/// Beyond Python: a producer or consumer killed at any instant never corrupts the queue.
/// Every message is delivered whole and at most once, FIFO per producer; a message whose
/// producer died while writing it is dropped, never delivered in part; the only other
/// message that can be lost is the one a consumer had taken when it died. Space held by a
/// dead process is reclaimed by whoever waits for it (within a few milliseconds).
///
/// ```
/// use multiproc_ipc_queue::Queue;
/// let q: Queue<String> = Queue::new().unwrap();
/// q.put("hello".to_string()).unwrap();
/// assert_eq!(q.qsize(), 1);
/// assert_eq!(q.get().unwrap(), "hello");
/// assert!(q.try_get().unwrap_err().is_empty());
/// ```
pub struct Queue<T> {
    pub(crate) inner: Arc<Inner>,
    _item: PhantomData<fn(T) -> T>,
}

/// The per-process part of a queue handle (shared by clones).
pub(crate) struct Inner {
    pub(crate) ring: Ring<ShmMem>,
    /// `(fork epoch + 1) << 16 | party index`, 0 before registration.
    me: AtomicU64,
}

impl Inner {
    /// A process's handle on a queue whose reference it holds (the creator's, the sender's
    /// taken for it, or one it took on opening): recorded in the arena's fork registry, so a
    /// forked child's inherited handle is counted for it (see `multiproc_arena::fork`).
    fn new(mem: ShmMem) -> Inner {
        let inner = Inner { ring: Ring::new(mem), me: AtomicU64::new(0) };
        multiproc_arena::fork::acquired_wide(&inner.ring.header().refs, || {
            inner.ring.mem.release()
        });
        inner
    }

    /// This process's party index, registering on first use (and again after a fork).
    #[inline]
    pub(crate) fn party(&self) -> Result<u32> {
        // The arena's fork generation: changes in a forked child, so an inherited index is
        // noticed without a `getpid` system call.
        let epoch = multiproc_arena::fork::epoch() + 1;
        let v = self.me.load(Ordering::Relaxed);
        if v >> 16 == epoch {
            return Ok((v & 0xffff) as u32);
        }
        let idx = shm::register(&self.ring)?;
        self.me.store(epoch << 16 | idx as u64, Ordering::Relaxed);
        Ok(idx)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A forked child's inherited handle was counted for it at the fork: it gives back
        // its own reference like any process.
        let h = self.ring.header();
        multiproc_arena::fork::released_wide(&h.refs);
        if multiproc_arena::fork::drop_ref_wide(&h.refs) {
            // SAFETY: the count reached zero: no handle in any process uses the queue.
            unsafe { self.ring.mem.free() };
        }
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// A queue in the [global arena](Arena::global) with the default capacity (1 MiB) and no
    /// item limit.
    pub fn new() -> Result<Self> {
        Self::builder().build()
    }

    /// A queue in `arena`.
    pub fn new_in(arena: &Arena) -> Result<Self> {
        Self::builder().build_in(arena)
    }

    /// A builder for a queue with a `maxsize`, a capacity, ...
    pub fn builder() -> QueueBuilder<T> {
        QueueBuilder::new()
    }

    /// Opens the queue another process created under `name` with
    /// [`QueueBuilder::create_named`]: `NotFound` if there is none, `WrongType` if the name
    /// holds another object or a queue of another item type (see [`Error::arena_kind`]).
    pub fn open(name: &str) -> Result<Self> {
        let (arena, off, _, tag) = multiproc_arena::named::root(name)?;
        if tag != type_tag::<T>() {
            return Err(Error::arena(multiproc_arena::Error::new(
                multiproc_arena::ErrorKind::WrongType,
                format!("{name} does not hold a Queue<{}>", std::any::type_name::<T>()),
            )));
        }
        let mem = ShmMem::open_named(arena, off.raw(), tag)?;
        Ok(Queue { inner: Arc::new(Inner::new(mem)), _item: PhantomData })
    }

    /// Keeps the name after every user is gone (a named queue only; remove it with
    /// `multiproc_arena::Segment::unlink_name`).
    pub fn persist_name(&self) {
        let arena = self.inner.ring.mem.arena();
        if !multiproc_arena::named::is_persistent(arena) {
            // The name holds a reference of its own (the queue's memory is the named
            // segment's, and goes with the file).
            self.inner.ring.header().refs.fetch_add(1, Ordering::Relaxed);
            multiproc_arena::named::persist(arena);
        }
    }

    /// Items in the queue (Python's `qsize`; a snapshot that other processes may change at
    /// once). Counts puts in progress.
    pub fn qsize(&self) -> usize {
        self.inner.ring.len() as usize
    }

    /// Whether the queue holds no items (a snapshot).
    pub fn empty(&self) -> bool {
        self.inner.ring.is_empty()
    }

    /// Whether a one-slot item would not fit now (`maxsize` reached, or the ring full).
    pub fn full(&self) -> bool {
        self.inner.ring.is_full()
    }

    /// The item limit, if any.
    pub fn maxsize(&self) -> Option<usize> {
        match self.inner.ring.maxsize() {
            0 => None,
            n => Some(n as usize),
        }
    }

    /// Payload bytes the ring holds.
    pub fn capacity(&self) -> usize {
        self.inner.ring.data_bytes()
    }

    /// Closes the queue for every process: puts fail with `Closed`, gets return what is left
    /// and then `Closed`; every blocked call wakes. Closing twice is fine.
    pub fn close(&self) {
        self.inner.ring.close();
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        self.inner.ring.is_closed()
    }

    /// The arena holding the queue.
    pub fn arena(&self) -> &Arena {
        self.inner.ring.mem.arena()
    }

    /// Messages dropped because their producer died while writing them (or gave up
    /// streaming them) — never delivered in part.
    pub fn discarded(&self) -> u64 {
        self.inner.ring.header().discarded.load(Ordering::Relaxed)
    }

    /// Spilled messages held (taken or not), the bytes the spill table accounts for them,
    /// and the bytes of memory the spill file holds for them (tests and diagnostics).
    #[doc(hidden)]
    pub fn spill_usage(&self) -> (usize, u64, u64) {
        use std::os::unix::fs::MetadataExt;
        let ring = &self.inner.ring;
        let (n, bytes) = spill::held(ring);
        let file = ring.mem.spill_file().metadata().map(|m| m.blocks() * 512).unwrap_or(0);
        // Less the identity header's page, which the file always holds.
        let file = file.saturating_sub(4096);
        (n, bytes, file)
    }

    /// Frees the spill entries of dead parties and of dropped messages now (normally done
    /// when a producer finds no free entry).
    #[doc(hidden)]
    pub fn reclaim_spilled(&self) {
        if let Ok(me) = self.inner.party() {
            spill::reclaim_dead(&self.inner.ring, me);
        }
    }

    /// A blocking iterator: yields items until the queue is closed and drained. Messages
    /// that do not deserialise are skipped (use [`get`](Self::get) to see them).
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { queue: self }
    }

    /// A non-blocking iterator: yields the items available now.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { queue: self }
    }

    /// Items put and not yet marked done (see [`JoinableQueue`](crate::JoinableQueue)).
    pub(crate) fn unfinished(&self) -> u64 {
        let h = self.inner.ring.header();
        let skipped = h.skipped.load(Ordering::Acquire);
        let done = h.done.load(Ordering::Acquire);
        let put = cnt_of(h.tail.load(Ordering::Acquire));
        put.wrapping_sub(skipped.wrapping_add(done)) & CNT_MASK
    }

    pub(crate) fn task_done(&self) -> Result<()> {
        let h = self.inner.ring.header();
        loop {
            let done = h.done.load(Ordering::Acquire);
            let skipped = h.skipped.load(Ordering::Acquire);
            let put = cnt_of(h.tail.load(Ordering::Acquire));
            let unfinished = put.wrapping_sub(skipped.wrapping_add(done)) & CNT_MASK;
            if unfinished == 0 || unfinished > CNT_MASK / 2 {
                return Err(Error::new(
                    ErrorKind::TaskDoneTooManyTimes,
                    "more task_done() calls than items put",
                ));
            }
            if h.done.compare_exchange(done, done + 1, Ordering::AcqRel, Ordering::Relaxed).is_ok()
            {
                notify(&h.ev_join);
                return Ok(());
            }
        }
    }

    pub(crate) fn join_with(&self, block: Block) -> bool {
        let h = self.inner.ring.header();
        let mut w = Waiter::new(block);
        loop {
            let u = self.unfinished();
            if u == 0 {
                return true;
            }
            if w.pause(&h.ev_join, true, || self.unfinished() != u).is_err() {
                return self.unfinished() == 0;
            }
        }
    }
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue { inner: self.inner.clone(), _item: PhantomData }
    }
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.inner.ring;
        f.debug_struct("Queue")
            .field("qsize", &r.len())
            .field("capacity", &r.data_bytes())
            .field("maxsize", &r.maxsize())
            .field("closed", &r.is_closed())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Wire {
    arena: Arena,
    ctrl: u64,
    tag: u64,
    /// Index of the spill file's descriptor in the transfer.
    spill: u32,
}

impl<T> Serialize for Queue<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if !multiproc_arena::transfer::in_context() {
            return Err(serde::ser::Error::custom(
                "a queue can only be serialised inside a transfer context \
                 (pass it as a process argument or over a Connection)",
            ));
        }
        let r = &self.inner.ring;
        let tag = r.header().type_tag.load(Ordering::Relaxed);
        let spill = multiproc_arena::transfer::push_fd(r.mem.spill_file().as_fd())
            .map_err(multiproc_arena::transfer::ser_error)?;
        // The receiver adopts this reference.
        r.header().refs.fetch_add(1, Ordering::Relaxed);
        Wire { arena: r.mem.arena().clone(), ctrl: r.mem.ctrl_offset(), tag, spill }.serialize(s)
    }
}

impl<'de, T: Serialize + DeserializeOwned> Deserialize<'de> for Queue<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        if w.tag != type_tag::<T>() {
            return Err(serde::de::Error::custom(Error::new(
                ErrorKind::InvalidHandle,
                "the queue's item type differs from the sender's",
            )));
        }
        let spill = multiproc_arena::transfer::take_fd(w.spill)
            .map_err(multiproc_arena::transfer::de_error)?;
        let mem = ShmMem::open(w.arena, w.ctrl, w.tag, spill).map_err(serde::de::Error::custom)?;
        Ok(Queue { inner: Arc::new(Inner::new(mem)), _item: PhantomData })
    }
}

/// Defines an iterator over a queue whose items come from `Queue::$get`, skipping messages
/// that do not deserialise (see [`next_item`]).
macro_rules! queue_iter {
    ($(#[$doc:meta])* $name:ident, $get:ident) => {
        $(#[$doc])*
        pub struct $name<'a, T> {
            queue: &'a Queue<T>,
        }

        impl<T: Serialize + DeserializeOwned> Iterator for $name<'_, T> {
            type Item = T;
            fn next(&mut self) -> Option<T> {
                next_item(|| self.queue.$get())
            }
        }

        impl<T> std::fmt::Debug for $name<'_, T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    };
}

queue_iter!(
    /// Blocking iterator over a queue; see [`Queue::iter`].
    Iter,
    get
);
queue_iter!(
    /// Non-blocking iterator over a queue; see [`Queue::try_iter`].
    TryIter,
    try_get
);

/// The iterators' step: the next item `get` delivers, skipping messages that do not
/// deserialise; `None` at the first other error (closed, empty, timed out).
fn next_item<T>(mut get: impl FnMut() -> Result<T, GetError>) -> Option<T> {
    loop {
        match get() {
            Ok(v) => return Some(v),
            Err(GetError::Failed(_)) => continue,
            Err(_) => return None,
        }
    }
}

impl<'a, T: Serialize + DeserializeOwned> IntoIterator for &'a Queue<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}
