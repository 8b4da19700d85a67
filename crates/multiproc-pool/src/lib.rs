//! Process pools for [multiproc]: Python's `multiprocessing.Pool` and
//! `concurrent.futures.ProcessPoolExecutor`, where a worker that dies (SIGKILL, segfault,
//! abort, OOM) fails only the task it was running, a late task is killed, and a task costs
//! microseconds.
//!
//! - [`Pool`] / [`PoolBuilder`]: `map`, `imap`, `imap_unordered`, `starmap`, `apply`,
//!   `apply_async`, `map_async`, `starmap_async`, `close`, `terminate`, `join`; processes,
//!   start method, initializer, [worker state](PoolBuilder::worker_state),
//!   `max_tasks_per_child`, per-task timeout. [`Job`] sets a job's chunk size and progress
//!   reporting; [`Imap`] is the lazy result iterator; [`AsyncResult`] the deferred result.
//! - [`ProcessPoolExecutor`] and [`ThreadPoolExecutor`], both [`Executor`]s: `submit` →
//!   [`Future`] (`result`, `result_timeout`, `cancel`, `running`, `done`, done-callbacks, and
//!   `std::future::Future` for `.await`), `map` ([`ExecutorMap`]), `shutdown`.
//! - [`wait`] with [`ReturnWhen`], [`as_completed`], [`as_completed_timeout`].
//! - [`remote`]: tasks for another copy of this program (sealed [`remote::RemoteFn`]s,
//!   [`Pool::submit_remote`], [`remote::Promise`]), the base of `multiproc-cluster`.
//! - [`WorkerInsights`]: per-worker tasks, items, busy and waiting time.
//! - [`Error`] / [`ErrorKind`]: [`WorkerDied`](ErrorKind::WorkerDied) names the signal or
//!   exit code ([`WorkerExit`]); [`Panicked`](ErrorKind::Panicked) carries the panic message.
//!
//! Task functions are function items, closures without captures and `fn(T) -> R` pointers
//! (sent to workers by name: every start method), or — with [`StartMethod::Fork`] — any
//! `Fn` closure. Arguments
//! and results are serde types (postcard on the wire).
//!
//! ```
//! use multiproc_pool::{Pool, StartMethod};
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! let pool = Pool::builder().processes(2).start_method(StartMethod::Fork).build()?;
//! assert_eq!(pool.map(square, 0..10u64)?, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
//! let total: u64 = pool.imap(square, 0..1000u64)?.map(|r| r.unwrap()).sum();
//! assert_eq!(total, 332_833_500);
//! # Ok::<(), multiproc_pool::Error>(())
//! ```
//!
//! # How a death is contained
//! The parent gives each worker its own task ring and result ring in shared memory and
//! numbers the tasks it hands to each worker; a worker records the number of the task it
//! starts. When a worker dies, the tasks it had published results for are kept, the one it
//! had started fails with [`ErrorKind::WorkerDied`] (or [`ErrorKind::TaskTimedOut`]), and
//! the ones queued behind it are handed to other workers — so no task is lost, and none
//! runs to completion twice. A new worker takes the slot. A task is a chunk of `chunksize`
//! items: when its worker dies, all of the chunk's items fail together.
//!
//! # Start methods
//! Workers are started with `multiproc-spawn` ([`StartMethod`]; the default is its
//! process-wide default, forkserver). A function item or a closure without captures is sent
//! to a worker by name and runs under every method; a capturing closure needs
//! [`StartMethod::Fork`] (workers forked before the closure was first used are replaced, once
//! idle, by workers that have it). A forked worker is a copy of a process that may have
//! other threads, so it must not take a lock one of them might have held at the fork: the
//! pool installs its panic hook (which, in a worker, records the panic for the task's error
//! instead of printing) in the parent before forking, and defers to the previous hook
//! elsewhere. A task that prints, or calls `std::process::exit`, in a forked worker can
//! still hang on such a lock (stdout's, an exit handler's) — a hung task is what
//! [`PoolBuilder::task_timeout`] is for; forkserver and spawn workers do not have this
//! caveat.
//!
//! [multiproc]: https://docs.rs/multiproc

#![forbid(unsafe_code)]
#![cfg_attr(multiproc_loom, allow(dead_code, unused_imports))]

#[cfg(not(multiproc_loom))]
mod builder;
#[cfg(not(multiproc_loom))]
mod chunk;
#[cfg(not(multiproc_loom))]
mod core;
#[cfg(not(multiproc_loom))]
mod error;
#[cfg(not(multiproc_loom))]
mod executor;
#[cfg(not(multiproc_loom))]
mod func;
#[cfg(not(multiproc_loom))]
mod future;
#[cfg(not(multiproc_loom))]
mod insights;
#[cfg(not(multiproc_loom))]
mod job;
#[cfg(not(multiproc_loom))]
mod launch;
#[cfg(not(multiproc_loom))]
mod pool;
#[cfg(not(multiproc_loom))]
mod progress;
#[cfg(not(multiproc_loom))]
pub mod remote;
#[doc(hidden)]
pub mod ring;
#[cfg(not(multiproc_loom))]
mod ser_error;
#[cfg(not(multiproc_loom))]
mod shm;
#[cfg(not(multiproc_loom))]
mod sink;
#[cfg(not(multiproc_loom))]
mod task;
#[cfg(not(multiproc_loom))]
mod wait;
#[cfg(not(multiproc_loom))]
mod worker;

#[cfg(not(multiproc_loom))]
pub use crate::builder::PoolBuilder;
#[cfg(not(multiproc_loom))]
pub use crate::error::{Error, ErrorKind, Result, WorkerExit};
#[cfg(not(multiproc_loom))]
pub use crate::executor::{
    BufferedMap, Executor, ExecutorBuilder, ExecutorMap, ProcessPoolExecutor, ThreadPoolExecutor,
};
#[cfg(not(multiproc_loom))]
pub use crate::future::{AsyncResult, Future};
#[cfg(not(multiproc_loom))]
pub use crate::insights::WorkerInsights;
#[cfg(not(multiproc_loom))]
pub use crate::job::{Imap, Job};
#[cfg(not(multiproc_loom))]
pub use crate::pool::{cpu_count, Pool};
#[cfg(not(multiproc_loom))]
pub use crate::progress::ProgressFn;
#[cfg(not(multiproc_loom))]
pub use crate::task::{Payload, Plain, StarFn, Stateful, TaskFn};
#[cfg(not(multiproc_loom))]
pub use crate::wait::{as_completed, as_completed_timeout, wait, AsCompleted, ReturnWhen, Waited};
#[cfg(not(multiproc_loom))]
pub use multiproc_spawn::{Signal, StartMethod};
