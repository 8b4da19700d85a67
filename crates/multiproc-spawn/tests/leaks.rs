//! 100 processes started then joined leave no descriptor and no zombie behind; dropped
//! handles are reaped too. One test, so that nothing else in this binary opens descriptors
//! meanwhile.

mod util;

use multiproc_spawn::{Process, StartMethod};
use std::time::{Duration, Instant};
use util::*;

fn ident(i: u32) -> u32 {
    i
}

fn arena_capacity(a: multiproc_arena::Arena) -> usize {
    a.capacity()
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn hundred_processes_no_leaks_no_zombies() {
    let me = std::process::id();
    for m in StartMethod::all() {
        for daemon in [false, true] {
            // Warm up: the forkserver, the lifeline and the reaper are created once.
            let h =
                Process::builder().start_method(m).daemon(daemon).target(ident, 0).start().unwrap();
            assert_eq!(h.join().unwrap(), 0);
            drop(Process::builder().start_method(m).target(sleep_ms, 1).start().unwrap());
            assert!(wait_until(LONG, || zombie_children().is_empty()));
            assert!(wait_until(LONG, || multiproc_spawn::active_children().is_empty()));
            let before = open_fds();

            let t = Instant::now();
            let hs: Vec<_> = (0..100)
                .map(|i| {
                    Process::builder()
                        .start_method(m)
                        .daemon(daemon)
                        .target(ident, i)
                        .start()
                        .unwrap()
                })
                .collect();
            let pids: Vec<u32> = hs.iter().map(|h| h.pid()).collect();
            for (i, h) in hs.into_iter().enumerate() {
                assert_eq!(h.join().unwrap(), i as u32);
            }
            eprintln!("{m} daemon={daemon}: 100 started and joined in {:?}", t.elapsed());
            assert_eq!(open_fds(), before, "{m}: descriptors leaked");
            assert!(zombie_children().is_empty(), "{m}: zombies {:?}", zombie_children());
            for pid in pids {
                assert_ne!(ppid_of(pid), Some(me), "{m}: {pid} still our child");
            }

            // Dropped handles: the reaper collects them.
            let pids: Vec<u32> = (0..20)
                .map(|_| {
                    Process::builder()
                        .start_method(m)
                        .daemon(daemon)
                        .target(sleep_ms, 20)
                        .start()
                        .unwrap()
                        .pid()
                })
                .collect();
            assert!(
                wait_until(LONG, || pids.iter().all(|&p| ppid_of(p) != Some(me))),
                "{m}: dropped children not reaped"
            );
            assert!(wait_until(LONG, || multiproc_spawn::active_children().is_empty()));
            assert!(wait_until(LONG, || open_fds() == before), "{m}: {} != {before}", open_fds());
            assert!(zombie_children().is_empty());
        }
    }

    // Under fork, the arguments of a `fn` target travel encoded as under the other methods,
    // so the parent drops its own copy at the start: an arena handle's descriptor (and
    // mapping) does not stay behind in the parent.
    let before = open_fds();
    for _ in 0..20 {
        let a = multiproc_arena::Arena::new(1 << 16).unwrap();
        let cap = a.capacity();
        let h = Process::builder()
            .start_method(StartMethod::Fork)
            .target(arena_capacity, a)
            .start()
            .unwrap();
        assert_eq!(h.join().unwrap(), cap);
    }
    assert_eq!(open_fds(), before, "fork: the arguments' descriptors stayed in the parent");
}
