//! `pipe.*`: Pipe/Connection between two processes (multiproc-ipc-pipe; CPython's
//! `multiprocessing.Pipe`).
//!
//! As in benches/python/bench.py: a forked echo child for the round trips (a u64 as a serde
//! value, `None` to stop, every answer checked); a forked receiver that compares every 1 MiB
//! message with the payload and acknowledges each group, for the throughput. The receiver
//! compares each message in place (`recv_bytes_with`: a message of up to 2 MiB lies in the
//! pipe's shared bulk ring), as `floor.shm_ring_1mib` and the iceoryx2 peer do; CPython's
//! side takes it into a reused buffer (`recv_bytes_into`).

use super::{fork, mb_per_s, us_per, Better, Case, Floor, Opts};
use multiproc_ipc_pipe::{Connection, Pipe};
use std::time::{Duration, Instant};

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "pipe.rtt_blocking",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::Case("floor.socketpair_rtt"),
        rust: Some(rtt_blocking),
        python: true,
        about: "send a u64, the echo child receives it (blocked in recv) and sends it back",
    },
    Case {
        name: "pipe.rtt_active",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::Case("floor.spin_rtt"),
        rust: Some(rtt_active),
        python: true,
        about: "the same round trip while both sides poll actively instead of sleeping",
    },
    Case {
        name: "pipe.throughput_1mib",
        unit: "MB/s",
        better: Better::Higher,
        floor: Floor::Case("floor.shm_ring_1mib"),
        rust: Some(throughput_1mib),
        python: true,
        about: "one-way 1 MiB byte messages; the receiver compares every message with the payload",
    },
];

/// How long the receivers of `pipe.rtt_active` retry before they would sleep
/// ([`Connection::set_spin`]): far longer than a round trip on a quiet machine, so, as
/// CPython's `poll(0)` loop, they wait actively for every answer; a peer that is descheduled
/// (more runnable processes than cores) costs at most this before the receiver sleeps.
const ACTIVE_SPIN: Duration = Duration::from_micros(100);

/// Round trips of a u64 to a forked echo child: µs each. `spin`: both receivers'
/// [`Connection::set_spin`].
fn rtt(o: &Opts, n: u64, spin: Duration) -> f64 {
    let (a, b) = Pipe::new().expect("pipe");
    a.set_spin(spin);
    b.set_spin(spin);
    let child = fork(move || {
        while let Some(v) = b.recv::<Option<u64>>().expect("recv") {
            b.send(&Some(v)).expect("send");
        }
    }); // the parent's copy of `b` is dropped here
    let one = |i: u64| {
        a.send(&Some(i)).expect("send");
        assert_eq!(a.recv::<Option<u64>>().expect("recv"), Some(i));
    };
    // Spinning receivers: a warm-up of at least SPIN_WARM (see timed_warm_for).
    let min_warm = if spin > Duration::ZERO { super::SPIN_WARM } else { Duration::ZERO };
    let d = super::timed_warm_for(min_warm, o.warm(n), n, one);
    a.send(&None::<u64>).expect("send");
    child.join();
    us_per(d, n)
}

fn rtt_blocking(o: &Opts) -> f64 {
    rtt(o, o.iters(30_000, 10_000), Duration::ZERO)
}

fn rtt_active(o: &Opts) -> f64 {
    rtt(o, o.iters(50_000, 20_000), ACTIVE_SPIN)
}

/// CPython's `_payload(size)`: bytes `(i * 7 + 3) & 0xFF` for i in 0..256, repeated.
fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| ((i % 256) * 7 + 3) as u8).collect()
}

/// The receiver: for each group, `count` messages each compared with `payload` where they
/// lie (`recv_bytes_with`), then "ok".
fn sink(conn: &Connection, payload: &[u8], counts: [u64; 2]) {
    for count in counts {
        for _ in 0..count {
            let same = conn.recv_bytes_with(|m| m == payload).expect("recv_bytes_with");
            assert!(same, "a message arrived changed");
        }
        conn.send_bytes(b"ok").expect("send ok");
    }
}

fn throughput_1mib(o: &Opts) -> f64 {
    const MIB: usize = 1 << 20;
    let n = o.iters(4_000, 1_500);
    let warm = o.warm(n);
    let payload = payload(MIB);
    let (a, b) = Pipe::new().expect("pipe");
    let child = fork(|| sink(&b, &payload, [warm, n]));
    drop(b);
    let ok = |a: &Connection| assert_eq!(a.recv_bytes().expect("recv ok"), b"ok");
    for _ in 0..warm {
        a.send_bytes(&payload).expect("send_bytes");
    }
    ok(&a);
    let t = Instant::now();
    for _ in 0..n {
        a.send_bytes(&payload).expect("send_bytes");
    }
    ok(&a);
    let d = t.elapsed();
    child.join();
    mb_per_s(MIB as u64 * n, d)
}
