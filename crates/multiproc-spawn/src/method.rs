//! Start methods, [`Context`] and the process-wide default.

use crate::error::{Error, ErrorKind, Result};
use crate::process::Builder;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

/// How a child process is created.
///
/// The default is [`Forkserver`](StartMethod::Forkserver), for the reason CPython 3.14 made
/// it its default on Linux: `fork` copies a process whose other threads may hold locks at the
/// instant of the fork — the allocator's, stdout's, a logger's, any `Mutex` — and the child
/// deadlocks on them the first time it needs one. Every Rust program that uses a thread pool,
/// an async runtime or `cargo test` is threaded. A forkserver is a single-threaded, clean
/// process (a re-execution of this binary that ran nothing but the server) which forks the
/// children on request: fork's start latency without fork's hazards, and a start cost that
/// does not grow with the parent's memory. [`Spawn`](StartMethod::Spawn) is the most isolated
/// (a fresh execution of the binary per child) and the slowest; [`Fork`](StartMethod::Fork) is
/// the fastest and the only one that can run a closure, and is safe when the parent is
/// single-threaded or the child only runs code that takes no lock another thread may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum StartMethod {
    /// `fork()`: the child is a copy of the parent (copy-on-write) and runs the target on a
    /// copy of the calling thread. Handles are inherited. Closures allowed.
    Fork,
    /// Re-execute `/proc/self/exe`; the child is caught before `main` by this crate's
    /// constructor, receives the target and its arguments over a socket, runs and exits.
    Spawn,
    /// Ask this process's forkserver (started on first use by re-execution, restarted if it
    /// dies) to fork a child that then receives the target and arguments like a spawned one.
    /// The server's environment variables and working directory are those of the moment it
    /// started (as in Python).
    Forkserver,
}

impl StartMethod {
    /// The default start method: [`Forkserver`](StartMethod::Forkserver) (see the type's
    /// documentation for why).
    pub const DEFAULT: StartMethod = StartMethod::Forkserver;

    /// Every start method, the default first (Python's `get_all_start_methods()`).
    pub fn all() -> [StartMethod; 3] {
        [StartMethod::Forkserver, StartMethod::Spawn, StartMethod::Fork]
    }

    /// The method's name: `"fork"`, `"spawn"` or `"forkserver"`.
    pub fn name(self) -> &'static str {
        match self {
            StartMethod::Fork => "fork",
            StartMethod::Spawn => "spawn",
            StartMethod::Forkserver => "forkserver",
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        match self {
            StartMethod::Fork => 1,
            StartMethod::Spawn => 2,
            StartMethod::Forkserver => 3,
        }
    }

    pub(crate) fn from_u8(v: u8) -> Option<StartMethod> {
        match v {
            1 => Some(StartMethod::Fork),
            2 => Some(StartMethod::Spawn),
            3 => Some(StartMethod::Forkserver),
            _ => None,
        }
    }
}

impl fmt::Display for StartMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StartMethod {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fork" => Ok(StartMethod::Fork),
            "spawn" => Ok(StartMethod::Spawn),
            "forkserver" => Ok(StartMethod::Forkserver),
            _ => Err(Error::new(
                ErrorKind::Unsupported,
                format!("unknown start method {s:?} (fork, spawn, forkserver)"),
            )),
        }
    }
}

/// 0: not set; else `StartMethod::to_u8`.
static GLOBAL: AtomicU8 = AtomicU8::new(0);

/// Sets the process-wide start method, once (Python's `set_start_method(m)`). A second call
/// is an [`ErrorKind::AlreadySet`] error; see [`force_start_method`].
pub fn set_start_method(method: StartMethod) -> Result<()> {
    GLOBAL
        .compare_exchange(0, method.to_u8(), Ordering::AcqRel, Ordering::Acquire)
        .map(|_| ())
        .map_err(|old| {
            Error::new(
                ErrorKind::AlreadySet,
                format!("it is {}", StartMethod::from_u8(old).map_or("?", StartMethod::name)),
            )
        })
}

/// Sets the process-wide start method even if it was set (`set_start_method(m, force=True)`).
pub fn force_start_method(method: StartMethod) {
    GLOBAL.store(method.to_u8(), Ordering::Release);
}

/// The process-wide start method: the one set, else [`StartMethod::DEFAULT`]. In a child it
/// is the method that started the child.
pub fn get_start_method() -> StartMethod {
    start_method_if_set().unwrap_or(StartMethod::DEFAULT)
}

/// The process-wide start method if one was set (`get_start_method(allow_none=True)`).
pub fn start_method_if_set() -> Option<StartMethod> {
    StartMethod::from_u8(GLOBAL.load(Ordering::Acquire))
}

/// A start method to create processes with, independent of the process-wide setting
/// (Python's `get_context(method)`): using a context never changes the global default.
///
/// ```
/// use multiproc_spawn::{Context, StartMethod};
/// let ctx = Context::new(StartMethod::Spawn);
/// assert_eq!(ctx.start_method(), StartMethod::Spawn);
/// let _builder = ctx.process().name("worker");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Context {
    method: StartMethod,
}

impl Context {
    /// A context for `method`.
    pub fn new(method: StartMethod) -> Context {
        Context { method }
    }

    /// The context of the process-wide start method (as it is now).
    pub fn default_context() -> Context {
        Context::new(get_start_method())
    }

    /// This context's start method.
    pub fn start_method(&self) -> StartMethod {
        self.method
    }

    /// A process builder that starts with this context's method.
    pub fn process(&self) -> Builder {
        Builder::new().start_method(self.method)
    }
}
