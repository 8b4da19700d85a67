//! Lock, RLock and Mutex with real processes: the checklist's L and RL behaviours, a stress
//! count, and kill -9 of the holder.
#![cfg(not(multiproc_loom))]

mod common;

use common::*;
use multiproc_arena::sync::atomic::Ordering;
use multiproc_ipc_lock::{ErrorKind, Lock, Mutex, RLock, RwLock};
use std::sync::TryLockError;
use std::time::{Duration, Instant};

#[test]
fn lock_basics_l01_l02() {
    let lock = Lock::new().unwrap();
    assert!(lock.acquire_with(true, None).unwrap());
    assert!(lock.locked());
    assert!(!lock.acquire_with(false, None).unwrap());
    lock.release().unwrap();
    assert!(!lock.locked());
    assert_eq!(lock.release().unwrap_err().kind(), ErrorKind::NotHeld);
    {
        let _g = lock.lock().unwrap();
        assert!(lock.locked());
        assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
    }
    assert!(!lock.locked());
    let t = Instant::now();
    let _g = lock.lock().unwrap();
    assert!(matches!(lock.try_lock_for(Duration::from_millis(100)), Err(TryLockError::WouldBlock)));
    assert!(t.elapsed() >= Duration::from_millis(100));
    assert!(!lock.acquire_with(true, Some(Duration::from_millis(50))).unwrap());
}

#[test]
fn lock_state_is_shared_l03_and_released_by_another_process_l05() {
    let lock = Lock::new().unwrap();
    let seen = flag();
    let child = fork(|| {
        assert!(lock.acquire_with(true, None).unwrap());
        seen.store(lock.locked() as u32 + 1, Ordering::SeqCst);
        0
    });
    child.expect_success(T);
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert!(lock.locked());
    assert!(lock.owner().is_some());
    // The child exited holding it: it is poisoned for an acquirer, but Python lets any
    // process release a Lock, and release does so.
    lock.release().unwrap();
    assert!(!lock.locked());
    assert_eq!(lock.release().unwrap_err().kind(), ErrorKind::NotHeld);
}

#[test]
fn lock_guard_does_not_release_a_lock_that_changed_hands() {
    let lock = Lock::new().unwrap();
    let g = lock.lock().unwrap();
    let step = flag();
    let mut child = fork(|| {
        lock.release().unwrap(); // Python lets any process release a Lock
        assert!(lock.acquire_with(true, Some(T)).unwrap());
        step.store(1, Ordering::SeqCst);
        park_forever()
    });
    until_at_least(&step, 1, "child re-acquired");
    drop(g); // our guard's hold ended with the child's release
    assert_eq!(lock.owner(), Some(child.pid()));
    child.kill();
    assert!(child.wait_timeout(T).is_some());
}

#[test]
fn rlock_basics_rl01_rl02_rl06() {
    let r = RLock::new().unwrap();
    for _ in 0..3 {
        assert!(r.acquire_with(true, None).unwrap());
        assert!(r.locked());
    }
    assert_eq!(r.count(), 3);
    r.release().unwrap();
    r.release().unwrap();
    assert!(r.locked());
    r.release().unwrap();
    assert!(!r.locked());
    assert_eq!(r.release().unwrap_err().kind(), ErrorKind::NotOwner);
    {
        let _a = r.lock().unwrap();
        let _b = r.lock().unwrap();
        assert_eq!(r.count(), 2);
        // Another thread neither owns nor may release it.
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(!r.is_owned());
                assert_eq!(r.release().unwrap_err().kind(), ErrorKind::NotOwner);
                assert!(!r.acquire_with(false, None).unwrap());
            });
        });
    }
    assert!(!r.locked());
}

#[test]
fn rlock_held_by_child_rl03_and_not_releasable_by_parent() {
    let r = RLock::new().unwrap();
    let go = flag();
    let mut child = fork(|| {
        let _g = r.lock().unwrap();
        let _h = r.lock().unwrap();
        go.store(1, Ordering::SeqCst);
        while go.load(Ordering::SeqCst) != 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
        0
    });
    until_at_least(&go, 1, "child holds the rlock");
    assert!(r.locked());
    assert_eq!(r.owner(), Some(child.pid()));
    assert_eq!(r.release().unwrap_err().kind(), ErrorKind::NotOwner);
    assert!(!r.acquire_with(false, None).unwrap());
    go.store(2, Ordering::SeqCst);
    assert_eq!(child.wait_timeout(T), Some(Exit::Code(0)));
    assert!(!r.locked());
    assert!(r.acquire_with(false, None).unwrap());
    r.release().unwrap();
}

#[test]
fn mutex_stress_4_processes_100k_increments() {
    let _serial = serial();
    let m = Mutex::new(0u64).unwrap();
    let kids = fork_n(4, || {
        for _ in 0..100_000 {
            *m.lock().unwrap() += 1;
        }
        0
    });
    for k in kids {
        k.expect_success(Duration::from_secs(30));
    }
    assert_eq!(*m.lock().unwrap(), 400_000);
}

