//! Every raw system call of the harness: the floors (fork, posix_spawn, socketpair, futex,
//! shared mappings, POSIX shm) and the process plumbing of the cases.
//!
//! The floors are the cheapest way the kernel offers to do what a case does, so they call libc
//! directly with nothing around it. Nothing outside this module calls libc functions
//! (`clippy.toml`, `cargo xtask tidy`).
#![allow(clippy::disallowed_methods)]

use multiproc_arena::os::cvt;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// Makes the raw call `call` (negative with `errno` on failure, as [`cvt`] reads it) again
/// while it fails with `EINTR`.
fn retry_eintr<T: Copy + Default + PartialOrd>(mut call: impl FnMut() -> T) -> io::Result<T> {
    loop {
        match cvt(call()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

/// `fork()`: `Ok(0)` in the child, `Ok(pid)` in the parent.
///
/// # Safety
/// The calling process must be single-threaded (every case process is), or the child must only
/// do async-signal-safe work before it exits.
pub(crate) unsafe fn fork() -> io::Result<u32> {
    // SAFETY: the caller upholds the single-threadedness contract above.
    let pid = cvt(unsafe { libc::fork() })?;
    Ok(pid as u32)
}

/// `_exit(code)`: ends the process at once, without destructors or atexit handlers (a forked
/// child must not flush or drop what it inherited from the parent).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

/// `waitpid(pid, 0)`, retried on EINTR; returns the raw wait status.
pub(crate) fn wait(pid: u32) -> io::Result<i32> {
    let mut status = 0;
    // SAFETY: `status` is a valid, writable int; `pid` is a child of ours.
    retry_eintr(|| unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) })?;
    Ok(status)
}

/// Describes a wait status: `Ok(())` for exit code 0, otherwise what happened.
pub(crate) fn check_status(status: i32) -> Result<(), String> {
    if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            0 => Ok(()),
            c => Err(format!("exit code {c}")),
        }
    } else if libc::WIFSIGNALED(status) {
        Err(format!("killed by signal {}", libc::WTERMSIG(status)))
    } else {
        Err(format!("wait status {status:#x}"))
    }
}

/// `kill(pid, sig)`; a negative `pid` names a process group.
pub(crate) fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill has no memory preconditions.
    cvt(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// A prepared `posix_spawn` of one program with fixed arguments and this process's
/// environment, so the timed loop only spawns.
#[derive(Debug)]
pub(crate) struct Spawner {
    path: CString,
    _args: Vec<CString>,
    _env: Vec<CString>,
    argv: Vec<*mut libc::c_char>,
    envp: Vec<*mut libc::c_char>,
}

impl Spawner {
    /// Prepares `path` with `args` (`argv[0]` included).
    pub(crate) fn new(path: &str, args: &[&str]) -> io::Result<Spawner> {
        use std::os::unix::ffi::OsStrExt;
        let bad = |_| io::Error::from(io::ErrorKind::InvalidInput);
        let path = CString::new(path).map_err(bad)?;
        let args: Vec<CString> =
            args.iter().map(|a| CString::new(*a)).collect::<Result<_, _>>().map_err(bad)?;
        let env: Vec<CString> = std::env::vars_os()
            .filter_map(|(k, v)| CString::new([k.as_bytes(), b"=", v.as_bytes()].concat()).ok())
            .collect();
        let mut argv: Vec<_> = args.iter().map(|a| a.as_ptr() as *mut libc::c_char).collect();
        argv.push(std::ptr::null_mut());
        let mut envp: Vec<_> = env.iter().map(|a| a.as_ptr() as *mut libc::c_char).collect();
        envp.push(std::ptr::null_mut());
        Ok(Spawner { path, _args: args, _env: env, argv, envp })
    }

    /// `posix_spawn` (glibc: clone(CLONE_VM|CLONE_VFORK) + execve); returns the child's pid.
    pub(crate) fn spawn(&self) -> io::Result<u32> {
        let mut pid: libc::pid_t = 0;
        // SAFETY: `path`, `argv`, `envp` are NUL-terminated strings / NULL-terminated arrays
        // owned by `self` (the strings in `_args`/`_env`), alive for the call; null file
        // actions and attributes mean the defaults.
        let r = unsafe {
            libc::posix_spawn(
                &mut pid,
                self.path.as_ptr(),
                std::ptr::null(),
                std::ptr::null(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
            )
        };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(pid as u32)
    }
}

/// A connected pair of Unix stream sockets (close-on-exec).
pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors the kernel writes.
    cvt(unsafe {
        libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr())
    })?;
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `write` until all of `buf` is written.
pub(crate) fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is a valid readable buffer of `buf.len()` bytes.
        let n =
            retry_eintr(|| unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) })?;
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// `read` until `buf` is full; `Ok(false)` if the stream ended before the first byte.
pub(crate) fn read_exact(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        let rest = &mut buf[got..];
        // SAFETY: `rest` is a valid writable buffer of `rest.len()` bytes.
        let n = retry_eintr(|| unsafe {
            libc::read(fd.as_raw_fd(), rest.as_mut_ptr().cast(), rest.len())
        })?;
        if n == 0 {
            if got == 0 {
                return Ok(false);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        got += n as usize;
    }
    Ok(true)
}

/// `FUTEX_WAIT` on a shared (not private) word, no timeout: sleeps while `*word == expected`.
/// Returns at once if the word differs; spurious returns are possible (callers loop).
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: `word` is a valid, aligned u32 for the call (borrowed); a null timeout waits
    // without a deadline.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            std::ptr::null::<libc::timespec>(),
        )
    };
}

