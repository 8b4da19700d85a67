//! A Pipe: the child sends a message and closes its end; the parent receives it and answers.

use multiproc::{Connection, Pipe, Process};

fn child(conn: Connection) {
    conn.send(&"hello from the child".to_string()).unwrap();
    let answer: String = conn.recv().unwrap();
    println!("child got the answer: {answer:?}");
    conn.close();
}

/// Runs the example.
pub(crate) fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (parent_end, child_end) = Pipe::new()?;
    let p = Process::builder().target(child, child_end).start()?;
    let msg: String = parent_end.recv()?;
    println!("parent received: {msg:?}");
    parent_end.send(&format!("thanks, {} bytes received", msg.len()))?;
    p.join()?;
    // The child closed its end: the next receive reports the disconnection, it does not hang.
    let eof = parent_end.recv::<String>().unwrap_err();
    println!("after the child closed: {eof}");
    Ok(())
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    run()
}
