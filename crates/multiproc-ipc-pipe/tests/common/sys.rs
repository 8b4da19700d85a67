//! Raw calls the tests need.
#![allow(clippy::disallowed_methods)]

use std::os::fd::RawFd;

/// Closes every descriptor above 2 except those in `keep` (sorted).
pub(crate) fn close_all_except(keep: &[RawFd]) {
    let mut from: u32 = 3;
    for &k in keep {
        let k = k as u32;
        if k >= from {
            if k > from {
                close_range(from, k - 1);
            }
            from = k + 1;
        }
    }
    close_range(from, u32::MAX);
}

fn close_range(first: u32, last: u32) {
    // SAFETY: close_range only closes descriptors; the caller (a freshly forked child) owns
    // no Rust object it will use that refers to the closed numbers.
    unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
}

/// `kill(pid, SIGKILL)`.
pub(crate) fn sigkill(pid: u32) {
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
}

/// `pidfd_open(pid)`: a descriptor that polls readable once the process has ended.
pub(crate) fn pidfd_open(pid: u32) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open has no memory preconditions.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0u32) };
    assert!(fd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    // SAFETY: the descriptor was just returned by the kernel and belongs to nobody else.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as RawFd) }
}

/// One `send` of `bytes` (a record on a seqpacket socket), never raising SIGPIPE.
pub(crate) fn send_raw(fd: std::os::fd::BorrowedFd<'_>, bytes: &[u8]) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: `bytes` is a valid buffer for the call.
    let n = unsafe {
        libc::send(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL)
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A duplicate of `fd` numbered at least `min`.
pub(crate) fn dup_above(fd: std::os::fd::BorrowedFd<'_>, min: RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: F_DUPFD_CLOEXEC on a borrowed open descriptor has no memory preconditions.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    assert!(n >= 0);
    // SAFETY: the descriptor was just returned by the kernel and belongs to nobody else.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(n) }
}

/// Installs `handler` for `sig` (with SA_RESTART off, so blocking calls see EINTR).
pub(crate) fn handle_signal(sig: libc::c_int, handler: extern "C" fn(libc::c_int)) {
    // SAFETY: an all-zero sigaction is valid; the handler is an async-signal-safe no-op.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as usize;
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
}

/// `kill(pid, sig)`.
pub(crate) fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// A raw `SOCK_SEQPACKET` connection to a Unix socket path (what a listener's clients use),
/// wrapped as a `UnixStream` for read/write (each write is one record).
pub(crate) fn seqpacket_connect(path: &std::path::Path) -> std::os::unix::net::UnixStream {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: socket has no memory preconditions.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: the descriptor was just returned by the kernel and belongs to nobody else.
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_un is valid.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in sa.sun_path.iter_mut().zip(path.as_os_str().as_bytes()) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: `sa` is a valid sockaddr_un for the call.
    let r = unsafe { libc::connect(fd, (&sa as *const libc::sockaddr_un).cast(), len) };
    assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
    std::os::unix::net::UnixStream::from(owned)
}

/// `poll(2)` of one descriptor for input: whether it is readable (or hung up) within
/// `timeout_ms`.
pub(crate) fn poll_in(fd: std::os::fd::BorrowedFd<'_>, timeout_ms: i32) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    loop {
        // SAFETY: `p` is one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if n >= 0 {
            return n > 0;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "poll: {e}");
    }
}

/// An edge-triggered epoll instance watching `fd` for input (what tokio registers).
pub(crate) fn epoll_edge(fd: std::os::fd::BorrowedFd<'_>) -> std::os::fd::OwnedFd {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: epoll_create1 has no memory preconditions.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0, "epoll_create1: {}", std::io::Error::last_os_error());
    // SAFETY: the descriptor was just returned by the kernel and belongs to nobody else.
    let ep = unsafe { std::os::fd::OwnedFd::from_raw_fd(ep) };
    let mut ev = libc::epoll_event { events: (libc::EPOLLIN | libc::EPOLLET) as u32, u64: 1 };
    // SAFETY: `ev` is a valid epoll_event for the call; both descriptors are open.
    let r =
        unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev) };
    assert_eq!(r, 0, "epoll_ctl: {}", std::io::Error::last_os_error());
    ep
}

/// Waits on an epoll instance: whether an event came within `timeout_ms`.
pub(crate) fn epoll_wait1(ep: std::os::fd::BorrowedFd<'_>, timeout_ms: i32) -> bool {
    use std::os::fd::AsRawFd;
    let mut ev = [libc::epoll_event { events: 0, u64: 0 }; 4];
    loop {
        // SAFETY: `ev` has room for the 4 events the call may write.
        let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), ev.as_mut_ptr(), 4, timeout_ms) };
        if n >= 0 {
            return n > 0;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "epoll_wait: {e}");
    }
}

/// A connected pair of `SOCK_SEQPACKET` Unix sockets (no shared ring).
pub(crate) fn seqpacket_pair() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors the call writes.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(r, 0, "socketpair: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just returned by the kernel and belong to nobody else.
    unsafe {
        (std::os::fd::OwnedFd::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1]))
    }
}
