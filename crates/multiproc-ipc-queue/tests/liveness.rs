//! Queue parties in setups where a pid or `/proc` would lie (another PID namespace, no
//! `/proc`, `hidepid=2` as another user, no descriptors left): nothing is discarded while
//! both parties live, and a SIGKILLed party's entry is still reclaimed. Needs root (see
//! `multiproc_arena::testing::Setup`); without it the test says so loudly and runs the
//! plain setup only.
#![cfg(not(multiproc_loom))]

mod common;

use common::Bytes;
use multiproc_arena::testing::{fork_in, setups_available, Exit, Setup};
use multiproc_arena::Array;
use multiproc_ipc_queue::Queue;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use Setup::*;

const MIB: usize = 1 << 20;

fn pairs(all: &[(Setup, Setup)]) -> Vec<(Setup, Setup)> {
    match setups_available() {
        Ok(()) => all.to_vec(),
        Err(why) => {
            eprintln!(
                "\n*** SKIPPED: the namespace, hidepid and descriptor setups need root ({why}); \
                 only the plain setup runs here. CI runs as root. ***\n"
            );
            vec![(Plain, Plain)]
        }
    }
}

fn wait_ok(c: &mut multiproc_arena::testing::Child, what: &str) {
    match c.wait_timeout(Duration::from_secs(60)) {
        Some(Exit::Code(0)) => {}
        other => panic!("{what}: ended with {other:?} (102-106: its setup failed)"),
    }
}

fn message(i: u64) -> Bytes {
    Bytes((0..MIB).map(|k| (k as u64 ^ i) as u8).collect())
}

/// A producer in one setup puts 30 messages of 1 MiB (they outgrow the ring: spilled, or
/// streamed through it while the consumer reads), a consumer in another gets them all, whole
/// and in order; nothing is discarded.
#[test]
fn nothing_discarded_between_live_parties_in_any_setup() {
    let all = [
        (Plain, OwnPidNamespace),
        (OwnPidNamespace, Plain),
        (OwnPidNamespace, OwnPidNamespace),
        (Plain, NoProc),
        (NoProc, Plain),
        (Plain, HiddenProcOtherUser),
        (Plain, NoDescriptors),
    ];
    for ((ps, cs), spills) in pairs(&all).into_iter().flat_map(|p| [(p, 64), (p, 0)]) {
        let how = if spills == 0 { "streamed" } else { "spilled" };
        let what = format!("producer {ps:?}, consumer {cs:?}, {how}");
        let q: Queue<(u64, Bytes)> =
            Queue::builder().capacity(256 * 1024).max_spilled(spills).build().unwrap();
        let got: Array<AtomicU64> = Array::from_fn(2, |_| AtomicU64::new(0)).unwrap();
        let mut producer = fork_in(ps, || {
            for i in 0..30 {
                q.put((i, message(i))).unwrap();
            }
            0
        });
        let mut consumer = fork_in(cs, || {
            for i in 0..30 {
                let (n, m) = q.get_timeout(Duration::from_secs(30)).unwrap();
                assert_eq!(n, i, "in order");
                assert!(m == message(i), "message {i} arrived whole");
                got[0].fetch_add(1, SeqCst);
            }
            0
        });
        wait_ok(&mut producer, &format!("{what}: producer"));
        wait_ok(&mut consumer, &format!("{what}: consumer"));
        assert_eq!(got[0].load(SeqCst), 30, "{what}");
        assert_eq!(q.discarded(), 0, "{what}: messages discarded as a dead party's");
        assert_eq!(q.qsize(), 0, "{what}");
        eprintln!("{what}: 30 x 1 MiB delivered, 0 discarded");
    }
}

/// With room for two parties, a party in another PID namespace (or without /proc) is
/// SIGKILLed while it uses the queue; a new process must then get its entry (proved dead),
/// while the entry of a live party in such a setup is never taken.
#[test]
fn killed_party_reclaimed_live_party_kept_in_any_setup() {
    let all = [(OwnPidNamespace, Plain), (NoProc, Plain), (Plain, OwnPidNamespace)];
    for (victim_setup, newcomer_setup) in pairs(&all) {
        let what = format!("victim {victim_setup:?}, newcomer {newcomer_setup:?}");
        let q: Queue<u64> = Queue::builder().max_processes(2).build().unwrap();
        q.put(0).unwrap(); // this process is party 1
        let flags: Array<AtomicU64> = Array::from_fn(2, |_| AtomicU64::new(0)).unwrap();
        let mut victim = fork_in(victim_setup, || {
            q.put(1).unwrap(); // party 2
            flags[0].store(1, SeqCst);
            loop {
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let t0 = std::time::Instant::now();
        while flags[0].load(SeqCst) == 0 {
            assert!(t0.elapsed() < Duration::from_secs(20), "{what}: victim never put");
            std::thread::sleep(Duration::from_millis(1));
        }
        // While the victim lives, a third process finds no room: never its entry.
        let mut early = fork_in(newcomer_setup, || match q.try_put(2) {
            Err(e) => {
                assert!(e.to_string().contains("live processes"), "{e}");
                0
            }
            Ok(()) => 1,
        });
        wait_ok(&mut early, &format!("{what}: a live party's entry was taken"));
        victim.kill();
        let _ = victim.wait_timeout(Duration::from_secs(10));
        // Now the dead party's entry is reclaimed for a newcomer (a victim in its own PID
        // namespace dies a moment after the process the test killed: retry briefly).
        let mut late = fork_in(newcomer_setup, || {
            let t0 = std::time::Instant::now();
            loop {
                match q.try_put(3) {
                    Ok(()) => return 0,
                    Err(e) if t0.elapsed() < Duration::from_secs(5) => {
                        assert!(e.to_string().contains("live processes"), "{e}");
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        });
        wait_ok(&mut late, &format!("{what}: the dead party's entry was not reclaimed"));
        let mut seen: Vec<u64> =
            (0..3).map(|_| q.get_timeout(Duration::from_secs(5)).unwrap()).collect();
        seen.sort();
        assert_eq!(seen, [0, 1, 3], "{what}");
        eprintln!("{what}: live entry kept, dead entry reclaimed");
    }
}
