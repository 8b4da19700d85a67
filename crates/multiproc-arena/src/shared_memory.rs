//! [`SharedMemory`]: Python's `multiprocessing.shared_memory.SharedMemory`.

use crate::error::{Error, ErrorKind, Result};
use crate::segment::{random_name, Segment};
use std::sync::atomic::AtomicU64;

/// How many random names [`SharedMemory::create`] tries before it gives up.
const NAME_DRAWS: usize = 16;

/// A named block of shared bytes that processes sharing no parent can attach to by name
/// (Python's `SharedMemory`). The creator unlinks the name when it drops its handle unless
/// [`persist`](SharedMemory::persist) was called; a killed creator's names are removed by
/// [`cleanup_orphans`](crate::cleanup_orphans).
///
/// ```
/// use multiproc_arena::SharedMemory;
/// let shm = SharedMemory::create(16).unwrap();
/// shm.write(0, b"hello").unwrap();
/// let other = SharedMemory::open(shm.name()).unwrap();
/// let mut buf = [0u8; 5];
/// other.read(0, &mut buf).unwrap();
/// assert_eq!(&buf, b"hello");
/// ```
#[derive(Debug)]
pub struct SharedMemory {
    seg: Segment,
}

impl SharedMemory {
    /// Creates a block of `size` bytes (zeroed) with a fresh random name.
    /// A drawn name that exists already (improbable: 64 random bits) is drawn again, as
    /// Python's does.
    pub fn create(size: usize) -> Result<SharedMemory> {
        Self::create_first_free(size, std::iter::repeat_with(random_name))
    }

    /// Creates under the first of `names` that is free (at most [`NAME_DRAWS`] tried).
    fn create_first_free(size: usize, names: impl Iterator<Item = String>) -> Result<SharedMemory> {
        let mut last = None;
        for name in names.take(NAME_DRAWS) {
            match Self::create_named(&name, size) {
                Err(e) if e.kind() == ErrorKind::AlreadyExists => last = Some(e),
                r => return r,
            }
        }
        Err(last.unwrap_or_else(|| Error::new(ErrorKind::InvalidName, "no name to try")))
    }

    /// Creates a block of `size` bytes named `name`. A size of 0 is an error, as in Python.
    pub fn create_named(name: &str, size: usize) -> Result<SharedMemory> {
        if size == 0 {
            return Err(Error::new(ErrorKind::InvalidLayout, "size must be positive"));
        }
        Ok(SharedMemory { seg: Segment::create(name, size)? })
    }

    /// Attaches to an existing block by name.
    pub fn open(name: &str) -> Result<SharedMemory> {
        Ok(SharedMemory { seg: Segment::open(name)? })
    }

    /// The name (without a leading `/`), to tell other processes.
    pub fn name(&self) -> &str {
        self.seg.name().unwrap_or("")
    }

    /// The size the creator asked for.
    pub fn size(&self) -> usize {
        self.seg.requested_len()
    }

    /// The first byte (valid for [`size`](Self::size) bytes while `self` lives).
    pub fn as_ptr(&self) -> *mut u8 {
        self.seg.as_ptr()
    }

    fn check(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size() => Ok(()),
            _ => Err(Error::new(
                ErrorKind::InvalidLayout,
                format!("range {offset}+{len} outside {} bytes", self.size()),
            )),
        }
    }

    /// Copies `data` into the block at `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check(offset, data.len())?;
        // SAFETY: the range is inside the mapping (checked); the source is a distinct local
        // buffer. Concurrent writers in other processes race on bytes only, as in Python.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.as_ptr().add(offset), data.len())
        };
        Ok(())
    }

    /// Copies bytes from the block at `offset` into `buf`.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.check(offset, buf.len())?;
        // SAFETY: as in `write`, in the other direction.
        unsafe {
            std::ptr::copy_nonoverlapping(self.as_ptr().add(offset), buf.as_mut_ptr(), buf.len())
        };
        Ok(())
    }

    /// The block as 64-bit atomic words (`size / 8` of them; the block starts page aligned):
    /// a safe view for processes that read and write the block at the same time, as
    /// [`ShareableList`](crate::ShareableList) does. Racing accesses through it are atomic,
    /// never undefined behaviour. Do not mix it with [`write`](Self::write),
    /// [`as_mut_slice`](Self::as_mut_slice) or another view of other widths on the same bytes
    /// while another thread or process may use them: those are not atomic.
    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping starts page aligned (so 8-aligned) and holds `size` bytes while
        // `self` lives; AtomicU64 has the size of u64, every bit pattern is valid, and
        // shared mutation through it is what atomics allow.
        unsafe { std::slice::from_raw_parts(self.as_ptr().cast::<AtomicU64>(), self.size() / 8) }
    }

    /// The bytes as a slice.
    ///
    /// # Safety
    /// No process may write the block while the slice is alive.
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping holds `size` bytes; the caller excludes writers.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.size()) }
    }

    /// The bytes as a mutable slice.
    ///
    /// # Safety
    /// No other process or handle may access the block while the slice is alive.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice(&self) -> &mut [u8] {
        // SAFETY: the mapping holds `size` bytes; the caller guarantees exclusivity.
        unsafe { std::slice::from_raw_parts_mut(self.as_ptr(), self.size()) }
    }

    /// Prefaults the pages for writing in this process; see [`Segment::populate`].
    pub fn populate(&self) -> Result<()> {
        self.seg.populate()
    }

    /// Keeps the name after this handle is dropped or its process dies.
    pub fn persist(&mut self) {
        self.seg.persist();
    }

    /// Removes the name (Python's `unlink`). Attached processes keep their mapping. A second
    /// unlink is [`ErrorKind::NotFound`].
    pub fn unlink(&mut self) -> Result<()> {
        self.seg.unlink()
    }

    /// Detaches (Python's `close`); the creator's drop also unlinks unless persisted.
    pub fn close(self) {}

    /// The segment underneath.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }
}

impl serde::Serialize for SharedMemory {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        crate::transfer::serialize_fd(self.seg.fd(), self.name(), s)
    }
}

impl<'de> serde::Deserialize<'de> for SharedMemory {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (fd, _name): (_, String) = crate::transfer::deserialize_fd(d)?;
        let seg = Segment::from_fd(fd).map_err(crate::transfer::de_error)?;
        Ok(SharedMemory { seg: seg.with_name(_name) })
    }
}

#[cfg(all(test, not(multiproc_loom)))]
mod tests {
    use super::*;

    /// SM06: a drawn name that is taken is drawn again.
    #[test]
    fn a_taken_random_name_is_drawn_again() {
        let taken = SharedMemory::create(64).unwrap();
        let fresh = random_name();
        let names = [taken.name().to_string(), taken.name().to_string(), fresh.clone()];
        let shm = SharedMemory::create_first_free(64, names.into_iter()).unwrap();
        assert_eq!(shm.name(), fresh);
        let only_taken = std::iter::repeat(taken.name().to_string());
        let e = SharedMemory::create_first_free(64, only_taken).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    }
}
