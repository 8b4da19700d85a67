//! Who a process is in shared memory, and a proof from the kernel that it is dead.
//!
//! Every recovery in multiproc — a dead holder's lock poisoned and handed on, a dead queue
//! party's space reclaimed, a killed creator's named segment removed — rests on one
//! judgement: "that process is dead". Judging wrongly in the "dead" direction hands a live
//! holder's lock to someone else (a data race, the worst outcome); judging wrongly in the
//! "alive" direction only makes a waiter wait. So the judgement **fails closed**: [`Dead`]
//! only on a proof from the kernel, and every "cannot tell" is [`Unknown`], which callers
//! treat as alive.
//!
//! # The mechanism: an open-file-description lock per process
//!
//! Each process opens one *liveness registry* file, `/dev/shm/multiproc-liveness` (created
//! on first use, mode 0444, empty: only its locks matter), and takes a shared
//! `F_OFD_SETLK` read lock on one byte of it, at an offset chosen at random: its *token*
//! (30 bits). The kernel releases an open-file-description lock when the last descriptor of
//! that description closes — at the latest in `do_exit`, after the process's memory is
//! unmapped, so a process whose lock is gone can no longer write to shared memory. Whether
//! the lock is still there is one `F_OFD_GETLK` away for any process that has the registry
//! open, whatever its PID namespace, whether or not `/proc` is mounted, hidden (`hidepid`)
//! or readable, and without opening anything (the registry descriptor is opened once, at
//! the process's first use of shared memory, so running out of descriptors later changes
//! nothing).
//!
//! An [`Identity`] is `registry << 32 | token`: the registry is a 32-bit fingerprint of the
//! file (its device and inode), so a process that sees a *different* registry file (another
//! `/dev/shm`, or the file deleted and made anew) cannot mistake a foreign token for one of
//! its own: it answers [`Unknown`].
//!
//! A token is unique among the live processes of a registry: a process that takes its read
//! lock then asks the kernel whether any other description also holds that byte, and picks
//! another token if so (two processes racing for the same token both see each other, since
//! each sets its lock before it asks). A token can be reused once its process died; a later
//! process holding the same token makes the dead one look alive (a wait, never a theft).
//!
//! Why not the alternatives (`DESIGN.md` lists them):
//! - pid + start time from `/proc` (what this module did before): a pid means nothing in
//!   another PID namespace, and `/proc` may be missing, hidden or unreadable; every such
//!   case came out "dead".
//! - pidfds: need the pid of the process *in the checker's namespace* and a way to tell the
//!   right process from a later one with the same number: the same two problems.
//! - the kernel's robust futex list: one list head per thread, owned by glibc's pthread
//!   mutexes (registering our own would break them); the list names a *thread* (a `Lock`
//!   may be released by another thread or process, as Python allows), and it holds at most
//!   2048 entries.
//! - classic (process-owned) `fcntl` locks: closing *any* descriptor of the file drops all of
//!   the process's locks on it — receiving the file twice and closing one copy would make a
//!   live process look dead.
//!
//! # Where the proof holds
//!
//! Between processes that see the same `/dev/shm` (any PID namespace, any user, with or
//! without `/proc`). A process that could not open the registry (no `/dev/shm`, a file of
//! another type squatting its name, no descriptor left at its first use of shared memory)
//! has an *unverifiable* identity (registry 0): others never judge it dead, so what it holds
//! is never recovered after its death — the library waits rather than guesses.
//! [`registry_error`] says why; [`unknown_judgements`] counts the "cannot tell" answers.
//!
//! Forks: a forked child shares its parent's registry description; a fork handler (run by
//! every `fork()` through libc, before any other code in the child) closes the child's copy
//! without touching the parent's lock, and the child claims a token of its own on first use.
//!
//! [`Dead`]: Liveness::Dead
//! [`Unknown`]: Liveness::Unknown

use std::io;
use std::os::fd::{AsFd, BorrowedFd, IntoRawFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

/// Bits of an [`Identity`]'s token.
pub const TOKEN_BITS: u32 = 30;
const TOKEN_MASK: u64 = (1 << TOKEN_BITS) - 1;

/// Where the registry lives.
const REGISTRY_PATH: &std::ffi::CStr = c"/dev/shm/multiproc-liveness";

/// The answer to "is this process still alive?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Liveness {
    /// The kernel says it runs (its registry lock is held).
    Alive,
    /// The kernel proved it ended (its registry lock is gone).
    Dead,
    /// No proof either way (its registry is not ours, or not open here): treat as alive.
    Unknown,
}

/// A process as recorded in shared memory: 8 bytes, `registry << 32 | token`, never 0.
///
/// Bits 30 and 31 are always zero, so callers may keep two flags beside an identity in one
/// word. See the [module docs](self) for how death is proved.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity(u64);

