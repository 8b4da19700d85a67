//! Every raw system call of this crate, each behind a safe wrapper.
//!
//! Nothing outside this module calls `libc` functions that touch memory or file descriptors;
//! `clippy.toml` enforces that for the listed calls and `cargo xtask tidy` for the rest.
#![allow(clippy::disallowed_methods)]

use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use crate::os::cvt;

/// Creates an anonymous memory file (`memfd_create`) with close-on-exec set.
pub(crate) fn memfd_create(name: &str) -> io::Result<OwnedFd> {
    let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY:
    // - `cname` is a valid NUL-terminated string that outlives the call.
    // - the flags are valid for memfd_create.
    let fd = cvt(unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reserves the pages of `[off, off + len)` of a memory file (`fallocate`, mode 0: the size
/// grows to cover the range if needed). Afterwards a write through a shared mapping of that
/// range cannot fail for lack of memory (no SIGBUS): the failure is this call's `ENOSPC` /
/// `ENOMEM`. Retries on `EINTR`.
pub(crate) fn fallocate(fd: BorrowedFd<'_>, off: u64, len: u64) -> io::Result<()> {
    fallocate_mode(fd, 0, off, len)
}

/// Gives back the pages of `[off, off + len)` of a memory file (`fallocate` with
/// `PUNCH_HOLE | KEEP_SIZE`: the range reads as zeros, the size stays). Retries on `EINTR`.
pub(crate) fn punch_hole(fd: BorrowedFd<'_>, off: u64, len: u64) -> io::Result<()> {
    fallocate_mode(fd, libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, off, len)
}

fn fallocate_mode(fd: BorrowedFd<'_>, mode: libc::c_int, off: u64, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let (Ok(off), Ok(len)) = (libc::off_t::try_from(off), libc::off_t::try_from(len)) else {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    };
    loop {
        // SAFETY: plain system call on a borrowed, open descriptor; no memory is passed.
        let r = unsafe { libc::fallocate(fd.as_raw_fd(), mode, off, len) };
        if r == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Fills `buf` with random bytes from the kernel (`getrandom`).
pub(crate) fn getrandom(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is a valid writable buffer of `rest.len()` bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        filled += n as usize;
    }
    Ok(())
}

/// The current CLOCK_MONOTONIC time (the clock `Instant` uses on Linux).
pub(crate) fn monotonic_now() -> libc::timespec {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts
}

fn instant_to_timespec(deadline: Instant) -> libc::timespec {
    let now_instant = Instant::now();
    let now = monotonic_now();
    let left = deadline.saturating_duration_since(now_instant);
    add_duration(now, left)
}

fn add_duration(ts: libc::timespec, d: Duration) -> libc::timespec {
    let mut sec = ts.tv_sec.saturating_add(d.as_secs().min(i64::MAX as u64 / 2) as libc::time_t);
    let mut nsec = ts.tv_nsec + d.subsec_nanos() as libc::c_long;
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec = sec.saturating_add(1);
    }
    libc::timespec { tv_sec: sec, tv_nsec: nsec }
}

/// `FUTEX_WAIT_BITSET` on a shared (not private) word with an absolute CLOCK_MONOTONIC
/// deadline. Returns `Ok(true)` when woken (or spuriously), `Ok(false)` on timeout; the
/// word differing from `expected` is `Ok(true)` too (EAGAIN).
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool {
    futex_wait_at(word.as_ptr().cast_const(), expected, deadline)
}

/// The address of the low 32 bits of a 64-bit word: the futex half of [`futex_wait_low`].
fn low_half(word: &AtomicU64) -> *const u32 {
    let p = word.as_ptr().cast_const().cast::<u32>();
    #[cfg(target_endian = "big")]
    // SAFETY: the second u32 of a u64 lies inside it.
    let p = unsafe { p.add(1) };
    p
}

/// [`futex_wait`] on the low 32 bits of a 64-bit word (the rest of the word may change
/// without waking anyone).
pub(crate) fn futex_wait_low(word: &AtomicU64, expected: u32, deadline: Option<Instant>) -> bool {
    futex_wait_at(low_half(word), expected, deadline)
}

/// [`futex_wake`] on the low 32 bits of a 64-bit word.
pub(crate) fn futex_wake_low(word: &AtomicU64, n: u32) -> usize {
    futex_wake_at(low_half(word), n)
}

fn futex_wait_at(addr: *const u32, expected: u32, deadline: Option<Instant>) -> bool {
    let ts = deadline.map(instant_to_timespec);
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // FUTEX_WAIT_BITSET with MATCH_ANY and no PRIVATE flag: shared mappings, absolute deadline.
    // SAFETY: `addr` is a valid, aligned u32 of a borrowed atomic (the callers); `ts_ptr` is
    // null or points at a timespec that outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr,
            libc::FUTEX_WAIT_BITSET,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            libc::FUTEX_BITSET_MATCH_ANY,
        )
    };
    if r < 0 {
        return io::Error::last_os_error().raw_os_error() != Some(libc::ETIMEDOUT);
    }
    true
}

/// `FUTEX_WAKE` on a shared word; returns how many waiters were woken.
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) -> usize {
    futex_wake_at(word.as_ptr().cast_const(), n)
}

