//! `put`: serialising an item into one slot, a record, a spilled message or a stream.

use super::flavor::{Batched, RecordFlavor, SizeFlavor, SlotFlavor, SpillSink, StreamSink};
use super::Queue;
use crate::error::{Error, ErrorKind, PutError};
use crate::ring::{Block, Refused, Ring, REC_HDR, SLOT_BYTES};
use crate::shm::ShmMem;
use crate::{spill, stream};
use multiproc_arena::sync::atomic::Ordering;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

/// A spill entry the producer holds: given back unless published.
struct SpillHold<'a> {
    ring: &'a Ring<ShmMem>,
    me: u32,
    e: usize,
    gen: u32,
    armed: bool,
}

impl Drop for SpillHold<'_> {
    fn drop(&mut self) {
        if self.armed {
            spill::abandon(self.ring, self.me, self.e, self.gen);
        }
    }
}

/// Why an internal put step failed.
enum Fail {
    Encode(Error),
    Ring(Refused),
}

impl From<Refused> for Fail {
    fn from(r: Refused) -> Self {
        Fail::Ring(r)
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// Puts `value`, waiting while the queue is full.
    ///
    /// Errors: `Closed`, `Failed` (the item does not serialise; the queue is unchanged).
    pub fn put(&self, value: T) -> Result<(), PutError<T>> {
        self.put_with(value, Block::Forever)
    }

    /// Puts `value` if there is room now (Python's `put_nowait`). A message that has to be
    /// streamed (see [`Queue`]) cannot be put without waiting for a consumer: it is refused
    /// as `Full`.
    pub fn try_put(&self, value: T) -> Result<(), PutError<T>> {
        self.put_with(value, Block::No)
    }

    /// Puts `value`, waiting at most `timeout` for room.
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_with(value, Block::after(timeout))
    }

    fn put_with(&self, value: T, block: Block) -> Result<(), PutError<T>> {
        let ring = &self.inner.ring;
        if ring.is_closed() {
            return Err(PutError::Closed(value));
        }
        let me = match self.inner.party() {
            Ok(m) => m,
            Err(e) => return Err(PutError::Failed(value, e)),
        };
        match self.put_bytes(&value, me, block) {
            Ok(()) => Ok(()),
            Err(Fail::Encode(e)) => Err(PutError::Failed(value, e)),
            Err(Fail::Ring(Refused::WouldBlock)) => Err(PutError::Full(value)),
            Err(Fail::Ring(Refused::Timeout)) => Err(PutError::Timeout(value)),
            Err(Fail::Ring(Refused::Closed)) => Err(PutError::Closed(value)),
        }
    }

