//! The hardware floors: the cheapest way the kernel and the memory system offer to do what a
//! case does, written with raw libc (`crate::sys`) and nothing around it. Each case is read
//! against one of these, measured in the same run.

use super::{
    fork, lock_contended_2proc, lock_uncontended, mb_per_s, timed, us_per, Better, Case, Floor,
    Opts, Start,
};
use crate::sys;
use std::hint::black_box;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const fn floor(
    name: &'static str,
    unit: &'static str,
    better: Better,
    run: fn(&Opts) -> f64,
    about: &'static str,
) -> Case {
    Case { name, unit, better, floor: Floor::None, rust: Some(run), python: false, about }
}

pub(crate) const CASES: &[Case] = &[
    floor(
        "floor.fork_exit_wait",
        "µs",
        Better::Lower,
        fork_exit_wait,
        "fork(); the child _exit(0)s at once; the parent waitpid()s (small parent)",
    ),
    floor(
        "floor.fork_exit_wait_256mib",
        "µs",
        Better::Lower,
        fork_exit_wait_256mib,
        "the same from a parent holding 256 MiB of touched memory (why forkserver exists)",
    ),
    floor(
        "floor.posix_spawn",
        "µs",
        Better::Lower,
        posix_spawn,
        "posix_spawn of this benchmark binary (`noop` subcommand: exits at once) + waitpid",
    ),
    floor(
        "floor.socketpair_rtt",
        "µs",
        Better::Lower,
        socketpair_rtt,
        "8 bytes there and back between two processes over a socketpair, blocking read/write",
    ),
    floor(
        "floor.futex_rtt",
        "µs",
        Better::Lower,
        futex_rtt,
        "a shared word handed back and forth between two processes, FUTEX_WAIT/FUTEX_WAKE",
    ),
    floor(
        "floor.spin_rtt",
        "µs",
        Better::Lower,
        spin_rtt,
        "a shared word handed back and forth between two busy-spinning processes",
    ),
    floor(
        "floor.spsc_ring_u64",
        "msgs/s",
        Better::Higher,
        spsc_ring_u64,
        "u64s through a 1024-slot single-producer single-consumer ring in shared memory, \
         one index store per message (unbatched), consumer checks every value",
    ),
    floor(
        "floor.shm_ring_1mib",
        "MB/s",
        Better::Higher,
        shm_ring_1mib,
        "1 MiB messages through a 4 MiB ring in shared memory: the producer copies each in, the \
         consumer compares it in place (every byte) and frees the slot",
    ),
    floor(
        "floor.shm_ring_64kib",
        "MB/s",
        Better::Higher,
        shm_ring_64kib,
        "the same with 64 KiB messages",
    ),
    floor(
        "floor.memfd_first_touch_64mib",
        "MB/s",
        Better::Higher,
        memfd_first_touch_64mib,
        "64 MiB written word by word into a fresh memfd mapping (first touch: every page \
         allocated and faulted in), then read back and checked; memfd, mapping made and freed \
         each round",
    ),
    floor(
        "floor.futex_mutex",
        "ns",
        Better::Lower,
        futex_mutex,
        "uncontended acquire+release of a minimal futex mutex (std's algorithm) on a shared word",
    ),
    floor(
        "floor.futex_mutex_2proc",
        "ns",
        Better::Lower,
        futex_mutex_2proc,
        "two processes each acquire, increment a shared counter, release: wall time / all ops",
    ),
    floor(
        "floor.shm_lifecycle_4kib",
        "µs",
        Better::Lower,
        shm_lifecycle_4kib,
        "shm_open(O_EXCL)+ftruncate+mmap+write, shm_open+fstat+mmap+read, munmap/close both, \
         shm_unlink",
    ),
];

fn fork_once() {
    // SAFETY: the case process is single-threaded.
    match unsafe { sys::fork() }.expect("fork") {
        0 => sys::exit_now(0),
        pid => sys::check_status(sys::wait(pid).expect("waitpid")).expect("child"),
    }
}

