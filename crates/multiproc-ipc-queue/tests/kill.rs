//! Kill loop: producers and consumers are SIGKILLed at random instants and restarted while
//! 4 producers send sequence-numbered, checksummed messages of mixed sizes (some spilled,
//! some streamed once the two spill entries are taken).
//! Afterwards: no corrupted message, no duplicate, order kept per producer, losses only of
//! messages a killed consumer had taken, and the queue still works.
//!
//! The normal suite runs it for 3 s; `MULTIPROC_QUEUE_SOAK_SECS=N` sets another duration,
//! and the ignored `kill_loop_long` runs 60 s (`cargo test -- --ignored`).
#![cfg(not(multiproc_loom))]

mod common;

use common::Bytes;
use multiproc_arena::testing::{fork, Child, Exit};
use multiproc_arena::Array;
use multiproc_ipc_queue::{GetError, Queue};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Serialize, Deserialize)]
struct Msg {
    inc: u32,
    seq: u32,
    payload: Bytes,
    sum: u64,
}

fn checksum(inc: u32, seq: u32, payload: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ ((inc as u64) << 32 | seq as u64);
    for &b in payload {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

const RING: usize = 64 << 10;
const MAX_INC: usize = 8192;
const MAX_SEQ: usize = 4096;
const WORDS: usize = MAX_SEQ / 64;

// Control words.
const STOP_PRODUCERS: usize = 0;
const STOP_CONSUMERS: usize = 1;
const ERRORS: usize = 2;
const FIRST_ERROR: usize = 3;

struct Book {
    ctl: Array<AtomicU64>,
    acked: Array<AtomicU64>,
    seen: Array<AtomicU64>,
}

impl Book {
    fn error(&self, code: u64, inc: u32, seq: u32) {
        if self.ctl[ERRORS].fetch_add(1, Ordering::SeqCst) == 0 {
            self.ctl[FIRST_ERROR]
                .store(code << 48 | (inc as u64) << 16 | seq as u64, Ordering::SeqCst);
        }
    }
}

fn size_of_msg(inc: u32, seq: u32) -> usize {
    let r = rng(((inc as u64) << 32 | seq as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) + 1)();
    match r % 100 {
        0..=69 => (r >> 8) as usize % 64,               // one slot
        70..=95 => 1000 + (r >> 8) as usize % 8000,     // several slots
        _ => RING / 2 + (r >> 8) as usize % (2 * RING), // spilled or streamed
    }
}

fn producer(q: &Queue<Msg>, book: &Book, inc: u32) -> i32 {
    for seq in 0..MAX_SEQ as u32 {
        if book.ctl[STOP_PRODUCERS].load(Ordering::SeqCst) != 0 {
            return 0;
        }
        let n = size_of_msg(inc, seq);
        let mut r = rng((inc as u64) << 20 ^ seq as u64 ^ 0x5555);
        let payload: Vec<u8> = (0..n).map(|_| r() as u8).collect();
        let sum = checksum(inc, seq, &payload);
        match q.put_timeout(Msg { inc, seq, payload: Bytes(payload), sum }, Duration::from_secs(10))
        {
            Ok(()) => book.acked[inc as usize].store(seq as u64 + 1, Ordering::SeqCst),
            Err(_) => return 3, // the queue is stuck
        }
    }
    0
}

fn consumer(q: &Queue<Msg>, book: &Book) -> i32 {
    let mut last = vec![None::<u32>; MAX_INC];
    loop {
        match q.get_timeout(Duration::from_millis(100)) {
            Ok(m) => {
                if m.inc as usize >= MAX_INC || m.seq as usize >= MAX_SEQ {
                    book.error(1, m.inc, m.seq);
                    continue;
                }
                if m.sum != checksum(m.inc, m.seq, &m.payload.0)
                    || m.payload.0.len() != size_of_msg(m.inc, m.seq)
                {
                    book.error(1, m.inc, m.seq);
                }
                if last[m.inc as usize].is_some_and(|l| l >= m.seq) {
                    book.error(2, m.inc, m.seq);
                }
                last[m.inc as usize] = Some(m.seq);
                let bit = 1u64 << (m.seq % 64);
                let w = &book.seen[m.inc as usize * WORDS + m.seq as usize / 64];
                if w.fetch_or(bit, Ordering::SeqCst) & bit != 0 {
                    book.error(3, m.inc, m.seq);
                }
            }
            Err(GetError::Timeout) => {
                if book.ctl[STOP_CONSUMERS].load(Ordering::SeqCst) != 0 {
                    return 0;
                }
            }
            Err(GetError::Failed(_)) => book.error(4, 0, 0),
            Err(_) => return 4,
        }
    }
}

/// Waits (30 s at most) for a child to exit 0; if it does not, says what it is doing (its
/// state, kernel wait channel and system call, and the queue's) before failing.
fn finish(mut c: Child, what: &str, q: &Queue<Msg>) {
    match c.wait_timeout(Duration::from_secs(30)) {
        Some(Exit::Code(0)) => {}
        other => {
            let pid = c.pid();
            let read =
                |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default();
            panic!(
                "{what} {pid} ended with {other:?} (None = still running); stat: {}; wchan: {}; \
                 syscall: {}; queue: {q:?}, spill usage {:?}",
                read("stat").trim(),
                read("wchan").trim(),
                read("syscall").trim(),
                q.spill_usage()
            );
        }
    }
}

fn run_kill_loop(secs: f64) {
    // Two spill entries: large messages are spilled while one is free, streamed otherwise.
    let q: Queue<Msg> =
        Queue::builder().capacity(RING).max_processes(16).max_spilled(2).build().unwrap();
    let book = Book {
        ctl: Array::from_fn(8, |_| AtomicU64::new(0)).unwrap(),
        acked: Array::from_fn(MAX_INC, |_| AtomicU64::new(0)).unwrap(),
        seen: Array::from_fn(MAX_INC * WORDS, |_| AtomicU64::new(0)).unwrap(),
    };
    let (q, book) = (&q, &book);
    let mut next_inc = 0u32;
    let mut start_producer = || {
        let inc = next_inc;
        next_inc += 1;
        assert!((inc as usize) < MAX_INC, "too many producer incarnations");
        fork(move || producer(q, book, inc))
    };
    let mut producers: Vec<Child> = (0..4).map(|_| start_producer()).collect();
    let mut consumers: Vec<Child> = (0..2).map(|_| fork(|| consumer(q, book))).collect();
    let mut r = rng(std::process::id() as u64 ^ 0xdead_beef);
    let (mut producer_kills, mut consumer_kills) = (0u64, 0u64);
    let t0 = Instant::now();
    while t0.elapsed().as_secs_f64() < secs {
        std::thread::sleep(Duration::from_micros(2000 + r() % 20_000));
        let v = (r() % 6) as usize;
        let victim = if v < 4 { &mut producers[v] } else { &mut consumers[v - 4] };
        let before = victim.try_wait();
        victim.kill();
        let exit = victim.wait_timeout(Duration::from_secs(10));
        match (before, exit) {
            (None, Some(Exit::Signal(_))) | (Some(Exit::Code(0)), _) => {}
            other => panic!("child ended unexpectedly: {other:?} (victim {v})"),
        }
        if v < 4 {
            producer_kills += 1;
            producers[v] = start_producer();
        } else {
            consumer_kills += 1;
            consumers[v - 4] = fork(|| consumer(q, book));
        }
    }
    book.ctl[STOP_PRODUCERS].store(1, Ordering::SeqCst);
    for p in producers {
        finish(p, "producer", q);
    }
    book.ctl[STOP_CONSUMERS].store(1, Ordering::SeqCst);
    for c in consumers {
        finish(c, "consumer", q);
    }
    assert_eq!(
        book.ctl[ERRORS].load(Ordering::SeqCst),
        0,
        "corruption (1), reordering (2), duplicate (3), undecodable (4): first {:#x}",
        book.ctl[FIRST_ERROR].load(Ordering::SeqCst)
    );
    let (mut delivered, mut lost) = (0u64, 0u64);
    for inc in 0..next_inc as usize {
        let acked = book.acked[inc].load(Ordering::SeqCst) as usize;
        for seq in 0..MAX_SEQ {
            let got =
                book.seen[inc * WORDS + seq / 64].load(Ordering::SeqCst) & (1 << (seq % 64)) != 0;
            if got {
                delivered += 1;
            } else if seq < acked {
                lost += 1;
            }
        }
    }
    eprintln!(
        "kill loop {secs}s: {delivered} delivered, {lost} lost, {producer_kills} producers and \
         {consumer_kills} consumers killed, {} partial messages discarded",
        q.discarded()
    );
    assert!(delivered > 0);
    assert!(
        lost <= consumer_kills,
        "{lost} acknowledged messages lost, but only {consumer_kills} consumers were killed"
    );
    // Still usable, and empty; a large message is spilled (or streamed: then its put needs
    // a consumer reading).
    assert_eq!(q.qsize(), 0);
    q.put(Msg { inc: 0, seq: 0, payload: Bytes(vec![1; 20_000]), sum: 0 }).unwrap();
    assert_eq!(q.get().unwrap().payload.0.len(), 20_000);
    std::thread::scope(|s| {
        s.spawn(|| {
            q.put_timeout(
                Msg { inc: 0, seq: 1, payload: Bytes(vec![2; 200_000]), sum: 0 },
                Duration::from_secs(10),
            )
            .unwrap();
        });
        assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap().payload.0.len(), 200_000);
    });
    // Every spill entry a killed process held is given back.
    q.reclaim_spilled();
    assert_eq!(q.spill_usage(), (0, 0, 0), "spill entries, accounted bytes, file bytes");
}

#[test]
fn kill_loop() {
    let secs =
        std::env::var("MULTIPROC_QUEUE_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    run_kill_loop(secs);
}

#[test]
#[ignore = "long: 60 s"]
fn kill_loop_long() {
    run_kill_loop(60.0);
}
