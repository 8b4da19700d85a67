//! The one shape (#18) of the queue crate: `JoinableQueue::join_timeout` fails with an error
//! whose `is_timeout()` is true while tasks are unfinished (changing nothing);
//! `JoinableQueue::builder().build()` is a `JoinableQueue`; `GetError` and `PutError` answer
//! the three questions of `OpError`.
#![cfg(not(multiproc_loom))]

use multiproc_arena::api::OpError;
use multiproc_arena::testing::{fork, Child};
use multiproc_arena::Arena;
use multiproc_ipc_queue::{ErrorKind, GetError, JoinableQueue, PutError, Queue};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

fn ok(c: Child) {
    c.expect_success(T);
}

/// The three questions, asked through the trait (as generic code would).
fn classes<E: OpError>(e: &E) -> (bool, bool, bool) {
    (e.is_timeout(), e.is_would_block(), e.is_disconnected())
}

#[test]
fn join_timeout_with_unfinished_tasks() {
    let q: JoinableQueue<u32> = JoinableQueue::new().unwrap();
    // Nothing put: done at once.
    q.join_timeout(Duration::ZERO).unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert_eq!(q.get().unwrap(), 1);
    q.task_done().unwrap();
    let t = Instant::now();
    let e = q.join_timeout(Duration::from_millis(50)).unwrap_err();
    let waited = t.elapsed();
    assert!(e.is_timeout() && !e.is_would_block() && !e.is_disconnected(), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(classes(&e), (true, false, false));
    assert!(e.to_string().contains("1 tasks still unfinished"), "{e}");
    assert!(waited >= Duration::from_millis(45) && waited < T, "{waited:?}");
    assert_eq!(std::io::Error::from(e).kind(), std::io::ErrorKind::TimedOut);
    // Nothing changed: one task left, and the item still there.
    assert_eq!(q.unfinished_tasks(), 1);
    assert_eq!(q.qsize(), 1);
    assert_eq!(q.get().unwrap(), 2);
    assert!(q.join_timeout(Duration::ZERO).unwrap_err().is_timeout());
    q.task_done().unwrap();
    q.join_timeout(Duration::ZERO).unwrap();
}

/// A child's `join_timeout` times out while the parent holds a task unfinished, and succeeds
/// once the parent marks it done.
#[test]
fn join_timeout_across_processes() {
    let q: JoinableQueue<u32> = JoinableQueue::new().unwrap();
    let done = Queue::<u8>::new().unwrap();
    q.put(7).unwrap();
    let child = fork(|| {
        match q.join_timeout(Duration::from_millis(20)) {
            Err(e) if e.is_timeout() => {}
            _ => return 1,
        }
        // Tell the parent the timeout was seen; then wait for the real end.
        done.put(1).unwrap();
        match q.join_timeout(T) {
            Ok(()) if q.unfinished_tasks() == 0 => 0,
            _ => 2,
        }
    });
    assert_eq!(done.get_timeout(T).unwrap(), 1);
    assert_eq!(q.get().unwrap(), 7);
    q.task_done().unwrap();
    ok(child);
}

#[test]
fn builder_returns_joinable_queue_across_fork() {
    // The annotation is the test: `build()` of `JoinableQueue::builder()` is a JoinableQueue.
    let q: JoinableQueue<u32> =
        JoinableQueue::builder().maxsize(4).capacity(64 << 10).max_processes(8).build().unwrap();
    assert_eq!(q.maxsize(), Some(4));
    for i in 1..=3 {
        q.put(i).unwrap();
    }
    assert_eq!(q.unfinished_tasks(), 3);
    let worker = fork(|| {
        for i in 1..=3 {
            if q.get_timeout(T).ok() != Some(i) {
                return 1;
            }
            std::thread::sleep(Duration::from_millis(10));
            if q.task_done().is_err() {
                return 2;
            }
        }
        0
    });
    q.join_timeout(T).unwrap();
    assert_eq!(q.unfinished_tasks(), 0);
    ok(worker);
    assert_eq!(q.task_done().unwrap_err().kind(), ErrorKind::TaskDoneTooManyTimes);

    // `build_in` too.
    let q: JoinableQueue<String> =
        JoinableQueue::builder().maxsize(1).build_in(Arena::global()).unwrap();
    q.put("x".into()).unwrap();
    assert!(q.try_put("y".into()).unwrap_err().is_full());
    let consumer = fork(|| match q.get_timeout(T) {
        Ok(s) if s == "x" => q.task_done().map_or(2, |()| 0),
        _ => 1,
    });
    ok(consumer);
    q.join_timeout(T).unwrap();
}

#[test]
fn get_and_put_errors_answer_op_error() {
    let q: Queue<u32> = Queue::builder().maxsize(1).build().unwrap();
    let e = q.try_get().unwrap_err();
    assert!(matches!(e, GetError::Empty));
    assert_eq!(classes(&e), (false, true, false));
    assert!(e.is_would_block() && !e.is_timeout() && !e.is_disconnected());
    let e = q.get_timeout(Duration::from_millis(10)).unwrap_err();
    assert!(matches!(e, GetError::Timeout));
    assert_eq!(classes(&e), (true, false, false));

    q.put(1).unwrap();
    let e = q.try_put(2).unwrap_err();
    assert!(matches!(e, PutError::Full(2)));
    assert_eq!(classes(&e), (false, true, false));
    assert!(e.is_would_block() && !e.is_timeout() && !e.is_disconnected());
    let e = q.put_timeout(3, Duration::from_millis(10)).unwrap_err();
    assert!(matches!(e, PutError::Timeout(3)));
    assert_eq!(classes(&e), (true, false, false));
    assert_eq!(e.into_inner(), 3);

    q.close();
    let e = q.put(4).unwrap_err();
    assert!(matches!(e, PutError::Closed(4)));
    assert_eq!(classes(&e), (false, false, true));
    assert!(e.is_disconnected());
    // The message put before the close is still there; then `Closed`.
    assert_eq!(q.get().unwrap(), 1);
    let e = q.get().unwrap_err();
    assert!(matches!(e, GetError::Closed));
    assert_eq!(classes(&e), (false, false, true));
    let dynamic: &dyn OpError = &e;
    assert!(dynamic.is_disconnected());
}
