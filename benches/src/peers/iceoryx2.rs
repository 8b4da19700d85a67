//! `iceoryx2` (zero-copy shared-memory publish/subscribe and events, `ipc::Service`).
//!
//! Each process builds its own node and ports after the fork (as two programs would), in an
//! order that has every subscriber (listener) exist before the publisher (notifier) that sends
//! to it, so nothing sent is lost; the timed window starts once both sides are connected.
//! Services are named after this process's pid, so runs do not meet.
//!
//! - round trips (`pipe.rtt_active`, `pipe.rtt_blocking`): a "ping" and a "pong" u64 service, an
//!   echo child; busy-poll: both receivers loop on `receive()`; blocking: each send is followed
//!   by an event notification and each receiver sleeps in `Listener::blocking_wait` until one
//!   arrives.
//! - `queue.1to1_u64`: one u64 publisher (child) → one subscriber (parent), subscriber buffer of
//!   4096 samples, no overflow (the publisher retries until delivered), every value checked.
//! - `pipe.throughput_1mib`: `[u8]` samples of 1 MiB, the publisher copies the payload into
//!   each loaned sample, the subscriber compares every byte in place; buffer of 4 samples (as
//!   the 4 MiB shared-memory ring floor).

use super::Peer;
use crate::cases::{fork, mb_per_s, us_per, Opts, Start};
use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::builder::publish_subscribe::Builder as PubSubBuilder;
use std::fmt::Debug;
use std::time::{Duration, Instant};

pub(crate) const PEERS: &[Peer] = &[
    Peer {
        case: "pipe.rtt_blocking",
        name: "iceoryx2",
        run: rtt_blocking,
        about: "u64 ping/pong pub/sub, each receiver sleeps in an event Listener",
    },
    Peer {
        case: "pipe.rtt_active",
        name: "iceoryx2",
        run: rtt_active,
        about: "u64 ping/pong pub/sub, both receivers busy-poll receive()",
    },
    Peer {
        case: "pipe.throughput_1mib",
        name: "iceoryx2",
        run: throughput_1mib,
        about: "1 MiB [u8] samples copied in, compared in place by the subscriber",
    },
    Peer {
        case: "queue.1to1_u64",
        name: "iceoryx2",
        run: q1to1_u64,
        about: "u64 publish/subscribe, 1 process → 1, buffer 4096, no overflow",
    },
];

type Node = iceoryx2::node::Node<ipc::Service>;

fn node() -> Node {
    set_log_level(LogLevel::Error);
    NodeBuilder::new().create::<ipc::Service>().expect("iceoryx2 node")
}

/// A service name of this measurement: `tag` is the measuring (parent) process's pid, taken
/// before the fork, so both processes use the same names and no other run meets them.
fn name(tag: u32, what: &str) -> ServiceName {
    let s = format!("multiproc-bench/{tag}/{what}");
    s.as_str().try_into().expect("service name")
}

/// A publish/subscribe service of one publisher and one subscriber, without history, with a
/// subscriber buffer of `buffer` samples; `overflow`: whether a full buffer drops the oldest
/// sample (iceoryx2's default) instead of making the publisher wait.
fn one_to_one<P: Debug + IceoryxSend + ?Sized>(
    service: PubSubBuilder<P, (), ipc::Service>,
    buffer: usize,
    overflow: bool,
) -> PubSubBuilder<P, (), ipc::Service> {
    service
        .max_publishers(1)
        .max_subscribers(1)
        .history_size(0)
        .subscriber_max_buffer_size(buffer)
        .enable_safe_overflow(overflow)
}

/// A u64 service ([`one_to_one`]).
fn u64_service(
    node: &Node,
    tag: u32,
    what: &str,
    buffer: usize,
    overflow: bool,
) -> iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, u64, ()> {
    let service = node.service_builder(&name(tag, what)).publish_subscribe::<u64>();
    one_to_one(service, buffer, overflow).open_or_create().expect("iceoryx2 service")
}

fn publisher(node: &Node, tag: u32, what: &str, buffer: usize) -> Publisher<ipc::Service, u64, ()> {
    u64_service(node, tag, what, buffer, false)
        .publisher_builder()
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .expect("publisher")
}

