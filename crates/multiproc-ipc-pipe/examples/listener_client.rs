//! This crate alone, across processes that share no parent: a `Listener` with an authkey on
//! a private Unix socket, and a copy of this program (started with plain
//! `std::process::Command`) that connects as a `Client`, sends a greeting and gets it back.
//!
//! `cargo run --release -p multiproc-ipc-pipe --example listener_client`

use multiproc_ipc_pipe::{Address, AuthKey, Client, Listener};

const KEY: &[u8] = b"example key";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(path) = std::env::args().nth(1) {
        let c = Client::connect(&Address::Unix(path.into()), Some(&AuthKey::from(KEY)))?;
        c.send(&"hello from another program".to_string())?;
        let back: String = c.recv()?;
        println!("client got back: {back}");
        return Ok(());
    }
    let listener = Listener::builder().authkey(KEY).bind_private()?;
    let Address::Unix(path) = listener.address().clone() else { unreachable!() };
    let mut client = std::process::Command::new(std::env::current_exe()?).arg(&path).spawn()?;
    let conn = listener.accept()?;
    let msg: String = conn.recv()?;
    println!("listener got: {msg}");
    conn.send(&msg.to_uppercase())?;
    assert!(client.wait()?.success());
    Ok(())
}
