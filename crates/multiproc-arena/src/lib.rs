//! The shared-memory base of [multiproc]: segments, an arena allocator, futex wait/wake,
//! process liveness and handle transfer.
//!
//! Every other multiproc crate sits on this one. A shared primitive (a lock, a queue header, a
//! value) is a small [`ShmSafe`] struct placed in an [`Arena`] — a segment mapped by every
//! process that uses it, possibly at different addresses, so links are [`Offset`]s. Waiting is
//! a [`futex`] on a word in that memory; recovering from a process that died mid-operation uses
//! [`liveness`] (a proof of death from the kernel, never a guess); and passing a handle to another process goes through [`transfer`].
//!
//! - [`Segment`]: an anonymous (memfd) or named (`/dev/shm`) mapping with a validated header.
//! - [`Arena`], [`Offset`]: a lock-free allocator in a segment; [`Arena::global`] is the default.
//! - [`Shared`] / [`Value`], [`Array`]: reference-counted objects in an arena (Python's
//!   `RawValue` / `RawArray`).
//! - [`AtomicCell`]: a number any process may load and store without a lock (`Value<AtomicCell<f64>>`
//!   is Python's `RawValue('d')`); [`Zeroable`] for the zero-filled constructors.
//! - [`SharedMemory`]: named shared bytes (Python's `shared_memory.SharedMemory`);
//!   [`ShareableList`]: a fixed-length list of numbers, strings and bytes in one (Python's
//!   `shared_memory.ShareableList`).
//! - [`ShmSafe`]: the marker for types allowed in shared memory.
//! - [`spsc`]: a single-producer, single-consumer ring of records in shared memory (the
//!   pipe's and the pool's data path).
//! - [`futex`]: wait/wake with absolute deadlines; [`sync`]: the std/loom atomics shim.
//! - [`Identity`], [`liveness`]: who a process is in shared memory, and a kernel proof that it
//!   died (an open-file-description lock per process), valid across PID namespaces and
//!   without `/proc`; "cannot tell" is never "dead".
//! - [`transfer`]: serde-based handle transfer with an out-of-band descriptor table.
//! - `codec::SelfDescribing<T>` (feature `self-describing`, off by default): a value carried
//!   as self-describing MessagePack inside the postcard wire, for the serde attributes postcard
//!   cannot decode (internally tagged and untagged enums, `flatten`, `skip_serializing_if`,
//!   `serde_json::Value`).
//! - [`cleanup_orphans`]: removes named segments whose creator was killed.
//!
//! ```
//! use multiproc_arena::{Arena, Shared};
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! let arena = Arena::new(1 << 20).unwrap();
//! let counter = Shared::new_in(&arena, AtomicU64::new(0)).unwrap();
//! counter.fetch_add(1, Ordering::Relaxed); // a forked child sees and updates the same word
//! assert_eq!(counter.load(Ordering::Relaxed), 1);
//! ```
//!
//! [multiproc]: https://docs.rs/multiproc

#![cfg_attr(multiproc_loom, allow(dead_code, unused_imports))]

mod alloc;
pub mod api;
mod arena;
mod bytes;
#[cfg(feature = "self-describing")]
pub mod codec;
pub mod describe;
mod error;
pub mod fork;
pub mod futex;
pub mod liveness;
mod loom;
#[path = "sys/os.rs"]
pub mod os;
mod plain;
mod shared;
mod shm_safe;
pub mod spsc;

#[cfg(not(multiproc_loom))]
pub mod named;
#[cfg(not(multiproc_loom))]
mod segment;
#[cfg(not(multiproc_loom))]
mod shareable_list;
#[cfg(not(multiproc_loom))]
mod shared_memory;
mod sys;
#[doc(hidden)]
pub mod testing;
pub mod trace;
pub mod transfer;

/// A fresh random `u64` from the kernel (`getrandom`).
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    crate::sys::getrandom(&mut b).expect("getrandom failed");
    u64::from_le_bytes(b)
}

pub use crate::arena::{Arena, Offset};
pub use crate::bytes::Bytes;
#[doc(hidden)]
pub use crate::error::write_source;
pub use crate::error::{errno_name, is_resource_shortage, Error, ErrorKind, Result};
pub use crate::liveness::{Identity, Liveness, ProcessId};
pub use crate::loom::sync;
pub use crate::plain::{AtomicCell, AtomicPlain, Zeroable};
pub use crate::shared::*;
pub use crate::shm_safe::ShmSafe;

#[cfg(not(multiproc_loom))]
pub use crate::arena::DEFAULT_GLOBAL_CAPACITY;

#[cfg(not(multiproc_loom))]
pub use crate::segment::{
    cleanup_orphans, random_name, validate_name, Segment, LAYOUT_VERSION, MAX_NAME_LEN,
};
#[cfg(not(multiproc_loom))]
pub use crate::shareable_list::{
    Item, ItemKind, ListError, ListErrorKind, Result as ListResult, ShareableList,
};
#[cfg(not(multiproc_loom))]
pub use crate::shared_memory::SharedMemory;

/// Python's `RawValue`: a `T` in shared memory without a lock. A plain number that processes
/// write goes in an [`AtomicCell`] (`Value<AtomicCell<f64>>`: `load`/`store`); other types
/// hold atomics inside, or use `multiproc_ipc_lock::Mutex` / `SyncValue` for the
/// synchronised `Value`.
#[cfg(not(multiproc_loom))]
pub type Value<T> = Shared<T>;