fn futex_wake_at(addr: *const u32, n: u32) -> usize {
    let n = n.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: `addr` is a valid, aligned u32 of a borrowed atomic; FUTEX_WAKE only uses the
    // address.
    let r = unsafe { libc::syscall(libc::SYS_futex, addr, libc::FUTEX_WAKE, n) };
    r.max(0) as usize
}

/// This process's effective user id.
pub(crate) fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// This process's pid.
pub(crate) fn getpid() -> u32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() as u32 }
}

/// Sets or clears close-on-exec on `fd`.
pub(crate) fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD on a borrowed, open descriptor.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) })?;
    let new = if on { flags | libc::FD_CLOEXEC } else { flags & !libc::FD_CLOEXEC };
    if new != flags {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, new) })?;
    }
    Ok(())
}

/// Most descriptors one message may carry (the kernel's SCM_MAX_FD is 253).
pub(crate) const MAX_FDS_PER_MSG: usize = 250;

/// Control-buffer space for `MAX_FDS_PER_MSG` descriptors: CMSG_SPACE(250 * 4) = 1016 bytes
/// on 64-bit Linux, rounded up to whole `u64`s (for the header's alignment).
const CBUF_WORDS: usize = 128;

/// `send_with_fds` of one buffer, blocking.
pub(crate) fn send_with_fds(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    sendmsg(sock, &[data], fds, false)
}

/// `recvmsg` into one buffer (see [`recvmsg`]); returns the number of bytes.
pub(crate) fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    dontwait: bool,
) -> io::Result<usize> {
    // SAFETY: an initialised byte buffer is a valid buffer of possibly-uninitialised bytes;
    // recvmsg only writes bytes into it.
    let uninit = unsafe {
        std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<MaybeUninit<u8>>(), buf.len())
    };
    recvmsg(sock, uninit, &mut [], fds, dontwait).map(|(n, _)| n)
}