fn fork_exit_wait(o: &Opts) -> f64 {
    let n = o.iters(400, 150);
    us_per(timed(o.warm(n), n, |_| fork_once()), n)
}

fn fork_exit_wait_256mib(o: &Opts) -> f64 {
    let big = vec![1u8; 256 << 20]; // written, so every page is present
    black_box(&big);
    let n = o.iters(30, 10);
    let r = us_per(timed(o.warm(n), n, |_| fork_once()), n);
    drop(black_box(big));
    r
}

fn posix_spawn(o: &Opts) -> f64 {
    let sp = sys::Spawner::new("/proc/self/exe", &["bench-runner", "noop"]).expect("spawner");
    let n = o.iters(60, 25);
    let d = timed(o.warm(n), n, |_| {
        let pid = sp.spawn().expect("posix_spawn");
        sys::check_status(sys::wait(pid).expect("waitpid")).expect("noop child");
    });
    us_per(d, n)
}

fn socketpair_rtt(o: &Opts) -> f64 {
    let n = o.iters(30_000, 10_000);
    let warm = o.warm(n);
    let (a, b) = sys::socketpair().expect("socketpair");
    let child = fork(move || {
        let mut buf = [0u8; 8];
        while sys::read_exact(b.as_fd(), &mut buf).expect("read") {
            if buf == u64::MAX.to_le_bytes() {
                break;
            }
            sys::write_all(b.as_fd(), &buf).expect("write");
        }
    }); // the parent's copy of `b` is dropped here
    let mut buf = [0u8; 8];
    let d = timed(warm, n, |i| {
        sys::write_all(a.as_fd(), &i.to_le_bytes()).expect("write");
        assert!(sys::read_exact(a.as_fd(), &mut buf).expect("read"));
        assert_eq!(u64::from_le_bytes(buf), i);
    });
    sys::write_all(a.as_fd(), &u64::MAX.to_le_bytes()).expect("write");
    child.join();
    us_per(d, n)
}

/// Round trips over one shared word: the parent publishes odd values, the child answers with
/// the next even one. `wait(word, current)` blocks until the word may have changed.
fn word_ping_pong(o: &Opts, n: u64, wait: fn(&AtomicU32, u32), wake: fn(&AtomicU32)) -> f64 {
    let warm = o.warm(n);
    let total = (warm + n) as u32;
    let map = sys::SharedMap::new(4096).expect("mmap");
    let w = map.u32_at(0);
    let await_value = |want: u32| loop {
        let v = w.load(Ordering::Acquire);
        if v == want {
            break;
        }
        wait(w, v);
    };
    let child = fork(|| {
        for k in 0..total {
            await_value(2 * k + 1);
            w.store(2 * k + 2, Ordering::Release);
            wake(w);
        }
    });
    let d = timed(warm, n, |i| {
        let k = i as u32;
        w.store(2 * k + 1, Ordering::Release);
        wake(w);
        await_value(2 * k + 2);
    });
    child.join();
    us_per(d, n)
}

fn futex_rtt(o: &Opts) -> f64 {
    word_ping_pong(o, o.iters(30_000, 10_000), sys::futex_wait, |w| sys::futex_wake(w, 1))
}

fn spin_rtt(o: &Opts) -> f64 {
    word_ping_pong(o, o.iters(300_000, 100_000), |_, _| std::hint::spin_loop(), |_| {})
}

