//! [`JoinHandle`]: a started child, its result and its exit status.

use crate::error::{JoinError, PanicLocation, Signal};
use crate::method::StartMethod;
use crate::state::{self, Orphan};
use crate::sys::{self, RawExit};
use crate::wire::{self, FrameReader};
use multiproc_arena::transfer;
use serde::de::DeserializeOwned;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    Code(i32),
    Signal(i32),
    /// A forkserver child whose server died before it could report the status.
    Unknown,
}

impl Exit {
    fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => -s,
            Exit::Unknown => 255,
        }
    }
}

/// What a start method hands back: the child and the parent's ends of its channels.
pub(crate) struct Launched {
    pub(crate) pid: u32,
    pub(crate) pidfd: OwnedFd,
    pub(crate) sock: UnixStream,
    /// Forkserver: the pipe on which the server reports the exit status.
    pub(crate) status: Option<OwnedFd>,
}

/// A running (or finished) child process: join it for the target's return value.
///
/// Dropping the handle detaches the child: it keeps running (a daemonic one still dies with
/// this process) and is reaped when it ends, so it never stays a zombie; its result is
/// discarded. Python's `Process` object after `start()`.
pub struct JoinHandle<R> {
    pid: u32,
    name: String,
    daemon: bool,
    method: StartMethod,
    pidfd: Arc<OwnedFd>,
    sock: Option<UnixStream>,
    status: Option<File>,
    status_eof: AtomicBool,
    reader: FrameReader,
    read_error: Option<io::Error>,
    exit: Mutex<Option<Exit>>,
    taken: bool,
    _result: PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for JoinHandle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        multiproc_arena::debug_fields!(f, self, "JoinHandle" {
            pid, name, daemon, start_method: self.method, exitcode: self.exitcode()
        })
    }
}

impl<R> JoinHandle<R> {
    pub(crate) fn new(l: Launched, name: String, daemon: bool, method: StartMethod) -> Self {
        JoinHandle {
            pid: l.pid,
            name,
            daemon,
            method,
            pidfd: Arc::new(l.pidfd),
            sock: Some(l.sock),
            status: l.status.map(|fd| {
                let _ = sys::set_nonblocking(fd.as_fd(), true);
                File::from(fd)
            }),
            status_eof: AtomicBool::new(false),
            reader: FrameReader::default(),
            read_error: None,
            exit: Mutex::new(None),
            taken: false,
            _result: PhantomData,
        }
    }