// SAFETY: repr(transparent) over a u64; every bit pattern is a value.
unsafe impl crate::ShmSafe for Identity {}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({:08x}:{:08x})", self.registry(), self.token())
    }
}

impl Identity {
    /// The calling process: one relaxed load once claimed (the first call opens the
    /// registry and claims a token).
    #[inline]
    pub fn current() -> Identity {
        let v = CURRENT.load(Ordering::Relaxed);
        if v != 0 {
            return Identity(v);
        }
        claim()
    }

    /// Rebuilds an identity stored as [`bits`](Self::bits); `None` for 0 or a value with
    /// bits 30/31 set (not an identity).
    pub fn from_bits(bits: u64) -> Option<Identity> {
        (bits != 0 && bits & (3 << TOKEN_BITS) == 0 && bits & TOKEN_MASK != 0)
            .then_some(Identity(bits))
    }

    /// The 64-bit form kept in shared memory (never 0; bits 30 and 31 clear).
    #[inline]
    pub fn bits(self) -> u64 {
        self.0
    }

    /// The token: unique among the live processes of one registry, never 0, below
    /// `1 << TOKEN_BITS`.
    #[inline]
    pub fn token(self) -> u32 {
        (self.0 & TOKEN_MASK) as u32
    }

    /// The registry's fingerprint; 0 for an unverifiable identity.
    #[inline]
    pub fn registry(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// Whether other processes can ever prove this one dead.
    pub fn is_verifiable(self) -> bool {
        self.registry() != 0
    }

    /// Asks the kernel; never [`Liveness::Dead`] without a proof. The caller's own
    /// identity is always [`Liveness::Alive`].
    pub fn liveness(self) -> Liveness {
        let me = Identity::current();
        if self == me {
            return Liveness::Alive;
        }
        let reg = REGISTRY.load(Ordering::Acquire);
        if self.registry() == 0 || reg < 0 || self.registry() != me.registry() {
            return unknown();
        }
        // SAFETY: `reg` is the registry descriptor this module opened and keeps open for the
        // life of the process (closed only in a forked child's handler, after which
        // REGISTRY is -1 and this branch is not taken); the borrow ends in this function.
        let fd = unsafe { BorrowedFd::borrow_raw(reg) };
        // The number must still be the registry: if the program closed it and the number went
        // to another file, a probe there would find no lock and prove nothing.
        match crate::sys::dev_ino(fd) {
            Ok((dev, ino)) if fingerprint(dev, ino) == me.registry() => {}
            _ => return unknown(),
        }
        match crate::sys::ofd_locked_by_other(fd, self.token() as u64) {
            Ok(true) => Liveness::Alive,
            Ok(false) => Liveness::Dead,
            Err(_) => unknown(),
        }
    }

    /// Whether the kernel proved this process dead (see [`liveness`](Self::liveness)).
    #[inline]
    pub fn is_dead(self) -> bool {
        self.liveness() == Liveness::Dead
    }

    /// `!is_dead()`: alive, or no proof of death.
    #[inline]
    pub fn is_alive(self) -> bool {
        !self.is_dead()
    }
}

/// A process as recorded in shared memory with its pid (for messages only: a pid means
/// nothing outside its PID namespace, so it is never used to judge liveness).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessId {
    pid: u32,
    _pad: u32,
    id: u64,
}

// SAFETY: repr(C) plain integers.
unsafe impl crate::ShmSafe for ProcessId {}

#[cfg(not(multiproc_loom))]
static_assertions::assert_eq_size!(ProcessId, [u64; 2]);

impl ProcessId {
    /// The calling process.
    pub fn current() -> ProcessId {
        let id = Identity::current().bits();
        ProcessId { pid: current_pid(), _pad: 0, id }
    }

    /// Rebuilds a process id from its parts (as stored in shared memory or sent).
    pub fn from_parts(pid: u32, identity: u64) -> ProcessId {
        ProcessId { pid, _pad: 0, id: identity }
    }

    /// The pid, as the process saw it in its own PID namespace (for messages).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The identity, `None` when the record holds none.
    pub fn identity(&self) -> Option<Identity> {
        Identity::from_bits(self.id)
    }

    /// The identity's bits (0 when none).
    pub fn identity_bits(&self) -> u64 {
        self.id
    }

    /// The kernel's answer for this process; [`Liveness::Unknown`] when no identity was
    /// recorded.
    pub fn liveness(&self) -> Liveness {
        self.identity().map_or_else(unknown, Identity::liveness)
    }

