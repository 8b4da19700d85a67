//! Named objects: one object per named segment, found by name by unrelated processes.
//!
//! A named object lives in an arena of its own, created under the object's name in
//! `/dev/shm` (mode 0600). Its segment header records the object's block (offset, element
//! count, type tag), published last, so an opener either finds a complete object of the
//! type it asked for, or a typed error: `NotFound`, `NotInitialized` (its creator is still
//! making it), `WrongType`. The name goes when its last user does — every process that has
//! the segment open holds the arena's in-use lock, so the last one to drop it can tell — or
//! is kept for good when asked (`persist`). A SIGKILLed last user's name is removed by the
//! next [`cleanup_orphans`](crate::cleanup_orphans).
//!
//! [`Shared::create_named`](crate::Shared::create_named) is the typed front; the lock and
//! queue crates build their named primitives on these functions.

use crate::arena::{Arena, Offset};
use crate::error::{Error, ErrorKind, Result};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Creates the named arena for one object of about `bytes` (with room for the arena's own
/// bookkeeping); its name goes with its last user. `AlreadyExists` if the name is taken.
pub fn create(name: &str, bytes: usize) -> Result<Arena> {
    let arena = Arena::create(name, bytes.saturating_add(4096).max(16 * 1024))?;
    arena.segment().set_flags(crate::segment::FLAG_LAST_USER);
    Ok(arena)
}

/// Records the named object's block: the creator's last step (openers wait for it).
pub fn publish(arena: &Arena, off: Offset<u8>, len: u64, tag: u64) {
    let h = arena.segment().header();
    h.root_tag.store(tag, Ordering::Relaxed);
    h.root_len.store(len, Ordering::Relaxed);
    h.root.store(off.raw(), Ordering::Release);
}

/// Opens the named arena `name` and reads its object's block: `(arena, offset, element
/// count, type tag)`. `NotInitialized` while the creator has not published it.
pub fn root(name: &str) -> Result<(Arena, Offset<u8>, u64, u64)> {
    let arena = Arena::open(name)?;
    let h = arena.segment().header();
    let off = h.root.load(Ordering::Acquire);
    if off == 0 {
        return Err(Error::new(ErrorKind::NotInitialized, format!("{name}: being created")));
    }
    let (len, tag) = (h.root_len.load(Ordering::Relaxed), h.root_tag.load(Ordering::Relaxed));
    Ok((arena, Offset::from_raw(off), len, tag))
}

/// Keeps `arena`'s name after every user is gone.
pub fn persist(arena: &Arena) {
    arena.segment().set_flags(crate::segment::FLAG_PERSIST);
}

/// Whether `arena`'s name is kept after every user is gone.
pub fn is_persistent(arena: &Arena) -> bool {
    arena.segment().flags() & crate::segment::FLAG_PERSIST != 0
}

/// `open(name)`, or `create()` if it does not exist; exactly one of several racing processes
/// creates it, the others open what it made (waiting up to 5 s while it is being made).
pub fn open_or_create<S, E>(
    name: &str,
    create: impl FnOnce() -> std::result::Result<S, E>,
    open: impl Fn(&str) -> std::result::Result<S, E>,
) -> std::result::Result<S, E>
where
    E: From<Error> + HasArenaKind,
{
    let mut create = Some(create);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match open(name) {
            Ok(s) => return Ok(s),
            Err(e) if e.arena_kind() == Some(ErrorKind::NotFound) => {
                if let Some(c) = create.take() {
                    match c() {
                        Err(e) if e.arena_kind() == Some(ErrorKind::AlreadyExists) => {}
                        other => return other,
                    }
                }
            }
            Err(e) if e.arena_kind() == Some(ErrorKind::NotInitialized) => {}
            Err(e) => return Err(e),
        }
        if Instant::now() >= deadline {
            return Err(
                Error::new(ErrorKind::NotInitialized, format!("{name}: never ready")).into()
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Errors that may carry an arena [`ErrorKind`] (for [`open_or_create`]).
pub trait HasArenaKind {
    /// The arena's kind of this error, if it comes from the arena.
    fn arena_kind(&self) -> Option<ErrorKind>;
}

impl HasArenaKind for Error {
    fn arena_kind(&self) -> Option<ErrorKind> {
        Some(self.kind())
    }
}
