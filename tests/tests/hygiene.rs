//! Resource hygiene, alone in its test binary so that no other test's descriptors or
//! children disturb the counts: after a chaos run (every primitive, hundreds of processes,
//! SIGKILLs) and after the primitives that make files, nothing of ours is left — no
//! descriptor, no zombie, no running child, no named segment, no socket file.

use multiproc::arena::{Arena, SharedMemory};
use multiproc::manager::Manager;
use multiproc::pipe::Listener;
use multiproc::pool::{Pool, StartMethod};
use multiproc_tests::{bounded, chaos, hygiene};

fn double(x: u64) -> u64 {
    x * 2
}

/// Makes and drops everything that holds a descriptor or a file.
fn primitives() {
    let pid = std::process::id();
    let shm = SharedMemory::create_named(&format!("multiproc-{pid}-hyg"), 4096).unwrap();
    let arena = Arena::create(&format!("multiproc-{pid}-hyg-arena"), 1 << 16).unwrap();
    let l = Listener::builder().authkey(b"k").bind_private().unwrap();
    let m = Manager::start().unwrap();
    m.list::<u8>().unwrap().append(1).unwrap();
    let pool = Pool::builder().processes(2).start_method(StartMethod::Forkserver).build().unwrap();
    assert_eq!(pool.map(double, 0..10u64).unwrap()[9], 18);
    pool.close();
    pool.join().unwrap();
    m.shutdown().unwrap();
    drop((shm, arena, l, pool, m));
}

#[test]
fn nothing_left_behind_after_chaos() {
    bounded(150, || {
        // Warm up: the forkserver and lazily opened descriptors of the crates.
        let warm = chaos::run(&chaos::Config::short(2));
        assert!(warm.violations.is_empty(), "{warm}");
        primitives();
        let before = hygiene::open_fds();
        let report = chaos::run(&chaos::Config::short(4));
        eprintln!("{report}");
        assert!(report.violations.is_empty(), "{report}");
        assert!(report.total_kills() > 0, "{report}");
        primitives();
        let mut pids = report.pids.clone();
        pids.extend(&warm.pids);
        let problems = hygiene::leftovers(Some(before), 0, &pids);
        assert!(problems.is_empty(), "left behind:\n{}", problems.join("\n"));
    });
}
