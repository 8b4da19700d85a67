//! Semaphore, BoundedSemaphore, Condition and Event with real processes: the checklist's
//! S, CV and E behaviours, and waiters that die.
#![cfg(not(multiproc_loom))]

mod common;

use common::*;
use multiproc_arena::sync::atomic::Ordering;
use multiproc_ipc_lock::{BoundedSemaphore, Condition, ErrorKind, Event, Lock, Mutex, Semaphore};
use std::thread;
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);

fn about(d: Duration, want: Duration) -> bool {
    d + 10 * MS >= want && d < want + Duration::from_secs(2)
}

// ---------------------------------------------------------------- Semaphore

#[test]
fn semaphore_s01() {
    let s = Semaphore::new(2).unwrap();
    assert_eq!(s.value(), 2);
    assert!(s.acquire_with(true, None));
    assert_eq!(s.value(), 1);
    assert!(s.acquire_with(true, None));
    assert_eq!(s.value(), 0);
    assert!(!s.acquire_with(false, None));
    assert_eq!(s.release().unwrap(), 1);
    assert_eq!(s.release().unwrap(), 2);
    assert_eq!(s.release().unwrap(), 3);
    assert_eq!(s.release().unwrap(), 4);
    assert_eq!(s.value(), 4);
    let p = s.permit();
    assert_eq!(s.value(), 3);
    drop(p);
    assert_eq!(s.value(), 4);
    assert_eq!(s.release_n(3).unwrap(), 7);
}

#[test]
fn bounded_semaphore_s02_s05() {
    let s = BoundedSemaphore::new(2).unwrap();
    assert!(s.acquire_with(true, None) && s.acquire_with(true, None));
    assert!(!s.acquire_with(false, None));
    assert_eq!(s.release().unwrap(), 1);
    assert_eq!(s.release().unwrap(), 2);
    assert_eq!(s.release().unwrap_err().kind(), ErrorKind::TooManyReleases);
    let one = BoundedSemaphore::new(1).unwrap();
    assert_eq!(one.release().unwrap_err().kind(), ErrorKind::TooManyReleases);
    assert_eq!(one.max_value(), 1);
}

#[test]
fn semaphore_timeout_s03() {
    let s = Semaphore::new(0).unwrap();
    let t = Instant::now();
    assert!(!s.acquire_with(false, None));
    assert!(!s.acquire_with(false, Some(100 * MS)));
    assert!(t.elapsed() < 50 * MS, "non-blocking ignores the timeout");
    let t = Instant::now();
    assert!(!s.acquire_with(true, Some(100 * MS)));
    assert!(about(t.elapsed(), 100 * MS));
    let t = Instant::now();
    assert!(s.acquire_timeout(100 * MS).unwrap_err().is_timeout());
    assert!(about(t.elapsed(), 100 * MS));
    assert!(s.permit_for(10 * MS).is_none() && s.try_permit().is_none());
}

#[test]
fn semaphore_child_acquires_parent_releases_s04() {
    let s = Semaphore::new(1).unwrap();
    let b = BoundedSemaphore::new(1).unwrap();
    fork(|| (!(s.acquire_with(true, None) && b.acquire_with(true, None))) as i32).expect_success(T);
    assert_eq!((s.value(), b.value()), (0, 0));
    s.release().unwrap();
    b.release().unwrap();
    assert_eq!((s.value(), b.value()), (1, 1));
}

#[test]
fn semaphore_wakes_a_blocked_process() {
    let s = Semaphore::new(0).unwrap();
    let got = flag();
    let mut kids = fork_n(3, || {
        if !s.acquire_with(true, Some(T)) {
            return 1;
        }
        got.fetch_add(1, Ordering::SeqCst);
        0
    });
    thread::sleep(30 * MS);
    assert_eq!(got.load(Ordering::SeqCst), 0);
    for i in 1..=3 {
        s.release().unwrap();
        until_at_least(&got, i, "a waiter takes the unit");
    }
    for k in &mut kids {
        assert_eq!(k.wait_timeout(T), Some(Exit::Code(0)));
    }
    assert_eq!(s.value(), 0);
}

