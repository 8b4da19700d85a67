//! [`Process`], its [`Builder`], the [`Run`] trait, and starting under each method.

use crate::child::{self, Boot};
use crate::error::{Error, ErrorKind, Result};
use crate::handle::{JoinHandle, Launched};
use crate::method::{get_start_method, Context, StartMethod};
use crate::state::{self, Info, ParentInfo, Record};
use crate::{forkserver, sys, wire};
use multiproc_arena::transfer::{self, Encoded};
use multiproc_arena::ProcessId;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::cell::RefCell;
use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

/// The "class" style of target (Python's `Process` subclass with a `run` method): an object
/// that is sent to the child and run there. Works with every start method.
///
/// ```
/// use multiproc_spawn::{Process, Run};
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Upper(String);
/// impl Run for Upper {
///     type Output = String;
///     fn run(self) -> String { self.0.to_uppercase() }
/// }
/// let h = Process::builder().target_run(Upper("hello".into())).start().unwrap();
/// assert_eq!(h.join().unwrap(), "HELLO");
/// ```
pub trait Run: Serialize + DeserializeOwned + 'static {
    /// What `run` returns (comes back through [`JoinHandle::join`]).
    type Output: Serialize + DeserializeOwned + 'static;
    /// The child's work.
    fn run(self) -> Self::Output;
}

fn run_object<T: Run>(obj: T) -> T::Output {
    obj.run()
}

/// Settings of a process before its target is chosen: `Process::builder().name(..)
/// .daemon(..).start_method(..).target(f, args).start()`.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    name: Option<String>,
    daemon: Option<bool>,
    method: Option<StartMethod>,
    authkey: Option<Vec<u8>>,
}

impl Builder {
    /// A builder with every setting at its default.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The process name (default: Python's `Process-N`, with the parent's numbers before
    /// `N` in a child: `Process-2:1`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Whether the child is daemonic: it dies with this process (even if this process is
    /// SIGKILLed; see the crate docs for how), is sent SIGTERM at this process's normal exit,
    /// and may not start children of its own. Default: the current process's flag (false in
    /// the main process). A non-daemonic child outlives its parent, and the parent waits for
    /// it at a normal exit.
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = Some(daemon);
        self
    }

    /// The child's authentication key (Python's `Process.authkey`; default: this process's,
    /// [`CurrentProcess::authkey`](crate::CurrentProcess::authkey)).
    pub fn authkey(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.authkey = Some(key.into());
        self
    }

    /// Whether the child will be daemonic: the flag set with [`daemon`](Self::daemon), else
    /// the current process's (Python's `Process.daemon` before `start`).
    pub fn is_daemon(&self) -> bool {
        self.daemon.unwrap_or_else(|| state::state().info().daemon)
    }

    /// The start method (default: the context's, else the process-wide one).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// Uses the start method of `ctx`.
    pub fn context(self, ctx: &Context) -> Self {
        self.start_method(ctx.start_method())
    }

    /// Runs `f(args)` in the child (every start method). `args` are serialised when `start`
    /// is called — before any process exists, so a value that refuses to serialise is an
    /// [`ErrorKind::Encode`] error under every method — and handles in them travel with
    /// their descriptors; with spawn and forkserver `f` (a function item, or a closure that
    /// captures nothing) is found in the re-executed binary. The parent's own `args` are
    /// dropped once the child has started (under fork too: its copy of a `Connection` in
    /// `args` closes, so the other end sees EOF when the child ends).
    ///
    /// The child ends when `f` returns: threads it started are not waited for (as when
    /// `main` returns).
    pub fn target<A, R>(self, f: fn(A) -> R, args: A) -> Process<R>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        Process { cfg: self, target: Target::Fn(Box::new(FnCall { f, args: Some(args) })) }
    }

    /// Runs `f(a, b, …)` in the child (every start method): Python's
    /// `Process(target=f, args=(a, b))` for a function of two to four arguments, given as a
    /// tuple. `f` is a function item or a closure without captures (a closure that captures
    /// fails at `start` with [`ErrorKind::ClosureNeedsFork`]); otherwise as
    /// [`target`](Self::target).
    ///
    /// ```
    /// use multiproc_spawn::Process;
    /// fn greet(name: String, times: u32) -> String { name.repeat(times as usize) }
    /// let mut h = Process::builder().target_args(greet, ("ab".to_string(), 2)).start().unwrap();
    /// assert_eq!(h.join().unwrap(), "abab");
    /// ```
    pub fn target_args<F, Args, R>(self, f: F, args: Args) -> Process<R>
    where
        F: SpreadFn<Args, R>,
        Args: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        match f.spread() {
            Ok(call) => self.target(call, args),
            Err(e) => Process { cfg: self, target: Target::Refused(e) },
        }
    }

    /// Runs a closure in the child: [`StartMethod::Fork`] only (the closure and what it
    /// captured live in the parent's memory, which only a forked child shares). Under other
    /// start methods, `start` fails with [`ErrorKind::ClosureNeedsFork`].
    ///
    /// What the closure captured moves into the child unserialised, and the parent never
    /// drops its copy (a captured handle's cross-process reference count must drop once, in
    /// the child): captured memory and descriptors stay allocated in the parent. For many
    /// starts, or for a `Connection` whose EOF the parent awaits, prefer
    /// [`target`](Self::target), whose arguments the parent drops.
    pub fn target_closure<F, R>(self, f: F) -> Process<R>
    where
        F: FnOnce() -> R + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        Process { cfg: self, target: Target::Closure(Box::new(f)) }
    }

    /// Runs `obj.run()` in the child (every start method); see [`Run`].
    pub fn target_run<T: Run>(self, obj: T) -> Process<T::Output> {
        self.target(run_object::<T>, obj)
    }
}

