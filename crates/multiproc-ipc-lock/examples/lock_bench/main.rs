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

    /// ns per call of `f` run `n` times.
    fn per_op(n: u64, mut f: impl FnMut()) -> f64 {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        t.elapsed().as_nanos() as f64 / n as f64
    }

    /// ns per operation of taking the guard `take` returns (and dropping it), `n` times.
    fn per_guard<G>(n: u64, take: impl Fn() -> G) -> f64 {
        per_op(n, || {
            let g = take();
            black_box(&g);
        })
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

    /// Runs every case once per round, `rounds` times (so that each round compares cases
    /// measured moments apart on a noisy machine); prints each case's median and the median
    /// of its per-round ratio to the first case (the floor).
    fn table(title: &str, rounds: usize, cases: &mut [(&str, &mut dyn FnMut() -> f64)]) {
        let mut t: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
        for _ in 0..rounds {
            for (i, (_, f)) in cases.iter_mut().enumerate() {
                t[i].push(f());
            }
        }
        println!("{title} (median of {rounds} rounds):");
        for (i, (name, _)) in cases.iter().enumerate() {
            let ratios: Vec<f64> = t[i].iter().zip(&t[0]).map(|(a, b)| a / b).collect();
            println!("  {name:<28} {:7.1} ns  {:5.2}x floor", median(t[i].clone()), median(ratios));
        }
    }

    pub(crate) fn main() {
        let n = 1_000_000;
        let floor = Shared::new(FutexMutex(AtomicU32::new(0))).unwrap();
        let robust = Shared::new(RobustMutex::new()).unwrap();
        robust.init();
        let lock = Lock::new().unwrap();
        let rlock = RLock::new().unwrap();
        let mutex = Mutex::new(0u64).unwrap();
        let sem = Semaphore::new(1).unwrap();
        let rw = RwLock::new(0u64).unwrap();
        let plain = Shared::new(AtomicU64::new(0)).unwrap();

        table(
            "uncontended acquire+release",
            15,
            &mut [
                ("raw futex mutex (floor)", &mut || {
                    per_op(n, || {
                        floor.lock();
                        black_box(&floor);
                        floor.unlock();
                    })
                }),
                ("pthread robust pshared", &mut || {
                    per_op(n, || {
                        robust.lock();
                        black_box(&robust);
                        robust.unlock();
                    })
                }),
                ("Lock::lock guard", &mut || per_guard(n, || lock.lock().unwrap())),
                ("Lock acquire/release", &mut || {
                    per_op(n, || {
                        lock.acquire_with(true, None).unwrap();
                        lock.release().unwrap();
                    })
                }),
                ("Mutex<u64> += 1", &mut || per_op(n, || *mutex.lock().unwrap() += 1)),
                ("RLock::lock guard", &mut || per_guard(n, || rlock.lock().unwrap())),
                ("Semaphore permit", &mut || per_guard(n, || sem.permit())),
                ("RwLock read", &mut || per_guard(n, || rw.read().unwrap())),
                ("RwLock write", &mut || per_op(n, || *rw.write().unwrap() += 1)),
            ],
        );

        let n2 = 300_000;
        table(
            "two processes contending, per acquire+increment+release",
            9,
            &mut [
                ("raw futex mutex (floor)", &mut || {
                    two_procs(n2, || {
                        floor.lock();
                        plain.fetch_add(1, Ordering::Relaxed);
                        floor.unlock();
                    })
                }),
                ("pthread robust pshared", &mut || {
                    two_procs(n2, || {
                        robust.lock();
                        plain.fetch_add(1, Ordering::Relaxed);
                        robust.unlock();
                    })
                }),
                ("Mutex<u64> += 1", &mut || two_procs(n2, || *mutex.lock().unwrap() += 1)),
                ("Lock::lock guard", &mut || {
                    two_procs(n2, || {
                        let _g = lock.lock().unwrap();
                        plain.fetch_add(1, Ordering::Relaxed);
                    })
                }),
            ],
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
