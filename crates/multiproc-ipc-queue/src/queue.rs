//! [`Queue`]: the multi-producer multi-consumer queue across processes, and its builder.

use crate::error::{Error, ErrorKind, GetError, PutError, Result};
use crate::ring::{
    cnt_of, notify, Block, Refused, Reservation, Ring, Waiter, CNT_MASK, FLAG_SPILL, FLAG_STREAM,
    MAX_LOG_SLOTS, MAX_PARTIES, MIN_LOG_SLOTS, REC_HDR, SLOT_BYTES,
};
use crate::shm::{self, ShmMem, MAX_SPILLS, MAX_STREAMS};
use crate::{spill, stream};
use multiproc_arena::sync::atomic::{AtomicU64, Ordering};
use multiproc_arena::{Arena, Offset};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::marker::PhantomData;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

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

/// Builds a [`Queue`] (or [`JoinableQueue`](crate::JoinableQueue),
/// [`SimpleQueue`](crate::SimpleQueue)) with non-default settings.
///
/// ```
/// use multiproc_ipc_queue::Queue;
/// let q: Queue<u64> = Queue::builder().maxsize(2).capacity(64 << 10).build().unwrap();
/// q.put(1).unwrap();
/// q.put(2).unwrap();
/// assert!(q.full());
/// assert!(q.try_put(3).unwrap_err().is_full());
/// ```
pub struct QueueBuilder<T> {
    maxsize: usize,
    capacity: usize,
    max_processes: usize,
    streams: usize,
    spills: usize,
    spill_budget: u64,
    _item: PhantomData<fn(T) -> T>,
}

