//! A child's last message before it exits is delivered, and children forked while other
//! threads of the parent pass handles start cleanly.
//!
//! Two tests run side by side (two threads of this process), each forking children in a
//! loop:
//! - the child answers, then exits at once. It took the parent's last message from the
//!   pipe's ring and left that message's doorbell unread in its socket, so its exit resets
//!   the connection (ECONNRESET) while its answer waits in the ring: the parent must read the
//!   ring before it reports the end (it used to lose 1–2 answers in 1,000 under load);
//! - while one thread forks, the other decodes handles (a `Queue` received from the parent
//!   opens its arena by identity): a lock of the process-local registries held across the
//!   fork used to deadlock the child for good.

use multiproc::{Connection, Pipe, Process, Queue, StartMethod};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);
const ROUNDS: usize = 300;

fn child_with_queue(c: Connection) -> u32 {
    let Ok(q) = c.recv_timeout::<Queue<String>>(T) else { return 1 };
    if q.put("x".into()).is_err() {
        return 2;
    }
    if c.recv_timeout::<()>(T).is_err() {
        return 3;
    }
    if c.send(&"answer".to_string()).is_err() {
        return 4;
    }
    0
}

fn child_plain(c: Connection) -> u32 {
    if c.recv_timeout::<String>(T).is_err() {
        return 1;
    }
    if c.send(&"first".to_string()).is_err() {
        return 2;
    }
    if c.recv_timeout::<()>(T).is_err() {
        return 3;
    }
    if c.send(&"answer".to_string()).is_err() {
        return 4;
    }
    0
}

fn rounds(with_queue: bool) {
    for round in 0..ROUNDS {
        let (mine, theirs) = Pipe::new().unwrap();
        let target = if with_queue { child_with_queue } else { child_plain };
        let mut child = Process::builder()
            .start_method(StartMethod::Fork)
            .target(target, theirs)
            .start()
            .unwrap();
        if with_queue {
            let q: Queue<String> = Queue::new().unwrap();
            mine.send(&q).unwrap();
            let got = q.get_timeout(T);
            assert_eq!(got.unwrap_or_else(|e| panic!("round {round}: {e}")), "x");
        } else {
            mine.send(&"hi".to_string()).unwrap();
            assert_eq!(mine.recv_timeout::<String>(T).unwrap(), "first");
        }
        mine.send(&()).unwrap();
        let answer = mine.recv_timeout::<String>(T);
        let code = child.join_timeout(T).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(code, 0, "round {round}");
        assert_eq!(answer.unwrap_or_else(|e| panic!("round {round}: lost: {e}")), "answer");
    }
}

#[test]
fn last_answers_with_handles() {
    rounds(true);
}

#[test]
fn last_answers_plain() {
    rounds(false);
}
