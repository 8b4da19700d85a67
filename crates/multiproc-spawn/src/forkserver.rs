//! The forkserver: a clean, single-threaded re-execution of this binary that forks children
//! on request, and its client in the parent.
//!
//! Protocol on the control socket (a socketpair, so no other process can connect and no
//! authentication is needed):
//! - request `"MPFQ" len:u32` and the child's boot frame (`len` bytes, see [`wire`]), with
//!   descriptors attached: the child's end of a fresh socketpair whose other end the parent
//!   keeps, then the boot frame's own (argument handles, a memfd for a large payload);
//! - reply `"MPFA" pid:u32 errno:i32` with, on success, the child's pidfd and the read end of
//!   a pipe on which the server writes the exit status (`tag:u8 (1 code, 2 signal), 3 pad,
//!   value:i32`) once it has reaped the child.
//!
//! The forked child puts its socket on descriptor 3, keeps the parent's lifeline on 4 and the
//! boot frame's descriptors, closes everything else the server had, and continues exactly as
//! a spawned child with the boot frame already in memory: it runs the target, writes the
//! result and exits. So the parent's start costs one round trip to the server, and the child
//! starts running before the parent has the reply. The server exits
//! when the parent's end of the control socket closes (the parent died or exited); the client
//! restarts a server that died and retries the request once.

use crate::child;
use crate::error::{Error, ErrorKind, Result};
use crate::handle::Launched;
use crate::method::StartMethod;
use crate::process::{child_argv, child_env};
use crate::state::{self, ProcState};
use crate::sys::{self, RawExit};
use crate::wire::{self, Frame, FrameReader};
use multiproc_arena::transfer;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

const REQUEST: [u8; 4] = *b"MPFQ";
const REPLY: [u8; 4] = *b"MPFA";
/// Largest boot payload sent inside a request (larger ones travel in a memfd).
pub(crate) const INLINE_BOOT: usize = 64 * 1024;
/// Largest request the server accepts.
const MAX_REQUEST: usize = wire::HEADER + INLINE_BOOT;
/// How long a request may wait for the server (its first start execs the binary).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The parent's connection to its forkserver.
#[derive(Debug)]
pub(crate) struct Server {
    pid: u32,
    pidfd: OwnedFd,
    control: UnixStream,
}

enum RequestError {
    /// The server answered with an error (its fork failed): report it.
    Refused(io::Error),
    /// The server is gone or misbehaved: restart it and retry.
    Broken(io::Error),
}

impl Server {
    fn alive(&self) -> bool {
        !sys::readable_now(self.pidfd.as_fd())
    }

    /// Kills and reaps the server (it is this process's child).
    fn shutdown(self, st: &ProcState) {
        st.set_forkserver_fd(None);
        let _ = sys::pidfd_send_signal(self.pidfd.as_fd(), libc::SIGKILL);
        let _ = sys::waitid_pidfd(self.pidfd.as_fd(), false);
    }

    fn request(&self, boot: &Frame) -> std::result::Result<Launched, RequestError> {
        let broken = RequestError::Broken;
        let (parent_end, child_end) = UnixStream::pair().map_err(RequestError::Refused)?;
        let mut msg = Vec::with_capacity(8 + boot.bytes.len());
        msg.extend_from_slice(&REQUEST);
        msg.extend_from_slice(&(boot.bytes.len() as u32).to_le_bytes());
        msg.extend_from_slice(&boot.bytes);
        let mut fds = vec![child_end.as_fd()];
        fds.extend(boot.fds.iter().map(|f| f.as_fd()));
        wire::send_all(self.control.as_fd(), &msg, &fds).map_err(broken)?;
        drop(child_end);
        let mut reply = [0u8; 12];
        let mut got = 0;
        let mut fds = Vec::new();
        while got < reply.len() {
            match transfer::recv_with_fds(self.control.as_fd(), &mut reply[got..], &mut fds, false)
            {
                Ok(0) => return Err(broken(io::ErrorKind::UnexpectedEof.into())),
                Ok(n) => got += n,
                Err(e) => return Err(broken(e)),
            }
        }
        if reply[..4] != REPLY {
            return Err(broken(io::Error::new(io::ErrorKind::InvalidData, "bad forkserver reply")));
        }
        let pid = u32::from_le_bytes(reply[4..8].try_into().expect("4 bytes"));
        let errno = i32::from_le_bytes(reply[8..12].try_into().expect("4 bytes"));
        if errno != 0 {
            return Err(RequestError::Refused(io::Error::from_raw_os_error(errno)));
        }
        if fds.len() != 2 {
            // The kernel drops descriptors a full table cannot take (MSG_CTRUNC): that is
            // this process running out, not the server misbehaving, so the server is kept
            // and the error names the cause. The child it forked for us cannot be reached:
            // it is ended (the server reaps it).
            if let Err(e) = self.control.try_clone() {
                if multiproc_arena::is_resource_shortage(&e) {
                    let _ = sys::kill(pid, libc::SIGKILL);
                    return Err(RequestError::Refused(e));
                }
            }
            return Err(broken(io::Error::new(
                io::ErrorKind::InvalidData,
                "forkserver reply lacks descriptors",
            )));
        }
        let status = fds.pop().expect("two");
        let pidfd = fds.pop().expect("two");
        Ok(Launched { pid, pidfd, sock: parent_end, status: Some(status) })
    }
}

