//! loom models of the pipe's shared-memory ring and its wake-up handshake
//! (`cargo xtask loom -p multiproc-ipc-pipe`).
//!
//! The two processes are loom threads over a heap-backed [`Ring`]; the socket that carries
//! doorbells is a loom `Mutex<u32>` + `Condvar` (a count of doorbell bytes in flight). The
//! receiver blocks on it exactly as a receive blocks on the socket, so a lost wake-up shows
//! as a loom deadlock. Each model follows the order of operations of `Connection` (send:
//! publish, fence, look at the state, claim and ring; receive: look, spin while watching,
//! arm + fence + look again, block, drain one doorbell, look again).
#![cfg(multiproc_loom)]

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use multiproc_ipc_pipe::ring::{Bell, Ctrl, Ring, MSG};

/// The ring's memory on the heap.
struct Mem {
    ctrl: Ctrl,
    data: Box<[u8]>,
}

struct Shared {
    mem: Box<Mem>,
    /// Doorbell bytes sent and not yet read.
    bells: Mutex<u32>,
    cv: Condvar,
}

fn shared(cap: usize) -> Arc<Shared> {
    Arc::new(Shared {
        mem: Box::new(Mem { ctrl: Ctrl::new(), data: vec![0u8; cap].into_boxed_slice() }),
        bells: Mutex::new(0),
        cv: Condvar::new(),
    })
}

fn ring(s: &Shared) -> Ring {
    let data = s.mem.data.as_ptr() as *mut u8;
    // SAFETY: the control block and the data live in `s`, which the caller keeps alive
    // (an Arc held by the thread) for as long as the Ring; loom threads run one at a time.
    unsafe { Ring::new(&s.mem.ctrl, data, s.mem.data.len()) }
}

/// `Connection::ring_send` + `bell`.
fn send(s: &Shared, r: &Ring, byte: u8, len: usize) {
    let payload = vec![byte; len];
    let at = loop {
        match r.try_push(MSG, &[&payload]).unwrap() {
            Some(at) => break at,
            // (wait_room: the futex wait is a yield under loom)
            None => loom::thread::yield_now(),
        }
    };
    if matches!(r.after_publish(at), Bell::Ring | Bell::Armed) {
        r.ringing();
        *s.bells.lock().unwrap() += 1;
        s.cv.notify_all();
    }
}

/// `Connection::ring_next` + `ring_receive`, with `spin` looks while watching.
fn recv(s: &Shared, r: &Ring, spin: usize) -> Vec<u8> {
    let mut spun = false;
    loop {
        if let Some(rec) = r.peek().unwrap() {
            let mut v = vec![0u8; rec.len];
            r.copy_out(&rec, &mut v);
            r.advance(rec.next);
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

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(f);
}

/// Two messages to a receiver that blocks at once: each arrives, none is lost, no
/// wake-up is lost (a lost one deadlocks the model).
#[test]
fn blocking_receiver_gets_every_message() {
    model(|| {
        let s = shared(64);
        let s2 = s.clone();
        let t = thread::spawn(move || {
            let r = ring(&s2);
            send(&s2, &r, 1, 3);
            send(&s2, &r, 2, 5);
        });
        let r = ring(&s);
        assert_eq!(recv(&s, &r, 0), vec![1; 3]);
        assert_eq!(recv(&s, &r, 0), vec![2; 5]);
        t.join().unwrap();
    });
}

/// A receiver that spins (watching) before it blocks: a sender that sees it watching does
/// not ring, and the receiver still never sleeps through a message.
#[test]
fn spinning_receiver_never_sleeps_through_a_message() {
    model(|| {
        let s = shared(64);
        let s2 = s.clone();
        let t = thread::spawn(move || {
            let r = ring(&s2);
            send(&s2, &r, 7, 1);
            send(&s2, &r, 8, 1);
        });
        let r = ring(&s);
        assert_eq!(recv(&s, &r, 1), vec![7]);
        assert_eq!(recv(&s, &r, 1), vec![8]);
        t.join().unwrap();
    });
}

/// An epoll user: a receive that spins takes one message, then the receiver waits for the
/// descriptor to become readable (a doorbell in the socket) before it receives again. The
/// second message, sent while the first receive was spinning or after it, must have made the
/// descriptor readable — otherwise the model deadlocks.
#[test]
fn message_left_behind_keeps_the_descriptor_readable() {
    model(|| {
        let s = shared(64);
        let s2 = s.clone();
        let t = thread::spawn(move || {
            let r = ring(&s2);
            send(&s2, &r, 1, 1);
            send(&s2, &r, 2, 1);
        });
        let r = ring(&s);
        assert_eq!(recv(&s, &r, 1), vec![1]);
        wait_readable(&s);
        assert_eq!(recv(&s, &r, 0), vec![2]);
        t.join().unwrap();
    });
}

/// The same with the doorbell limit at its minimum (2) and three messages, so senders skip
/// doorbells: a receive that blocks takes one doorbell, and the messages it leaves behind
/// still keep the descriptor readable.
#[test]
fn limited_doorbells_still_cover_every_message() {
    model(|| {
        let s = shared(64);
        let s2 = s.clone();
        let t = thread::spawn(move || {
            let r = ring(&s2).with_bell_limit(2);
            for b in 1..=3u8 {
                send(&s2, &r, b, 1);
            }
        });
        let r = ring(&s).with_bell_limit(2);
        assert_eq!(recv(&s, &r, 0), vec![1]);
        wait_readable(&s);
        assert_eq!(recv(&s, &r, 0), vec![2]);
        wait_readable(&s);
        assert_eq!(recv(&s, &r, 0), vec![3]);
        t.join().unwrap();
    });
}

/// Records wrap around a small ring (padding at the end) and a sender waits for room:
/// every message arrives whole and in order.
#[test]
fn wrapping_records_arrive_whole() {
    model(|| {
        let s = shared(64);
        let s2 = s.clone();
        let t = thread::spawn(move || {
            let r = ring(&s2);
            for b in 1..=3u8 {
                send(&s2, &r, b, 16);
            }
        });
        let r = ring(&s);
        for b in 1..=3u8 {
            assert_eq!(recv(&s, &r, 0), vec![b; 16]);
        }
        t.join().unwrap();
    });
}
