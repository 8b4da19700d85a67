//! Resource hygiene, alone in its test binary so that no other test's descriptors interfere.

mod common;

use multiproc_manager::*;

#[test]
fn no_descriptors_or_socket_files_left_behind() {
    // Warm up (the forkserver and lazily opened descriptors of other crates).
    drop(Manager::start().unwrap());
    let before = common::fd_count();
    let mut dirs = Vec::new();
    for _ in 0..5 {
        let m = Manager::start().unwrap();
        let l = m.list::<u8>().unwrap();
        l.append(1).unwrap();
        if let Address::Unix(p) = m.address() {
            dirs.push(p.parent().unwrap().to_path_buf());
        }
        m.shutdown().unwrap();
    }
    let after = common::fd_count();
    assert!(after <= before + 2, "fds: {before} -> {after}");
    for d in dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}
