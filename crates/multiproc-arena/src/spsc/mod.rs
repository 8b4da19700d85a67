//! A single-producer, single-consumer ring of variable-length records in shared memory: the
//! data path of the pipe crate's `Pipe` and of the pool's task and result rings.
//!
//! # Memory
//!
//! A [`RingMem`] is one block of 64-bit words in an [`Arena`]: [`HEADER_WORDS`] header words,
//! then a power of two of data words. The header holds two cache lines: the producer's
//! (`tail`, then [`SPARE_WORDS`] words the caller may use for its own protocol,
//! [`RingMem::producer_word`]) and the consumer's (`head`, then as many spare words,
//! [`RingMem::consumer_word`]). `tail` and `head` count words published and consumed; both only
//! grow (the index is `pos & mask`).
//!
//! # Records
//!
//! A record is a header word (`len | kind << 32 | CHECK << 56`) and `len` payload bytes padded
//! to whole words. Kinds are the caller's, `1..=255` (a pipe's message and mark, a pool's
//! fragments); kind 0 is padding up to the end of the data, so a record never wraps and its
//! payload is one contiguous range. A record carries at most a quarter of the data
//! ([`Producer::max_record`]).
//!
//! The producer writes a record in the words between `tail` and `head + capacity`, which it
//! alone owns, then publishes it with a `Release` store of `tail`: a producer killed while
//! writing never publishes, so a torn record is never seen. The consumer loads `tail`
//! (`Acquire`), reads the words between `head` and `tail`, which it alone owns until it
//! publishes a new `head` (`Release`), and checks every header against what `tail` says is
//! there: a peer that misbehaves (another process writing the ring out of turn) yields
//! [`Corrupt`], never an access outside the data.
//!
//! # One producer and one consumer per process
//!
//! [`Producer`] and [`Consumer`] are the two halves. Payload bytes are copied with bulk
//! copies (`ptr::copy_nonoverlapping`), which is sound only while no other thread of this
//! process touches the same words: so each half is unique in a process ([`Producer::new`]
//! returns `None` while this process has a producer of that ring — a claim in the arena's
//! process-local registry, which a forked child inherits with the halves it inherits), and
//! the calls that write positions or payload take `&mut self`. Another process holding a half
//! of the same ring is the peer the ring is made for; one that breaks the protocol garbles
//! records, which the checks report as [`Corrupt`].
//!
//! # Under loom
//!
//! Every payload access goes through loom atomics (word by word, `Relaxed`), so a missing
//! `Release`/`Acquire` on `tail` or `head` shows as a payload the models' checks reject.

use crate::arena::Arena;
use crate::error::Result;
use crate::sync::atomic::{AtomicU64, Ordering};

/// Header words in front of a ring's data: two cache lines.
pub const HEADER_WORDS: usize = 16;
/// Words of each header line the caller may use ([`RingMem::producer_word`],
/// [`RingMem::consumer_word`]).
pub const SPARE_WORDS: usize = 7;
/// Fewest data words of a ring.
pub const MIN_WORDS: usize = 16;

/// Words allocated beyond a ring's header and data, so that the header can start on a cache
/// line ([`line_aligned`]).
#[cfg(not(multiproc_loom))]
const ALIGN_PAD: usize = 7;

/// The first cache-line-aligned word of `a` (within its first [`ALIGN_PAD`] words): the
/// producer's and the consumer's header lines then lie on lines of their own, and the data
/// does not share a line with either. The same word in every process: an arena is mapped
/// page-aligned everywhere, so an address's offset within its cache line is the same.
#[cfg(not(multiproc_loom))]
fn line_aligned(a: &crate::Array<AtomicU64>) -> *const AtomicU64 {
    let p = a.as_mut_ptr() as *const AtomicU64;
    let skip = (p as usize).wrapping_neg() % 64 / 8;
    debug_assert!(skip <= ALIGN_PAD && a.len() >= skip);
    p.wrapping_add(skip)
}

