//! The pool's rings: the arena's [`spsc`](multiproc_arena::spsc) ring carrying byte messages in fragments, and the
//! sleep handshake of the flags beside them.
//!
//! Each pool worker has two rings: tasks (parent → worker) and results (worker → parent). A
//! message larger than a fragment ([`Sender::max_fragment`], a quarter of the ring) is split
//! into records of kind [`MORE`] and a last one of kind [`LAST`]; the receiver reassembles. A
//! producer killed mid-record never published it: the record does not exist for the
//! consumer, which is what makes a dead worker's half-written result harmless.
//!
//! # Sleeping (Dekker)
//!
//! A side that must wait (a worker for tasks, a worker for room for its result, the parent
//! for room to stream a large task) raises its futex flag, issues a SeqCst fence, looks at
//! the ring again, and parks on the flag only if it still has to wait ([`sleep_unless`]). The
//! other side changes the ring, issues a SeqCst fence, and wakes the flag if it is raised
//! ([`wake_if_waiting`]). Of the two loads after the fences at least one sees the other's
//! store, so either the sleeper sees the change or the other side wakes it.
//!
//! Public (hidden) only for the loom models (`tests/loom.rs`).

use multiproc_arena::futex::{self, Deadline, Wake};
use multiproc_arena::spsc::{Consumer, Producer, RingMem};
use multiproc_arena::sync::atomic::{fence, AtomicU32, Ordering};
use std::time::Duration;

/// Record kind: the last (or only) fragment of a message.
pub const LAST: u8 = 1;
/// Record kind: a fragment that more follow.
pub const MORE: u8 = 2;

/// The producing half of a ring.
#[derive(Debug)]
pub struct Sender {
    p: Producer,
}

/// What [`Receiver::pop`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Pop {
    /// Nothing published.
    Empty,
    /// A fragment was appended; more follow.
    Partial,
    /// The last (or only) fragment of a message was appended.
    Complete,
}

impl Sender {
    /// The producer of `mem`, or `None` while this process has one.
    pub fn new(mem: &RingMem) -> Option<Sender> {
        Some(Sender { p: Producer::new(mem)? })
    }

    /// Largest payload of one record, in bytes.
    pub fn max_fragment(&self) -> usize {
        self.p.max_record()
    }

    /// Whether a fragment of `len` bytes (at most [`max_fragment`](Self::max_fragment)) fits
    /// now.
    pub fn fits(&self, len: usize) -> bool {
        len <= self.max_fragment() && self.p.has_room(len).unwrap_or(false)
    }

    /// Writes one record if it fits now; `more` flags a fragment that is not the last.
    pub fn try_push_record(&mut self, bytes: &[u8], more: bool) -> bool {
        matches!(self.p.try_push(if more { MORE } else { LAST }, &[bytes]), Ok(Some(_)))
    }

    /// Writes a whole message as one record if it fits now (and is not larger than a
    /// fragment).
    pub fn try_push(&mut self, bytes: &[u8]) -> bool {
        bytes.len() <= self.max_fragment() && self.try_push_record(bytes, false)
    }

    /// Words published and not consumed yet.
    pub fn used_words(&self) -> u64 {
        self.p.mem().used_words()
    }

    /// Data words of the ring.
    pub fn capacity_words(&self) -> usize {
        self.p.mem().capacity_words()
    }

    /// Takes back what the (dead) consumer left unread, for its replacement.
    pub fn reclaim(&mut self) -> bool {
        self.p.reclaim()
    }
}

/// The consuming half of a ring.
#[derive(Debug)]
pub struct Receiver {
    c: Consumer,
}

impl Receiver {
    /// The consumer of `mem`, or `None` while this process has one.
    pub fn new(mem: &RingMem) -> Option<Receiver> {
        Some(Receiver { c: Consumer::new(mem)? })
    }

    /// Whether a record is waiting.
    pub fn nonempty(&self) -> bool {
        self.c.nonempty()
    }