impl<T> std::fmt::Debug for QueueBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueBuilder")
            .field("maxsize", &self.maxsize)
            .field("capacity", &self.capacity)
            .field("max_processes", &self.max_processes)
            .field("max_spilled", &self.spills)
            .field("spill_budget", &self.spill_budget)
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> QueueBuilder<T> {
    fn new() -> Self {
        QueueBuilder {
            maxsize: 0,
            capacity: DEFAULT_CAPACITY,
            max_processes: DEFAULT_MAX_PROCESSES,
            streams: DEFAULT_STREAMS,
            spills: DEFAULT_SPILLS,
            spill_budget: DEFAULT_SPILL_BUDGET,
            _item: PhantomData,
        }
    }

    /// Most items in the queue at once (Python's `maxsize`); 0, the default, means no limit
    /// but the ring's capacity.
    pub fn maxsize(mut self, maxsize: usize) -> Self {
        self.maxsize = maxsize;
        self
    }

    /// Bytes of payload the ring holds (rounded up to a power of two, 16 KiB ..= 32 MiB;
    /// default 1 MiB). Messages larger than half of it are spilled (see
    /// [`max_spilled`](Self::max_spilled)).
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
        self
    }

    /// Most messages larger than half the ring that may wait in the queue at once (default
    /// 64, at most 1024). Each waits in the queue's spill file, whose memory is given back
    /// as soon as the message is taken; a `put` of such a message returns at once. When all
    /// are taken (or the memory cannot be had, or a message exceeds 64 GiB) a large message
    /// is streamed through the ring instead: that `put` waits for a consumer to take it.
    /// 0 streams every large message. The memory they hold is bounded by
    /// [`spill_budget`](Self::spill_budget).
    pub fn max_spilled(mut self, n: usize) -> Self {
        self.spills = n.min(MAX_SPILLS);
        self
    }

    /// Most bytes of large messages that may wait in the queue's spill file at once
    /// (serialised size; default [`DEFAULT_SPILL_BUDGET`], 1 GiB), whichever process puts
    /// them. A large message that would take the spilled bytes past it is streamed through
    /// the ring instead: that `put` waits for a consumer (or its timeout). So the memory a
    /// queue holds for messages nobody has taken yet is at most the ring's capacity plus
    /// this budget. 0 streams every large message.
    pub fn spill_budget(mut self, bytes: u64) -> Self {
        self.spill_budget = bytes;
        self
    }

    /// Most processes that use the queue at the same time (default 1024, at most 1024).
    /// Entries of dead processes are reused.
    pub fn max_processes(mut self, n: usize) -> Self {
        self.max_processes = n.clamp(1, MAX_PARTIES);
        self
    }

    /// Creates the queue in the [global arena](Arena::global).
    pub fn build(self) -> Result<Queue<T>> {
        self.build_in(Arena::try_global().map_err(Error::arena)?)
    }

    /// Creates the queue in `arena`.
    pub fn build_in(self, arena: &Arena) -> Result<Queue<T>> {
        let slots = (self.capacity / SLOT_BYTES).max(1).next_power_of_two();
        let log = slots.trailing_zeros().clamp(MIN_LOG_SLOTS, MAX_LOG_SLOTS);
        let mem = ShmMem::create(
            arena,
            log,
            self.max_processes,
            self.streams.min(MAX_STREAMS),
            self.spills,
            self.maxsize as u64,
            type_tag::<T>(),
        )?;
        // Nobody else knows the queue yet: set before it can be shared.
        crate::ring::Mem::header(&mem).spill_budget.store(self.spill_budget, Ordering::Relaxed);
        Ok(Queue { inner: Arc::new(Inner::new(mem)), _item: PhantomData })
    }

    /// Creates the queue under `name` (a named segment in `/dev/shm`, mode 0600) that
    /// unrelated processes of the user can [`Queue::open`]. The name goes when the last
    /// process using the queue drops it, or is SIGKILLed (then the next
    /// `multiproc_arena::cleanup_orphans` removes it), unless
    /// [`Queue::persist_name`] keeps it. A named queue has no spill file (it could not be
    /// found by name): a message larger than half its ring streams through the ring, so its
    /// `put` waits for a consumer. `AlreadyExists` if the name is taken.
    pub fn create_named(self, name: &str) -> Result<Queue<T>> {
        let arena = multiproc_arena::named::create(name, self.capacity + (1 << 20))?;
        let q = QueueBuilder { spills: 0, ..self }.build_in(&arena)?;
        let off = Offset::from_raw(q.inner.ring.mem.ctrl_offset());
        multiproc_arena::named::publish(&arena, off, 0, type_tag::<T>());
        Ok(q)
    }

    /// Opens `name`, creating it with this builder's settings if it does not exist (one
    /// of several racing processes creates it).
    pub fn open_or_create_named(self, name: &str) -> Result<Queue<T>> {
        multiproc_arena::named::open_or_create(name, || self.create_named(name), Queue::open)
    }

    /// [`create_named`](Self::create_named) for a [`JoinableQueue`](crate::JoinableQueue)
    /// (open it with `JoinableQueue::open`).
    pub fn create_named_joinable(self, name: &str) -> Result<crate::JoinableQueue<T>> {
        self.create_named(name).map(crate::JoinableQueue::from)
    }

    /// Creates a [`JoinableQueue`](crate::JoinableQueue) in the global arena.
    pub fn build_joinable(self) -> Result<crate::JoinableQueue<T>> {
        self.build().map(crate::JoinableQueue::from)
    }

    /// Creates a [`JoinableQueue`](crate::JoinableQueue) in `arena`.
    pub fn build_joinable_in(self, arena: &Arena) -> Result<crate::JoinableQueue<T>> {
        self.build_in(arena).map(crate::JoinableQueue::from)
    }
}

/// FNV-1a of the item type's name: a queue received from another process must carry the
/// same item type.
fn type_tag<T>() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in std::any::type_name::<T>().bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A postcard output that only counts bytes (the size pass before writing into the ring).
struct SizeFlavor(usize);

impl postcard::ser_flavors::Flavor for SizeFlavor {
    type Output = usize;
    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0 += data.len();
        Ok(())
    }
    #[inline]
    fn try_push(&mut self, _: u8) -> postcard::Result<()> {
        self.0 += 1;
        Ok(())
    }
    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.0)
    }
}

