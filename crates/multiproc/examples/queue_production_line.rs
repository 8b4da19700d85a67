//! A Queue as a production line: two producers put products, three workers take them, finish
//! them and put the results on a second queue, which the main process collects.

use multiproc::{Process, Queue};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug)]
struct Product {
    maker: u32,
    serial: u32,
}

#[derive(Serialize, Deserialize, Debug)]
struct Finished {
    product: Product,
    worker: u32,
    checksum: u64,
}

fn producer((raw, maker): (Queue<Option<Product>>, u32)) {
    for serial in 0..10 {
        raw.put(Some(Product { maker, serial })).unwrap();
    }
}

fn worker((raw, done, id): (Queue<Option<Product>>, Queue<Finished>, u32)) {
    while let Some(product) = raw.get().unwrap() {
        let checksum = (product.maker as u64) << 32 | product.serial as u64;
        done.put(Finished { product, worker: id, checksum }).unwrap();
    }
}

/// Runs the example.
pub(crate) fn run() -> Result<(), Box<dyn std::error::Error>> {
    let raw: Queue<Option<Product>> = Queue::new()?;
    let done: Queue<Finished> = Queue::new()?;
    let producers = (0..2)
        .map(|m| Process::builder().target(producer, (raw.clone(), m)).start())
        .collect::<Result<Vec<_>, _>>()?;
    let workers = (0..3)
        .map(|w| Process::builder().target(worker, (raw.clone(), done.clone(), w)).start())
        .collect::<Result<Vec<_>, _>>()?;
    let mut per_worker = [0u32; 3];
    for _ in 0..20 {
        let f = done.get()?;
        assert_eq!(f.checksum, (f.product.maker as u64) << 32 | f.product.serial as u64);
        per_worker[f.worker as usize] += 1;
    }
    for p in producers {
        p.join()?;
    }
    for _ in 0..3 {
        raw.put(None)?; // one stop signal per worker
    }
    for w in workers {
        w.join()?;
    }
    println!("20 products made by 2 producers, finished by 3 workers: {per_worker:?} each");
    Ok(())
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    run()
}
