//! Barrier with real processes: the checklist's B behaviours (N = 5: four children and the
//! parent run the same function), and a party that dies.
#![cfg(not(multiproc_loom))]

mod common;

use common::*;
use multiproc_arena::sync::atomic::{AtomicU32, Ordering};
use multiproc_arena::{Array, Shared};
use multiproc_ipc_lock::{Barrier, ErrorKind, Lock};
use std::thread;
use std::time::{Duration, Instant};

const N: u32 = 5;
const MS: Duration = Duration::from_millis(1);

/// Runs `f` in N-1 children and the parent; asserts that every one returned 0.
fn parties(f: impl Fn() -> i32) {
    let kids = fork_n(N as usize - 1, &f);
    assert_eq!(f(), 0, "the parent party failed");
    for k in kids {
        k.expect_success(T);
    }
}

/// Passes `b` (waiting at most `T`); true in the one party chosen to act (the middle index).
fn chosen(b: &Barrier) -> bool {
    b.wait_timeout(T).unwrap() == (N / 2) as usize
}

fn broken(r: multiproc_ipc_lock::Result<usize>) -> bool {
    matches!(r, Err(e) if e.kind() == ErrorKind::BrokenBarrier)
}

#[test]
fn parties_zero_is_an_error() {
    assert_eq!(Barrier::new(0).unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert!(Barrier::new(multiproc_ipc_lock::BARRIER_MAX_PARTIES + 1).is_err());
}

#[test]
fn lockstep_b01_b02_and_indices_b03() {
    let _serial = serial();
    let b = Barrier::new(N).unwrap();
    assert_eq!(b.parties(), N);
    let passes = 10;
    let arrived = Array::from_fn(passes, |_| AtomicU32::new(0)).unwrap();
    let zeros = Array::from_fn(passes, |_| AtomicU32::new(0)).unwrap();
    let indices = Array::from_fn(passes, |_| AtomicU32::new(0)).unwrap();
    parties(|| {
        for k in 0..passes {
            arrived[k].fetch_add(1, Ordering::SeqCst);
            let i = b.wait_timeout(T).unwrap();
            if arrived[k].load(Ordering::SeqCst) != N {
                return 1; // someone got past before everyone arrived
            }
            if i == 0 {
                zeros[k].fetch_add(1, Ordering::SeqCst);
            }
            indices[k].fetch_or(1 << i, Ordering::SeqCst);
        }
        0
    });
    for k in 0..passes {
        assert_eq!(zeros[k].load(Ordering::SeqCst), 1, "exactly one index 0");
        assert_eq!(indices[k].load(Ordering::SeqCst), (1 << N) - 1, "indices 0..N");
    }
    assert_eq!(b.n_waiting(), 0);
    assert!(!b.is_broken());
}

#[test]
fn action_runs_once_per_pass_b04() {
    let count = Shared::new(AtomicU32::new(0)).unwrap();
    let c2 = count.clone();
    let b = Barrier::builder(N)
        .action(move || {
            c2.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    parties(|| {
        for pass in 1..=3 {
            b.wait_timeout(T).unwrap();
            // The action ran once for this trip, before anyone was released.
            if count.load(Ordering::SeqCst) != 2 * pass - 1 {
                return 1;
            }
            // Everyone reads the count before the next trip runs the action again.
            b.wait_timeout(T).unwrap();
        }
        0
    });
    assert_eq!(count.load(Ordering::SeqCst), 6);
}

#[test]
fn abort_b05() {
    let b = Barrier::new(N).unwrap();
    let passed_second = flag();
    parties(|| {
        if chosen(&b) {
            b.abort();
            return 0;
        }
        if !broken(b.wait_timeout(T)) {
            return 1;
        }
        if !b.is_broken() {
            return 2;
        }
        passed_second.fetch_add(0, Ordering::SeqCst);
        0
    });
    assert!(b.is_broken());
    assert!(broken(b.wait_timeout(T)), "a broken barrier fails at once (B13)");
    b.reset();
    assert!(!b.is_broken());
    assert_eq!(b.n_waiting(), 0);
}

#[test]
fn reset_b06() {
    let b = Barrier::new(N).unwrap();
    parties(|| {
        if chosen(&b) {
            until(10, "N-1 waiting", || b.n_waiting() == N - 1);
            b.reset();
        } else if !broken(b.wait_timeout(T)) {
            return 1;
        }
        // After the reset everyone passes again normally.
        b.wait_timeout(T).map(|_| 0).unwrap_or(2)
    });
    assert!(!b.is_broken());
}

#[test]
fn abort_and_reset_b07() {
    let b = Barrier::new(N).unwrap();
    let b2 = Barrier::new(N).unwrap();
    parties(|| {
        if chosen(&b) {
            b.abort();
        } else if !broken(b.wait_timeout(T)) {
            return 1;
        }
        // Synchronise on a second barrier, then one party repairs the first.
        if chosen(&b2) {
            b.reset();
        }
        b2.wait_timeout(T).unwrap();
        b.wait_timeout(T).map(|_| 0).unwrap_or(2)
    });
}

/// One party comes to `b` 300 ms late while `wait` gives up after 100 ms: the barrier
/// breaks, for every party.
fn a_late_party_breaks_it(
    b: &Barrier,
    wait: impl Fn(&Barrier) -> multiproc_ipc_lock::Result<usize>,
) {
    let b0 = Barrier::new(N).unwrap();
    parties(|| {
        if chosen(&b0) {
            thread::sleep(300 * MS);
        }
        (!broken(wait(b))) as i32
    });
    assert!(b.is_broken());
}

#[test]
fn timeout_breaks_for_everyone_b08() {
    a_late_party_breaks_it(&Barrier::new(N).unwrap(), |b| b.wait_timeout(100 * MS));
}

#[test]
fn default_timeout_b09() {
    let b = Barrier::builder(N).timeout(100 * MS).build().unwrap();
    assert_eq!(b.timeout(), Some(100 * MS));
    a_late_party_breaks_it(&b, Barrier::wait);
}

#[test]
fn single_party_b10() {
    let b = Barrier::new(1).unwrap();
    assert_eq!(b.wait().unwrap(), 0);
    assert_eq!(b.wait().unwrap(), 0);
}

#[test]
fn thousand_passes_in_order_b11() {
    let _serial = serial();
    let passes = 1000;
    let b = Barrier::new(N).unwrap();
    let lock = Lock::new().unwrap();
    let log = Array::from_fn(passes * N as usize, |_| AtomicU32::new(u32::MAX)).unwrap();
    let pos = Shared::new(AtomicU32::new(0)).unwrap();
    parties(|| {
        for i in 0..passes as u32 {
            b.wait_timeout(T).unwrap();
            let _g = lock.lock().unwrap();
            let p = pos.fetch_add(1, Ordering::SeqCst);
            log[p as usize].store(i, Ordering::SeqCst);
        }
        0
    });
    for (j, v) in log.iter().enumerate() {
        assert_eq!(v.load(Ordering::SeqCst), (j / N as usize) as u32, "entry {j}");
    }
}

#[test]
fn action_panic_breaks_the_barrier() {
    let b = Barrier::builder(2).action(|| panic!("action fails")).build().unwrap();
    let child = fork(|| {
        // The child's copy of the action panics if the child is last; either way both fail.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.wait_timeout(T)));
        match r {
            Err(_) => 0,
            Ok(r) => (!broken(r)) as i32,
        }
    });
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.wait_timeout(T)));
    assert!(r.is_err() || broken(r.unwrap()));
    child.expect_success(T);
    assert!(b.is_broken());
}

#[test]
fn a_waiting_party_that_dies_breaks_the_barrier() {
    let _serial = serial();
    let b = Barrier::new(3).unwrap();
    let mut victim = fork(|| {
        let _ = b.wait();
        park_forever()
    });
    until(10, "victim waits", || b.n_waiting() == 1);
    let survivor_result = flag();
    let mut survivor = fork(|| {
        let r = b.wait_timeout(T);
        survivor_result.store(if broken(r) { 1 } else { 2 }, Ordering::SeqCst);
        0
    });
    until(10, "survivor waits", || b.n_waiting() == 2);
    let t = Instant::now();
    victim.kill();
    until(10, "survivor learns", || survivor_result.load(Ordering::SeqCst) != 0);
    let dt = t.elapsed();
    assert_eq!(survivor_result.load(Ordering::SeqCst), 1);
    promptly(dt);
    assert_eq!(survivor.wait_timeout(T), Some(Exit::Code(0)));
    assert!(victim.wait_timeout(T).is_some());
    assert!(b.is_broken());
    b.reset();
    assert!(!b.is_broken());
}

#[test]
fn the_party_running_the_action_dies() {
    let _serial = serial();
    let running = Shared::new(AtomicU32::new(0)).unwrap();
    let r2 = running.clone();
    let b = Barrier::builder(2)
        .action(move || {
            r2.store(1, Ordering::SeqCst);
            park_forever()
        })
        .build()
        .unwrap();
    let waiter_result = flag();
    let mut waiter = fork(|| {
        let r = b.wait_timeout(T);
        waiter_result.store(if broken(r) { 1 } else { 2 }, Ordering::SeqCst);
        0
    });
    until(10, "waiter waits", || b.n_waiting() == 1);
    // We arrive last, so the action runs here, in a child that we then kill.
    let mut last = fork(|| {
        let _ = b.wait();
        0
    });
    until_at_least(&running, 1, "action runs");
    // A party of the next round waits too; it must learn of the death as well.
    let next_result = flag();
    let mut next = fork(|| {
        let r = b.wait_timeout(T);
        next_result.store(if broken(r) { 1 } else { 2 }, Ordering::SeqCst);
        0
    });
    std::thread::sleep(10 * MS);
    let t = Instant::now();
    last.kill();
    until(10, "waiter learns", || waiter_result.load(Ordering::SeqCst) != 0);
    promptly(t.elapsed());
    assert_eq!(waiter_result.load(Ordering::SeqCst), 1);
    until(10, "next learns", || next_result.load(Ordering::SeqCst) != 0);
    assert_eq!(next_result.load(Ordering::SeqCst), 1);
    for c in [&mut waiter, &mut next] {
        assert_eq!(c.wait_timeout(T), Some(Exit::Code(0)));
    }
    assert!(last.wait_timeout(T).is_some());
    assert!(b.is_broken());
}
