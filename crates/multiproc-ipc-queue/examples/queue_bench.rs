//! Release-mode measurements of the queue between real processes:
//!
//! `cargo run --release -p multiproc-ipc-queue --example queue_bench [-- quick]`
//!
//! - 1 producer -> 1 consumer, u64 messages (msgs/s);
//! - 4 producers -> 1 consumer, u64 messages (msgs/s);
//! - 64 KiB messages (payload GB/s);
//! - 8 MiB messages past a 1 MiB ring, spilled and (with `max_spilled(0)`) streamed;
//! - get-wake latency: a consumer blocked on an empty queue, time from `put` to `get`
//!   returning (median and 99th percentile).
//!
//! Each case runs a few times; the median is printed.

#[cfg(not(multiproc_loom))]
#[path = "../tests/common/mod.rs"]
mod common;

#[cfg(not(multiproc_loom))]
mod bench {
    use multiproc_arena::testing::fork;
    use multiproc_ipc_queue::Queue;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Bytes that serialise as one byte string (serde's default for `Vec<u8>` is a sequence
    /// of single bytes, which is far slower). Shared, so putting the same payload again costs
    /// no copy in the producer (as a Python producer putting one `bytes` object).
    #[derive(Debug, PartialEq)]
    struct Bytes(Arc<Vec<u8>>);

    impl Serialize for Bytes {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    impl<'de> Deserialize<'de> for Bytes {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            // The tests' byte string, moved into the shared buffer (no copy).
            crate::common::Bytes::deserialize(d).map(|b| Bytes(Arc::new(b.0)))
        }
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    }

    /// `producers` children put `per` u64 each; the parent gets them all. Returns msgs/s.
    fn u64_rate(producers: usize, per: u64, capacity: usize) -> f64 {
        let q: Queue<u64> = Queue::builder().capacity(capacity).build().unwrap();
        let go: Queue<u8> = Queue::new().unwrap();
        let kids: Vec<_> = (0..producers)
            .map(|_| {
                fork(|| {
                    go.get().unwrap();
                    for i in 0..per {
                        q.put(i).unwrap();
                    }
                    0
                })
            })
            .collect();
        // Warm the consumer's registration before the clock starts.
        let _ = q.try_get();
        let t = Instant::now();
        for _ in 0..producers {
            go.put(1).unwrap();
        }
        let total = per * producers as u64;
        let mut sum = 0u64;
        let debug = std::env::var_os("QUEUE_BENCH_QSIZE").is_some();
        let mut sizes = Vec::new();
        for k in 0..total {
            sum = sum.wrapping_add(q.get().unwrap());
            if debug && k % 100_000 == 0 {
                sizes.push(q.qsize());
            }
        }
        let dt = t.elapsed();
        if debug {
            eprintln!("qsize samples: {sizes:?}");
        }
        assert_eq!(sum, (per * (per - 1) / 2) * producers as u64);
        for k in kids {
            k.expect_success(Duration::from_secs(30));
        }
        total as f64 / dt.as_secs_f64()
    }

    /// One child puts `count` messages of `size` bytes; the parent gets them. Returns GB/s.
    /// `spills`: how many large messages may be spilled at once (0: all are streamed).
    fn bytes_rate(size: usize, count: usize, capacity: usize, spills: usize) -> f64 {
        let q: Queue<Bytes> =
            Queue::builder().capacity(capacity).max_spilled(spills).build().unwrap();
        let go: Queue<u8> = Queue::new().unwrap();
        let kid = fork(|| {
            let msg = Arc::new(vec![0x5au8; size]);
            go.get().unwrap();
            for _ in 0..count {
                q.put(Bytes(msg.clone())).unwrap();
            }
            0
        });
        let _ = q.try_get();
        let t = Instant::now();
        go.put(1).unwrap();
        let mut n = 0usize;
        for _ in 0..count {
            n += q.get().unwrap().0.len();
        }
        let dt = t.elapsed();
        assert_eq!(n, size * count);
        kid.expect_success(Duration::from_secs(30));
        n as f64 / dt.as_secs_f64() / 1e9
    }

    /// The parent puts a timestamp every ~200 µs into an empty queue a blocked child waits on;
    /// the child reports put->get latencies (ns) back. Returns (median, p99) in µs.
    fn wake_latency(rounds: usize) -> (f64, f64) {
        let q: Queue<u64> = Queue::new().unwrap();
        let back: Queue<Vec<u64>> = Queue::builder().capacity(4 << 20).build().unwrap();
        let base = Instant::now();
        let kid = fork(|| {
            let mut lat = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                let sent = q.get().unwrap();
                let now = base.elapsed().as_nanos() as u64;
                lat.push(now - sent);
            }
            back.put(lat).unwrap();
            0
        });
        std::thread::sleep(Duration::from_millis(20));
        for _ in 0..rounds {
            std::thread::sleep(Duration::from_micros(200));
            q.put(base.elapsed().as_nanos() as u64).unwrap();
        }
        let mut lat = back.get_timeout(Duration::from_secs(30)).unwrap();
        kid.expect_success(Duration::from_secs(10));
        lat.sort_unstable();
        let p = |f: f64| lat[((lat.len() as f64 * f) as usize).min(lat.len() - 1)] as f64 / 1e3;
        (p(0.5), p(0.99))
    }

