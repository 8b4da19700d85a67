//! The raw system calls this package needs (signals by pidfd, `SOCK_SEQPACKET` sockets for
//! hostile peers, dropping privileges), kept apart as the project's lint rules ask.
#![allow(clippy::disallowed_methods)]

use multiproc::arena::os::cvt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// Sends `sig` to `pid`; false if it failed (the process is gone).
pub fn kill(pid: u32, sig: i32) -> bool {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, sig) == 0 }
}

/// A pidfd for `pid` (immune to pid reuse from the moment it is open).
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes two integers and returns a new descriptor or -1.
    let r = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) })?;
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// Sends `sig` to the process a pidfd names.
pub fn pidfd_send_signal(fd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: pidfd_send_signal(2) with a null siginfo and no flags reads no memory of ours.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(drop)
}

fn sockaddr(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "socket path too long"));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

fn seqpacket_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; returns a new descriptor or -1.
    let fd =
        cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Connects a `SOCK_SEQPACKET` Unix socket to `path` (what a multiproc Unix listener speaks).
pub fn seqpacket_connect(path: &Path) -> io::Result<OwnedFd> {
    let fd = seqpacket_socket()?;
    let (addr, len) = sockaddr(path)?;
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes that outlives the call.
    cvt(unsafe { libc::connect(fd.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), len) })?;
    Ok(fd)
}

/// A listening `SOCK_SEQPACKET` Unix socket at `path` (a fake listener for hostile-server tests).
pub fn seqpacket_listen(path: &Path) -> io::Result<OwnedFd> {
    let fd = seqpacket_socket()?;
    let (addr, len) = sockaddr(path)?;
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes that outlives the call.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), len) })?;
    // SAFETY: listen(2) on a descriptor we own.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), 128) })?;
    Ok(fd)
}

/// Accepts one connection on a listening socket, waiting at most `timeout`.
pub fn accept_timeout(l: BorrowedFd<'_>, timeout: Duration) -> io::Result<OwnedFd> {
    if !poll_in(l, timeout)? {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "accept timed out"));
    }
    // SAFETY: accept4(2) with null address pointers writes no memory of ours.
    let fd = cvt(unsafe {
        libc::accept4(l.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC)
    })?;
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends one record (or bytes on a stream) without SIGPIPE.
pub fn send(fd: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `bytes`, which outlives the call.
    cvt(unsafe {
        libc::send(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL)
    })
    .map(|n| n as usize)
}

/// Whether `fd` becomes readable (or hung up) within `timeout`.
pub fn poll_in(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    loop {
        // SAFETY: one valid pollfd, count 1.
        match cvt(unsafe { libc::poll(&mut p, 1, ms) }) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r.map(|n| n > 0),
        }
    }
}

/// Receives one record (or some bytes of a stream), waiting at most `timeout`; `Ok(0)` is the
/// end of the stream.
pub fn recv_timeout(fd: BorrowedFd<'_>, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
    if !poll_in(fd, timeout)? {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "recv timed out"));
    }
    // SAFETY: the pointer and length describe `buf`, which outlives the call.
    cvt(unsafe {
        libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
    })
    .map(|n| n as usize)
}

/// Drops to `uid`/`gid` with no supplementary groups (a forked child playing another user).
pub fn become_user(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: setgroups(2) with an empty list reads no memory.
    cvt(unsafe { libc::setgroups(0, std::ptr::null()) })?;
    // SAFETY: setresgid/setresuid take integers only.
    cvt(unsafe { libc::setresgid(gid, gid, gid) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::setresuid(uid, uid, uid) })?;
    Ok(())
}

/// The effective user id.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}
