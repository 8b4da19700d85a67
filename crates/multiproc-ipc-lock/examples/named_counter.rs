//! This crate alone, across processes that share no parent: the program starts two copies
//! of itself (plain `std::process::Command`, nothing inherited), each opens the mutex by
//! name and adds 100,000 to it; the total is exact.
//!
//! `cargo run --release -p multiproc-ipc-lock --example named_counter`

use multiproc_ipc_lock::Mutex;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(name) = std::env::args().nth(1) {
        // A worker: open by name, add, leave.
        let counter = Mutex::<u64>::open(&name)?;
        for _ in 0..100_000 {
            *counter.lock().unwrap() += 1;
        }
        return Ok(());
    }
    let name = format!("named-counter-example-{}", std::process::id());
    let counter = Mutex::create_named(&name, 0u64)?;
    let me = std::env::current_exe()?;
    let workers: Vec<_> = (0..2)
        .map(|_| std::process::Command::new(&me).arg(&name).spawn())
        .collect::<Result<_, _>>()?;
    for mut w in workers {
        assert!(w.wait()?.success());
    }
    let total = *counter.lock().unwrap();
    println!("two unrelated processes counted {total} under the name {name:?}");
    assert_eq!(total, 200_000);
    Ok(())
}