    /// Alive, or no proof of death: `false` only when the kernel proved it ended.
    pub fn is_alive(&self) -> bool {
        self.liveness() != Liveness::Dead
    }
}

/// This process's pid in its own PID namespace, cached (refreshed in a forked child): one
/// relaxed load. For messages and records only — never to judge liveness.
#[inline]
pub fn current_pid() -> u32 {
    let p = PID.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    let _ = Identity::current();
    crate::sys::getpid()
}

/// Why this process could not join the liveness registry (so its identity is
/// unverifiable), or `None` when it did (or has not needed an identity yet).
pub fn registry_error() -> Option<io::Error> {
    match CLAIM_ERRNO.load(Ordering::Relaxed) {
        0 => None,
        -1 => Some(io::Error::new(
            io::ErrorKind::InvalidData,
            "/dev/shm/multiproc-liveness is not a regular file",
        )),
        e => Some(io::Error::from_raw_os_error(e)),
    }
}

/// How many liveness questions this process could not answer (each answered "alive").
pub fn unknown_judgements() -> u64 {
    UNKNOWN.load(Ordering::Relaxed)
}

fn unknown() -> Liveness {
    UNKNOWN.fetch_add(1, Ordering::Relaxed);
    Liveness::Unknown
}

/// This process's identity bits; 0 until claimed (and again in a forked child).
static CURRENT: AtomicU64 = AtomicU64::new(0);
/// This process's pid, cached with its identity; 0 until then.
static PID: AtomicU32 = AtomicU32::new(0);
/// The registry descriptor, -1 when not open.
static REGISTRY: AtomicI32 = AtomicI32::new(-1);
/// 0 idle, 1 a thread is claiming (others spin: claims are rare and short).
static CLAIMING: AtomicU32 = AtomicU32::new(0);
/// The errno of a failed claim (-1: not a regular file), 0 if none.
static CLAIM_ERRNO: AtomicI32 = AtomicI32::new(0);
static UNKNOWN: AtomicU64 = AtomicU64::new(0);

/// Runs in the child of every `fork()` through libc (from [`crate::fork`]'s handler), before
/// anything else there: drop the
/// parent's identity and close the child's copy of the registry description (the parent's
/// lock stays: the parent still holds a descriptor of it). Async-signal-safe: atomics and
/// `close` only.
///
/// A child of a process that had joined the registry joins it at once, with a token of its
/// own (open, fcntl and getrandom are async-signal-safe; nothing here allocates): a child
/// that runs out of descriptors later can still prove deaths, and is provably alive or dead
/// from its first instruction.
pub(crate) fn after_fork_in_child() {
    let had = CURRENT.swap(0, Ordering::Relaxed);
    PID.store(0, Ordering::Relaxed);
    CLAIMING.store(0, Ordering::Relaxed);
    let fd = REGISTRY.swap(-1, Ordering::Relaxed);
    if fd >= 0 {
        crate::sys::close_raw(fd);
    }
    if had != 0 {
        let _ = claim();
    }
}

#[cold]
fn claim() -> Identity {
    loop {
        if CLAIMING.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            break;
        }
        let v = CURRENT.load(Ordering::Acquire);
        if v != 0 {
            return Identity(v);
        }
        std::thread::yield_now();
    }
    let v = CURRENT.load(Ordering::Acquire);
    let id = if v != 0 {
        Identity(v)
    } else {
        let id = match join_registry() {
            Ok(id) => id,
            Err(errno) => {
                CLAIM_ERRNO.store(errno, Ordering::Relaxed);
                Identity(random_token())
            }
        };
        PID.store(crate::sys::getpid(), Ordering::Relaxed);
        CURRENT.store(id.0, Ordering::Release);
        id
    };
    CLAIMING.store(0, Ordering::Release);
    id
}

/// Opens the registry and claims a token no other live process of it holds; an errno
/// (-1: the path is not a regular file) on failure. Allocates nothing (it also runs in a
/// forked child).
fn join_registry() -> Result<Identity, i32> {
    let errno = |e: io::Error| match e.kind() {
        io::ErrorKind::InvalidData => -1,
        _ => e.raw_os_error().unwrap_or(libc::EIO),
    };
    // Without the fork handler a forked child could not drop its parent's identity: refuse
    // to make a provable one.
    if !crate::fork::registered() {
        return Err(libc::ENOMEM);
    }
    let (fd, dev, ino) = crate::sys::open_registry(REGISTRY_PATH).map_err(errno)?;
    let registry = fingerprint(dev, ino);
    for _ in 0..64 {
        let token = random_token();
        crate::sys::ofd_set(fd.as_fd(), token, true).map_err(errno)?;
        if crate::sys::ofd_locked_by_other(fd.as_fd(), token).map_err(errno)? {
            // Another live process holds this token: give it back, draw again.
            crate::sys::ofd_set(fd.as_fd(), token, false).map_err(errno)?;
            continue;
        }
        let raw: RawFd = fd.into_raw_fd();
        REGISTRY.store(raw, Ordering::Release);
        return Ok(Identity((registry as u64) << 32 | token));
    }
    Err(libc::EADDRINUSE)
}

