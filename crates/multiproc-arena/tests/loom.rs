//! loom models of the arena allocator: processes are loom threads over a heap-backed arena.
//! Run with `cargo xtask loom -p multiproc-arena`.
#![cfg(multiproc_loom)]

use loom::thread;
use multiproc_arena::Arena;

/// Two "processes" allocate at once from fresh memory: they never get the same block.
#[test]
fn concurrent_bump_allocations_are_distinct() {
    loom::model(|| {
        let arena = Arena::new(256).unwrap();
        let a2 = arena.clone();
        let t = thread::spawn(move || a2.alloc_raw(16, 8).unwrap().raw());
        let mine = arena.alloc_raw(16, 8).unwrap().raw();
        let theirs = t.join().unwrap();
        assert_ne!(mine, theirs);
        assert_eq!(arena.used(), 32);
    });
}

/// One process frees while another allocates from the same class: the freed block is either
/// reused or still on the list, never handed out twice or lost.
#[test]
fn free_and_alloc_race_on_a_free_list() {
    loom::model(|| {
        let arena = Arena::new(256).unwrap();
        let a = arena.alloc_raw(16, 8).unwrap();
        let b = arena.alloc_raw(16, 8).unwrap();
        // SAFETY: `a` came from this arena with this layout and is freed once.
        unsafe { arena.free_raw(a, 16, 8) };
        let a2 = arena.clone();
        let t = thread::spawn(move || {
            // SAFETY: `b` came from this arena with this layout and is freed once.
            unsafe { a2.free_raw(b, 16, 8) };
        });
        let got = arena.alloc_raw(16, 8).unwrap();
        t.join().unwrap();
        // Whatever we got, the other block must still be allocatable, and both differ.
        let other = arena.alloc_raw(16, 8).unwrap();
        assert_ne!(got.raw(), other.raw());
        assert!([a.raw(), b.raw()].contains(&got.raw()));
        assert!([a.raw(), b.raw()].contains(&other.raw()));
    });
}

/// Two processes pop from a two-block free list at once (the ABA-prone case).
#[test]
fn concurrent_pops_get_distinct_blocks() {
    loom::model(|| {
        let arena = Arena::new(256).unwrap();
        let a = arena.alloc_raw(16, 8).unwrap();
        let b = arena.alloc_raw(16, 8).unwrap();
        // SAFETY: both came from this arena with this layout; each is freed once.
        unsafe {
            arena.free_raw(a, 16, 8);
            arena.free_raw(b, 16, 8);
        }
        let a2 = arena.clone();
        let t = thread::spawn(move || {
            let x = a2.alloc_raw(16, 8).unwrap();
            // Free and re-take: the classic ABA interleaving against the other pop.
            // SAFETY: `x` is ours, freed once.
            unsafe { a2.free_raw(x, 16, 8) };
            a2.alloc_raw(16, 8).unwrap().raw()
        });
        let mine = arena.alloc_raw(16, 8).unwrap().raw();
        let theirs = t.join().unwrap();
        assert_ne!(mine, theirs);
    });
}

/// Exhaustion is an error, not a panic, even when two processes race for the last block.
#[test]
fn racing_for_the_last_block() {
    loom::model(|| {
        let arena = Arena::new(16).unwrap();
        let a2 = arena.clone();
        let t = thread::spawn(move || a2.alloc_raw(16, 8).is_ok());
        let mine = arena.alloc_raw(16, 8).is_ok();
        let theirs = t.join().unwrap();
        assert!(mine ^ theirs, "exactly one gets the only block");
    });
}
