//! `multiproc-cluster`: the process pool's [`Executor`] across hosts, on Redis Streams.
//!
//! A [`ClusterExecutor`] writes each task (a function and its encoded argument, or a chunk
//! of them) to a Redis stream. Worker hosts — the *same executable* started with
//! `MULTIPROC_CLUSTER_WORKER=redis://…` ([`run_worker_if_requested`]) or calling
//! [`worker`] — read the stream as one consumer group (`XREADGROUP`), run each task in a
//! local [`multiproc_pool::Pool`] (so a crash, abort or OOM fails only that task, exactly
//! as locally), and answer on the client's result stream, acknowledging the task in the
//! same transaction (`XADD` + `XACK` + `XDEL` in `MULTI`).
//!
//! - [`ClusterExecutor`] / [`ClusterExecutorBuilder`]: `submit`, `map` (with a chunk size),
//!   `shutdown`, through the [`Executor`] trait; [`TaskOptions`] per task (retries, time
//!   limit); [`ClusterJob`] for a map's chunk size, options and progress callback;
//!   [`HostInsights`] per host. Futures are the pool's [`Future`]s: `result`,
//!   `cancel`, callbacks, `.await`, and [`wait`] / [`as_completed`].
//! - [`worker`], [`run_worker_if_requested`], [`WorkerBuilder`]: a worker host.
//! - [`Error`] / [`ErrorKind`]: setup errors; tasks fail with [`multiproc_pool::Error`].
//!
//! # What is guaranteed
//! - **Faults.** Each host renews a heartbeat key; when it lapses, another host claims the
//!   dead host's pending entries (`XPENDING` + `XCLAIM`). With `retries` 0 (the default) a
//!   claimed task fails with [`WorkerDied`](multiproc_pool::ErrorKind::WorkerDied) naming
//!   the dead host: **at most once**. With `retries` n it runs again up to n times:
//!   **at least once** (a task may run twice if its host died after running it but before
//!   answering). Redis restarting: clients and workers reconnect with backoff; with
//!   `appendonly yes` and `appendfsync always` no task Redis acknowledged is lost.
//! - **A client that dies** leaves nothing unbounded: its heartbeat and result stream
//!   expire after its [`ttl`](ClusterExecutorBuilder::ttl), workers drop its queued tasks
//!   unrun once its heartbeat is gone, and answered tasks are deleted from the stream.
//! - **Security.** Tasks and results carry an HMAC-SHA256 under the authkey; a worker drops
//!   (and logs, to stderr and the capped list `<namespace>:rejected`) any entry without a
//!   valid one, so write access to Redis alone cannot make a worker run anything. A task
//!   from a different build of the executable is refused with
//!   [`Refused`](multiproc_pool::ErrorKind::Refused), never run.
//!
//! ```no_run
//! use multiproc_cluster::{ClusterExecutor, Executor};
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! fn main() {
//!     multiproc_cluster::run_worker_if_requested(); // a worker host never gets past this
//!     let ex = ClusterExecutor::builder("redis://127.0.0.1:6379")
//!         .authkey("a shared secret")
//!         .chunksize(100)
//!         .connect()
//!         .unwrap();
//!     let squares: Vec<u64> = ex.map(square, 0..10_000u64).unwrap().map(|r| r.unwrap()).collect();
//!     assert_eq!(squares[3], 9);
//! }
//! ```

#![forbid(unsafe_code)]

mod client;
mod common;
mod conn;
mod error;
mod wire;
mod worker;

pub use crate::client::{
    ClusterExecutor, ClusterExecutorBuilder, ClusterJob, HostInsights, TaskOptions,
};
pub use crate::common::AUTHKEY_ENV;
pub use crate::error::{Error, ErrorKind, Result};
pub use crate::worker::{
    run_worker_if_requested, worker, WorkerBuilder, HEARTBEAT_ENV, NAMESPACE_ENV, NAME_ENV,
    PREFETCH_ENV, PROCESSES_ENV, WORKER_ENV,
};
pub use multiproc_pool::{as_completed, wait, Executor, ExecutorMap, Future, ReturnWhen};
