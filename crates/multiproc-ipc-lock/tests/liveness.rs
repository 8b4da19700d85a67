//! A live holder is never taken over, and a dead one is recovered, in the setups where a pid
//! or `/proc` would lie: the waiter out of descriptors, without `/proc`, behind `hidepid=2`
//! as another user, the holder or the waiter (or both, each pid 1) in a PID namespace of its
//! own. Needs root (namespaces, mounts, setuid); without it each test says so loudly and
//! checks only the plain setup.
//!
//! `MULTIPROC_LIVENESS_HOLD_MS` sets how long a live holder holds (default 400 ms; the
//! closing figures of issue #15 used 3000).
#![cfg(not(multiproc_loom))]

mod common;

use common::*;
use multiproc_arena::sync::atomic::{AtomicU64, Ordering::SeqCst};
use multiproc_arena::testing::{fork_in, monotonic_ns, setups_available, Exit, Setup};
use multiproc_arena::Array;
use multiproc_ipc_lock::{Lock, Mutex, RLock, RwLock};
use std::sync::{LockResult, TryLockError};
use std::time::Duration;

use Setup::*;

/// (holder, waiter) setups: every way a live process used to be taken for dead.
const PAIRS: [(Setup, Setup); 6] = [
    (Plain, NoDescriptors),
    (Plain, NoProc),
    (Plain, HiddenProcOtherUser),
    (OwnPidNamespace, Plain),
    (Plain, OwnPidNamespace),
    (OwnPidNamespace, OwnPidNamespace),
];

/// The lock kinds, each a "hold" and a "take" over the same object.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Lock,
    RLock,
    Mutex,
    RwWrite,
    /// A reader holds; a writer waits.
    RwRead,
}

/// One object of each kind (fork-inherited by both children).
struct Objects {
    lock: Lock,
    rlock: RLock,
    mutex: Mutex<u64>,
    rw: RwLock<u64>,
}

impl Objects {
    fn new() -> Objects {
        Objects {
            lock: Lock::new().unwrap(),
            rlock: RLock::new().unwrap(),
            mutex: Mutex::new(0).unwrap(),
            rw: RwLock::new(0).unwrap(),
        }
    }

    /// Holds `kind` while `body` runs.
    fn hold(&self, kind: Kind, body: impl FnOnce()) {
        fn run<G>(r: LockResult<G>, body: impl FnOnce()) {
            let _g = r.unwrap_or_else(|p| p.into_inner());
            body()
        }
        match kind {
            Kind::Lock => run(self.lock.lock(), body),
            Kind::RLock => run(self.rlock.lock(), body),
            Kind::Mutex => run(self.mutex.lock(), body),
            Kind::RwWrite => run(self.rw.write(), body),
            Kind::RwRead => run(self.rw.read(), body),
        }
    }

    /// Tries to take what a holder of `kind` excludes within `t`; runs `body` with
    /// `Some(poisoned)` if it got it, `None` otherwise.
    fn take(&self, kind: Kind, t: Duration, body: impl FnOnce(Option<bool>)) {
        fn run<G>(r: Result<G, TryLockError<G>>, body: impl FnOnce(Option<bool>)) {
            match r {
                Ok(_g) => body(Some(false)),
                Err(TryLockError::Poisoned(p)) => {
                    let _g = p.into_inner();
                    body(Some(true))
                }
                Err(TryLockError::WouldBlock) => body(None),
            }
        }
        match kind {
            Kind::Lock => run(self.lock.try_lock_for(t), body),
            Kind::RLock => run(self.rlock.try_lock_for(t), body),
            Kind::Mutex => run(self.mutex.try_lock_for(t), body),
            Kind::RwWrite | Kind::RwRead => run(self.rw.try_write_for(t), body),
        }
    }
}

fn hold_time() -> Duration {
    let ms = std::env::var("MULTIPROC_LIVENESS_HOLD_MS").ok().and_then(|v| v.parse().ok());
    Duration::from_millis(ms.unwrap_or(400))
}

/// The setups this machine lets us build (every pair as root; the plain one otherwise).
fn pairs() -> Vec<(Setup, Setup)> {
    match setups_available() {
        Ok(()) => PAIRS.to_vec(),
        Err(why) => {
            eprintln!(
                "\n*** SKIPPED: the namespace, hidepid and descriptor setups of the liveness \
                 tests need root ({why}); only the plain setup runs here. CI runs as root. ***\n"
            );
            vec![(Plain, Plain)]
        }
    }
}

// Shared words.
const HOLDING: usize = 0;
const RELEASED: usize = 1;
const FOREIGN: usize = 2;
const GOT: usize = 3; // 1 got it after the release, 2 got it while held (stolen)
const POISONED: usize = 4;
const WORD: usize = 5;
const GOT_AT: usize = 6;

fn words() -> Array<AtomicU64> {
    Array::from_fn(8, |_| AtomicU64::new(0)).unwrap()
}

/// Runs `case` once per pair of [`pairs`] (serialised with the other tests), each with
/// fresh objects and words and its name for messages.
fn each_pair(kind: Kind, mut case: impl FnMut(Setup, Setup, &str, &Objects, &Array<AtomicU64>)) {
    let _serial = serial();
    for (hs, ws) in pairs() {
        let what = format!("{kind:?}, holder {hs:?}, waiter {ws:?}");
        case(hs, ws, &what, &Objects::new(), &words());
    }
}

