//! The "machine short" phase of the soak: for a while `/dev/shm` is a tiny tmpfs and the
//! process has almost no descriptors left, then both are restored.
//!
//! While short, a workload creates and drops named segments, makes arenas, puts and gets on
//! a queue and counts under a mutex. Every failure must be a typed resource error
//! (`NoSpace`, `NoDescriptors`, the queue's `Resources`) — never a panic or a signal — and
//! nothing may be lost: every message put is got, in order and intact, every segment keeps
//! its bytes, the mutex keeps every increment. Once restored, every creation succeeds again.
//! It runs in a forked child with a private mount namespace (root; reported as skipped
//! otherwise).

use crate::rng::Rng;
use multiproc::arena::testing::{resize_dev_shm, set_nofile_limit, with_small_dev_shm, Outcome};
use multiproc::arena::{Arena, Array, ErrorKind as AKind, SharedMemory};
use multiproc::lock::Mutex;
use multiproc::queue::{ErrorKind as QKind, GetError, PutError, Queue};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// What the phase saw.
#[derive(Debug, Default, Clone)]
pub struct ShortReport {
    /// Operations tried.
    pub ops: u64,
    /// Creations refused for want of space (`ENOSPC`).
    pub no_space: u64,
    /// Creations refused for want of descriptors (`EMFILE`).
    pub no_descriptors: u64,
    /// Messages put and got back intact.
    pub messages: u64,
    /// Invariant violations (each also printed to stderr).
    pub violations: u64,
    /// Why the phase could not run here, if it could not.
    pub skipped: Option<String>,
}

impl std::fmt::Display for ShortReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(why) = &self.skipped {
            return write!(f, "  machine short:        SKIPPED ({why})");
        }
        write!(
            f,
            "  machine short:        {} ops, {} ENOSPC and {} EMFILE refusals, {} messages \
             intact, {} violations",
            self.ops, self.no_space, self.no_descriptors, self.messages, self.violations
        )
    }
}

/// What the workload counts, in shared memory (it runs in a forked child): see
/// [`ShortReport`].
#[derive(Debug, Clone, Copy)]
enum Count {
    Ops,
    NoSpace,
    NoDesc,
    Msgs,
    Bad,
}

/// The workload's [`Count`]s.
struct Counters(Array<AtomicU64>);

impl Counters {
    fn get(&self, k: Count) -> u64 {
        self.0[k as usize].load(SeqCst)
    }

    fn add(&self, k: Count) {
        self.0[k as usize].fetch_add(1, SeqCst);
    }

    fn set(&self, k: Count, v: u64) {
        self.0[k as usize].store(v, SeqCst);
    }
}

const MIB: usize = 1 << 20;

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// Runs the phase for `duration` (about 60% short, then restored).
pub fn run(duration: Duration, seed: u64) -> ShortReport {
    let c = Counters(Array::from_fn(8, |_| AtomicU64::new(0)).expect("counters"));
    let body = || workload(duration, seed, &c);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        with_small_dev_shm(4 * MIB as u64, duration + Duration::from_secs(120), body)
    }));
    let mut r = ShortReport {
        ops: c.get(Count::Ops),
        no_space: c.get(Count::NoSpace),
        no_descriptors: c.get(Count::NoDesc),
        messages: c.get(Count::Msgs),
        violations: c.get(Count::Bad),
        skipped: None,
    };
    match outcome {
        Ok(Outcome::Passed) => {}
        Ok(Outcome::Skipped) => r.skipped = Some("needs root to mount a tmpfs".into()),
        Err(_) => {
            eprintln!("machine short: the workload's process died or hung");
            r.violations += 1;
        }
    }
    r
}

