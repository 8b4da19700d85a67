//! A Manager list written by two processes and read by a third: process A appends 100–104 (one
//! per second), process B appends 300–308 (one per 0.6 s), and the main process prints the
//! list every second for six seconds.

use multiproc::manager::ListProxy;
use multiproc::{Manager, Process};
use std::time::Duration;

fn append_slowly((list, values, pause_ms): (ListProxy<i32>, Vec<i32>, u64)) {
    for v in values {
        list.append(v).unwrap();
        std::thread::sleep(Duration::from_millis(pause_ms));
    }
}

/// Runs the example.
pub(crate) fn run() -> Result<(), Box<dyn std::error::Error>> {
    let manager = Manager::start()?;
    let list = manager.list::<i32>()?;
    let a = Process::builder()
        .name("A")
        .target(append_slowly, (list.clone(), (100..=104).collect(), 1000))
        .start()?;
    let b = Process::builder()
        .name("B")
        .target(append_slowly, (list.clone(), (300..=308).collect(), 600))
        .start()?;
    for second in 1..=6 {
        std::thread::sleep(Duration::from_secs(1));
        println!("t={second}s {:?}", list.to_vec()?);
    }
    a.join()?;
    b.join()?;
    let mut all = list.to_vec()?;
    all.sort();
    println!("final list holds {} values: {all:?}", all.len());
    Ok(())
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    run()
}
