//! [`QueueBuilder`]: a queue with non-default settings, in an arena or under a name.

use super::{
    Inner, Queue, DEFAULT_CAPACITY, DEFAULT_MAX_PROCESSES, DEFAULT_SPILLS, DEFAULT_SPILL_BUDGET,
    DEFAULT_STREAMS,
};
use crate::error::{Error, Result};
use crate::ring::{MAX_LOG_SLOTS, MAX_PARTIES, MIN_LOG_SLOTS, SLOT_BYTES};
use crate::shm::{ShmMem, MAX_SPILLS, MAX_STREAMS};
use multiproc_arena::sync::atomic::Ordering;
use multiproc_arena::{Arena, Offset};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::sync::Arc;

/// Builds a [`Queue`] with non-default settings ([`JoinableQueue::builder`](crate::JoinableQueue::builder)
/// gives a [`JoinableQueueBuilder`](crate::JoinableQueueBuilder) with the same settings).
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
        multiproc_arena::debug_fields!(f, self, "QueueBuilder" {
            maxsize, capacity, max_processes, max_spilled: self.spills, spill_budget
        })
    }
}

impl<T: Serialize + DeserializeOwned> QueueBuilder<T> {
    pub(super) fn new() -> Self {
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

    multiproc_arena::setters! {
        /// Most items in the queue at once (Python's `maxsize`); 0, the default, means no limit
        /// but the ring's capacity.
        fn maxsize(mut self, maxsize: usize) { self.maxsize = maxsize }

        /// Bytes of payload the ring holds (rounded up to a power of two, 16 KiB ..= 32 MiB;
        /// default 1 MiB). Messages larger than half of it are spilled (see
        /// [`max_spilled`](Self::max_spilled)).
        fn capacity(mut self, bytes: usize) { self.capacity = bytes }

        /// Most messages larger than half the ring that may wait in the queue at once (default
        /// 64, at most 1024). Each waits in the queue's spill file, whose memory is given back
        /// as soon as the message is taken; a `put` of such a message returns at once. When all
        /// are taken (or the memory cannot be had, or a message exceeds 64 GiB) a large message
        /// is streamed through the ring instead: that `put` waits for a consumer to take it.
        /// 0 streams every large message. The memory they hold is bounded by
        /// [`spill_budget`](Self::spill_budget).
        fn max_spilled(mut self, n: usize) { self.spills = n.min(MAX_SPILLS) }

        /// Most bytes of large messages that may wait in the queue's spill file at once
        /// (serialised size; default [`DEFAULT_SPILL_BUDGET`], 1 GiB), whichever process puts
        /// them. A large message that would take the spilled bytes past it is streamed through
        /// the ring instead: that `put` waits for a consumer (or its timeout). So the memory a
        /// queue holds for messages nobody has taken yet is at most the ring's capacity plus
        /// this budget. 0 streams every large message.
        fn spill_budget(mut self, bytes: u64) { self.spill_budget = bytes }

        /// Most processes that use the queue at the same time (default 1024, at most 1024).
        /// Entries of dead processes are reused.
        fn max_processes(mut self, n: usize) { self.max_processes = n.clamp(1, MAX_PARTIES) }
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
}

/// FNV-1a of the item type's name: a queue received from another process must carry the
/// same item type.
pub(crate) fn type_tag<T>() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in std::any::type_name::<T>().bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