const TAIL: usize = 0;
const HEAD: usize = 8;
/// Record kind of padding up to the end of the data.
const PAD: u8 = 0;
/// Check byte in the top 8 bits of every record header.
const CHECK: u64 = 0x5C;

/// The ring's memory says something impossible: a peer wrote it out of turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

impl std::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the shared ring is inconsistent (one end used by two processes at once?)")
    }
}

impl std::error::Error for Corrupt {}

/// What keeps a ring's words alive.
#[derive(Clone)]
enum Owner {
    #[cfg(not(multiproc_loom))]
    Array(crate::Array<AtomicU64>),
    #[cfg(multiproc_loom)]
    Heap(std::sync::Arc<[AtomicU64]>),
}

/// One ring's words (header and data) in shared memory; clones and serialized copies name
/// the same ring. Take its halves with [`Producer::new`] and [`Consumer::new`].
#[derive(Clone)]
pub struct RingMem {
    owner: Owner,
    /// The header, then the data, inside `owner`.
    base: *const AtomicU64,
    /// Data words (a power of two).
    words: usize,
}

// SAFETY: `base` points into `owner`'s words, which live as long as any clone; through a
// `RingMem` (`&self`) they are only accessed as atomics.
unsafe impl Send for RingMem {}
// SAFETY: as above.
unsafe impl Sync for RingMem {}

impl std::fmt::Debug for RingMem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingMem")
            .field("words", &self.words)
            .field("tail", &self.word(TAIL).load(Ordering::Relaxed))
            .field("head", &self.word(HEAD).load(Ordering::Relaxed))
            .finish()
    }
}

impl RingMem {
    /// A ring of `words` data words (a power of two, at least [`MIN_WORDS`]) in `arena`,
    /// empty. Under loom: on the heap.
    pub fn new_in(arena: &Arena, words: usize) -> Result<RingMem> {
        assert!(words.is_power_of_two() && words >= MIN_WORDS, "ring of {words} words");
        let total = HEADER_WORDS + words;
        #[cfg(not(multiproc_loom))]
        {
            let a = crate::Array::from_fn_in(arena, total + ALIGN_PAD, |_| AtomicU64::new(0))?;
            Ok(RingMem { base: line_aligned(&a), owner: Owner::Array(a), words })
        }
        #[cfg(multiproc_loom)]
        {
            let _ = arena;
            let a: std::sync::Arc<[AtomicU64]> = (0..total).map(|_| AtomicU64::new(0)).collect();
            Ok(RingMem { base: a.as_ptr(), owner: Owner::Heap(a), words })
        }
    }

    /// A ring like [`new_in`](Self::new_in) that costs no memory until it is used: its
    /// words are a fresh block of `arena` whose zero bytes are not written (an empty ring is
    /// all zeros) and whose pages are not reserved. The producer must call
    /// [`reserve`](Self::reserve) before its first record (and the consumer writes only after
    /// a record came). Meant for an arena of the caller's own (see `Array::fresh_in`).
    pub fn new_fresh_in(arena: &Arena, words: usize) -> Result<RingMem> {
        assert!(words.is_power_of_two() && words >= MIN_WORDS, "ring of {words} words");
        #[cfg(not(multiproc_loom))]
        {
            let a = crate::Array::<AtomicU64>::fresh_in(arena, HEADER_WORDS + words + ALIGN_PAD)?;
            Ok(RingMem { base: line_aligned(&a), owner: Owner::Array(a), words })
        }
        #[cfg(multiproc_loom)]
        {
            Self::new_in(arena, words)
        }
    }

    /// Reserves the ring's pages (see [`new_fresh_in`](Self::new_fresh_in)):
    /// `ErrorKind::NoSpace` when memory is short. Cheap once done.
    pub fn reserve(&self) -> Result<()> {
        #[cfg(not(multiproc_loom))]
        {
            let Owner::Array(a) = &self.owner;
            a.reserve()
        }
        #[cfg(multiproc_loom)]
        Ok(())
    }

    /// Data words.
    #[inline]
    pub fn capacity_words(&self) -> usize {
        self.words
    }

