//! `ProcessPoolExecutor` parity with CPython's: `map` with a chunk size (PP03, PP04, PP16),
//! workers started on demand and idle ones reused (PP18, PP19, PP20, PP42), and `map`'s
//! error at its own position (PP04), under every start method.

mod common;

use common::{each_method, METHODS};
use multiproc_pool::{ErrorKind, Executor, ProcessPoolExecutor, ThreadPoolExecutor};

fn pow((x, y): (u64, u32)) -> u64 {
    x.pow(y % 4)
}

fn div((a, b): (i64, i64)) -> i64 {
    a / b
}

fn want() -> Vec<u64> {
    (0..40u64).map(|x| x.pow((x as u32) % 4)).collect()
}

fn pairs() -> impl Iterator<Item = (u64, u32)> {
    (0..40u64).map(|x| (x, x as u32))
}

#[test]
fn map_chunked_keeps_order_and_batches() {
    each_method(90, METHODS, |m| {
        // PP16: chunk sizes 6, 50 and 40 give the same results; 0 is refused.
        for cs in [1, 6, 40, 50] {
            let ex = ProcessPoolExecutor::with_start_method(2, m).unwrap();
            let v: Vec<u64> =
                ex.map_chunked(pow, pairs(), cs).unwrap().map(|r| r.unwrap()).collect();
            assert_eq!(v, want(), "{m:?} chunksize {cs}");
            // The items went in ceil(40 / cs) tasks.
            let ins = ex.pool().insights();
            assert_eq!(ins.iter().map(|w| w.items).sum::<u64>(), 40, "{m:?}");
            assert_eq!(ins.iter().map(|w| w.tasks).sum::<u64>(), 40_u64.div_ceil(cs as u64));
        }
        let ex = ProcessPoolExecutor::with_start_method(2, m).unwrap();
        let e = ex.map_chunked(pow, pairs(), 0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        // PP04 with chunks: the zero divisor's error comes at its own position; the items
        // around it, in its chunk too, are fine.
        let items = vec![(6, 3), (8, 2), (1, 0), (9, 3), (10, 5)];
        let out: Vec<_> = ex.map_chunked(div, items, 3).unwrap().collect();
        assert_eq!(*out[0].as_ref().unwrap(), 2);
        assert_eq!(*out[1].as_ref().unwrap(), 4);
        assert_eq!(out[2].as_ref().unwrap_err().kind(), ErrorKind::Panicked, "{m:?}");
        assert_eq!(*out[3].as_ref().unwrap(), 3);
        assert_eq!(*out[4].as_ref().unwrap(), 2);
        // Dropping the iterator early cancels what has not started (PP07), and the
        // executor goes on.
        let mut it = ex.map_chunked(pow, pairs(), 4).unwrap();
        assert_eq!(it.next().unwrap().unwrap(), 1);
        drop(it);
        assert_eq!(ex.submit(pow, (3, 2)).unwrap().result().unwrap(), 9);
    });
}

#[test]
fn thread_executor_map_chunked() {
    common::bounded(30, || {
        let ex = ThreadPoolExecutor::new(3).unwrap();
        let v: Vec<u64> = ex.map_chunked(pow, pairs(), 7).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(v, want());
        assert_eq!(ex.map_chunked(pow, pairs(), 0).unwrap_err().kind(), ErrorKind::InvalidArgument);
    });
}