    /// Reads one record, appending its payload to `out`. Panics on a corrupt ring (a pool's
    /// rings are written only by its own processes).
    pub fn pop(&mut self, out: &mut Vec<u8>) -> Pop {
        let rec = match self.c.peek() {
            Ok(Some(rec)) => rec,
            Ok(None) => return Pop::Empty,
            Err(e) => panic!("{e}"),
        };
        self.c.append_to(&rec, out);
        let more = rec.kind() == MORE;
        self.c.advance(rec);
        if more {
            Pop::Partial
        } else {
            Pop::Complete
        }
    }

    /// Drops everything the (dead) producer published, for its replacement.
    pub fn skip_all(&mut self) {
        self.c.skip_all()
    }
}

/// The sleeper's half of the handshake: raises `flag`, fences, and parks on it unless
/// `ready()` holds by then (`Wake::Woken` without sleeping). The flag is down again on
/// return.
pub fn sleep_unless(
    flag: &AtomicU32,
    ready: impl Fn() -> bool,
    dl: &mut Deadline,
    poll: Option<Duration>,
) -> Wake {
    flag.store(1, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    let wake = if ready() { Wake::Woken } else { futex::park(flag, 1, dl, poll) };
    flag.store(0, Ordering::Relaxed);
    wake
}

/// The other side's half, after it changed the ring: fences, and wakes the sleeper on
/// `flag` if it raised the flag.
pub fn wake_if_waiting(flag: &AtomicU32) {
    fence(Ordering::SeqCst);
    if flag.load(Ordering::Relaxed) != 0 {
        flag.store(0, Ordering::SeqCst);
        futex::wake_all(flag);
    }
}

#[cfg(all(test, not(multiproc_loom)))]
mod tests {
    use super::*;
    use multiproc_arena::Arena;

    fn ring(words: usize) -> (Sender, Receiver) {
        let arena = Arena::new(1 << 20).unwrap();
        let mem = RingMem::new_in(&arena, words).unwrap();
        (Sender::new(&mem).unwrap(), Receiver::new(&mem).unwrap())
    }

    #[test]
    fn fragments_reassemble_and_a_full_ring_refuses() {
        let (mut s, mut r) = ring(32);
        assert_eq!(s.max_fragment(), 64);
        assert!(s.try_push(&[1; 64]) && s.try_push(&[2; 64]) && s.try_push(&[3; 64]));
        assert!(!s.try_push(&[4; 64]), "27 of 32 words used");
        assert!(!s.try_push(&[0; 65]), "larger than a fragment");
        let mut out = Vec::new();
        for i in 1..=3u8 {
            out.clear();
            assert_eq!(r.pop(&mut out), Pop::Complete);
            assert_eq!(out, vec![i; 64]);
        }
        assert!(s.try_push_record(&[7; 10], true));
        assert!(s.try_push_record(&[8; 3], false));
        out.clear();
        assert_eq!(r.pop(&mut out), Pop::Partial);
        assert_eq!(r.pop(&mut out), Pop::Complete);
        assert_eq!(out.len(), 13);
        assert_eq!(&out[10..], &[8, 8, 8]);
        assert_eq!(r.pop(&mut out), Pop::Empty);
        assert_eq!(s.used_words(), 0);
    }

    #[test]
    fn a_raised_flag_is_woken_and_a_ready_sleeper_does_not_park() {
        let flag = AtomicU32::new(0);
        let w = sleep_unless(&flag, || true, &mut Deadline::never(), None);
        assert_eq!((w, flag.load(Ordering::Relaxed)), (Wake::Woken, 0));
        let w = sleep_unless(&flag, || false, &mut Deadline::after(Duration::from_millis(5)), None);
        assert_eq!(w, Wake::TimedOut);
        std::thread::scope(|s| {
            s.spawn(|| {
                while flag.load(Ordering::SeqCst) == 0 {
                    std::thread::yield_now();
                }
                wake_if_waiting(&flag);
            });
            let mut dl = Deadline::after(Duration::from_secs(10));
            assert_eq!(sleep_unless(&flag, || false, &mut dl, None), Wake::Woken);
        });
    }
}
