//! The workspace's operation traits ([`multiproc_arena::api`]) for the synchronisation
//! proxies: the same calls as the local objects of `multiproc-ipc-lock`, with the manager's
//! transport failures as errors of the same [`Error`] type.

use crate::error::{Error, ErrorKind, LockError, LockResult};
use crate::sync::{
    BarrierProxy, ConditionProxy, EventProxy, LockProxy, RLockProxy, SemaphoreProxy,
};
use multiproc_arena::api::{BarrierOps, ConditionOps, EventOps, LockOps, SemaphoreOps};
use std::time::Duration;

impl EventOps for EventProxy {
    type Error = Error;
    fn set(&self) -> Result<(), Error> {
        EventProxy::set(self)
    }
    fn clear(&self) -> Result<(), Error> {
        EventProxy::clear(self)
    }
    fn is_set(&self) -> Result<bool, Error> {
        EventProxy::is_set(self)
    }
    fn wait(&self) -> Result<(), Error> {
        EventProxy::wait(self)
    }
    fn wait_timeout(&self, timeout: Duration) -> Result<(), Error> {
        EventProxy::wait_timeout(self, timeout)
    }
}

impl SemaphoreOps for SemaphoreProxy {
    type Error = Error;
    fn acquire(&self) -> Result<(), Error> {
        SemaphoreProxy::acquire(self)
    }
    fn try_acquire(&self) -> Result<(), Error> {
        SemaphoreProxy::try_acquire(self)
    }
    fn acquire_timeout(&self, timeout: Duration) -> Result<(), Error> {
        SemaphoreProxy::acquire_timeout(self, timeout)
    }
    fn release(&self) -> Result<(), Error> {
        SemaphoreProxy::release(self)
    }
    fn value(&self) -> Result<u32, Error> {
        SemaphoreProxy::value(self)
    }
}

impl BarrierOps for BarrierProxy {
    type Error = Error;
    fn wait(&self) -> Result<usize, Error> {
        BarrierProxy::wait(self)
    }
    fn wait_timeout(&self, timeout: Duration) -> Result<usize, Error> {
        BarrierProxy::wait_timeout(self, timeout)
    }
    fn abort(&self) -> Result<(), Error> {
        BarrierProxy::abort(self)
    }
    fn reset(&self) -> Result<(), Error> {
        BarrierProxy::reset(self)
    }
    fn parties(&self) -> Result<usize, Error> {
        BarrierProxy::parties(self)
    }
    fn n_waiting(&self) -> Result<usize, Error> {
        BarrierProxy::n_waiting(self)
    }
    fn is_broken(&self) -> Result<bool, Error> {
        BarrierProxy::is_broken(self)
    }
}

/// An acquisition without a guard: poisoned (taken over from a dead holder) is acquired;
/// not acquired is `kind` (`WouldBlock` or `Timeout`).
fn acquired(r: LockResult<()>, kind: ErrorKind) -> Result<(), Error> {
    match r {
        Ok(()) | Err(LockError::Poisoned(_)) => Ok(()),
        Err(LockError::WouldBlock) => Err(kind.into()),
        Err(LockError::Failed(e)) => Err(e),
    }
}

macro_rules! lock_ops {
    ($T:ty) => {
        impl LockOps for $T {
            type Error = Error;
            fn acquire(&self) -> Result<(), Error> {
                acquired(<$T>::acquire(self), ErrorKind::WouldBlock)
            }
            fn try_acquire(&self) -> Result<(), Error> {
                acquired(<$T>::try_acquire(self), ErrorKind::WouldBlock)
            }
            fn acquire_timeout(&self, timeout: Duration) -> Result<(), Error> {
                acquired(<$T>::acquire_timeout(self, timeout), ErrorKind::Timeout)
            }
            fn release(&self) -> Result<(), Error> {
                <$T>::release(self)
            }
        }
    };
}
lock_ops!(LockProxy);
lock_ops!(RLockProxy);
lock_ops!(ConditionProxy);

impl ConditionOps for ConditionProxy {
    fn wait(&self) -> Result<(), Error> {
        ConditionProxy::wait(self)
    }
    fn wait_timeout(&self, timeout: Duration) -> Result<(), Error> {
        ConditionProxy::wait_timeout(self, timeout)
    }
    fn notify(&self) -> Result<(), Error> {
        ConditionProxy::notify(self)
    }
    fn notify_all(&self) -> Result<(), Error> {
        ConditionProxy::notify_all(self)
    }
}