fn workload(duration: Duration, seed: u64, c: &Counters) {
    let bad = |what: String| {
        eprintln!("machine short: VIOLATION: {what}");
        c.add(Count::Bad);
    };
    let mut rng = Rng::new(seed);
    // Made before the fault: they must survive it.
    let q: Queue<(u64, u64)> = Queue::builder().maxsize(10_000).build().expect("queue");
    let m = Mutex::new(0u64).expect("mutex");
    let mut kept: Vec<(SharedMemory, u8)> = Vec::new();
    let (mut sent, mut got, mut counted) = (0u64, 0u64, 0u64);
    let check = |x: u64| x.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5555;

    let old_limit = set_nofile_limit(open_fds() + 24).expect("setrlimit");
    let t0 = Instant::now();
    let short_for = duration.mul_f64(0.6);
    let mut hoard = Vec::new(); // descriptors taken to keep the process short of them
    while t0.elapsed() < short_for {
        c.add(Count::Ops);
        match rng.below(7) {
            0 => {
                let size = 64 * 1024 + rng.below(2 * MIB as u64) as usize;
                match SharedMemory::create(size) {
                    Ok(s) => {
                        let b = rng.below(250) as u8 + 1;
                        if let Err(e) = s.write(size - 1, &[b]).and_then(|_| s.write(0, &[b])) {
                            bad(format!("write to a new segment: {e}"));
                        }
                        kept.push((s, b));
                    }
                    Err(e) if e.kind() == AKind::NoSpace => {
                        c.add(Count::NoSpace);
                    }
                    Err(e) if e.kind() == AKind::NoDescriptors => {
                        c.add(Count::NoDesc);
                    }
                    Err(e) => bad(format!("segment creation failed with {:?}: {e}", e.kind())),
                }
            }
            1 if !kept.is_empty() => {
                let i = rng.below(kept.len() as u64) as usize;
                kept.swap_remove(i);
            }
            2 => match Arena::new(MIB) {
                Ok(a) => drop(a),
                Err(e) if e.kind() == AKind::NoDescriptors => {
                    c.add(Count::NoDesc);
                }
                Err(e) if e.kind() == AKind::NoSpace => {
                    c.add(Count::NoSpace);
                }
                Err(e) => bad(format!("arena creation failed with {:?}: {e}", e.kind())),
            },
            3 => match q.try_put((sent, check(sent))) {
                Ok(()) => sent += 1,
                Err(PutError::Full(_)) => {}
                Err(PutError::Failed(_, e)) if e.kind() == QKind::Resources => {
                    c.add(Count::NoDesc);
                }
                Err(e) => bad(format!("put failed: {e}")),
            },
            4 => match q.try_get() {
                Ok((n, k)) => {
                    if n != got || k != check(n) {
                        bad(format!("got message {n} (check {k:#x}), expected {got}"));
                    }
                    got = n + 1;
                }
                Err(GetError::Empty) => {}
                Err(e) => bad(format!("get failed: {e}")),
            },
            5 => {
                *m.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                counted += 1;
            }
            _ => {
                // Use up the descriptors left, or give some back.
                if rng.below(2) == 0 {
                    while let Ok(f) = std::fs::File::open("/dev/null") {
                        hoard.push(f);
                    }
                } else {
                    hoard.truncate(hoard.len().saturating_sub(4));
                }
            }
        }
        if let Some((s, b)) = kept.get(rng.below(kept.len().max(1) as u64) as usize) {
            let mut buf = [0u8];
            if s.read(s.size() - 1, &mut buf).is_err() || buf[0] != *b {
                bad(format!("segment {} lost its bytes", s.name()));
            }
        }
    }

    // The fault passes.
    drop(hoard);
    let _ = set_nofile_limit(old_limit);
    resize_dev_shm(256 * MIB as u64);
    for (s, b) in &kept {
        let mut buf = [0u8; 1];
        if s.read(0, &mut buf).is_err() || buf[0] != *b {
            bad(format!("segment {} lost its bytes after the fault", s.name()));
        }
    }
    drop(kept);
    for _ in 0..4 {
        if let Err(e) = SharedMemory::create(2 * MIB).and_then(|s| s.write(2 * MIB - 1, &[1])) {
            bad(format!("segment creation after the fault: {e}"));
        }
        if let Err(e) = Arena::new(MIB) {
            bad(format!("arena creation after the fault: {e}"));
        }
    }
    while got < sent {
        match q.get_timeout(Duration::from_secs(5)) {
            Ok((n, k)) if n == got && k == check(n) => got += 1,
            Ok((n, _)) => {
                bad(format!("got message {n} after the fault, expected {got}"));
                got = n + 1;
            }
            Err(e) => {
                bad(format!("{} messages lost: {e}", sent - got));
                break;
            }
        }
    }
    c.set(Count::Msgs, got);
    let total = *m.lock().unwrap_or_else(|p| p.into_inner());
    if total != counted {
        bad(format!("the mutex counted {total}, {counted} increments were made"));
    }
}
