//! The transport: `multiproc-ipc-pipe`'s [`Listener`] / [`PipeClient`] (Unix socket or TCP,
//! mutual HMAC-SHA256 authkey handshake done concurrently inside `accept` with a deadline,
//! frames size-limited from their header) and its [`Connection`]s carrying one postcard
//! message per frame.

use crate::error::{Error, ErrorKind, Result};
pub(crate) use multiproc_ipc_pipe::{Client as PipeClient, Connection, Listener};
use serde::Serialize;

/// Converts an error of the pipe layer.
pub(crate) fn pipe_error(e: multiproc_ipc_pipe::Error, what: &str) -> Error {
    use multiproc_ipc_pipe::ErrorKind as P;
    let kind = match e.kind() {
        P::Disconnected | P::Closed => ErrorKind::Disconnected,
        P::Timeout => ErrorKind::Timeout,
        P::TooLarge => ErrorKind::TooLarge,
        P::Protocol => ErrorKind::Protocol,
        P::Codec => ErrorKind::Codec,
        P::Authentication => ErrorKind::Authentication,
        P::InvalidInput => ErrorKind::InvalidInput,
        _ => {
            // A socket that is not there or refuses: the server is gone.
            let src = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .map(|io| io.kind());
            match src {
                Some(std::io::ErrorKind::NotFound)
                | Some(std::io::ErrorKind::ConnectionRefused)
                | Some(std::io::ErrorKind::ConnectionReset)
                | Some(std::io::ErrorKind::BrokenPipe) => ErrorKind::Disconnected,
                _ => ErrorKind::Io,
            }
        }
    };
    Error::wrap(kind, what, e)
}

/// Serialises `msg` into `buf` (replacing its contents), refusing more than `max` bytes.
pub(crate) fn encode<T: Serialize + ?Sized>(msg: &T, buf: &mut Vec<u8>, max: usize) -> Result<()> {
    buf.clear();
    let v = postcard::to_extend(msg, std::mem::take(buf)).map_err(Error::codec)?;
    *buf = v;
    if buf.len() > max {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("message of {} bytes, limit {max} (ManagerBuilder::max_frame)", buf.len()),
        ));
    }
    Ok(())
}
