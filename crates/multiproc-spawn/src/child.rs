//! The child's side: the life-before-main entry of re-executed children, the trampolines that
//! decode arguments and encode results generically, panic capture, and the exit path.
//!
//! # Finding the target in a re-executed child
//!
//! A function pointer differs from run to run (ASLR), but the distance between two functions
//! of one executable does not. The parent sends `target - anchor` and `entry - anchor`, where
//! `anchor` is this crate's constructor, and the child adds its own anchor back. Both must lie
//! in the object holding the anchor (checked with `dladdr` on both sides), and `entry` is a
//! monomorphised [`entry::<A, R>`] that checks a hash of `A` and `R`'s names and layouts
//! before it treats the target as a `fn(A) -> R`.

use crate::error::PanicLocation;
use crate::method::StartMethod;
use crate::state::{self, Info};
use crate::sys;
use crate::wire::{self, FrameReader};
use multiproc_arena::transfer;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Once, OnceLock};

/// The environment variable that marks a re-executed child (`spawn`) or forkserver.
pub(crate) const MARKER: &CStr = c"MULTIPROC_CHILD_V1";
/// In a re-executed child: the socket to the parent.
pub(crate) const CHILD_SOCK_FD: RawFd = 3;
/// In a re-executed child or the forkserver: the parent's lifeline read end, if any.
pub(crate) const CHILD_LIFELINE_FD: RawFd = 4;

/// What a child sends back.
pub(crate) enum Outcome {
    Ok(Vec<u8>, Vec<OwnedFd>),
    Panic(String, Option<PanicLocation>),
    Error(String),
}

/// A monomorphised entry: (target address, type hash, argument bytes, descriptors).
pub(crate) type EntryFn = fn(usize, u64, &[u8], Vec<OwnedFd>) -> Outcome;

/// The header of a boot frame.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Boot {
    pub(crate) info: Info,
    pub(crate) entry: i64,
    pub(crate) target: i64,
    pub(crate) type_hash: u64,
}

static CTOR_RAN: AtomicBool = AtomicBool::new(false);

/// Whether this crate's constructor ran in this process (if not, a re-executed child would
/// run `main` instead of the target, so spawn and forkserver refuse to start).
pub(crate) fn constructor_ran() -> bool {
    CTOR_RAN.load(Ordering::Relaxed)
}

/// Runs before `main` in every binary that links this crate (an ELF `.init_array` entry;
/// glibc passes argc, argv and envp). In an ordinary process it only sets a flag. In a
/// re-executed child it never returns: it runs the target and exits, so the parent's `main`
/// never runs twice.
extern "C" fn constructor(_argc: c_int, _argv: *const *const c_char, envp: *const *const c_char) {
    CTOR_RAN.store(true, Ordering::Relaxed);
    // SAFETY: glibc passes the process environment block, valid and not yet modified by
    // anyone (no other code runs concurrently before main).
    let role = unsafe { sys::env_lookup(envp, MARKER.to_bytes()) };
    let Some(role) = role else { return };
    let role = role.to_vec();
    // SAFETY: before main, single-threaded: nobody else touches the environment. Removing
    // the marker keeps it from reaching programs this child runs.
    unsafe { sys::unsetenv(MARKER) };
    match role.as_slice() {
        b"spawn" => reexec_child_main(StartMethod::Spawn, None),
        b"forkserver" => crate::forkserver::serve(),
        _ => {}
    }
}

#[used]
#[link_section = ".init_array"]
static CONSTRUCTOR: extern "C" fn(c_int, *const *const c_char, *const *const c_char) = constructor;

fn anchor() -> usize {
    constructor as *const () as usize
}

/// The load address of the object (executable) holding this crate.
fn anchor_base() -> Option<usize> {
    static BASE: OnceLock<Option<usize>> = OnceLock::new();
    *BASE.get_or_init(|| sys::object_base(anchor()))
}

/// `addr - anchor`, if `addr` lies in the object (executable) that holds this crate.
pub(crate) fn offset_of(addr: usize) -> Option<i64> {
    let base = anchor_base()?;
    (sys::object_base(addr)? == base).then(|| (addr as i64).wrapping_sub(anchor() as i64))
}

