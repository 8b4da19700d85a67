//! `cleanup_orphan_listeners` never removes the socket directory of a live listener — in
//! another PID namespace or without `/proc` — and removes it once the kernel proves its maker
//! dead. Needs root for the namespace setups (skipped loudly otherwise; CI runs as root).

use multiproc_arena::testing::{fork_in, setups_available, Setup};
use multiproc_arena::Array;
use multiproc_ipc_pipe::{cleanup_orphan_listeners, Address, Listener};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < Duration::from_secs(20), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn live_listeners_keep_their_directory_dead_ones_do_not() {
    let setups = match setups_available() {
        Ok(()) => vec![Setup::OwnPidNamespace, Setup::NoProc, Setup::Plain],
        Err(why) => {
            eprintln!(
                "\n*** SKIPPED: the PID-namespace and no-/proc setups need root ({why}) ***\n"
            );
            vec![Setup::Plain]
        }
    };
    for setup in setups {
        // The listener's path comes back through shared memory, a byte at a time.
        let path: Array<AtomicU64> = Array::from_fn(257, |_| AtomicU64::new(0)).unwrap();
        let maker = fork_in(setup, || {
            let l = Listener::builder().bind_private().unwrap();
            let Address::Unix(p) = l.address().clone() else { return 1 };
            let dir = p.parent().unwrap().to_str().unwrap().as_bytes().to_vec();
            for (i, b) in dir.iter().enumerate().take(256) {
                path[i + 1].store(*b as u64, SeqCst);
            }
            path[0].store(dir.len() as u64, SeqCst);
            loop {
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        until("the listener is bound", || path[0].load(SeqCst) != 0);
        let n = path[0].load(SeqCst) as usize;
        let dir: Vec<u8> = (1..=n).map(|i| path[i].load(SeqCst) as u8).collect();
        let dir = std::path::PathBuf::from(String::from_utf8(dir).unwrap());
        assert!(dir.is_dir());
        cleanup_orphan_listeners().unwrap();
        assert!(dir.is_dir(), "{setup:?}: a live listener's directory was removed");
        drop(maker); // SIGKILL and reap
        until("the orphan removed", || {
            let _ = cleanup_orphan_listeners();
            !dir.exists()
        });
        eprintln!("{setup:?}: kept while the listener lived, removed after its death");
    }
}
