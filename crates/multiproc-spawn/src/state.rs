//! Per-process state: who this process is, its live children, its lifeline pipe, the
//! forkserver connection and the reaper of abandoned children.
//!
//! A forked child inherits a copy of the parent's state, including locks that another of the
//! parent's threads may have held at the instant of the fork. So the state is reached through
//! a pointer tagged with the owner's pid: the first use in a new process (or
//! [`install_child`] right after a fork) builds a fresh state and leaks the inherited copy,
//! never touching its locks, and closes the parent's private descriptors it inherited.

use crate::forkserver;
use crate::method::StartMethod;
use crate::sys;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The parent of a child process, as the child knows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct ParentInfo {
    pub(crate) pid: u32,
    /// The parent's arena identity bits (its liveness, provable across PID namespaces).
    pub(crate) identity: u64,
    pub(crate) name: String,
}

/// Who this process is (Python's `current_process()` attributes).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Info {
    pub(crate) name: String,
    /// Python's `_identity`: the child counter values from the main process down.
    pub(crate) identity: Vec<u32>,
    pub(crate) daemon: bool,
    /// The method that started this process (None in the main process).
    pub(crate) method: Option<u8>,
    pub(crate) parent: Option<ParentInfo>,
    /// Python's `Process.authkey`: random in the main process, inherited by children.
    pub(crate) authkey: Vec<u8>,
    /// The key of this process tree's [`FnRef`](crate::FnRef) tags: random in the main
    /// process, inherited by every child (never settable, never shown).
    pub(crate) fn_key: [u64; 2],
}

impl Info {
    fn main() -> Info {
        Info {
            name: "MainProcess".into(),
            identity: Vec::new(),
            daemon: false,
            method: None,
            parent: None,
            authkey: random_authkey(),
            fn_key: [multiproc_arena::random_u64(), multiproc_arena::random_u64()],
        }
    }
}

/// 32 random bytes (Python's `os.urandom(32)` for the main process's authkey).
fn random_authkey() -> Vec<u8> {
    let mut k = vec![0u8; 32];
    if multiproc_arena::os::random_bytes(&mut k).is_err() {
        // No kernel randomness (never on supported kernels): still unique per process.
        for (i, c) in k.chunks_mut(8).enumerate() {
            c.copy_from_slice(&multiproc_arena::random_u64().wrapping_add(i as u64).to_le_bytes());
        }
    }
    k
}

/// A live child in the registry (for `active_children` and the exit handler).
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) name: String,
    pub(crate) daemon: bool,
    pub(crate) pidfd: Arc<OwnedFd>,
}

/// The pipe whose write end only this process holds: a daemonic child's copy of the read
/// end is armed to SIGKILL the child when the last writer closes, i.e. when this process
/// dies, however it dies.
#[derive(Debug)]
pub(crate) struct Lifeline {
    pub(crate) read: OwnedFd,
    #[allow(dead_code)] // held open for the life of the process; its closing is the signal
    write: OwnedFd,
    /// Identities of `read` and `write` (see [`FileId`]).
    ids: [FileId; 2],
}

/// The identity of an open file: (`st_dev`, `st_ino`).
///
/// A forked child must close the copies of this process's private descriptors, but it cannot
/// trust the numbers alone: `fork` copies the descriptor table *before* the memory, so another
/// thread of the parent may create (or close) a private descriptor and record it in memory
/// between the two copies. The child then sees a number it never inherited (closing it would
/// fail, and the number may soon name one of the child's own files). Recording the identity
/// beside the number lets the child close exactly the copies it holds.
pub(crate) type FileId = (u64, u64);

/// A private socket pair with the identities of both ends.
#[derive(Debug)]
struct WakePair {
    r: UnixStream,
    w: UnixStream,
    ids: [FileId; 2],
}

/// A child whose handle was dropped before it was reaped.
#[derive(Debug)]
pub(crate) struct Orphan {
    pub(crate) pid: u32,
    pub(crate) pidfd: Arc<OwnedFd>,
    /// Whether this process is its parent (fork, spawn) and must reap it.
    pub(crate) direct: bool,
    /// Descriptors to keep until it ends (a forkserver child's status pipe).
    pub(crate) _keep: Vec<OwnedFd>,
}

#[derive(Debug, Default)]
struct Reaper {
    pending: Mutex<Vec<Orphan>>,
    wake: OnceLock<WakePair>,
    started: AtomicBool,
}