#[test]
fn semaphore_bounds_concurrency_across_processes() {
    let _serial = serial();
    let s = Semaphore::new(2).unwrap();
    let inside = flag();
    let worst = flag();
    let kids = fork_n(4, || {
        for _ in 0..2000 {
            let _p = s.permit();
            let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
            worst.fetch_max(n, Ordering::SeqCst);
            std::hint::spin_loop();
            inside.fetch_sub(1, Ordering::SeqCst);
        }
        0
    });
    for k in kids {
        k.expect_success(T);
    }
    assert!(worst.load(Ordering::SeqCst) <= 2);
    assert_eq!(s.value(), 2);
}

#[test]
fn semaphore_waiter_killed_does_not_block_others() {
    let _serial = serial();
    let s = Semaphore::new(0).unwrap();
    let waiting = flag();
    let mut victim = fork(|| {
        waiting.fetch_add(1, Ordering::SeqCst);
        s.acquire_with(true, None);
        park_forever()
    });
    until_at_least(&waiting, 1, "victim waits");
    let got = flag();
    let mut other = fork(|| {
        waiting.fetch_add(1, Ordering::SeqCst);
        (!s.acquire_with(true, Some(T))) as i32 + got.fetch_add(1, Ordering::SeqCst) as i32
    });
    until_at_least(&waiting, 2, "other waits");
    thread::sleep(30 * MS);
    victim.kill();
    assert!(victim.wait_timeout(T).is_some());
    let t = Instant::now();
    s.release().unwrap();
    assert_eq!(other.wait_timeout(T), Some(Exit::Code(0)));
    assert!(t.elapsed() < Duration::from_millis(200), "{:?}", t.elapsed());
    assert_eq!(got.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------- Condition

/// Waits on `cond` (Python style) in the calling thread or process, counting sleepers/woken.
fn cv_waiter(
    cond: &Condition,
    sleeping: &multiproc_arena::Shared<multiproc_arena::sync::atomic::AtomicU32>,
    woken: &multiproc_arena::Shared<multiproc_arena::sync::atomic::AtomicU32>,
    timeout: Option<Duration>,
) -> bool {
    assert!(cond.acquire_with(true, None).unwrap());
    sleeping.fetch_add(1, Ordering::SeqCst);
    let r = match timeout {
        None => cond.wait().map(|()| true).unwrap(),
        Some(t) => match cond.wait_timeout(t) {
            Ok(()) => true,
            Err(e) if e.is_timeout() => false,
            Err(e) => panic!("{e}"),
        },
    };
    woken.fetch_add(1, Ordering::SeqCst);
    cond.release().unwrap();
    r
}

/// Holding the lock once `sleeping` reached `n` proves those waiters are enqueued.
fn sync_with_sleepers(
    cond: &Condition,
    sleeping: &multiproc_arena::sync::atomic::AtomicU32,
    n: u32,
) {
    until_at_least(sleeping, n, "waiters sleep");
    assert!(cond.acquire_with(true, None).unwrap());
    cond.release().unwrap();
}

fn notify(cond: &Condition, n: usize) -> usize {
    assert!(cond.acquire_with(true, None).unwrap());
    let k = cond.notify_n(n).unwrap();
    cond.release().unwrap();
    k
}

#[test]
fn condition_notify_cv01() {
    let cond = Condition::new().unwrap();
    let (sleeping, woken) = (flag(), flag());
    let child = fork(|| (!cv_waiter(&cond, &sleeping, &woken, None)) as i32);
    thread::scope(|s| {
        s.spawn(|| assert!(cv_waiter(&cond, &sleeping, &woken, None)));
        sync_with_sleepers(&cond, &sleeping, 2);
        thread::sleep(50 * MS);
        assert_eq!(woken.load(Ordering::SeqCst), 0);
        assert_eq!(notify(&cond, 1), 1);
        until_at_least(&woken, 1, "first notify");
        thread::sleep(50 * MS);
        assert_eq!(woken.load(Ordering::SeqCst), 1, "notify() wakes exactly one");
        assert_eq!(notify(&cond, 1), 1);
        until_at_least(&woken, 2, "second notify");
    });
    child.expect_success(T);
    assert_eq!(notify(&cond, 1), 0, "nobody left waiting");
}

#[test]
fn condition_notify_all_cv02_and_notify_n_cv03() {
    let cond = Condition::new().unwrap();
    let (sleeping, woken) = (flag(), flag());
    // Six waiters (3 processes, 3 threads) time out by themselves.
    let kids = fork_n(3, || cv_waiter(&cond, &sleeping, &woken, Some(100 * MS)) as i32);
    thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| assert!(!cv_waiter(&cond, &sleeping, &woken, Some(100 * MS))));
        }
    });
    for k in kids {
        k.expect_success(T);
    }
    assert_eq!(woken.load(Ordering::SeqCst), 6);

    // notify_all wakes six untimed waiters, none before.
    for (round, notifies) in [(0, vec![usize::MAX]), (1, vec![2, 4])] {
        sleeping.store(0, Ordering::SeqCst);
        woken.store(0, Ordering::SeqCst);
        let kids = fork_n(3, || (!cv_waiter(&cond, &sleeping, &woken, None)) as i32);
        thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| assert!(cv_waiter(&cond, &sleeping, &woken, None)));
            }
            sync_with_sleepers(&cond, &sleeping, 6);
            thread::sleep(50 * MS);
            assert_eq!(woken.load(Ordering::SeqCst), 0);
            let mut expect = 0;
            for n in notifies {
                let k = notify(&cond, n);
                expect += k as u32;
                until_at_least(&woken, expect, "notified waiters wake");
                thread::sleep(30 * MS);
                assert_eq!(woken.load(Ordering::SeqCst), expect, "round {round}: exactly {k}");
            }
            assert_eq!(expect, 6);
            assert_eq!(notify(&cond, 3), 0, "notify with nobody waiting does nothing");
        });
        for k in kids {
            k.expect_success(T);
        }
    }
}