    #[inline]
    fn word(&self, i: usize) -> &AtomicU64 {
        debug_assert!(i < HEADER_WORDS + self.words);
        // SAFETY: `i` is within the header and data (all callers index below
        // `HEADER_WORDS + words`), which `owner` keeps alive.
        unsafe { &*self.base.add(i) }
    }

    #[inline]
    fn data_word(&self, i: usize) -> &AtomicU64 {
        self.word(HEADER_WORDS + (i & (self.words - 1)))
    }

    /// Word `i` (below [`SPARE_WORDS`]) of the producer's header line, for the caller's own
    /// protocol (a doorbell count).
    #[inline]
    pub fn producer_word(&self, i: usize) -> &AtomicU64 {
        assert!(i < SPARE_WORDS);
        self.word(TAIL + 1 + i)
    }

    /// Word `i` (below [`SPARE_WORDS`]) of the consumer's header line, for the caller's own
    /// protocol (a futex for a producer waiting for room).
    #[inline]
    pub fn consumer_word(&self, i: usize) -> &AtomicU64 {
        assert!(i < SPARE_WORDS);
        self.word(HEAD + 1 + i)
    }

    /// Words published and not yet consumed (a snapshot; `Acquire` on `tail`).
    #[inline]
    pub fn used_words(&self) -> u64 {
        let head = self.word(HEAD).load(Ordering::Acquire);
        self.word(TAIL).load(Ordering::Acquire).wrapping_sub(head)
    }

    /// Whether a record is waiting (a cheap look, for spinning).
    #[inline]
    pub fn nonempty(&self) -> bool {
        self.word(TAIL).load(Ordering::Acquire) != self.word(HEAD).load(Ordering::Relaxed)
    }

    /// Whether nothing is published, with both positions loaded `SeqCst` (for a sleep
    /// handshake: the sleeper raises its flag, fences, then looks here).
    #[inline]
    pub fn is_empty_seqcst(&self) -> bool {
        self.word(HEAD).load(Ordering::SeqCst) == self.word(TAIL).load(Ordering::SeqCst)
    }

    /// Key of one half of this ring in the process-local claim registry.
    #[inline]
    fn key(&self, consumer: bool) -> usize {
        self.base as usize | consumer as usize
    }

    // ----- payload copies -----

    /// Writes the concatenation of `parts` at data word `at` (contiguous, within the data).
    #[inline]
    fn put(&self, at: usize, parts: &[&[u8]]) {
        // `at == words`: an empty payload whose header took the last word.
        debug_assert!(at <= self.words);
        #[cfg(not(multiproc_loom))]
        {
            let mut dst = (self.base as *mut u8).wrapping_add((HEADER_WORDS + at) * 8);
            let end = (self.base as *mut u8).wrapping_add((HEADER_WORDS + self.words) * 8);
            for p in parts {
                assert!(p.len() <= end as usize - dst as usize, "record beyond the data");
                // SAFETY: in the data (checked above); the producer (one per process: its
                // claim; writing through `&mut self`) alone owns the words from `tail` to
                // `head + capacity` until it publishes `tail`: nothing else touches them.
                unsafe { std::ptr::copy_nonoverlapping(p.as_ptr(), dst, p.len()) };
                dst = dst.wrapping_add(p.len());
            }
        }
        #[cfg(multiproc_loom)]
        {
            let mut w = at;
            let (mut acc, mut n) = ([0u8; 8], 0usize);
            for &b in parts.iter().flat_map(|p| p.iter()) {
                acc[n] = b;
                n += 1;
                if n == 8 {
                    self.data_word(w).store(u64::from_le_bytes(acc), Ordering::Relaxed);
                    (w, acc, n) = (w + 1, [0; 8], 0);
                }
            }
            if n > 0 {
                self.data_word(w).store(u64::from_le_bytes(acc), Ordering::Relaxed);
            }
        }
    }

