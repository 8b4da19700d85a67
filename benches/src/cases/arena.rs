//! `arena.*`: the allocator of multiproc-arena. CPython's counterpart is
//! `multiprocessing.heap.BufferWrapper` (what `RawValue`/`RawArray` allocate from), which is a
//! per-process heap: after fork each process allocates from its own.

use super::{both_processes, ns_per, timed, Better, Case, Floor, Opts};
use multiproc_arena::Arena;

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "arena.alloc_free",
        unit: "ns",
        better: Better::Lower,
        floor: Floor::None,
        rust: Some(alloc_free),
        python: true,
        about: "alloc_raw(64, 8) + free_raw in one process",
    },
    Case {
        name: "arena.alloc_free_2proc",
        unit: "ns",
        better: Better::Lower,
        floor: Floor::None,
        rust: Some(alloc_free_2proc),
        python: true,
        about: "two processes alloc+free 64 B on the same arena at once: wall time / all pairs",
    },
];

fn pair(arena: &Arena, i: u64) {
    let off = arena.alloc_raw(64, 8).expect("alloc");
    let p = arena.ptr(off, 64).expect("in the arena");
    // SAFETY: the block is 64 bytes, ours until freed below.
    unsafe { p.cast::<u64>().write(i) };
    // SAFETY: `off` came from alloc_raw(64, 8) on this arena and is not used any more.
    unsafe { arena.free_raw(off, 64, 8) };
}

fn alloc_free(o: &Opts) -> f64 {
    let arena = Arena::new(16 << 20).expect("arena");
    let n = o.iters(6_000_000, 2_000_000);
    ns_per(timed(o.warm(n), n, |i| pair(&arena, i)), n)
}

fn alloc_free_2proc(o: &Opts) -> f64 {
    let arena = Arena::new(16 << 20).expect("arena");
    let n = o.iters(4_000_000, 1_500_000);
    let work = || (0..n).for_each(|i| pair(&arena, i));
    (0..o.warm(n)).for_each(|i| pair(&arena, i));
    let d = both_processes(work);
    assert_eq!(arena.used(), 0, "a block leaked");
    ns_per(d, 2 * n)
}
