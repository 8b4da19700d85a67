//! The postcard outputs a `put` serialises through: a size pass, one slot on the stack, a
//! record in place, and batches into a stream window or a spill entry.

use crate::ring::{Refused, Reservation, Ring, SLOT_BYTES};
use crate::shm::ShmMem;
use crate::{spill, stream};

/// A postcard output that only counts bytes (the size pass before writing into the ring).
pub(super) struct SizeFlavor(pub(super) usize);

impl postcard::ser_flavors::Flavor for SizeFlavor {
    type Output = usize;
    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0 += data.len();
        Ok(())
    }
    #[inline]
    fn try_push(&mut self, _: u8) -> postcard::Result<()> {
        self.0 += 1;
        Ok(())
    }
    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.0)
    }
}

/// A postcard output into one slot's payload (after the record header): the common small
/// message, serialised in one pass without a size pass or `memcpy` calls.
pub(super) struct SlotFlavor<'a> {
    pub(super) buf: &'a mut [u8; SLOT_BYTES],
    pub(super) off: usize,
}

impl postcard::ser_flavors::Flavor for SlotFlavor<'_> {
    type Output = usize;
    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        let end = self.off + data.len();
        let Some(dst) = self.buf.get_mut(self.off..end) else {
            return Err(postcard::Error::SerializeBufferFull);
        };
        small_copy(dst, data);
        self.off = end;
        Ok(())
    }
    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        match self.buf.get_mut(self.off) {
            Some(d) => {
                *d = data;
                self.off += 1;
                Ok(())
            }
            None => Err(postcard::Error::SerializeBufferFull),
        }
    }
    #[inline]
    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.off)
    }
}

/// Copies `src` into `dst` (same length) with fixed-size moves for short lengths (varints,
/// small fields): a call to `memcpy` per field costs more than the field.
#[inline(always)]
fn small_copy(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    match n {
        0 => {}
        1 => dst[0] = src[0],
        2..=3 => {
            dst[..2].copy_from_slice(&src[..2]);
            dst[n - 2..].copy_from_slice(&src[n - 2..]);
        }
        4..=7 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..].copy_from_slice(&src[n - 4..]);
        }
        8..=16 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..].copy_from_slice(&src[n - 8..]);
        }
        _ => dst.copy_from_slice(src),
    }
}

/// A postcard output that writes straight into a reserved record.
pub(super) struct RecordFlavor<'r, 'a> {
    pub(super) res: &'r mut Reservation<'a, ShmMem>,
    pub(super) off: usize,
    pub(super) end: usize,
}

impl postcard::ser_flavors::Flavor for RecordFlavor<'_, '_> {
    type Output = usize;
    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if self.off + data.len() > self.end {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.res.write(self.off, data);
        self.off += data.len();
        Ok(())
    }
    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.try_extend(&[data])
    }
    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.off)
    }
}

/// Where a [`Batched`] postcard output sends its batches.
pub(super) trait BatchSink {
    /// What the output gives back when serialisation is done.
    type Output;
    /// Sends `data` on (after everything sent before it).
    fn send(&mut self, data: &[u8]) -> postcard::Result<()>;
    /// The output, once everything was sent.
    fn output(self) -> Self::Output;
}

/// A postcard output that gathers small writes in `buf` and sends them to its sink in
/// batches (a write of half the buffer or more goes straight through); bytes leave in order.
pub(super) struct Batched<S> {
    sink: S,
    buf: Vec<u8>,
}

impl<S: BatchSink> Batched<S> {
    pub(super) fn new(sink: S, batch: usize) -> Self {
        Batched { sink, buf: Vec::with_capacity(batch) }
    }

    fn flush(&mut self) -> postcard::Result<()> {
        let r = self.sink.send(&self.buf);
        self.buf.clear();
        r
    }
}

impl<S: BatchSink> postcard::ser_flavors::Flavor for Batched<S> {
    type Output = S::Output;
    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        // Bytes leave in order: what is buffered goes before anything sent directly.
        if self.buf.len() + data.len() > self.buf.capacity()
            || data.len() >= self.buf.capacity() / 2
        {
            self.flush()?;
        }
        if data.len() >= self.buf.capacity() / 2 {
            self.sink.send(data)?;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(())
    }
    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.try_extend(&[data])
    }
    fn finalize(mut self) -> postcard::Result<S::Output> {
        self.flush()?;
        Ok(self.sink.output())
    }
}

/// Streams through a window record.
pub(super) struct StreamSink<'r, 'a> {
    pub(super) tx: &'r mut stream::Sender<'a, ShmMem>,
    /// Why the stream refused more bytes (deadline passed), for the caller.
    pub(super) failed: &'r mut Option<Refused>,
}

impl BatchSink for StreamSink<'_, '_> {
    type Output = ();
    fn send(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.tx.write(data).map_err(|e| {
            *self.failed = Some(e);
            postcard::Error::SerializeBufferFull
        })
    }
    fn output(self) {}
}

/// Writes into a spill entry's region of the spill file; the output is the byte count.
pub(super) struct SpillSink<'a> {
    pub(super) ring: &'a Ring<ShmMem>,
    pub(super) e: usize,
    pub(super) base: u64,
    pub(super) off: u64,
}

impl BatchSink for SpillSink<'_> {
    type Output = u64;
    fn send(&mut self, data: &[u8]) -> postcard::Result<()> {
        let end = self.off + data.len() as u64;
        if end > spill::MAX_SPILL {
            return Err(postcard::Error::SerializeBufferFull);
        }
        spill::will_write(self.ring, self.e, end);
        // A file that refuses bytes (out of memory...) makes the caller stream instead.
        self.ring
            .mem
            .spill_write(self.base + self.off, data)
            .map_err(|_| postcard::Error::SerializeBufferFull)?;
        self.off = end;
        Ok(())
    }
    fn output(self) -> u64 {
        self.off
    }
}