fn subscriber(
    node: &Node,
    tag: u32,
    what: &str,
    buffer: usize,
) -> Subscriber<ipc::Service, u64, ()> {
    u64_service(node, tag, what, buffer, false).subscriber_builder().create().expect("subscriber")
}

fn event(
    node: &Node,
    tag: u32,
    what: &str,
) -> iceoryx2::service::port_factory::event::PortFactory<ipc::Service> {
    node.service_builder(&name(tag, what)).event().open_or_create().expect("iceoryx2 event service")
}

/// One side of a round trip: sends on one service, receives on the other; with events when
/// blocking.
struct End {
    tx: Publisher<ipc::Service, u64, ()>,
    rx: Subscriber<ipc::Service, u64, ()>,
    events: Option<(Notifier<ipc::Service>, Listener<ipc::Service>)>,
}

impl End {
    fn send(&self, v: u64) {
        self.tx.send_copy(v).expect("send");
        if let Some((n, _)) = &self.events {
            n.notify().expect("notify");
        }
    }

    fn recv(&self) -> u64 {
        loop {
            if let Some(s) = self.rx.receive().expect("receive") {
                return *s;
            }
            match &self.events {
                Some((_, l)) => {
                    l.blocking_wait(|_| {}).expect("wait");
                }
                None => std::hint::spin_loop(),
            }
        }
    }
}

const STOP: u64 = u64::MAX;

/// Credit-based flow control for the one-way cases: the subscriber publishes how many samples
/// it has taken (every `every`), the publisher sends only while fewer than its buffer are in
/// flight. So `send` never meets a full buffer: iceoryx2's own retry on a full buffer
/// (`RetryUntilDelivered`) backs off into yields and sleeps, which would measure its back-off
/// rather than its transfer (1 GB/s instead of several on 1 MiB samples here).
struct Credit {
    map: crate::sys::SharedMap,
}

impl Credit {
    fn new() -> Credit {
        Credit { map: crate::sys::SharedMap::new(4096).expect("mmap") }
    }

    fn taken(&self, n: u64) {
        self.map.u64_at(0).store(n, std::sync::atomic::Ordering::Release);
    }

    /// In the publisher: waits until sample `i` (0-based) fits in a buffer of `window`.
    fn wait_for_room(&self, i: u64, window: u64) {
        let taken = self.map.u64_at(0);
        if i < taken.load(std::sync::atomic::Ordering::Acquire) + window {
            return;
        }
        crate::cases::spin_until(|| i < taken.load(std::sync::atomic::Ordering::Acquire) + window);
    }
}

/// The subscriber's side of the one-way cases: busy-polls `take` (one `receive`; true if it
/// took a sample, which it checks as sample `i`, 0-based) until `warm + n` samples are taken,
/// telling `credit` how many every `every`. Returns the time of the last `n`.
fn take_all(
    credit: &Credit,
    every: u64,
    warm: u64,
    n: u64,
    mut take: impl FnMut(u64) -> bool,
) -> Duration {
    let mut got = 0u64;
    let mut t = Instant::now();
    while got < warm + n {
        if take(got) {
            got += 1;
            if got % every == 0 {
                credit.taken(got);
            }
            if got == warm {
                t = Instant::now();
            }
        } else {
            std::hint::spin_loop();
        }
    }
    t.elapsed()
}

