//! The shared secret that admits a client to a manager ([`AuthKey`]); it prints and parses,
//! so one program can tell another how to connect.
//!
//! Defined in `multiproc-ipc-pipe` (whose `Listener` / `Client` handshake it keys) and
//! re-exported here, so `multiproc_manager::AuthKey` and `multiproc_ipc_pipe::AuthKey` are
//! the same type.

pub use multiproc_ipc_pipe::AuthKey;