/// The identity of a descriptor this process just created.
fn id_of(fd: RawFd) -> std::io::Result<FileId> {
    sys::file_id(fd).ok_or_else(std::io::Error::last_os_error)
}

/// Everything this crate keeps per process.
#[derive(Debug)]
pub(crate) struct ProcState {
    pid: u32,
    info: Mutex<Info>,
    counter: AtomicU32,
    children: Mutex<HashMap<u32, Record>>,
    lifeline: OnceLock<Lifeline>,
    pub(crate) forkserver: Mutex<Option<forkserver::Server>>,
    /// Raw number of the forkserver control socket (-1: none), to close in forked children;
    /// stored after its identity, cleared before it is closed.
    pub(crate) forkserver_fd: AtomicI32,
    /// Identity of `forkserver_fd` (st_dev, st_ino).
    forkserver_id: [AtomicU64; 2],
    /// This process's own result socket when it is a child (-1: none).
    pub(crate) result_fd: AtomicI32,
    /// Identity of `result_fd`.
    result_id: [AtomicU64; 2],
    reaper: Reaper,
}

static STATE: AtomicPtr<ProcState> = AtomicPtr::new(std::ptr::null_mut());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ProcState {
    fn new(pid: u32, info: Info) -> ProcState {
        ProcState {
            pid,
            info: Mutex::new(info),
            counter: AtomicU32::new(0),
            children: Mutex::new(HashMap::new()),
            lifeline: OnceLock::new(),
            forkserver: Mutex::new(None),
            forkserver_fd: AtomicI32::new(-1),
            forkserver_id: [AtomicU64::new(0), AtomicU64::new(0)],
            result_fd: AtomicI32::new(-1),
            result_id: [AtomicU64::new(0), AtomicU64::new(0)],
            reaper: Reaper::default(),
        }
    }

    /// Descriptors of this state a forked child must not keep, with their identities (-1:
    /// none). A fixed array: the forked child calling this does not allocate.
    fn private_fds(&self) -> [(RawFd, FileId); 6] {
        let load = |fd: &AtomicI32, id: &[AtomicU64; 2]| {
            let fd = fd.load(Ordering::Acquire);
            (fd, (id[0].load(Ordering::Acquire), id[1].load(Ordering::Acquire)))
        };
        let none = (-1, (0, 0));
        let [lr, lw] = self.lifeline.get().map_or([none; 2], |l| {
            [(l.read.as_raw_fd(), l.ids[0]), (l.write.as_raw_fd(), l.ids[1])]
        });
        let [wr, ww] = self
            .reaper
            .wake
            .get()
            .map_or([none; 2], |p| [(p.r.as_raw_fd(), p.ids[0]), (p.w.as_raw_fd(), p.ids[1])]);
        [
            load(&self.forkserver_fd, &self.forkserver_id),
            load(&self.result_fd, &self.result_id),
            lr,
            lw,
            wr,
            ww,
        ]
    }

    /// Records the forkserver control socket (`None`: there is none any more).
    pub(crate) fn set_forkserver_fd(&self, fd: Option<RawFd>) {
        match fd {
            Some(fd) => {
                let (dev, ino) = sys::file_id(fd).unwrap_or((0, 0));
                self.forkserver_id[0].store(dev, Ordering::Release);
                self.forkserver_id[1].store(ino, Ordering::Release);
                self.forkserver_fd.store(fd, Ordering::Release);
            }
            None => self.forkserver_fd.store(-1, Ordering::Release),
        }
    }

    pub(crate) fn info(&self) -> Info {
        lock(&self.info).clone()
    }

    /// The next child's identity (Python's `_identity + (next(counter),)`).
    pub(crate) fn next_identity(&self) -> Vec<u32> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let mut id = lock(&self.info).identity.clone();
        id.push(n);
        id
    }

    pub(crate) fn lifeline(&self) -> std::io::Result<&Lifeline> {
        if let Some(l) = self.lifeline.get() {
            return Ok(l);
        }
        let (read, write) = sys::pipe()?;
        let ids = [id_of(read.as_raw_fd())?, id_of(write.as_raw_fd())?];
        let _ = self.lifeline.set(Lifeline { read, write, ids });
        Ok(self.lifeline.get().expect("set above"))
    }

    pub(crate) fn register(&self, pid: u32, rec: Record) {
        register_at_exit();
        lock(&self.children).insert(pid, rec);
    }

    pub(crate) fn unregister(&self, pid: u32) {
        lock(&self.children).remove(&pid);
    }

    /// (pid, name, daemon) of the registered children still running.
    pub(crate) fn live_children(&self) -> Vec<(u32, String, bool)> {
        let c = lock(&self.children);
        let mut v: Vec<_> = c
            .iter()
            .filter(|(_, r)| !sys::readable_now(r.pidfd.as_fd()))
            .map(|(&pid, r)| (pid, r.name.clone(), r.daemon))
            .collect();
        v.sort_by_key(|e| e.0);
        v
    }

    /// Hands a child whose handle was dropped to the reaper thread.
    pub(crate) fn adopt_orphan(&'static self, orphan: Orphan) {
        lock(&self.reaper.pending).push(orphan);
        let wake = match self.reaper.wake.get() {
            Some(w) => Some(w),
            None => UnixStream::pair().ok().and_then(|(r, w)| {
                r.set_nonblocking(true).ok()?;
                w.set_nonblocking(true).ok()?;
                let ids = [id_of(r.as_raw_fd()).ok()?, id_of(w.as_raw_fd()).ok()?];
                let _ = self.reaper.wake.set(WakePair { r, w, ids });
                self.reaper.wake.get()
            }),
        };
        if !self.reaper.started.swap(true, Ordering::AcqRel) {
            let spawned = std::thread::Builder::new()
                .name("multiproc-reaper".into())
                .stack_size(64 * 1024)
                .spawn(move || self.reap_loop());
            if spawned.is_err() {
                self.reaper.started.store(false, Ordering::Release);
            }
        }
        if let Some(p) = wake {
            let _ = (&p.w).write(&[1]);
        }
    }

    /// Reaps every orphan that has ended; returns how many are left.
    pub(crate) fn reap_orphans(&self) -> usize {
        let mut pending = lock(&self.reaper.pending);
        let mut ended = Vec::new();
        pending.retain(|o| {
            if !sys::readable_now(o.pidfd.as_fd()) {
                return true;
            }
            if o.direct {
                let _ = sys::waitid_pidfd(o.pidfd.as_fd(), true);
            }
            ended.push(o.pid);
            false
        });
        // Unregistered only once their descriptors are closed (`retain` dropped them), so a
        // child missing from `active_children` holds nothing any more.
        for pid in ended {
            self.unregister(pid);
        }
        pending.len()
    }

    fn reap_loop(&self) {
        let wake_r = self.reaper.wake.get().map(|p| p.r.as_raw_fd());
        loop {
            let mut fds: Vec<sys::PollFd> = Vec::new();
            if let Some(r) = wake_r {
                fds.push(sys::poll_in(r));
            }
            {
                let pending = lock(&self.reaper.pending);
                fds.extend(pending.iter().map(|o| sys::poll_in(o.pidfd.as_raw_fd())));
            }
            // Wake at least every second so an orphan added before the wake pipe existed
            // is still seen.
            let _ = sys::poll(&mut fds, Some(Instant::now() + Duration::from_secs(1)));
            if let (Some(_), Some(first)) = (wake_r, fds.first()) {
                if sys::ready(first) {
                    if let Some(p) = self.reaper.wake.get() {
                        let mut buf = [0u8; 64];
                        while matches!((&p.r).read(&mut buf), Ok(n) if n > 0) {}
                    }
                }
            }
            self.reap_orphans();
        }
    }
}

