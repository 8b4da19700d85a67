//! A single-producer single-consumer ring of 64-bit words in shared memory, carrying
//! variable-length byte messages.
//!
//! Each pool worker has two: tasks (parent → worker) and results (worker → parent). The
//! parent is the only producer of one and the only consumer of the other, so no CAS is
//! needed: the producer owns `tail`, the consumer owns `head`, both are word counts that
//! only grow (the index is `pos & mask`).
//!
//! A record is one header word followed by the payload bytes packed little-endian into
//! words: `header = MAGIC << 40 | MORE << 32 | len`. A message larger than a fragment
//! limit is split into records flagged `MORE` except the last; the consumer reassembles. The
//! producer writes the payload with relaxed stores and publishes with a `Release` store of
//! `tail`; the consumer reads after an `Acquire` load of `tail` and frees with a `Release`
//! store of `head`. A producer killed mid-record never published it: the record does not
//! exist for the consumer, which is what makes a dead worker's half-written result harmless.
//!
//! Sleeping is the caller's business (futex words next to the ring); this module only says
//! whether data or space is there. Public only for the loom models (`tests/loom.rs`).

use multiproc_arena::sync::atomic::{fence, AtomicU64, Ordering};

const MAGIC: u64 = 0xA5;
const MORE: u64 = 1 << 32;

/// The two ends of one ring: positions and storage.
#[derive(Debug, Clone, Copy)]
pub struct Ring<'a> {
    head: &'a AtomicU64,
    tail: &'a AtomicU64,
    data: &'a [AtomicU64],
    mask: u64,
}

/// What [`Ring::pop`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Pop {
    /// Nothing published.
    Empty,
    /// A fragment was appended; more follow.
    Partial,
    /// The last (or only) fragment of a message was appended.
    Complete,
}

impl<'a> Ring<'a> {
    /// `data.len()` must be a power of two.
    pub fn new(head: &'a AtomicU64, tail: &'a AtomicU64, data: &'a [AtomicU64]) -> Self {
        debug_assert!(data.len().is_power_of_two() && data.len() >= 16);
        Ring { head, tail, data, mask: data.len() as u64 - 1 }
    }

    /// Capacity in words.
    pub fn capacity(&self) -> usize {
        self.data.len()
    }

    /// Largest payload of one record, in bytes.
    pub fn max_fragment(&self) -> usize {
        (self.data.len() / 4) * 8
    }

    /// Words a message of `len` bytes takes when sent whole (no fragmenting).
    pub fn words_for(len: usize) -> usize {
        1 + len.div_ceil(8)
    }

    /// Free words (producer side).
    pub fn free(&self) -> usize {
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        self.data.len() - (tail - head) as usize
    }

    /// Used words (consumer side).
    pub fn used(&self) -> usize {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        (tail - head) as usize
    }

    /// Whether nothing is published, for the sleep handshake: the sleeper stores its flag,
    /// then calls this (a `SeqCst` fence, then the positions); the other side publishes,
    /// fences, then reads the flag. One of the two sees the other (Dekker with fences).
    pub fn is_empty_seqcst(&self) -> bool {
        fence(Ordering::SeqCst);
        self.head.load(Ordering::SeqCst) == self.tail.load(Ordering::SeqCst)
    }

