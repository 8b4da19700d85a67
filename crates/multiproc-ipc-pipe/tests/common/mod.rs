//! Test support: fork a child that keeps only the descriptors it is given.
#![allow(dead_code, unreachable_pub)]

pub(crate) mod sys;

use multiproc_arena::testing::{fork, Child};
use multiproc_ipc_pipe::{Connection, Pipe};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// Every wait in the tests is bounded by this.
pub(crate) const T: Duration = Duration::from_secs(10);

/// Forks a child that first closes every descriptor above 2 except `keep` (so it holds no
/// copy of the parent's other pipe ends, nor of concurrently running tests' descriptors),
/// then runs `f`.
pub(crate) fn fork_keep(keep: &[RawFd], f: impl FnOnce() -> i32) -> Child {
    let mut keep: Vec<RawFd> = keep.to_vec();
    keep.sort_unstable();
    fork(move || {
        sys::close_all_except(&keep);
        f()
    })
}

/// A [`Pipe`] whose second end lives in a forked child that runs `f` with it (see
/// [`fork_keep`]; the parent's copy is closed): the parent's end and the child.
pub(crate) fn pipe_to_child(f: impl FnOnce(&Connection) -> i32) -> (Connection, Child) {
    let (a, b) = Pipe::new().unwrap();
    let child = fork_keep(&fds(&[&b]), || f(&b));
    drop(b);
    (a, child)
}

/// A peer that holds its end of a [`Pipe`] and never sends or receives.
pub(crate) fn idle_peer() -> (Connection, Child) {
    pipe_to_child(|_| loop {
        std::thread::sleep(Duration::from_secs(1));
    })
}

/// The raw descriptor numbers of `objs`.
pub(crate) fn fds(objs: &[&dyn AsRawFd]) -> Vec<RawFd> {
    objs.iter().map(|o| o.as_raw_fd()).collect()
}

/// The number of open descriptors of this process.
pub(crate) fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}