fn start_server(st: &ProcState) -> Result<Server> {
    let io = |what: &'static str| move |e| Error::io(e, what);
    let (user, srv) = UnixStream::pair().map_err(io("socketpair"))?;
    let srv_fd = sys::dup_at_least(srv.as_fd(), 10).map_err(io("dup"))?;
    drop(srv);
    let lifeline = st.lifeline().map_err(io("creating the lifeline pipe"))?;
    let life_fd = sys::dup_at_least(lifeline.read.as_fd(), 10).map_err(io("dup"))?;
    let dups = [
        (srv_fd.as_raw_fd(), child::CHILD_SOCK_FD),
        (life_fd.as_raw_fd(), child::CHILD_LIFELINE_FD),
    ];
    let pid = sys::spawn_self(
        &child_argv("forkserver"),
        &child_env("forkserver"),
        &dups,
        child::CHILD_LIFELINE_FD + 1,
    )
    .map_err(|e| {
        if multiproc_arena::is_resource_shortage(&e) {
            Error::io(e, "starting the forkserver")
        } else {
            Error::with_source(ErrorKind::Forkserver, "starting the server", e)
        }
    })?;
    drop((srv_fd, life_fd));
    let pidfd = sys::pidfd_open(pid).map_err(io("pidfd_open"))?;
    user.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(io("SO_RCVTIMEO"))?;
    st.set_forkserver_fd(Some(user.as_raw_fd()));
    Ok(Server { pid, pidfd, control: user })
}

/// Asks this process's forkserver (starting or restarting it as needed) for a child that
/// runs `boot`.
pub(crate) fn launch(boot: &Frame) -> Result<Launched> {
    let st = state::state();
    let mut guard = st.forkserver.lock().unwrap_or_else(|p| p.into_inner());
    let mut last = None;
    for _ in 0..2 {
        if !guard.as_ref().is_some_and(Server::alive) {
            if let Some(old) = guard.take() {
                multiproc_arena::event!(
                    warn,
                    target: "multiproc::spawn",
                    old_pid = old.pid,
                    "the forkserver died; starting a new one"
                );
                old.shutdown(st);
            }
            *guard = Some(start_server(st)?);
        }
        let server = guard.as_ref().expect("started above");
        match server.request(boot) {
            Ok(l) => return Ok(l),
            Err(RequestError::Refused(e)) => {
                let kind = if multiproc_arena::is_resource_shortage(&e) {
                    ErrorKind::Resources
                } else {
                    ErrorKind::Forkserver
                };
                return Err(Error::with_source(
                    kind,
                    "the forkserver could not start the child",
                    e,
                ));
            }
            Err(RequestError::Broken(e)) => {
                multiproc_arena::event!(
                    warn,
                    target: "multiproc::spawn",
                    error = %e,
                    "the forkserver stopped answering; restarting it and retrying once"
                );
                last = Some(e);
                if let Some(old) = guard.take() {
                    old.shutdown(st);
                }
            }
        }
    }
    let e = last.unwrap_or_else(|| io::ErrorKind::Other.into());
    Err(Error::with_source(ErrorKind::Forkserver, "the server did not answer, twice", e))
}

/// A child forked ahead of time, waiting on its mailbox for a request, so that a start does
/// not wait for a fork.
struct Spare {
    pid: u32,
    pidfd: OwnedFd,
    status_r: OwnedFd,
    status_w: OwnedFd,
    mailbox: UnixStream,
}