/// The two ends of a single-producer single-consumer ring of `cap` slots in `map`: `head` (the
/// consumer's index) at byte 0 and `tail` (the producer's) at 128, on their own cache lines.
/// Unbatched: for every message each side reads the other's index and publishes its own (no
/// cached index, no batch publish), as a queue's put/get pair does. A forked producer waits
/// for a free slot and `produce(i)` fills message `i`'s; this process waits for message `i` and
/// `consume(i)` checks it in place (nonzero: a wrong message). Returns the time of the last `n`
/// of `warm + n` messages and the OR of what `consume` returned.
fn spsc_ring(
    map: &sys::SharedMap,
    cap: u64,
    warm: u64,
    n: u64,
    produce: impl Fn(u64),
    mut consume: impl FnMut(u64) -> u64,
) -> (Duration, u64) {
    let head = map.u64_at(0);
    let tail = map.u64_at(128);
    let start = Start::new();
    let total = warm + n;
    let child = fork(|| {
        start.ready_then_wait();
        for i in 0..total {
            while i - head.load(Ordering::Acquire) >= cap {
                std::hint::spin_loop();
            }
            produce(i);
            tail.store(i + 1, Ordering::Release);
        }
    });
    let mut bad = 0u64;
    let mut take = |i: u64| {
        while i >= tail.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        bad |= consume(i);
        head.store(i + 1, Ordering::Release);
    };
    start.go(1);
    (0..warm).for_each(&mut take);
    let t = Instant::now();
    (warm..total).for_each(&mut take);
    let d = t.elapsed();
    child.join();
    (d, bad)
}

/// A minimal SPSC ring ([`spsc_ring`]) of 1024 u64 slots in a shared mapping; the consumer
/// checks every value.
fn spsc_ring_u64(o: &Opts) -> f64 {
    const CAP: u64 = 1024;
    const SLOTS: usize = 256;
    let n = o.iters(20_000_000, 6_000_000);
    let map = sys::SharedMap::new(SLOTS + CAP as usize * 8).expect("mmap");
    let slot = |i: u64| map.u64_at(SLOTS + (i % CAP) as usize * 8);
    let value = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let (d, bad) = spsc_ring(
        &map,
        CAP,
        o.warm(n),
        n,
        |i| slot(i).store(value(i), Ordering::Relaxed),
        |i| slot(i).load(Ordering::Relaxed) ^ value(i),
    );
    assert_eq!(bad, 0, "the ring delivered a wrong value");
    n as f64 / d.as_secs_f64()
}

/// Byte messages of `size` through a ring ([`spsc_ring`]) of 4 MiB of slots in a shared
/// mapping: the producer copies the payload in and stamps the message index in its first word;
/// the consumer checks the stamp and compares every other byte in place. The least a message
/// channel can do: one copy in, one read out.
fn shm_ring_bytes(o: &Opts, size: usize, n: u64) -> f64 {
    // A 4 MiB ring whatever the message size: measured here, it beats rings that fit in L2
    // (lines bounce between the cores' caches) and rings larger than needed.
    let slots = ((4 << 20) / size).max(2) as u64;
    const DATA: usize = 4096;
    let map = sys::SharedMap::new(DATA + slots as usize * size).expect("mmap");
    let slot = |i: u64| {
        // SAFETY: slot `i % slots` lies inside the mapping; the ring protocol (head/tail with
        // acquire/release) gives it to one side at a time.
        unsafe { map.as_ptr().add(DATA + (i % slots) as usize * size) }
    };
    let payload: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
    let produce = |i: u64| {
        // SAFETY: the slot is free (the consumer is done with it) and `size` long.
        let dst = unsafe { std::slice::from_raw_parts_mut(slot(i), size) };
        dst.copy_from_slice(&payload);
        dst[..8].copy_from_slice(&i.to_le_bytes());
    };
    let consume = |i: u64| {
        // SAFETY: the slot holds a published message, ours until head moves past it.
        let msg = unsafe { std::slice::from_raw_parts(slot(i), size) };
        u64::from(msg[..8] != i.to_le_bytes() || msg[8..] != payload[8..])
    };
    let (d, bad) = spsc_ring(&map, slots, o.warm(n), n, produce, consume);
    assert_eq!(bad, 0, "the ring delivered a wrong message");
    mb_per_s(size as u64 * n, d)
}

fn shm_ring_1mib(o: &Opts) -> f64 {
    shm_ring_bytes(o, 1 << 20, o.iters(16_000, 2_000))
}

fn shm_ring_64kib(o: &Opts) -> f64 {
    shm_ring_bytes(o, 64 << 10, o.iters(250_000, 30_000))
}