/// A call of `f(args)` that can run in place (fork) or be described to another process.
trait FnTarget<R> {
    fn encode(&self) -> multiproc_arena::Result<Encoded>;
    /// Drops the references an encoding took, when no child will adopt them.
    fn release(&self, enc: Encoded);
    /// Drops the caller's own arguments once they are encoded (the encoding holds what the
    /// child needs): before a fork, so that the child does not inherit them as well — a
    /// pipe end's ring halves are one per process, and the child decodes its own.
    fn drop_args(&mut self);
    /// (entry trampoline, target function, type hash).
    fn addresses(&self) -> (usize, usize, u64);
    /// The body of a forked child: decodes the arguments from `enc` (taken from the cell)
    /// and calls the target. Under fork the arguments travel encoded, as under the other
    /// methods, so that the parent can drop its own copy: its references and descriptors
    /// are released as usual, while the encoding's stay for the child to adopt.
    fn fork_body(&self, enc: Rc<RefCell<Option<Encoded>>>) -> Box<dyn FnOnce() -> R>;
}

struct FnCall<A, R> {
    f: fn(A) -> R,
    /// `None` once dropped ([`FnTarget::drop_args`]).
    args: Option<A>,
}

impl<A, R> FnTarget<R> for FnCall<A, R>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    fn encode(&self) -> multiproc_arena::Result<Encoded> {
        transfer::encode(self.args.as_ref().expect("encoded before the arguments are dropped"))
    }

    fn drop_args(&mut self) {
        self.args = None;
    }

    fn release(&self, enc: Encoded) {
        let _ = transfer::decode::<A>(&enc.bytes, enc.fds);
    }

    fn addresses(&self) -> (usize, usize, u64) {
        let entry: child::EntryFn = child::entry::<A, R>;
        (entry as usize, self.f as usize, child::type_hash::<A, R>())
    }

    fn fork_body(&self, enc: Rc<RefCell<Option<Encoded>>>) -> Box<dyn FnOnce() -> R> {
        let f = self.f;
        Box::new(move || {
            let Encoded { bytes, fds } = enc.borrow_mut().take().expect("taken once, by the child");
            match transfer::decode::<A>(&bytes, fds) {
                Ok(args) => f(args),
                Err(e) => panic!("decoding the arguments failed: {e}"),
            }
        })
    }
}

