//! The queue's operations as traits, for code that works with a local queue or a manager's
//! queue proxy alike (the umbrella crate's API guide: "Local objects and their proxies").

use crate::error::{GetError, PutError, Result};
use crate::joinable::JoinableQueue;
use crate::queue::Queue;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

/// A FIFO queue of `T` (Python's `Queue`): implemented by [`Queue`], [`JoinableQueue`] and the
/// manager's `QueueProxy`, with the same error types. Where the local queue cannot fail
/// (`qsize`, `empty`, `full`), the trait wraps its answer in `Ok`.
///
/// ```
/// use multiproc_ipc_queue::{Queue, QueueOps};
/// use std::time::Duration;
///
/// // Written once, for a local queue or a manager's proxy.
/// fn drain<Q: QueueOps<u32>>(q: &Q) -> Vec<u32> {
///     let mut out = Vec::new();
///     while let Ok(v) = q.get_timeout(Duration::from_millis(1)) {
///         out.push(v);
///     }
///     out
/// }
///
/// let q: Queue<u32> = Queue::new().unwrap();
/// q.put(1).unwrap();
/// q.put(2).unwrap();
/// assert_eq!(drain(&q), [1, 2]);
/// ```
pub trait QueueOps<T> {
    /// Puts `item`, waiting while the queue is full.
    fn put(&self, item: T) -> std::result::Result<(), PutError<T>>;
    /// Puts `item` if there is room now; `Full` (would block) with the item otherwise.
    fn try_put(&self, item: T) -> std::result::Result<(), PutError<T>>;
    /// Puts `item`, waiting at most `timeout`; `Timeout` with the item when it stays full.
    fn put_timeout(&self, item: T, timeout: Duration) -> std::result::Result<(), PutError<T>>;
    /// Takes the oldest item, waiting for one.
    fn get(&self) -> std::result::Result<T, GetError>;
    /// Takes the oldest item if there is one now; `Empty` (would block) otherwise.
    fn try_get(&self) -> std::result::Result<T, GetError>;
    /// Takes the oldest item, waiting at most `timeout`; `Timeout` when none came.
    fn get_timeout(&self, timeout: Duration) -> std::result::Result<T, GetError>;
    /// Items in the queue (a snapshot).
    fn qsize(&self) -> Result<usize>;
    /// Whether the queue holds no items (a snapshot).
    fn empty(&self) -> Result<bool>;
    /// Whether the queue is full (a snapshot).
    fn full(&self) -> Result<bool>;
}

/// A queue whose items are marked done (Python's `JoinableQueue`): implemented by
/// [`JoinableQueue`] and the manager's `QueueProxy`.
pub trait JoinableQueueOps<T>: QueueOps<T> {
    /// Marks one item taken earlier as processed
    /// ([`TaskDoneTooManyTimes`](crate::ErrorKind::TaskDoneTooManyTimes) if called more
    /// often than items were put).
    fn task_done(&self) -> Result<()>;
    /// Waits until every item put was marked done.
    fn join(&self) -> Result<()>;
    /// [`join`](Self::join) for at most `timeout`; a timeout error while tasks are unfinished.
    fn join_timeout(&self, timeout: Duration) -> Result<()>;
}

macro_rules! queue_ops {
    ($Q:ident) => {
        impl<T: Serialize + DeserializeOwned> QueueOps<T> for $Q<T> {
            fn put(&self, item: T) -> std::result::Result<(), PutError<T>> {
                Queue::put(self, item)
            }
            fn try_put(&self, item: T) -> std::result::Result<(), PutError<T>> {
                Queue::try_put(self, item)
            }
            fn put_timeout(
                &self,
                item: T,
                timeout: Duration,
            ) -> std::result::Result<(), PutError<T>> {
                Queue::put_timeout(self, item, timeout)
            }
            fn get(&self) -> std::result::Result<T, GetError> {
                Queue::get(self)
            }
            fn try_get(&self) -> std::result::Result<T, GetError> {
                Queue::try_get(self)
            }
            fn get_timeout(&self, timeout: Duration) -> std::result::Result<T, GetError> {
                Queue::get_timeout(self, timeout)
            }
            fn qsize(&self) -> Result<usize> {
                Ok(Queue::qsize(self))
            }
            fn empty(&self) -> Result<bool> {
                Ok(Queue::empty(self))
            }
            fn full(&self) -> Result<bool> {
                Ok(Queue::full(self))
            }
        }
    };
}

queue_ops!(Queue);
queue_ops!(JoinableQueue);

impl<T: Serialize + DeserializeOwned> JoinableQueueOps<T> for JoinableQueue<T> {
    fn task_done(&self) -> Result<()> {
        JoinableQueue::task_done(self)
    }
    fn join(&self) -> Result<()> {
        JoinableQueue::join(self);
        Ok(())
    }
    fn join_timeout(&self, timeout: Duration) -> Result<()> {
        JoinableQueue::join_timeout(self, timeout)
    }
}
