//! This crate alone: a pool of worker processes maps a function, and a worker that crashes
//! fails only its own task.
//!
//! `cargo run --release -p multiproc-pool --example pool_alone`

use multiproc_pool::Pool;

fn square(x: u64) -> u64 {
    if x == 13 {
        std::process::abort(); // this worker dies; only task 13 fails
    }
    x * x
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Pool::builder().processes(2).build()?;
    let squares = pool.map(square, (0..10).collect::<Vec<u64>>())?;
    println!("squares from worker processes: {squares:?}");
    let unlucky = pool.apply(square, 13);
    println!("task 13: {unlucky:?} (its worker was replaced)");
    assert!(unlucky.is_err());
    assert_eq!(pool.apply(square, 12)?, 144);
    Ok(())
}
