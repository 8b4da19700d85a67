//! `cleanup_orphans` never removes a named segment that a live process — in any PID
//! namespace, with or without `/proc` — still has open, and removes it once the kernel
//! proves nobody has (the creator and every opener killed). Needs root for the namespace
//! setups (skipped loudly otherwise; CI runs as root).

use multiproc_arena::testing::{fork_in, setups_available, Setup};
use multiproc_arena::{cleanup_orphans, Array, SharedMemory};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

fn exists(name: &str) -> bool {
    std::path::Path::new("/dev/shm").join(name).exists()
}

fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < Duration::from_secs(20), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn setups() -> Vec<Setup> {
    match setups_available() {
        Ok(()) => vec![Setup::OwnPidNamespace, Setup::NoProc, Setup::Plain],
        Err(why) => {
            eprintln!(
                "\n*** SKIPPED: the PID-namespace and no-/proc setups need root ({why}) ***\n"
            );
            vec![Setup::Plain]
        }
    }
}

#[test]
fn live_users_keep_their_segment_dead_ones_do_not() {
    for setup in setups() {
        let name = format!("mp-orphan-test-{}-{setup:?}", std::process::id());
        let flags: Array<AtomicU64> = Array::from_fn(2, |_| AtomicU64::new(0)).unwrap();
        // The creator, in `setup`, makes the segment and lives on.
        let creator = fork_in(setup, || {
            let s = SharedMemory::create_named(&name, 64).unwrap();
            s.write(0, b"alive").unwrap();
            flags[0].store(1, SeqCst);
            loop {
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        until("the creator made it", || flags[0].load(SeqCst) == 1);
        // Every cleanup made meanwhile (here, and by creating a segment) leaves it.
        cleanup_orphans().unwrap();
        drop(SharedMemory::create(64).unwrap());
        assert!(exists(&name), "{setup:?}: a live creator's segment was removed");
        // An opener in the same setup keeps it after the creator dies.
        let opener = fork_in(setup, || {
            let s = SharedMemory::open(&name).unwrap();
            flags[1].store(1, SeqCst);
            loop {
                std::thread::sleep(Duration::from_millis(50));
                let mut b = [0u8; 5];
                s.read(0, &mut b).unwrap();
            }
        });
        until("the opener opened it", || flags[1].load(SeqCst) == 1);
        drop(creator); // SIGKILL and reap
        std::thread::sleep(Duration::from_millis(50));
        cleanup_orphans().unwrap();
        assert!(exists(&name), "{setup:?}: a segment a live opener holds was removed");
        drop(opener);
        // Nobody holds it now (a process in its own PID namespace dies a moment after the
        // one the test killed): the next cleanups remove it.
        until("the orphan removed", || {
            let _ = cleanup_orphans();
            !exists(&name)
        });
        eprintln!("{setup:?}: kept while a user lived, removed after the last died");
    }
}
