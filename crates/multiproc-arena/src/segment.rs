//! Shared-memory segments: anonymous (memfd) and named (POSIX shm under `/dev/shm`).
//!
//! Every segment starts with a [`SegmentHeader`] page; the caller's bytes follow at
//! [`Segment::as_ptr`]. Opening validates the header, and each way it can be wrong is its own
//! [`ErrorKind`].

use crate::error::{Error, ErrorKind, Result};
use crate::liveness::ProcessId;
use memmap2::{MmapOptions, MmapRaw};
use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// `b"MPROCSEG"` as a little-endian u64.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"MPROCSEG");
/// Bumped whenever the layout of any shared header changes.
pub const LAYOUT_VERSION: u32 = 2;
/// Bytes reserved for the header; the caller's area starts here (page aligned).
pub(crate) const HEADER_SPACE: usize = 4096;
/// Where named segments live on Linux.
const SHM_DIR: &str = "/dev/shm";
/// Longest accepted name (without the leading `/`); NAME_MAX is 255.
pub const MAX_NAME_LEN: usize = 250;

const STATE_READY: u32 = 1;
pub(crate) const FLAG_PERSIST: u32 = 1;
pub(crate) const FLAG_ARENA: u32 = 2;
/// Some process maps this named segment without holding the in-use lock (taking it failed):
/// [`cleanup_orphans`] never removes it.
const FLAG_UNTRACKED: u32 = 4;
/// The name goes when its last user does (named objects): every user's drop checks, through
/// the in-use locks, whether another process still has the file open, and unlinks if not.
pub(crate) const FLAG_LAST_USER: u32 = 8;
/// The byte of a named segment's file on which every process that has the file open holds
/// an open-file-description read lock (far past any data: locks are advisory and need no
/// bytes). The kernel drops a process's lock when it dies, so "no lock" proves that no
/// process has the file open any more.
const IN_USE_OFFSET: u64 = (i64::MAX as u64) - 1;

/// The header at offset 0 of every segment. Two processes must agree on it byte for byte.
#[repr(C)]
pub(crate) struct SegmentHeader {
    magic: u64,
    version: u32,
    /// 0 while the creator initialises, [`STATE_READY`] after.
    state: AtomicU32,
    /// Total size of the object in bytes (header page included).
    size: u64,
    /// Random identity, used to recognise a segment mapped twice.
    id: u64,
    /// The creator's pid in its own PID namespace (for messages only).
    creator_pid: u32,
    /// [`FLAG_PERSIST`], [`FLAG_ARENA`], [`FLAG_UNTRACKED`].
    flags: AtomicU32,
    /// The creator's [`Identity`](crate::Identity) bits.
    creator_id: u64,
    /// The length the creator asked for (usable bytes before rounding to pages).
    user_len: u64,
    /// A named object's block (see [`crate::named`]): its offset in the segment's arena, 0
    /// until published (with Release, after `root_tag` and `root_len`).
    pub(crate) root: AtomicU64,
    /// The named object's type tag.
    pub(crate) root_tag: AtomicU64,
    /// The named object's element count.
    pub(crate) root_len: AtomicU64,
    _reserved: [u64; 6],
}

#[cfg(not(multiproc_loom))]
crate::assert_layout!(
    SegmentHeader {
        magic: 0,
        version: 8,
        state: 12,
        size: 16,
        id: 24,
        creator_pid: 32,
        flags: 36,
        creator_id: 40,
        user_len: 48,
        root: 56,
        root_tag: 64,
        root_len: 72,
    },
    size 128,
    align u64
);

/// A mapped shared-memory segment.
///
/// Anonymous segments ([`Segment::anonymous`]) are inherited by fork and passed to other
/// processes as a descriptor (see [`transfer`](crate::transfer)). Named segments
/// ([`Segment::create`], [`Segment::open`]) can be opened by any process of the same user that
/// knows the name; they are created with `O_EXCL` and mode 0600, and the creator unlinks the
/// name on drop unless [`Segment::persist`] was called. If the creator is killed, the next
/// [`cleanup_orphans`] call (made automatically before a process creates its first named
/// segment) removes the name.
pub struct Segment {
    map: MmapRaw,
    file: File,
    name: Option<String>,
    /// Unlink the name on drop (creator only; never in a forked child).
    unlink_on_drop: bool,
    creator: u32,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name)
            .field("id", &format_args!("{:#x}", self.id()))
            .field("len", &self.len())
            .finish()
    }
}