/// A 30-bit nonzero random token.
fn random_token() -> u64 {
    loop {
        let mut b = [0u8; 8];
        if crate::sys::getrandom(&mut b).is_err() {
            // No kernel randomness (never on supported kernels): the address of a stack
            // variable and the time still differ between processes.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            b = (t ^ (&b as *const _ as u64).rotate_left(17) ^ crate::sys::getpid() as u64)
                .to_le_bytes();
        }
        let t = u64::from_le_bytes(b) & TOKEN_MASK;
        if t != 0 {
            return t;
        }
    }
}

/// A nonzero 32-bit fingerprint of the registry file.
fn fingerprint(dev: u64, ino: u64) -> u32 {
    // SplitMix64 finaliser over both numbers: every bit of each reaches the result.
    let mut z = dev.rotate_left(32) ^ ino ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    match (z ^ (z >> 32)) as u32 {
        0 => 1,
        f => f,
    }
}

#[cfg(all(test, not(multiproc_loom)))]
mod tests {
    use super::*;

    #[test]
    fn current_is_alive_verifiable_and_stable() {
        let me = Identity::current();
        assert!(me.is_verifiable(), "registry: {:?}", registry_error());
        assert_eq!(Identity::current(), me);
        assert_eq!(me.liveness(), Liveness::Alive);
        assert_eq!(Identity::from_bits(me.bits()), Some(me));
        assert_eq!(me.bits() & (3 << TOKEN_BITS), 0);
        assert_eq!(ProcessId::current().identity(), Some(me));
        assert_eq!(ProcessId::current().pid(), std::process::id());
    }

    /// An identity of `me`'s registry whose token nobody holds (ours xor 1 could be held by
    /// another test process: probe a few until one is free, which is the common case).
    fn free_token(me: Identity) -> Option<Identity> {
        (1..1000u64)
            .map(|k| {
                Identity(
                    (me.registry() as u64) << 32 | ((me.token() as u64 + k) & TOKEN_MASK).max(1),
                )
            })
            .find(|i| i.liveness() == Liveness::Dead)
    }

    #[test]
    fn an_unclaimed_token_is_dead_and_a_foreign_registry_unknown() {
        let me = Identity::current();
        let free = free_token(me);
        assert!(free.is_some(), "some token is free");
        let foreign = Identity(((me.registry() ^ 0x55) as u64) << 32 | me.token() as u64);
        assert_eq!(foreign.liveness(), Liveness::Unknown);
        let unverifiable = Identity(me.token() as u64 ^ 1);
        assert_eq!(unverifiable.liveness(), Liveness::Unknown);
        assert_eq!(ProcessId::from_parts(1, 0).liveness(), Liveness::Unknown);
        assert!(Identity::from_bits(0).is_none());
        assert!(Identity::from_bits(1 << 31).is_none());
    }

    /// A program that closes the registry descriptor (and whose next file takes the number)
    /// gets "cannot tell", never a proof of death from probing the wrong file.
    #[test]
    fn a_closed_and_reused_registry_number_proves_nothing() {
        let me = Identity::current();
        let free = free_token(me).expect("some token is free");
        let mut child = crate::testing::fork(|| {
            use std::os::fd::AsRawFd;
            let reg = REGISTRY.load(Ordering::Acquire);
            crate::sys::close_raw(reg);
            // Open files until one takes the registry's number (lower free numbers go first).
            let mut held = Vec::new();
            while !held.last().is_some_and(|f: &std::fs::File| f.as_raw_fd() == reg) {
                if held.len() > 4096 {
                    return 2;
                }
                held.push(std::fs::File::open("/dev/null").unwrap());
            }
            if free.liveness() == Liveness::Unknown {
                0
            } else {
                1
            }
        });
        let exit = child.wait_timeout(std::time::Duration::from_secs(10));
        assert!(
            matches!(exit, Some(crate::testing::Exit::Code(0))),
            "a probe through a reused descriptor number judged a process dead: {exit:?}"
        );
    }

    #[test]
    fn fingerprints_differ_and_are_nonzero() {
        assert_ne!(fingerprint(1, 2), fingerprint(1, 3));
        assert_ne!(fingerprint(1, 2), fingerprint(2, 2));
        assert_ne!(fingerprint(0, 0), 0);
    }
}