#[test]
fn condition_timeout_cv04_and_wait_result_cv07() {
    let cond = Condition::with_lock(Lock::new().unwrap()).unwrap();
    assert!(cond.acquire_with(true, None).unwrap());
    let t = Instant::now();
    assert!(cond.wait_timeout(100 * MS).unwrap_err().is_timeout());
    assert!(about(t.elapsed(), 100 * MS));
    assert!(cond.wait_timeout(Duration::ZERO).unwrap_err().is_timeout());
    let go = flag();
    let child = fork(|| {
        until_at_least(&go, 1, "parent waits");
        assert!(cond.acquire_with(true, None).unwrap());
        let n = cond.notify().unwrap();
        cond.release().unwrap();
        (n != 1) as i32
    });
    go.store(1, Ordering::SeqCst);
    cond.wait_timeout(Duration::from_secs(60)).unwrap();
    cond.release().unwrap();
    child.expect_success(T);
}

#[test]
fn condition_wait_for_cv05_cv06() {
    let cond = Condition::new().unwrap();
    let state = flag();
    state.store(u32::MAX, Ordering::SeqCst);
    let child = fork(|| {
        cond.acquire_with(true, None).unwrap();
        state.store(0, Ordering::SeqCst);
        cond.notify().unwrap();
        let ok = cond.wait_for(|| state.load(Ordering::SeqCst) == 4, Some(T)).unwrap();
        let r = (!ok || state.load(Ordering::SeqCst) != 4) as i32;
        cond.release().unwrap();
        r
    });
    cond.acquire_with(true, None).unwrap();
    assert!(cond.wait_for(|| state.load(Ordering::SeqCst) == 0, Some(T)).unwrap());
    cond.release().unwrap();
    for _ in 0..4 {
        thread::sleep(10 * MS);
        cond.acquire_with(true, None).unwrap();
        state.fetch_add(1, Ordering::SeqCst);
        cond.notify().unwrap();
        cond.release().unwrap();
    }
    child.expect_success(T);

    // CV06: the predicate only reaches 3 before the timeout.
    state.store(0, Ordering::SeqCst);
    let child = fork(|| {
        cond.acquire_with(true, None).unwrap();
        let t = Instant::now();
        let ok = cond.wait_for(|| state.load(Ordering::SeqCst) == 4, Some(100 * MS)).unwrap();
        cond.release().unwrap();
        (ok || t.elapsed() < 90 * MS) as i32
    });
    for _ in 0..3 {
        thread::sleep(10 * MS);
        cond.acquire_with(true, None).unwrap();
        state.fetch_add(1, Ordering::SeqCst);
        cond.notify().unwrap();
        cond.release().unwrap();
    }
    child.expect_success(T);
}