impl Spare {
    /// Kills and reaps a spare that will not be used.
    fn discard(self) {
        let _ = sys::pidfd_send_signal(self.pidfd.as_fd(), libc::SIGKILL);
        let _ = sys::waitid_pidfd(self.pidfd.as_fd(), false);
    }
}

/// The server's main loop (entered from the constructor of a re-executed process that was
/// started as a forkserver). Never returns.
///
/// It keeps one spare child forked ahead of time. A request is relayed to the spare, which
/// becomes the new child at once, and the reply carries the spare's pid; the next spare is
/// forked after the reply, off the parent's critical path.
pub(crate) fn serve() -> ! {
    sys::ensure_stdio_open();
    sys::default_sigchld();
    child::install_panic_hook();
    // SAFETY: descriptor 3 was placed by the parent's posix_spawn for this process alone.
    let control = unsafe { UnixStream::from_raw_fd(child::CHILD_SOCK_FD) };
    let mut children: Vec<(OwnedFd, OwnedFd)> = Vec::new();
    let mut spare: Option<Spare> = None;
    let mut spare_failed = false;
    loop {
        // Fork the next spare while no request waits (one that came first is served first).
        if spare.is_none() && !spare_failed && !sys::readable_now(control.as_fd()) {
            match fork_spare() {
                Ok(s) => spare = Some(s),
                // Try again when a request comes (and report its error then).
                Err(_) => spare_failed = true,
            }
        }
        let mut fds: Vec<sys::PollFd> = Vec::with_capacity(children.len() + 2);
        fds.push(sys::poll_in(control.as_raw_fd()));
        fds.extend(children.iter().map(|(pidfd, _)| sys::poll_in(pidfd.as_raw_fd())));
        if let Some(s) = &spare {
            fds.push(sys::poll_in(s.pidfd.as_raw_fd()));
        }
        if sys::poll(&mut fds, None).is_err() {
            sys::exit_now(1);
        }
        // A spare that died (killed from outside) is replaced.
        if spare.is_some() && fds.last().is_some_and(sys::ready) {
            spare.take().expect("checked").discard();
        }
        // Reap first: the indices of `fds` match `children` only before it changes.
        let mut i = 0;
        let mut k = 1;
        while i < children.len() {
            if sys::ready(&fds[k]) {
                let reaped = sys::waitid_pidfd(children[i].0.as_fd(), true);
                if !matches!(reaped, Ok(None)) {
                    let (_, status) = children.remove(i);
                    if let Ok(Some(exit)) = reaped {
                        let (tag, value) = match exit {
                            RawExit::Code(c) => (1u8, c),
                            RawExit::Signal(s) => (2u8, s),
                        };
                        let mut msg = [0u8; 8];
                        msg[0] = tag;
                        msg[4..8].copy_from_slice(&value.to_le_bytes());
                        let _ = std::fs::File::from(status).write_all(&msg);
                    }
                    // (An error: the status pipe just closes, and the parent reads 255.)
                    k += 1;
                    continue;
                }
            }
            i += 1;
            k += 1;
        }
        if sys::ready(&fds[0]) {
            let Some((msg, fds)) = read_request(&control) else { sys::exit_now(0) };
            spare_failed = false;
            if let Some(c) = start_child(&control, spare.take(), &msg, &fds) {
                children.push(c);
            }
        }
    }
}

/// Reads one request whole: its bytes (header included, to relay as they are) and
/// descriptors. `None` when the parent is gone (or spoke nonsense, which only a parent that
/// is not this crate's could).
fn read_request(control: &UnixStream) -> Option<(Vec<u8>, Vec<OwnedFd>)> {
    let mut msg = vec![0u8; 8];
    let mut fds = Vec::new();
    recv_exact(control, &mut msg, &mut fds)?;
    let len = u32::from_le_bytes(msg[4..8].try_into().expect("4 bytes")) as usize;
    if msg[..4] != REQUEST || len > MAX_REQUEST {
        return None;
    }
    msg.resize(8 + len, 0);
    recv_exact(control, &mut msg[8..], &mut fds)?;
    (!fds.is_empty()).then_some((msg, fds))
}

/// Splits a request into the child's socket and its boot frame.
fn parse_request(msg: Vec<u8>, mut fds: Vec<OwnedFd>) -> Option<(OwnedFd, FrameReader)> {
    if fds.is_empty() || msg.len() < 8 {
        return None;
    }
    let sock = fds.remove(0);
    Some((sock, FrameReader::from_parts(msg[8..].to_vec(), fds, wire::BOOT_MAGIC)))
}