/// `FUTEX_WAKE` of up to `n` waiters on a shared word.
pub(crate) fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE only uses the address.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n) };
}

/// An anonymous `MAP_SHARED` mapping, zero-filled, inherited by forked children (it is the
/// same memory in both); unmapped on drop.
#[derive(Debug)]
pub(crate) struct SharedMap {
    ptr: *mut u8,
    len: usize,
}

impl SharedMap {
    /// Maps `len` bytes.
    pub(crate) fn new(len: usize) -> io::Result<SharedMap> {
        SharedMap::map(len, None)
    }

    /// Maps the first `len` bytes of the file `fd` (shared and writable).
    pub(crate) fn of_file(fd: BorrowedFd<'_>, len: usize) -> io::Result<SharedMap> {
        SharedMap::map(len, Some(fd))
    }

    /// `mmap(PROT_READ|PROT_WRITE, MAP_SHARED)` of `len` bytes: of `fd` from offset 0, or
    /// anonymous.
    fn map(len: usize, fd: Option<BorrowedFd<'_>>) -> io::Result<SharedMap> {
        let (flags, raw) = match fd {
            Some(fd) => (libc::MAP_SHARED, fd.as_raw_fd()),
            None => (libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1),
        };
        // SAFETY: a fresh mapping chosen by the kernel (no address hint), of a descriptor
        // borrowed for the call or of no file; no existing memory is affected.
        let p = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags, raw, 0)
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(SharedMap { ptr: p.cast(), len })
    }

    /// The first byte (page aligned).
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// The atomic u32 at byte offset `off` (4-aligned, in bounds).
    pub(crate) fn u32_at(&self, off: usize) -> &AtomicU32 {
        assert!(off % 4 == 0 && off + 4 <= self.len);
        // SAFETY: in bounds and aligned (checked); the mapping lives as long as `self`; the
        // word is only ever accessed atomically, by every process sharing it.
        unsafe { &*self.ptr.add(off).cast::<AtomicU32>() }
    }

    /// The atomic u64 at byte offset `off` (8-aligned, in bounds).
    pub(crate) fn u64_at(&self, off: usize) -> &std::sync::atomic::AtomicU64 {
        assert!(off % 8 == 0 && off + 8 <= self.len);
        // SAFETY: as in `u32_at`.
        unsafe { &*self.ptr.add(off).cast::<std::sync::atomic::AtomicU64>() }
    }
}

/// A fresh memfd of `len` bytes mapped shared and writable; unmapped and closed on drop. Its
/// pages are allocated on first touch.
#[derive(Debug)]
pub(crate) struct MemfdMap {
    map: SharedMap,
    _fd: OwnedFd,
}