/// Validates a POSIX shm name (with or without its leading `/`) and returns it without.
pub fn validate_name(name: &str) -> Result<&str> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() {
        return Err(Error::new(ErrorKind::InvalidName, "empty name"));
    }
    if bare.len() > MAX_NAME_LEN {
        return Err(Error::new(
            ErrorKind::InvalidName,
            format!("name is {} bytes, the limit is {MAX_NAME_LEN}", bare.len()),
        ));
    }
    if bare.contains('/') || bare.contains('\0') || bare == "." || bare == ".." {
        return Err(Error::new(ErrorKind::InvalidName, format!("{name:?} holds '/' or NUL")));
    }
    Ok(bare)
}

fn shm_path(bare: &str) -> PathBuf {
    PathBuf::from(SHM_DIR).join(bare)
}

/// A random segment name with this crate's prefix (`multiproc-<pid>-<hex>`).
pub fn random_name() -> String {
    format!("multiproc-{}-{:016x}", std::process::id(), crate::random_u64())
}

/// What an arena segment reserves at creation: the segment header and the arena header.
const ARENA_RESERVE_AT_START: usize = HEADER_SPACE + 4096;

/// `fallocate` of `[off, off + len)` of a segment's file, with an error that names the
/// operation, the segment and the cause (`NoSpace` for `ENOSPC`/`ENOMEM`). A file system
/// that cannot reserve (`EOPNOTSUPP`) is left as it is: there is nothing better to do.
fn reserve(file: &File, off: u64, len: u64, name: Option<&str>) -> Result<()> {
    match crate::sys::fallocate(file.as_fd(), off, len) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(()),
        Err(e) => {
            let what = match name {
                Some(n) => format!("reserving {len} bytes for /{n} (fallocate)"),
                None => format!("reserving {len} bytes of anonymous shared memory (fallocate)"),
            };
            Err(Error::io(e, what))
        }
    }
}

fn total_size(len: usize) -> Result<usize> {
    len.checked_add(HEADER_SPACE)
        .and_then(|t| t.checked_next_multiple_of(4096))
        .filter(|&t| t <= isize::MAX as usize)
        .ok_or_else(|| Error::new(ErrorKind::InvalidLayout, format!("size {len} too large")))
}

impl Segment {
    /// A new anonymous segment of `len` usable bytes (zeroed), backed by a memfd.
    pub fn anonymous(len: usize) -> Result<Segment> {
        let s = Self::anonymous_uninit(len, 0)?;
        s.mark_ready();
        Ok(s)
    }

    /// Creates a named segment of `len` usable bytes (zeroed). Fails with
    /// [`ErrorKind::AlreadyExists`] if the name is taken.
    pub fn create(name: &str, len: usize) -> Result<Segment> {
        let s = Self::create_with_flags(name, len, 0)?;
        s.mark_ready();
        Ok(s)
    }

    /// An anonymous segment not yet marked ready (the caller initialises, then marks).
    pub(crate) fn anonymous_uninit(len: usize, flags: u32) -> Result<Segment> {
        let fd = crate::sys::memfd_create("multiproc").map_err(|e| Error::io(e, "memfd_create"))?;
        Self::init(File::from(fd), len, None, flags)
    }

