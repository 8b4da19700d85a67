//! The one shape of a bounded or non-blocking join (#18): `join_timeout` fails with an error
//! whose `is_timeout()` is true, `try_join` with one whose `is_would_block()` is true, and
//! neither takes anything — the handle is joined again for the child's real result. The
//! same for waiting on the parent (`ParentProcess::join_timeout`).
#![cfg(not(multiproc_loom))]

mod util;

use multiproc_arena::api::OpError;
use multiproc_arena::Array;
use multiproc_spawn::*;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};
use util::*;

/// Sets `f[0]`, waits (at most [`LONG`]) for `f[1]`, returns 42.
fn gated(f: Array<AtomicU64>) -> u64 {
    f[0].store(1, SeqCst);
    wait_flag(&f, 1, LONG);
    42
}

fn start_gated(m: StartMethod) -> (JoinHandle<u64>, Array<AtomicU64>) {
    let f = flags(2);
    let h = Process::builder().start_method(m).target(gated, f.clone()).start().unwrap();
    wait_flag(&f, 0, LONG);
    (h, f)
}

/// The three questions, asked through the trait (as generic code would).
fn classes<E: OpError>(e: &E) -> (bool, bool, bool) {
    (e.is_timeout(), e.is_would_block(), e.is_disconnected())
}

// A join that times out takes nothing: the same handle is joined afterwards (with
// `join_timeout`) for the child's result.
per_method!(
    fn join_timeout_times_out_then_joins_again(m) {
        let (mut h, f) = start_gated(m);
        let t = Instant::now();
        let e = h.join_timeout(Duration::from_millis(100)).unwrap_err();
        let waited = t.elapsed();
        assert!(matches!(e, JoinError::Timeout), "{e:?}");
        assert!(e.is_timeout() && !e.is_would_block() && !e.is_disconnected());
        assert_eq!(classes(&e), (true, false, false));
        let dynamic: &dyn OpError = &e;
        assert!(dynamic.is_timeout());
        assert!(e.to_string().contains("still running"), "{e}");
        assert!(waited >= Duration::from_millis(90), "{waited:?}");
        assert!(h.is_alive());
        assert_eq!(h.exitcode(), None);
        // Again: still nothing taken.
        assert!(h.join_timeout(Duration::ZERO).unwrap_err().is_timeout());
        f[1].store(1, SeqCst);
        assert_eq!(h.join_timeout(LONG).unwrap(), 42);
        assert_eq!(h.exitcode(), Some(0));
        // Now the result was taken.
        let e = h.join_timeout(LONG).unwrap_err();
        assert!(matches!(e, JoinError::AlreadyJoined), "{e:?}");
        assert_eq!(classes(&e), (false, false, false));
    }
);

// After a timed-out join, the consuming `join` still returns the result.
per_method!(
    fn join_after_timeout(m) {
        let (mut h, f) = start_gated(m);
        assert!(h.join_timeout(Duration::from_millis(20)).unwrap_err().is_timeout());
        f[1].store(1, SeqCst);
        assert_eq!(h.join().unwrap(), 42);
    }
);

// `try_join` never waits: a would-block error while the child runs, then the result.
per_method!(
    fn try_join_would_block_then_result(m) {
        let (mut h, f) = start_gated(m);
        let t = Instant::now();
        let e = h.try_join().unwrap_err();
        assert!(t.elapsed() < Duration::from_millis(500), "{:?}", t.elapsed());
        assert!(matches!(e, JoinError::WouldBlock), "{e:?}");
        assert_eq!(classes(&e), (false, true, false));
        assert!(h.is_alive());
        f[1].store(1, SeqCst);
        let mut got = None;
        assert!(
            wait_until(LONG, || match h.try_join() {
                Err(e) if e.is_would_block() => false,
                r => {
                    got = Some(r);
                    true
                }
            }),
            "try_join still would-block after {LONG:?}"
        );
        assert_eq!(got.unwrap().unwrap(), 42);
        assert!(matches!(h.try_join(), Err(JoinError::AlreadyJoined)));
    }
);

// A failed child's error comes after a timed-out join just as without one.
per_method!(
    fn timed_out_join_then_signal(m) {
        let (mut h, _f) = start_gated(m);
        assert!(h.join_timeout(Duration::from_millis(20)).unwrap_err().is_timeout());
        h.kill().unwrap();
        let r = h.join_timeout(LONG);
        assert!(matches!(r, Err(JoinError::Signaled(Signal::KILL))), "{r:?}");
        assert_eq!(classes(&r.unwrap_err()), (false, false, false));
    }
);

/// In the child: the parent is alive (it waits for this child), so a bounded wait for it
/// times out. `(is_timeout, kind is Timeout, through OpError, waited ≥ 40 ms, io kind)`.
fn wait_for_parent(_: ()) -> (bool, bool, bool, bool, String) {
    let p = parent_process().expect("has a parent");
    let t = Instant::now();
    let e = p.join_timeout(Duration::from_millis(50)).unwrap_err();
    let waited = t.elapsed() >= Duration::from_millis(40);
    let io = format!("{:?}", std::io::Error::from(e.clone()).kind());
    (
        e.is_timeout(),
        e.kind() == ErrorKind::Timeout,
        classes(&e) == (true, false, false),
        waited,
        io,
    )
}

per_method!(
    fn parent_join_timeout_times_out(m) {
        let mut h = Process::builder().start_method(m).target(wait_for_parent, ()).start().unwrap();
        let got = h.join_timeout(LONG).unwrap();
        assert_eq!(got, (true, true, true, true, "TimedOut".to_string()));
    }
);

#[test]
fn spawn_error_classes() {
    let e = Error::from(ErrorKind::Timeout);
    assert_eq!(classes(&e), (true, false, false));
    assert_eq!(std::io::Error::from(e).kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(classes(&Error::from(ErrorKind::Forkserver)), (false, false, false));
}

fn greet(name: String, times: u32) -> String {
    name.repeat(times as usize)
}

fn sum3(a: u8, b: u16, c: u32) -> u64 {
    a as u64 + b as u64 + c as u64
}

/// `target_args`: functions of several arguments (Python's `args=(a, b)`) under every start
/// method; a closure that captures is refused at `start`.
#[test]
fn functions_of_several_arguments() {
    for m in multiproc_spawn::StartMethod::all() {
        let mut h = Process::builder()
            .start_method(m)
            .target_args(greet, ("ab".to_string(), 3))
            .start()
            .unwrap_or_else(|e| panic!("{m}: {e}"));
        assert_eq!(
            h.join_timeout(Duration::from_secs(30)).unwrap_or_else(|e| panic!("{m}: {e}")),
            "ababab"
        );
        let mut h =
            Process::builder().start_method(m).target_args(sum3, (1, 2, 3)).start().unwrap();
        assert_eq!(h.join_timeout(Duration::from_secs(30)).unwrap(), 6, "{m}");
        let no_captures = |a: i32, b: i32| a * b;
        let mut h =
            Process::builder().start_method(m).target_args(no_captures, (6, 7)).start().unwrap();
        assert_eq!(h.join_timeout(Duration::from_secs(30)).unwrap(), 42, "{m}");
    }
    let k = 5;
    let e = Process::builder().target_args(move |a: i32, b: i32| a + b + k, (1, 2)).start();
    assert_eq!(e.unwrap_err().kind(), multiproc_spawn::ErrorKind::ClosureNeedsFork);
}
