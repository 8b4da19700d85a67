//! `/dev/shm` full: memory that cannot be had is an error when a segment is created or an
//! arena block handed out (`NoSpace`, naming ENOSPC), never a SIGBUS later; a failed named
//! creation leaves no name behind; what was there before is intact; and everything works
//! again once the space is back. Runs for real: a forked child mounts a 1 MiB tmpfs over
//! `/dev/shm` in a private mount namespace (root; skipped loudly without the privilege).

use multiproc_arena::testing::{resize_dev_shm, with_small_dev_shm, Outcome};
use multiproc_arena::{Arena, Array, ErrorKind, SharedMemory};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);
const MIB: usize = 1 << 20;

fn names_in_dev_shm() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        // The liveness registry stays for good (empty: it holds only locks).
        .filter(|n| n != "multiproc-liveness")
        .collect();
    v.sort();
    v
}

#[test]
fn full_dev_shm_is_an_error_at_creation_and_passes() {
    let out = with_small_dev_shm(MIB as u64, T, || {
        // Before the fault: a small named block holding data.
        let early = SharedMemory::create_named("early", 16).unwrap();
        early.write(0, b"kept across it").unwrap();
        let before = names_in_dev_shm();

        // 4 MiB do not fit in 1 MiB: an error now, not SIGBUS on the first write.
        let err = SharedMemory::create(4 * MIB).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NoSpace, "{err}");
        let msg = err.to_string();
        assert!(msg.contains("ENOSPC") && msg.contains("fallocate"), "{msg}");
        let err = SharedMemory::create_named("big", 4 * MIB).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NoSpace, "{err}");
        assert_eq!(names_in_dev_shm(), before, "a failed creation leaves no name behind");

        // A named arena bigger than the tmpfs: created (its pages are reserved as blocks are
        // handed out), small blocks work, a block that cannot be had is NoSpace.
        let arena = Arena::create("arena", 8 * MIB).unwrap();
        let small = Array::from_fn_in(&arena, 16, |i| AtomicU64::new(i as u64)).unwrap();
        let err = Array::from_fn_in(&arena, 2 * MIB / 8, |_| AtomicU64::new(7)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NoSpace, "{err}");
        assert!(err.to_string().contains("ENOSPC"), "{err}");
        let used = arena.used();

        // Nothing before the fault was lost.
        let mut buf = [0u8; 14];
        early.read(0, &mut buf).unwrap();
        assert_eq!(&buf, b"kept across it");
        assert_eq!(small[15].load(Ordering::Relaxed), 15);

        // The fault passes: the same calls succeed, and the pages are really there.
        resize_dev_shm(32 * MIB as u64);
        let big = SharedMemory::create(4 * MIB).unwrap();
        big.write(4 * MIB - 1, b"x").unwrap();
        let fill = Array::from_fn_in(&arena, 2 * MIB / 8, |_| AtomicU64::new(7)).unwrap();
        assert_eq!(fill[fill.len() - 1].load(Ordering::Relaxed), 7);
        assert!(arena.used() > used);
        drop((big, fill, small, arena, early));
        assert!(names_in_dev_shm().is_empty(), "{:?}", names_in_dev_shm());
    });
    // Outcome::Skipped was already reported loudly by the helper.
    let _: Outcome = out;
}