    pub(crate) fn create_with_flags(name: &str, len: usize, flags: u32) -> Result<Segment> {
        let bare = validate_name(name)?;
        cleanup_orphans_once();
        let path = shm_path(bare);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| Error::io(e, format!("creating /{bare}")))?;
        match Self::init(file, len, Some(bare.to_string()), flags) {
            Ok(s) => Ok(s),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    fn init(file: File, len: usize, name: Option<String>, flags: u32) -> Result<Segment> {
        let total = total_size(len)?;
        file.set_len(total as u64).map_err(|e| Error::io(e, "ftruncate"))?;
        // Reserve the pages before anything is mapped or published: memory that cannot be had
        // is this error now, never a SIGBUS on some later first touch. An arena reserves only
        // its header here and the rest as its allocator hands blocks out (`reserve`).
        let now = if flags & FLAG_ARENA != 0 { total.min(ARENA_RESERVE_AT_START) } else { total };
        reserve(&file, 0, now as u64, name.as_deref())?;
        let map = MmapOptions::new().len(total).map_raw(&file).map_err(|e| Error::io(e, "mmap"))?;
        let me = ProcessId::current();
        let hdr = map.as_mut_ptr().cast::<SegmentHeader>();
        // Openers of a named segment read `state` atomically and trust nothing else before READY.
        // SAFETY: the mapping is at least HEADER_SPACE bytes, page aligned and writable, and
        // not yet published, so these plain writes race with no reader.
        unsafe {
            (*hdr).magic = MAGIC;
            (*hdr).version = LAYOUT_VERSION;
            (*hdr).size = total as u64;
            (*hdr).id = crate::random_u64();
            (*hdr).creator_pid = me.pid();
            (*hdr).creator_id = me.identity_bits();
            (*hdr).user_len = len as u64;
            (*hdr).flags.store(flags, Ordering::Relaxed);
        }
        let seg = Segment { map, file, unlink_on_drop: name.is_some(), name, creator: me.pid() };
        if seg.name.is_some() {
            seg.hold_in_use();
        }
        Ok(seg)
    }

    /// Reserves the pages of `[off, off + len)` of the caller's area (offsets past the
    /// header), so writes there cannot fail later for lack of memory. Errors:
    /// [`ErrorKind::NoSpace`] when `/dev/shm` or the memory limit is full.
    pub fn reserve(&self, off: usize, len: usize) -> Result<()> {
        let end = off.checked_add(len).filter(|&e| e <= self.len()).ok_or_else(|| {
            Error::new(ErrorKind::InvalidLayout, format!("range {off}+{len} past the segment"))
        })?;
        let start = (HEADER_SPACE + off) as u64;
        reserve(&self.file, start, (HEADER_SPACE + end) as u64 - start, self.name.as_deref())
    }

    /// Marks the segment initialised: openers stop getting [`ErrorKind::NotInitialized`].
    pub(crate) fn mark_ready(&self) {
        self.header().state.store(STATE_READY, Ordering::Release);
    }

    /// Opens an existing named segment and validates its header.
    pub fn open(name: &str) -> Result<Segment> {
        let bare = validate_name(name)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(shm_path(bare))
            .map_err(|e| Error::io(e, format!("opening /{bare}")))?;
        let seg = Self::map_existing(file, Some(bare.to_string()))?;
        seg.hold_in_use();
        // A cleanup holds the in-use byte exclusively while it unlinks an orphan: if it did so
        // between our open and our lock, the name no longer leads to this file.
        let ours = crate::sys::dev_ino(seg.file.as_fd()).ok();
        let named = std::fs::metadata(shm_path(bare)).ok().map(|m| {
            (std::os::unix::fs::MetadataExt::dev(&m), std::os::unix::fs::MetadataExt::ino(&m))
        });
        if ours.is_none() || ours != named {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("/{bare} was removed as an orphan"),
            ));
        }
        Ok(seg)
    }

    /// Maps a segment from a descriptor (received from another process) and validates it.
    pub fn from_fd(fd: OwnedFd) -> Result<Segment> {
        Self::map_existing(File::from(fd), None)
    }

    fn map_existing(file: File, name: Option<String>) -> Result<Segment> {
        // Join the liveness registry now, at the process's first use of shared memory, so
        // that running out of descriptors later cannot leave it unable to prove deaths.
        let _ = crate::Identity::current();
        let len = file.metadata().map_err(|e| Error::io(e, "fstat"))?.len();
        if len == 0 {
            return Err(Error::new(ErrorKind::NotInitialized, "object has size 0"));
        }
        if len < HEADER_SPACE as u64 {
            return Err(Error::new(
                ErrorKind::Truncated,
                format!("object is {len} bytes, smaller than a header"),
            ));
        }
        let map = MmapOptions::new()
            .len(len as usize)
            .map_raw(&file)
            .map_err(|e| Error::io(e, "mmap"))?;
        let seg = Segment { map, file, name, unlink_on_drop: false, creator: 0 };
        let h = seg.header();
        let state = h.state.load(Ordering::Acquire);
        // SAFETY (for the plain reads below): these fields are written once by the creator
        // before it publishes STATE_READY with Release; we read them after an Acquire load.
        let (magic, version, size) = (h.magic, h.version, h.size);
        if magic != MAGIC {
            if magic == 0 && state == 0 {
                return Err(Error::new(ErrorKind::NotInitialized, "header not written yet"));
            }
            return Err(Error::new(ErrorKind::InvalidHeader, format!("magic {magic:#018x}")));
        }
        if version != LAYOUT_VERSION {
            return Err(Error::new(
                ErrorKind::VersionMismatch,
                format!("segment has layout {version}, this build speaks {LAYOUT_VERSION}"),
            ));
        }
        if size > len {
            return Err(Error::new(
                ErrorKind::Truncated,
                format!("header says {size} bytes, object has {len}"),
            ));
        }
        if state != STATE_READY {
            return Err(Error::kind_only(ErrorKind::NotInitialized));
        }
        Ok(seg)
    }

    /// Takes the in-use lock on a named segment's file through this process's own open
    /// file description (see [`IN_USE_OFFSET`]); if the kernel refuses, marks the segment
    /// untracked so that no cleanup ever takes it for an orphan.
    fn hold_in_use(&self) {
        if crate::sys::ofd_set(self.file.as_fd(), IN_USE_OFFSET, true).is_err() {
            self.header().flags.fetch_or(FLAG_UNTRACKED, Ordering::AcqRel);
        }
    }

    /// Records the name of a segment received as a descriptor (it does not unlink on drop).
    pub(crate) fn with_name(mut self, name: String) -> Segment {
        if !name.is_empty() {
            self.name = Some(name);
        }
        self
    }

    pub(crate) fn header(&self) -> &SegmentHeader {
        // SAFETY: the mapping is at least HEADER_SPACE bytes and page aligned; the header's
        // mutable fields are atomics, the rest are only written before publication.
        unsafe { &*self.map.as_ptr().cast::<SegmentHeader>() }
    }

    /// Start of the caller's bytes (page aligned).
    pub fn as_ptr(&self) -> *mut u8 {
        // SAFETY: HEADER_SPACE is within the mapping (checked at create/open).
        unsafe { self.map.as_mut_ptr().add(HEADER_SPACE) }
    }

    /// Usable bytes (the mapping less the header page).
    pub fn len(&self) -> usize {
        self.map.len() - HEADER_SPACE
    }

    /// The length the creator asked for (≤ [`len`](Self::len), which is rounded to pages).
    pub fn requested_len(&self) -> usize {
        (self.header().user_len as usize).min(self.len())
    }

    /// Whether the usable area is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The segment's random identity (the same in every process that maps it).
    pub fn id(&self) -> u64 {
        self.header().id
    }

    /// The name without the leading `/`, for named segments.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The process that created the segment.
    pub fn creator(&self) -> ProcessId {
        let h = self.header();
        ProcessId::from_parts(h.creator_pid, h.creator_id)
    }

    pub(crate) fn flags(&self) -> u32 {
        self.header().flags.load(Ordering::Acquire)
    }

    /// Sets header flags (atomically; seen by every process).
    pub(crate) fn set_flags(&self, flags: u32) {
        self.header().flags.fetch_or(flags, Ordering::AcqRel);
    }

    /// Keeps the name after the creator drops the segment or dies (like a file); remove it
    /// with [`Segment::unlink`] or [`Segment::unlink_name`].
    pub fn persist(&mut self) {
        self.header().flags.fetch_or(FLAG_PERSIST, Ordering::AcqRel);
        self.unlink_on_drop = false;
    }

    /// Removes the name now. Processes that have it mapped keep their mapping.
    pub fn unlink(&mut self) -> Result<()> {
        self.unlink_on_drop = false;
        let name = self
            .name
            .clone()
            .ok_or_else(|| Error::new(ErrorKind::InvalidName, "anonymous segment has no name"))?;
        Self::unlink_name(&name)
    }

    /// Removes a named segment by name. [`ErrorKind::NotFound`] if there is none (so a double
    /// unlink is an error, as in Python).
    pub fn unlink_name(name: &str) -> Result<()> {
        let bare = validate_name(name)?;
        std::fs::remove_file(shm_path(bare)).map_err(|e| Error::io(e, format!("unlinking /{bare}")))
    }

    /// Prefaults every page of the mapping for writing in this process (one
    /// `MADV_POPULATE_WRITE` instead of a page fault per 4 KiB on first touch). A forked child
    /// does not inherit the page tables of shared mappings, so a process about to write a large
    /// segment end to end calls this first. Kernels before 5.14 report `Io`; nothing changes.
    pub fn populate(&self) -> Result<()> {
        self.map
            .advise(memmap2::Advice::PopulateWrite)
            .map_err(|e| Error::io(e, "madvise(MADV_POPULATE_WRITE)"))
    }

    /// The descriptor backing the mapping (to pass the segment to another process).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        let flags = self.flags();
        if self.name.is_some() && flags & FLAG_LAST_USER != 0 {
            // The last user removes the name: our description turns its shared in-use lock
            // into an exclusive one only if no other holds one, and keeps openers out until
            // the name is gone (see `open`).
            if flags & FLAG_PERSIST == 0
                && matches!(
                    crate::sys::ofd_try_exclusive(self.file.as_fd(), IN_USE_OFFSET),
                    Ok(true)
                )
            {
                if let Some(n) = &self.name {
                    let _ = std::fs::remove_file(shm_path(n));
                }
            }
            return;
        }
        // Only the creating process unlinks (a forked child inherits the struct, not the duty).
        if self.unlink_on_drop && self.creator == crate::sys::getpid() {
            if let Some(n) = &self.name {
                let _ = std::fs::remove_file(shm_path(n));
            }
        }
    }
}

