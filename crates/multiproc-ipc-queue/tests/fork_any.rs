//! Queue handles counted across a fork the library did not make: this crate alone, a plain
//! `fork()` 300 times; every child puts a message and drops its handles, the parent drops its
//! own copy each time; every message arrives, nothing is freed twice or under a user, and the
//! queue's memory comes back with the last handle. Alone in its binary: other tests' killed
//! children would keep references they inherited from this one.
#![cfg(not(multiproc_loom))]

use multiproc_arena::testing::{exit_now, user_fork, wait_all};
use multiproc_arena::Arena;
use multiproc_ipc_queue::Queue;
use std::time::Duration;

#[test]
fn plain_forks_drop_their_queue_handles_and_the_count_is_exact() {
    let arena = Arena::new(4 << 20).unwrap();
    let q: Queue<u64> = Queue::builder().build_in(&arena).unwrap();
    let used = arena.used();
    let mut pids = Vec::new();
    for i in 0..300u64 {
        let mine = q.clone();
        // SAFETY: the child only uses the queue (shared memory, futexes), drops its handles
        // and _exits: nothing another thread of the test binary could hold is needed.
        let pid = unsafe { user_fork() };
        if pid == 0 {
            mine.put(i).unwrap();
            drop(mine);
            drop(q); // the child holds nothing now
            exit_now(0);
        }
        drop(mine);
        pids.push(pid);
        if i % 32 == 31 {
            wait_all(&mut pids);
        }
    }
    wait_all(&mut pids);
    let mut got: Vec<u64> =
        (0..300).map(|_| q.get_timeout(Duration::from_secs(5)).unwrap()).collect();
    got.sort();
    assert_eq!(got, (0..300).collect::<Vec<_>>(), "every child's message, once");
    assert_eq!(arena.used(), used, "nothing freed while the parent holds the queue");
    drop(q);
    assert_eq!(arena.used(), 0, "the last handle freed the queue");
}
