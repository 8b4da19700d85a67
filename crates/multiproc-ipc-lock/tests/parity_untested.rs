//! VA08 (and VA09, its synchronised form) with a plain `#[repr(C)]` struct and a char array
//! behind a process-shared `Mutex`: a child doubles them, the parent sees the doubled values.
#![cfg(not(multiproc_loom))]

use multiproc_arena::testing::fork;
use multiproc_arena::ShmSafe;
use multiproc_ipc_lock::Mutex;
use std::time::Duration;

/// CPython's `_Foo(Structure)`: `c_int x`, `c_double y`, `c_longlong z`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
struct Foo {
    x: i32,
    y: f64,
    z: i64,
}

// SAFETY: repr(C), plain numbers only: no pointers, no Drop, every bit pattern valid.
unsafe impl ShmSafe for Foo {}

fn c_value(a: &[u8; 20]) -> &[u8] {
    &a[..a.iter().position(|&b| b == 0).unwrap_or(20)]
}

#[test]
fn struct_and_char_array_behind_a_mutex_doubled_by_a_child() {
    let foo = Mutex::new(Foo { x: 3, y: 2.0, z: 1 << 33 }).unwrap();
    let mut hello = [0u8; 20];
    hello[..5].copy_from_slice(b"hello");
    let string = Mutex::new(hello).unwrap();
    // The child inherits the mapping: the same mutexes, by reference.
    fork(|| {
        let mut f = foo.lock().unwrap();
        f.x *= 2;
        f.y *= 2.0;
        f.z *= 2;
        drop(f);
        let mut s = string.lock().unwrap();
        let v = c_value(&s).to_vec();
        s[v.len()..2 * v.len()].copy_from_slice(&v);
        0
    })
    .expect_success(Duration::from_secs(20));
    assert_eq!(*foo.lock().unwrap(), Foo { x: 6, y: 4.0, z: 1 << 34 });
    assert_eq!(c_value(&string.lock().unwrap()), b"hellohello");
}
