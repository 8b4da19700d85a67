//! A dedicated manager server program: binds (TCP if an address is given, else a private Unix
//! socket), prints how to connect, and serves until a client calls `Manager::shutdown`.
//!
//! ```text
//! cargo run --release -p multiproc-manager --example serve -- 127.0.0.1:5000
//! ```
//!
//! A client in any other program:
//!
//! ```ignore
//! let m = Manager::connect(&"127.0.0.1:5000".parse()?, &"<authkey hex>".parse()?)?;
//! let l = m.list::<String>()?;
//! ```

use multiproc_manager::{Address, Manager};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut b = Manager::builder();
    if let Some(a) = std::env::args().nth(1) {
        b = b.address(a.parse::<Address>()?);
    }
    if let Ok(k) = std::env::var("MANAGER_AUTHKEY") {
        b = b.authkey(k.parse::<multiproc_manager::AuthKey>()?);
    }
    let server = b.bind()?;
    println!("address: {}", server.address());
    println!("authkey: {}", server.authkey());
    server.serve()?;
    println!("shut down");
    Ok(())
}
