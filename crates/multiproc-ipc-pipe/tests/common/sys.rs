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
