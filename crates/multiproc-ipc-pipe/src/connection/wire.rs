//! A [`Connection`] inside a message: its descriptor, direction, limit and a pipe end's
//! shared memory.

use super::{Connection, Shm};
use multiproc_arena::spsc::RingMem;
use multiproc_arena::transfer;
use serde::{Deserialize, Serialize};
use std::os::fd::AsFd;

/// What a connection looks like inside a message: its descriptor's index in the transfer
/// table, its direction and transport, its limit, and a pipe end's shared memory
/// (its small and bulk rings, and which end this is).
#[derive(Serialize)]
struct WireOut<'a> {
    fd: u32,
    flags: u8,
    limit: u64,
    shm: Option<(&'a [RingMem; 2], &'a [RingMem; 2], u8)>,
}

#[derive(Deserialize)]
struct WireIn {
    fd: u32,
    flags: u8,
    limit: u64,
    shm: Option<([RingMem; 2], [RingMem; 2], u8)>,
}

const F_READ: u8 = 1;
const F_WRITE: u8 = 2;
const F_TCP: u8 = 4;

impl Serialize for Connection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        // (A receive in progress in another thread holds the lock: as before, that does not
        // stop the send; the receiving thread keeps what it takes.)
        if self.recv.try_lock().is_ok_and(|g| g.st.in_progress() || g.st.marks_owed > 0) {
            return Err(S::Error::custom(
                "a connection in the middle of receiving a message cannot be sent",
            ));
        }
        let fd = transfer::push_fd(self.fd.as_fd()).map_err(S::Error::custom)?;
        let flags = (self.readable as u8 * F_READ)
            | (self.writable as u8 * F_WRITE)
            | (self.tcp as u8 * F_TCP);
        let shm = self.shm.as_ref().map(|m| (&m.mems, &m.bulk, m.end));
        WireOut { fd, flags, limit: self.max_message_size() as u64, shm }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let w = WireIn::deserialize(d)?;
        let fd = transfer::take_fd(w.fd).map_err(D::Error::custom)?;
        let (readable, writable) = (w.flags & F_READ != 0, w.flags & F_WRITE != 0);
        let mut c = Connection::from_parts(fd, readable, writable, w.flags & F_TCP != 0);
        if let Some((mems, bulk, end)) = w.shm {
            if end > 1 {
                return Err(D::Error::custom("a pipe end's shared memory names no end"));
            }
            c.attach(Shm { mems, bulk, end }).map_err(D::Error::custom)?;
        }
        c.set_max_message_size(w.limit.min(usize::MAX as u64) as usize);
        Ok(c)
    }
}