    /// Serialises `value` straight into the ring: into one slot on the stack in a single
    /// pass if it fits; otherwise a size pass first, then a record written in place, a
    /// spilled message, or a stream. A value that does not serialise leaves the queue
    /// untouched.
    fn put_bytes(&self, value: &T, me: u32, block: Block) -> Result<(), Fail> {
        let ring = &self.inner.ring;
        // Most messages fit one slot: serialise into it at once (an error other than "does
        // not fit" is the item's own, and the queue is untouched).
        let mut slot = [0u8; SLOT_BYTES];
        match postcard::serialize_with_flavor(value, SlotFlavor { buf: &mut slot, off: REC_HDR }) {
            Ok(end) => {
                slot[..4].copy_from_slice(&((end - REC_HDR) as u32).to_le_bytes());
                let mut res = ring.reserve(me, 1, block)?;
                res.write_slot(&slot);
                res.commit();
                return Ok(());
            }
            Err(postcard::Error::SerializeBufferFull) => {}
            Err(e) => return Err(Fail::Encode(Error::encode(e))),
        }
        let size = postcard::serialize_with_flavor(value, SizeFlavor(0))
            .map_err(|e| Fail::Encode(Error::encode(e)))?;
        let span = (REC_HDR + size).div_ceil(SLOT_BYTES);
        if span <= ring.max_inline_span() as usize {
            let mut res = ring.reserve(me, span as u32, block)?;
            res.prepare(me, block)?;
            let mut hdr = [0u8; REC_HDR];
            hdr[..4].copy_from_slice(&(size as u32).to_le_bytes());
            res.write(0, &hdr);
            let end = REC_HDR + size;
            let flavor = RecordFlavor { res: &mut res, off: REC_HDR, end };
            match postcard::serialize_with_flavor(value, flavor) {
                Ok(n) if n == end => {
                    res.commit();
                    Ok(())
                }
                // A `Serialize` impl that gave another size the second time: the record is
                // dropped (aborted on drop) and the put fails.
                Ok(_) => Err(Fail::Encode(Error::new(
                    ErrorKind::Encode,
                    "the item serialised to different sizes",
                ))),
                Err(e) => Err(Fail::Encode(Error::encode(e))),
            }
        } else {
            if self.put_spilled(value, size as u64, me, block)? {
                return Ok(());
            }
            let mut tx = stream::Sender::open(ring, me, size as u64, block)?;
            let mut failed = None;
            let flavor = Batched::new(StreamSink { tx: &mut tx, failed: &mut failed }, 64 << 10);
            match postcard::serialize_with_flavor(value, flavor) {
                Ok(()) => Ok(tx.finish()?),
                // `tx` aborts the stream when dropped.
                Err(e) => Err(match failed {
                    Some(refused) => Fail::Ring(refused),
                    None => Fail::Encode(Error::encode(e)),
                }),
            }
        }
    }

    /// Spills `value` (`size` serialised bytes) into the spill file and puts its descriptor.
    /// `Ok(false)`: no spill entry or no memory: stream it instead.
    fn put_spilled(&self, value: &T, size: u64, me: u32, block: Block) -> Result<bool, Fail> {
        let ring = &self.inner.ring;
        if size > spill::MAX_SPILL {
            return Ok(false);
        }
        if !block.waits() && ring.is_full() {
            return Err(Fail::Ring(Refused::WouldBlock)); // do not copy for nothing
        }
        let budget = ring.header().spill_budget.load(Ordering::Relaxed);
        if size > budget {
            return Ok(false);
        }
        let Some((e, gen)) = spill::acquire(ring, me) else { return Ok(false) };
        let mut hold = SpillHold { ring, me, e, gen, armed: true };
        // Charge the whole message to the entry first, then count what every entry holds:
        // two producers racing past the budget both see each other's charge (SeqCst), so at
        // worst both stream, never both spill.
        if !spill::charge(ring, e, size, budget) {
            return Ok(false); // `hold` gives the entry back
        }
        let sink = SpillSink { ring, e, base: spill::region(e), off: 0 };
        let flavor = Batched::new(sink, 256 << 10);
        match postcard::serialize_with_flavor(value, flavor) {
            Ok(n) if n == size => {}
            Ok(_) => {
                return Err(Fail::Encode(Error::new(
                    ErrorKind::Encode,
                    "the item serialised to different sizes",
                )))
            }
            // No memory for the bytes (the entry is given back): stream them.
            Err(postcard::Error::SerializeBufferFull) => return Ok(false),
            Err(err) => return Err(Fail::Encode(Error::encode(err))),
        }
        let mut res = ring.reserve(me, 1, block)?;
        let mut slot = [0u8; SLOT_BYTES];
        slot[..spill::DESC_BYTES].copy_from_slice(&spill::descriptor(e, gen, size));
        res.write_slot(&slot);
        if !spill::publish(ring, me, e, gen, res.pos) {
            // Never expected (only a party that saw us dead takes our entry): drop it all.
            return Err(Fail::Encode(Error::new(ErrorKind::Encode, "spill entry lost")));
        }
        hold.armed = false;
        res.commit();
        multiproc_arena::event!(
            debug,
            target: "multiproc::queue",
            bytes = size,
            "a large message was spilled to the queue's spill file"
        );
        Ok(true)
    }
}
