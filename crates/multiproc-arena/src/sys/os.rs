//! The arena's memory and randomness system calls, for the crates above it: one owner per
//! system-call family (`memfd_create`, `mmap`, `getrandom`, the futex and `pthread_atfork`
//! live in this crate only; `cargo xtask tidy` checks it).
#![allow(clippy::disallowed_methods)]

use std::io;
use std::os::fd::OwnedFd;

/// A new anonymous memory file (`memfd_create`, close-on-exec): inherited by fork, passed to
/// other processes as a descriptor.
pub fn memfd(name: &str) -> io::Result<OwnedFd> {
    crate::sys::memfd_create(name)
}

/// Gives back the memory of `[off, off + len)` of a memory file such as a [`memfd`]
/// (punches a hole: the range reads as zeros, the file keeps its size).
pub fn punch_hole(fd: std::os::fd::BorrowedFd<'_>, off: u64, len: u64) -> io::Result<()> {
    crate::sys::punch_hole(fd, off, len)
}

/// Fills `buf` with random bytes from the kernel (`getrandom`).
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    crate::sys::getrandom(buf)
}

/// The result of a raw system call that reports failure as a negative return (`-1` with
/// `errno` set): `Err` of `errno` then, else the return value. For the raw calls of the
/// packages above the arena (`c_int`, `c_long` and `ssize_t` returns alike).
///
/// ```
/// use multiproc_arena::os::cvt;
/// assert_eq!(cvt(3i32).unwrap(), 3);
/// assert_eq!(cvt(0isize).unwrap(), 0);
/// assert!(cvt(-1i64).is_err());
/// ```
pub fn cvt<T: Copy + Default + PartialOrd>(ret: T) -> io::Result<T> {
    (ret >= T::default()).then_some(ret).ok_or_else(io::Error::last_os_error)
}

/// A read-only shared mapping of part of a file, unmapped on drop.
pub struct FileMap {
    ptr: *mut libc::c_void,
    len: usize,
    /// Where the caller's bytes start in the mapping (the offset rounded down to a page).
    skip: usize,
}

// SAFETY: the mapping is plain read-only memory owned by this value; it may move between
// threads and be read from several (the caller promised nobody writes the range).
unsafe impl Send for FileMap {}
// SAFETY: as above.
unsafe impl Sync for FileMap {}

impl std::fmt::Debug for FileMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileMap").field("len", &(self.len - self.skip)).finish()
    }
}

impl FileMap {
    /// Maps `len` (> 0) bytes at `off` of `fd` read-only, pages populated at once.
    ///
    /// # Safety
    /// Nobody modifies that range of the file while the map lives (the caller owns it).
    pub unsafe fn new(
        fd: std::os::fd::BorrowedFd<'_>,
        off: u64,
        len: usize,
    ) -> std::io::Result<FileMap> {
        use std::os::fd::AsRawFd;
        let skip = (off % 4096) as usize;
        let map_len = len
            .checked_add(skip)
            .filter(|&n| n > 0)
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: a fresh mapping chosen by the kernel (no address hint); the descriptor is
        // borrowed for the call; the offset is page aligned.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                (off - skip as u64) as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(FileMap { ptr, len: map_len, skip })
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `len` readable bytes at `ptr` (mapped in `new`, alive until drop); the
        // file range is not modified meanwhile (the promise made to `new`).
        unsafe {
            std::slice::from_raw_parts(self.ptr.cast::<u8>().add(self.skip), self.len - self.skip)
        }
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no reference into it outlives
        // `self` (`bytes` borrows it).
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

#[cfg(all(test, not(multiproc_loom)))]
mod tests {
    use std::fs::File;
    use std::os::fd::AsFd;
    use std::os::unix::fs::{FileExt, MetadataExt};

    #[test]
    fn punch_hole_gives_pages_back_and_keeps_the_size() {
        let f = File::from(super::memfd("punch-test").unwrap());
        f.write_all_at(&[7u8; 3 * 4096], 0).unwrap();
        let before = f.metadata().unwrap().blocks();
        super::punch_hole(f.as_fd(), 4096, 4096).unwrap();
        let mut back = [1u8; 3 * 4096];
        f.read_exact_at(&mut back, 0).unwrap();
        assert!(back[..4096].iter().all(|&b| b == 7));
        assert!(back[4096..8192].iter().all(|&b| b == 0), "the hole reads as zeros");
        assert!(back[8192..].iter().all(|&b| b == 7));
        assert_eq!(f.metadata().unwrap().len(), 3 * 4096, "the size stays");
        assert!(f.metadata().unwrap().blocks() < before, "a page was given back");
        super::punch_hole(f.as_fd(), 0, 0).unwrap();
    }

    #[test]
    fn random_bytes_differ() {
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        super::random_bytes(&mut a).unwrap();
        super::random_bytes(&mut b).unwrap();
        assert_ne!(a, b);
    }
}