/// `sendmsg` of the concatenation of `bufs` with `fds` attached (SCM_RIGHTS), with
/// `MSG_NOSIGNAL` (a closed peer is `EPIPE`, never SIGPIPE) and optionally `MSG_DONTWAIT`.
/// Returns the number of bytes sent; retries on `EINTR` only before anything was sent.
pub(crate) fn sendmsg(
    sock: BorrowedFd<'_>,
    bufs: &[&[u8]],
    fds: &[BorrowedFd<'_>],
    dontwait: bool,
) -> io::Result<usize> {
    if fds.len() > MAX_FDS_PER_MSG {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many descriptors"));
    }
    const MAX_IOV: usize = 4;
    if bufs.len() > MAX_IOV {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many buffers"));
    }
    let mut iov = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; MAX_IOV];
    for (slot, b) in iov.iter_mut().zip(bufs) {
        *slot = libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() };
    }
    let mut cbuf = [MaybeUninit::<u64>::uninit(); CBUF_WORDS];
    // SAFETY: an all-zero msghdr is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = bufs.len() as _;
    if !fds.is_empty() {
        let payload = (fds.len() * std::mem::size_of::<RawFd>()) as u32;
        // SAFETY: CMSG_SPACE is a pure computation.
        let space = unsafe { libc::CMSG_SPACE(payload) } as usize;
        assert!(space <= std::mem::size_of_val(&cbuf), "control buffer too small");
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at `space` aligned bytes (one header plus `payload`
        // bytes), zeroed here, so CMSG_FIRSTHDR is non-null and CMSG_DATA fits every fd.
        unsafe {
            std::ptr::write_bytes(cbuf.as_mut_ptr().cast::<u8>(), 0, space);
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(payload) as _;
            let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    let flags = libc::MSG_NOSIGNAL | if dontwait { libc::MSG_DONTWAIT } else { 0 };
    loop {
        // SAFETY: `msg` and everything it points at (iov, the caller's buffers, cbuf) are
        // alive for the call; sendmsg only reads them.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, flags) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        return Ok(n as usize);
    }
}

/// `recvmsg` into `a` then `b`, appending received descriptors (close-on-exec) to `fds`.
/// Returns the number of bytes (0 is end of stream) and whether a record was truncated
/// (`MSG_TRUNC`: it did not fit). With `dontwait`, an empty socket is `WouldBlock`. Retries
/// on `EINTR`. Descriptors beyond the control buffer are closed by the kernel (MSG_CTRUNC),
/// never leaked.
pub(crate) fn recvmsg(
    sock: BorrowedFd<'_>,
    a: &mut [MaybeUninit<u8>],
    b: &mut [MaybeUninit<u8>],
    fds: &mut Vec<OwnedFd>,
    dontwait: bool,
) -> io::Result<(usize, bool)> {
    let mut cbuf = [MaybeUninit::<u64>::uninit(); CBUF_WORDS];
    let mut iov = [
        libc::iovec { iov_base: a.as_mut_ptr().cast(), iov_len: a.len() },
        libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() },
    ];
    // SAFETY: an all-zero msghdr is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = if b.is_empty() { 1 } else { 2 };
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    let flags = libc::MSG_CMSG_CLOEXEC | if dontwait { libc::MSG_DONTWAIT } else { 0 };
    let n = loop {
        // SAFETY: `msg` points at live, writable buffers of the declared sizes (they may be
        // uninitialised: the kernel only writes them).
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, flags) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        break n as usize;
    };
    if msg.msg_controllen > 0 {
        // SAFETY: the kernel filled msg_control with `msg_controllen` bytes of well-formed
        // headers that CMSG_FIRSTHDR/NXTHDR walk within; each SCM_RIGHTS payload holds
        // `(cmsg_len - CMSG_LEN(0)) / 4` fresh descriptors that we now own.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(cmsg);
                    let len = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                    let count = len / std::mem::size_of::<RawFd>();
                    for i in 0..count {
                        let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                        fds.push(OwnedFd::from_raw_fd(fd));
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
    }
    Ok((n, msg.msg_flags & libc::MSG_TRUNC != 0))
}

/// `fork()`. Returns 0 in the child, the child's pid in the parent.
///
/// # Safety
/// In a multi-threaded parent the child may only use async-signal-safe operations until it
/// execs or exits, unless the caller knows no other thread holds a lock the child needs.
pub(crate) unsafe fn fork() -> io::Result<u32> {
    // SAFETY: the caller upholds the post-fork restrictions.
    let pid = cvt(unsafe { libc::fork() })?;
    Ok(pid as u32)
}

/// `_exit(code)`: ends the process without running destructors or atexit handlers.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// `waitpid(pid, WNOHANG)`: `Some(raw status)` once the child has ended (and is reaped).
pub(crate) fn try_wait(pid: u32) -> io::Result<Option<i32>> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer; WNOHANG never blocks.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(if r == 0 { None } else { Some(status) });
    }
}

/// `kill(pid, sig)`.
pub(crate) fn kill(pid: u32, sig: i32) -> io::Result<()> {
    // SAFETY: kill has no memory preconditions.
    cvt(unsafe { libc::kill(pid as libc::pid_t, sig) }).map(|_| ())
}

/// A `waitpid` status as `Ok(exit code)` or `Err(signal)`.
pub(crate) fn decode_wait_status(status: i32) -> Result<i32, i32> {
    if libc::WIFSIGNALED(status) {
        Err(libc::WTERMSIG(status))
    } else {
        Ok(libc::WEXITSTATUS(status))
    }
}

/// Opens (creating if needed, mode 0444) the liveness registry file at `path`: read-only,
/// close-on-exec, never through a symbolic link. Returns the descriptor and the file's
/// `(st_dev, st_ino)`; a path that is not a regular file is `InvalidData`.
pub(crate) fn open_registry(path: &std::ffi::CStr) -> io::Result<(OwnedFd, u64, u64)> {
    let flags =
        libc::O_RDONLY | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NOCTTY;
    // SAFETY: `path` is NUL-terminated and outlives the call; the flags and mode are valid.
    let fd = cvt(unsafe { libc::open(path.as_ptr(), flags, 0o444 as libc::c_uint) })?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `fd` is open; `st` is a writable stat buffer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so it filled `st`.
    let st = unsafe { st.assume_init() };
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        // A bare kind: no allocation (this also runs in a forked child's fork handler).
        return Err(io::Error::from(io::ErrorKind::InvalidData));
    }
    Ok((fd, st.st_dev, st.st_ino))
}