/// Round trips of a u64 to a forked echo child: µs each.
fn rtt(o: &Opts, n: u64, blocking: bool) -> f64 {
    let tag = std::process::id();
    let (subs_up, pubs_up) = (Start::new(), Start::new());
    let child = fork(|| {
        subs_up.ready_then_wait(); // the parent's "pong" subscriber (listener) exists
        let node = node();
        let rx = subscriber(&node, tag, "ping", 2);
        let events = blocking.then(|| event(&node, tag, "ping-ev").listener_builder().create());
        let listener = events.map(|l| l.expect("listener"));
        let tx = publisher(&node, tag, "pong", 2);
        let notifier = blocking
            .then(|| event(&node, tag, "pong-ev").notifier_builder().create().expect("notifier"));
        let end = End { tx, rx, events: notifier.zip(listener) };
        pubs_up.ready_then_wait();
        loop {
            let v = end.recv();
            if v == STOP {
                break;
            }
            end.send(v);
        }
    });
    let node = node();
    let rx = subscriber(&node, tag, "pong", 2);
    let listener = blocking
        .then(|| event(&node, tag, "pong-ev").listener_builder().create().expect("listener"));
    subs_up.go(1);
    pubs_up.go(1); // the child's subscriber, listener and publisher exist
    let tx = publisher(&node, tag, "ping", 2);
    let notifier = blocking
        .then(|| event(&node, tag, "ping-ev").notifier_builder().create().expect("notifier"));
    let end = End { tx, rx, events: notifier.zip(listener) };
    // Busy-polling receivers: a warm-up of at least SPIN_WARM, as pipe.rtt_active's.
    let min_warm = if blocking { std::time::Duration::ZERO } else { crate::cases::SPIN_WARM };
    let d = crate::cases::timed_warm_for(min_warm, o.warm(n), n, |i| {
        end.send(i);
        assert_eq!(end.recv(), i);
    });
    end.send(STOP);
    child.join();
    us_per(d, n)
}

fn rtt_blocking(o: &Opts) -> f64 {
    rtt(o, o.iters(30_000, 10_000), true)
}

fn rtt_active(o: &Opts) -> f64 {
    rtt(o, o.iters(200_000, 100_000), false)
}

fn q1to1_u64(o: &Opts) -> f64 {
    const BUFFER: usize = 4096;
    // About 1M samples/s: a tenth of the queue case's count still lasts seconds.
    let n = o.iters(2_000_000, 600_000);
    let warm = 1000;
    let tag = std::process::id();
    const EVERY: u64 = 64;
    let credit = Credit::new();
    let (sub_up, pub_up) = (Start::new(), Start::new());
    let child = fork(|| {
        sub_up.ready_then_wait();
        let node = node();
        let tx = publisher(&node, tag, "queue", BUFFER);
        pub_up.ready_then_wait();
        for i in 0..warm + n {
            credit.wait_for_room(i, BUFFER as u64 - EVERY);
            tx.send_copy(i).expect("send");
        }
    });
    let node = node();
    let rx = subscriber(&node, tag, "queue", BUFFER);
    sub_up.go(1);
    pub_up.go(1);
    let d = take_all(&credit, EVERY, warm, n, |i| {
        rx.receive().expect("receive").map(|s| assert_eq!(*s, i, "order")).is_some()
    });
    child.join();
    n as f64 / d.as_secs_f64()
}

fn throughput_1mib(o: &Opts) -> f64 {
    const MIB: usize = 1 << 20;
    const BUFFER: usize = 4;
    let n = o.iters(4_000, 1_500);
    let warm = o.warm(n);
    let tag = std::process::id();
    let payload: Vec<u8> = (0..MIB).map(|i| ((i % 256) * 7 + 3) as u8).collect();
    let service = |node: &Node| {
        let service = node.service_builder(&name(tag, "bytes")).publish_subscribe::<[u8]>();
        one_to_one(service, BUFFER, false).open_or_create().expect("iceoryx2 service")
    };
    let credit = Credit::new();
    let (sub_up, pub_up) = (Start::new(), Start::new());
    let child = fork(|| {
        sub_up.ready_then_wait();
        let node = node();
        let tx = service(&node)
            .publisher_builder()
            .initial_max_slice_len(MIB)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .expect("publisher");
        pub_up.ready_then_wait();
        for i in 0..warm + n {
            credit.wait_for_room(i, BUFFER as u64);
            let s = tx.loan_slice_uninit(MIB).expect("loan");
            s.write_from_slice(&payload).send().expect("send");
        }
    });
    let node = node();
    let rx = service(&node).subscriber_builder().create().expect("subscriber");
    sub_up.go(1);
    pub_up.go(1);
    let d = take_all(&credit, 1, warm, n, |_| {
        let s = rx.receive().expect("receive");
        s.map(|s| assert!(s.payload() == &payload[..], "a message arrived changed")).is_some()
    });
    child.join();
    mb_per_s(MIB as u64 * n, d)
}
