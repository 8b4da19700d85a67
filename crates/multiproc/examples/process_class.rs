//! The "class" style: an object with a `run` method (Python's `Process` subclass), started
//! three times; the parent joins them and prints `end`.

use multiproc::{Process, Run};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Serialize, Deserialize)]
struct Greeter {
    name: String,
}

impl Run for Greeter {
    type Output = ();
    fn run(self) {
        std::thread::sleep(Duration::from_secs(1));
        let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let (s, ms) = (t.as_secs() % 86_400, t.subsec_millis());
        let now = format!("{:02}:{:02}:{:02}.{ms:03}", s / 3600, s / 60 % 60, s % 60);
        println!("hello {} {now} UTC (pid {})", self.name, std::process::id());
    }
}

/// Runs the example.
pub(crate) fn run() -> Result<(), Box<dyn std::error::Error>> {
    let children = (0..3)
        .map(|_| Process::builder().target_run(Greeter { name: "alvin".into() }).start())
        .collect::<Result<Vec<_>, _>>()?;
    children.into_iter().try_for_each(|c| c.join())?;
    println!("end");
    Ok(())
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    run()
}