    /// Copies `dst.len()` bytes from data word `at` (contiguous, within the data).
    #[inline]
    fn get(&self, at: usize, dst: &mut [u8]) {
        assert!(at + dst.len().div_ceil(8) <= self.words, "record beyond the data");
        #[cfg(not(multiproc_loom))]
        {
            let src = (self.base as *const u8).wrapping_add((HEADER_WORDS + at) * 8);
            // SAFETY: the range lies within the data (checked above); the consumer alone
            // owns the words between `head` and `tail` until it publishes `head`, and the
            // producer (one per process, writing only the other words) does not touch them.
            unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) };
        }
        #[cfg(multiproc_loom)]
        for (i, chunk) in dst.chunks_mut(8).enumerate() {
            let w = self.data_word(at + i).load(Ordering::Relaxed).to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
    }
}

#[cfg(not(multiproc_loom))]
impl serde::Serialize for RingMem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let Owner::Array(a) = &self.owner;
        (a, self.words as u64).serialize(s)
    }
}

#[cfg(not(multiproc_loom))]
impl<'de> serde::Deserialize<'de> for RingMem {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let (a, words): (crate::Array<AtomicU64>, u64) = serde::Deserialize::deserialize(d)?;
        let words = usize::try_from(words).map_err(D::Error::custom)?;
        if !words.is_power_of_two()
            || words < MIN_WORDS
            || a.len() != HEADER_WORDS + words + ALIGN_PAD
        {
            return Err(D::Error::custom("a ring's memory does not match its size"));
        }
        Ok(RingMem { base: line_aligned(&a), owner: Owner::Array(a), words })
    }
}

/// Under loom a ring lives on the heap and cannot travel.
#[cfg(multiproc_loom)]
impl serde::Serialize for RingMem {
    fn serialize<S: serde::Serializer>(&self, _s: S) -> std::result::Result<S::Ok, S::Error> {
        use crate::error::{Error, ErrorKind};
        Err(serde::ser::Error::custom(Error::kind_only(ErrorKind::NoTransferContext)))
    }
}

#[cfg(multiproc_loom)]
impl<'de> serde::Deserialize<'de> for RingMem {
    fn deserialize<D: serde::Deserializer<'de>>(_d: D) -> std::result::Result<Self, D::Error> {
        use crate::error::{Error, ErrorKind};
        Err(serde::de::Error::custom(Error::kind_only(ErrorKind::NoTransferContext)))
    }
}

#[inline]
fn header(kind: u8, len: usize) -> u64 {
    len as u64 | (kind as u64) << 32 | CHECK << 56
}

/// Data words of a record of `len` payload bytes.
#[inline]
fn rec_words(len: usize) -> usize {
    1 + len.div_ceil(8)
}

/// Drops a claim with its half.
#[derive(Debug)]
struct Claim(usize);

impl Drop for Claim {
    fn drop(&mut self) {
        crate::fork::unclaim(self.0);
    }
}

/// A half of a ring, `$T`: the struct (its `$role` half, the ring's `$noun`), `new`, which
/// claims the half (`reader`: the reading one) for this process, and `mem`.
macro_rules! ring_half {
    ($T:ident, $role:literal, $noun:literal, reader: $reader:literal) => {
        #[doc = concat!("The ", $role, " half of a ring (one per ring per process).")]
        #[derive(Debug)]
        pub struct $T {
            mem: RingMem,
            _claim: Claim,
        }

        impl $T {
            #[doc = concat!("The ", $noun, " of `mem`'s ring, or `None` while this process")]
            /// has one already.
            pub fn new(mem: &RingMem) -> Option<$T> {
                let key = mem.key($reader);
                crate::fork::claim(key).then(|| $T { mem: mem.clone(), _claim: Claim(key) })
            }

            /// The ring's memory (its spare words, its fill level).
            #[inline]
            pub fn mem(&self) -> &RingMem {
                &self.mem
            }
        }
    };
}

ring_half!(Producer, "writing", "producer", reader: false);

impl Producer {
    /// Largest payload of one record, in bytes (a quarter of the data).
    #[inline]
    pub fn max_record(&self) -> usize {
        self.mem.words / 4 * 8
    }

