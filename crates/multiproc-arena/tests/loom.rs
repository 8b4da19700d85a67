//! loom models of the arena allocator: processes are loom threads over a heap-backed arena.
//! Run with `cargo xtask loom -p multiproc-arena`.
#![cfg(multiproc_loom)]

use loom::thread;
use multiproc_arena::{Arena, Offset};

/// An arena with two 16-byte blocks allocated (of one size class).
fn two_blocks() -> (Arena, Offset<u8>, Offset<u8>) {
    let arena = Arena::new(256).unwrap();
    let a = arena.alloc_raw(16, 8).unwrap();
    let b = arena.alloc_raw(16, 8).unwrap();
    (arena, a, b)
}

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
        let (arena, a, b) = two_blocks();
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
        let (arena, a, b) = two_blocks();
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

// ----- the spsc ring -----

mod ring {
    use loom::thread;
    use multiproc_arena::spsc::{Consumer, Producer, RingMem};
    use multiproc_arena::Arena;

    /// Checks every interleaving (up to two preemptions) of a ring of the fewest words (16:
    /// records of at most 32 bytes): `produce` on a second thread with its producer,
    /// `consume` on this one with its consumer. Then every word is free again.
    fn model(produce: fn(&mut Producer), consume: fn(&mut Consumer)) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(move || {
            let m = RingMem::new_in(&Arena::new(1 << 12).unwrap(), 16).unwrap();
            let mut p = Producer::new(&m).unwrap();
            let t = thread::spawn(move || produce(&mut p));
            consume(&mut Consumer::new(&m).unwrap());
            t.join().unwrap();
            assert_eq!(m.used_words(), 0);
        });
    }

    /// Takes the next record, yielding while the ring is empty.
    fn pop(c: &mut Consumer) -> (u8, Vec<u8>) {
        loop {
            if let Some(rec) = c.peek().unwrap() {
                let mut v = Vec::new();
                c.append_to(&rec, &mut v);
                let kind = rec.kind();
                c.advance(rec);
                return (kind, v);
            }
            thread::yield_now();
        }
    }

    /// Pushes a record, yielding while the ring is full.
    fn push(p: &mut Producer, kind: u8, bytes: &[u8]) {
        while p.try_push(kind, &[bytes]).unwrap().is_none() {
            thread::yield_now();
        }
    }

    /// Records published by one thread arrive whole, in order, with their kinds: a payload
    /// word read before the producer's `Release` of `tail` is visible fails the check.
    #[test]
    fn published_records_arrive_whole() {
        model(
            |p| {
                push(p, 1, &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
                push(p, 7, &[10; 3]);
            },
            |c| {
                assert_eq!(pop(c), (1, vec![1, 2, 3, 4, 5, 6, 7, 8, 9]));
                assert_eq!(pop(c), (7, vec![10; 3]));
            },
        );
    }

    /// Records of 4 words on a 16-word ring: the fourth waits for room (the consumer's
    /// `Release` of `head` orders its reads before the producer's reuse of the words), the
    /// fifth pads to the end and wraps. Every payload arrives intact.
    #[test]
    fn a_full_ring_wraps_and_reuses_words_only_after_the_reader() {
        model(
            |p| {
                for i in 1..=5u8 {
                    push(p, 1, &[i; 24]);
                }
            },
            |c| {
                for i in 1..=5u8 {
                    assert_eq!(pop(c), (1, vec![i; 24]));
                }
            },
        );
    }
}
