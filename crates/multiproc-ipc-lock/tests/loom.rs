//! loom models of the state machines (processes are loom threads; the futex is modelled
//! exactly, so a lost wake-up is a loom deadlock). Run with `cargo xtask loom -p
//! multiproc-ipc-lock`.
#![cfg(multiproc_loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;
use multiproc_ipc_lock::loom_support::die;
use multiproc_ipc_lock::{
    Barrier, Condition, ErrorKind, Event, Lock, Mutex, RLock, RwLock, Semaphore,
};
use std::sync::TryLockError;
use std::time::Duration;

const TICK: Duration = Duration::from_millis(1);

/// Adds one to the cell: loom reports a data race if two threads do it unsynchronised.
fn bump(cell: &UnsafeCell<u32>) {
    // SAFETY: callers hold the lock under test (loom checks that it really excludes).
    cell.with_mut(|p| unsafe { *p += 1 });
}

/// Reads the cell (under the lock under test, or after joining the writers).
fn peek(cell: &UnsafeCell<u32>) -> u32 {
    // SAFETY: as for `bump`.
    cell.with(|p| unsafe { *p })
}

/// Runs `f` on a new model thread with a clone of `x` (the model's "other process").
fn on_thread<T, R>(x: &T, f: impl FnOnce(T) -> R + 'static) -> thread::JoinHandle<R>
where
    T: Clone + 'static,
    R: 'static,
{
    let x = x.clone();
    thread::spawn(move || f(x))
}

/// [`on_thread`] with clones of two values.
fn on_thread2<T, U, R>(x: &T, y: &U, f: impl FnOnce(T, U) -> R + 'static) -> thread::JoinHandle<R>
where
    T: Clone + 'static,
    U: Clone + 'static,
    R: 'static,
{
    let (x, y) = (x.clone(), y.clone());
    thread::spawn(move || f(x, y))
}

/// Two threads each take `lock` and bump a cell, while the main thread holds the lock at the
/// start (`held_first`) or not; every bump must happen, under the lock.
fn two_lockers(held_first: bool) {
    loom::model(move || {
        let lock = Lock::new().unwrap();
        let cell = Arc::new(UnsafeCell::new(0u32));
        let g = held_first.then(|| lock.lock().unwrap());
        let hs: Vec<_> = (0..2)
            .map(|_| {
                on_thread2(&lock, &cell, move |lock, cell| {
                    let _g = lock.lock().unwrap();
                    bump(&cell);
                })
            })
            .collect();
        drop(g);
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(peek(&cell), 2);
        assert!(!lock.locked());
    });
}

#[test]
fn lock_excludes() {
    two_lockers(false);
}

/// Two sleepers behind a holder: the release wakes one, and that one's release must wake the
/// other (a woken waiter re-acquires with `WAITERS` set). Without that retry the second
/// sleeper is never woken: a deadlock in the arena's futex model.
#[test]
fn lock_two_sleepers_are_both_woken() {
    two_lockers(true);
}

#[test]
fn lock_timeout_then_release_by_another_thread() {
    loom::model(|| {
        let lock = Lock::new().unwrap();
        assert!(lock.acquire_with(true, None).unwrap());
        let h = on_thread(&lock, move |l2| l2.acquire_with(true, Some(TICK)).unwrap());
        // Python's Lock may be released by anyone.
        lock.release().unwrap();
        let got = h.join().unwrap();
        assert_eq!(lock.locked(), got);
        if !got {
            assert!(
                lock.acquire_with(false, None).unwrap(),
                "a timed-out waiter must not strand it"
            );
        }
    });
}

#[test]
fn lock_dead_holder_is_taken_over_poisoned() {
    loom::model(|| {
        let lock = Lock::new().unwrap();
        let holder = on_thread(&lock, move |l2| {
            std::mem::forget(l2.lock().unwrap());
            die();
        });
        let waiter = on_thread(&lock, move |l3| {
            // Either before the holder (clean, then released) or after its death (poisoned).
            drop(l3.lock());
        });
        holder.join().unwrap();
        waiter.join().unwrap();
        let r = lock.lock();
        assert!(r.is_err(), "the dead holder's lock is poisoned");
        drop(r);
        lock.clear_poison();
        assert!(lock.lock().is_ok());
    });
}

#[test]
fn mutex_counts() {
    loom::model(|| {
        let m = Mutex::new(0u32).unwrap();
        let h = on_thread(&m, move |m2| *m2.lock().unwrap() += 1);
        *m.lock().unwrap() += 1;
        h.join().unwrap();
        assert_eq!(*m.lock().unwrap(), 2);
    });
}

#[test]
fn rlock_recursion_and_ownership() {
    loom::model(|| {
        let r = RLock::new().unwrap();
        let cell = Arc::new(UnsafeCell::new(0u32));
        let h = on_thread2(&r, &cell, move |r2, c2| {
            let _a = r2.lock().unwrap();
            let _b = r2.lock().unwrap();
            bump(&c2);
        });
        {
            assert!(r.acquire_with(true, None).unwrap());
            assert!(r.acquire_with(true, None).unwrap());
            bump(&cell);
            r.release().unwrap();
            r.release().unwrap();
        }
        assert_eq!(r.release().unwrap_err().kind(), ErrorKind::NotOwner);
        h.join().unwrap();
        assert_eq!(peek(&cell), 2);
        assert!(!r.locked());
    });
}

#[test]
fn rlock_dead_owner() {
    loom::model(|| {
        let r = RLock::new().unwrap();
        let h = on_thread(&r, move |r2| {
            std::mem::forget(r2.lock().unwrap());
            std::mem::forget(r2.lock().unwrap());
            die();
        });
        h.join().unwrap();
        assert!(r.acquire_with(true, None).is_err(), "poisoned");
        assert!(r.is_owned() && r.count() == 1);
        r.release().unwrap();
        assert!(!r.locked());
    });
}

#[test]
fn semaphore_two_releases_wake_two_sleepers() {
    loom::model(|| {
        let s = Semaphore::new(0).unwrap();
        let hs: Vec<_> =
            (0..2).map(|_| on_thread(&s, move |s| assert!(s.acquire_with(true, None)))).collect();
        s.release().unwrap();
        s.release().unwrap();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(s.value(), 0);
    });
}

#[test]
fn semaphore_timeout_does_not_strand_a_sleeper() {
    loom::model(|| {
        let s = Semaphore::new(0).unwrap();
        let timed = on_thread(&s, move |s1| s1.acquire_timeout(TICK).is_ok());
        let blocking = on_thread(&s, move |s2| assert!(s2.acquire_with(true, None)));
        s.release().unwrap();
        let got = timed.join().unwrap();
        if got {
            s.release().unwrap();
        }
        blocking.join().unwrap();
        assert_eq!(s.value(), 0);
    });
}

#[test]
fn semaphore_excludes() {
    loom::model(|| {
        let s = Semaphore::new(1).unwrap();
        let cell = Arc::new(UnsafeCell::new(0u32));
        let h = on_thread2(&s, &cell, move |s2, c2| {
            let _p = s2.permit();
            bump(&c2);
        });
        {
            let _p = s.permit();
            bump(&cell);
        }
        h.join().unwrap();
        assert_eq!(s.value(), 1);
    });
}

#[test]
fn condition_no_lost_wakeup() {
    loom::model(|| {
        let m = Mutex::new(0u8).unwrap();
        let cond = Condition::with_lock(m.clone()).unwrap();
        let h = on_thread2(&m, &cond, move |m2, c2| {
            let g = m2.lock().unwrap();
            let g = c2.wait_while(g, |ready| *ready == 0).unwrap();
            assert_eq!(*g, 1);
        });
        *m.lock().unwrap() = 1;
        cond.notify().unwrap();
        h.join().unwrap();
    });
}

#[test]
fn condition_timeout_races_notify() {
    loom::model(|| {
        let cond = Condition::with_lock(Lock::new().unwrap()).unwrap();
        let h = on_thread(&cond, move |c2| {
            let _g = c2.get_lock().lock().unwrap();
            match c2.wait_timeout(TICK) {
                Ok(()) => true,
                Err(e) if e.is_timeout() => false,
                Err(e) => panic!("{e}"),
            }
        });
        let woken = {
            let _g = cond.get_lock().lock().unwrap();
            cond.notify().unwrap()
        };
        let notified = h.join().unwrap();
        // A waiter reports "notified" exactly when the notify counted it.
        assert_eq!(woken == 1, notified);
        let _g = cond.get_lock().lock().unwrap();
        assert_eq!(cond.notify_all().unwrap(), 0, "the slot was freed");
    });
}

#[test]
fn condition_notify_one_wakes_exactly_one() {
    loom::model(|| {
        let cond = Condition::with_lock(Lock::new().unwrap()).unwrap();
        let queued = Arc::new(AtomicU32::new(0));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                on_thread2(&cond, &queued, move |c, q| {
                    let _g = c.get_lock().lock().unwrap();
                    q.fetch_add(1, Ordering::SeqCst);
                    c.wait().unwrap();
                })
            })
            .collect();
        let mut woken = 0;
        while woken < 2 {
            let _g = cond.get_lock().lock().unwrap();
            if queued.load(Ordering::SeqCst) as usize > woken {
                let n = cond.notify().unwrap();
                assert!(n <= 1);
                woken += n;
            }
            drop(_g);
            thread::yield_now();
        }
        for h in hs {
            h.join().unwrap();
        }
    });
}