    /// `head` as the consumer last published it (`Acquire`).
    #[inline]
    pub fn consumed(&self) -> u64 {
        self.mem.word(HEAD).load(Ordering::Acquire)
    }

    /// Free data words at `tail`.
    #[inline]
    fn free(&self, tail: u64) -> std::result::Result<usize, Corrupt> {
        let used = tail.wrapping_sub(self.consumed());
        if used > self.mem.words as u64 {
            return Err(Corrupt);
        }
        Ok(self.mem.words - used as usize)
    }

    /// Data words a record of `len` bytes takes at `tail`, padding to the end included.
    #[inline]
    fn need(&self, tail: u64, len: usize) -> usize {
        let rec = rec_words(len);
        let to_end = self.mem.words - (tail as usize & (self.mem.words - 1));
        if rec <= to_end {
            rec
        } else {
            to_end + rec
        }
    }

    /// Whether a record of `len` payload bytes fits now.
    #[inline]
    pub fn has_room(&self, len: usize) -> std::result::Result<bool, Corrupt> {
        let tail = self.mem.word(TAIL).load(Ordering::Relaxed);
        Ok(self.need(tail, len) <= self.free(tail)?)
    }

    /// Writes and publishes a record of `kind` (`1..=255`) holding the concatenation of
    /// `parts` (at most [`max_record`](Self::max_record) bytes): `Ok(Some(tail before it))`,
    /// or `Ok(None)`, nothing written, when the ring lacks room.
    #[inline]
    pub fn try_push(
        &mut self,
        kind: u8,
        parts: &[&[u8]],
    ) -> std::result::Result<Option<u64>, Corrupt> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        assert!(kind != PAD && len <= self.max_record(), "record kind {kind}, {len} bytes");
        let m = &self.mem;
        let tail = m.word(TAIL).load(Ordering::Relaxed);
        let need = self.need(tail, len);
        if need > self.free(tail)? {
            return Ok(None);
        }
        let mut at = tail as usize & (m.words - 1);
        let to_end = m.words - at;
        if rec_words(len) > to_end {
            m.data_word(at).store(header(PAD, (to_end - 1) * 8), Ordering::Relaxed);
            at = 0;
        }
        m.data_word(at).store(header(kind, len), Ordering::Relaxed);
        m.put(at + 1, parts);
        m.word(TAIL).store(tail.wrapping_add(need as u64), Ordering::Release);
        Ok(Some(tail))
    }

    /// Takes back every record not consumed yet (`head := tail`): for a ring whose consumer
    /// is gone (its process died). `false`, nothing done, while this process has the
    /// consumer.
    pub fn reclaim(&mut self) -> bool {
        if crate::fork::claimed(self.mem.key(true)) {
            return false;
        }
        let tail = self.mem.word(TAIL).load(Ordering::Relaxed);
        self.mem.word(HEAD).store(tail, Ordering::SeqCst);
        true
    }
}

/// A record at the consumer's head ([`Consumer::peek`]).
#[derive(Debug, PartialEq, Eq)]
pub struct Rec {
    kind: u8,
    len: usize,
    /// Data word of the payload.
    pos: usize,
    /// `head` when it was peeked.
    at: u64,
    /// `head` once it is consumed.
    next: u64,
    /// The ring's claim key.
    ring: usize,
}

impl Rec {
    /// The record's kind.
    #[inline]
    pub fn kind(&self) -> u8 {
        self.kind
    }

    /// Payload length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the payload is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ring position where the record begins (padding before it included): what
    /// [`Producer::try_push`] returned for it, so a caller can tell which record this is.
    #[inline]
    pub fn at(&self) -> u64 {
        self.at
    }
}

ring_half!(Consumer, "reading", "consumer", reader: true);

impl Consumer {
    /// Whether a record is waiting.
    #[inline]
    pub fn nonempty(&self) -> bool {
        self.mem.nonempty()
    }

