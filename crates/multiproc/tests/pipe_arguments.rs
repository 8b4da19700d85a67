//! A pipe end passed to a child as its argument works under every start method — fork
//! included, where the child inherits the parent's memory and must still take the end it
//! decodes (the parent's own copy of the arguments goes before the fork).

use multiproc::{Connection, Pipe, Process, StartMethod};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn echo_doubled(c: Connection) -> u32 {
    let x: u64 = c.recv_timeout(T).expect("the parent's number");
    c.send(&(x * 2)).expect("the answer");
    0
}

#[test]
fn a_pipe_end_as_argument_under_every_start_method() {
    for method in [StartMethod::Fork, StartMethod::Spawn, StartMethod::Forkserver] {
        let (mine, theirs) = Pipe::new().unwrap();
        let mut child = Process::builder()
            .start_method(method)
            .target(echo_doubled, theirs)
            .start()
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        mine.send(&21u64).unwrap();
        let got: u64 = mine.recv_timeout(T).unwrap_or_else(|e| panic!("{method}: {e}"));
        assert_eq!(got, 42, "{method}");
        let r = child.join_timeout(T).unwrap_or_else(|e| panic!("{method}: {e}"));
        assert_eq!(r, 0);
    }
}