/// `(st_dev, st_ino)` of an open descriptor.
pub(crate) fn dev_ino(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `fd` is open (borrowed); `st` is a writable stat buffer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so it filled `st`.
    let st = unsafe { st.assume_init() };
    Ok((st.st_dev, st.st_ino))
}

fn ofd_flock(kind: libc::c_int, offset: u64) -> libc::flock {
    // SAFETY: flock is plain old data; all-zero is a valid value (l_pid must be 0 for OFD
    // requests).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = offset as libc::off_t;
    fl.l_len = 1;
    fl
}

/// Takes (`read = true`: a shared read lock) or drops an open-file-description lock on the
/// byte at `offset` of `fd` (`F_OFD_SETLK`, non-blocking). The kernel drops it when the last
/// descriptor of this open file description closes — at the latest when the process dies.
pub(crate) fn ofd_set(fd: BorrowedFd<'_>, offset: u64, read: bool) -> io::Result<()> {
    let fl = ofd_flock(if read { libc::F_RDLCK } else { libc::F_UNLCK }, offset);
    // SAFETY: `fd` is open; `fl` is a valid flock that outlives the call.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &fl) }).map(|_| ())
}

/// Tries to take an exclusive open-file-description lock on the byte at `offset` of `fd`
/// (`F_OFD_SETLK`, `F_WRLCK`, non-blocking): `Ok(false)` if another description holds any
/// lock there. `fd` must be open for writing.
pub(crate) fn ofd_try_exclusive(fd: BorrowedFd<'_>, offset: u64) -> io::Result<bool> {
    let fl = ofd_flock(libc::F_WRLCK, offset);
    // SAFETY: `fd` is open; `fl` is a valid flock that outlives the call.
    match cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &fl) }) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether another open file description holds a lock on the byte at `offset` of `fd`