/// A postcard output into one slot's payload (after the record header): the common small
/// message, serialised in one pass without a size pass or `memcpy` calls.
struct SlotFlavor<'a> {
    buf: &'a mut [u8; SLOT_BYTES],
    off: usize,
}

impl postcard::ser_flavors::Flavor for SlotFlavor<'_> {
    type Output = usize;
    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        let end = self.off + data.len();
        let Some(dst) = self.buf.get_mut(self.off..end) else {
            return Err(postcard::Error::SerializeBufferFull);
        };
        small_copy(dst, data);
        self.off = end;
        Ok(())
    }
    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        match self.buf.get_mut(self.off) {
            Some(d) => {
                *d = data;
                self.off += 1;
                Ok(())
            }
            None => Err(postcard::Error::SerializeBufferFull),
        }
    }
    #[inline]
    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.off)
    }
}

/// Copies `src` into `dst` (same length) with fixed-size moves for short lengths (varints,
/// small fields): a call to `memcpy` per field costs more than the field.
#[inline(always)]
fn small_copy(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    match n {
        0 => {}
        1 => dst[0] = src[0],
        2..=3 => {
            dst[..2].copy_from_slice(&src[..2]);
            dst[n - 2..].copy_from_slice(&src[n - 2..]);
        }
        4..=7 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..].copy_from_slice(&src[n - 4..]);
        }
        8..=16 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..].copy_from_slice(&src[n - 8..]);
        }
        _ => dst.copy_from_slice(src),
    }
}

/// A postcard output that writes straight into a reserved record.
struct RecordFlavor<'r, 'a> {
    res: &'r mut Reservation<'a, ShmMem>,
    off: usize,
    end: usize,
}

impl postcard::ser_flavors::Flavor for RecordFlavor<'_, '_> {
    type Output = usize;
    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if self.off + data.len() > self.end {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.res.write(self.off, data);
        self.off += data.len();
        Ok(())
    }
    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.try_extend(&[data])
    }
    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.off)
    }
}

/// Where a [`Batched`] postcard output sends its batches.
trait BatchSink {
    /// What the output gives back when serialisation is done.
    type Output;
    /// Sends `data` on (after everything sent before it).
    fn send(&mut self, data: &[u8]) -> postcard::Result<()>;
    /// The output, once everything was sent.
    fn output(self) -> Self::Output;
}

/// A postcard output that gathers small writes in `buf` and sends them to its sink in
/// batches (a write of half the buffer or more goes straight through); bytes leave in order.
struct Batched<S> {
    sink: S,
    buf: Vec<u8>,
}

impl<S: BatchSink> Batched<S> {
    fn new(sink: S, batch: usize) -> Self {
        Batched { sink, buf: Vec::with_capacity(batch) }
    }

    fn flush(&mut self) -> postcard::Result<()> {
        let r = self.sink.send(&self.buf);
        self.buf.clear();
        r
    }
}

impl<S: BatchSink> postcard::ser_flavors::Flavor for Batched<S> {
    type Output = S::Output;
    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        // Bytes leave in order: what is buffered goes before anything sent directly.
        if self.buf.len() + data.len() > self.buf.capacity()
            || data.len() >= self.buf.capacity() / 2
        {
            self.flush()?;
        }
        if data.len() >= self.buf.capacity() / 2 {
            self.sink.send(data)?;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(())
    }
    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.try_extend(&[data])
    }
    fn finalize(mut self) -> postcard::Result<S::Output> {
        self.flush()?;
        Ok(self.sink.output())
    }
}

/// Streams through a window record.
struct StreamSink<'r, 'a> {
    tx: &'r mut stream::Sender<'a, ShmMem>,
    /// Why the stream refused more bytes (deadline passed), for the caller.
    failed: &'r mut Option<Refused>,
}

impl BatchSink for StreamSink<'_, '_> {
    type Output = ();
    fn send(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.tx.write(data).map_err(|e| {
            *self.failed = Some(e);
            postcard::Error::SerializeBufferFull
        })
    }
    fn output(self) {}
}