/// Who a new child is, recorded by [`install_child`] without allocating (a forked child that
/// allocates or writes memory pays a copy-on-write fault per page), and read when the
/// child's state is first built.
struct ChildSlot {
    pid: AtomicU32,
    info: AtomicPtr<Info>,
    result_fd: AtomicI32,
}

static CHILD: ChildSlot = ChildSlot {
    pid: AtomicU32::new(0),
    info: AtomicPtr::new(std::ptr::null_mut()),
    result_fd: AtomicI32::new(-1),
};

fn fresh_state(pid: u32) -> ProcState {
    if CHILD.pid.load(Ordering::Acquire) == pid {
        let info = CHILD.info.load(Ordering::Acquire);
        if !info.is_null() {
            // SAFETY: `install_child` stored a leaked Box<Info> for this very process.
            let st = ProcState::new(pid, unsafe { (*info).clone() });
            let fd = CHILD.result_fd.load(Ordering::Acquire);
            if let Some((dev, ino)) = sys::file_id(fd) {
                st.result_id[0].store(dev, Ordering::Release);
                st.result_id[1].store(ino, Ordering::Release);
                st.result_fd.store(fd, Ordering::Release);
            }
            return st;
        }
    }
    ProcState::new(pid, Info::main())
}

/// This process's state, created on first use in each process.
pub(crate) fn state() -> &'static ProcState {
    let pid = sys::getpid();
    loop {
        let p = STATE.load(Ordering::Acquire);
        // SAFETY: a non-null STATE points at a leaked, never-freed ProcState.
        if !p.is_null() && unsafe { (*p).pid } == pid {
            // SAFETY: as above; it lives for the rest of the process.
            return unsafe { &*p };
        }
        let fresh = Box::into_raw(Box::new(fresh_state(pid)));
        if STATE.compare_exchange(p, fresh, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            // SAFETY: just published, never freed.
            return unsafe { &*fresh };
        }
        // SAFETY: `fresh` was never published; we own it.
        drop(unsafe { Box::from_raw(fresh) });
    }
}

