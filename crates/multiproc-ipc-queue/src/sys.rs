//! Every raw system call of this crate: the spill file's
//! `memfd_create`, `fallocate` (punch) and a read-only `mmap` of it.
#![allow(clippy::disallowed_methods)]

/// A number that changes in a forked child (its "fork generation"), so per-process caches
/// (the queue's party index) can tell they were inherited without a `getpid` system call:
/// the arena's, counted by its one fork handler.
#[inline]
pub(crate) fn fork_epoch() -> u64 {
    multiproc_arena::fork::epoch()
}

/// A new anonymous memory file (close-on-exec; inherited by fork, passed to others by hand).
pub(crate) fn memfd(name: &str) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let cname = std::ffi::CString::new(name)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call; the flag is
    // valid for memfd_create.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Gives back the pages of `[off, off + len)` of a memory file (punches a hole; the size
/// stays). Best effort: an error leaves the pages in place.
pub(crate) fn punch_hole(fd: std::os::fd::BorrowedFd<'_>, off: u64, len: u64) {
    use std::os::fd::AsRawFd;
    if len == 0 {
        return;
    }
    let len = len.next_multiple_of(4096);
    // SAFETY: plain system call on a descriptor we borrow; no memory is passed.
    let _ = unsafe {
        libc::fallocate(
            fd.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off as libc::off_t,
            len as libc::off_t,
        )
    };
}

/// A read-only shared mapping of part of a file, unmapped on drop.
pub(crate) struct FileMap {
    ptr: *mut libc::c_void,
    len: usize,
    /// Where the caller's bytes start in the mapping (the offset rounded down to a page).
    skip: usize,
}

impl FileMap {
    /// Maps `len` (> 0) bytes at `off` of `fd` read-only, pages populated at once.
    ///
    /// # Safety
    /// Nobody modifies that range of the file while the map lives (the caller owns it).
    pub(crate) unsafe fn new(
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
    pub(crate) fn bytes(&self) -> &[u8] {
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
