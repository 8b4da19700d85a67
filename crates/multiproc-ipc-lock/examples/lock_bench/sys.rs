//! glibc's process-shared robust mutex, for comparison.
#![allow(clippy::disallowed_methods)]

use multiproc_arena::ShmSafe;
use std::cell::UnsafeCell;

/// A `pthread_mutex_t` with `PTHREAD_PROCESS_SHARED` and `PTHREAD_MUTEX_ROBUST`.
pub(crate) struct RobustMutex(UnsafeCell<libc::pthread_mutex_t>);

// SAFETY: a pthread mutex initialised process-shared is meant to live in shared memory and be
// used from several threads and processes; it holds no pointers once initialised.
unsafe impl Sync for RobustMutex {}
// SAFETY: as above.
unsafe impl Send for RobustMutex {}
// SAFETY: as above (no Drop: pthread_mutex_destroy is a no-op for glibc's mutexes).
unsafe impl ShmSafe for RobustMutex {}

impl RobustMutex {
    /// Initialises the mutex in place (it must not move afterwards).
    pub(crate) fn init(&self) {
        // SAFETY: the attribute and the mutex are valid, exclusively ours during init.
        unsafe {
            let mut a: libc::pthread_mutexattr_t = std::mem::zeroed();
            assert_eq!(libc::pthread_mutexattr_init(&mut a), 0);
            assert_eq!(libc::pthread_mutexattr_setpshared(&mut a, libc::PTHREAD_PROCESS_SHARED), 0);
            assert_eq!(libc::pthread_mutexattr_setrobust(&mut a, libc::PTHREAD_MUTEX_ROBUST), 0);
            assert_eq!(libc::pthread_mutex_init(self.0.get(), &a), 0);
            libc::pthread_mutexattr_destroy(&mut a);
        }
    }

    pub(crate) fn new() -> Self {
        // SAFETY: an all-zero pthread_mutex_t is a valid value to initialise later.
        RobustMutex(UnsafeCell::new(unsafe { std::mem::zeroed() }))
    }

    #[inline]
    pub(crate) fn lock(&self) {
        // SAFETY: initialised by `init`, shared memory that outlives the call.
        let r = unsafe { libc::pthread_mutex_lock(self.0.get()) };
        if r == libc::EOWNERDEAD {
            // SAFETY: as above; we hold it now.
            unsafe { libc::pthread_mutex_consistent(self.0.get()) };
        }
    }

    #[inline]
    pub(crate) fn unlock(&self) {
        // SAFETY: initialised, held by this thread.
        unsafe { libc::pthread_mutex_unlock(self.0.get()) };
    }
}
