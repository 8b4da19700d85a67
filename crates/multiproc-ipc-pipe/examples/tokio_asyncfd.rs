//! Receiving from another process in async code: a [`Connection`] is a descriptor
//! (`AsRawFd`), so tokio's `AsyncFd` waits for it, and [`Connection::try_recv`] takes what
//! has arrived without ever blocking the executor (its "not now" is an `io::ErrorKind::WouldBlock`,
//! which `AsyncFd::try_io` needs to clear the readiness).
//!
//! A forked child sends messages of every size (small ones through the pipe's shared ring,
//! large ones over its socket) at an uneven pace; an async task receives them.
//!
//! `cargo run -p multiproc-ipc-pipe --example tokio_asyncfd`

use multiproc_ipc_pipe::{Connection, Pipe};
use serde::de::DeserializeOwned;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Receives one message without blocking the executor: waits for the descriptor, then takes
/// what has arrived; a would-block clears tokio's readiness and waits again. The pipe's own
/// errors (a disconnected peer, a decode failure) come back as they are.
async fn recv_async<T: DeserializeOwned>(
    conn: &AsyncFd<Connection>,
) -> io::Result<multiproc_ipc_pipe::Result<T>> {
    loop {
        let mut ready = conn.readable().await?;
        let got = ready.try_io(|c| match c.get_ref().try_recv::<T>() {
            Err(e) if e.is_would_block() => Err(io::ErrorKind::WouldBlock.into()),
            other => Ok(other),
        });
        match got {
            Ok(res) => return res,
            Err(_would_block) => continue,
        }
    }
}

const N: u32 = 1000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (parent, child_end) = Pipe::new()?;
    // Fork before the runtime starts any thread. (A real program starts its workers with
    // `multiproc`'s `Process`; this crate sits below it, so the example forks directly.)
    let child = multiproc_arena::testing::fork(move || {
        for i in 0..N {
            let payload = vec![i as u8; if i % 100 == 0 { 200_000 } else { i as usize % 64 }];
            child_end.send(&(i, payload)).unwrap();
            if i % 50 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        0
    });

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        // SAFETY: a `Connection` owns its descriptor for its whole life and `as_raw_fd` always
        // returns that one; the `AsyncFd` owns the connection. (Before tokio 1.54:
        // `AsyncFd::new(parent)`.)
        let conn = unsafe { AsyncFd::register_with_interest(parent, Interest::READABLE) }?;
        // Other tasks run while this one waits: a ticker counts.
        let ticks = Arc::new(AtomicU32::new(0));
        let ticker = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let mut bytes = 0usize;
        for i in 0..N {
            let (seq, payload): (u32, Vec<u8>) =
                tokio::time::timeout(Duration::from_secs(10), recv_async(&conn)).await???;
            assert_eq!(seq, i);
            bytes += payload.len();
        }
        // The child exits after its last message: end of stream.
        let end = recv_async::<(u32, Vec<u8>)>(&conn).await?.unwrap_err();
        assert!(end.is_disconnected());
        ticker.abort();
        let ticks = ticks.load(Ordering::Relaxed);
        println!("received {N} messages ({bytes} bytes) in an async task; then: {end}");
        println!("meanwhile another task ticked {ticks} times on the same thread");
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    child.expect_success(Duration::from_secs(10));
    Ok(())
}
