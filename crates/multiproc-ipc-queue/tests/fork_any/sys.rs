//! The raw calls of this test: a user's own `fork`, `_exit` and `waitpid`.
#![allow(clippy::disallowed_methods)] // libc::fork and friends, on purpose: a user's own fork

/// `libc::fork()`: 0 in the child, the child's pid in the parent.
pub(crate) fn fork() -> libc::pid_t {
    // SAFETY: the test's children only use the queue (shared memory, futexes), drop their
    // handles and `_exit`: no lock another thread of the test binary could hold is needed.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    pid
}

/// `_exit(code)`: ends the child without running the parent's destructors.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and never returns.
    unsafe { libc::_exit(code) }
}

/// `waitpid(pid, WNOHANG)`: `None` while it runs, else whether it exited 0.
pub(crate) fn try_wait(pid: libc::pid_t) -> Option<bool> {
    let mut st = 0;
    // SAFETY: a valid out-pointer; WNOHANG never blocks.
    let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
    (r == pid).then(|| libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0)
}
