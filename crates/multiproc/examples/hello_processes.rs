//! Three processes run a function that sleeps a second and greets; the parent joins them and
//! prints `end`. They run in parallel, so the whole thing takes about one second.

use multiproc::Process;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn hello(name: String) {
    std::thread::sleep(Duration::from_secs(1));
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let (s, ms) = (t.as_secs() % 86_400, t.subsec_millis());
    let now = format!("{:02}:{:02}:{:02}.{ms:03}", s / 3600, s / 60 % 60, s % 60);
    println!("hello {name} {now} UTC (pid {})", std::process::id());
}

/// Runs the example.
pub(crate) fn run() -> Result<(), Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let children = (0..3)
        .map(|_| Process::builder().target(hello, "alvin".to_string()).start())
        .collect::<Result<Vec<_>, _>>()?;
    for c in children {
        c.join()?;
    }
    println!("end ({:.2} s in all: the three ran in parallel)", t0.elapsed().as_secs_f64());
    Ok(())
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    run()
}
