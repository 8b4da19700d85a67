//! Loom models of the pool's shared-memory ring (processes are loom threads): messages and
//! fragments arrive whole and in order, and the sleep handshake loses no wake-up.
#![cfg(multiproc_loom)]

use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use loom::sync::Arc;
use multiproc_pool::ring::{Pop, Ring};

struct Mem {
    head: AtomicU64,
    tail: AtomicU64,
    data: Vec<AtomicU64>,
    waiting: AtomicU32,
}

fn mem() -> Arc<Mem> {
    Arc::new(Mem {
        head: AtomicU64::new(0),
        tail: AtomicU64::new(0),
        data: (0..16).map(|_| AtomicU64::new(0)).collect(),
        waiting: AtomicU32::new(0),
    })
}

fn ring(m: &Mem) -> Ring<'_> {
    Ring::new(&m.head, &m.tail, &m.data)
}

#[test]
fn messages_and_fragments_arrive_whole() {
    loom::model(|| {
        let m = mem();
        let p = m.clone();
        let producer = loom::thread::spawn(move || {
            let r = ring(&p);
            assert!(r.try_push(&[1, 2, 3, 4, 5, 6, 7, 8, 9]));
            // A 12-byte message in two fragments.
            assert!(r.try_push_record(&[10; 8], true));
            assert!(r.try_push_record(&[11; 4], false));
        });
        let r = ring(&m);
        let mut got = Vec::new();
        let mut buf = Vec::new();
        while got.len() < 2 {
            match r.pop(&mut buf) {
                Pop::Empty => loom::thread::yield_now(),
                Pop::Partial => {}
                Pop::Complete => got.push(std::mem::take(&mut buf)),
            }
        }
        producer.join().unwrap();
        assert_eq!(got[0], vec![1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(got[1], [vec![10; 8], vec![11; 4]].concat());
        assert_eq!(r.used(), 0);
    });
}

#[test]
fn space_is_reused_only_after_the_reader_is_done() {
    loom::model(|| {
        let m = mem();
        let p = m.clone();
        // 16 words: three 5-word messages fit, a fourth must wait for the first to be read.
        let producer = loom::thread::spawn(move || {
            let r = ring(&p);
            for i in 0..4u8 {
                while !r.try_push(&[i; 32]) {
                    loom::thread::yield_now();
                }
            }
        });
        let r = ring(&m);
        let mut buf = Vec::new();
        for i in 0..4u8 {
            buf.clear();
            while r.pop(&mut buf) == Pop::Empty {
                loom::thread::yield_now();
            }
            assert_eq!(buf, vec![i; 32]);
        }
        producer.join().unwrap();
    });
}

#[test]
fn no_lost_wakeup() {
    loom::model(|| {
        let m = mem();
        let p = m.clone();
        let producer = loom::thread::spawn(move || {
            let r = ring(&p);
            assert!(r.try_push(&[42]));
            // `SlotShm::wake_if_waiting`: fence, then look at the sleeper's flag.
            fence(Ordering::SeqCst);
            p.waiting.load(Ordering::Relaxed) != 0
        });
        // The worker's `recv`: flag, re-check (a fence inside), sleep only on an empty ring.
        m.waiting.store(1, Ordering::SeqCst);
        let sleeps = ring(&m).is_empty_seqcst();
        let woken = producer.join().unwrap();
        assert!(!sleeps || woken, "the consumer sleeps and nobody wakes it");
        let mut buf = Vec::new();
        assert_eq!(ring(&m).pop(&mut buf), Pop::Complete);
        assert_eq!(buf, vec![42]);
    });
}