/// `anchor + off`, if it lies in the object (executable) that holds this crate.
pub(crate) fn address_of(off: i64) -> Option<usize> {
    let addr = (anchor() as i64).wrapping_add(off) as usize;
    (sys::object_base(addr)? == anchor_base()?).then_some(addr)
}

/// FNV-1a of the names and layouts of `A` and `R`.
pub(crate) fn type_hash<A, R>() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    std::any::type_name::<A>().bytes().for_each(&mut eat);
    b" -> ".iter().copied().for_each(&mut eat);
    std::any::type_name::<R>().bytes().for_each(&mut eat);
    for n in [
        std::mem::size_of::<A>(),
        std::mem::align_of::<A>(),
        std::mem::size_of::<R>(),
        std::mem::align_of::<R>(),
    ] {
        (n as u64).to_le_bytes().into_iter().for_each(&mut eat);
    }
    h
}

/// The trampoline a re-executed child calls: decodes `A`, runs the target, encodes `R`.
pub(crate) fn entry<A: DeserializeOwned, R: Serialize>(
    target: usize,
    hash: u64,
    args: &[u8],
    fds: Vec<OwnedFd>,
) -> Outcome {
    if hash != type_hash::<A, R>() {
        return Outcome::Error(format!(
            "type mismatch: the child's entry is for fn({}) -> {}",
            std::any::type_name::<A>(),
            std::any::type_name::<R>()
        ));
    }
    // The parent computed `target` from a `fn(A) -> R` of this very binary and paired it with
    // this monomorphised entry (the hash above confirms A and R); it was relocated by the
    // same anchor distance and checked to lie in this executable by `address_of`.
    // SAFETY: see above; a fn pointer and a usize have the same size.
    let f: fn(A) -> R = unsafe { std::mem::transmute::<usize, fn(A) -> R>(target) };
    let args: A = match transfer::decode(args, fds) {
        Ok(a) => a,
        Err(e) => return Outcome::Error(format!("decoding the arguments failed: {e}")),
    };
    run_caught(move || f(args))
}

/// The thread running the target (its kernel thread id), so the panic hook records only the
/// target's own panic. A static, not a thread-local: one less page for a forked child to copy.
static TARGET_TID: AtomicI32 = AtomicI32::new(0);

thread_local! {
    static LAST_PANIC: RefCell<Option<PanicLocation>> = const { RefCell::new(None) };
}

/// Installs (once per process, before forking, so a forked child never touches the hook's
/// lock) a panic hook that records where the target panicked, then calls the previous hook.
pub(crate) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if TARGET_TID.load(Ordering::Relaxed) == sys::gettid() {
                let loc = info.location().map(|l| PanicLocation {
                    file: l.file().to_string(),
                    line: l.line(),
                    column: l.column(),
                });
                LAST_PANIC.with(|p| *p.borrow_mut() = loc);
            }
            prev(info)
        }));
    });
}

/// The text a panic carries: the `&str` or `String` payload of `panic!`; `None` for any
/// other payload (as from [`std::panic::panic_any`]).
pub fn panic_payload_str(p: &(dyn std::any::Any + Send)) -> Option<&str> {
    if let Some(s) = p.downcast_ref::<&str>() {
        Some(s)
    } else {
        p.downcast_ref::<String>().map(String::as_str)
    }
}

fn payload_message(p: &(dyn std::any::Any + Send)) -> String {
    panic_payload_str(p).unwrap_or("<non-string panic payload>").to_string()
}

/// Runs the target, catching a panic, and encodes its value (header space first). Nothing
/// unwinds out of here: a forked child must never return into its parent's frames.
pub(crate) fn run_caught<R: Serialize>(f: impl FnOnce() -> R) -> Outcome {
    TARGET_TID.store(sys::gettid(), Ordering::Relaxed);
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    TARGET_TID.store(0, Ordering::Relaxed);
    match res {
        Ok(value) => {
            let encoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let mut buf = vec![0u8; wire::HEADER];
                let enc = transfer::encode_into(&value, &mut buf);
                // Encoding took references for the receiver; the child's own copy goes now.
                drop(value);
                enc.map(|fds| (buf, fds))
            }));
            match encoded {
                Ok(Ok((buf, fds))) => Outcome::Ok(buf, fds),
                Ok(Err(e)) => Outcome::Error(format!("encoding the result failed: {e}")),
                Err(p) => Outcome::Error(format!(
                    "encoding or dropping the result panicked: {}",
                    payload_message(&*p)
                )),
            }
        }
        Err(payload) => {
            let message = payload_message(&*payload);
            let location = LAST_PANIC.with(|p| p.borrow_mut().take());
            // Dropping a payload can itself panic; never let that escape.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(payload)));
            Outcome::Panic(message, location)
        }
    }
}

