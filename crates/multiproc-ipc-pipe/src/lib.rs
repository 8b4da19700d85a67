//! Python's `multiprocessing.connection` for Rust on Linux: [`Pipe`]s and [`Connection`]s
//! between processes, [`wait`] over many of them, and a [`Listener`] / [`Client`] pair with
//! an authkey handshake for processes that share no parent.
//!
//! - [`Pipe::new`] / [`Pipe::simplex`]: a connected pair of [`Connection`]s (a Unix
//!   socketpair and a shared-memory ring per direction), duplex or one-way.
//! - [`Connection`]: [`send`](Connection::send)/[`recv`](Connection::recv) of any serde value
//!   (postcard), with arena handles, segments and other connections carried as SCM_RIGHTS;
//!   [`send_bytes`](Connection::send_bytes)/[`recv_bytes`](Connection::recv_bytes)/
//!   [`recv_bytes_into`](Connection::recv_bytes_into); [`poll`](Connection::poll); timeouts on
//!   every receive; [`try_recv`](Connection::try_recv) / [`try_send`](Connection::try_send)
//!   that never wait (for epoll and async runtimes, see [From async code](#from-async-code));
//!   a disconnected error (never a SIGPIPE) once the peer is gone.
//! - [`wait`] / [`Waitable`]: readiness of connections, listeners and any descriptor (process
//!   sentinels).
//! - [`Listener`] / [`Client`] on an [`Address`] (a Unix socket in a private directory, an
//!   abstract Unix name, or TCP; parsed from text), with a mutual HMAC-SHA256 challenge when
//!   an [`AuthKey`] is set;
//!   [`cleanup_orphan_listeners`] removes socket directories of killed processes.
//! - [`Fd`]: a bare descriptor in a message (Python's `send_handle`).
//! - [`frame`]: the wire format, and a decoder that runs without sockets.
//! - [`Error`] / [`ErrorKind`].
//!
//! # Data path
//!
//! A [`Pipe`] is a Unix `SOCK_SEQPACKET` socketpair and a shared-memory segment (a memfd)
//! with two single-producer, single-consumer byte rings per direction: a small one of 64 KiB
//! and a *bulk* one of 8 MiB. A message of up to 16 KiB that carries no handles is written
//! into the small ring as one record and published by storing the ring's tail last, so a
//! sender killed while writing publishes nothing and a torn message is never delivered. A
//! larger one of up to 2 MiB without handles is written the same way into the bulk ring,
//! followed by a *bulk* record in the small ring that says "the next message is in the bulk
//! ring" (a sender killed between the two has sent nothing more). A still larger message, or
//! one with handles, goes over the socket as a frame (below), and a *mark* record in the small
//! ring keeps it in order. A full ring makes the sender wait (sleeping on a futex in the
//! ring, woken by the receiver as it frees room; [`Connection::try_send`] reports
//! would-block instead). A receiver checks every record against the ring's bounds, so a
//! misbehaving peer is a protocol error, never a stray access.
//! [`Connection::recv_bytes_with`] hands a message to a closure where it lies, in the ring,
//! and frees its record afterwards: no copy on the receiving side.
//!
//! The segment costs about 132 KiB of memory: the bulk rings are address space only (fresh
//! pages of the memfd, never written at creation) until a large message first goes through
//! one, which then reserves its 8 MiB (`fallocate`; if that fails, large messages keep the
//! socket).
//!
//! The socket also carries wake-ups and end of stream. A receive spinning on the ring (see
//! [`Connection::set_spin`]) takes what arrives with no system call on either side. Any other
//! message gets a one-byte *doorbell* record on the socket, which wakes a receive blocked in
//! the kernel and makes the descriptor readable for [`Connection::poll`], [`wait`] and epoll
//! or tokio loops; doorbells are taken out only by a receive or poll that finds the ring empty,
//! so a message waiting in the ring always leaves the descriptor readable (and at most four
//! wait at once, so a slow receiver has little to drain). The hand-over is
//! Dekker-style (each side stores, issues a SeqCst fence, then loads the other's word; a loom
//! model checks it), so no wake-up is lost. End of stream, peer death included, is the
//! socket's: a receiver drains what the ring holds, then reports
//! [`ErrorKind::Disconnected`]. Pipe ends inherited by fork or passed in messages (the
//! segment travels with the socket) keep the ring. [`Listener`] / [`Client`] connections and
//! [`Connection::from_fd`] use the socket alone; set `MULTIPROC_PIPE_RING=0` in the
//! environment to make new pipes socket-only too.
//!
//! On the socket, a message is one frame (an 8-byte header with the length and descriptor
//! count, then the payload, see [`frame`]) sent as records: a first record with the header
//! and up to 64 KiB of payload, then records of up to 512 KiB straight into the destination
//! buffer, with a 1 MiB send buffer so several are in flight. A receiver never reads past the
//! message it takes, and the ring's positions live in the shared segment, so the kernel
//! socket and the segment are the only state between messages: a connection can be
//! inherited, passed, or shared by processes taking turns, as in Python. Unix listeners use
//! the same records; TCP uses a byte stream, where the header is read on its own first.
//!
//! Receives block in the kernel (an idle connection costs nothing); [`Connection::set_spin`]
//! makes each receive first spin on the ring for at most the given time — a bound per call,
//! after which it sleeps; past 5 µs it also yields the CPU now and then — for peers that
//! answer within microseconds.
//!
//! One end used by two processes *at the same time* (not in turns) is not supported, as in
//! Python: messages may be lost or mixed up and the connection may report a protocol error,
//! but nothing outside the ring is touched and nothing panics.
//!
//! ```
//! use multiproc_ipc_pipe::{Pipe, ErrorKind};
//! use std::time::Duration;
//!
//! let (parent, child) = Pipe::new()?;
//! // (fork or spawn a process here and give it `child`)
//! child.send(&vec![1, 2, 3])?;
//! assert_eq!(parent.recv::<Vec<i32>>()?, [1, 2, 3]);
//! assert!(!parent.poll(Duration::ZERO)?);
//! drop(child); // every handle of the other end closed:
//! assert_eq!(parent.recv::<i32>().unwrap_err().kind(), ErrorKind::Disconnected);
//! # Ok::<(), multiproc_ipc_pipe::Error>(())
//! ```
//!
//! # Blocking, `try_`, `_timeout`, and readiness
//!
//! The workspace's convention (the `multiproc` crate's API guide): [`recv`](Connection::recv)
//! blocks; [`try_recv`](Connection::try_recv) never waits and fails with
//! [`ErrorKind::WouldBlock`] (`is_would_block()`) when no whole message has arrived;
//! [`recv_timeout(d)`](Connection::recv_timeout) fails with [`ErrorKind::Timeout`]
//! (`is_timeout()`) when `d` passed. The same for `recv_bytes`, `send` and `send_bytes`. A
//! message partly received when a `try_` or `_timeout` call gives up is kept for the next
//! call, never lost.
//!
//! Readiness, without receiving, keeps Python's shapes: [`Connection::poll(timeout)`](Connection::poll)
//! answers `Ok(true)` / `Ok(false)` (Python's `conn.poll(timeout)`; `Duration::ZERO` just
//! looks), and [`wait(objects, timeout)`](wait) returns the ready indices, empty when the
//! `Option<Duration>` passed (`None`: no limit; Python's `connection.wait`). Neither is an
//! error on timeout: "nothing yet" is their answer, not a failure. To receive with a limit,
//! use `recv_timeout`; to receive only what is there, `try_recv`.
//!
//! # From async code
//!
//! A [`Connection`] is a descriptor ([`AsFd`](std::os::fd::AsFd) /
//! [`AsRawFd`](std::os::fd::AsRawFd)) that polls readable while a message (or end of
//! stream) waits — also one that sits in a pipe's shared ring, whose doorbell keeps the
//! socket readable — and [`try_recv`](Connection::try_recv) takes what has arrived without
//! blocking. Its would-block converts to [`std::io::ErrorKind::WouldBlock`], which is what
//! tokio's `AsyncFd::try_io` needs in order to clear readiness; before reporting it,
//! `try_recv` has drained stale doorbells and told the sender to ring, so a message sent
//! afterwards is a *new* readiness event (edge-triggered epoll, as tokio uses, sees it):
//!
//! ```ignore
//! use tokio::io::{unix::AsyncFd, Interest};
//!
//! // SAFETY: a Connection owns its descriptor for its whole life (tokio < 1.54: AsyncFd::new).
//! let conn = unsafe { AsyncFd::register_with_interest(conn, Interest::READABLE) }?;
//! let msg: Result<MyMsg, multiproc_ipc_pipe::Error> = loop {
//!     let mut ready = conn.readable().await?;
//!     match ready.try_io(|c| match c.get_ref().try_recv::<MyMsg>() {
//!         Err(e) if e.is_would_block() => Err(std::io::ErrorKind::WouldBlock.into()),
//!         other => Ok(other), // a message, or the pipe's own error (disconnected, codec)
//!     }) {
//!         Ok(res) => break res,
//!         Err(_would_block) => continue,
//!     }
//! };
//! ```
//!
//! (`examples/tokio_asyncfd.rs` runs this against a forked child; `tests/async_fd.rs` tests
//! it.) One task should own the receiving side: a `try_recv` while another thread is inside a
//! receive or `poll` of the same connection reports would-block.
//!
//! Sending from async code: [`send`](Connection::send) waits only while the peer is far
//! behind (a pipe's 64 KiB ring and the socket buffer are full), which is usually fine on an
//! executor thread; [`try_send`](Connection::try_send) never waits before a message starts,
//! but the descriptor's *writability* says nothing about room in a pipe's ring, so do not
//! wait for `AsyncFd::writable` after its would-block — retry after a short sleep, or send
//! from `tokio::task::spawn_blocking`.
//!
//! Queues (`multiproc-ipc-queue`) have no descriptor to register. In async code, receive
//! from one in `tokio::task::spawn_blocking`, with `get_timeout` so that the blocking thread
//! is not held forever (`spawn_blocking(move || q.get_timeout(Duration::from_secs(1)))` in a
//! loop that also notices shutdown), or try `try_get` between `tokio::time::sleep`s where
//! the sleep's latency is acceptable; never call a blocking `get` on an executor thread.
//! Process sentinels (pidfds) are descriptors and work with `AsyncFd` as connections do.

/// `AsFd` and `AsRawFd` of a type through its descriptor field `$field`.
macro_rules! impl_as_fd {
    ($ty:ty, $field:tt) => {
        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(&self.$field)
            }
        }

        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(&self.$field)
            }
        }
    };
}
pub(crate) use impl_as_fd;

mod authkey;
#[cfg(multiproc_loom)]
#[doc(hidden)]
pub mod bell;
#[cfg(not(multiproc_loom))]
mod bell;
mod connection;
mod error;
mod fd;
pub mod frame;
mod listener;
mod sys;
mod wait;

pub use crate::authkey::AuthKey;
pub use crate::connection::{Connection, Pipe};
pub use crate::error::{Error, ErrorKind, Result};
pub use crate::fd::Fd;
pub use crate::listener::{
    cleanup_orphan_listeners, Address, Client, Listener, ListenerBuilder,
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_LISTENER_HANDSHAKE_TIMEOUT,
};
pub use crate::wait::{wait, Waitable};

/// Locks `m`, taking the state over if a thread panicked while holding it.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Waitable for Connection {
    fn ready_now(&self) -> bool {
        self.pending()
    }

    fn confirm_ready(&self) -> bool {
        Connection::confirm_ready(self)
    }
}
