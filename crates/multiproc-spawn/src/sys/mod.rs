//! Every raw system call of this crate, each behind a safe wrapper (or an `unsafe fn` with its
//! contract written down).
#![allow(clippy::disallowed_methods)]

use std::ffi::{c_char, c_int, CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

fn cvt(ret: c_int) -> io::Result<c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// How a process ended, as `waitid` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawExit {
    /// `_exit(code)`.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

/// `fork()`. Returns 0 in the child, the child's pid in the parent.
///
/// # Safety
/// In a multi-threaded parent the child may only do what cannot deadlock on a lock another
/// thread held at the instant of the fork, until it execs or exits.
pub(crate) unsafe fn fork() -> io::Result<u32> {
    // SAFETY: the caller upholds the post-fork restrictions.
    let pid = cvt(unsafe { libc::fork() })?;
    Ok(pid as u32)
}

/// `_exit(code)`: ends the process without running destructors or `atexit` handlers.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// This process's pid.
pub(crate) fn getpid() -> u32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() as u32 }
}

/// The calling thread's kernel id.
pub(crate) fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// `pidfd_open(pid, 0)`: a descriptor (close-on-exec) that names this very process and
/// becomes readable when it exits.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new descriptor or -1.
    let fd = cvt_long(unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) })?;
    // SAFETY: the kernel just returned this descriptor; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(pidfd, sig)`: immune to pid reuse. A process that has ended (even if
/// already reaped) is `ESRCH`.
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: a null siginfo is allowed (the kernel fills in SI_USER); flags must be 0.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(|_| ())
}

/// `waitid(P_PIDFD, pidfd, WEXITED [| WNOHANG])`: reaps the child named by `pidfd`.
/// `Ok(None)` with `nohang` while it is still running.
pub(crate) fn waitid_pidfd(pidfd: BorrowedFd<'_>, nohang: bool) -> io::Result<Option<RawExit>> {
    let flags = libc::WEXITED | if nohang { libc::WNOHANG } else { 0 };
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value (and required for WNOHANG: si_pid
        // stays 0 when nothing changed).
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid out-pointer; P_PIDFD takes the descriptor as the id.
        let r = unsafe {
            libc::waitid(libc::P_PIDFD, pidfd.as_raw_fd() as libc::id_t, &mut info, flags)
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: waitid filled the SIGCHLD fields of the union (or left them zero).
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        return Ok(Some(match info.si_code {
            libc::CLD_EXITED => RawExit::Code(status),
            _ => RawExit::Signal(status),
        }));
    }
}

/// SIGKILLs a child of this process and reaps it (the error path of a start that created a
/// child but could not finish setting it up).
pub(crate) fn kill_and_reap(pid: u32) {
    let _ = kill(pid, libc::SIGKILL);
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer; `pid` is this process's unreaped child.
    while unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) } < 0
        && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
    {}
}

/// `kill(pid, sig)`.
pub(crate) fn kill(pid: u32, sig: i32) -> io::Result<()> {
    // SAFETY: kill has no memory preconditions.
    cvt(unsafe { libc::kill(pid as libc::pid_t, sig) }).map(|_| ())
}

/// One entry of [`poll`].
pub(crate) type PollFd = libc::pollfd;

/// A [`PollFd`] asking for readability of `fd`.
pub(crate) fn poll_in(fd: RawFd) -> PollFd {
    libc::pollfd { fd, events: libc::POLLIN, revents: 0 }
}

/// Whether a polled entry is readable or hung up (or in error).
pub(crate) fn ready(p: &PollFd) -> bool {
    p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}

/// `poll(fds, deadline)`: `Ok(n)` ready entries, 0 when the deadline passed. A signal
/// handled meanwhile (EINTR) is retried with the time left, so a join survives signals.
pub(crate) fn poll(fds: &mut [PollFd], deadline: Option<Instant>) -> io::Result<usize> {
    loop {
        let timeout = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up so that we never wake just before the deadline and spin.
                left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as c_int
            }
        };
        // SAFETY: `fds` is a valid, writable array of `fds.len()` pollfd entries.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(r as usize);
    }
}

/// Whether `fd` is readable (or hung up) right now.
pub(crate) fn readable_now(fd: BorrowedFd<'_>) -> bool {
    let mut p = [poll_in(fd.as_raw_fd())];
    matches!(poll(&mut p, Some(Instant::now())), Ok(n) if n > 0 && ready(&p[0]))
}

