//! [`JoinableQueue`]: a [`Queue`] whose consumers mark items done and whose producers can
//! wait until every item was processed.

use crate::error::Result;
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
/// assert!(!q.join_timeout(std::time::Duration::from_millis(10)));
/// assert_eq!(q.get().unwrap(), 7);
/// q.task_done().unwrap();
/// q.join();
/// assert!(q.task_done().is_err()); // too many
/// ```
pub struct JoinableQueue<T>(Queue<T>);

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// Opens the joinable queue another process created under `name` with
    /// [`QueueBuilder::create_named_joinable`](crate::QueueBuilder::create_named_joinable).
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

    /// A builder; finish with [`QueueBuilder::build_joinable`].
    pub fn builder() -> QueueBuilder<T> {
        Queue::builder()
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

    /// Waits at most `timeout` for every item to be marked done; returns whether they were.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.0.join_with(Block::after(timeout))
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
