//! A ProcessPoolExecutor and a ThreadPoolExecutor running the same function, through the same
//! `Executor` trait.

use multiproc::{Executor, ProcessPoolExecutor, ThreadPoolExecutor};

fn collatz_steps(mut n: u64) -> u64 {
    let mut steps = 0;
    while n != 1 {
        n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
        steps += 1;
    }
    steps
}

fn longest<E: Executor>(executor: &E) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    let starts: Vec<u64> = (1..=8).map(|i| i * 100_000 + 27).collect();
    let futures =
        starts.iter().map(|&n| executor.submit(collatz_steps, n)).collect::<Result<Vec<_>, _>>()?;
    let mut best = (0, 0);
    for (n, f) in starts.iter().zip(futures) {
        let steps = f.result()?;
        if steps > best.1 {
            best = (*n, steps);
        }
    }
    Ok(best)
}

/// Runs the example.
pub(crate) fn run() -> Result<(), Box<dyn std::error::Error>> {
    let processes = ProcessPoolExecutor::new(2)?;
    let (n, steps) = longest(&processes)?;
    println!(
        "process pool: {n} takes {steps} Collatz steps (pids of workers differ from {})",
        std::process::id()
    );
    processes.shutdown(true, false);
    let threads = ThreadPoolExecutor::new(2)?;
    let (n2, steps2) = longest(&threads)?;
    println!("thread pool:  {n2} takes {steps2} Collatz steps");
    threads.shutdown(true, false);
    assert_eq!((n, steps), (n2, steps2));
    Ok(())
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    run()
}