    /// CPU seconds used by this process and its waited-for children (from /proc/self/stat).
    fn cpu_secs() -> f64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let rest = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
        // fields 14..=17 (utime, stime, cutime, cstime), counted from the state (field 3) here.
        f.get(11..15).map(|v| v.iter().sum::<f64>()).unwrap_or(0.0) / 100.0
    }

    pub(crate) fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "quick");
        let only: Vec<&str> = args.iter().filter(|a| *a != "quick").map(|s| s.as_str()).collect();
        let want = |c: &str| only.is_empty() || only.contains(&c);
        let reps = if quick { 1 } else { 5 };
        let n = if quick { 2_000_000 } else { 10_000_000 };
        let cap = 4 << 20;

        if want("1to1") {
            let c = cpu_secs();
            let r = median((0..reps).map(|_| u64_rate(1, n, cap)).collect());
            let ns = (cpu_secs() - c) * 1e9 / (reps as f64 * n as f64);
            println!(
                "1->1 u64:        {:>8.2} M msgs/s   ({ns:.0} ns CPU per message, both sides)",
                r / 1e6
            );
        }
        if want("4to1") {
            let c = cpu_secs();
            let r = median((0..reps).map(|_| u64_rate(4, n / 4, cap)).collect());
            let ns = (cpu_secs() - c) * 1e9 / (reps as f64 * n as f64);
            println!(
                "4->1 u64:        {:>8.2} M msgs/s   ({ns:.0} ns CPU per message, all sides)",
                r / 1e6
            );
        }
        if want("64k") {
            let count = if quick { 20_000 } else { 100_000 };
            let c = cpu_secs();
            let gb = median((0..reps).map(|_| bytes_rate(64 << 10, count, 16 << 20, 64)).collect());
            let gbc = (reps * count) as f64 * 65536.0 / (cpu_secs() - c) / 1e9;
            println!("64 KiB messages: {:>8.2} GB/s   ({gbc:.2} GB per CPU-second)", gb);
        }
        if want("spill") {
            let big = median((0..reps).map(|_| bytes_rate(8 << 20, 100, 1 << 20, 64)).collect());
            println!("8 MiB messages past a 1 MiB ring (spilled):  {:>5.2} GB/s", big);
        }
        if want("stream") {
            let big = median((0..reps).map(|_| bytes_rate(8 << 20, 100, 1 << 20, 0)).collect());
            println!("8 MiB messages through a 1 MiB ring (streamed): {:>5.2} GB/s", big);
        }
        if want("wake") {
            let (p50, p99) = wake_latency(if quick { 500 } else { 2000 });
            println!("get-wake latency: median {p50:.1} µs, p99 {p99:.1} µs");
        }
    }
}

fn main() {
    #[cfg(not(multiproc_loom))]
    bench::main();
}
