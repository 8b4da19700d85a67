//! [`SimpleQueue`]: the small API of Python's `multiprocessing.SimpleQueue`.

use crate::error::{GetError, PutError, Result};
use crate::queue::Queue;
use multiproc_arena::Arena;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

/// Python's `multiprocessing.SimpleQueue`: `put`, `get`, `empty`, `close` — no item limit.
///
/// The same ring as [`Queue`] (so the same speed and the same behaviour when a process is
/// killed), with a smaller API.
///
/// ```
/// use multiproc_ipc_queue::SimpleQueue;
/// let q = SimpleQueue::new().unwrap();
/// assert!(q.empty());
/// q.put((1, "one".to_string())).unwrap();
/// assert_eq!(q.get().unwrap(), (1, "one".to_string()));
/// q.close();
/// q.close(); // twice is fine
/// ```
pub struct SimpleQueue<T>(Queue<T>);

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// A simple queue in the global arena.
    pub fn new() -> Result<Self> {
        Queue::new().map(SimpleQueue)
    }

    /// A simple queue in `arena`.
    pub fn new_in(arena: &Arena) -> Result<Self> {
        Queue::new_in(arena).map(SimpleQueue)
    }

    /// Puts `value`, waiting while the ring is full.
    pub fn put(&self, value: T) -> Result<(), PutError<T>> {
        self.0.put(value)
    }

    /// Takes the next item, waiting while the queue is empty.
    pub fn get(&self) -> Result<T, GetError> {
        self.0.get()
    }

    /// Takes the next item if there is one now.
    pub fn try_get(&self) -> Result<T, GetError> {
        self.0.try_get()
    }

    /// Takes the next item, waiting at most `timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.0.get_timeout(timeout)
    }

    /// Whether the queue is empty (a snapshot).
    pub fn empty(&self) -> bool {
        self.0.empty()
    }

    /// Closes the queue (for every process); closing twice is fine.
    pub fn close(&self) {
        self.0.close()
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    /// The queue underneath.
    pub fn as_queue(&self) -> &Queue<T> {
        &self.0
    }
}

crate::wrapper::queue_wrapper!(SimpleQueue);
