//! Segment, SharedMemory and arena behaviour with real processes and bad input.

use multiproc_arena::testing::fork;
use multiproc_arena::{
    cleanup_orphans, random_name, Arena, ErrorKind, Segment, Shared, SharedMemory, MAX_NAME_LEN,
};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn shm_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new("/dev/shm").join(name.trim_start_matches('/'))
}

#[test]
fn named_segment_is_shared_private_and_unlinked_on_drop() {
    let name = random_name();
    let seg = Segment::create(&name, 4096).unwrap();
    let mode = std::fs::metadata(shm_file(&name)).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "named segments are private to the user");
    let other = Segment::open(&name).unwrap();
    assert_eq!(seg.id(), other.id());
    // SAFETY: both mappings are 4096 bytes long and nobody else touches them.
    unsafe {
        seg.as_ptr().write(42);
        assert_eq!(other.as_ptr().read(), 42);
    }
    assert_eq!(Segment::create(&name, 10).unwrap_err().kind(), ErrorKind::AlreadyExists);
    drop(other);
    drop(seg);
    assert!(!shm_file(&name).exists(), "creator unlinks on drop");
    assert_eq!(Segment::open(&name).unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn persisted_segment_survives_its_creator_until_unlinked() {
    let name = random_name();
    let mut seg = Segment::create(&name, 100).unwrap();
    seg.persist();
    drop(seg);
    assert!(shm_file(&name).exists());
    let mut again = Segment::open(&name).unwrap();
    again.unlink().unwrap();
    assert_eq!(Segment::unlink_name(&name).unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn invalid_names_are_refused() {
    for bad in ["", "/", "a/b", "/a/b", "nul\0byte", ".", ".."] {
        assert_eq!(Segment::create(bad, 1).unwrap_err().kind(), ErrorKind::InvalidName, "{bad:?}");
        assert_eq!(Segment::open(bad).unwrap_err().kind(), ErrorKind::InvalidName, "{bad:?}");
    }
    let long = "x".repeat(MAX_NAME_LEN + 1);
    assert_eq!(Segment::create(&long, 1).unwrap_err().kind(), ErrorKind::InvalidName);
    assert_eq!(
        SharedMemory::create_named(&random_name(), 0).unwrap_err().kind(),
        ErrorKind::InvalidLayout
    );
}

#[test]
fn bad_headers_are_typed_errors() {
    // Wrong magic: an object that is not ours.
    let name = random_name();
    std::fs::write(shm_file(&name), vec![0xabu8; 8192]).unwrap();
    assert_eq!(Segment::open(&name).unwrap_err().kind(), ErrorKind::InvalidHeader);
    // Size 0: a creator between O_EXCL and ftruncate.
    std::fs::write(shm_file(&name), b"").unwrap();
    assert_eq!(Segment::open(&name).unwrap_err().kind(), ErrorKind::NotInitialized);
    // Smaller than a header.
    std::fs::write(shm_file(&name), [0u8; 100]).unwrap();
    assert_eq!(Segment::open(&name).unwrap_err().kind(), ErrorKind::Truncated);
    // All zero: header not written yet.
    std::fs::write(shm_file(&name), vec![0u8; 8192]).unwrap();
    assert_eq!(Segment::open(&name).unwrap_err().kind(), ErrorKind::NotInitialized);
    std::fs::remove_file(shm_file(&name)).unwrap();

    // Wrong version, then truncated, on a real segment.
    let name = random_name();
    let seg = Segment::create(&name, 64 << 10).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(shm_file(&name)).unwrap();
    f.write_all_at(&99u32.to_le_bytes(), 8).unwrap();
    assert_eq!(Segment::open(&name).unwrap_err().kind(), ErrorKind::VersionMismatch);
    f.write_all_at(&multiproc_arena::LAYOUT_VERSION.to_le_bytes(), 8).unwrap();
    Segment::open(&name).unwrap();
    f.set_len(8192).unwrap();
    assert_eq!(Segment::open(&name).unwrap_err().kind(), ErrorKind::Truncated);
    drop(seg);
    // Opening a plain segment as an arena is refused.
    let name = random_name();
    let _plain = Segment::create(&name, 64 << 10).unwrap();
    assert_eq!(Arena::open(&name).unwrap_err().kind(), ErrorKind::InvalidHeader);
}

#[test]
fn arena_exhaustion_and_bad_layouts_are_errors() {
    let arena = Arena::new(64 << 10).unwrap();
    let mut blocks = Vec::new();
    let err = loop {
        match arena.alloc_raw(1000, 8) {
            Ok(b) => blocks.push(b),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::ArenaFull);
    assert!(blocks.len() >= 60, "64 KiB holds at least 60 1-KiB blocks, got {}", blocks.len());
    assert_eq!(arena.alloc_raw(8, 8192).unwrap_err().kind(), ErrorKind::InvalidLayout);
    assert_eq!(arena.alloc_raw(usize::MAX, 8).unwrap_err().kind(), ErrorKind::InvalidLayout);
    // Freed blocks are reused: exhaustion is not permanent.
    for b in blocks.drain(..) {
        // SAFETY: allocated above with this layout, freed once.
        unsafe { arena.free_raw(b, 1000, 8) };
    }
    assert_eq!(arena.used(), 0);
    for _ in 0..60 {
        blocks.push(arena.alloc_raw(1000, 8).unwrap());
    }
    let full = Shared::new_in(&arena, [0u64; 4096]).unwrap_err();
    assert_eq!(full.kind(), ErrorKind::ArenaFull);
}

#[test]
fn forked_child_writes_parent_reads() {
    let v = Shared::new(AtomicU64::new(0)).unwrap();
    let shm = SharedMemory::create(1 << 20).unwrap();
    let arena = Arena::new(1 << 20).unwrap();
    let seen = Shared::new(AtomicU64::new(0)).unwrap();
    let (v2, shm_name, arena2) = (v.clone(), shm.name().to_string(), arena.clone());
    let child = fork(|| {
        v2.store(0xfeed, Ordering::Release);
        let s = SharedMemory::open(&shm_name).unwrap();
        s.populate().unwrap();
        s.write(1000, &[7u8; 1000]).unwrap();
        // An object allocated by the child after fork is visible to the parent through the
        // shared arena while the child lives; the child forgets its handle, and its exit
        // (which skips destructors) still gives the reference back.
        let late = Shared::new_in(&arena2, AtomicU64::new(77)).unwrap();
        std::mem::forget(late);
        seen.store(arena2.used() as u64, Ordering::Release);
        0
    });
    child.expect_success(T);
    assert_eq!(v.load(Ordering::Acquire), 0xfeed);
    let mut buf = [0u8; 1000];
    shm.read(1000, &mut buf).unwrap();
    assert_eq!(buf, [7u8; 1000]);
    assert!(seen.load(Ordering::Acquire) > 0, "the child's allocation showed in the header");
    // (Exact counts after the child's exit: tests/fork_counts.rs, alone in its binary, since
    // children that other tests of this binary fork and kill keep what they inherited.)
}

#[test]
fn killed_creator_leaves_no_name_after_cleanup() {
    let name = random_name();
    let ready = Shared::new(AtomicU64::new(0)).unwrap();
    let (n2, r2) = (name.clone(), ready.clone());
    let mut child = fork(move || {
        let seg = Segment::create(&n2, 4096).unwrap();
        r2.store(1, Ordering::Release);
        std::thread::sleep(Duration::from_secs(30));
        drop(seg);
        0
    });
    let t0 = std::time::Instant::now();
    while ready.load(Ordering::Acquire) == 0 {
        assert!(t0.elapsed() < T, "child never created the segment");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill();
    assert!(child.wait_timeout(T).is_some());
    assert!(shm_file(&name).exists(), "SIGKILL left the name behind");
    let removed = cleanup_orphans().unwrap();
    assert!(removed >= 1);
    assert!(!shm_file(&name).exists(), "cleanup removed the orphan");
}

#[test]
fn cleanup_keeps_live_and_persisted_segments() {
    let live = Segment::create(&random_name(), 10).unwrap();
    let pname = random_name();
    let mut persisted = Segment::create(&pname, 10).unwrap();
    persisted.persist();
    cleanup_orphans().unwrap();
    assert!(shm_file(live.name().unwrap()).exists());
    assert!(shm_file(&pname).exists());
    persisted.unlink().unwrap();
}

#[test]
fn named_shared_values_and_arrays() {
    use multiproc_arena::{Array, ErrorKind as K};
    let base = format!("mp-named-arena-{}", std::process::id());
    let a = Array::create_named(&format!("{base}-a"), 4, |i| AtomicU64::new(i as u64)).unwrap();
    let b = Array::<AtomicU64>::open_named(&format!("{base}-a")).unwrap();
    assert_eq!(b.len(), 4);
    b[3].store(33, Ordering::Relaxed);
    assert_eq!(a[3].load(Ordering::Relaxed), 33);
    assert_eq!(
        Array::<std::sync::atomic::AtomicU32>::open_named(&format!("{base}-a")).unwrap_err().kind(),
        K::WrongType
    );
    let v = Shared::create_named(&format!("{base}-v"), AtomicU64::new(9)).unwrap();
    assert_eq!(
        Shared::<AtomicU64>::open_named(&format!("{base}-v")).unwrap().load(Ordering::Relaxed),
        9
    );
    assert_eq!(
        Shared::<AtomicU64>::create_named(&format!("{base}-v"), AtomicU64::new(1))
            .unwrap_err()
            .kind(),
        K::AlreadyExists
    );
    let w = Shared::open_or_create_named(&format!("{base}-w"), || AtomicU64::new(4)).unwrap();
    assert_eq!(
        Shared::open_or_create_named(&format!("{base}-w"), || AtomicU64::new(5))
            .unwrap()
            .load(Ordering::Relaxed),
        4
    );
    drop((a, b, v, w));
    assert!(!std::path::Path::new("/dev/shm").join(format!("{base}-a")).exists());
}
