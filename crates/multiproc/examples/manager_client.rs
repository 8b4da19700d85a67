//! A client of the remote-manager example (see `manager_server`): it connects by address
//! and authkey — no common parent — and reaches the list named `"shared"`.
//!
//! - `manager_client ADDRESS KEY writer FROM TO` appends FROM..=TO, one every 10 ms;
//! - `manager_client ADDRESS KEY reader SECONDS` prints the list each second for SECONDS
//!   seconds (0: once);
//! - `manager_client ADDRESS KEY shutdown` stops the server.

use multiproc::manager::{AuthKey, Manager};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address, key, role, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: manager_client ADDRESS KEY (writer FROM TO | reader SECONDS | shutdown)".into(),
        );
    };
    let manager = Manager::connect(
        &address.parse::<multiproc::Address>()?,
        &AuthKey::from_bytes(key.clone().into_bytes()),
    )?;
    let list = manager.named_list::<i64>("shared")?;
    match (role.as_str(), rest) {
        ("writer", [from, to]) => {
            for i in from.parse::<i64>()?..=to.parse::<i64>()? {
                list.append(i)?;
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        ("reader", [secs]) => {
            let secs: u64 = secs.parse()?;
            for n in 0..=secs {
                println!("{:?}", list.to_vec()?);
                if n < secs {
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        ("shutdown", []) => manager.shutdown()?,
        _ => return Err(format!("unknown role {role:?}").into()),
    }
    Ok(())
}
