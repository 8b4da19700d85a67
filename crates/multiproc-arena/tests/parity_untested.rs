//! Parity items that were "met (untested)" in `multiproc/src/parity.md`: a `#[repr(C)]`
//! struct value and a char array doubled by a child (VA08), and shared-memory names holding
//! `:` or a newline (SM23).
#![cfg(not(multiproc_loom))]

use multiproc_arena::testing::fork;
use multiproc_arena::{cleanup_orphans, Array, AtomicCell, SharedMemory, ShmSafe, Value};
use std::sync::atomic::{AtomicU8, Ordering::SeqCst};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// CPython's `class _Foo(Structure): _fields_ = [('x', c_int), ('y', c_double),
/// ('z', c_longlong)]`, with cells so that any process may write it.
#[repr(C)]
struct Foo {
    x: AtomicCell<i32>,
    y: AtomicCell<f64>,
    z: AtomicCell<i64>,
}

// SAFETY: repr(C); every field is an `AtomicCell` (ShmSafe): no pointers, no Drop, every bit
// pattern valid.
unsafe impl ShmSafe for Foo {}

/// CPython's `Array('c', 20)` with a `.value`: NUL-terminated bytes.
fn set_value(a: &Array<AtomicU8>, v: &[u8]) {
    for (i, cell) in a.iter().enumerate() {
        cell.store(v.get(i).copied().unwrap_or(0), SeqCst);
    }
}

fn value(a: &Array<AtomicU8>) -> Vec<u8> {
    a.iter().map(|c| c.load(SeqCst)).take_while(|&b| b != 0).collect()
}

// VA08: `Value('i', 7)`, `Value(double, 1/3)`, `Value(longlong, 2**33)`, a struct value of
// (3, 2), `Array('d', range(10))` and `Array('c', 20)` holding b'hello': a child doubles
// them all, and the parent sees 14, 2/3, 2**34, x=6 / y=4.0, arr[i] = 2i and b'hellohello'.
#[test]
fn struct_values_and_char_arrays_doubled_by_a_child() {
    let x = Value::new(AtomicCell::new(7i32)).unwrap();
    let y = Value::new(AtomicCell::new(1.0f64 / 3.0)).unwrap();
    let z = Value::new(AtomicCell::new(1i64 << 33)).unwrap();
    let foo =
        Value::new(Foo { x: AtomicCell::new(3), y: AtomicCell::new(2.0), z: AtomicCell::new(0) })
            .unwrap();
    let arr = Array::<AtomicCell<f64>>::from_fn(10, |i| AtomicCell::new(i as f64)).unwrap();
    let string = Array::from_fn(20, |_| AtomicU8::new(0)).unwrap();
    set_value(&string, b"hello");
    let (x2, y2, z2, foo2, arr2, string2) =
        (x.clone(), y.clone(), z.clone(), foo.clone(), arr.clone(), string.clone());
    fork(move || {
        // CPython's `_double`.
        x2.update(|v| v * 2);
        y2.update(|v| v * 2.0);
        z2.update(|v| v * 2);
        foo2.x.update(|v| v * 2);
        foo2.y.update(|v| v * 2.0);
        for i in 0..arr2.len() {
            arr2[i].update(|v| v * 2.0);
        }
        let v = value(&string2);
        set_value(&string2, &[v.as_slice(), v.as_slice()].concat());
        0
    })
    .expect_success(T);
    assert_eq!(x.load(), 14);
    assert_eq!(y.load(), 2.0 / 3.0);
    assert_eq!(z.load(), 1i64 << 34);
    assert_eq!((foo.x.load(), foo.y.load(), foo.z.load()), (6, 4.0, 0));
    assert_eq!(arr.load_all(), (0..10).map(|i| 2.0 * i as f64).collect::<Vec<_>>());
    assert_eq!(value(&string), b"hellohello");
    assert_eq!(std::mem::size_of::<Foo>(), 24, "C layout: int, pad, double, long long");
}

fn exists(name: &str) -> bool {
    std::path::Path::new("/dev/shm").join(name).exists()
}

// SM23: names holding `:` or a newline can be created, written, opened by another process,
// closed and unlinked, and the orphan cleanup handles them too.
#[test]
fn shared_memory_names_with_colons_and_newlines() {
    let pid = std::process::id();
    for name in [
        format!("mp-sm23:colon:{pid}"),
        format!("mp-sm23-newline\n{pid}"),
        format!("mp-sm23:both\n:{pid}\n"),
    ] {
        let mut shm = SharedMemory::create_named(&name, 64).unwrap();
        assert_eq!(shm.name(), name);
        assert!(exists(&name), "{name:?}");
        shm.write(0, b"hello").unwrap();
        let n = name.clone();
        fork(move || {
            let other = SharedMemory::open(&n).unwrap();
            let mut buf = [0u8; 5];
            other.read(0, &mut buf).unwrap();
            assert_eq!(&buf, b"hello");
            other.write(5, b" world").unwrap();
            other.close();
            0
        })
        .expect_success(T);
        let mut buf = [0u8; 11];
        shm.read(0, &mut buf).unwrap();
        assert_eq!(&buf, b"hello world", "{name:?}");
        shm.unlink().unwrap();
        assert!(!exists(&name), "{name:?} unlinked");
        assert_eq!(shm.unlink().unwrap_err().kind(), multiproc_arena::ErrorKind::NotFound);
        shm.close();

        // A creator that dies without unlinking: the cleanup removes the name, no error.
        let n = name.clone();
        fork(move || {
            let s = SharedMemory::create_named(&n, 64).unwrap();
            s.write(0, b"orphan").unwrap();
            multiproc_arena::testing::exit_now(0)
        })
        .expect_success(T);
        assert!(exists(&name), "{name:?} left by its dead creator");
        cleanup_orphans().unwrap();
        assert!(!exists(&name), "{name:?} removed by the cleanup");
    }
}
