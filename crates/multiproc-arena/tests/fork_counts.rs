//! Handles counted across any fork, alone in its binary (children that other tests fork and
//! kill would keep references they inherited from this one): parent and children may each
//! drop their copies; the block is freed once, by the last; a child's exit (which skips
//! destructors) gives back what it held. Also the other exact-count checks of the arena.

use multiproc_arena::testing::{fork, Exit};
use multiproc_arena::{fork as afork, Arena, Array, Shared};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// The tests of this file run one at a time (a child of one inherits the other's handles).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static M: std::sync::Mutex<()> = std::sync::Mutex::new(());
    M.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn inherited_handles_are_counted_and_released() {
    let _serial = serial();
    let arena = Arena::new(1 << 20).unwrap();
    let v = Shared::new_in(&arena, AtomicU64::new(0)).unwrap();
    let used = arena.used();
    let held = afork::handles_held();
    let child = fork(|| {
        // The child drops its copy of `v` (the closure owns it) and makes one of its own,
        // which it forgets: its exit gives both back.
        let mine = v.clone();
        mine.fetch_add(1, SeqCst);
        drop(mine);
        std::mem::forget(Shared::new_in(&arena, AtomicU64::new(9)).unwrap());
        0
    });
    child.expect_success(T);
    assert_eq!(v.load(SeqCst), 1);
    assert_eq!(v.ref_count(), 1, "the child's inherited handle was counted, then released");
    assert_eq!(arena.used(), used, "the child's own object was given back at its exit");
    assert_eq!(afork::handles_held(), held);
    drop(v);
    assert_eq!(arena.used(), 0);
}

/// A child that outlives the parent's handle keeps the block alive (it was counted for it):
/// the parent drops its only handle, allocates again, and the child still reads its value.
#[test]
fn a_child_keeps_what_the_parent_dropped() {
    let _serial = serial();
    let arena = Arena::new(1 << 20).unwrap();
    let v = Shared::new_in(&arena, AtomicU64::new(41)).unwrap();
    let go = Array::from_fn_in(&arena, 2, |_| AtomicU64::new(0)).unwrap();
    let (v2, go2) = (v.clone(), go.clone());
    let mut child = fork(move || {
        while go2[0].load(SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        // The parent dropped its handles and allocated a new object: ours must be intact.
        let ok = v2.load(SeqCst) == 41;
        go2[1].store(if ok { 1 } else { 2 }, SeqCst);
        drop(v2);
        0
    });
    drop(v); // the parent's only handle
    let fresh = Shared::new_in(&arena, AtomicU64::new(7)).unwrap();
    go[0].store(1, SeqCst);
    assert!(matches!(child.wait_timeout(T), Some(Exit::Code(0))));
    assert_eq!(go[1].load(SeqCst), 1, "the child's value was overwritten: freed under it");
    assert_eq!(fresh.load(SeqCst), 7);
}

#[test]
fn shared_refcount_frees_on_last_drop() {
    let _serial = serial();
    let arena = Arena::new(1 << 20).unwrap();
    let a = Shared::new_in(&arena, AtomicU64::new(5)).unwrap();
    let used = arena.used();
    assert!(used > 0);
    let b = a.clone();
    assert_eq!(a.ref_count(), 2);
    assert!(Shared::ptr_eq(&a, &b));
    drop(a);
    assert_eq!(arena.used(), used);
    drop(b);
    assert_eq!(arena.used(), 0);
}

#[test]
fn two_processes_allocate_concurrently_without_overlap() {
    let _serial = serial();
    let arena = Arena::new(8 << 20).unwrap();
    let fail = Shared::new_in(&arena, AtomicU64::new(0)).unwrap();
    let mut kids = Vec::new();
    for id in 1..=2u64 {
        let (arena, fail) = (arena.clone(), fail.clone());
        kids.push(fork(move || {
            for round in 0..2000u64 {
                let size = 16 << (round % 6);
                let b = arena.alloc_raw(size, 8).unwrap();
                let p = arena.ptr(b, size).unwrap().cast::<u64>();
                let stamp = id << 32 | round;
                for i in 0..size / 8 {
                    // SAFETY: the block is ours (size bytes, 8-aligned) until we free it.
                    unsafe { p.add(i).write_volatile(stamp) };
                }
                std::thread::yield_now();
                for i in 0..size / 8 {
                    // SAFETY: as above.
                    if unsafe { p.add(i).read_volatile() } != stamp {
                        fail.fetch_add(1, SeqCst);
                    }
                }
                // SAFETY: allocated above with this layout, freed once.
                unsafe { arena.free_raw(b, size, 8) };
            }
            0
        }));
    }
    for k in kids {
        k.expect_success(T);
    }
    assert_eq!(fail.load(SeqCst), 0, "a block was handed to two owners");
    drop(fail);
    assert_eq!(arena.used(), 0);
}