/// The state if this process has built one (never builds it).
fn existing_state() -> Option<&'static ProcState> {
    let p = STATE.load(Ordering::Acquire);
    // SAFETY: a non-null STATE points at a leaked, never-freed ProcState.
    (!p.is_null() && unsafe { (*p).pid } == sys::getpid()).then(|| unsafe { &*p })
}

/// Writes the statics a new child writes (see [`crate::child::warm_up`]).
pub(crate) fn warm_up() {
    CHILD.result_fd.store(-1, Ordering::Release);
    crate::method::force_start_method(StartMethod::Forkserver);
}

/// In a new child (forked, or started by re-execution), before anything else of this crate
/// and while it has a single thread: records who the child is (`info` was allocated before
/// the fork), closes the parent's private descriptors a fork carried over, and drops the
/// inherited state (without touching its locks, which another thread of the parent may have
/// held at the fork); the child's own state is built on first use.
pub(crate) fn install_child(info: Box<Info>, result_fd: RawFd) {
    let pid = sys::getpid();
    let old = STATE.load(Ordering::Acquire);
    if !old.is_null() {
        // SAFETY: a non-null STATE points at a leaked ProcState; we only read atomics and
        // OnceLocks (lock-free), never its Mutexes.
        let old = unsafe { &*old };
        if old.pid != pid {
            // Only the copies this child really holds (see `FileId`): a recorded number
            // may never have been inherited, or may name something else by now (even this
            // child's own result socket).
            for (fd, id) in old.private_fds() {
                if fd < 0 || sys::file_id(fd) != Some(id) {
                    continue;
                }
                // SAFETY: `fd` is open in this process and is a copy of the parent's private
                // file (same identity); the inherited state is abandoned here (STATE is reset
                // below), so nothing will use it through that state again.
                unsafe { sys::close_raw(fd) };
            }
            STATE.store(std::ptr::null_mut(), Ordering::Release);
        }
    }
    if let Some(m) = info.method.and_then(StartMethod::from_u8) {
        crate::method::force_start_method(m);
    }
    crate::fnref::forget_key();
    CHILD.info.store(Box::into_raw(info), Ordering::Release);
    CHILD.result_fd.store(result_fd, Ordering::Release);
    CHILD.pid.store(pid, Ordering::Release);
}

static AT_EXIT: AtomicBool = AtomicBool::new(false);

fn register_at_exit() {
    if !AT_EXIT.swap(true, Ordering::AcqRel) {
        sys::at_exit(at_exit);
    }
}

extern "C" fn at_exit() {
    exit_handler();
}

/// Python's exit handler, run at a normal exit of any process (the main one through `atexit`,
/// a child after its target): terminate the daemonic children still running, and wait for
/// the others ("a non-daemonic child is joined at exit").
pub(crate) fn exit_handler() {
    let Some(st) = existing_state() else { return };
    let live: Vec<(bool, Arc<OwnedFd>)> = lock(&st.children)
        .values()
        .filter(|r| !sys::readable_now(r.pidfd.as_fd()))
        .map(|r| (r.daemon, r.pidfd.clone()))
        .collect();
    if live.is_empty() {
        return;
    }
    for (daemon, fd) in &live {
        if *daemon {
            let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGTERM);
        }
    }
    let daemon_deadline = Instant::now() + Duration::from_secs(1);
    for (daemon, fd) in &live {
        let mut p = [sys::poll_in(fd.as_raw_fd())];
        let _ = sys::poll(&mut p, daemon.then_some(daemon_deadline));
    }
}