#[test]
fn mutex_panic_poisons_like_std() {
    let m = Mutex::new(1u32).unwrap();
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            let _g = m.lock().unwrap();
            panic!("boom");
        })
        .join()
    });
    assert!(r.is_err());
    assert!(m.is_poisoned());
    let g = m.lock().unwrap_err().into_inner();
    assert_eq!(*g, 1);
    drop(g);
    m.clear_poison();
    assert_eq!(*m.lock().unwrap(), 1);
}

/// Forks a child that takes the lock with `hold` and parks; returns it once it holds.
fn killed_holder(hold: impl FnOnce()) -> Child {
    let ready = flag();
    let child = fork(|| {
        hold();
        ready.store(1, Ordering::SeqCst);
        park_forever()
    });
    until_at_least(&ready, 1, "child holds the lock");
    child
}

/// Kills `child`, runs `acquire` (which must see the poison) and checks it was prompt (see `promptly`).
fn assert_poison_promptly(mut child: Child, acquire: impl FnOnce() -> bool) {
    let t0 = Instant::now();
    child.kill();
    let poisoned = acquire();
    let dt = t0.elapsed();
    assert!(poisoned, "the next acquirer must see the poison");
    promptly(dt);
    assert!(matches!(child.wait_timeout(T), Some(Exit::Signal(libc::SIGKILL))));
}

#[test]
fn lock_holder_killed() {
    let _serial = serial();
    let lock = Lock::new().unwrap();
    let child = killed_holder(|| std::mem::forget(lock.lock().unwrap()));
    assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
    assert_poison_promptly(child, || {
        let e = lock.try_lock_for(T).unwrap_err();
        matches!(e, TryLockError::Poisoned(_))
    });
    assert!(lock.is_poisoned() && !lock.locked());
    lock.clear_poison();
    assert!(!lock.is_poisoned());
    drop(lock.lock().unwrap());
    assert!(lock.acquire_with(false, None).unwrap());
    lock.release().unwrap();
}

#[test]
fn lock_holder_killed_while_another_process_waits() {
    let _serial = serial();
    let lock = Lock::new().unwrap();
    let child = killed_holder(|| std::mem::forget(lock.lock().unwrap()));
    let waiting = flag();
    let result = flag();
    let mut waiter = fork(|| {
        waiting.store(1, Ordering::SeqCst);
        let r = lock.lock();
        result.store(if r.is_err() { 1 } else { 2 }, Ordering::SeqCst);
        0
    });
    until_at_least(&waiting, 1, "waiter started");
    std::thread::sleep(Duration::from_millis(30)); // let it sleep on the futex
    let t0 = Instant::now();
    let mut child = child;
    child.kill();
    until(5, "waiter acquires", || result.load(Ordering::SeqCst) != 0);
    let dt = t0.elapsed();
    assert_eq!(result.load(Ordering::SeqCst), 1, "waiter saw the poison");
    promptly(dt);
    assert_eq!(waiter.wait_timeout(T), Some(Exit::Code(0)));
    let _ = child.wait_timeout(T);
    lock.clear_poison();
    drop(lock.lock().unwrap());
}

#[test]
fn rlock_holder_killed() {
    let _serial = serial();
    let r = RLock::new().unwrap();
    let child = killed_holder(|| {
        std::mem::forget(r.lock().unwrap());
        std::mem::forget(r.lock().unwrap());
    });
    assert_poison_promptly(child, || r.acquire_with(true, Some(T)).is_err_and(|e| *e.get_ref()));
    // We own it now, once (the dead holder's depth is gone).
    assert!(r.is_owned());
    assert_eq!(r.count(), 1);
    r.release().unwrap();
    assert!(!r.locked());
    r.clear_poison();
    assert!(r.acquire_with(true, None).unwrap());
    r.release().unwrap();
}

#[test]
fn mutex_holder_killed() {
    let _serial = serial();
    let m = Mutex::new(5u64).unwrap();
    let child = killed_holder(|| {
        let mut g = m.lock().unwrap();
        *g = 6;
        std::mem::forget(g);
    });
    assert_poison_promptly(child, || {
        let g = m.lock().unwrap_err().into_inner();
        *g == 6
    });
    assert!(m.is_poisoned());
    m.clear_poison();
    *m.lock().unwrap() += 1;
    assert_eq!(*m.lock().unwrap(), 7);
}

#[test]
fn rwlock_readers_share_writers_exclude() {
    let rw = RwLock::new([0u64; 2]).unwrap();
    let readers_in = flag();
    let release = flag();
    let kids = fork_n(2, || {
        let g = rw.read().unwrap();
        readers_in.fetch_add(1, Ordering::SeqCst);
        while release.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        (g[0] != 0) as i32
    });
    until_at_least(&readers_in, 2, "two processes read at once");
    assert!(rw.try_read().is_ok(), "a third reader joins");
    assert!(matches!(rw.try_write(), Err(TryLockError::WouldBlock)));
    assert!(matches!(rw.try_write_for(Duration::from_millis(30)), Err(TryLockError::WouldBlock)));
    release.store(1, Ordering::SeqCst);
    for k in kids {
        k.expect_success(T);
    }
    let mut w = rw.try_write_for(T).unwrap();
    w[0] = 1;
    assert!(matches!(rw.try_read(), Err(TryLockError::WouldBlock)));
    drop(w);
    assert_eq!(rw.read().unwrap()[0], 1);
}

