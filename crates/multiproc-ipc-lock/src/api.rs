//! The workspace's operation traits ([`multiproc_arena::api`]) for this crate's objects, so
//! code written against them works with a local object and with its manager proxy alike.

use crate::{
    Barrier, BoundedSemaphore, Condition, Error, ErrorKind, Event, Lock, RLock, Semaphore,
};
use multiproc_arena::api::{BarrierOps, ConditionOps, EventOps, LockOps, SemaphoreOps};
use std::sync::{LockResult, TryLockError, TryLockResult};
use std::time::Duration;

impl EventOps for Event {
    type Error = Error;
    fn set(&self) -> Result<(), Error> {
        Event::set(self);
        Ok(())
    }
    fn clear(&self) -> Result<(), Error> {
        Event::clear(self);
        Ok(())
    }
    fn is_set(&self) -> Result<bool, Error> {
        Ok(Event::is_set(self))
    }
    fn wait(&self) -> Result<(), Error> {
        Event::wait(self);
        Ok(())
    }
    fn wait_timeout(&self, timeout: Duration) -> Result<(), Error> {
        Event::wait_timeout(self, timeout)
    }
}

macro_rules! semaphore_ops {
    ($T:ty) => {
        impl SemaphoreOps for $T {
            type Error = Error;
            fn acquire(&self) -> Result<(), Error> {
                <$T>::acquire(self);
                Ok(())
            }
            fn try_acquire(&self) -> Result<(), Error> {
                <$T>::try_acquire(self)
            }
            fn acquire_timeout(&self, timeout: Duration) -> Result<(), Error> {
                <$T>::acquire_timeout(self, timeout)
            }
            fn release(&self) -> Result<(), Error> {
                <$T>::release(self).map(drop)
            }
            fn value(&self) -> Result<u32, Error> {
                Ok(<$T>::value(self))
            }
        }
    };
}
semaphore_ops!(Semaphore);
semaphore_ops!(BoundedSemaphore);

impl BarrierOps for Barrier {
    type Error = Error;
    fn wait(&self) -> Result<usize, Error> {
        Barrier::wait(self)
    }
    fn wait_timeout(&self, timeout: Duration) -> Result<usize, Error> {
        Barrier::wait_timeout(self, timeout)
    }
    fn abort(&self) -> Result<(), Error> {
        Barrier::abort(self);
        Ok(())
    }
    fn reset(&self) -> Result<(), Error> {
        Barrier::reset(self);
        Ok(())
    }
    fn parties(&self) -> Result<usize, Error> {
        Ok(Barrier::parties(self) as usize)
    }
    fn n_waiting(&self) -> Result<usize, Error> {
        Ok(Barrier::n_waiting(self) as usize)
    }
    fn is_broken(&self) -> Result<bool, Error> {
        Ok(Barrier::is_broken(self))
    }
}

/// A blocking acquisition: poisoned (taken over from a dead holder) is acquired.
fn acquired(r: LockResult<()>) -> Result<(), Error> {
    r.or(Ok(()))
}

/// A `try_` (`timeout`: `None`) or timed acquisition.
fn try_acquired(r: TryLockResult<()>, timeout: Option<Duration>) -> Result<(), Error> {
    match r {
        Ok(()) | Err(TryLockError::Poisoned(_)) => Ok(()),
        Err(TryLockError::WouldBlock) if timeout.is_some() => Err(ErrorKind::Timeout.into()),
        Err(TryLockError::WouldBlock) => Err(ErrorKind::WouldBlock.into()),
    }
}

macro_rules! lock_ops {
    ($T:ty) => {
        impl LockOps for $T {
            type Error = Error;
            fn acquire(&self) -> Result<(), Error> {
                acquired(<$T>::acquire(self))
            }
            fn try_acquire(&self) -> Result<(), Error> {
                try_acquired(<$T>::try_acquire(self), None)
            }
            fn acquire_timeout(&self, timeout: Duration) -> Result<(), Error> {
                try_acquired(<$T>::acquire_timeout(self, timeout), Some(timeout))
            }
            fn release(&self) -> Result<(), Error> {
                <$T>::release(self)
            }
        }
    };
}
lock_ops!(Lock);
lock_ops!(RLock);
lock_ops!(Condition<Lock>);
lock_ops!(Condition<RLock>);

macro_rules! condition_ops {
    ($T:ty) => {
        impl ConditionOps for $T {
            fn wait(&self) -> Result<(), Error> {
                <$T>::wait(self)
            }
            fn wait_timeout(&self, timeout: Duration) -> Result<(), Error> {
                <$T>::wait_timeout(self, timeout)
            }
            fn notify(&self) -> Result<(), Error> {
                <$T>::notify(self).map(drop)
            }
            fn notify_all(&self) -> Result<(), Error> {
                <$T>::notify_all(self).map(drop)
            }
        }
    };
}
condition_ops!(Condition<Lock>);
condition_ops!(Condition<RLock>);