#[test]
fn condition_needs_the_lock_cv09() {
    let cond = Condition::new().unwrap();
    assert_eq!(cond.wait().unwrap_err().kind(), ErrorKind::NotOwner);
    assert_eq!(cond.wait_timeout(MS).unwrap_err().kind(), ErrorKind::NotOwner);
    assert_eq!(cond.notify().unwrap_err().kind(), ErrorKind::NotOwner);
    assert_eq!(cond.notify_all().unwrap_err().kind(), ErrorKind::NotOwner);
    let _g = cond.get_lock().lock().unwrap();
    assert!(cond.wait_for(|| true, None).unwrap());
    assert!(!cond.wait_for(|| false, Some(10 * MS)).unwrap());
    // A recursive hold is released fully while waiting and restored after.
    let _h = cond.get_lock().lock().unwrap();
    assert!(cond.wait_timeout(MS).unwrap_err().is_timeout());
    assert_eq!(cond.get_lock().count(), 2);
}

#[test]
fn condition_notify_is_not_stolen_by_a_later_waiter() {
    // W waits; we notify one and then wait ourselves: our wait must not take W's turn.
    let cond = Condition::new().unwrap();
    let (sleeping, woken) = (flag(), flag());
    let child = fork(|| (!cv_waiter(&cond, &sleeping, &woken, Some(T))) as i32);
    sync_with_sleepers(&cond, &sleeping, 1);
    cond.acquire_with(true, None).unwrap();
    assert_eq!(cond.notify().unwrap(), 1);
    assert!(
        cond.wait_timeout(50 * MS).unwrap_err().is_timeout(),
        "a later waiter must not be woken"
    );
    cond.release().unwrap();
    child.expect_success(T);
}

#[test]
fn condition_dead_waiter_does_not_swallow_a_notify() {
    let cond = Condition::new().unwrap();
    let (sleeping, woken) = (flag(), flag());
    let mut victim = fork(|| {
        cv_waiter(&cond, &sleeping, &woken, None);
        0
    });
    sync_with_sleepers(&cond, &sleeping, 1);
    let survivor = fork(|| (!cv_waiter(&cond, &sleeping, &woken, Some(T))) as i32);
    sync_with_sleepers(&cond, &sleeping, 2);
    victim.kill();
    assert!(victim.wait_timeout(T).is_some());
    // The victim is the oldest waiter; notify(1) must reach the survivor.
    assert_eq!(notify(&cond, 1), 1);
    survivor.expect_success(T);
}

