//! The server of the remote-manager example: processes that share no parent meet at a
//! manager listening on a socket, and reach one list by name.
//!
//! ```sh
//! cargo run --example manager_server -- 127.0.0.1:50000 secret &
//! cargo run --example manager_client -- 127.0.0.1:50000 secret writer 100 104 &
//! cargo run --example manager_client -- 127.0.0.1:50000 secret writer 300 308 &
//! cargo run --example manager_client -- 127.0.0.1:50000 secret reader 3
//! ```
//!
//! CPython's version registers a list with `BaseManager.register('get_list', callable=...)`;
//! here every client asks for the list named `"shared"` (`Manager::named_list`), which the
//! server makes on first use. Prints the address it listens on (port 0 picks a free one),
//! then serves until killed or asked to shut down.

use multiproc::manager::{AuthKey, Manager};
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:50000".into());
    let key = args.next().unwrap_or_else(|| "secret".into());
    let server = Manager::builder()
        .address(address.parse::<multiproc::Address>()?)
        .authkey(AuthKey::from_bytes(key.into_bytes()))
        .bind()?;
    println!("serving on {}", server.address());
    std::io::stdout().flush()?;
    server.serve()?;
    Ok(())
}
