//! Proxies inherited through `fork` (not serialised): the child opens its own session on first
//! use; an inherited proxy it never uses costs the parent nothing. Alone in its test binary
//! (forking a process whose other threads are busy is what the fork start method warns about).

use multiproc_arena::testing::fork;
use multiproc_manager::*;
use std::time::Duration;

#[test]
fn inherited_proxies_reconnect_in_the_child() {
    let m = Manager::start().unwrap();
    let used = m.list::<u32>().unwrap();
    let unused = m.dict::<u32, u32>().unwrap();
    let lock = m.lock().unwrap();
    let before = m.num_objects().unwrap();
    let (u2, n2, l2, m2) = (used.clone(), unused.clone(), lock.clone(), m.clone());
    let child = fork(move || {
        u2.append(1).unwrap();
        u2.append(2).unwrap();
        let mine = m2.list_from([9u32]).unwrap();
        assert_eq!(mine.len().unwrap(), 1);
        drop(l2.lock().unwrap());
        drop((n2, m2));
        0
    });
    child.expect_success(Duration::from_secs(20));
    assert_eq!(used.to_vec().unwrap(), [1, 2]);
    assert_eq!(unused.len().unwrap(), 0, "the child's drop of an unused copy did nothing");
    assert!(!lock.is_locked().unwrap());
    assert_eq!(m.num_objects().unwrap(), before);
    // A forked child that is killed right after using a proxy: its session is cleaned up.
    let u3 = used.clone();
    let child = fork(move || {
        u3.append(3).unwrap();
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    let t0 = std::time::Instant::now();
    while used.len().unwrap() < 3 {
        assert!(t0.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill();
    drop(child);
    assert_eq!(m.num_objects().unwrap(), before);
}
