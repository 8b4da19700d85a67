//! Raw calls the tests need (signals, poll), each behind a safe wrapper.
#![allow(clippy::disallowed_methods, dead_code, unreachable_pub)]

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};

/// Whether `fd` becomes readable within `ms` milliseconds.
pub(crate) fn poll_readable(fd: BorrowedFd<'_>, ms: i32) -> bool {
    let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid, writable pollfd.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    r > 0 && p.revents != 0
}

/// `kill(pid, sig)`.
pub(crate) fn kill(pid: u32, sig: i32) -> bool {
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(pid as libc::pid_t, sig) == 0 }
}

/// How many SIGUSR1 the handler of [`install_usr1_handler`] has seen.
pub(crate) static USR1_SEEN: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_usr1(_: libc::c_int) {
    USR1_SEEN.fetch_add(1, Ordering::SeqCst);
}

/// Installs a SIGUSR1 handler without SA_RESTART, so blocking calls see EINTR.
pub(crate) fn install_usr1_handler() {
    // SAFETY: a zeroed sigaction with a valid handler and an empty mask is valid input.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_usr1 as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = 0;
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
    }
}

/// The calling thread's pthread id.
pub(crate) fn this_thread() -> libc::pthread_t {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() }
}

/// Sends `sig` to thread `t` of this process.
pub(crate) fn signal_thread(t: libc::pthread_t, sig: i32) {
    // SAFETY: `t` is a live thread of this process (the caller keeps it alive).
    unsafe { libc::pthread_kill(t, sig) };
}

/// The raw value of `errno` after probing `fd` with `fcntl(F_GETFD)` (0 if open).
pub(crate) fn fd_errno(fd: i32) -> i32 {
    // SAFETY: F_GETFD only queries the descriptor table.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    }
}

/// An inheritable (no close-on-exec) duplicate of `fd` numbered at least `min`.
pub(crate) fn dup_inheritable_at_least(fd: BorrowedFd<'_>, min: i32) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: F_DUPFD on a borrowed open descriptor returns a fresh one we then own.
    unsafe {
        let n = libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD, min);
        assert!(n >= 0, "F_DUPFD failed");
        std::os::fd::OwnedFd::from_raw_fd(n)
    }
}

/// Closes a raw descriptor of this process (a test child closing its standard streams).
pub(crate) fn close_fd(fd: i32) {
    // SAFETY: the caller owns `fd` and nothing uses it afterwards.
    unsafe { libc::close(fd) };
}

/// Restricts the calling process to CPU 0.
pub(crate) fn pin_to_cpu0() -> bool {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes within it; the kernel reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Restores the default action of `SIGINT` in this process (and so in the forkserver it
/// starts next): a shell runs background jobs with `SIGINT` ignored, and an ignored signal
/// stays ignored across fork and exec.
pub(crate) fn default_sigint() {
    // SAFETY: setting a signal's disposition to the default action; no handler runs.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
}
