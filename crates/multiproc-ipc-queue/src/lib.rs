//! Python's `multiprocessing` queues for Rust processes on Linux: [`Queue`], [`SimpleQueue`]
//! and [`JoinableQueue`], in shared memory, fast, for messages of any size, and never
//! corrupted by a process killed while using them.
//!
//! A queue is a ring of 64-byte slots in an [`Arena`](multiproc_arena::Arena) (the global
//! one by default) with a state word per slot; producers and consumers in any number of
//! processes claim records with one compare-and-swap, copy serialised (postcard) bytes in and
//! out, and sleep on futexes only when they must. A message larger than half the ring is
//! *spilled*: its bytes wait in the queue's spill file (an anonymous memory file that lives
//! as long as the queue's handles, so nothing can leak into `/dev/shm`) and a one-slot
//! descriptor goes through the ring, so `put` returns without waiting for a consumer and a
//! producer may exit before anyone reads (no put-then-join deadlock). Only when every spill
//! entry is taken ([`QueueBuilder::max_spilled`], default 64) or no memory can be had is a
//! large message streamed through the ring instead, and that `put` waits for a consumer.
//! The protocols are documented in the `ring`, `spill` and `stream` module sources and
//! checked with loom.
//!
//! A queue crosses processes with this crate alone: by **fork** (any fork through libc; the
//! child's inherited handle is counted for it, see `multiproc_arena::fork`), **by name**
//! between processes that share no parent ([`QueueBuilder::create_named`], [`Queue::open`];
//! a named queue streams large messages instead of spilling them; see
//! `examples/named_queue.rs`), and by **handle transfer** to spawned children or over a
//! `Connection`.
//!
//! - [`Queue`]: `put`/`get` (blocking, `try_`, `_timeout`), `qsize`, `empty`, `full`,
//!   `close`, iterators; built with [`QueueBuilder`] (`maxsize`, `capacity`).
//! - [`JoinableQueue`]: a `Queue` with `task_done`, `join` and `join_timeout`; built with
//!   [`JoinableQueueBuilder`] (the same settings).
//! - [`SimpleQueue`]: `put`, `get`, `empty`, `close`.
//! - [`PutError`] (hands the item back), [`GetError`], [`Error`] / [`ErrorKind`] — also the
//!   errors of the manager's queue proxy (`multiproc_manager::QueueProxy`).
//! - [`QueueOps`], [`JoinableQueueOps`]: the operations as traits, implemented by these
//!   queues and the manager's queue proxy, for code that works with either.
//!
//! ```
//! use multiproc_ipc_queue::Queue;
//! use std::time::Duration;
//!
//! let q: Queue<(u32, String)> = Queue::builder().maxsize(10).build().unwrap();
//! q.put((1, "one".into())).unwrap();
//! q.put((2, "two".into())).unwrap();
//! // A forked or spawned child would do the gets; the same calls work in any process.
//! assert_eq!(q.get().unwrap(), (1, "one".into()));
//! assert_eq!(q.get_timeout(Duration::from_secs(1)).unwrap().0, 2);
//! q.close();
//! assert!(q.get().unwrap_err().is_closed());
//! ```
//!
//! # What the wire format carries
//!
//! Items travel as [postcard](https://docs.rs/postcard), which is compact and fast because it
//! is not self-describing: the reader must know the type. Serde features that need a
//! self-describing format therefore serialise but do not deserialise — internally or
//! adjacently tagged and untagged enums (`#[serde(tag = ..)]`, `#[serde(untagged)]`),
//! `#[serde(flatten)]`, `skip_serializing_if`, `deserialize_any` types such as
//! `serde_json::Value` — and neither does an item put as one type and got as another. Such a
//! message is never lost: the `get` that cannot decode it fails with
//! [`GetError::Failed`] whose error hands the message's bytes back
//! ([`Error::undecoded`]); the queue goes on with the next message.

#[cfg(not(multiproc_loom))]
mod error;
#[cfg(not(multiproc_loom))]
mod joinable;
#[cfg(not(multiproc_loom))]
mod ops;
#[cfg(not(multiproc_loom))]
mod queue;
#[doc(hidden)]
pub mod ring;
#[cfg(not(multiproc_loom))]
mod shm;
#[cfg(not(multiproc_loom))]
mod simple;
#[doc(hidden)]
pub mod spill;
#[doc(hidden)]
pub mod stream;
#[cfg(not(multiproc_loom))]
mod wrapper;

#[cfg(not(multiproc_loom))]
pub use crate::error::{Error, ErrorKind, GetError, PutError, Result};
#[cfg(not(multiproc_loom))]
pub use crate::joinable::{JoinableQueue, JoinableQueueBuilder};
#[cfg(not(multiproc_loom))]
pub use crate::ops::{JoinableQueueOps, QueueOps};
#[cfg(not(multiproc_loom))]
#[doc(hidden)]
pub use crate::queue::pause_after_spill_claim;
#[cfg(not(multiproc_loom))]
pub use crate::queue::{
    Iter, Queue, QueueBuilder, TryIter, DEFAULT_CAPACITY, DEFAULT_SPILL_BUDGET,
};
#[cfg(not(multiproc_loom))]
pub use crate::simple::SimpleQueue;
