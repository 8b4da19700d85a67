//! A plain function pointer (`fn(T) -> R`, chosen at run time) is a task under every start
//! method: it travels as a checked reference (`multiproc_spawn::FnRef::new`).

mod common;

use common::{builder, each_method, executor, pool, METHODS};
use multiproc_pool::{ErrorKind, Executor, StartMethod};

fn sqr(x: i64) -> i64 {
    x * x
}

fn neg(x: i64) -> i64 {
    -x
}

/// Kills its worker on 3.
fn die_on_3(x: i64) -> i64 {
    if x == 3 {
        std::process::abort();
    }
    x * 10
}

/// Not zero-sized: a value chosen at run time.
fn pick(name: &str) -> fn(i64) -> i64 {
    match name {
        "sqr" => sqr,
        "neg" => neg,
        _ => |x| x + 1,
    }
}

#[test]
fn fn_pointers_run_under_every_method() {
    each_method(90, METHODS, |m| {
        let p = pool(2, m);
        let (f, g, h) = (pick("sqr"), pick("neg"), pick("closure"));
        assert_eq!(std::mem::size_of_val(&f), std::mem::size_of::<usize>());
        assert_eq!(p.apply(f, 7).unwrap(), 49, "{m:?}");
        assert_eq!(p.map(g, 0..5).unwrap(), vec![0, -1, -2, -3, -4], "{m:?}");
        let v: Vec<i64> = p.imap(h, 0..3).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(v, vec![1, 2, 3], "{m:?}");
        assert_eq!(
            p.job().chunksize(3).map(f, 0..10).unwrap(),
            (0..10).map(sqr).collect::<Vec<_>>()
        );
        let ex = executor(2, m);
        assert_eq!(ex.submit(f, 9).unwrap().result().unwrap(), 81, "{m:?}");
        let v: Vec<i64> = ex.map(g, 0..4).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(v, vec![0, -1, -2, -3], "{m:?}");
    });
}

#[test]
fn fn_pointer_tasks_are_resent_after_a_death() {
    each_method(90, METHODS, |m| {
        let p = pool(1, m);
        let f: fn(i64) -> i64 = die_on_3;
        // One worker: the tasks queued behind item 3 go to its replacement (with the
        // pointer's reference in front of their payload again).
        let out: Vec<_> = p.job().chunksize(1).imap(f, 0..8).unwrap().collect();
        for (i, r) in out.iter().enumerate() {
            match i {
                3 => assert_eq!(r.as_ref().unwrap_err().kind(), ErrorKind::WorkerDied, "{m:?}"),
                _ => assert_eq!(*r.as_ref().unwrap(), i as i64 * 10, "{m:?} item {i}"),
            }
        }
    });
}

struct Offset(i64);

fn add_offset(s: &mut Offset, x: i64) -> i64 {
    s.0 + x
}

fn make_offset() -> Offset {
    Offset(100)
}

#[test]
fn stateful_fn_pointers_need_fork() {
    each_method(90, METHODS, |m| {
        let p = builder(1, m).worker_state(make_offset).build().unwrap();
        let f: fn(&mut Offset, i64) -> i64 = add_offset;
        match m {
            StartMethod::Fork => assert_eq!(p.apply(f, 1).unwrap(), 101),
            _ => {
                let e = p.apply(f, 1).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Unsupported, "{m:?}");
                assert!(e.to_string().contains("fn pointer that takes the worker state"), "{e}");
            }
        }
        // The function item itself runs everywhere, and a plain pointer on a stateful pool.
        assert_eq!(p.apply(add_offset, 2).unwrap(), 102);
        assert_eq!(p.apply(pick("neg"), 2).unwrap(), -2);
    });
}
