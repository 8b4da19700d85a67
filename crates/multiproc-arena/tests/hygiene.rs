//! Resource hygiene, alone in its binary so no other test opens descriptors meanwhile.

use multiproc_arena::{Arena, Shared, SharedMemory};
use std::sync::atomic::AtomicU64;

fn shm_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new("/dev/shm").join(name)
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn thousand_create_drop_cycles_leak_nothing() {
    // The one descriptor a process keeps for its whole life: the liveness registry.
    let _ = multiproc_arena::Identity::current();
    let before = fd_count();
    let mut names = Vec::new();
    for i in 0..1000 {
        let s = SharedMemory::create(4096).unwrap();
        s.write(0, &[i as u8]).unwrap();
        names.push(s.name().to_string());
        let a = Arena::new(1 << 16).unwrap();
        let _v = Shared::new_in(&a, AtomicU64::new(i)).unwrap();
    }
    assert_eq!(fd_count(), before, "descriptors leaked");
    assert!(names.iter().all(|n| !shm_file(n).exists()), "names left in /dev/shm");
}
