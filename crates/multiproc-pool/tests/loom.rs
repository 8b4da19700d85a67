//! Loom models of the pool's rings (processes are loom threads): messages and fragments
//! arrive whole and in order through the real `Sender`/`Receiver`, and the real sleep
//! handshake (`ring::sleep_unless` / `ring::wake_if_waiting`, what the worker's receive and
//! result-space waits and the parent's task streaming call) loses no wake-up: the futex
//! wait is the arena's exact model, so a sleeper nobody wakes deadlocks the model.
#![cfg(multiproc_loom)]

use loom::sync::atomic::AtomicU32;
use loom::sync::Arc;
use loom::thread;
use multiproc_arena::futex::{Deadline, Wake};
use multiproc_arena::spsc::RingMem;
use multiproc_arena::Arena;
use multiproc_pool::ring::{sleep_unless, wake_if_waiting, Pop, Receiver, Sender};

/// A 16-word ring (fragments of at most 32 bytes) and a futex flag beside it.
struct Slot {
    mem: RingMem,
    flag: AtomicU32,
}

fn slot() -> Arc<Slot> {
    let mem = RingMem::new_in(&Arena::new(1 << 12).unwrap(), 16).unwrap();
    Arc::new(Slot { mem, flag: AtomicU32::new(0) })
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(f);
}

/// The worker's side on a thread of its own: `f` pushes into `s` through a `Sender`.
fn produce(
    s: &Arc<Slot>,
    f: impl FnOnce(&Slot, &mut Sender) + Send + 'static,
) -> thread::JoinHandle<()> {
    let s = s.clone();
    thread::spawn(move || {
        let mut w = Sender::new(&s.mem).unwrap();
        f(&s, &mut w)
    })
}

/// The worker's receive: pop, else sleep on the flag until the ring is non-empty.
fn recv(s: &Slot, r: &mut Receiver, out: &mut Vec<u8>) {
    loop {
        match r.pop(out) {
            Pop::Complete => return,
            Pop::Partial => continue,
            Pop::Empty => {}
        }
        let ready = || !s.mem.is_empty_seqcst();
        assert_eq!(sleep_unless(&s.flag, ready, &mut Deadline::never(), None), Wake::Woken);
    }
}

/// The parent's dispatch: push, then wake the worker if it sleeps.
fn send(s: &Slot, w: &mut Sender, bytes: &[u8], more: bool) {
    while !w.try_push_record(bytes, more) {
        thread::yield_now();
    }
    wake_if_waiting(&s.flag);
}

/// A message and a two-fragment message reach a worker that sleeps whenever the ring is
/// empty: both arrive whole, and the worker is always woken.
#[test]
fn messages_and_fragments_reach_a_sleeping_worker() {
    model(|| {
        let s = slot();
        let producer = produce(&s, |s, w| {
            send(s, w, &[1, 2, 3, 4, 5, 6, 7, 8, 9], false);
            send(s, w, &[10; 8], true);
            send(s, w, &[11; 4], false);
        });
        let mut r = Receiver::new(&s.mem).unwrap();
        let mut got = Vec::new();
        recv(&s, &mut r, &mut got);
        assert_eq!(got, vec![1, 2, 3, 4, 5, 6, 7, 8, 9]);
        got.clear();
        recv(&s, &mut r, &mut got);
        assert_eq!(got, [vec![10; 8], vec![11; 4]].concat());
        producer.join().unwrap();
    });
}

/// A worker whose result ring is full sleeps for room (`wait_space`); the parent's drain
/// frees room and wakes it: every result arrives, the worker never sleeps through the room.
#[test]
fn a_producer_waiting_for_room_is_woken() {
    model(|| {
        let s = slot();
        let producer = produce(&s, |s, w| {
            for i in 0..5u8 {
                while !w.try_push(&[i; 24]) {
                    let fits = || w.fits(24);
                    assert_eq!(
                        sleep_unless(&s.flag, fits, &mut Deadline::never(), None),
                        Wake::Woken
                    );
                }
            }
        });
        let mut r = Receiver::new(&s.mem).unwrap();
        let mut buf = Vec::new();
        for i in 0..5u8 {
            buf.clear();
            while r.pop(&mut buf) == Pop::Empty {
                thread::yield_now();
            }
            assert_eq!(buf, vec![i; 24]);
            wake_if_waiting(&s.flag);
        }
        producer.join().unwrap();
    });
}