/// `pipe2(O_CLOEXEC)`: (read end, write end).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: the kernel just returned both descriptors; we own them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A close-on-exec duplicate of `fd` numbered at least `min`.
pub(crate) fn dup_at_least(fd: BorrowedFd<'_>, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a borrowed, open descriptor returns a new one.
    let n = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) })?;
    // SAFETY: fresh descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// `dup2(src, dst)` without close-on-exec on `dst`. Only for a child arranging its
/// descriptor table (it clobbers whatever `dst` was).
pub(crate) fn dup2_raw(src: RawFd, dst: RawFd) -> io::Result<()> {
    // SAFETY: dup2 only manipulates the descriptor table; the caller owns slot `dst`.
    cvt(unsafe { libc::dup2(src, dst) }).map(|_| ())
}

/// Closes every descriptor numbered `first` or above (a child dropping what it inherited).
pub(crate) fn close_from(first: u32) {
    // SAFETY: close_range only manipulates the descriptor table; the caller (a freshly forked
    // child) owns every descriptor in the range and holds no OwnedFd for them it will use.
    unsafe { libc::close_range(first, u32::MAX, 0) };
}

/// Closes a raw descriptor inherited over fork that this process must not keep (a copy of
/// one of the parent's private descriptors).
///
/// # Safety
/// No live `OwnedFd`/`File` in this process may be used to access `fd` afterwards.
pub(crate) unsafe fn close_raw(fd: RawFd) {
    if fd >= 0 {
        // SAFETY: the caller guarantees nobody uses `fd` afterwards.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}

/// Sets or clears `O_NONBLOCK`.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a borrowed, open descriptor.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    let new = if on { flags | libc::O_NONBLOCK } else { flags & !libc::O_NONBLOCK };
    if new != flags {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, new) })?;
    }
    Ok(())
}

/// `fcntl` command that picks the signal `O_ASYNC` sends (Linux, every architecture).
const F_SETSIG: c_int = 10;

/// Arranges for the kernel to SIGKILL this process when `fd` — this process's own open
/// file description of a pipe's read end — signals I/O, i.e. when the pipe's last writer
/// closes (`O_ASYNC` + `F_SETOWN` + `F_SETSIG`).
pub(crate) fn kill_me_on_hangup(fd: BorrowedFd<'_>) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl with integer arguments on a borrowed, open descriptor.
    unsafe {
        cvt(libc::fcntl(raw, libc::F_SETOWN, libc::getpid()))?;
        cvt(libc::fcntl(raw, F_SETSIG, libc::SIGKILL))?;
        let fl = cvt(libc::fcntl(raw, libc::F_GETFL))?;
        cvt(libc::fcntl(raw, libc::F_SETFL, fl | libc::O_ASYNC))?;
    }
    Ok(())
}

/// Unblocks every signal on the calling thread (a child must be terminable).
pub(crate) fn unblock_all_signals() {
    // SAFETY: `set` is initialised by sigemptyset before use; pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// `posix_spawn` of `/proc/self/exe` (the very binary running, even if its file was replaced)
/// with `argv` and `envp`, the descriptor moves `dups` (source, target) applied in order,
/// every descriptor from `close_from` up closed, and an empty signal mask. Uses vfork
/// semantics, so it costs the same however large the parent is and is safe from a threaded
/// parent.
pub(crate) fn spawn_self(
    argv: &[CString],
    envp: &[CString],
    dups: &[(RawFd, RawFd)],
    close_from: RawFd,
) -> io::Result<u32> {
    let mut argv_p: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    let check = |r: c_int| if r == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(r)) };
    // The file-actions and attribute objects are initialised before use and destroyed after,
    // on every path; argv/envp are NULL-terminated arrays of pointers into CStrings alive
    // for the call; the path is a NUL-terminated literal.
    // SAFETY: see above.
    unsafe {
        let mut fa: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        check(libc::posix_spawn_file_actions_init(&mut fa))?;
        if let Err(e) = check(libc::posix_spawnattr_init(&mut attr)) {
            libc::posix_spawn_file_actions_destroy(&mut fa);
            return Err(e);
        }
        let res = (|| {
            for &(src, dst) in dups {
                check(libc::posix_spawn_file_actions_adddup2(&mut fa, src, dst))?;
            }
            check(libc::posix_spawn_file_actions_addclosefrom_np(&mut fa, close_from))?;
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            check(libc::posix_spawnattr_setsigmask(&mut attr, &set))?;
            check(libc::posix_spawnattr_setflags(&mut attr, libc::POSIX_SPAWN_SETSIGMASK as _))?;
            let mut pid: libc::pid_t = 0;
            check(libc::posix_spawn(
                &mut pid,
                c"/proc/self/exe".as_ptr(),
                &fa,
                &attr,
                argv_p.as_ptr() as *const *mut c_char,
                envp_p.as_ptr() as *const *mut c_char,
            ))?;
            Ok(pid as u32)
        })();
        libc::posix_spawn_file_actions_destroy(&mut fa);
        libc::posix_spawnattr_destroy(&mut attr);
        res
    }
}