#[test]
fn rwlock_stress_readers_never_see_a_torn_write() {
    let _serial = serial();
    let rw = RwLock::new([0u64; 2]).unwrap();
    let writers = fork_n(2, || {
        for _ in 0..20_000 {
            let mut g = rw.write().unwrap();
            g[0] += 1;
            g[1] += 1;
        }
        0
    });
    let readers = fork_n(2, || {
        for _ in 0..20_000 {
            let g = rw.read().unwrap();
            if g[0] != g[1] {
                return 1;
            }
        }
        0
    });
    for k in writers.into_iter().chain(readers) {
        k.expect_success(Duration::from_secs(30));
    }
    assert_eq!(*rw.read().unwrap(), [40_000, 40_000]);
}

#[test]
fn rwlock_writer_killed() {
    let _serial = serial();
    let rw = RwLock::new(1u32).unwrap();
    let child = killed_holder(|| {
        let mut g = rw.write().unwrap();
        *g = 2;
        std::mem::forget(g);
    });
    assert_eq!(rw.writer(), Some(child.pid()));
    assert_poison_promptly(child, || {
        let g = rw.try_read_for(T).unwrap_err();
        matches!(g, TryLockError::Poisoned(ref e) if **e.get_ref() == 2)
    });
    assert!(rw.is_poisoned());
    assert!(rw.write().is_err());
    rw.clear_poison();
    *rw.write().unwrap() += 1;
    assert_eq!(*rw.read().unwrap(), 3);
}

#[test]
fn rwlock_writer_killed_next_writer_sees_poison() {
    let _serial = serial();
    let rw = RwLock::new(1u32).unwrap();
    let child = killed_holder(|| std::mem::forget(rw.write().unwrap()));
    assert_poison_promptly(child, || matches!(rw.try_write_for(T), Err(TryLockError::Poisoned(_))));
    rw.clear_poison();
    assert!(rw.try_write().is_ok());
}

#[test]
fn rwlock_reader_killed_does_not_block_writers() {
    let _serial = serial();
    let rw = RwLock::new(1u32).unwrap();
    let child = killed_holder(|| {
        std::mem::forget(rw.read().unwrap());
        std::mem::forget(rw.read().unwrap());
    });
    assert!(matches!(rw.try_write(), Err(TryLockError::WouldBlock)));
    let mut child = child;
    let t0 = Instant::now();
    child.kill();
    let g = rw.try_write_for(T);
    let dt = t0.elapsed();
    assert!(g.is_ok(), "a dead reader does not poison");
    promptly(dt);
    drop(g);
    let _ = child.wait_timeout(T);
}

#[test]
fn guards_inherited_by_a_forked_child_release_nothing() {
    let r = RLock::new().unwrap();
    let rw = RwLock::new(0u32).unwrap();
    let m = Mutex::new(0u32).unwrap();
    let g = std::mem::ManuallyDrop::new(r.lock().unwrap());
    let rg = std::mem::ManuallyDrop::new(rw.read().unwrap());
    let mg = std::mem::ManuallyDrop::new(m.lock().unwrap());
    fork(move || {
        drop(std::mem::ManuallyDrop::into_inner(g));
        drop(std::mem::ManuallyDrop::into_inner(rg));
        drop(std::mem::ManuallyDrop::into_inner(mg));
        0
    })
    .expect_success(T);
    assert!(r.is_owned() && r.count() == 1, "still ours, once");
    assert!(matches!(rw.try_write(), Err(TryLockError::WouldBlock)), "still read-locked");
    assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)), "still locked");
    r.release().unwrap();
    assert!(!r.locked());
}

#[test]
fn debug_shows_the_owner_l04_rl04() {
    let lock = Lock::new().unwrap();
    assert!(format!("{lock:?}").contains("owner: None"));
    let g = lock.lock().unwrap();
    let me = std::process::id();
    assert!(format!("{lock:?}").contains(&format!("owner: Some({me})")), "{lock:?}");
    drop(g);
    let r = RLock::new().unwrap();
    let _a = r.lock().unwrap();
    let _b = r.lock().unwrap();
    let d = format!("{r:?}");
    assert!(d.contains(&format!("owner: Some({me})")) && d.contains("count: 2"), "{d}");
    let m = Mutex::new(5u8).unwrap();
    assert!(format!("{m:?}").contains("data: 5"));
    let _g = m.lock().unwrap();
    assert!(format!("{m:?}").contains("<locked>"));
    let rw = RwLock::new(6u8).unwrap();
    assert!(format!("{rw:?}").contains("data: 6"));
}