enum Target<R> {
    Fn(Box<dyn FnTarget<R>>),
    Closure(Box<dyn FnOnce() -> R>),
    /// A target that cannot run in another process (reported by `start`).
    Refused(Error),
}

/// A function of several arguments for [`Builder::target_args`]: `Fn(A, B) -> R` called
/// with the tuple `(A, B)`, and so on up to four (a function item or a closure without
/// captures).
pub trait SpreadFn<Args, R>: Send + Sync + 'static {
    /// A function of the tuple that calls this one with it spread out (named in the child
    /// by a checked [`FnRef`](crate::FnRef)).
    #[doc(hidden)]
    fn spread(&self) -> Result<fn(Args) -> R>;
}

macro_rules! spread {
    ($($a:ident),*) => {
        impl<F, R: 'static, $($a: 'static),*> SpreadFn<($($a,)*), R> for F
        where
            F: Fn($($a),*) -> R + Send + Sync + 'static,
        {
            #[allow(non_snake_case)]
            fn spread(&self) -> Result<fn(($($a,)*)) -> R> {
                let adapter = |f: &F, ($($a,)*): ($($a,)*)| f($($a),*);
                crate::FnRef::of_adapted(self, &adapter)?.resolve()
            }
        }
    };
}
spread!(A, B);
spread!(A, B, C);
spread!(A, B, C, D);

/// A process ready to start (Python's `Process` before `start()`): settings and a target.
/// [`start`](Process::start) consumes it, so a process cannot be started twice.
///
/// ```
/// use multiproc_spawn::{Process, StartMethod};
/// fn add((a, b): (u32, u32)) -> u32 { a + b }
/// for m in StartMethod::all() {
///     let h = Process::builder().start_method(m).target(add, (2, 3)).start().unwrap();
///     assert_eq!(h.join().unwrap(), 5);
/// }
/// ```
pub struct Process<R> {
    cfg: Builder,
    target: Target<R>,
}

impl<R> fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.cfg.name)
            .field("daemon", &self.cfg.daemon)
            .field("start_method", &self.cfg.method)
            .field("closure", &matches!(self.target, Target::Closure(_)))
            .finish()
    }
}