    /// Writes one record if `1 + ceil(len/8)` words are free; `more` flags a fragment that is
    /// not the last. Returns whether it was written.
    pub fn try_push_record(&self, bytes: &[u8], more: bool) -> bool {
        debug_assert!(bytes.len() <= self.max_fragment());
        let words = Self::words_for(bytes.len());
        if self.free() < words {
            return false;
        }
        let tail = self.tail.load(Ordering::Relaxed);
        let header = (MAGIC << 40) | if more { MORE } else { 0 } | bytes.len() as u64;
        self.data[(tail & self.mask) as usize].store(header, Ordering::Relaxed);
        let mut pos = tail + 1;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.data[(pos & self.mask) as usize].store(w, Ordering::Relaxed);
            pos += 1;
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.data[(pos & self.mask) as usize].store(u64::from_le_bytes(b), Ordering::Relaxed);
            pos += 1;
        }
        debug_assert_eq!(pos - tail, words as u64);
        self.tail.store(pos, Ordering::Release);
        true
    }

    /// Writes a whole message as one record if it fits now (and is not larger than a
    /// fragment).
    pub fn try_push(&self, bytes: &[u8]) -> bool {
        bytes.len() <= self.max_fragment() && self.try_push_record(bytes, false)
    }

    /// Reads one record, appending its payload to `out`.
    pub fn pop(&self, out: &mut Vec<u8>) -> Pop {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        if head == tail {
            return Pop::Empty;
        }
        let header = self.data[(head & self.mask) as usize].load(Ordering::Relaxed);
        assert_eq!(header >> 40, MAGIC, "corrupt ring record header {header:#x}");
        let len = (header & 0xFFFF_FFFF) as usize;
        let more = header & MORE != 0;
        out.reserve(len);
        let mut pos = head + 1;
        let mut left = len;
        while left > 0 {
            let w = self.data[(pos & self.mask) as usize].load(Ordering::Relaxed);
            let b = w.to_le_bytes();
            let n = left.min(8);
            out.extend_from_slice(&b[..n]);
            left -= n;
            pos += 1;
        }
        debug_assert!(pos <= tail);
        self.head.store(pos, Ordering::Release);
        if more {
            Pop::Partial
        } else {
            Pop::Complete
        }
    }

    /// Resets both positions (only when neither end is in use: a dead worker's ring before
    /// its replacement starts).
    pub fn reset(&self) {
        self.head.store(0, Ordering::SeqCst);
        self.tail.store(0, Ordering::SeqCst);
    }
}

#[cfg(all(test, not(multiproc_loom)))]
mod tests {
    use super::*;

    fn words(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn messages_round_trip_and_wrap() {
        let (h, t) = (AtomicU64::new(0), AtomicU64::new(0));
        let data = words(64);
        let r = Ring::new(&h, &t, &data);
        let mut out = Vec::new();
        assert_eq!(r.pop(&mut out), Pop::Empty);
        for round in 0..200u32 {
            let msg: Vec<u8> = (0..(round % 37) as u8).collect();
            assert!(r.try_push(&msg));
            out.clear();
            assert_eq!(r.pop(&mut out), Pop::Complete);
            assert_eq!(out, msg);
        }
        assert_eq!(r.used(), 0);
        assert_eq!(r.free(), 64);
    }

    #[test]
    fn full_ring_refuses_and_fragments_reassemble() {
        let (h, t) = (AtomicU64::new(0), AtomicU64::new(0));
        let data = words(32);
        let r = Ring::new(&h, &t, &data);
        assert_eq!(r.max_fragment(), 64);
        assert!(r.try_push(&[1; 64])); // 9 words
        assert!(r.try_push(&[2; 64]));
        assert!(r.try_push(&[3; 64]));
        assert!(!r.try_push(&[4; 64]), "27 of 32 used");
        assert!(!r.try_push(&[0; 65]), "larger than a fragment");
        let mut out = Vec::new();
        for i in 1..=3u8 {
            out.clear();
            assert_eq!(r.pop(&mut out), Pop::Complete);
            assert_eq!(out, vec![i; 64]);
        }
        assert!(r.try_push_record(&[7; 10], true));
        assert!(r.try_push_record(&[8; 3], false));
        out.clear();
        assert_eq!(r.pop(&mut out), Pop::Partial);
        assert_eq!(r.pop(&mut out), Pop::Complete);
        assert_eq!(out.len(), 13);
        assert_eq!(&out[10..], &[8, 8, 8]);
    }

    #[test]
    fn spsc_threads_stream() {
        let h = AtomicU64::new(0);
        let t = AtomicU64::new(0);
        let data = words(128);
        let r = Ring::new(&h, &t, &data);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..20_000u32 {
                    let msg = i.to_le_bytes().repeat((i % 9) as usize + 1);
                    while !r.try_push(&msg) {
                        std::hint::spin_loop();
                    }
                }
            });
            let mut out = Vec::new();
            for i in 0..20_000u32 {
                out.clear();
                while r.pop(&mut out) == Pop::Empty {
                    std::hint::spin_loop();
                }
                assert_eq!(out, i.to_le_bytes().repeat((i % 9) as usize + 1));
            }
        });
    }
}
