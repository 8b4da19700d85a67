//! `map` with failing tasks or a failing input keeps CPython's semantics under every start
//! method: `map` waits for every task and raises the first error by position, not the
//! first to happen (PO09, PO22); the executor's `map` yields each outcome at its own
//! position and goes on (PP04).

mod common;

use common::{each_method, executor, pool, METHODS};
use multiproc_pool::{ErrorKind, Executor};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

/// Item 2 fails late (after 300 ms), item 5 at once, item 7 kills its worker.
fn fails(x: i64) -> i64 {
    match x {
        2 => {
            std::thread::sleep(Duration::from_millis(300));
            panic!("item two");
        }
        5 => panic!("item five"),
        7 => std::process::abort(),
        _ => x * 10,
    }
}

fn sqr(x: i64) -> i64 {
    x * x
}

#[test]
fn map_raises_the_first_error_by_position() {
    each_method(90, METHODS, |m| {
        let p = pool(3, m);
        for cs in [1, 2] {
            let e = p.job().chunksize(cs).map(fails, 0..10).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Panicked, "{m:?}");
            let msg = e.panic_message().unwrap();
            assert!(msg.starts_with("item two"), "{m:?} chunksize {cs}: {msg}");
            let e = p.job().chunksize(cs).map_async(fails, 0..10).unwrap().get().unwrap_err();
            assert!(e.panic_message().unwrap().starts_with("item two"), "{m:?}");
        }
        // Only the death: its error, naming it.
        let e = p.map(fails, [6, 7, 8]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WorkerDied, "{m:?}");
        // imap: each outcome at its position, and the rest go on.
        let out: Vec<_> = p.job().chunksize(1).imap(fails, 0..10).unwrap().collect();
        for (i, r) in out.iter().enumerate() {
            match i {
                2 | 5 => assert_eq!(r.as_ref().unwrap_err().kind(), ErrorKind::Panicked),
                7 => assert_eq!(r.as_ref().unwrap_err().kind(), ErrorKind::WorkerDied),
                _ => assert_eq!(*r.as_ref().unwrap(), i as i64 * 10, "{m:?} item {i}"),
            }
        }
        assert_eq!(p.map(sqr, 0..4).unwrap(), vec![0, 1, 4, 9]);
    });
}

#[test]
fn map_over_a_panicking_input_raises_that_panic() {
    each_method(90, METHODS, |m| {
        let p = pool(2, m);
        for at in [0, 3] {
            let input =
                (0..10i64).map(move |x| if x == at { panic!("input broke at {x}") } else { x });
            let r = catch_unwind(AssertUnwindSafe(|| p.map(sqr, input)));
            let payload = r.map(|_| ()).unwrap_err();
            let msg = payload.downcast_ref::<String>().cloned().unwrap_or_default();
            assert_eq!(msg, format!("input broke at {at}"), "{m:?}");
            assert_eq!(p.map(sqr, 0..4).unwrap(), vec![0, 1, 4, 9], "{m:?}: pool usable");
        }
    });
}

#[test]
fn executor_map_yields_each_error_at_its_position() {
    each_method(90, METHODS, |m| {
        let ex = executor(3, m);
        for cs in [1, 3] {
            let mut it = ex.map_chunked(fails, 0..10, cs).unwrap();
            assert_eq!(it.next().unwrap().unwrap(), 0);
            assert_eq!(it.next().unwrap().unwrap(), 10);
            assert_eq!(it.next().unwrap().unwrap_err().kind(), ErrorKind::Panicked);
            let rest: Vec<_> = it.collect();
            assert_eq!(rest.len(), 7, "{m:?}: the iterator goes on after an error");
            assert_eq!(*rest[0].as_ref().unwrap(), 30);
            assert!(rest[2]
                .as_ref()
                .unwrap_err()
                .panic_message()
                .unwrap()
                .starts_with("item five"));
            assert!(rest[4].as_ref().is_err(), "{m:?} chunksize {cs}: the worker died");
            assert_eq!(*rest[6].as_ref().unwrap(), 90);
        }
    });
}