#[test]
fn condition_over_a_mutex_between_processes() {
    let m = Mutex::new(0u64).unwrap();
    let cond = Condition::with_lock(m.clone()).unwrap();
    let producer = fork(|| {
        for _ in 0..200 {
            let mut g = m.lock().unwrap();
            *g += 1;
            cond.notify_all().unwrap();
            let g = cond.wait_while(g, |v| *v % 2 == 1).unwrap();
            drop(g);
        }
        0
    });
    let mut g = m.lock().unwrap();
    for i in 0..200u64 {
        g = cond.wait_while(g, |v| *v != 2 * i + 1).unwrap();
        *g += 1;
        cond.notify_all().unwrap();
    }
    let (g, timed_out) = cond.wait_timeout(g, 10 * MS).unwrap();
    assert!(timed_out);
    let (g, timed_out) = cond.wait_timeout_while(g, 10 * MS, |v| *v < 1000).unwrap();
    assert!(timed_out && *g == 400);
    drop(g);
    producer.expect_success(T);
}

#[test]
fn condition_many_waiters_overflow_the_slots() {
    let _serial = serial();
    let n = multiproc_ipc_lock::CONDITION_SLOTS as u32 + 8;
    let cond = Condition::new().unwrap();
    let (sleeping, woken) = (flag(), flag());
    thread::scope(|s| {
        for _ in 0..n {
            s.spawn(|| assert!(cv_waiter(&cond, &sleeping, &woken, Some(T))));
        }
        sync_with_sleepers(&cond, &sleeping, n);
        assert_eq!(notify(&cond, 1), 1);
        until_at_least(&woken, 1, "one wakes");
        assert_eq!(notify(&cond, usize::MAX), n as usize - 1);
        until_at_least(&woken, n, "all wake");
    });
}

// ---------------------------------------------------------------- Event

#[test]
fn event_e01() {
    let e = Event::new().unwrap();
    assert!(!e.is_set());
    let t = Instant::now();
    assert!(e.wait_timeout(Duration::ZERO).unwrap_err().is_timeout());
    assert!(t.elapsed() < 50 * MS);
    let t = Instant::now();
    assert!(e.wait_timeout(100 * MS).unwrap_err().is_timeout());
    assert!(about(t.elapsed(), 100 * MS));
    e.set();
    assert!(e.is_set());
    e.wait();
    e.wait_timeout(100 * MS).unwrap();
    e.clear();
    assert!(!e.is_set());
    let child = fork(|| {
        thread::sleep(100 * MS);
        e.set();
        0
    });
    let t = Instant::now();
    e.wait_timeout(T).unwrap();
    assert!(t.elapsed() >= 50 * MS);
    child.expect_success(T);
}

#[test]
fn event_e03_set_in_parent_cleared_in_child() {
    let e = Event::new().unwrap();
    e.set();
    fork(|| {
        if !e.is_set() {
            return 1;
        }
        e.wait();
        e.clear();
        e.wait_timeout(MS).is_ok() as i32
    })
    .expect_success(T);
    assert!(!e.is_set());
}

#[test]
fn event_set_then_clear_still_wakes_every_waiter() {
    let e = Event::new().unwrap();
    let waiting = flag();
    let kids = fork_n(3, || {
        waiting.fetch_add(1, Ordering::SeqCst);
        e.wait_timeout(T).is_err() as i32
    });
    until_at_least(&waiting, 3, "waiters");
    thread::sleep(30 * MS);
    e.set();
    e.clear();
    for k in kids {
        k.expect_success(T);
    }
    assert!(!e.is_set());
    // A set that happened before a wait began does not wake it later.
    assert!(e.wait_timeout(10 * MS).unwrap_err().is_timeout());
}

#[test]
fn debug_e02() {
    let e = Event::new().unwrap();
    assert_eq!(format!("{e:?}"), "Event { set: false }");
    e.set();
    assert_eq!(format!("{e:?}"), "Event { set: true }");
    let s = Semaphore::new(3).unwrap();
    assert_eq!(format!("{s:?}"), "Semaphore { value: 3 }");
    let c = Condition::new().unwrap();
    assert!(format!("{c:?}").contains("waiting: 0"));
}