/// Sends `out` on `sock` and returns the exit code to use.
pub(crate) fn send_outcome(sock: BorrowedFd<'_>, out: Outcome) -> i32 {
    let (kind, buf, fds, code) = match out {
        Outcome::Ok(buf, fds) => (wire::OK, buf, fds, 0),
        Outcome::Panic(msg, loc) => {
            let buf = postcard::to_extend(&(msg, loc), vec![0u8; wire::HEADER])
                .unwrap_or_else(|_| vec![0u8; wire::HEADER]);
            (wire::PANIC, buf, Vec::new(), 1)
        }
        Outcome::Error(msg) => {
            let mut buf = vec![0u8; wire::HEADER];
            buf.extend_from_slice(msg.as_bytes());
            (wire::ERROR, buf, Vec::new(), 1)
        }
    };
    // A parent that went away (EPIPE) does not want the result; exit all the same.
    if let Ok(f) = wire::frame(wire::RESULT_MAGIC, kind, buf, fds, wire::inline_max(sock)) {
        let _ = wire::send_frame(sock, &f);
    }
    code
}

/// Flushes Rust's stdout, gives back shared-object references, and exits without running the
/// parent's destructors or exit hooks.
fn finish(code: i32, flush_stdout: bool) -> ! {
    state::exit_handler();
    // Destructors do not run: give back the shared-object references this process holds
    // (inherited at the fork or taken since), so that nothing is leaked.
    multiproc_arena::fork::release_handles();
    if flush_stdout {
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    sys::exit_now(code)
}

/// Takes, ahead of time, page faults a forkserver child would otherwise take after its request
/// came: a spare (a fork of the server) touches the stack, heap and statics a child writes,
/// and runs the common encode/decode paths once.
pub(crate) fn warm_up() {
    #[inline(never)]
    fn touch_stack() {
        let mut buf = [0u8; 48 * 1024];
        for i in (0..buf.len()).step_by(4096) {
            buf[i] = 1;
        }
        std::hint::black_box(&mut buf);
    }
    touch_stack();
    std::hint::black_box(vec![1u8; 32 * 1024]);
    TARGET_TID.store(0, Ordering::Relaxed);
    state::warm_up();
    if let Ok(e) = transfer::encode(&(0u64, String::new())) {
        let _ = transfer::decode::<(u64, String)>(&e.bytes, e.fds);
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

/// Re-opens the lifeline read end `raw` as this process's own open file description, arms
/// it to SIGKILL this process when the parent's write end closes, and closes the race of a
/// parent that died before the arming. The descriptor stays open for the child's life.
pub(crate) fn arm_lifeline(raw: RawFd) {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(format!("/proc/self/fd/{raw}"));
    let file = match opened {
        Ok(f) => f,
        Err(_) => finish(1, false),
    };
    if sys::kill_me_on_hangup(file.as_fd()).is_err() {
        finish(1, false);
    }
    if sys::readable_now(file.as_fd()) {
        // The parent is gone already (a pipe without writers reads as hung up).
        let _ = sys::kill(sys::getpid(), libc::SIGKILL);
        finish(1, false);
    }
    std::mem::forget(file);
}

/// The forked child (fork start method): never returns.
pub(crate) fn fork_child_main<R: Serialize>(
    f: Box<dyn FnOnce() -> R>,
    info: Box<Info>,
    sock: OwnedFd,
    lifeline: Option<RawFd>,
) -> ! {
    if info.daemon {
        match lifeline {
            Some(raw) => arm_lifeline(raw),
            None => finish(1, false),
        }
    }
    state::install_child(info, sock.as_raw_fd());
    sys::unblock_all_signals();
    // Nothing may unwind into the parent's frames: the whole child runs under catch_unwind.
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let out = run_caught(f);
        send_outcome(sock.as_fd(), out)
    }))
    .unwrap_or(1);
    // Not flushing stdout: another thread of the parent may have held its lock at the fork.
    finish(code, false)
}