#[test]
fn event_set_wakes_a_waiter() {
    loom::model(|| {
        let e = Event::new().unwrap();
        let h = on_thread(&e, move |e2| e2.wait());
        e.set();
        h.join().unwrap();
        assert!(e.is_set());
    });
}

#[test]
fn event_set_then_clear_races_a_timed_waiter() {
    loom::model(|| {
        let e = Event::new().unwrap();
        let h = on_thread(&e, move |e2| e2.wait_timeout(TICK));
        e.set();
        e.clear();
        let _ = h.join().unwrap();
        assert!(!e.is_set());
    });
}

#[test]
fn event_timeout() {
    loom::model(|| {
        let e = Event::new().unwrap();
        let h = on_thread(&e, move |e2| e2.wait_timeout(TICK));
        e.set();
        let _ = h.join().unwrap();
        e.wait_timeout(TICK).unwrap();
    });
}

#[test]
fn barrier_two_parties_and_action() {
    loom::model(|| {
        let ran = Arc::new(AtomicU32::new(0));
        let r2 = ran.clone();
        let b = Barrier::builder(2)
            .action(move || {
                r2.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap();
        let h = on_thread2(&b, &ran, move |b2, ran2| {
            let i = b2.wait().unwrap();
            assert_eq!(ran2.load(Ordering::SeqCst), 1);
            i
        });
        let j = b.wait().unwrap();
        let i = h.join().unwrap();
        assert_eq!(i + j, 1);
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert!(!b.is_broken());
    });
}

#[test]
fn barrier_timeout_is_seen_alike_by_both() {
    loom::model(|| {
        let b = Barrier::new(2).unwrap();
        let h = on_thread(&b, move |b2| b2.wait_timeout(TICK).is_ok());
        let mine = b.wait_timeout(TICK).is_ok();
        let theirs = h.join().unwrap();
        assert_eq!(mine, theirs);
        assert_eq!(b.is_broken(), !mine);
    });
}

#[test]
fn barrier_abort_and_reset() {
    loom::model(|| {
        let b = Barrier::new(2).unwrap();
        let h = on_thread(&b, move |b2| b2.wait());
        b.abort();
        assert!(h.join().unwrap().is_err());
        assert!(b.is_broken());
        b.reset();
        assert!(!b.is_broken());
        assert_eq!(b.n_waiting(), 0);
    });
}

#[test]
fn barrier_reset_breaks_a_waiter() {
    loom::model(|| {
        let b = Barrier::new(2).unwrap();
        let h = on_thread(&b, move |b2| b2.wait().is_err());
        b.reset();
        // The waiter either arrived before the reset (broken) or after it (then it waits
        // for a second party: give it one).
        if !b.is_broken() && b.n_waiting() == 1 {
            let _ = b.wait();
        } else {
            let _ = b.wait_timeout(TICK);
        }
        let _ = h.join().unwrap();
    });
}

#[test]
fn rwlock_excludes_writer() {
    loom::model(|| {
        let rw = RwLock::new(0u32).unwrap();
        let cell = Arc::new(UnsafeCell::new(0u32));
        let h = on_thread2(&rw, &cell, move |rw2, c2| {
            let _w = rw2.write().unwrap();
            bump(&c2);
        });
        {
            let _r = rw.read().unwrap();
            peek(&cell);
        }
        h.join().unwrap();
        assert_eq!(peek(&cell), 1);
        assert!(rw.try_write().is_ok());
    });
}

#[test]
fn rwlock_dead_writer_poisons_readers() {
    loom::model(|| {
        let rw = RwLock::new(0u32).unwrap();
        on_thread(&rw, move |rw2| {
            let mut w = rw2.write().unwrap();
            *w = 1;
            std::mem::forget(w);
            die();
        })
        .join()
        .unwrap();
        let r = rw.read();
        assert!(r.is_err());
        drop(r);
        assert!(matches!(rw.try_write(), Err(TryLockError::Poisoned(_))));
    });
}

#[test]
fn rwlock_dead_reader_does_not_block_the_writer() {
    loom::model(|| {
        let rw = RwLock::new(0u32).unwrap();
        on_thread(&rw, move |rw2| {
            std::mem::forget(rw2.read().unwrap());
            die();
        })
        .join()
        .unwrap();
        let w = rw.write();
        assert!(w.is_ok());
    });
}

#[test]
fn rwlock_writer_timeout_leaves_it_usable() {
    loom::model(|| {
        let rw = RwLock::new(0u32).unwrap();
        let r = rw.read().unwrap();
        let h = on_thread(&rw, move |rw2| {
            if let Ok(mut w) = rw2.try_write_for(TICK) {
                *w += 1;
            }
        });
        drop(r);
        h.join().unwrap();
        let v = *rw.read().unwrap();
        assert!(v <= 1);
        *rw.write().unwrap() += 1;
        assert_eq!(*rw.read().unwrap(), v + 1);
    });
}

/// Reader entries are owned per process and stay with it while idle; a third process finds
/// both entries (two under loom) owned by idle live processes and takes one over while its
/// owner re-enters it, with a writer racing both. The cell shows that the writer still
/// excludes every reader (a count lost to the take-over would let it in).
#[test]
fn rwlock_idle_entry_taken_over_while_its_owner_reenters() {
    loom::model(|| {
        let rw = RwLock::new(0u32).unwrap();
        let cell = Arc::new(UnsafeCell::new(0u32));
        drop(rw.read().unwrap()); // main: an idle entry
        on_thread(&rw, move |rw2| drop(rw2.read().unwrap())).join().unwrap(); // a second one
        let taker = on_thread2(&rw, &cell, move |rw3, cell3| {
            let g = rw3.read().unwrap();
            let _ = peek(&cell3);
            drop(g);
        });
        let writer = on_thread2(&rw, &cell, move |rw4, cell4| {
            let _w = rw4.write().unwrap();
            bump(&cell4);
        });
        {
            let g = rw.read().unwrap(); // the owner re-enters
            let _ = peek(&cell);
            drop(g);
        }
        taker.join().unwrap();
        writer.join().unwrap();
        assert_eq!(*rw.read().unwrap(), 0);
        assert_eq!(peek(&cell), 1);
    });
}
