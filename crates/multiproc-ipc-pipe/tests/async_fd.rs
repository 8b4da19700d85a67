//! A [`Connection`] in tokio: `AsyncFd::readable` + `try_io(|c| c.try_recv())` receives every
//! message a forked child sends (ring records and socket frames), two connections at once on
//! one thread, every wait bounded by a tokio timeout.

mod common;

use common::{fds, fork_keep, T};
use multiproc_ipc_pipe::{Connection, Pipe};
use serde::de::DeserializeOwned;
use std::io;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// One message, waiting in tokio (the pattern of the crate docs).
async fn recv_async<M: DeserializeOwned>(
    conn: &AsyncFd<Connection>,
) -> io::Result<multiproc_ipc_pipe::Result<M>> {
    loop {
        let mut ready = conn.readable().await?;
        match ready.try_io(|c| match c.get_ref().try_recv::<M>() {
            Err(e) if e.is_would_block() => Err(io::ErrorKind::WouldBlock.into()),
            other => Ok(other),
        }) {
            Ok(res) => return res,
            Err(_would_block) => continue,
        }
    }
}

fn len(seq: u32) -> usize {
    match seq {
        s if s % 250 == 0 => 300_000,
        s if s % 37 == 0 => 20_000,
        s => (s % 64) as usize,
    }
}

/// A child that sends `n` messages `(seq, bytes)` at an uneven pace, then stays until told
/// "done" (so its exit cannot stand in for a lost wake-up).
fn sender(n: u32) -> (Connection, multiproc_arena::testing::Child) {
    let (a, b) = Pipe::new().unwrap();
    let child = fork_keep(&fds(&[&b]), || {
        for seq in 0..n {
            b.send(&(seq, vec![seq as u8; len(seq)])).unwrap();
            if seq % 40 == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        assert_eq!(b.recv_timeout::<String>(T).unwrap(), "done");
        0
    });
    drop(b);
    (a, child)
}

/// Receives `n` messages in order from `conn`; tells the sender "done".
async fn receive_all(conn: AsyncFd<Connection>, n: u32) -> AsyncFd<Connection> {
    for seq in 0..n {
        let (s, v): (u32, Vec<u8>) = recv_async(&conn).await.unwrap().unwrap();
        assert_eq!(s, seq);
        assert!(v.len() == len(seq) && v.iter().all(|&b| b == seq as u8), "message {seq}");
    }
    conn.get_ref().send(&"done").unwrap();
    conn
}

/// Registers `conn` with the runtime's reactor for readability.
fn register(conn: Connection) -> AsyncFd<Connection> {
    // SAFETY: a `Connection` owns its descriptor (an `OwnedFd`) for its whole life and
    // `as_raw_fd` always returns that one; the `AsyncFd` owns the connection.
    unsafe { AsyncFd::register_with_interest(conn, Interest::READABLE) }.unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn asyncfd_receives_everything_from_a_forked_child() {
    const N: u32 = 3000;
    let (conn, child) = sender(N);
    runtime().block_on(async {
        let conn = register(conn);
        let conn = tokio::time::timeout(2 * T, receive_all(conn, N)).await.expect("timed out");
        // (Blocking here is fine: nothing else runs on this runtime.)
        child.expect_success(T);
        // The child is gone: end of stream, through the same path.
        let end = tokio::time::timeout(T, recv_async::<u32>(&conn)).await.expect("timed out");
        assert!(end.unwrap().unwrap_err().is_disconnected());
    });
}

#[test]
fn two_connections_in_one_thread() {
    const N: u32 = 1500;
    let (c1, child1) = sender(N);
    let (c2, child2) = sender(N);
    runtime().block_on(async {
        let t1 = tokio::spawn(receive_all(register(c1), N));
        let t2 = tokio::spawn(receive_all(register(c2), N));
        let both = async { (t1.await.unwrap(), t2.await.unwrap()) };
        tokio::time::timeout(2 * T, both).await.expect("timed out");
    });
    child1.expect_success(T);
    child2.expect_success(T);
}

/// Nothing sent: the task waits (and the runtime stays free) until the timeout.
#[test]
fn an_idle_connection_leaves_the_task_waiting() {
    let (a, b) = Pipe::new().unwrap();
    runtime().block_on(async {
        let conn = register(a);
        let r = tokio::time::timeout(Duration::from_millis(200), recv_async::<u32>(&conn)).await;
        assert!(r.is_err(), "a message from nowhere");
        b.send(&5u32).unwrap();
        let got = tokio::time::timeout(T, recv_async::<u32>(&conn)).await.expect("timed out");
        assert_eq!(got.unwrap().unwrap(), 5);
    });
}