impl Process<()> {
    /// A [`Builder`] with default settings.
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl<R: Serialize + DeserializeOwned + 'static> Process<R> {
    /// Sets the name; see [`Builder::name`].
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.cfg = self.cfg.name(name);
        self
    }

    /// Sets the daemon flag; see [`Builder::daemon`].
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.cfg = self.cfg.daemon(daemon);
        self
    }

    /// Sets the child's authkey; see [`Builder::authkey`].
    pub fn authkey(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.cfg = self.cfg.authkey(key);
        self
    }

    /// Whether the process will be daemonic once started; see [`Builder::is_daemon`].
    pub fn is_daemon(&self) -> bool {
        self.cfg.is_daemon()
    }

    /// Sets the start method; see [`Builder::start_method`].
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.cfg = self.cfg.start_method(method);
        self
    }

    /// The start method `start` will use.
    pub fn effective_start_method(&self) -> StartMethod {
        self.cfg.method.unwrap_or_else(get_start_method)
    }

    /// Starts the child. Errors leave no process behind: arguments that cannot be serialised,
    /// a closure under a method other than fork, a daemonic caller, a failing system call.
    pub fn start(self) -> Result<JoinHandle<R>> {
        let st = state::state();
        let me = st.info();
        if me.daemon {
            return Err(Error::new(
                ErrorKind::DaemonicParent,
                format!("{:?} is daemonic", me.name),
            ));
        }
        let method = self.effective_start_method();
        let daemon = self.cfg.daemon.unwrap_or(me.daemon);

        // Everything that can fail for the caller's input fails before any process exists.
        enum Plan<R> {
            Fork(Box<dyn FnOnce() -> R>),
            ForkFn(Box<dyn FnTarget<R>>, Rc<RefCell<Option<Encoded>>>),
            Exec(Box<dyn FnTarget<R>>, Encoded, i64, i64, u64),
        }
        let plan = match (method, self.target) {
            (_, Target::Refused(e)) => return Err(e),
            (StartMethod::Fork, Target::Closure(c)) => Plan::Fork(c),
            (StartMethod::Fork, Target::Fn(mut t)) => {
                let enc = t.encode().map_err(Error::encode)?;
                t.drop_args();
                Plan::ForkFn(t, Rc::new(RefCell::new(Some(enc))))
            }
            (_, Target::Closure(_)) => {
                return Err(Error::new(
                    ErrorKind::ClosureNeedsFork,
                    format!("start method is {method}"),
                ))
            }
            (_, Target::Fn(t)) => {
                if !child::constructor_ran() {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        "this binary's multiproc-spawn child entry (an .init_array constructor) \
                         did not run, so a re-executed child could not be caught before main",
                    ));
                }
                let (entry, target, hash) = t.addresses();
                let (Some(entry_off), Some(target_off)) =
                    (child::offset_of(entry), child::offset_of(target))
                else {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        "the target function is not in the main executable (use fork)",
                    ));
                };
                let enc = t.encode().map_err(Error::encode)?;
                Plan::Exec(t, enc, entry_off, target_off, hash)
            }
        };

        let identity = st.next_identity();
        let name = self.cfg.name.clone().unwrap_or_else(|| {
            let parts: Vec<String> = identity.iter().map(u32::to_string).collect();
            format!("Process-{}", parts.join(":"))
        });
        let info = Info {
            name: name.clone(),
            identity,
            daemon,
            method: Some(method.to_u8()),
            parent: Some(ParentInfo {
                pid: sys::getpid(),
                identity: ProcessId::current().identity_bits(),
                name: me.name.clone(),
            }),
            authkey: self.cfg.authkey.clone().unwrap_or_else(|| me.authkey.clone()),
            fn_key: me.fn_key,
        };

        let launched = match plan {
            Plan::Fork(closure) => launch_fork(closure, info, daemon)?,
            Plan::ForkFn(t, enc) => {
                match launch_fork(t.fork_body(enc.clone()), info, daemon) {
                    // The child adopts the encoding's references; the parent's copy of the
                    // encoding goes now (its arguments went before the fork).
                    Ok(l) => l,
                    Err(e) => {
                        if let Some(enc) = enc.borrow_mut().take() {
                            t.release(enc);
                        }
                        return Err(e);
                    }
                }
            }
            Plan::Exec(t, enc, entry, target, type_hash) => {
                let boot = Boot { info, entry, target, type_hash };
                match launch_exec(method, daemon, &boot, &enc) {
                    Ok(l) => l,
                    Err(e) => {
                        t.release(enc);
                        return Err(e);
                    }
                }
            }
        };
        let handle = JoinHandle::new(launched, name.clone(), daemon, method);
        st.register(handle.pid(), Record { name, daemon, pidfd: handle.pidfd_arc() });
        Ok(handle)
    }
}

/// Starts a spawned or forkserver child and hands it the boot frame. A child that dies
/// before decoding its arguments leaks the references their encoding took (its join reports
/// the death).
fn launch_exec(method: StartMethod, daemon: bool, boot: &Boot, enc: &Encoded) -> Result<Launched> {
    let payload = child::boot_payload(boot, &enc.bytes);
    let fds = enc
        .fds
        .iter()
        .map(|f| f.try_clone())
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::io(e, "dup"))?;
    let frame = wire::frame(wire::BOOT_MAGIC, 0, payload, fds, forkserver::INLINE_BOOT)
        .map_err(|e| Error::io(e, "writing the arguments"))?;
    if method == StartMethod::Spawn {
        let l = launch_spawn(daemon)?;
        // The child reads its boot frame before anything else, so sending cannot deadlock
        // (and a large payload is in a memfd anyway). A child that died meanwhile is
        // reported by its join.
        let _ = wire::send_frame(l.sock.as_fd(), &frame);
        Ok(l)
    } else {
        forkserver::launch(&frame)
    }
}