    pub(crate) fn pidfd_arc(&self) -> Arc<OwnedFd> {
        self.pidfd.clone()
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The child's name (given to the builder, or Python's `Process-N[:M…]`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the child is daemonic.
    pub fn daemon(&self) -> bool {
        self.daemon
    }

    /// The method that started the child.
    pub fn start_method(&self) -> StartMethod {
        self.method
    }

    /// A descriptor that becomes readable when the child exits (a pidfd; Python's
    /// `sentinel`), to wait on several processes at once with `poll`/`epoll` or
    /// `multiproc_ipc_pipe::wait`.
    pub fn sentinel(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    fn exit_lock(&self) -> std::sync::MutexGuard<'_, Option<Exit>> {
        self.exit.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The exit status if the child has ended (reaping it), without blocking. A forkserver
    /// child's status comes from its server a moment after the child has ended.
    fn poll_exit(&self) -> Option<Exit> {
        let mut exit = self.exit_lock();
        if exit.is_some() {
            return *exit;
        }
        match self.method {
            StartMethod::Fork | StartMethod::Spawn => {
                if !sys::readable_now(self.pidfd.as_fd()) {
                    return None;
                }
                *exit = Some(match sys::waitid_pidfd(self.pidfd.as_fd(), true) {
                    Ok(Some(RawExit::Code(c))) => Exit::Code(c),
                    Ok(Some(RawExit::Signal(s))) => Exit::Signal(s),
                    // Ended but not reapable: someone else reaped it (SIGCHLD ignored).
                    Ok(None) | Err(_) => Exit::Unknown,
                });
            }
            StartMethod::Forkserver => {
                let Some(status) = &self.status else { return None };
                if self.status_eof.load(Ordering::Relaxed) {
                    // The server died before reporting: go by the pidfd.
                    if sys::readable_now(self.pidfd.as_fd()) {
                        *exit = Some(Exit::Unknown);
                    }
                    return *exit;
                }
                if !sys::readable_now(status.as_fd()) {
                    return None;
                }
                let mut buf = [0u8; 8];
                match (&*status).read(&mut buf) {
                    Ok(8) => {
                        let v = i32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
                        *exit = Some(if buf[0] == 2 { Exit::Signal(v) } else { Exit::Code(v) });
                    }
                    _ => {
                        self.status_eof.store(true, Ordering::Relaxed);
                        if sys::readable_now(self.pidfd.as_fd()) {
                            *exit = Some(Exit::Unknown);
                        }
                    }
                }
            }
        }
        *exit
    }

    /// Whether the child has ended (its status may still be on its way from a forkserver).
    fn ended(&self) -> bool {
        self.exit_lock().is_some() || sys::readable_now(self.pidfd.as_fd())
    }

    /// The exit status of a child that has ended: waits for a forkserver's report (it comes
    /// right after the server reaps the child, or the pipe ends if the server died).
    fn exit_of_ended(&self) -> Exit {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.poll_exit() {
                return e;
            }
            let fd = match &self.status {
                Some(st) if !self.status_eof.load(Ordering::Relaxed) => st.as_raw_fd(),
                _ => self.pidfd.as_raw_fd(),
            };
            let mut p = [sys::poll_in(fd)];
            if matches!(sys::poll(&mut p, Some(deadline)), Ok(0)) {
                // A server that neither reports nor dies: give up on the status.
                let mut exit = self.exit_lock();
                return *exit.get_or_insert(Exit::Unknown);
            }
        }
    }

    /// Whether the child is still running.
    pub fn is_alive(&self) -> bool {
        !self.ended()
    }

    /// The exit code once the child has ended: its `exit` code, or the negated number of the
    /// signal that killed it (Python's `exitcode`); `None` while it runs. A panic is 1. A
    /// forkserver child whose exit status was lost with its server reads 255.
    pub fn exitcode(&self) -> Option<i32> {
        if let Some(e) = self.poll_exit() {
            return Some(e.code());
        }
        self.ended().then(|| self.exit_of_ended().code())
    }

    /// Sends `SIGTERM` (Python's `terminate`). A child that has already ended is left alone
    /// (a pidfd names this very process, so a recycled pid is never signalled).
    pub fn terminate(&self) -> io::Result<()> {
        self.send_signal(libc::SIGTERM)
    }

    /// Sends `SIGKILL` (Python's `kill`).
    pub fn kill(&self) -> io::Result<()> {
        self.send_signal(libc::SIGKILL)
    }

    /// Sends `SIGINT` (Python 3.14's `interrupt`).
    pub fn interrupt(&self) -> io::Result<()> {
        self.send_signal(libc::SIGINT)
    }

    /// Sends `sig` to the child; a no-op once it has ended.
    pub fn send_signal(&self, sig: i32) -> io::Result<()> {
        if self.exit_lock().is_some() {
            return Ok(());
        }
        match sys::pidfd_send_signal(self.pidfd.as_fd(), sig) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            r => r,
        }
    }

    fn pump(&mut self) {
        if let Some(sock) = &self.sock {
            if self.reader.wants_data() {
                if let Err(e) = self.reader.pump(sock.as_fd(), wire::RESULT_MAGIC, false) {
                    self.read_error = Some(e);
                    self.reader.eof = true;
                }
            }
        }
    }

