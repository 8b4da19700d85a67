//! Every raw system call of this crate, each behind a safe wrapper.
//!
//! Nothing outside this module calls `libc` functions that touch memory or descriptors.
#![allow(clippy::disallowed_methods)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Most descriptors one frame may carry (the arena's transfer limit; the kernel's SCM_MAX_FD
/// is 253).
pub(crate) const MAX_FDS: usize = multiproc_arena::transfer::MAX_FDS;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A connected pair of Unix sockets of type `ty` (`SOCK_STREAM`, `SOCK_SEQPACKET`),
/// close-on-exec.
pub(crate) fn socketpair(ty: libc::c_int) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as RawFd; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    cvt(unsafe { libc::socketpair(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) })?;
    // SAFETY: both descriptors were just returned by the kernel and belong to nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `shutdown(fd, how)`; `how` is `libc::SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`.
pub(crate) fn shutdown(fd: BorrowedFd<'_>, how: libc::c_int) -> io::Result<()> {
    // SAFETY: shutdown on a borrowed, open descriptor has no memory preconditions.
    cvt(unsafe { libc::shutdown(fd.as_raw_fd(), how) }).map(|_| ())
}

/// The address family of a socket (`AF_UNIX`, `AF_INET`, ...), or an error if `fd` is not a
/// socket.
pub(crate) fn socket_domain(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    sockopt_int(fd, libc::SO_DOMAIN)
}

/// The socket type (`SOCK_STREAM`, ...).
pub(crate) fn socket_type(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    sockopt_int(fd, libc::SO_TYPE)
}

/// The send buffer size of a socket (as the kernel reports it: twice what was set).
pub(crate) fn sndbuf(fd: BorrowedFd<'_>) -> io::Result<usize> {
    sockopt_int(fd, libc::SO_SNDBUF).map(|v| v.max(0) as usize)
}

/// Asks for a send buffer of `bytes` (the kernel caps it at `net.core.wmem_max`).
pub(crate) fn set_sndbuf(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: `v` is a valid int option value of the size declared.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

fn sockopt_int(fd: BorrowedFd<'_>, opt: libc::c_int) -> io::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid out-pointers of the sizes declared.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(v)
}

pub(crate) use multiproc_arena::transfer::{
    recv_vectored_with_fds as recvmsg, send_vectored_with_fds as sendmsg,
};

/// Looks at the next record of a `SOCK_SEQPACKET` socket without taking it or anything
/// attached to it: `(bytes, longer)` where `bytes` is 0 (end of stream) or 1, and `longer`
/// says the record has more than one byte. Nothing waiting is `WouldBlock`.
pub(crate) fn peek_record(sock: BorrowedFd<'_>) -> io::Result<(usize, bool)> {
    let mut b = [0u8; 1];
    let mut iov = [libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: 1 }];
    // SAFETY: an all-zero msghdr is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = 1;
    loop {
        // SAFETY: `msg` points at a live one-byte buffer; no control buffer, so no
        // descriptor is installed (a peek leaves them queued).
        let n = unsafe {
            libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_PEEK | libc::MSG_DONTWAIT)
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        return Ok((n as usize, msg.msg_flags & libc::MSG_TRUNC != 0));
    }
}

/// Whether the peer of a connected socket is gone (`POLLHUP`: both directions shut down).
pub(crate) fn hung_up(sock: BorrowedFd<'_>) -> bool {
    let mut set = [PollFd::new(sock, 0)];
    poll(&mut set, Some(Duration::ZERO)).is_ok() && set[0].0.revents & libc::POLLHUP != 0
}

/// Readiness bits reported by [`poll`].
pub(crate) const POLL_IN: i16 = libc::POLLIN;
/// Writable.
pub(crate) const POLL_OUT: i16 = libc::POLLOUT;

/// One entry of a [`poll`] set.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct PollFd(libc::pollfd);

impl PollFd {
    /// Watches `fd` for `events`.
    pub(crate) fn new(fd: BorrowedFd<'_>, events: i16) -> PollFd {
        PollFd(libc::pollfd { fd: fd.as_raw_fd(), events, revents: 0 })
    }

    /// Whether the descriptor is ready (for the events asked, or hung up / in error /
    /// invalid, which callers treat as ready so the next call reports the condition).
    pub(crate) fn ready(&self) -> bool {
        self.0.revents != 0
    }

    /// Whether the descriptor number is not open (`POLLNVAL`).
    pub(crate) fn invalid(&self) -> bool {
        self.0.revents & libc::POLLNVAL != 0
    }
}

/// `ppoll` with a relative timeout (`None`: no limit). Returns the number of ready entries;
/// `EINTR` is returned as `Interrupted` so the caller can recompute its timeout.
pub(crate) fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<usize> {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `PollFd` is a transparent wrapper of `pollfd`, so `fds` is a valid array of
    // `fds.len()` pollfds; `ts_ptr` is null or points at a timespec alive for the call; a
    // null sigmask leaves the signal mask alone.
    let n = unsafe {
        libc::ppoll(fds.as_mut_ptr().cast(), fds.len() as libc::nfds_t, ts_ptr, std::ptr::null())
    };
    cvt(n).map(|n| n as usize)
}

