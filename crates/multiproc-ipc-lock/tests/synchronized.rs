//! `SyncValue` / `SyncArray` (Python's synchronised `Value` / `Array`, checklist VA03, VA07,
//! VA09) with real processes.
#![cfg(not(multiproc_loom))]

mod common;

use common::*;
use multiproc_arena::{transfer, AtomicCell, Value};
use multiproc_ipc_lock::{Lock, RLock, SyncArray, SyncValue};
use std::sync::atomic::Ordering;
use std::sync::TryLockError;
use std::time::Duration;

#[test]
fn four_children_add_1000_each_under_the_lock() {
    let _s = serial();
    let v = SyncValue::new(0.0f64).unwrap();
    let ready = flag();
    let children: Vec<Child> = (0..4)
        .map(|_| {
            let (v, ready) = (v.clone(), ready.clone());
            fork(move || {
                // All four start together, and each read-modify-write takes a while, so
                // without the lock updates would be lost.
                ready.fetch_add(1, Ordering::SeqCst);
                until_at_least(&ready, 4, "the other children");
                for _ in 0..1000 {
                    let mut g = v.lock().unwrap();
                    let x = *g;
                    for _ in 0..200 {
                        std::hint::spin_loop();
                    }
                    *g = x + 1.0;
                }
                0
            })
        })
        .collect();
    for c in children {
        c.expect_success(T);
    }
    assert_eq!(v.get(), 4000.0);
    assert!(!v.get_lock().locked());
}

#[test]
fn a_lock_shared_by_a_value_and_an_array() {
    let _s = serial();
    // With an RLock (Python's default), one thread may hold both guards at once.
    let rl = RLock::new().unwrap();
    let v = SyncValue::with_lock(0i64, rl.clone()).unwrap();
    let a = SyncArray::with_lock(&[0i64; 3], rl.clone()).unwrap();
    assert!(v.get_lock().same(&rl) && a.get_lock().same(v.get_lock()));
    let ready = flag();
    let children: Vec<Child> = (0..2)
        .map(|_| {
            let (v, a, ready) = (v.clone(), a.clone(), ready.clone());
            fork(move || {
                ready.fetch_add(1, Ordering::SeqCst);
                until_at_least(&ready, 2, "the other child");
                for _ in 0..500 {
                    let mut gv = v.lock().unwrap();
                    let mut ga = a.lock().unwrap();
                    *gv += 1;
                    ga[0] += 1;
                    ga[1] = *gv;
                }
                0
            })
        })
        .collect();
    for c in children {
        c.expect_success(T);
    }
    assert_eq!((v.get(), a.to_vec()), (1000, vec![1000, 1000, 0]));

    // With a plain Lock: a child holding the value's guard keeps the array locked too.
    let l = Lock::new().unwrap();
    let v = SyncValue::with_lock(1.5f32, l.clone()).unwrap();
    let a = SyncArray::with_lock(&[1u8, 2], l.clone()).unwrap();
    let (held, go) = (flag(), flag());
    let (v2, h2, g2) = (v.clone(), held.clone(), go.clone());
    let child = fork(move || {
        let mut g = v2.lock().unwrap();
        *g = 2.5;
        h2.store(1, Ordering::SeqCst);
        until(10, "the parent's go", || g2.load(Ordering::SeqCst) == 1);
        0
    });
    until_at_least(&held, 1, "the child holding the value's guard");
    assert!(matches!(a.try_lock_for(Duration::from_millis(50)), Err(TryLockError::WouldBlock)));
    assert!(l.locked());
    go.store(1, Ordering::SeqCst);
    child.expect_success(T);
    let mut g = a.try_lock_for(T).unwrap();
    g[1] = 9;
    drop(g);
    assert_eq!((v.get(), a.to_vec()), (2.5, vec![1, 9]));
}

#[test]
fn a_guard_that_only_read_writes_nothing_back() {
    let v = SyncValue::with_lock(1u32, Lock::new().unwrap()).unwrap();
    let a = SyncArray::new(&[1u16, 2]).unwrap();
    {
        let g = v.lock().unwrap();
        let ga = a.lock().unwrap();
        // Writers that bypass the lock (Python's get_obj()) are not overwritten by a guard
        // that did not change the value.
        v.get_obj().store(5);
        a.get_obj().store(0, 7);
        assert_eq!((*g, ga[0]), (1, 1));
    }
    assert_eq!((v.get(), a.get(0).unwrap()), (5, 7));
    let mut g = v.lock().unwrap();
    *g += 1;
    drop(g);
    assert_eq!(v.get(), 6);
}

#[test]
fn get_set_and_indices() {
    let a = SyncArray::<i32>::zeroed(3).unwrap();
    assert_eq!((a.len(), a.to_vec()), (3, vec![0, 0, 0]));
    a.set(2, -4).unwrap();
    assert_eq!(a.get(2).unwrap(), -4);
    assert!(a.get(3).is_err() && a.set(3, 1).is_err());
    // RLock (the default): get/set inside a held guard do not deadlock.
    let v = SyncValue::new(10u64).unwrap();
    let g = v.lock().unwrap();
    assert_eq!(v.get(), 10);
    drop(g);
    let raw = Value::new(AtomicCell::new(3i8)).unwrap();
    let w = SyncValue::from_raw(raw.clone(), Lock::new().unwrap());
    w.set(4);
    assert_eq!(raw.load(), 4);
    assert!(format!("{w:?}").contains('4'));
}

#[test]
fn handles_cross_a_transfer_with_their_lock() {
    let l = Lock::new().unwrap();
    let v = SyncValue::with_lock(0.25f64, l.clone()).unwrap();
    let a = SyncArray::with_lock(&[1i64, 2, 3], l.clone()).unwrap();
    assert!(postcard::to_allocvec(&v).is_err(), "only inside a transfer context");
    let msg = transfer::encode(&(v.clone(), a.clone())).unwrap();
    let (rv, ra): (SyncValue<f64, Lock>, SyncArray<i64, Lock>) =
        transfer::decode(&msg.bytes, msg.fds).unwrap();
    assert!(rv.get_lock().same(&l) && ra.get_lock().same(&l));
    rv.set(0.5);
    ra.set(0, 10).unwrap();
    assert_eq!((v.get(), a.to_vec()), (0.5, vec![10, 2, 3]));
    let _g = v.lock().unwrap();
    assert!(matches!(ra.try_lock_for(Duration::from_millis(10)), Err(TryLockError::WouldBlock)));
}
