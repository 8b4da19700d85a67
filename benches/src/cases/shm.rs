//! `shm.*`: named shared memory (multiproc-arena's `SharedMemory`, Python's
//! `multiprocessing.shared_memory.SharedMemory`).

use super::{fork, mb_per_s, timed, us_per, Better, Case, Floor, Opts};
use multiproc_arena::SharedMemory;
use std::time::{Duration, Instant};

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "shm.segment_lifecycle_4kib",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::Case("floor.shm_lifecycle_4kib"),
        rust: Some(segment_lifecycle_4kib),
        python: true,
        about: "a named 4 KiB segment: create, open by name, close both, unlink",
    },
    Case {
        name: "shm.write_64mib",
        unit: "MB/s",
        better: Better::Higher,
        floor: Floor::Case("floor.memfd_first_touch_64mib"),
        rust: Some(write_64mib),
        python: true,
        about: "a forked child writes 64 MiB into a named segment and exits; the parent reads \
                and checks every byte (fork + write + wait + verify, per 64 MiB)",
    },
];

fn segment_lifecycle_4kib(o: &Opts) -> f64 {
    let n = o.iters(6_000, 2_000);
    let d = timed(o.warm(n), n, |_| {
        let a = SharedMemory::create(4096).expect("create");
        let b = SharedMemory::open(a.name()).expect("open");
        b.close();
        a.close(); // the creator's close unlinks the name
    });
    us_per(d, n)
}

/// The payload of round `k`: word `i` is `seed(k) + i`, so a stale or partial write fails the
/// check.
fn seed(k: u64) -> u64 {
    (k + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn write_64mib(o: &Opts) -> f64 {
    const LEN: usize = 64 << 20;
    const WORDS: usize = LEN / 8;
    let shm = SharedMemory::create(LEN).expect("create 64 MiB");
    let words = shm.as_ptr().cast::<u64>();
    let n = o.iters(12, 5);
    let mut total = Duration::ZERO;
    for k in 0..n + 1 {
        let s = seed(k);
        let t = Instant::now();
        let child = fork(|| {
            // A forked child starts without page tables for shared mappings: prefault them in
            // one call instead of 16k faults (what a user writing a big segment does too).
            let _ = shm.populate();
            // SAFETY: the mapping holds LEN bytes, page aligned; the parent does not touch it
            // until this process has exited.
            let w = unsafe { std::slice::from_raw_parts_mut(words, WORDS) };
            for (i, x) in w.iter_mut().enumerate() {
                *x = s.wrapping_add(i as u64);
            }
        });
        child.join();
        // SAFETY: the writer has exited; nobody else writes the block while we read it.
        let w = unsafe { std::slice::from_raw_parts(words, WORDS) };
        let bad = w.iter().enumerate().fold(0u64, |b, (i, x)| b | (x ^ s.wrapping_add(i as u64)));
        assert_eq!(bad, 0, "the parent did not read what the child wrote");
        if k > 0 {
            total += t.elapsed(); // round 0 is the warm-up (first touch of the pages)
        }
    }
    mb_per_s(LEN as u64 * n, total)
}