fn cleanup_orphans_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = cleanup_orphans();
    });
}

/// Removes named multiproc segments that no process has open any more and that were not
/// persisted.
///
/// This is the crash cleanup of named segments: a creator killed with SIGKILL cannot unlink
/// its names, so the next process that calls this (every process does, once, before it creates
/// its first named segment) removes them. "No process has it open" is a proof from the
/// kernel, not a guess: every process that creates or opens a named segment holds an
/// open-file-description lock on its file, which the kernel drops only when that process
/// closes it or dies — in whatever PID namespace, with or without `/proc`. Objects that are
/// not multiproc segments, belong to another user, were persisted, are still open somewhere,
/// or could not be tracked are left alone. Returns how many names were removed.
pub fn cleanup_orphans() -> Result<usize> {
    use std::os::unix::fs::FileExt;
    let dir = match std::fs::read_dir(SHM_DIR) {
        Ok(d) => d,
        Err(e) => return Err(Error::io(e, "reading /dev/shm")),
    };
    let my_uid = crate::sys::geteuid();
    let mut removed = 0;
    for entry in dir.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() || meta.len() < HEADER_SPACE as u64 {
            continue;
        }
        if std::os::unix::fs::MetadataExt::uid(&meta) != my_uid {
            continue;
        }
        let Ok(f) = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(entry.path())
        else {
            continue;
        };
        let mut raw = [0u8; 48];
        if f.read_exact_at(&mut raw, 0).is_err() {
            continue;
        }
        let word = |o: usize| u64::from_le_bytes(raw[o..o + 8].try_into().unwrap());
        let half = |o: usize| u32::from_le_bytes(raw[o..o + 4].try_into().unwrap());
        if word(0) != MAGIC || half(8) != LAYOUT_VERSION || half(12) != STATE_READY {
            continue;
        }
        if half(36) & (FLAG_PERSIST | FLAG_UNTRACKED) != 0 {
            continue;
        }
        // Our descriptor is a description of its own. Taking the in-use byte exclusively
        // succeeds only if no process holds it (a kernel proof that nobody has the file
        // open), and keeps any opener out until the name is gone (`open` checks after taking
        // its own lock that the name still leads to its file). The lock goes with `f`.
        if !matches!(crate::sys::ofd_try_exclusive(f.as_fd(), IN_USE_OFFSET), Ok(true)) {
            continue;
        }
        if std::fs::remove_file(entry.path()).is_ok() {
            crate::event!(
                info,
                target: "multiproc::arena",
                name = %entry.file_name().to_string_lossy(),
                "removed an orphaned named segment (no process had it open)"
            );
            removed += 1;
        }
    }
    Ok(removed)
}

impl serde::Serialize for Segment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        crate::transfer::serialize_fd(self.fd(), self.name().unwrap_or(""), s)
    }
}

impl<'de> serde::Deserialize<'de> for Segment {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (fd, name): (_, String) = crate::transfer::deserialize_fd(d)?;
        Ok(Segment::from_fd(fd).map_err(crate::transfer::de_error)?.with_name(name))
    }
}
