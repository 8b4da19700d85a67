//! Python's `multiprocessing` and `concurrent.futures`, re-made for Rust on Linux.
//!
//! Rust code runs in separate OS processes — started by fork, spawn (re-exec) or a forkserver —
//! and those processes pass messages, share memory and synchronise. Use processes where threads
//! cannot help: a crash, a runaway task or a leak in one worker must not take the program down;
//! code that is not thread-safe must run in parallel; independent programs must share queues,
//! locks and data.
//!
//! This crate re-exports the member crates; depend on one of them alone if that is all you
//! need. Each has a cargo feature here, all on by default:
//!
//! | module | crate | holds |
//! |---|---|---|
//! | [`arena`] | `multiproc-arena` | [`SharedMemory`], [`ShareableList`], [`Value`]/[`Array`] (Python's `RawValue`/`RawArray`; [`AtomicCell`] for plain numbers), [`Arena`], [`Shared`] |
//! | [`lock`] | `multiproc-ipc-lock` | [`Lock`], [`RLock`], [`Mutex`], [`SyncValue`], [`SyncArray`], [`Semaphore`], [`BoundedSemaphore`], [`Condition`], [`Event`], [`Barrier`], [`RwLock`] |
//! | [`queue`] | `multiproc-ipc-queue` | [`Queue`], [`SimpleQueue`], [`JoinableQueue`] |
//! | [`pipe`] | `multiproc-ipc-pipe` | [`Pipe`], [`Connection`], [`Listener`], [`Client`], [`pipe::wait`] |
//! | [`spawn`] | `multiproc-spawn` | [`Process`], [`JoinHandle`], [`StartMethod`], [`Context`], [`current_process`], … |
//! | [`manager`] | `multiproc-manager` | [`Manager`] and its typed proxies |
//! | [`pool`] | `multiproc-pool` | [`Pool`], [`ProcessPoolExecutor`], [`ThreadPoolExecutor`], [`Executor`], [`pool::wait`], [`as_completed`] |
//! | `cluster` | `multiproc-cluster` | `ClusterExecutor`: the `Executor` across hosts on Redis Streams (feature `cluster`, **off by default**) |
//!
//! ```
//! use multiproc::{Process, Queue};
//!
//! fn produce(q: Queue<String>) {
//!     for i in 0..3 {
//!         q.put(format!("item {i}")).unwrap();
//!     }
//! }
//!
//! let q: Queue<String> = Queue::new().unwrap();
//! let child = Process::builder().target(produce, q.clone()).start().unwrap();
//! child.join().unwrap();
//! let got: Vec<String> = (0..3).map(|_| q.get().unwrap()).collect();
//! assert_eq!(got, ["item 0", "item 1", "item 2"]);
//! ```
//!
//! Feature `tracing` (off by default, free when off) turns the rare moments an operator wants
//! to see into [`tracing`](https://docs.rs/tracing) events under targets `multiproc::<crate>`:
//! a lock taken over from a dead holder, a pool worker's death and replacement, a forkserver
//! restart, a spilled queue message, an orphaned segment removed, a failed authentication.
//!
//! Feature `self-describing` (off by default) adds `SelfDescribing<T>` (`arena::codec`): wrap
//! a value whose serde attributes postcard, the wire format, cannot decode (internally tagged
//! or untagged enums, `flatten`, `skip_serializing_if`, `serde_json::Value`) and it crosses any
//! queue, pipe or pool as self-describing MessagePack.
//!
//! Every example of the tutorial this library follows is under `examples/`;
//! `cargo run --release --example tour` runs them all.

#![forbid(unsafe_code)]

/// The API guide: one convention for names, timeouts, errors, builders and proxies.
pub mod guide {
    #![doc = include_str!("guide.md")]
}

/// Parity with CPython: its tests' checklist audited item by item (met, differs, not met).
pub mod parity {
    #![doc = include_str!("parity.md")]
}

/// Shared-memory segments, the arena, `Shared`/`Value`/`Array`, `SharedMemory` (`multiproc-arena`).
#[doc(inline)]
pub use multiproc_arena as arena;
#[doc(inline)]
pub use multiproc_arena::{
    Arena, Array, AtomicCell, Item, ShareableList, Shared, SharedMemory, ShmSafe, Value,
};

/// A value carried in a self-describing format inside the postcard wire, for types postcard
/// cannot decode (internally tagged and untagged enums, `flatten`, `skip_serializing_if`,
/// `serde_json::Value`); feature `self-describing`, off by default. See [`arena::codec`].
#[cfg(feature = "self-describing")]
#[doc(inline)]
pub use multiproc_arena::codec::SelfDescribing;

/// The one shape of operations across crates and proxies: the error predicates
/// ([`OpError`](api::OpError)) and the traits of the synchronisation objects (see the
/// [API guide](crate::guide)).
#[doc(inline)]
pub use multiproc_arena::api;

/// Locks, semaphores, conditions, events, barriers (`multiproc-ipc-lock`).
#[cfg(feature = "lock")]
#[doc(inline)]
pub use multiproc_ipc_lock as lock;
#[cfg(feature = "lock")]
#[doc(inline)]
pub use multiproc_ipc_lock::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, Mutex, RLock, RwLock, Semaphore, SyncArray,
    SyncValue,
};

/// Queues in shared memory (`multiproc-ipc-queue`).
#[cfg(feature = "queue")]
#[doc(inline)]
pub use multiproc_ipc_queue as queue;
#[cfg(feature = "queue")]
#[doc(inline)]
pub use multiproc_ipc_queue::{JoinableQueue, Queue, SimpleQueue};

/// Pipes, connections, listeners and clients with an authkey (`multiproc-ipc-pipe`).
#[cfg(feature = "pipe")]
#[doc(inline)]
pub use multiproc_ipc_pipe as pipe;
#[cfg(feature = "pipe")]
#[doc(inline)]
pub use multiproc_ipc_pipe::{Address, Client, Connection, Fd, Listener, Pipe, Waitable};

/// Processes and start methods (`multiproc-spawn`).
#[cfg(feature = "spawn")]
#[doc(inline)]
pub use multiproc_spawn as spawn;
#[cfg(feature = "spawn")]
#[doc(inline)]
pub use multiproc_spawn::{
    active_children, cpu_count, current_process, get_start_method, parent_process,
    set_start_method, Context, JoinError, JoinHandle, Process, Run, StartMethod,
};

/// The manager server and its proxies (`multiproc-manager`).
#[cfg(feature = "manager")]
#[doc(inline)]
pub use multiproc_manager as manager;
#[cfg(feature = "manager")]
#[doc(inline)]
pub use multiproc_manager::Manager;

/// Process pools and executors (`multiproc-pool`).
#[cfg(feature = "pool")]
#[doc(inline)]
pub use multiproc_pool as pool;
#[cfg(feature = "pool")]
#[doc(inline)]
pub use multiproc_pool::{
    as_completed, Executor, Future, Pool, ProcessPoolExecutor, ReturnWhen, ThreadPoolExecutor,
};

/// The executor across hosts, on Redis Streams (`multiproc-cluster`; feature `cluster`, off
/// by default).
#[cfg(feature = "cluster")]
pub use multiproc_cluster as cluster;
#[cfg(feature = "cluster")]
pub use multiproc_cluster::ClusterExecutor;
