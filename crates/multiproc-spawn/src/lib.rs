//! Processes for [multiproc]: run a function in a child process and get its return value, a
//! panic or a signal back (Python's `multiprocessing.Process`), with the fork, spawn and
//! forkserver start methods.
//!
//! - [`Process::builder`] → [`Builder`]: name, daemon flag, [`StartMethod`], then a target —
//!   [`target(fn, args)`](Builder::target) (every method), [`target_closure`](Builder::target_closure)
//!   (fork), [`target_run`](Builder::target_run) (an object implementing [`Run`]) — giving a
//!   [`Process`] whose [`start`](Process::start) returns a [`JoinHandle`].
//! - [`JoinHandle`]: [`join`](JoinHandle::join), [`join_timeout`](JoinHandle::join_timeout),
//!   [`is_alive`](JoinHandle::is_alive), [`terminate`](JoinHandle::terminate),
//!   [`kill`](JoinHandle::kill), [`exitcode`](JoinHandle::exitcode),
//!   [`sentinel`](JoinHandle::sentinel) (a pidfd). Failures are a [`JoinError`]: a panic with
//!   its message and location, a signal by name, an exit code.
//! - [`StartMethod`] (default [`Forkserver`](StartMethod::Forkserver), and why), [`Context`],
//!   [`set_start_method`], [`get_start_method`].
//! - [`current_process`], [`parent_process`], [`active_children`], [`cpu_count`].
//!
//! A re-executed child (spawn, and the forkserver itself) is caught before `main` by an ELF
//! `.init_array` constructor of this crate, so no binary needs a hook in `main`, and the
//! parent's `main` never runs twice; this works in `cargo test` binaries too. Daemonic children
//! die with their parent even when it is SIGKILLed; children whose handles were dropped are
//! reaped by a background thread.
//!
//! ```
//! use multiproc_spawn::{JoinError, Process, StartMethod};
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//! fn boom(_: ()) -> u64 {
//!     panic!("no luck")
//! }
//!
//! let h = Process::builder().name("square").target(square, 7).start()?;
//! assert_eq!(h.join()?, 49);
//!
//! let h = Process::builder().start_method(StartMethod::Spawn).target(boom, ()).start()?;
//! match h.join() {
//!     Err(JoinError::Panicked { message, .. }) => assert_eq!(message, "no luck"),
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [multiproc]: https://docs.rs/multiproc

mod child;
mod current;
mod error;
mod forkserver;
mod handle;
mod method;
mod process;
mod state;
mod sys;
mod wire;

pub use crate::current::{
    active_children, cpu_count, current_process, parent_process, ActiveChild, CurrentProcess,
    ParentProcess,
};
pub use crate::error::{Error, ErrorKind, JoinError, PanicLocation, Result, Signal};
#[doc(hidden)]
pub use crate::forkserver::forkserver_pid;
pub use crate::handle::JoinHandle;
pub use crate::method::{
    force_start_method, get_start_method, set_start_method, start_method_if_set, Context,
    StartMethod,
};
pub use crate::process::{Builder, Process, Run};