    /// Waits until the child has ended, or until `deadline`; then reads its result frame.
    ///
    /// Only the end of the child wakes this thread: a result never makes its child wait for
    /// the reader (see [`wire`]), so it is all in the socket once the child has ended. The
    /// socket is still drained now and then while waiting, as insurance.
    fn wait_until(&mut self, deadline: Option<Instant>) -> bool {
        let mut backoff = Duration::from_millis(50);
        loop {
            let ended = match self.method {
                StartMethod::Forkserver => self.ended(),
                _ => self.poll_exit().is_some(),
            };
            if ended {
                self.pump();
                return true;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return false;
            }
            let wake = now + backoff;
            let until = deadline.map_or(wake, |d| d.min(wake));
            let mut fds = [sys::poll_in(self.pidfd.as_raw_fd())];
            match sys::poll(&mut fds, Some(until)) {
                Ok(0) => {
                    self.pump();
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }

    fn finish(&mut self) -> Result<R, JoinError>
    where
        R: DeserializeOwned,
    {
        self.taken = true;
        self.sock = None;
        state::state().unregister(self.pid);
        match self.reader.take() {
            Some(Err(why)) => Err(JoinError::Decode(why)),
            Some(Ok(f)) if f.kind == wire::OK => {
                transfer::decode(&f.payload, f.fds).map_err(|e| JoinError::Decode(e.to_string()))
            }
            Some(Ok(f)) if f.kind == wire::PANIC => {
                let (message, location): (String, Option<PanicLocation>) =
                    postcard::from_bytes(&f.payload)
                        .unwrap_or_else(|_| ("<unreadable panic>".into(), None));
                Err(JoinError::Panicked { message, location })
            }
            Some(Ok(f)) => Err(JoinError::Decode(String::from_utf8_lossy(&f.payload).into_owned())),
            None => match self.exit_of_ended() {
                Exit::Signal(s) => Err(JoinError::Signaled(Signal(s))),
                // A target returning `()` may end the process with exit(0): that is success.
                Exit::Code(0) => transfer::decode(&[], Vec::new()).map_err(|_| {
                    self.read_error.take().map_or(JoinError::Exited(0), JoinError::Io)
                }),
                Exit::Code(c) => Err(JoinError::Exited(c)),
                Exit::Unknown => Err(JoinError::Exited(255)),
            },
        }
    }

    /// Waits for the child to end and returns the target's value (Python's `join()`, plus
    /// the value). A result of any size comes back without deadlock: a large one is handed
    /// over in a memfd, so the child never waits for this thread to read.
    pub fn join(mut self) -> Result<R, JoinError>
    where
        R: DeserializeOwned,
    {
        if self.taken {
            return Err(JoinError::AlreadyJoined);
        }
        self.wait_until(None);
        self.finish()
    }

    /// Waits up to `timeout` for the child to end and returns its result (Python's
    /// `join(timeout)`, plus the value). While the child still runs when the time passes:
    /// `Err(e)` with `e.is_timeout()` ([`JoinError::Timeout`]); nothing was taken, so the
    /// handle can be joined again. After a result was returned, the handle still answers
    /// [`exitcode`](Self::exitcode) and [`is_alive`](Self::is_alive); another join gives
    /// [`JoinError::AlreadyJoined`].
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<R, JoinError>
    where
        R: DeserializeOwned,
    {
        if self.taken {
            return Err(JoinError::AlreadyJoined);
        }
        let deadline = Instant::now().checked_add(timeout);
        if self.wait_until(deadline) {
            self.finish()
        } else {
            Err(JoinError::Timeout)
        }
    }

    /// Returns the child's result if it has ended, without waiting. While it still runs:
    /// `Err(e)` with `e.is_would_block()` ([`JoinError::WouldBlock`]); nothing was taken,
    /// so the handle can be joined again. Otherwise as [`join_timeout`](Self::join_timeout).
    pub fn try_join(&mut self) -> Result<R, JoinError>
    where
        R: DeserializeOwned,
    {
        if self.taken {
            return Err(JoinError::AlreadyJoined);
        }
        if self.wait_until(Some(Instant::now())) {
            self.finish()
        } else {
            Err(JoinError::WouldBlock)
        }
    }
}

impl<R> AsFd for JoinHandle<R> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sentinel()
    }
}

impl<R> Drop for JoinHandle<R> {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        self.sock = None;
        let st = state::state();
        if self.poll_exit().is_some() {
            st.unregister(self.pid);
            return;
        }
        st.adopt_orphan(Orphan {
            pid: self.pid,
            pidfd: self.pidfd.clone(),
            direct: self.method != StartMethod::Forkserver,
            _keep: self.status.take().map(OwnedFd::from).into_iter().collect(),
        });
    }
}
