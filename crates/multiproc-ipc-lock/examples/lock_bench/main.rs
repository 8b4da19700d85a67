//! Quick release-mode figures for the locks:
//! `cargo run --release -p multiproc-ipc-lock --example lock_bench`.
//!
//! Prints, in one run: ns per uncontended acquire+release of a raw futex mutex (the floor),
//! glibc's process-shared robust mutex and this crate's primitives; two processes contending
//! for each mutex; Event set→wake latency across processes; one Barrier round of two
//! processes. Medians of repeated runs.

#[cfg(not(multiproc_loom))]
mod sys;

#[cfg(multiproc_loom)]
fn main() {}

#[cfg(not(multiproc_loom))]
fn main() {
    bench::main()
}

#[cfg(not(multiproc_loom))]
mod bench {
    use crate::sys::RobustMutex;
    use multiproc_arena::futex;
    use multiproc_arena::sync::atomic::{AtomicU32, AtomicU64, Ordering};
    use multiproc_arena::testing::fork;
    use multiproc_arena::{Shared, ShmSafe};
    use multiproc_ipc_lock::{Barrier, Event, Lock, Mutex, RLock, RwLock, Semaphore};
    use std::hint::black_box;
    use std::time::{Duration, Instant};

    /// The floor: Drepper's three-state futex mutex (0 free, 1 locked, 2 locked + waiters)
    /// with the same bounded spin as the crate's locks.
    #[repr(transparent)]
    pub(crate) struct FutexMutex(AtomicU32);

    // SAFETY: one atomic word.
    unsafe impl ShmSafe for FutexMutex {}

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

    /// ns per operation with two processes each running `f` `n` times at once.
    fn two_procs(n: u64, f: impl Fn() + Copy) -> f64 {
        let go = Shared::new(AtomicU32::new(0)).unwrap();
        let child = fork(|| {
            go.fetch_add(1, Ordering::SeqCst);
            while go.load(Ordering::SeqCst) < 2 {
                std::hint::spin_loop();
            }
            for _ in 0..n {
                f();
            }
            0
        });
        while go.load(Ordering::SeqCst) < 1 {
            std::hint::spin_loop();
        }
        let t = Instant::now();
        go.fetch_add(1, Ordering::SeqCst);
        for _ in 0..n {
            f();
        }
        child.expect_success(Duration::from_secs(60));
        t.elapsed().as_nanos() as f64 / (2 * n) as f64
    }

    fn contended(reps: usize, n: u64, f: impl Fn() + Copy) -> f64 {
        median((0..reps).map(|_| two_procs(n, f)).collect())
    }

    pub(crate) fn main() {
        let n = 2_000_000;
        let reps = 7;
        let floor = Shared::new(FutexMutex(AtomicU32::new(0))).unwrap();
        let robust = Shared::new(RobustMutex::new()).unwrap();
        robust.init();
        let lock = Lock::new().unwrap();
        let rlock = RLock::new().unwrap();
        let mutex = Mutex::new(0u64).unwrap();
        let sem = Semaphore::new(1).unwrap();
        let rw = RwLock::new(0u64).unwrap();
        let plain = Shared::new(AtomicU64::new(0)).unwrap();

        println!("uncontended acquire+release, ns (median of {reps} x {n}):");
        let f = per_op(reps, n, || {
            floor.lock();
            black_box(&floor);
            floor.unlock();
        });
        let row = |name: &str, v: f64| println!("  {name:<28} {v:7.1}  ({:.2}x floor)", v / f);
        row("raw futex mutex (floor)", f);
        row(
            "pthread robust pshared",
            per_op(reps, n, || {
                robust.lock();
                black_box(&robust);
                robust.unlock();
            }),
        );
        row(
            "Lock::lock guard",
            per_op(reps, n, || {
                let g = lock.lock().unwrap();
                black_box(&g);
            }),
        );
        row(
            "Lock acquire/release",
            per_op(reps, n, || {
                lock.acquire(true, None).unwrap();
                lock.release().unwrap();
            }),
        );
        row("Mutex<u64> += 1", per_op(reps, n, || *mutex.lock().unwrap() += 1));
        row(
            "RLock::lock guard",
            per_op(reps, n, || {
                let g = rlock.lock().unwrap();
                black_box(&g);
            }),
        );
        row(
            "Semaphore permit",
            per_op(reps, n, || {
                let g = sem.permit();
                black_box(&g);
            }),
        );
        row(
            "RwLock read",
            per_op(reps, n, || {
                let g = rw.read().unwrap();
                black_box(&g);
            }),
        );
        row("RwLock write", per_op(reps, n, || *rw.write().unwrap() += 1));

        let n2 = 1_000_000;
        let r2 = 5;
        println!("two processes contending, ns per acquire+increment+release (median of {r2}):");
        let cf = contended(r2, n2, || {
            floor.lock();
            plain.fetch_add(1, Ordering::Relaxed);
            floor.unlock();
        });
        let row2 = |name: &str, v: f64| println!("  {name:<28} {v:7.1}  ({:.2}x floor)", v / cf);
        row2("raw futex mutex (floor)", cf);
        row2(
            "pthread robust pshared",
            contended(r2, n2, || {
                robust.lock();
                plain.fetch_add(1, Ordering::Relaxed);
                robust.unlock();
            }),
        );
        row2("Mutex<u64> += 1", contended(r2, n2, || *mutex.lock().unwrap() += 1));
        row2(
            "Lock::lock guard",
            contended(r2, n2, || {
                let _g = lock.lock().unwrap();
                plain.fetch_add(1, Ordering::Relaxed);
            }),
        );

        // Event ping-pong: one set→wake each way per round.
        let rounds = 20_000;
        let (ping, pong) = (Event::new().unwrap(), Event::new().unwrap());
        let lat: Vec<f64> = (0..5)
            .map(|_| {
                let child = fork(|| {
                    for _ in 0..rounds {
                        ping.wait();
                        ping.clear();
                        pong.set();
                    }
                    0
                });
                let t = Instant::now();
                for _ in 0..rounds {
                    ping.set();
                    pong.wait();
                    pong.clear();
                }
                let dt = t.elapsed();
                child.expect_success(Duration::from_secs(60));
                dt.as_nanos() as f64 / (2 * rounds) as f64
            })
            .collect();
        println!("Event set->wake across processes (ping-pong / 2): {:.2} us", median(lat) / 1e3);

        let b = Barrier::new(2).unwrap();
        let rounds = 20_000;
        let br: Vec<f64> = (0..5)
            .map(|_| {
                let child = fork(|| {
                    for _ in 0..rounds {
                        b.wait().unwrap();
                    }
                    0
                });
                let t = Instant::now();
                for _ in 0..rounds {
                    b.wait().unwrap();
                }
                let dt = t.elapsed();
                child.expect_success(Duration::from_secs(60));
                dt.as_nanos() as f64 / rounds as f64
            })
            .collect();
        println!("Barrier round, 2 processes: {:.2} us", median(br) / 1e3);
        assert!(mutex.lock().is_ok());
    }
}