/// Forks a child that runs `closure`. The parent drops its copy of the closure like any
/// value: the handles it captured were counted for the child by the arena's fork handler
/// (see `multiproc_arena::fork`), so each side releases its own.
fn launch_fork<R: Serialize>(
    closure: Box<dyn FnOnce() -> R>,
    info: Info,
    daemon: bool,
) -> Result<Launched> {
    let info = Box::new(info);
    let st = state::state();
    child::install_panic_hook();
    let lifeline = if daemon {
        Some(
            st.lifeline().map_err(|e| Error::io(e, "creating the lifeline pipe"))?.read.as_raw_fd(),
        )
    } else {
        None
    };
    let (parent_end, child_end) = UnixStream::pair().map_err(|e| Error::io(e, "socketpair"))?;
    // Initialise this thread's transfer context before the fork, so that the child's first
    // encode does not register thread-local destructors (a lock, and pages to copy).
    let _ = transfer::in_context();
    // SAFETY: the child runs only `fork_child_main`: it builds fresh per-process state without
    // touching locks inherited from other threads, runs the target, and `_exit`s.
    match unsafe { sys::fork() } {
        Err(e) => Err(Error::io(e, "fork")),
        Ok(0) => {
            drop(parent_end);
            child::fork_child_main(closure, info, child_end.into(), lifeline)
        }
        Ok(pid) => {
            drop(child_end);
            drop(closure);
            launched(pid, parent_end)
        }
    }
}

/// argv[0] for re-executed children: this program's own.
pub(crate) fn child_argv(role: &str) -> Vec<CString> {
    let argv0 = std::env::args_os()
        .next()
        .and_then(|a| CString::new(a.as_bytes()).ok())
        .unwrap_or_else(|| c"multiproc-child".to_owned());
    vec![argv0, CString::new(format!("--multiproc-{role}")).expect("no NUL")]
}

/// This process's environment plus the child marker.
pub(crate) fn child_env(role: &str) -> Vec<CString> {
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k.as_bytes() != child::MARKER.to_bytes())
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let mut marker = child::MARKER.to_bytes().to_vec();
    marker.extend_from_slice(format!("={role}").as_bytes());
    env.push(CString::new(marker).expect("no NUL"));
    env
}

fn launch_spawn(daemon: bool) -> Result<Launched> {
    let st = state::state();
    let (parent_end, child_end) = UnixStream::pair().map_err(|e| Error::io(e, "socketpair"))?;
    // Above the target numbers, so that the moves cannot clobber each other.
    let sock = sys::dup_at_least(child_end.as_fd(), 10).map_err(|e| Error::io(e, "dup"))?;
    drop(child_end);
    let mut dups = vec![(sock.as_raw_fd(), child::CHILD_SOCK_FD)];
    let lifeline = if daemon {
        let l = st.lifeline().map_err(|e| Error::io(e, "creating the lifeline pipe"))?;
        let fd = sys::dup_at_least(l.read.as_fd(), 10).map_err(|e| Error::io(e, "dup"))?;
        dups.push((fd.as_raw_fd(), child::CHILD_LIFELINE_FD));
        Some(fd)
    } else {
        None
    };
    let pid = sys::spawn_self(
        &child_argv("spawn"),
        &child_env("spawn"),
        &dups,
        child::CHILD_SOCK_FD + dups.len() as i32,
    )
    .map_err(|e| Error::io(e, "posix_spawn of /proc/self/exe"))?;
    drop(sock);
    drop(lifeline);
    launched(pid, parent_end)
}

/// A child this process started (fork, spawn) with `sock` its end of the result socket: its
/// pidfd opened, or the child killed and reaped if that fails.
fn launched(pid: u32, sock: UnixStream) -> Result<Launched> {
    let pidfd = sys::pidfd_open(pid).map_err(|e| {
        sys::kill_and_reap(pid);
        Error::io(e, "pidfd_open")
    })?;
    Ok(Launched { pid, pidfd, sock, status: None })
}
