//! Every raw system call of this crate: `fallocate` (punching holes in the spill file). The
//! spill file itself (`memfd_create`) and its read-only maps come from the arena, which owns
//! memory system calls (`multiproc_arena::os`).
#![allow(clippy::disallowed_methods)]

/// A number that changes in a forked child (its "fork generation"), so per-process caches
/// (the queue's party index) can tell they were inherited without a `getpid` system call:
/// the arena's, counted by its one fork handler.
#[inline]
pub(crate) fn fork_epoch() -> u64 {
    multiproc_arena::fork::epoch()
}

/// Gives back the pages of `[off, off + len)` of a memory file (punches a hole; the size
/// stays). Best effort: an error leaves the pages in place.
pub(crate) fn punch_hole(fd: std::os::fd::BorrowedFd<'_>, off: u64, len: u64) {
    use std::os::fd::AsRawFd;
    if len == 0 {
        return;
    }
    let len = len.next_multiple_of(4096);
    // SAFETY: plain system call on a descriptor we borrow; no memory is passed.
    let _ = unsafe {
        libc::fallocate(
            fd.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off as libc::off_t,
            len as libc::off_t,
        )
    };
}