/// In a waiter: returns once the holder holds.
fn until_held(w: &Array<AtomicU64>) {
    while w[HOLDING].load(SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn ended_ok(c: &mut multiproc_arena::testing::Child, who: &str, what: &str) {
    match c.wait_timeout(Duration::from_secs(30)) {
        Some(Exit::Code(0)) => {}
        other => panic!("{what}: the {who} ended with {other:?} (102-106: its setup failed)"),
    }
}

/// A holder in one setup holds for `hold_time()`, writing its mark into a shared word and
/// counting marks it did not write; a waiter in another setup waits for the lock meanwhile.
/// The waiter must get it only after the release, and the holder must see no foreign write.
fn live_holder_is_never_taken_over(kind: Kind) {
    let hold = hold_time();
    each_pair(kind, |hs, ws, what, objs, w| {
        let mut holder = fork_in(hs, || {
            objs.hold(kind, || {
                w[HOLDING].store(1, SeqCst);
                let start = monotonic_ns();
                while monotonic_ns() - start < hold.as_nanos() as u64 {
                    w[WORD].store(1, SeqCst);
                    // Leave the CPU to the waiter now and then (two cores, tests in parallel).
                    std::thread::sleep(Duration::from_micros(20));
                    if w[WORD].load(SeqCst) != 1 {
                        w[FOREIGN].fetch_add(1, SeqCst);
                    }
                }
                w[RELEASED].store(1, SeqCst);
            });
            0
        });
        let mut waiter = fork_in(ws, || {
            until_held(w);
            objs.take(kind, hold + Duration::from_secs(10), |got| {
                if got.is_some() {
                    let stolen = w[RELEASED].load(SeqCst) == 0;
                    w[GOT].store(if stolen { 2 } else { 1 }, SeqCst);
                    // A thief scribbles on the protected word for a while.
                    for _ in 0..20_000 {
                        w[WORD].store(2, SeqCst);
                    }
                }
            });
            0
        });
        ended_ok(&mut holder, "holder", what);
        ended_ok(&mut waiter, "waiter", what);
        assert_eq!(w[FOREIGN].load(SeqCst), 0, "{what}: foreign writes while held");
        assert_eq!(w[GOT].load(SeqCst), 1, "{what}: 1 = got it after the release, 2 = stolen");
        eprintln!("{what}: held {hold:?}, 0 foreign writes, taken after the release");
    });
}

/// A holder in one setup takes the lock and is SIGKILLed; the waiter, blocked meanwhile in
/// another setup, must get it poisoned (not for a reader's death) soon after.
fn dead_holder_is_recovered(kind: Kind) {
    each_pair(kind, |hs, ws, what, objs, w| {
        let mut holder = fork_in(hs, || {
            objs.hold(kind, || {
                w[HOLDING].store(1, SeqCst);
                park_forever()
            });
            0
        });
        let mut waiter = fork_in(ws, || {
            until_held(w);
            objs.take(kind, Duration::from_secs(20), |got| {
                w[GOT_AT].store(monotonic_ns(), SeqCst);
                if let Some(p) = got {
                    w[GOT].store(1, SeqCst);
                    w[POISONED].store(p as u64, SeqCst);
                }
            });
            0
        });
        until(10, "the holder holds", || w[HOLDING].load(SeqCst) == 1);
        std::thread::sleep(Duration::from_millis(150)); // the waiter is asleep on it now
        assert_eq!(w[GOT].load(SeqCst), 0, "{what}: taken while the holder lived");
        let killed_at = monotonic_ns();
        holder.kill();
        ended_ok(&mut waiter, "waiter", what);
        let _ = holder.wait_timeout(Duration::from_secs(5));
        assert_eq!(w[GOT].load(SeqCst), 1, "{what}: never recovered");
        let poisoned = w[POISONED].load(SeqCst) == 1;
        assert_eq!(poisoned, !matches!(kind, Kind::RwRead), "{what}: poisoned");
        let dt = Duration::from_nanos(w[GOT_AT].load(SeqCst).saturating_sub(killed_at));
        // The promise is 100 ms (10-15 ms measured on a quiet machine); the test fails only
        // past a second, so a loaded CI machine does not make it flaky (a missed recovery
        // is a failure all the same: the waiter gives up after 20 s).
        eprintln!("{what}: recovered {dt:?} after the kill");
        assert!(dt < Duration::from_secs(1), "{what}: recovered only {dt:?} after the kill");
    });
}

/// One test per lock kind and check, so a failure names both.
macro_rules! per_kind {
    ($($name:ident: $check:ident($($kind:ident),+);)+) => {
        $(
            #[test]
            fn $name() {
                $($check(Kind::$kind);)+
            }
        )+
    };
}

per_kind! {
    lock_live_holder_never_taken_over: live_holder_is_never_taken_over(Lock);
    rlock_live_holder_never_taken_over_nor_reentered: live_holder_is_never_taken_over(RLock);
    mutex_live_holder_never_taken_over: live_holder_is_never_taken_over(Mutex);
    rwlock_live_writer_never_taken_over: live_holder_is_never_taken_over(RwWrite);
    rwlock_live_reader_never_dropped: live_holder_is_never_taken_over(RwRead);
    lock_dead_holder_recovered_in_every_setup: dead_holder_is_recovered(Lock);
    rlock_dead_holder_recovered_in_every_setup: dead_holder_is_recovered(RLock);
    mutex_dead_holder_recovered_in_every_setup: dead_holder_is_recovered(Mutex);
    rwlock_dead_writer_and_reader_recovered_in_every_setup:
        dead_holder_is_recovered(RwWrite, RwRead);
}
