//! [`JoinableQueue`]: a [`Queue`] whose consumers mark items done and whose producers can
//! wait until every item was processed.

use crate::error::{Error, ErrorKind, Result};
use crate::queue::{Queue, QueueBuilder};
use crate::ring::Block;
use multiproc_arena::Arena;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

/// Python's `multiprocessing.JoinableQueue`: a [`Queue`] (it dereferences to one) plus
/// [`task_done`](Self::task_done) and [`join`](Self::join).
///
/// Every `put` adds an unfinished task; `task_done` marks one finished; `join` waits until
/// none is left. The count lives in the queue's shared memory, so any process may call any
/// of them. Beyond Python: a message whose producer died mid-put, or that a consumer had
/// taken when it was killed (before `get` returned), counts out, so `join` does not hang on
/// it; an item a consumer received and never marked done still holds `join`, as in Python.
///
/// ```
/// use multiproc_ipc_queue::JoinableQueue;
/// let q: JoinableQueue<u32> = JoinableQueue::new().unwrap();
/// q.put(7).unwrap();
/// assert!(q.join_timeout(std::time::Duration::from_millis(10)).unwrap_err().is_timeout());
/// assert_eq!(q.get().unwrap(), 7);
/// q.task_done().unwrap();
/// q.join();
/// assert!(q.task_done().is_err()); // too many
/// ```
pub struct JoinableQueue<T>(Queue<T>);

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// Opens the joinable queue another process created under `name` with
    /// [`JoinableQueueBuilder::create_named`].
    pub fn open(name: &str) -> crate::Result<Self> {
        Queue::open(name).map(JoinableQueue)
    }

    /// A joinable queue in the global arena (default capacity, no item limit).
    pub fn new() -> Result<Self> {
        Queue::new().map(JoinableQueue)
    }

    /// A joinable queue in `arena`.
    pub fn new_in(arena: &Arena) -> Result<Self> {
        Queue::new_in(arena).map(JoinableQueue)
    }

    /// A builder for a joinable queue with a `maxsize`, a capacity, ...;
    /// [`build`](JoinableQueueBuilder::build) returns a `JoinableQueue`.
    pub fn builder() -> JoinableQueueBuilder<T> {
        JoinableQueueBuilder(Queue::builder())
    }

    /// Marks one task finished. Calling it more times than items were put is an error of
    /// kind [`TaskDoneTooManyTimes`](crate::ErrorKind::TaskDoneTooManyTimes).
    pub fn task_done(&self) -> Result<()> {
        self.0.task_done()
    }

    /// Waits until every item put was marked done.
    pub fn join(&self) {
        self.0.join_with(Block::Forever);
    }

    /// Waits at most `timeout` for every item to be marked done: `Ok(())` once they are;
    /// `Err(e)` with `e.is_timeout()` ([`ErrorKind::Timeout`]) when tasks are still
    /// unfinished as the time passes (nothing was changed).
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        if self.0.join_with(Block::after(timeout)) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Timeout,
                format!("{} tasks still unfinished", self.unfinished_tasks()),
            ))
        }
    }

    /// Items put and not yet marked done (a snapshot).
    pub fn unfinished_tasks(&self) -> usize {
        self.0.unfinished() as usize
    }

    /// The queue underneath.
    pub fn as_queue(&self) -> &Queue<T> {
        &self.0
    }
}

impl<T> From<Queue<T>> for JoinableQueue<T> {
    fn from(q: Queue<T>) -> Self {
        JoinableQueue(q)
    }
}

impl<T> std::ops::Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.0
    }
}

crate::wrapper::queue_wrapper!(JoinableQueue);

/// Builds a [`JoinableQueue`] with non-default settings: the settings of [`QueueBuilder`],
/// and [`build`](Self::build) and its siblings return a `JoinableQueue`.
///
/// ```
/// use multiproc_ipc_queue::JoinableQueue;
/// let q: JoinableQueue<u64> = JoinableQueue::builder().maxsize(2).build().unwrap();
/// q.put(1).unwrap();
/// assert_eq!(q.unfinished_tasks(), 1);
/// assert_eq!(q.get().unwrap(), 1);
/// q.task_done().unwrap();
/// q.join();
/// ```
pub struct JoinableQueueBuilder<T>(QueueBuilder<T>);

impl<T> std::fmt::Debug for JoinableQueueBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("JoinableQueueBuilder").field(&self.0).finish()
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueueBuilder<T> {
    /// As [`QueueBuilder::maxsize`].
    pub fn maxsize(self, maxsize: usize) -> Self {
        JoinableQueueBuilder(self.0.maxsize(maxsize))
    }

    /// As [`QueueBuilder::capacity`].
    pub fn capacity(self, bytes: usize) -> Self {
        JoinableQueueBuilder(self.0.capacity(bytes))
    }

    /// As [`QueueBuilder::max_spilled`].
    pub fn max_spilled(self, n: usize) -> Self {
        JoinableQueueBuilder(self.0.max_spilled(n))
    }

    /// As [`QueueBuilder::spill_budget`].
    pub fn spill_budget(self, bytes: u64) -> Self {
        JoinableQueueBuilder(self.0.spill_budget(bytes))
    }

    /// As [`QueueBuilder::max_processes`].
    pub fn max_processes(self, n: usize) -> Self {
        JoinableQueueBuilder(self.0.max_processes(n))
    }

    /// Creates the joinable queue in the [global arena](Arena::global).
    pub fn build(self) -> Result<JoinableQueue<T>> {
        self.0.build().map(JoinableQueue)
    }

    /// Creates the joinable queue in `arena`.
    pub fn build_in(self, arena: &Arena) -> Result<JoinableQueue<T>> {
        self.0.build_in(arena).map(JoinableQueue)
    }

    /// Creates the joinable queue under `name`, for [`JoinableQueue::open`]; as
    /// [`QueueBuilder::create_named`].
    pub fn create_named(self, name: &str) -> Result<JoinableQueue<T>> {
        self.0.create_named(name).map(JoinableQueue)
    }

    /// Opens `name`, creating it with this builder's settings if it does not exist; as
    /// [`QueueBuilder::open_or_create_named`].
    pub fn open_or_create_named(self, name: &str) -> Result<JoinableQueue<T>> {
        self.0.open_or_create_named(name).map(JoinableQueue)
    }
}
