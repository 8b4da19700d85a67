//! Python's `multiprocessing.connection` for Rust on Linux: [`Pipe`]s and [`Connection`]s
//! between processes, [`wait`] over many of them, and a [`Listener`] / [`Client`] pair with
//! an authkey handshake for processes that share no parent.
//!
//! - [`Pipe::new`] / [`Pipe::simplex`]: a connected pair of [`Connection`]s (a Unix
//!   socketpair), duplex or one-way.
//! - [`Connection`]: [`send`](Connection::send)/[`recv`](Connection::recv) of any serde value
//!   (postcard), with arena handles, segments and other connections carried as SCM_RIGHTS;
//!   [`send_bytes`](Connection::send_bytes)/[`recv_bytes`](Connection::recv_bytes)/
//!   [`recv_bytes_into`](Connection::recv_bytes_into); [`poll`](Connection::poll); timeouts on
//!   every receive; a disconnected error (never a SIGPIPE) once the peer is gone.
//! - [`wait`] / [`Waitable`]: readiness of connections, listeners and any descriptor (process
//!   sentinels).
//! - [`Listener`] / [`Client`] on an [`Address`] (a Unix socket in a private directory, an
//!   abstract Unix name, or TCP), with a mutual HMAC-SHA256 challenge when an authkey is set;
//!   [`cleanup_orphan_listeners`] removes socket directories of killed processes.
//! - [`Fd`]: a bare descriptor in a message (Python's `send_handle`).
//! - [`frame`]: the wire format, and a decoder that runs without sockets.
//! - [`Error`] / [`ErrorKind`].
//!
//! # Data path
//!
//! A pipe is a Unix `SOCK_SEQPACKET` socketpair. A message is one frame (an 8-byte header
//! with the length and descriptor count, then the payload, see [`frame`]) sent as records:
//! a small message is one `sendmsg` and one `recvmsg`, header and payload together (a single
//! system call each way, as for raw bytes on a socketpair); a large one goes as a first
//! 64 KiB record and records of up to 512 KiB straight into the destination buffer, with a
//! 1 MiB send buffer so several are in flight. A receiver never reads past the message it
//! takes, so the kernel socket is the only state between messages: a connection can be
//! inherited, passed, or shared by processes taking turns, as in Python. Unix listeners use
//! the same records; TCP uses a byte stream, where the header is read on its own first.
//! Receives block in the kernel (an idle connection costs nothing);
//! [`Connection::set_spin`] adds a bounded busy retry for peers that answer within
//! microseconds.
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

mod connection;
mod error;
mod fd;
pub mod frame;
mod listener;
mod sys;
mod wait;

pub use crate::connection::{Connection, Pipe};
pub use crate::error::{Error, ErrorKind, Result};
pub use crate::fd::Fd;
pub use crate::listener::{
    cleanup_orphan_listeners, Address, Client, Listener, ListenerBuilder, DEFAULT_HANDSHAKE_TIMEOUT,
};
pub use crate::wait::{wait, Waitable};

impl Waitable for Connection {
    fn ready_now(&self) -> bool {
        self.pending()
    }
}