fn recv_exact(control: &UnixStream, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> Option<()> {
    let mut got = 0;
    while got < buf.len() {
        match transfer::recv_with_fds(control.as_fd(), &mut buf[got..], fds, false) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got += n,
        }
    }
    Some(())
}

fn reply(control: &UnixStream, pid: u32, errno: i32, fds: &[std::os::fd::BorrowedFd<'_>]) {
    let mut msg = [0u8; 12];
    msg[..4].copy_from_slice(&REPLY);
    msg[4..8].copy_from_slice(&pid.to_le_bytes());
    msg[8..12].copy_from_slice(&errno.to_le_bytes());
    if transfer::send_with_fds(control.as_fd(), &msg, fds).is_err() {
        sys::exit_now(0);
    }
}

/// Hands a request to a spare (forking one now if there is none, or if the one there died)
/// and replies to the parent; returns the new child's (pidfd, status write end) to watch.
fn start_child(
    control: &UnixStream,
    mut spare: Option<Spare>,
    msg: &[u8],
    fds: &[OwnedFd],
) -> Option<(OwnedFd, OwnedFd)> {
    let borrowed: Vec<std::os::fd::BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
    for _ in 0..2 {
        let s = match spare.take() {
            Some(s) => s,
            None => match fork_spare() {
                Ok(s) => s,
                Err(e) => {
                    reply(control, 0, e.raw_os_error().unwrap_or(libc::EIO), &[]);
                    return None;
                }
            },
        };
        if wire::send_all(s.mailbox.as_fd(), msg, &borrowed).is_err() {
            // The spare died before its request: use a fresh one.
            s.discard();
            continue;
        }
        reply(control, s.pid, 0, &[s.pidfd.as_fd(), s.status_r.as_fd()]);
        return Some((s.pidfd, s.status_w));
    }
    reply(control, 0, libc::ECHILD, &[]);
    None
}

/// Forks a spare: it puts its mailbox on descriptor 3 (replacing the control socket), keeps
/// the lifeline on 4, closes everything else the server had, warms up, and waits.
fn fork_spare() -> io::Result<Spare> {
    let (mailbox, theirs) = UnixStream::pair()?;
    let (status_r, status_w) = sys::pipe()?;
    // SAFETY: the server is single-threaded, so the child may do anything.
    match unsafe { sys::fork() }? {
        0 => {
            if sys::dup2_raw(theirs.as_raw_fd(), child::CHILD_SOCK_FD).is_err() {
                sys::exit_now(1);
            }
            sys::close_from(child::CHILD_LIFELINE_FD as u32 + 1);
            std::mem::forget((mailbox, theirs, status_r, status_w));
            spare_main()
        }
        pid => {
            drop(theirs);
            let pidfd = sys::pidfd_open(pid).inspect_err(|_| sys::kill_and_reap(pid))?;
            Ok(Spare { pid, pidfd, status_r, status_w, mailbox })
        }
    }
}

/// A spare's life: take the page faults a child would take on its critical path now, then
/// wait for a request and become the child it describes. Never returns.
fn spare_main() -> ! {
    child::warm_up();
    // SAFETY: descriptor 3 is this spare's mailbox (placed by `fork_spare`).
    let mailbox = unsafe { UnixStream::from_raw_fd(child::CHILD_SOCK_FD) };
    let Some((msg, fds)) = read_request(&mailbox) else { sys::exit_now(0) };
    let Some((sock, boot)) = parse_request(msg, fds) else { sys::exit_now(1) };
    // The child's socket replaces the mailbox on descriptor 3.
    if sys::dup2_raw(sock.as_raw_fd(), child::CHILD_SOCK_FD).is_err() {
        sys::exit_now(1);
    }
    drop(sock);
    std::mem::forget(mailbox);
    child::reexec_child_main(StartMethod::Forkserver, Some(boot))
}

/// The pid of this process's forkserver, if one is running (test support: PL17 kills it).
#[doc(hidden)]
pub fn forkserver_pid() -> Option<u32> {
    let st = state::state();
    let guard = st.forkserver.lock().unwrap_or_else(|p| p.into_inner());
    guard.as_ref().filter(|s| s.alive()).map(|s| s.pid)
}
