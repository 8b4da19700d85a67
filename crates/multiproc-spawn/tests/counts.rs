//! Exact cross-process reference counts through the start methods: alone in this binary,
//! because a child that another test forks and kills keeps the references it inherited (the
//! arena counts inherited handles for every forked child; a killed process leaks them).
#![cfg(not(multiproc_loom))]

mod sys;
mod util;

use multiproc_arena::Shared;
use multiproc_spawn::*;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use util::*;

fn bump(v: Shared<AtomicU64>) -> u64 {
    v.fetch_add(5, SeqCst) + 5
}

// An arena handle in the arguments is the same memory in the child.
per_method!(
    fn shared_memory_argument(m) {
        let v = Shared::new(AtomicU64::new(10)).unwrap();
        let h = Process::builder().start_method(m).target(bump, v.clone()).start().unwrap();
        assert_eq!(h.join().unwrap(), 15);
        assert_eq!(v.load(SeqCst), 15);
        // (Another test's child may hold an inherited copy for a moment: wait for it.)
        assert!(wait_until(LONG, || v.ref_count() == 1), "the child's reference: {}", v.ref_count());
    }
);

fn pass_on((v, m, depth): (Shared<AtomicU64>, StartMethod, u32)) -> u64 {
    v.fetch_add(1, SeqCst);
    if depth > 0 {
        let h = Process::builder()
            .start_method(m)
            .target(pass_on, (v.clone(), m, depth - 1))
            .start()
            .unwrap();
        h.join().unwrap();
    }
    v.load(SeqCst)
}

// PL30: a child passes the handle it received on to a grandchild.
per_method!(
    fn handles_pass_through_generations(m) {
        let v = Shared::new(AtomicU64::new(0)).unwrap();
        let h = Process::builder().start_method(m).target(pass_on, (v.clone(), m, 2)).start().unwrap();
        assert_eq!(h.join().unwrap(), 3);
        assert_eq!(v.load(SeqCst), 3);
        assert!(wait_until(LONG, || v.ref_count() == 1), "{}", v.ref_count());
    }
);

#[test]
fn fork_closure_keeps_shared_counts_exact() {
    let v = Shared::new(AtomicU64::new(0)).unwrap();
    let c = v.clone();
    // (Another test of this binary that forks now counts copies for its child for a moment.)
    assert!(wait_until(LONG, || v.ref_count() == 2), "{}", v.ref_count());
    let h = Process::builder()
        .start_method(StartMethod::Fork)
        .target_closure(move || c.fetch_add(1, SeqCst) + 1)
        .start()
        .unwrap();
    assert_eq!(h.join().unwrap(), 1);
    // The child's copy of the clone was counted at the fork and released when it ended; the
    // parent dropped its copy of the closure at the start.
    assert!(wait_until(LONG, || v.ref_count() == 1), "{}", v.ref_count());
}
