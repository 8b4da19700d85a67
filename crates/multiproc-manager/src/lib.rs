//! Python's `multiprocessing.Manager` for Rust: a server process holds lists, dicts,
//! namespaces, values, queues, locks and custom objects, and any process that can reach its
//! socket and holds its authkey works on them through typed proxies — including processes that
//! share no parent with it.
//!
//! - [`Manager`]: [`start`](Manager::start) a server process, [`connect`](Manager::connect) to
//!   one, create objects: [`list`](Manager::list), [`dict`](Manager::dict),
//!   [`namespace`](Manager::namespace), [`set`](Manager::set), [`value`](Manager::value),
//!   [`queue`](Manager::queue),
//!   [`lock`](Manager::lock), [`rlock`](Manager::rlock), [`semaphore`](Manager::semaphore),
//!   [`condition`](Manager::condition), [`event`](Manager::event),
//!   [`barrier`](Manager::barrier) (with a default timeout:
//!   [`barrier_builder`](Manager::barrier_builder)), [`service`](Manager::service).
//! - [`ManagerBuilder`]: authkey, address (private Unix socket by default, or TCP), frame
//!   limit, handshake timeout, [`register`](ManagerBuilder::register)ed [`Service`]s;
//!   [`bind`](ManagerBuilder::bind) gives a [`Server`] to run in the current process.
//! - Proxies: [`ListProxy`], [`DictProxy`], [`SetProxy`], [`Namespace`], [`ValueProxy`], [`QueueProxy`],
//!   [`LockProxy`], [`RLockProxy`], [`SemaphoreProxy`], [`ConditionProxy`], [`EventProxy`],
//!   [`BarrierProxy`], [`ServiceProxy`]. All are `Clone` (cheap: one reference on the server
//!   per process) and `Serialize`/`Deserialize`: pass them to child processes, put them inside
//!   other managed containers (nested proxies keep their objects alive), or send them to
//!   unrelated programs.
//! - [`Address`], [`AuthKey`]: printable and parsable, to tell another program how to connect.
//! - [`Error`] / [`ErrorKind`], [`LockError`] (std's poisoning shape); a [`QueueProxy`] fails
//!   with the local queue's errors, [`PutError`] (the value comes back) and [`GetError`]
//!   (re-exported from `multiproc-ipc-queue`).
//!
//! # Passing proxies to other processes
//!
//! A proxy needs no transfer context: it travels as data. Inside a managed container of the
//! same manager it is stored as its object id and the server counts the container's
//! reference (a dict holding a list proxy keeps the list alive). Anywhere else — a
//! `multiproc-spawn` process argument, a message on a pipe or queue, bytes handed to an
//! unrelated program — it is written as (address, authkey, object id, hold token):
//! serialising takes a *hold* on the server that keeps the object alive while the proxy is in
//! transit, and the receiver reconnects (once per process) and adopts it. A hold nobody adopts
//! is dropped when the sender's session ends. The bytes carry the authkey: treat them as a
//! secret. A proxy inherited through `fork` opens the child's own session on first use; one
//! the child never uses costs nothing.
//!
//! # Transport and security
//!
//! The server listens on a Unix socket in a new private directory (mode 0700, socket 0600) by
//! default, or on the TCP address given to [`ManagerBuilder::address`]. Every connection
//! passes `multiproc-ipc-pipe`'s mutual HMAC-SHA256 authkey handshake (bounded in time,
//! several at once, nothing else read before it) and then speaks a versioned protocol of
//! postcard messages in frames whose size is checked before anything is allocated
//! ([`ManagerBuilder::max_frame`]).
//!
//! Errors raised in the server (an index out of range, a missing key, a service that panics)
//! come back as typed errors and the server carries on. Each client process has one session
//! on the server; when its connections close — also when it is killed — its references are
//! dropped, and the locks it held are released and poisoned for the next acquirer. A blocking
//! call (a lock acquire, a queue get, a barrier wait) waits in the server on a connection of
//! its own, so it stalls neither the other threads of its process nor other clients.
//!
//! ```
//! use multiproc_manager::{Manager, ErrorKind};
//!
//! // A server in a thread of this process (Manager::start() runs it in its own process).
//! let server = Manager::builder().bind()?;
//! let (address, key) = (server.address().clone(), server.authkey().clone());
//! let stop = server.shutdown_handle();
//! let t = std::thread::spawn(move || server.serve());
//!
//! // Any process that knows the address and the key:
//! let m = Manager::connect(&address, &key)?;
//! let list = m.list::<u32>()?;
//! list.extend([1, 2, 3])?;
//! let d = m.dict::<String, Vec<u32>>()?;
//! d.insert("primes".into(), vec![2, 3, 5])?;
//! assert_eq!(list.to_vec()?, [1, 2, 3]);
//! assert_eq!(d.get("primes")?, Some(vec![2, 3, 5]));
//! assert_eq!(list.get(7).unwrap_err().kind(), ErrorKind::IndexOutOfRange);
//!
//! stop.shutdown();
//! t.join().unwrap()?;
//! assert_eq!(list.len().unwrap_err().kind(), ErrorKind::Disconnected);
//! # Ok::<(), multiproc_manager::Error>(())
//! ```

#![forbid(unsafe_code)]

mod authkey;
mod client;
mod codec;
mod containers;
mod error;
mod handle;
mod launch;
mod manager;
mod namespace;
mod ops;
mod protocol;
mod server;
mod service;
mod set;
mod spin;
mod sync;
mod transport;

pub use crate::authkey::AuthKey;
pub use crate::containers::{Data, DictProxy, ListIter, ListProxy, QueueProxy, ValueProxy};
pub use crate::error::{Error, ErrorKind, LockError, LockResult, Result};
pub use crate::manager::{
    BarrierBuilder, Manager, ManagerBuilder, Server, ShutdownHandle, DEFAULT_HANDSHAKE_TIMEOUT,
};
pub use crate::namespace::Namespace;
pub use crate::protocol::DEFAULT_MAX_FRAME;
pub use crate::service::{Registry, Service, ServiceSet};
pub use crate::set::SetProxy;
pub use crate::sync::{
    BarrierProxy, ConditionGuard, ConditionProxy, EventProxy, LockGuard, LockProxy, RLockGuard,
    RLockProxy, SemaphoreProxy, ServiceProxy,
};
pub use multiproc_ipc_pipe::Address;
/// The queue crate, whose errors a [`QueueProxy`] reports: `queue::Error`, `queue::ErrorKind`
/// (besides [`GetError`] and [`PutError`], re-exported here).
#[doc(no_inline)]
pub use multiproc_ipc_queue as queue;
/// The errors of a [`QueueProxy`]'s operations: the local queue's own
/// (`multiproc-ipc-queue`), so code written against a local queue compiles against the proxy.
pub use multiproc_ipc_queue::{GetError, PutError};
/// The operations of a queue as traits, implemented by the local queues and [`QueueProxy`].
pub use multiproc_ipc_queue::{JoinableQueueOps, QueueOps};
