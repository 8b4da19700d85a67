//! `imap` / `imap_unordered` read their input a bounded distance ahead, and a panic of the
//! input iterator surfaces at its own position (PO13, PO15), under every start method.

mod common;

use common::{each_method, pool, METHODS};
use multiproc_pool::Pool;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn sqr(x: i64) -> i64 {
    x * x
}

/// `0..len` whose item `at` panics with "input broke at {at}".
fn breaking(at: i64, len: i64) -> impl Iterator<Item = i64> {
    (0..len).map(move |x| if x == at { panic!("input broke at {x}") } else { x })
}

/// The message of a caught panic.
fn message(p: Box<dyn std::any::Any + Send>) -> String {
    match p.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p.downcast_ref::<&str>().map(|s| s.to_string()).unwrap_or_default(),
    }
}

/// Takes `imap`'s results in order until its `next()` panics; the results and the panic's
/// message. After the panic the iterator is finished.
fn until_panic(p: &Pool, chunksize: usize, at: i64, ordered: bool) -> (Vec<i64>, String) {
    let job = p.job().chunksize(chunksize);
    let mut it = if ordered {
        job.imap(sqr, breaking(at, 20)).unwrap()
    } else {
        job.imap_unordered(sqr, breaking(at, 20)).unwrap()
    };
    let mut got = Vec::new();
    loop {
        match catch_unwind(AssertUnwindSafe(|| it.next())) {
            Ok(Some(r)) => got.push(r.unwrap()),
            Ok(None) => panic!("the input's panic was lost; got {got:?}"),
            Err(p) => {
                assert!(it.next().is_none(), "the iterator ends after the input's panic");
                return (got, message(p));
            }
        }
    }
}

#[test]
fn input_panic_surfaces_at_its_position() {
    each_method(90, METHODS, |m| {
        let p = pool(2, m);
        for _ in 0..2 {
            // At the first item: the first `next` panics.
            let (got, msg) = until_panic(&p, 1, 0, true);
            assert!(got.is_empty(), "{m:?}: {got:?}");
            assert_eq!(msg, "input broke at 0");
            // At item 3, chunk size 1: 0, 1, 4, then the panic.
            let (got, msg) = until_panic(&p, 1, 3, true);
            assert_eq!(got, vec![0, 1, 4], "{m:?}");
            assert_eq!(msg, "input broke at 3");
            // At item 7 with chunks of 2 and of 4: every item read before it ran, in order.
            for cs in [2, 4] {
                let (got, _) = until_panic(&p, cs, 7, true);
                assert_eq!(got, (0..7).map(sqr).collect::<Vec<_>>(), "{m:?} chunksize {cs}");
            }
            // Unordered: each value before the panic once, then the panic.
            let (mut got, msg) = until_panic(&p, 1, 5, false);
            got.sort();
            assert_eq!(got, (0..5).map(sqr).collect::<Vec<_>>(), "{m:?}");
            assert_eq!(msg, "input broke at 5");
            // The pool is still usable.
            assert_eq!(p.map(sqr, 0..5).unwrap(), vec![0, 1, 4, 9, 16]);
        }
    });
}

/// An endless input counting what was read from it.
fn counted() -> (Arc<AtomicUsize>, impl Iterator<Item = i64>) {
    let pulled = Arc::new(AtomicUsize::new(0));
    let c = pulled.clone();
    (
        pulled,
        (0i64..).inspect(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        }),
    )
}

#[test]
fn endless_input_reads_a_bounded_window() {
    each_method(90, METHODS, |m| {
        let workers = 2;
        let p = pool(workers, m);
        for (chunksize, ordered) in [(1, true), (3, true), (1, false)] {
            let (pulled, input) = counted();
            let t = Instant::now();
            let job = p.job().chunksize(chunksize);
            let it = if ordered {
                job.imap(sqr, input).unwrap()
            } else {
                job.imap_unordered(sqr, input).unwrap()
            };
            let mut v: Vec<i64> = it.take(1000).map(|r| r.unwrap()).collect();
            // Dropped here: abandons what was read ahead.
            let read = pulled.load(Ordering::SeqCst);
            assert!(t.elapsed() < Duration::from_secs(20), "{m:?}: took {:?}", t.elapsed());
            if ordered {
                assert_eq!(v, (0..1000).map(sqr).collect::<Vec<_>>(), "{m:?}");
            } else {
                // 1000 distinct results, each of an item that was read.
                v.sort();
                v.dedup();
                assert_eq!(v.len(), 1000, "{m:?}");
                assert!(v.iter().all(|&x| (0..read as i64).any(|i| sqr(i) == x)), "{m:?}");
            }
            // Read ahead: for tasks this short, at most 64 tasks per worker beyond what was
            // consumed (the window grows with the pool's queue depth, see below).
            let ahead = read - 1000;
            let bound = 64 * workers * chunksize + chunksize;
            assert!(ahead <= bound, "{m:?} chunksize {chunksize}: read {ahead} ahead");
            // Before anything is consumed, the first `next` reads only its window too.
            let (pulled, input) = counted();
            let mut it = p.job().chunksize(chunksize).imap(sqr, input).unwrap();
            assert_eq!(it.next().unwrap().unwrap(), 0);
            drop(it);
            assert!(pulled.load(Ordering::SeqCst) <= bound + 1, "{m:?}");
            assert_eq!(p.map(sqr, 0..4).unwrap(), vec![0, 1, 4, 9], "{m:?}: pool usable");
        }
    });
}

fn slow_sqr(x: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(5));
    x * x
}

#[test]
fn long_tasks_read_only_a_few_items_ahead() {
    each_method(90, METHODS, |m| {
        let workers = 2;
        let p = pool(workers, m);
        for chunksize in [1, 2] {
            let (pulled, input) = counted();
            let it = p.job().chunksize(chunksize).imap(slow_sqr, input).unwrap();
            let v: Vec<i64> = it.take(12).map(|r| r.unwrap()).collect();
            assert_eq!(v, (0..12).map(sqr).collect::<Vec<_>>());
            // Tasks of 5 ms: 4 tasks per worker ahead (the minimum window).
            let ahead = pulled.load(Ordering::SeqCst) - 12;
            assert!(ahead <= 4 * workers * chunksize, "{m:?} chunksize {chunksize}: {ahead}");
        }
    });
}

#[test]
fn slow_endless_input_yields_results_as_it_goes() {
    each_method(90, METHODS, |m| {
        let p = pool(2, m);
        let slow = (0i64..).inspect(|_| std::thread::sleep(Duration::from_millis(20)));
        let t = Instant::now();
        let v: Vec<i64> = p.imap(sqr, slow).unwrap().take(5).map(|r| r.unwrap()).collect();
        assert_eq!(v, vec![0, 1, 4, 9, 16]);
        // A window of reads (a few tasks per worker) costs well under a second; reading 512
        // per worker ahead would take over 20 s.
        assert!(t.elapsed() < Duration::from_secs(5), "{m:?}: took {:?}", t.elapsed());
    });
}
