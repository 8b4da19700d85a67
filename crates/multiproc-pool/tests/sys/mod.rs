//! Raw calls the tests need (signals), kept apart as the project's lint rules ask.
#![allow(clippy::disallowed_methods, unsafe_code, dead_code)]

/// Sends `sig` to `pid`; false if it failed (the process is gone).
pub(crate) fn kill(pid: u32, sig: i32) -> bool {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, sig) == 0 }
}

/// Raises `sig` in the calling process (a worker, in the tests).
pub(crate) fn raise(sig: i32) {
    // SAFETY: raise(3) has no memory-safety preconditions.
    unsafe {
        libc::raise(sig);
    }
}

/// Open file descriptors of this process.
pub(crate) fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// Faults on a null write: a real SIGSEGV (a raised one would be swallowed by std's handler).
pub(crate) fn segfault() {
    // SAFETY: deliberately invalid: the write faults and the process dies with SIGSEGV,
    // which is what the test wants from this worker.
    unsafe { std::ptr::null_mut::<u8>().write_volatile(1) }
}

/// `_exit(code)`: ends a forked worker without running exit handlers (which may wait on
/// locks that other threads of the parent held when it forked, such as stdout's).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) has no memory-safety preconditions and does not return.
    unsafe { libc::_exit(code) }
}
