//! `ipc-channel` (Servo's typed channels between processes; unix sockets on Linux, postcard
//! encoding). Channels made before the fork are inherited by the child (descriptors), as a
//! pipe is.
//!
//! - `pipe.rtt_blocking`: a u64 to an echo child and back over two `IpcSender<u64>` channels,
//!   blocking `recv`, every answer checked.
//! - `queue.1to1_u64`: a child sends u64s over one channel, the parent receives and checks every
//!   value.
//! - `pipe.throughput_1mib`: 1 MiB messages over a bytes channel, the receiver (child) compares
//!   every byte and acknowledges each group, as the multiproc case does.

use super::Peer;
use crate::cases::{fork, mb_per_s, timed, us_per, Opts, Start};
use ipc_channel::ipc;
use std::time::Instant;

pub(crate) const PEERS: &[Peer] = &[
    Peer {
        case: "pipe.rtt_blocking",
        name: "ipc-channel",
        run: rtt_blocking,
        about: "u64 there and back over two IpcSender<u64> channels, blocking recv",
    },
    Peer {
        case: "pipe.throughput_1mib",
        name: "ipc-channel",
        run: throughput_1mib,
        about: "1 MiB messages over an IpcBytesSender, every byte compared by the receiver",
    },
    Peer {
        case: "queue.1to1_u64",
        name: "ipc-channel",
        run: q1to1_u64,
        about: "u64s over an IpcSender<u64>, 1 process → 1, every value checked",
    },
];

fn rtt_blocking(o: &Opts) -> f64 {
    let n = o.iters(30_000, 10_000);
    let (ping_tx, ping_rx) = ipc::channel::<Option<u64>>().expect("channel");
    let (pong_tx, pong_rx) = ipc::channel::<u64>().expect("channel");
    let child = fork(|| {
        while let Some(v) = ping_rx.recv().expect("recv") {
            pong_tx.send(v).expect("send");
        }
    });
    let d = timed(o.warm(n), n, |i| {
        ping_tx.send(Some(i)).expect("send");
        assert_eq!(pong_rx.recv().expect("recv"), i);
    });
    ping_tx.send(None).expect("send");
    child.join();
    us_per(d, n)
}

fn q1to1_u64(o: &Opts) -> f64 {
    // ipc-channel does one sendmsg per message, ~1M/s: a tenth of the queue case's count
    // still lasts seconds.
    let n = o.iters(2_000_000, 600_000);
    let warm = 1000;
    let (tx, rx) = ipc::channel::<u64>().expect("channel");
    let start = Start::new();
    let child = fork(|| {
        for i in 0..warm {
            tx.send(i).expect("send");
        }
        start.ready_then_wait();
        for i in warm..warm + n {
            tx.send(i).expect("send");
        }
    });
    for i in 0..warm {
        assert_eq!(rx.recv().expect("recv"), i);
    }
    let t = start.go(1);
    for i in warm..warm + n {
        assert_eq!(rx.recv().expect("recv"), i, "order");
    }
    let d = t.elapsed();
    child.join();
    n as f64 / d.as_secs_f64()
}

fn throughput_1mib(o: &Opts) -> f64 {
    const MIB: usize = 1 << 20;
    let n = o.iters(4_000, 1_500);
    let warm = o.warm(n);
    let payload: Vec<u8> = (0..MIB).map(|i| ((i % 256) * 7 + 3) as u8).collect();
    let (tx, rx) = ipc::bytes_channel().expect("channel");
    let (ok_tx, ok_rx) = ipc::channel::<bool>().expect("channel");
    let child = fork(|| {
        for count in [warm, n] {
            for _ in 0..count {
                let got = rx.recv().expect("recv");
                assert!(got == payload, "a message arrived changed");
            }
            ok_tx.send(true).expect("send ok");
        }
    });
    for _ in 0..warm {
        tx.send(&payload).expect("send");
    }
    assert!(ok_rx.recv().expect("ok"));
    let t = Instant::now();
    for _ in 0..n {
        tx.send(&payload).expect("send");
    }
    assert!(ok_rx.recv().expect("ok"));
    let d = t.elapsed();
    child.join();
    mb_per_s(MIB as u64 * n, d)
}
