//! loom models of the pipe's shared-memory ring and its wake-up handshake
//! (`cargo xtask loom -p multiproc-ipc-pipe`).
//!
//! The two processes are loom threads over the pipe's real halves ([`Tx`], [`Rx`]) of a
//! heap-backed arena ring, with the arena's exact futex model; the socket that carries
//! doorbells is a loom `Mutex<u32>` + `Condvar` (a count of doorbell bytes in flight). The
//! receiver blocks on it exactly as a receive blocks on the socket, so a lost wake-up shows
//! as a loom deadlock. Each model follows the order of operations of `Connection` (send:
//! publish, fence, look at the state, claim and ring; receive: look, spin while watching,
//! arm + fence + look again, block, drain one doorbell, look again).
#![cfg(multiproc_loom)]

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use multiproc_arena::futex::Deadline;
use multiproc_arena::spsc::RingMem;
use multiproc_arena::Arena;
use multiproc_ipc_pipe::bell::{Bell, Rx, Tx, MSG};

struct Shared {
    mem: RingMem,
    /// Doorbell bytes sent and not yet read.
    bells: Mutex<u32>,
    cv: Condvar,
}

/// A ring of `words` data words (records of at most a quarter of them).
fn shared(words: usize) -> Arc<Shared> {
    Arc::new(Shared {
        mem: RingMem::new_in(&Arena::new(1 << 12).unwrap(), words).unwrap(),
        bells: Mutex::new(0),
        cv: Condvar::new(),
    })
}

fn tx(s: &Shared) -> Tx {
    Tx::new(&s.mem).unwrap()
}

fn rx(s: &Shared) -> Rx {
    Rx::new(&s.mem).unwrap()
}

/// `Connection::ring_send` + `bell`.
fn send(s: &Shared, r: &mut Tx, byte: u8, len: usize) {
    let payload = vec![byte; len];
    let at = loop {
        match r.try_push(MSG, &[&payload]).unwrap() {
            Some(at) => break at,
            // `Connection::wait_room` after its spin: the real futex wait, which blocks
            // until the consumer wakes it (a lost wake-up deadlocks the model).
            None => r.wait_room(len, &mut Deadline::never(), || false).unwrap(),
        }
    };
    if matches!(r.after_publish(at), Bell::Ring | Bell::Armed) {
        r.ringing();
        *s.bells.lock().unwrap() += 1;
        s.cv.notify_all();
    }
}

/// `Connection::ring_next` + `ring_receive`, with `spin` looks while watching.
fn recv(s: &Shared, r: &mut Rx, spin: usize) -> Vec<u8> {
    let mut spun = false;
    loop {
        if let Some(rec) = r.peek().unwrap() {
            let mut v = vec![0u8; rec.len()];
            r.read(&rec, &mut v);
            r.advance(rec);
            r.leave();
            return v;
        }
        if !spun && spin > 0 {
            spun = true;
            r.watch();
            if (0..spin).any(|_| r.nonempty()) {
                continue;
            }
        }
        if r.arm() {
            continue;
        }
        let mut bells = s.bells.lock().unwrap();
        while *bells == 0 {
            bells = s.cv.wait(bells).unwrap();
        }
        *bells -= 1;
        r.took_bell();
    }
}

/// An epoll user's wait: until the socket holds a doorbell (not taking it).
fn wait_readable(s: &Shared) {
    let mut bells = s.bells.lock().unwrap();
    while *bells == 0 {
        bells = s.cv.wait(bells).unwrap();
    }
}

/// Checks every interleaving (up to two preemptions) of one pipe direction over a ring of 16
/// data words: `sender` on a second thread with the producer half, `receiver` on this one
/// with the consumer half.
fn model(sender: fn(&Shared, Tx), receiver: fn(&Shared, &mut Rx)) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(move || {
        let s = shared(16);
        let s2 = s.clone();
        let t = thread::spawn(move || sender(&s2, tx(&s2)));
        receiver(&s, &mut rx(&s));
        t.join().unwrap();
    });
}

/// Sends one message of `len` bytes `b` for each `(b, len)`.
fn send_all(s: &Shared, mut t: Tx, msgs: &[(u8, usize)]) {
    for &(b, len) in msgs {
        send(s, &mut t, b, len);
    }
}

/// Two messages to a receiver that blocks at once: each arrives, none is lost, no
/// wake-up is lost (a lost one deadlocks the model).
#[test]
fn blocking_receiver_gets_every_message() {
    model(
        |s, t| send_all(s, t, &[(1, 3), (2, 5)]),
        |s, r| {
            assert_eq!(recv(s, r, 0), vec![1; 3]);
            assert_eq!(recv(s, r, 0), vec![2; 5]);
        },
    );
}

/// A receiver that spins (watching) before it blocks: a sender that sees it watching does
/// not ring, and the receiver still never sleeps through a message.
#[test]
fn spinning_receiver_never_sleeps_through_a_message() {
    model(
        |s, t| send_all(s, t, &[(7, 1), (8, 1)]),
        |s, r| {
            assert_eq!(recv(s, r, 1), vec![7]);
            assert_eq!(recv(s, r, 1), vec![8]);
        },
    );
}

/// An epoll user: a receive that spins takes one message, then the receiver waits for the
/// descriptor to become readable (a doorbell in the socket) before it receives again. The
/// second message, sent while the first receive was spinning or after it, must have made the
/// descriptor readable — otherwise the model deadlocks.
#[test]
fn message_left_behind_keeps_the_descriptor_readable() {
    model(
        |s, t| send_all(s, t, &[(1, 1), (2, 1)]),
        |s, r| {
            assert_eq!(recv(s, r, 1), vec![1]);
            wait_readable(s);
            assert_eq!(recv(s, r, 0), vec![2]);
        },
    );
}

/// The same with the doorbell limit at its minimum (2) and three messages, so senders skip
/// doorbells: a receive that blocks takes one doorbell, and the messages it leaves behind
/// still keep the descriptor readable.
#[test]
fn limited_doorbells_still_cover_every_message() {
    model(
        |s, t| send_all(s, t.with_bell_limit(2), &[(1, 1), (2, 1), (3, 1)]),
        |s, r| {
            assert_eq!(recv(s, r, 0), vec![1]);
            wait_readable(s);
            assert_eq!(recv(s, r, 0), vec![2]);
            wait_readable(s);
            assert_eq!(recv(s, r, 0), vec![3]);
        },
    );
}

/// Records wrap around a small ring (padding at the end) and the sender waits for room in
/// the real `Tx::wait_room` (a futex wait that only the consumer's `Rx::advance` ends): every
/// message arrives whole and in order, and no wake-up for room is lost.
#[test]
fn wrapping_records_arrive_whole() {
    model(
        |s, t| send_all(s, t, &[(1, 24), (2, 24), (3, 24), (4, 24), (5, 24)]),
        |s, r| {
            for b in 1..=5u8 {
                assert_eq!(recv(s, r, 0), vec![b; 24]);
            }
        },
    );
}
