//! Runs every example of the tutorial in sequence, each under a one-line heading naming the
//! primitive it shows.

#[path = "hello_processes.rs"]
mod hello_processes;
#[path = "lock.rs"]
mod lock;
#[path = "manager_list.rs"]
mod manager_list;
#[path = "pipe.rs"]
mod pipe;
#[path = "pool_executor.rs"]
mod pool_executor;
#[path = "process_class.rs"]
mod process_class;
#[path = "queue_production_line.rs"]
mod queue_production_line;

type Step = fn() -> Result<(), Box<dyn std::error::Error>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps: [(&str, Step); 7] = [
        ("Process: three function processes in parallel", hello_processes::run),
        ("Process: the class style (an object with run)", process_class::run),
        ("Pipe: a child sends, the parent answers", pipe::run),
        ("Manager: a list written by two processes, read by a third", manager_list::run),
        ("Lock: ten processes print under one lock", lock::run),
        ("ProcessPoolExecutor and ThreadPoolExecutor: the same function", pool_executor::run),
        ("Queue: a production line of producers and workers", queue_production_line::run),
    ];
    let t0 = std::time::Instant::now();
    for (i, (title, step)) in steps.iter().enumerate() {
        println!("\n== {}. {title}", i + 1);
        step()?;
    }
    println!("\ntour finished in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}
