//! Python's `RawValue` / `RawArray` (checklist VA01, VA02, VA04–VA06, VA14): plain numbers in
//! an `AtomicCell` written by forked children, zero-filled constructors.
#![cfg(not(multiproc_loom))]

use multiproc_arena::testing::fork;
use multiproc_arena::{Array, AtomicCell, Shared, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

#[test]
fn values_written_by_a_child_are_seen_by_the_parent() {
    // VA01: typecodes i, d, h, q and c.
    let i = Value::new(AtomicCell::new(4343i32)).unwrap();
    let d = Value::new(AtomicCell::new(3.625f64)).unwrap();
    let h = Value::new(AtomicCell::new(-232i16)).unwrap();
    let q = Value::new(AtomicCell::new(1i64 << 33)).unwrap();
    let c = Value::new(AtomicCell::new(b'x')).unwrap();
    let (i2, d2, h2, q2, c2) = (i.clone(), d.clone(), h.clone(), q.clone(), c.clone());
    fork(move || {
        i2.store(24234);
        d2.store(-4.25);
        h2.store(234);
        q2.store(1 << 34);
        c2.store(b'y');
        0
    })
    .expect_success(T);
    assert_eq!(
        (i.load(), d.load(), h.load(), q.load(), c.load()),
        (24234, -4.25, 234, 1 << 34, b'y')
    );
    assert_eq!(d.swap(1.5), -4.25);
    assert_eq!(format!("{:?}", *d), "1.5");
}

#[test]
fn update_is_one_atomic_step_across_processes() {
    let v = Value::new(AtomicCell::new(0.0f64)).unwrap();
    let ready = Value::new(AtomicCell::new(0u32)).unwrap();
    let children: Vec<_> = (0..3)
        .map(|_| {
            let (v, ready) = (v.clone(), ready.clone());
            fork(move || {
                // Start together, so that the children's updates interleave.
                ready.update(|n| n + 1);
                let t0 = std::time::Instant::now();
                while ready.load() < 3 && t0.elapsed() < T {
                    std::thread::yield_now();
                }
                for _ in 0..20_000 {
                    v.update(|x| x + 1.0);
                }
                0
            })
        })
        .collect();
    for c in children {
        c.expect_success(T);
    }
    assert_eq!(v.load(), 60_000.0);
}

#[test]
fn zeroed_arrays_are_zero_every_time_and_writable_by_a_child() {
    // VA05: checked 3 times, each after freeing an array full of junk (dirty memory reused).
    for _ in 0..3 {
        drop(Array::new(10, -1i32).unwrap());
        let a = Array::<AtomicCell<i32>>::zeroed(10).unwrap();
        assert_eq!(a.load_all(), vec![0; 10]);
        let plain = Array::<i32>::zeroed(10).unwrap();
        assert_eq!(&plain[..], &[0; 10]);
        assert_eq!(*Shared::<u64>::zeroed().unwrap(), 0);
        assert_eq!(Value::<AtomicCell<f32>>::zeroed().unwrap().load(), 0.0);
    }
    // VA04: the child computes prefix sums in place.
    let vals = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    let a = Array::<AtomicCell<i32>>::zeroed(vals.len()).unwrap();
    for (k, v) in vals.iter().enumerate() {
        a.store(k, *v);
    }
    let child_a = a.clone();
    fork(move || {
        for k in 1..child_a.len() {
            child_a.store(k, child_a.load(k) + child_a.load(k - 1));
        }
        0
    })
    .expect_success(T);
    let want: Vec<i32> = vals
        .iter()
        .scan(0, |s, v| {
            *s += v;
            Some(*s)
        })
        .collect();
    assert_eq!(a.load_all(), want);
    assert_eq!(a[2].load(), 6);
}

#[test]
#[should_panic(expected = "index out of bounds")]
fn an_index_past_the_end_panics_like_a_slice() {
    // VA14: `Array('i', 3)[3]` raises IndexError.
    let a = Array::<AtomicCell<i32>>::zeroed(3).unwrap();
    a.store(3, 1);
}
