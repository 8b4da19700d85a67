//! Resources after pools come and go: descriptors and child processes. Alone in its test
//! binary, so that no other test's pool is counted.

mod common;
mod sys;

use common::{each_method, pool, METHODS};
use std::time::Duration;

fn ok(x: u32) -> u32 {
    x
}

/// Our children that are zombies (dead, not reaped).
fn zombie_children() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        if f.get(1) == Some(&me.as_str()) && f.first() == Some(&"Z") {
            out.push(pid);
        }
    }
    out
}

#[test]
fn no_descriptor_or_zombie_left_behind() {
    each_method(60, METHODS, |m| {
        // Warm up (the forkserver and spawn's reaper start once per process).
        let p = pool(2, m);
        p.map(ok, 0..10).unwrap();
        drop(p);
        std::thread::sleep(Duration::from_millis(100));
        let before = sys::open_fds();
        for i in 0..5 {
            let p = pool(2, m);
            assert_eq!(p.map(ok, 0..100).unwrap().len(), 100);
            if i % 2 == 0 {
                p.close();
                p.join_timeout(Duration::from_secs(5)).unwrap();
            } // else: dropped running, which terminates it
        }
        std::thread::sleep(Duration::from_millis(300));
        let after = sys::open_fds();
        if after > before {
            for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
                eprintln!("{:?} -> {:?}", e.file_name(), std::fs::read_link(e.path()));
            }
        }
        assert!(after <= before, "{m:?}: {before} -> {after} descriptors");
        assert_eq!(zombie_children(), Vec::<u32>::new(), "{m:?}");
    });
}