    /// The record at the head (padding skipped), `None` when the ring is empty.
    #[inline]
    pub fn peek(&self) -> std::result::Result<Option<Rec>, Corrupt> {
        let m = &self.mem;
        let at = m.word(HEAD).load(Ordering::Relaxed);
        let tail = m.word(TAIL).load(Ordering::Acquire);
        let mut head = at;
        loop {
            let avail = tail.wrapping_sub(head);
            if avail == 0 {
                return Ok(None);
            }
            if avail > m.words as u64 {
                return Err(Corrupt);
            }
            let pos = head as usize & (m.words - 1);
            let w = m.data_word(pos).load(Ordering::Relaxed);
            let (kind, len) = ((w >> 32) as u8, (w & 0xFFFF_FFFF) as usize);
            if w >> 56 != CHECK || (w >> 40) & 0xFFFF != 0 {
                return Err(Corrupt);
            }
            let rec = rec_words(len);
            if rec as u64 > avail || rec > m.words - pos {
                return Err(Corrupt);
            }
            if kind == PAD {
                if rec != m.words - pos {
                    return Err(Corrupt);
                }
                head = head.wrapping_add(rec as u64);
                continue;
            }
            let next = head.wrapping_add(rec as u64);
            return Ok(Some(Rec { kind, len, pos: pos + 1, at, next, ring: m.key(true) }));
        }
    }

    /// Panics unless `rec` is the record at this ring's head.
    #[inline]
    fn check(&self, rec: &Rec) {
        assert!(
            rec.ring == self.mem.key(true) && rec.at == self.mem.word(HEAD).load(Ordering::Relaxed),
            "a record of another ring, or one consumed already"
        );
    }

    /// Copies the payload of `rec` (the record at the head) into `dst`, `rec.len()` bytes.
    #[inline]
    pub fn read(&self, rec: &Rec, dst: &mut [u8]) {
        self.check(rec);
        assert_eq!(dst.len(), rec.len, "destination of the wrong length");
        self.mem.get(rec.pos, dst);
    }

    /// The payload of `rec` (the record at the head) in place, `rec.len()` bytes: no copy.
    /// The view borrows this consumer, so the record cannot be consumed while it is alive.
    #[cfg(not(multiproc_loom))]
    #[inline]
    pub fn payload(&self, rec: &Rec) -> &[u8] {
        self.check(rec);
        let m = &self.mem;
        assert!(rec.pos + rec.len.div_ceil(8) <= m.words, "record beyond the data");
        let src = (m.base as *const u8).wrapping_add((HEADER_WORDS + rec.pos) * 8);
        // `rec` is the record at the head (checked), published: the consumer alone owns the
        // words between `head` and `tail` until it publishes `head` (`advance`, which takes
        // `&mut self` and so waits for this borrow to end), and the producer (one per
        // process, writing only the other words) does not touch them. Another process
        // writing them out of turn breaks the protocol, as for the copies (`read`): the
        // bytes seen may then be garbage, never memory outside the mapping.
        // SAFETY: the range lies within the data (checked above), kept mapped by `mem` while
        // `self` lives, and nothing writes it while the view lives (above).
        unsafe { std::slice::from_raw_parts(src, rec.len) }
    }

    /// Appends the payload of `rec` (the record at the head) to `out`.
    #[inline]
    pub fn append_to(&self, rec: &Rec, out: &mut Vec<u8>) {
        let n = out.len();
        out.resize(n + rec.len, 0);
        self.read(rec, &mut out[n..]);
    }

    /// Consumes `rec` (the record at the head, and padding before it): publishes `head`.
    #[inline]
    pub fn advance(&mut self, rec: Rec) {
        self.check(&rec);
        self.mem.word(HEAD).store(rec.next, Ordering::Release);
    }

    /// Drops every published record (`head := tail`).
    pub fn skip_all(&mut self) {
        let tail = self.mem.word(TAIL).load(Ordering::Acquire);
        self.mem.word(HEAD).store(tail, Ordering::Release);
    }
}

#[cfg(all(test, not(multiproc_loom)))]
mod tests;