/// (`F_OFD_GETLK` for a write lock; locks of `fd`'s own description are not reported).
pub(crate) fn ofd_locked_by_other(fd: BorrowedFd<'_>, offset: u64) -> io::Result<bool> {
    let mut fl = ofd_flock(libc::F_WRLCK, offset);
    // SAFETY: `fd` is open; `fl` is a valid, writable flock that outlives the call.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) })?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Closes a raw descriptor this crate owns through an atomic (the fork handler's use: it may
/// not run destructors). Async-signal-safe.
pub(crate) fn close_raw(fd: RawFd) {
    // SAFETY: the caller owns `fd` (it is recorded nowhere else) and forgets it afterwards.
    #[allow(clippy::disallowed_methods)]
    unsafe {
        libc::close(fd)
    };
}

/// Registers the fork handlers (`pthread_atfork`): the arena's only registration.
pub(crate) fn at_fork(
    prepare: extern "C" fn(),
    parent: extern "C" fn(),
    child: extern "C" fn(),
) -> io::Result<()> {
    // SAFETY: registers three handlers; `child` must be async-signal-safe (the caller's
    // obligation, documented on the handler).
    let r = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

/// The system calls that build the hostile setups of [`crate::testing::Setup`] (test
/// support: namespaces, mounts, identities, limits). Each returns the OS error.
pub(crate) mod setup {
    use super::cvt;
    pub(crate) use super::{become_user, mount};
    use std::ffi::CStr;
    use std::io;

    /// `unshare(flags)`.
    pub(crate) fn unshare(flags: libc::c_int) -> io::Result<()> {
        // SAFETY: unshare has no memory preconditions.
        cvt(unsafe { libc::unshare(flags) }).map(|_| ())
    }

    /// `umount2(target, MNT_DETACH)`.
    pub(crate) fn umount_detach(target: &CStr) -> io::Result<()> {
        // SAFETY: `target` is NUL-terminated and outlives the call.
        cvt(unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) }).map(|_| ())
    }

    /// Sets the soft and hard `RLIMIT_NOFILE`.
    pub(crate) fn limit_descriptors(n: u64) -> io::Result<()> {
        let lim = libc::rlimit { rlim_cur: n, rlim_max: n };
        // SAFETY: `lim` is a valid rlimit that outlives the call.
        cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }).map(|_| ())
    }

    /// Asks for SIGKILL when the parent dies.
    pub(crate) fn die_with_parent() -> io::Result<()> {
        // SAFETY: PR_SET_PDEATHSIG takes a signal number; no memory is passed.
        cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) }).map(|_| ())
    }

    /// `waitpid(pid, 0)`: blocks until the child ends; its raw status.
    pub(crate) fn wait_blocking(pid: u32) -> io::Result<i32> {
        let mut status = 0;
        loop {
            // SAFETY: `status` is a valid out-pointer.
            let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
            if r >= 0 {
                return Ok(status);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// Test support: moves this process into a private mount namespace (`unshare(CLONE_NEWNS)`,
/// mounts made private) and mounts a fresh tmpfs of `bytes` over `/dev/shm` there. Needs
/// `CAP_SYS_ADMIN` (`EPERM` without). Only the calling process (and its children) see it.
pub(crate) fn private_small_dev_shm(bytes: u64) -> io::Result<()> {
    // SAFETY: unshare has no memory preconditions.
    cvt(unsafe { libc::unshare(libc::CLONE_NEWNS) })?;
    mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    let opts = CString::new(format!("size={bytes},mode=1777")).expect("no NUL");
    mount(Some(c"tmpfs"), c"/dev/shm", Some(c"tmpfs"), 0, Some(&opts))
}

/// Test support: resizes the tmpfs mounted by [`private_small_dev_shm`].
pub(crate) fn resize_dev_shm(bytes: u64) -> io::Result<()> {
    let opts = CString::new(format!("size={bytes},mode=1777")).expect("no NUL");
    mount(Some(c"tmpfs"), c"/dev/shm", Some(c"tmpfs"), libc::MS_REMOUNT, Some(&opts))
}

pub(crate) fn mount(
    src: Option<&std::ffi::CStr>,
    target: &std::ffi::CStr,
    fstype: Option<&std::ffi::CStr>,
    flags: libc::c_ulong,
    data: Option<&std::ffi::CStr>,
) -> io::Result<()> {
    let ptr = |c: Option<&std::ffi::CStr>| c.map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is null or a NUL-terminated string that outlives the call.
    cvt(unsafe { libc::mount(ptr(src), target.as_ptr(), ptr(fstype), flags, ptr(data).cast()) })
        .map(|_| ())
}

/// `setrlimit(resource, soft)`, keeping the hard limit (raised to `soft` if it is lower, which
/// needs privilege).
pub(crate) fn set_soft_limit(resource: libc::__rlimit_resource_t, soft: u64) -> io::Result<u64> {
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `old` is a valid out-pointer.
    cvt(unsafe { libc::getrlimit(resource, &mut old) })?;
    let new = libc::rlimit { rlim_cur: soft, rlim_max: old.rlim_max.max(soft) };
    // SAFETY: `new` is a valid rlimit.
    cvt(unsafe { libc::setrlimit(resource, &new) })?;
    Ok(old.rlim_cur)
}

/// `setresgid` then `setresuid` (all three ids), for a test that must not be root.
pub(crate) fn become_user(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: no memory preconditions; the group list is emptied first.
    cvt(unsafe { libc::setgroups(0, std::ptr::null()) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::setresgid(gid, gid, gid) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::setresuid(uid, uid, uid) })?;
    Ok(())
}

/// Real user id.
pub(crate) fn getuid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { libc::getuid() }
}

/// `umask(mask)`; returns the old mask. Process-wide.
pub(crate) fn umask(mask: u32) -> u32 {
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// Test support: a user's own `fork()` and `_exit` and `waitpid`, exactly as a program that
/// uses only libc would call them (the arena's fork handler runs, as for any fork).
pub(crate) mod user_fork {
    use std::io;

    /// `libc::fork()`: 0 in the child, the child's pid in the parent.
    ///
    /// # Safety
    /// As [`super::fork`]: in a multi-threaded parent the child may only use what no other
    /// thread could hold locked.
    pub(crate) unsafe fn fork() -> io::Result<u32> {
        // SAFETY: the caller upholds the post-fork restrictions.
        unsafe { super::fork() }
    }

    /// `waitpid(pid, WNOHANG)`: `None` while it runs, else whether it exited 0.
    pub(crate) fn exited_ok(pid: u32) -> Option<bool> {
        match super::try_wait(pid) {
            Ok(Some(st)) => Some(super::decode_wait_status(st) == Ok(0)),
            Ok(None) => None,
            Err(_) => Some(false),
        }
    }
}