/// A new epoll instance, close-on-exec.
pub(crate) fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: epoll_create1 has no memory preconditions.
    let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by the kernel and belongs to nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds `fd` to `ep` for readability (level-triggered), tagged with `token`.
pub(crate) fn epoll_add(ep: BorrowedFd<'_>, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: token };
    // SAFETY: `ev` is a valid event for the call; both descriptors are borrowed and open.
    cvt(unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev) })
        .map(|_| ())
}

/// Removes `fd` from `ep`.
pub(crate) fn epoll_del(ep: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut ev = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: as in `epoll_add` (the event is ignored for DEL but must be non-null on old
    // kernels).
    cvt(unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_DEL, fd.as_raw_fd(), &mut ev) })
        .map(|_| ())
}

/// Waits up to `timeout` (`None`: no limit, rounded up to whole milliseconds) for events on
/// `ep`; appends the tokens of ready descriptors to `out`. `EINTR` is `Interrupted`.
pub(crate) fn epoll_wait(
    ep: BorrowedFd<'_>,
    timeout: Option<Duration>,
    out: &mut Vec<u64>,
) -> io::Result<()> {
    const N: usize = 32;
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; N];
    let ms = match timeout {
        None => -1,
        Some(d) => d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int,
    };
    // SAFETY: `evs` is a writable array of N events.
    let n =
        cvt(unsafe { libc::epoll_wait(ep.as_raw_fd(), evs.as_mut_ptr(), N as libc::c_int, ms) })?;
    out.extend(evs[..n as usize].iter().map(|e| e.u64));
    Ok(())
}

/// A Unix socket address: a path, or a Linux abstract name.
#[derive(Clone, Copy)]
pub(crate) enum UnixAddr<'a> {
    Path(&'a std::path::Path),
    Abstract(&'a [u8]),
}

fn sockaddr_un(addr: UnixAddr<'_>) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: an all-zero sockaddr_un is a valid value.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let (bytes, skip) = match addr {
        UnixAddr::Path(p) => (p.as_os_str().as_bytes(), 0),
        UnixAddr::Abstract(n) => (n, 1),
    };
    // A path needs room for its NUL; an abstract name starts after a NUL byte.
    if bytes.len() + 1 > sa.sun_path.len() || (skip == 0 && bytes.contains(&0)) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "Unix socket address too long"));
    }
    for (d, s) in sa.sun_path[skip..].iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let base = std::mem::size_of::<libc::sa_family_t>();
    let len = base + skip + bytes.len() + (1 - skip);
    Ok((sa, len as libc::socklen_t))
}

/// A `SOCK_SEQPACKET` Unix socket, close-on-exec (and non-blocking if asked).
pub(crate) fn seqpacket_socket(nonblocking: bool) -> io::Result<OwnedFd> {
    let ty = libc::SOCK_SEQPACKET
        | libc::SOCK_CLOEXEC
        | if nonblocking { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: socket has no memory preconditions.
    let fd = cvt(unsafe { libc::socket(libc::AF_UNIX, ty, 0) })?;
    // SAFETY: `fd` was just returned by the kernel and belongs to nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `bind` then `listen`. A path socket is created with mode 0600 (less the umask) from the
/// start: the socket's own mode is set first (`fchmod` of the unbound socket), and Linux's
/// `bind` gives the new file that mode. So there is no instant in which another user could
/// connect (a `chmod` after `bind` leaves one), and no process-wide `umask` to change.
pub(crate) fn bind_listen(fd: BorrowedFd<'_>, addr: UnixAddr<'_>) -> io::Result<()> {
    let (sa, len) = sockaddr_un(addr)?;
    if matches!(addr, UnixAddr::Path(_)) {
        // SAFETY: fchmod has no memory preconditions; `fd` is borrowed and open.
        cvt(unsafe { libc::fchmod(fd.as_raw_fd(), 0o600) })?;
    }
    // SAFETY: `sa` is a valid sockaddr_un of `len` meaningful bytes, alive for the call.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), (&sa as *const libc::sockaddr_un).cast(), len) })?;
    // SAFETY: listen has no memory preconditions.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), libc::SOMAXCONN) }).map(|_| ())
}

/// `listen` again with the system's largest backlog (`SOMAXCONN`; Linux allows changing the
/// backlog of a listening socket).
pub(crate) fn listen(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: listen has no memory preconditions.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), libc::SOMAXCONN) }).map(|_| ())
}

/// `connect`, retried on `EINTR`.
pub(crate) fn connect(fd: BorrowedFd<'_>, addr: UnixAddr<'_>) -> io::Result<()> {
    let (sa, len) = sockaddr_un(addr)?;
    loop {
        // SAFETY: `sa` is a valid sockaddr_un of `len` meaningful bytes, alive for the call.
        let r =
            unsafe { libc::connect(fd.as_raw_fd(), (&sa as *const libc::sockaddr_un).cast(), len) };
        match cvt(r) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other.map(|_| ()),
        }
    }
}

/// `accept4` of a waiting connection, close-on-exec and blocking; `WouldBlock` when none
/// waits (the listening socket is non-blocking).
pub(crate) fn accept(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: null address pointers are allowed (the peer address is not wanted).
    let n = cvt(unsafe {
        libc::accept4(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    })?;
    // SAFETY: `n` was just returned by the kernel and belongs to nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}
