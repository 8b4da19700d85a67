//! Processes for [multiproc]: run a function in a child process and get its return value, a
//! panic or a signal back (Python's `multiprocessing.Process`), with the fork, spawn and
//! forkserver start methods.
//!
//! - [`Process::builder`] → [`Builder`]: name, daemon flag, [`StartMethod`], then a target —
//!   [`target(fn, args)`](Builder::target) (every method), [`target_closure`](Builder::target_closure)
//!   (fork), [`target_run`](Builder::target_run) (an object implementing [`Run`]) — giving a
//!   [`Process`] whose [`start`](Process::start) returns a [`JoinHandle`].
//! - [`JoinHandle`]: [`join`](JoinHandle::join), [`join_timeout`](JoinHandle::join_timeout)
//!   (a timeout is `Err(e)` with `e.is_timeout()`; join again), [`try_join`](JoinHandle::try_join),
//!   [`is_alive`](JoinHandle::is_alive), [`terminate`](JoinHandle::terminate),
//!   [`kill`](JoinHandle::kill), [`exitcode`](JoinHandle::exitcode),
//!   [`sentinel`](JoinHandle::sentinel) (a pidfd). Failures are a [`JoinError`]: a panic with
//!   its message and location, a signal by name, an exit code.
//! - [`StartMethod`] (default [`Forkserver`](StartMethod::Forkserver), and why), [`Context`],
//!   [`set_start_method`], [`get_start_method`].
//! - [`current_process`], [`parent_process`], [`active_children`], [`cpu_count`].
//! - [`FnRef`]: a function of this executable named for another process (a pool's task),
//!   checked before it becomes callable; [`FnRef::seal`] for another host ([`build_id`]).
//!
//! # How it works
//!
//! - **Child entry.** A re-executed child (spawn, and the forkserver itself) is caught before
//!   `main` by an ELF `.init_array` constructor of this crate, so no binary needs a hook in
//!   `main`, the parent's `main` never runs twice, and `cargo test` binaries work like any
//!   other. The target is found by its distance from an anchor function of this crate (the
//!   same in every run of one executable, whatever ASLR does), checked against a hash of the
//!   argument and result types.
//! - **Results.** The child sends its value, panic or error in one frame on a private socket;
//!   a large frame travels in a memfd, so no child ever waits for its reader (results of any
//!   size, no deadlock) and the parent wakes once, when the child ends.
//! - **Daemonic children** die with their parent however it dies, SIGKILL included. Each one
//!   holds its own open file description of the read end of a pipe whose write end only the
//!   parent holds, armed with `O_ASYNC` + `F_SETSIG(SIGKILL)`: when the parent's write end
//!   closes, the kernel SIGKILLs the child; a parent that died before the arming is seen by a
//!   poll right after it. (`PR_SET_PDEATHSIG` fires when the *thread* that created the child
//!   ends — in `cargo test`, at the end of each test — and a forkserver child's parent is the
//!   server, so it is not used.) They are also sent SIGTERM at the parent's normal exit
//!   (Python), and may not start children of their own.
//! - **Reaping.** Every child is reaped: by its join, or, if its handle was dropped, by a
//!   background thread; at a normal exit the process waits for its non-daemonic children
//!   (Python).
//! - **Descriptors.** Spawned and forkserver children get their socket, the descriptors of the
//!   handles in their arguments and the standard streams, nothing else; forked children inherit
//!   everything, as with `fork()`, except this crate's private descriptors.
//!
//! Misuse is a compile error rather than a runtime one: a process starts once and a handle
//! joins once, because both calls consume their value.
//!
//! ```compile_fail
//! # use multiproc_spawn::Process;
//! fn one(_: ()) -> u8 { 1 }
//! let p = Process::builder().target(one, ());
//! let a = p.start();
//! let b = p.start(); // error: use of moved value
//! ```
//!
//! ```compile_fail
//! # use multiproc_spawn::Process;
//! fn one(_: ()) -> u8 { 1 }
//! let h = Process::builder().target(one, ()).start().unwrap();
//! let a = h.join();
//! let b = h.join(); // error: use of moved value
//! ```
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
mod fnref;
mod forkserver;
mod handle;
mod method;
mod process;
mod state;
mod sys;
mod wire;

pub use crate::child::panic_payload_str;
pub use crate::current::{
    active_children, cpu_count, current_process, parent_process, ActiveChild, CurrentProcess,
    ParentProcess,
};
pub use crate::error::{Error, ErrorKind, JoinError, PanicLocation, Result, Signal};
pub use crate::fnref::{build_id, short_hex, FnRef, FNREF_LEN, SEALED_FNREF_LEN};
#[doc(hidden)]
pub use crate::forkserver::forkserver_pid;
pub use crate::handle::JoinHandle;
pub use crate::method::{
    force_start_method, get_start_method, set_start_method, start_method_if_set, Context,
    StartMethod,
};
pub use crate::process::{Builder, Process, Run, SpreadFn};
/// Ignores SIGINT in the calling process from now on, as a server process does so that a
/// Ctrl-C to the terminal's process group stops its clients, not it (Python's manager
/// servers do the same). Children it starts inherit the ignored disposition over fork and
/// exec, as with `signal(SIGINT, SIG_IGN)`.
pub use crate::sys::ignore_interrupts;