/// The load address of the object (executable or shared library) holding `addr`.
pub(crate) fn object_base(addr: usize) -> Option<usize> {
    // SAFETY: an all-zero Dl_info is a valid out-value; dladdr only inspects the address.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(addr as *const libc::c_void, &mut info) == 0 {
            return None;
        }
        Some(info.dli_fbase as usize)
    }
}

/// The number of CPUs this process may run on (`sched_getaffinity`).
pub(crate) fn affinity_cpu_count() -> Option<usize> {
    // SAFETY: an all-zero cpu_set_t is valid; the kernel writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        Some(libc::CPU_COUNT(&set) as usize)
    }
}

/// Registers `f` to run at normal process exit (`exit` or a return from `main`).
pub(crate) fn at_exit(f: extern "C" fn()) {
    // SAFETY: `f` is a plain function with the C ABI that lives for the whole program.
    unsafe { libc::atexit(f) };
}

/// Looks `name` up in a C environment block, returning the bytes after `name=`.
///
/// # Safety
/// `envp` is null or a NULL-terminated array of pointers to NUL-terminated strings that stay
/// valid and unmodified for `'a`.
pub(crate) unsafe fn env_lookup<'a>(envp: *const *const c_char, name: &[u8]) -> Option<&'a [u8]> {
    if envp.is_null() {
        return None;
    }
    let mut p = envp;
    // SAFETY: the caller guarantees the array and strings are valid and NULL-terminated.
    unsafe {
        while !(*p).is_null() {
            let entry = CStr::from_ptr(*p).to_bytes();
            if entry.len() > name.len() && entry.starts_with(name) && entry[name.len()] == b'=' {
                return Some(&entry[name.len() + 1..]);
            }
            p = p.add(1);
        }
    }
    None
}

/// `unsetenv(name)`.
///
/// # Safety
/// No other thread may read or write the environment during the call (the life-before-main
/// constructor, which runs alone, is the one caller).
pub(crate) unsafe fn unsetenv(name: &CStr) {
    // SAFETY: `name` is NUL-terminated; the caller guarantees exclusive access to environ.
    unsafe { libc::unsetenv(name.as_ptr()) };
}

/// Ensures descriptors 0, 1 and 2 are open (on `/dev/null` where they were closed), so that
/// descriptors a process creates later never land on a standard stream's number.
pub(crate) fn ensure_stdio_open() {
    for fd in 0..3 {
        // SAFETY: F_GETFD only queries the descriptor.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
            continue;
        }
        // SAFETY: opening /dev/null; the lowest free number is `fd` (all below are open).
        let n = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if n >= 0 && n != fd {
            let _ = dup2_raw(n, fd);
            // SAFETY: `n` is the descriptor we just opened and nobody else knows.
            unsafe { close_raw(n) };
        }
    }
}

/// The identity (`st_dev`, `st_ino`) of the file open on descriptor number `fd`, or `None`
/// when the number is not open.
pub(crate) fn file_id(fd: RawFd) -> Option<(u64, u64)> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: fstat only writes the stat buffer, which is valid for writes.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } < 0 {
        return None;
    }
    // SAFETY: fstat succeeded, so it filled the buffer (which was zeroed anyway).
    let st = unsafe { st.assume_init() };
    Some((st.st_dev, st.st_ino))
}

/// Whether `fd` is an open descriptor.
pub(crate) fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only queries the descriptor table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Restores the default disposition of SIGCHLD (an ignored SIGCHLD inherited over exec
/// would make the kernel reap children before their status could be read).
pub(crate) fn default_sigchld() {
    // SAFETY: installing SIG_DFL has no memory preconditions.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
}

/// Ignores SIGINT in this process (see [`crate::ignore_interrupts`]).
pub fn ignore_interrupts() {
    // SAFETY: installing SIG_IGN has no memory preconditions.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
}

/// The socket's send buffer size (`SO_SNDBUF`).
pub(crate) fn send_buffer(sock: BorrowedFd<'_>) -> io::Result<usize> {
    let mut v: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid out-pointers of the sizes declared.
    cvt(unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&mut v as *mut c_int).cast(),
            &mut len,
        )
    })?;
    Ok(v.max(0) as usize)
}
