//! This crate alone, across processes that share no parent: the program starts a copy of
//! itself that opens the queue by name and puts 10,000 numbers; this one gets them all, in
//! order.
//!
//! `cargo run --release -p multiproc-ipc-queue --example named_queue`

use multiproc_ipc_queue::Queue;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(name) = std::env::args().nth(1) {
        let q = Queue::<u64>::open(&name)?;
        for i in 0..10_000 {
            q.put(i)?;
        }
        return Ok(());
    }
    let name = format!("named-queue-example-{}", std::process::id());
    let q = Queue::<u64>::builder().maxsize(1000).create_named(&name)?;
    let mut producer = std::process::Command::new(std::env::current_exe()?).arg(&name).spawn()?;
    for i in 0..10_000 {
        assert_eq!(q.get_timeout(Duration::from_secs(10))?, i);
    }
    assert!(producer.wait()?.success());
    println!("10000 messages from an unrelated process through the queue named {name:?}");
    Ok(())
}
