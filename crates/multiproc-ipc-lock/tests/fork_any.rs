//! Handles counted across a fork the library did not make: this crate alone, a plain
//! `fork()` 1,000 times; every child uses the mutex and drops its handles, the parent drops
//! its own; the count is exact, nothing is freed twice (a second object made afterwards does
//! not land on the first's memory) and every block comes back. Alone in its binary: other
//! tests' killed children would keep references they inherited from this one.
#![cfg(not(multiproc_loom))]

use multiproc_arena::testing::{exit_now, user_fork, wait_all};
use multiproc_arena::Arena;
use multiproc_ipc_lock::Mutex;

#[test]
fn thousand_plain_forks_drop_their_handles_and_the_count_is_exact() {
    let arena = Arena::new(1 << 20).unwrap();
    let m = Mutex::new_in(&arena, 0u64).unwrap();
    let used = arena.used();
    let mut pids = Vec::new();
    for i in 0..1000 {
        let mine = m.clone();
        // SAFETY: the child only uses the mutex (shared memory, futexes), drops its handles
        // and _exits: nothing another thread of the test binary could hold is needed.
        let pid = unsafe { user_fork() };
        if pid == 0 {
            {
                let extra = mine.clone();
                *extra.lock().unwrap() += 1;
                drop(extra);
            }
            drop(mine); // the inherited copy of the clone
            drop(m); // and of the original: the child holds nothing now
            exit_now(0);
        }
        drop(mine); // the parent's copy of the same handle
        pids.push(pid);
        if i % 64 == 63 {
            wait_all(&mut pids); // keep the number of live children small
        }
    }
    wait_all(&mut pids);
    assert_eq!(*m.lock().unwrap(), 1000, "every child's increment, once");
    // A double free would have put this one on the mutex's memory.
    let other = Mutex::new_in(&arena, 7u64).unwrap();
    assert_eq!(*m.lock().unwrap(), 1000);
    assert_eq!(*other.lock().unwrap(), 7);
    drop(other);
    // The children's inherited references were counted and released: nothing leaked.
    assert_eq!(arena.used(), used);
    drop(m);
    assert_eq!(arena.used(), 0, "the last drop freed the mutex");
}
