//! [`wait`]: block until any of several connections, listeners or descriptors is ready.

use crate::error::{Error, Result};
use crate::sys;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// Something [`wait`] can wait on: a readiness source with a descriptor that polls readable
/// when the object is ready — a [`Connection`](crate::Connection) with a message or end of
/// stream, a [`Listener`](crate::Listener) with a client waiting, a process sentinel (a
/// pidfd, readable once the process has ended), any socket or pipe.
///
/// Implement it (usually with the default method) for your own `AsFd` types; the process
/// crate implements it for its sentinels.
pub trait Waitable: AsFd {
    /// Whether the object is ready regardless of its descriptor (a connection that has
    /// already read part of a message). Default: `false`.
    fn ready_now(&self) -> bool {
        false
    }

    /// Called after the descriptor polled readable: whether the object really is ready (a
    /// [`Pipe`](crate::Pipe) connection drains stale wake-ups of its shared-memory ring and
    /// says no if that was all). Default: `true`.
    fn confirm_ready(&self) -> bool {
        true
    }
}

impl<T: Waitable + ?Sized> Waitable for &T {
    fn ready_now(&self) -> bool {
        (**self).ready_now()
    }
    fn confirm_ready(&self) -> bool {
        (**self).confirm_ready()
    }
}

impl<T: Waitable + ?Sized> Waitable for Box<T> {
    fn ready_now(&self) -> bool {
        (**self).ready_now()
    }
    fn confirm_ready(&self) -> bool {
        (**self).confirm_ready()
    }
}

impl<T: Waitable + ?Sized> Waitable for std::sync::Arc<T> {
    fn ready_now(&self) -> bool {
        (**self).ready_now()
    }
    fn confirm_ready(&self) -> bool {
        (**self).confirm_ready()
    }
}

macro_rules! plain_waitable {
    ($($t:ty),* $(,)?) => { $(impl Waitable for $t {})* };
}

plain_waitable!(
    OwnedFd,
    BorrowedFd<'_>,
    std::fs::File,
    std::net::TcpStream,
    std::net::TcpListener,
    std::net::UdpSocket,
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixListener,
    std::os::unix::net::UnixDatagram,
    std::process::ChildStdout,
    std::process::ChildStderr,
    std::io::Stdin,
);

/// Waits until at least one of `objects` is ready, or `timeout` passes (`None`: no limit);
/// returns the indices of the ready ones, in order (empty on timeout). Python's
/// `multiprocessing.connection.wait`, with indices instead of the objects.
///
/// ```
/// use multiproc_ipc_pipe::{wait, Pipe};
/// use std::time::Duration;
/// let (a, b) = Pipe::new().unwrap();
/// let (c, d) = Pipe::new().unwrap();
/// assert!(wait(&[&a, &c], Some(Duration::ZERO)).unwrap().is_empty());
/// d.send(&5u8).unwrap();
/// assert_eq!(wait(&[&a, &c], Some(Duration::from_secs(5))).unwrap(), vec![1]);
/// # drop(b);
/// ```
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Result<Vec<usize>> {
    let deadline = timeout.map(|t| Instant::now().checked_add(t));
    let now_ready: Vec<usize> =
        objects.iter().enumerate().filter(|(_, o)| o.ready_now()).map(|(i, _)| i).collect();
    let mut set: Vec<sys::PollFd> =
        objects.iter().map(|o| sys::PollFd::new(o.as_fd(), sys::POLL_IN)).collect();
    let mut first = true;
    loop {
        let left = if !now_ready.is_empty() {
            Some(Duration::ZERO)
        } else {
            match deadline {
                None | Some(None) => None,
                Some(Some(d)) => {
                    let now = Instant::now();
                    if now >= d && !first {
                        return Ok(Vec::new());
                    }
                    Some(d.saturating_duration_since(now))
                }
            }
        };
        first = false;
        match sys::poll(&mut set, left) {
            Ok(_) => {
                if let Some(bad) = set.iter().position(|p| p.invalid()) {
                    return Err(Error::new(
                        crate::ErrorKind::InvalidInput,
                        format!("object {bad} has a closed descriptor"),
                    ));
                }
                let ready: Vec<usize> = (0..objects.len())
                    .filter(|i| {
                        now_ready.contains(i) || (set[*i].ready() && objects[*i].confirm_ready())
                    })
                    .collect();
                if !ready.is_empty() || left == Some(Duration::ZERO) {
                    return Ok(ready);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(e, "poll")),
        }
    }
}