impl MemfdMap {
    pub(crate) fn new(len: usize) -> io::Result<MemfdMap> {
        let fd = multiproc_arena::os::memfd("mpbench-floor")?;
        truncate(fd.as_fd(), len)?;
        Ok(MemfdMap { map: SharedMap::of_file(fd.as_fd(), len)?, _fd: fd })
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.map.as_ptr()
    }
}

/// A robust process-shared mutex at the start of a shared mapping (the counter lives at 256).
#[derive(Debug)]
pub(crate) struct RobustMutex {
    map: SharedMap,
}

impl RobustMutex {
    pub(crate) fn new() -> RobustMutex {
        let map = SharedMap::new(4096).expect("mmap");
        let m = map.as_ptr().cast::<libc::pthread_mutex_t>();
        // SAFETY: `m` points at zeroed shared memory large and aligned enough for a
        // pthread_mutex_t; the attribute object lives on this stack frame until destroyed.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            assert_eq!(libc::pthread_mutexattr_init(&mut attr), 0);
            assert_eq!(
                libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
                0
            );
            assert_eq!(libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST), 0);
            assert_eq!(libc::pthread_mutex_init(m, &attr), 0);
            libc::pthread_mutexattr_destroy(&mut attr);
        }
        RobustMutex { map }
    }

    /// The shared mapping holding the mutex (bytes from 256 on are free for the caller).
    pub(crate) fn map(&self) -> &SharedMap {
        &self.map
    }

    fn raw(&self) -> *mut libc::pthread_mutex_t {
        self.map.as_ptr().cast()
    }

    /// Locks; a holder that died is recovered from (`EOWNERDEAD` → consistent), as a robust
    /// lock's user must.
    pub(crate) fn lock(&self) {
        // SAFETY: initialised in `new`, shared by fork.
        match unsafe { libc::pthread_mutex_lock(self.raw()) } {
            0 => {}
            libc::EOWNERDEAD => {
                // SAFETY: we hold the mutex after EOWNERDEAD.
                assert_eq!(unsafe { libc::pthread_mutex_consistent(self.raw()) }, 0);
            }
            e => panic!("pthread_mutex_lock: {e}"),
        }
    }

    pub(crate) fn unlock(&self) {
        // SAFETY: locked by this thread.
        assert_eq!(unsafe { libc::pthread_mutex_unlock(self.raw()) }, 0);
    }
}

/// `ftruncate(fd, len)`.
fn truncate(fd: BorrowedFd<'_>, len: usize) -> io::Result<()> {
    // SAFETY: ftruncate takes a descriptor (borrowed for the call) and a length.
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) }).map(drop)
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping we own; no reference into it outlives `self`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// The floor of a named segment's life: `shm_open(O_CREAT|O_EXCL)`, `ftruncate`, `mmap`, write
/// a word; a second `shm_open` + `fstat` + `mmap` reads it back; both unmapped and closed, and
/// the name unlinked. `name` starts with `/`.
pub(crate) fn shm_lifecycle(name: &CStr, len: usize, word: u64) -> io::Result<()> {
    let open = |flags: libc::c_int| -> io::Result<OwnedFd> {
        // SAFETY: `name` is a valid NUL-terminated string; mode applies only with O_CREAT.
        let fd = cvt(unsafe { libc::shm_open(name.as_ptr(), flags | libc::O_CLOEXEC, 0o600) })?;
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    let a = open(libc::O_CREAT | libc::O_EXCL | libc::O_RDWR)?;
    truncate(a.as_fd(), len)?;
    let pa = SharedMap::of_file(a.as_fd(), len)?;
    pa.u64_at(0).store(word, Ordering::Relaxed);
    let b = open(libc::O_RDWR)?;
    // SAFETY: an all-zero stat is a valid value; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable stat; `b` is open.
    cvt(unsafe { libc::fstat(b.as_raw_fd(), &mut st) })?;
    let pb = SharedMap::of_file(b.as_fd(), st.st_size as usize)?;
    let seen = pb.u64_at(0).load(Ordering::Relaxed);
    drop(pb);
    drop(pa);
    drop(b);
    drop(a);
    // SAFETY: `name` is a valid NUL-terminated string.
    cvt(unsafe { libc::shm_unlink(name.as_ptr()) })?;
    if seen != word {
        return Err(io::Error::other("the opener did not see the creator's word"));
    }
    Ok(())
}