/// Writes into a spill entry's region of the spill file; the output is the byte count.
struct SpillSink<'a> {
    ring: &'a Ring<ShmMem>,
    e: usize,
    base: u64,
    off: u64,
}

impl BatchSink for SpillSink<'_> {
    type Output = u64;
    fn send(&mut self, data: &[u8]) -> postcard::Result<()> {
        let end = self.off + data.len() as u64;
        if end > spill::MAX_SPILL {
            return Err(postcard::Error::SerializeBufferFull);
        }
        spill::will_write(self.ring, self.e, end);
        // A file that refuses bytes (out of memory...) makes the caller stream instead.
        self.ring
            .mem
            .spill_write(self.base + self.off, data)
            .map_err(|_| postcard::Error::SerializeBufferFull)?;
        self.off = end;
        Ok(())
    }
    fn output(self) -> u64 {
        self.off
    }
}

/// A spill entry the producer holds: given back unless published.
struct SpillHold<'a> {
    ring: &'a Ring<ShmMem>,
    me: u32,
    e: usize,
    gen: u32,
    armed: bool,
}

impl Drop for SpillHold<'_> {
    fn drop(&mut self) {
        if self.armed {
            spill::abandon(self.ring, self.me, self.e, self.gen);
        }
    }
}

/// Test support: see [`pause_after_spill_claim`].
static PAUSE_AFTER_SPILL_CLAIM: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Test support (not API): from now on, a `get` in this process that takes a spilled
/// message's descriptor stops there for ever, holding it (a test then kills the process).
#[doc(hidden)]
pub fn pause_after_spill_claim() {
    PAUSE_AFTER_SPILL_CLAIM.store(true, std::sync::atomic::Ordering::Relaxed);
}