/// The work of `shm.write_64mib` with nothing around it: per round, a fresh memfd of 64 MiB is
/// mapped shared, written word by word (word `i` is `seed + i`, as the case writes; every page
/// is allocated and faulted in by the first write to it), read back and checked, unmapped and
/// closed. The case's segment instead keeps its pages between rounds (its child only faults its
/// page tables in), so it may run above this floor.
fn memfd_first_touch_64mib(o: &Opts) -> f64 {
    const LEN: usize = 64 << 20;
    const WORDS: usize = LEN / 8;
    let n = o.iters(12, 5);
    let round = |k: u64| {
        let s = (k + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let map = sys::MemfdMap::new(LEN).expect("memfd");
        // SAFETY: the mapping holds LEN bytes, page aligned, used only through this slice.
        let w = unsafe { std::slice::from_raw_parts_mut(map.as_ptr().cast::<u64>(), WORDS) };
        for (i, x) in w.iter_mut().enumerate() {
            *x = s.wrapping_add(i as u64);
        }
        let bad = black_box(&*w)
            .iter()
            .enumerate()
            .fold(0u64, |b, (i, x)| b | (x ^ s.wrapping_add(i as u64)));
        assert_eq!(bad, 0, "read back something else");
    };
    let d = timed(1, n, round);
    mb_per_s(LEN as u64 * n, d)
}

/// Rust std's futex mutex (library/std/src/sys/sync/mutex/futex.rs) on a shared word:
/// 0 unlocked, 1 locked, 2 locked with waiters.
struct RawMutex<'a>(&'a AtomicU32);

impl RawMutex<'_> {
    #[inline]
    fn lock(&self) {
        if self.0.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_contended();
        }
    }

    #[cold]
    fn lock_contended(&self) {
        let spin = || {
            let mut n = 100;
            loop {
                let s = self.0.load(Ordering::Relaxed);
                if s != 1 || n == 0 {
                    return s;
                }
                std::hint::spin_loop();
                n -= 1;
            }
        };
        let mut state = spin();
        if state == 0 {
            match self.0.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return,
                Err(s) => state = s,
            }
        }
        loop {
            if state != 2 && self.0.swap(2, Ordering::Acquire) == 0 {
                return;
            }
            sys::futex_wait(self.0, 2);
            state = spin();
        }
    }

    #[inline]
    fn unlock(&self) {
        if self.0.swap(0, Ordering::Release) == 2 {
            sys::futex_wake(self.0, 1);
        }
    }
}

fn futex_mutex(o: &Opts) -> f64 {
    let map = sys::SharedMap::new(4096).expect("mmap");
    let m = RawMutex(map.u32_at(0));
    lock_uncontended(o, || {
        m.lock();
        m.unlock();
    })
}

fn futex_mutex_2proc(o: &Opts) -> f64 {
    let map = sys::SharedMap::new(4096).expect("mmap");
    let m = RawMutex(map.u32_at(0));
    lock_contended_2proc(o, map.u64_at(64), || m.lock(), |()| m.unlock())
}

fn shm_lifecycle_4kib(o: &Opts) -> f64 {
    let pid = std::process::id();
    let n = o.iters(6_000, 2_000);
    let names: Vec<std::ffi::CString> = (0..o.warm(n) + n)
        .map(|i| std::ffi::CString::new(format!("/mpbench-floor-{pid}-{i}")).unwrap())
        .collect();
    let d = timed(o.warm(n), n, |i| {
        sys::shm_lifecycle(&names[i as usize], 4096, i ^ 0x5A5A).expect("shm lifecycle");
    });
    us_per(d, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::spin_until;

    #[test]
    fn raw_mutex_single_process() {
        let map = sys::SharedMap::new(4096).unwrap();
        let m = RawMutex(map.u32_at(0));
        m.lock();
        assert_eq!(map.u32_at(0).load(Ordering::Relaxed), 1);
        m.unlock();
        assert_eq!(map.u32_at(0).load(Ordering::Relaxed), 0);
    }

    #[test]
    fn spin_helper_returns() {
        let mut k = 0;
        spin_until(|| {
            k += 1;
            k > 3
        });
    }
}