/// A re-executed child (spawn, or forked by the forkserver): the socket is descriptor 3, the
/// lifeline (if passed) descriptor 4. Reads the boot frame (a forkserver child has it in
/// memory already), runs the target, exits.
pub(crate) fn reexec_child_main(method: StartMethod, preloaded: Option<FrameReader>) -> ! {
    if method == StartMethod::Spawn {
        // A parent with closed standard streams must not make descriptors this child
        // receives land on 0, 1 or 2 (where a print would write into them). The forkserver
        // did this for its children when it started.
        sys::ensure_stdio_open();
    }
    // SAFETY: descriptor 3 was placed by the parent (posix_spawn file actions or the
    // forkserver's dup2) for this child alone; nothing else in the process owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(CHILD_SOCK_FD) };
    // Take descriptor 4 before anything else can land on that number.
    let lifeline = sys::fd_is_open(CHILD_LIFELINE_FD).then(|| {
        // SAFETY: descriptor 4, when open, was placed by the parent (or the forkserver) for
        // this child; nothing else in the process owns it.
        unsafe { OwnedFd::from_raw_fd(CHILD_LIFELINE_FD) }
    });
    let mut reader = match preloaded {
        Some(r) => r,
        None => {
            let mut r = FrameReader::default();
            if r.pump(sock.as_fd(), wire::BOOT_MAGIC, true).is_err() {
                // The parent went away before sending the target.
                finish(1, false);
            }
            r
        }
    };
    let received = match reader.take() {
        Some(Ok(r)) => r,
        Some(Err(why)) => {
            let code = send_outcome(sock.as_fd(), Outcome::Error(format!("boot frame: {why}")));
            finish(code, false)
        }
        None => finish(1, false),
    };
    let fds = received.fds;
    let parsed = parse_boot(&received.payload);
    let (boot, args) = match parsed {
        Some(v) => v,
        None => {
            let code = send_outcome(sock.as_fd(), Outcome::Error("malformed boot frame".into()));
            finish(code, false)
        }
    };
    if boot.info.daemon {
        match &lifeline {
            Some(l) => arm_lifeline(l.as_raw_fd()),
            None => finish(1, false),
        }
    }
    // The armed copy is a new open file description; the inherited one goes.
    drop(lifeline);
    let mut info = Box::new(boot.info);
    info.method = Some(method.to_u8());
    state::install_child(info, sock.as_raw_fd());
    install_panic_hook();
    let out = match (address_of(boot.entry), address_of(boot.target)) {
        (Some(e), Some(t)) => {
            // SAFETY: `e` is the parent's `entry::<A, R>` relocated into this process (same
            // binary, same anchor distance, checked to lie in this executable); every
            // `entry` instance has the `EntryFn` signature.
            let entry: EntryFn = unsafe { std::mem::transmute::<usize, EntryFn>(e) };
            entry(t, boot.type_hash, args, fds)
        }
        _ => Outcome::Error("the target does not lie in this executable".into()),
    };
    let code = send_outcome(sock.as_fd(), out);
    finish(code, true)
}

fn parse_boot(payload: &[u8]) -> Option<(Boot, &[u8])> {
    let hlen = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
    let header = payload.get(4..4 + hlen)?;
    let boot: Boot = postcard::from_bytes(header).ok()?;
    Some((boot, payload.get(4 + hlen..)?))
}

/// Builds a boot payload (after [`wire::HEADER`] reserved bytes): the boot header and the
/// encoded arguments.
pub(crate) fn boot_payload(boot: &Boot, args: &[u8]) -> Vec<u8> {
    let header = postcard::to_allocvec(boot).expect("boot header serialises");
    let len = 4 + header.len() + args.len();
    let mut buf = Vec::with_capacity(wire::HEADER + len);
    buf.resize(wire::HEADER, 0);
    buf.extend_from_slice(&(header.len() as u32).to_le_bytes());
    buf.extend_from_slice(&header);
    buf.extend_from_slice(args);
    buf
}