thread_local! {
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Largest receive buffer a thread keeps between messages.
const KEEP_BUF: usize = 16 << 20;

/// Runs `f` with this thread's reusable buffer (a fresh one if it is in use).
fn with_buf<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    BUF.with(|b| match b.try_borrow_mut() {
        Ok(mut b) => {
            let r = f(&mut b);
            if b.capacity() > KEEP_BUF {
                *b = Vec::new(); // do not pin the memory of one huge message
            }
            r
        }
        Err(_) => f(&mut Vec::new()),
    })
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

    /// Puts `value`, waiting while the queue is full.
    ///
    /// Errors: `Closed`, `Failed` (the item does not serialise; the queue is unchanged).
    pub fn put(&self, value: T) -> Result<(), PutError<T>> {
        self.put_with(value, Block::Forever)
    }

    /// Puts `value` if there is room now (Python's `put_nowait`). A message that has to be
    /// streamed (see [`Queue`]) cannot be put without waiting for a consumer: it is refused
    /// as `Full`.
    pub fn try_put(&self, value: T) -> Result<(), PutError<T>> {
        self.put_with(value, Block::No)
    }

    /// Puts `value`, waiting at most `timeout` for room.
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_with(value, Block::after(timeout))
    }

    fn put_with(&self, value: T, block: Block) -> Result<(), PutError<T>> {
        let ring = &self.inner.ring;
        if ring.is_closed() {
            return Err(PutError::Closed(value));
        }
        let me = match self.inner.party() {
            Ok(m) => m,
            Err(e) => return Err(PutError::Failed(value, e)),
        };
        match self.put_bytes(&value, me, block) {
            Ok(()) => Ok(()),
            Err(Fail::Encode(e)) => Err(PutError::Failed(value, e)),
            Err(Fail::Ring(Refused::WouldBlock)) => Err(PutError::Full(value)),
            Err(Fail::Ring(Refused::Timeout)) => Err(PutError::Timeout(value)),
            Err(Fail::Ring(Refused::Closed)) => Err(PutError::Closed(value)),
        }
    }

    /// Serialises `value` straight into the ring: into one slot on the stack in a single
    /// pass if it fits; otherwise a size pass first, then a record written in place, a
    /// spilled message, or a stream. A value that does not serialise leaves the queue
    /// untouched.
    fn put_bytes(&self, value: &T, me: u32, block: Block) -> Result<(), Fail> {
        let ring = &self.inner.ring;
        // Most messages fit one slot: serialise into it at once (an error other than "does
        // not fit" is the item's own, and the queue is untouched).
        let mut slot = [0u8; SLOT_BYTES];
        match postcard::serialize_with_flavor(value, SlotFlavor { buf: &mut slot, off: REC_HDR }) {
            Ok(end) => {
                slot[..4].copy_from_slice(&((end - REC_HDR) as u32).to_le_bytes());
                let mut res = ring.reserve(me, 1, block)?;
                res.write_slot(&slot);
                res.commit();
                return Ok(());
            }
            Err(postcard::Error::SerializeBufferFull) => {}
            Err(e) => return Err(Fail::Encode(Error::encode(e))),
        }
        let size = postcard::serialize_with_flavor(value, SizeFlavor(0))
            .map_err(|e| Fail::Encode(Error::encode(e)))?;
        let span = (REC_HDR + size).div_ceil(SLOT_BYTES);
        if span <= ring.max_inline_span() as usize {
            let mut res = ring.reserve(me, span as u32, block)?;
            res.prepare(me, block)?;
            let mut hdr = [0u8; REC_HDR];
            hdr[..4].copy_from_slice(&(size as u32).to_le_bytes());
            res.write(0, &hdr);
            let end = REC_HDR + size;
            let flavor = RecordFlavor { res: &mut res, off: REC_HDR, end };
            match postcard::serialize_with_flavor(value, flavor) {
                Ok(n) if n == end => {
                    res.commit();
                    Ok(())
                }
                // A `Serialize` impl that gave another size the second time: the record is
                // dropped (aborted on drop) and the put fails.
                Ok(_) => Err(Fail::Encode(Error::new(
                    ErrorKind::Encode,
                    "the item serialised to different sizes",
                ))),
                Err(e) => Err(Fail::Encode(Error::encode(e))),
            }
        } else {
            if self.put_spilled(value, size as u64, me, block)? {
                return Ok(());
            }
            let mut tx = stream::Sender::open(ring, me, size as u64, block)?;
            let mut failed = None;
            let flavor = Batched::new(StreamSink { tx: &mut tx, failed: &mut failed }, 64 << 10);
            match postcard::serialize_with_flavor(value, flavor) {
                Ok(()) => Ok(tx.finish()?),
                // `tx` aborts the stream when dropped.
                Err(e) => Err(match failed {
                    Some(refused) => Fail::Ring(refused),
                    None => Fail::Encode(Error::encode(e)),
                }),
            }
        }
    }

    /// Spills `value` (`size` serialised bytes) into the spill file and puts its descriptor.
    /// `Ok(false)`: no spill entry or no memory: stream it instead.
    fn put_spilled(&self, value: &T, size: u64, me: u32, block: Block) -> Result<bool, Fail> {
        let ring = &self.inner.ring;
        if size > spill::MAX_SPILL {
            return Ok(false);
        }
        if !block.waits() && ring.is_full() {
            return Err(Fail::Ring(Refused::WouldBlock)); // do not copy for nothing
        }
        let budget = ring.header().spill_budget.load(Ordering::Relaxed);
        if size > budget {
            return Ok(false);
        }
        let Some((e, gen)) = spill::acquire(ring, me) else { return Ok(false) };
        let mut hold = SpillHold { ring, me, e, gen, armed: true };
        // Charge the whole message to the entry first, then count what every entry holds:
        // two producers racing past the budget both see each other's charge (SeqCst), so at
        // worst both stream, never both spill.
        if !spill::charge(ring, e, size, budget) {
            return Ok(false); // `hold` gives the entry back
        }
        let sink = SpillSink { ring, e, base: spill::region(e), off: 0 };
        let flavor = Batched::new(sink, 256 << 10);
        match postcard::serialize_with_flavor(value, flavor) {
            Ok(n) if n == size => {}
            Ok(_) => {
                return Err(Fail::Encode(Error::new(
                    ErrorKind::Encode,
                    "the item serialised to different sizes",
                )))
            }
            // No memory for the bytes (the entry is given back): stream them.
            Err(postcard::Error::SerializeBufferFull) => return Ok(false),
            Err(err) => return Err(Fail::Encode(Error::encode(err))),
        }
        let mut res = ring.reserve(me, 1, block)?;
        let mut slot = [0u8; SLOT_BYTES];
        slot[..spill::DESC_BYTES].copy_from_slice(&spill::descriptor(e, gen, size));
        res.write_slot(&slot);
        if !spill::publish(ring, me, e, gen, res.pos) {
            // Never expected (only a party that saw us dead takes our entry): drop it all.
            return Err(Fail::Encode(Error::new(ErrorKind::Encode, "spill entry lost")));
        }
        hold.armed = false;
        res.commit();
        Ok(true)
    }

    /// Decodes the spilled message (entry, generation, `total` bytes) and frees its entry.
    /// The caller holds its descriptor record.
    fn recv_spilled(&self, me: u32, desc: (usize, u32, u64)) -> Result<T, Error> {
        let ring = &self.inner.ring;
        let (e, gen, total) = desc;
        if !spill::is_queued(ring, e, gen) {
            return Err(Error::new(ErrorKind::Decode, "the spilled message is gone"));
        }
        let out = match usize::try_from(total) {
            Err(_) => Err(Error::kind_only(ErrorKind::OutOfMemory)),
            // SAFETY: the entry is QUEUED for the record we hold: nobody else reads, writes
            // or frees its region until we free it below, after the map is gone.
            Ok(len) => match unsafe { ring.mem.spill_map(spill::region(e), len) } {
                // Decoded straight from the file's pages (no copy into a buffer first).
                Ok(map) => postcard::from_bytes::<T>(map.bytes()).map_err(Error::decode),
                Err(_) => self.read_spilled(e, len),
            },
        };
        spill::consumed(ring, me, e, gen);
        out
    }

    /// [`recv_spilled`](Self::recv_spilled) without a map (no address space left): reads
    /// the bytes into a buffer.
    fn read_spilled(&self, e: usize, len: usize) -> Result<T, Error> {
        let mut buf = Vec::new();
        if buf.try_reserve_exact(len).is_err() {
            return Err(Error::kind_only(ErrorKind::OutOfMemory));
        }
        buf.resize(len, 0);
        self.inner.ring.mem.spill_read(spill::region(e), &mut buf).map_err(|io| {
            Error::new(ErrorKind::OutOfMemory, format!("reading a spilled message: {io}"))
        })?;
        postcard::from_bytes::<T>(&buf).map_err(Error::decode)
    }

    /// Takes the next item, waiting while the queue is empty.
    ///
    /// Errors: `Closed` (closed and drained), `Failed` (the message did not deserialise; it
    /// is consumed).
    pub fn get(&self) -> Result<T, GetError> {
        self.get_with(Block::Forever)
    }

    /// Takes the next item if there is one now (Python's `get_nowait`).
    pub fn try_get(&self) -> Result<T, GetError> {
        self.get_with(Block::No)
    }

    /// Takes the next item, waiting at most `timeout`. (A message streamed through the
    /// ring, once taken, is received whole even if that takes longer.)
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_with(Block::after(timeout))
    }

    fn get_with(&self, block: Block) -> Result<T, GetError> {
        let ring = &self.inner.ring;
        let me = self.inner.party().map_err(GetError::Failed)?;
        loop {
            let claim = ring.take(me, block).map_err(|r| match r {
                Refused::WouldBlock => GetError::Empty,
                Refused::Timeout => GetError::Timeout,
                Refused::Closed => GetError::Closed,
            })?;
            if claim.discard {
                continue; // dropping the claim releases the record
            }
            let mut hdr = [0u8; stream::DESC_BYTES];
            match claim.view(0, REC_HDR) {
                Some(v) => hdr[..REC_HDR].copy_from_slice(v),
                None => claim.read(0, &mut hdr[..REC_HDR]),
            }
            if hdr[4] & (FLAG_STREAM | FLAG_SPILL) as u8 != 0 {
                claim.read(0, &mut hdr);
            }
            let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
            let flags = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
            let h = ring.header();
            if flags & FLAG_SPILL != 0 {
                let Some(desc) = spill::parse(&hdr) else { continue };
                if PAUSE_AFTER_SPILL_CLAIM.load(std::sync::atomic::Ordering::Relaxed) {
                    loop {
                        std::thread::sleep(Duration::from_secs(1)); // to be killed here
                    }
                }
                let out = self.recv_spilled(me, desc);
                drop(claim);
                return out.map_err(|e| self.undelivered(e));
            }
            if flags & FLAG_STREAM != 0 {
                let Some(desc) = stream::parse(&hdr) else { continue };
                let mut buf = BUF
                    .with(|b| b.try_borrow_mut().map(|mut b| std::mem::take(&mut *b)))
                    .unwrap_or_default();
                let got = stream::recv(ring, me, &claim, desc, &mut buf);
                drop(claim);
                let out = match got {
                    Ok(()) => postcard::from_bytes::<T>(&buf).map_err(Error::decode),
                    Err(stream::Lost::NoMemory) => Err(Error::kind_only(ErrorKind::OutOfMemory)),
                    Err(stream::Lost::Producer) => {
                        h.skipped.fetch_add(1, Ordering::Relaxed);
                        h.discarded.fetch_add(1, Ordering::Relaxed);
                        notify(&h.ev_join);
                        continue;
                    }
                };
                if buf.capacity() <= KEEP_BUF {
                    buf.clear();
                    BUF.with(|b| {
                        if let Ok(mut b) = b.try_borrow_mut() {
                            *b = buf;
                        }
                    });
                }
                return out.map_err(|e| self.undelivered(e));
            }
            let span_bytes = claim.span as usize * SLOT_BYTES;
            let out = if len > span_bytes - REC_HDR {
                Err(Error::new(ErrorKind::Decode, "corrupt record length"))
            } else if let Some(view) = claim.view(REC_HDR, len) {
                postcard::from_bytes::<T>(view).map_err(Error::decode)
            } else {
                with_buf(|buf| {
                    buf.clear();
                    buf.resize(len, 0);
                    claim.read(REC_HDR, buf);
                    postcard::from_bytes::<T>(buf).map_err(Error::decode)
                })
            };
            drop(claim);
            return out.map_err(|e| self.undelivered(e));
        }
    }

    /// A taken message that is not delivered counts out of `join`.
    fn undelivered(&self, e: Error) -> GetError {
        let h = self.inner.ring.header();
        h.skipped.fetch_add(1, Ordering::Relaxed);
        notify(&h.ev_join);
        GetError::Failed(e)
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

/// Why an internal put step failed.
enum Fail {
    Encode(Error),
    Ring(Refused),
}

impl From<Refused> for Fail {
    fn from(r: Refused) -> Self {
        Fail::Ring(r)
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

/// Blocking iterator over a queue; see [`Queue::iter`].
pub struct Iter<'a, T> {
    queue: &'a Queue<T>,
}

impl<T: Serialize + DeserializeOwned> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        loop {
            match self.queue.get() {
                Ok(v) => return Some(v),
                Err(GetError::Failed(_)) => continue,
                Err(_) => return None,
            }
        }
    }
}

/// Non-blocking iterator over a queue; see [`Queue::try_iter`].
pub struct TryIter<'a, T> {
    queue: &'a Queue<T>,
}

impl<T: Serialize + DeserializeOwned> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        loop {
            match self.queue.try_get() {
                Ok(v) => return Some(v),
                Err(GetError::Failed(_)) => continue,
                Err(_) => return None,
            }
        }
    }
}

impl<T> std::fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}

impl<T> std::fmt::Debug for TryIter<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TryIter").finish_non_exhaustive()
    }
}

impl<'a, T: Serialize + DeserializeOwned> IntoIterator for &'a Queue<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}
