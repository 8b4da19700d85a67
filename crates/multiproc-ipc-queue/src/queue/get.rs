//! `get`: taking a record and decoding the item from the ring, a spill entry or a stream.

use super::Queue;
use crate::error::{Error, ErrorKind, GetError};
use crate::ring::{notify, Block, Refused, FLAG_SPILL, FLAG_STREAM, REC_HDR, SLOT_BYTES};
use crate::{spill, stream};
use multiproc_arena::sync::atomic::Ordering;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::cell::RefCell;
use std::time::Duration;

/// Test support: see [`pause_after_spill_claim`].
static PAUSE_AFTER_SPILL_CLAIM: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Test support (not API): from now on, a `get` in this process that takes a spilled
/// message's descriptor stops there for ever, holding it (a test then kills the process).
#[doc(hidden)]
pub fn pause_after_spill_claim() {
    PAUSE_AFTER_SPILL_CLAIM.store(true, std::sync::atomic::Ordering::Relaxed);
}

thread_local! {
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Largest receive buffer a thread keeps between messages.
const KEEP_BUF: usize = 16 << 20;

/// Decodes a taken message; one that does not decode comes back as its bytes in the error.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    postcard::from_bytes::<T>(bytes).map_err(|e| Error::undecodable(e, bytes))
}

/// Runs `f` with this thread's reusable buffer (a fresh one if it is in use).
fn with_buf<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    BUF.with(|b| match b.try_borrow_mut() {
        Ok(mut b) => {
            let r = f(&mut b);
            if b.capacity() > KEEP_BUF {
                *b = Vec::new(); // do not pin the memory of one huge message
            }
            r
        }
        Err(_) => f(&mut Vec::new()),
    })
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// Decodes the spilled message (entry, generation, `total` bytes) and frees its entry.
    /// The caller holds its descriptor record.
    fn recv_spilled(&self, me: u32, desc: (usize, u32, u64)) -> Result<T, Error> {
        let ring = &self.inner.ring;
        let (e, gen, total) = desc;
        if !spill::is_queued(ring, e, gen) {
            return Err(Error::new(ErrorKind::Decode, "the spilled message is gone"));
        }
        let out = match usize::try_from(total) {
            Err(_) => Err(Error::kind_only(ErrorKind::OutOfMemory)),
            // SAFETY: the entry is QUEUED for the record we hold: nobody else reads, writes
            // or frees its region until we free it below, after the map is gone.
            Ok(len) => match unsafe { ring.mem.spill_map(spill::region(e), len) } {
                // Decoded straight from the file's pages (no copy into a buffer first).
                Ok(map) => decode::<T>(map.bytes()),
                Err(_) => self.read_spilled(e, len),
            },
        };
        spill::consumed(ring, me, e, gen);
        out
    }

    /// [`recv_spilled`](Self::recv_spilled) without a map (no address space left): reads
    /// the bytes into a buffer.
    fn read_spilled(&self, e: usize, len: usize) -> Result<T, Error> {
        let mut buf = Vec::new();
        if buf.try_reserve_exact(len).is_err() {
            return Err(Error::kind_only(ErrorKind::OutOfMemory));
        }
        buf.resize(len, 0);
        self.inner.ring.mem.spill_read(spill::region(e), &mut buf).map_err(|io| {
            Error::new(ErrorKind::OutOfMemory, format!("reading a spilled message: {io}"))
        })?;
        decode::<T>(&buf)
    }

    /// Takes the next item, waiting while the queue is empty.
    ///
    /// Errors: `Closed` (closed and drained), `Failed` (the message did not deserialise into
    /// `T`: its bytes come back in [`Error::undecoded`](crate::Error::undecoded)).
    pub fn get(&self) -> Result<T, GetError> {
        self.get_with(Block::Forever)
    }

    /// Takes the next item if there is one now (Python's `get_nowait`).
    pub fn try_get(&self) -> Result<T, GetError> {
        self.get_with(Block::No)
    }

    /// Takes the next item, waiting at most `timeout`. (A message streamed through the
    /// ring, once taken, is received whole even if that takes longer.)
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_with(Block::after(timeout))
    }

    fn get_with(&self, block: Block) -> Result<T, GetError> {
        let ring = &self.inner.ring;
        let me = self.inner.party().map_err(GetError::Failed)?;
        loop {
            let claim = ring.take(me, block).map_err(|r| match r {
                Refused::WouldBlock => GetError::Empty,
                Refused::Timeout => GetError::Timeout,
                Refused::Closed => GetError::Closed,
            })?;
            if claim.discard {
                continue; // dropping the claim releases the record
            }
            let mut hdr = [0u8; stream::DESC_BYTES];
            match claim.view(0, REC_HDR) {
                Some(v) => hdr[..REC_HDR].copy_from_slice(v),
                None => claim.read(0, &mut hdr[..REC_HDR]),
            }
            if hdr[4] & (FLAG_STREAM | FLAG_SPILL) as u8 != 0 {
                claim.read(0, &mut hdr);
            }
            let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
            let flags = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
            let h = ring.header();
            if flags & FLAG_SPILL != 0 {
                let Some(desc) = spill::parse(&hdr) else { continue };
                if PAUSE_AFTER_SPILL_CLAIM.load(std::sync::atomic::Ordering::Relaxed) {
                    loop {
                        std::thread::sleep(Duration::from_secs(1)); // to be killed here
                    }
                }
                let out = self.recv_spilled(me, desc);
                drop(claim);
                return out.map_err(|e| self.undelivered(e));
            }
            if flags & FLAG_STREAM != 0 {
                let Some(desc) = stream::parse(&hdr) else { continue };
                let mut buf = BUF
                    .with(|b| b.try_borrow_mut().map(|mut b| std::mem::take(&mut *b)))
                    .unwrap_or_default();
                let got = stream::recv(ring, me, &claim, desc, &mut buf);
                drop(claim);
                let out = match got {
                    Ok(()) => decode::<T>(&buf),
                    Err(stream::Lost::NoMemory) => Err(Error::kind_only(ErrorKind::OutOfMemory)),
                    Err(stream::Lost::Producer) => {
                        h.skipped.fetch_add(1, Ordering::Relaxed);
                        h.discarded.fetch_add(1, Ordering::Relaxed);
                        notify(&h.ev_join);
                        continue;
                    }
                };
                if buf.capacity() <= KEEP_BUF {
                    buf.clear();
                    BUF.with(|b| {
                        if let Ok(mut b) = b.try_borrow_mut() {
                            *b = buf;
                        }
                    });
                }
                return out.map_err(|e| self.undelivered(e));
            }
            let span_bytes = claim.span as usize * SLOT_BYTES;
            let out = if len > span_bytes - REC_HDR {
                Err(Error::new(ErrorKind::Decode, "corrupt record length"))
            } else if let Some(view) = claim.view(REC_HDR, len) {
                decode::<T>(view)
            } else {
                with_buf(|buf| {
                    buf.clear();
                    buf.resize(len, 0);
                    claim.read(REC_HDR, buf);
                    decode::<T>(buf)
                })
            };
            drop(claim);
            return out.map_err(|e| self.undelivered(e));
        }
    }

    /// A taken message that is not delivered counts out of `join`.
    fn undelivered(&self, e: Error) -> GetError {
        let h = self.inner.ring.header();
        h.skipped.fetch_add(1, Ordering::Relaxed);
        notify(&h.ev_join);
        GetError::Failed(e)
    }
}
