//! A Lock shared by ten processes, each printing `hello world i` while holding it.

use multiproc::{Lock, Process};
use std::io::Write;

fn greet((lock, i): (Lock, u32)) {
    let _held = lock.lock().unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "hello world {i}").unwrap();
    out.flush().unwrap();
}

/// Runs the example.
pub(crate) fn run() -> Result<(), Box<dyn std::error::Error>> {
    let lock = Lock::new()?;
    let children = (0..10)
        .map(|i| Process::builder().target(greet, (lock.clone(), i)).start())
        .collect::<Result<Vec<_>, _>>()?;
    for c in children {
        c.join()?;
    }
    Ok(())
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    run()
}
