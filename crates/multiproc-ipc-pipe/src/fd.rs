//! [`Fd`]: a bare descriptor that travels inside messages (Python's `send_handle` /
//! `recv_handle`).

use multiproc_arena::transfer;
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, OwnedFd};

/// An owned descriptor — a file, a socket, a pidfd — that can be put in a message: sending
/// it passes a duplicate to the receiver with SCM_RIGHTS (or to a spawned child as an
/// inherited descriptor). Python's `send_handle`/`recv_handle`.
///
/// ```
/// use multiproc_ipc_pipe::{Fd, Pipe};
/// use std::io::{Read, Seek, Write};
/// let (a, b) = Pipe::new().unwrap();
/// let file = std::fs::File::from(std::os::fd::OwnedFd::from(tempfile()));
/// a.send(&Fd::from(file)).unwrap();
/// let mut got = std::fs::File::from(b.recv::<Fd>().unwrap().into_inner());
/// got.write_all(b"foo").unwrap();
/// # fn tempfile() -> std::fs::File {
/// #     let p = std::env::temp_dir().join(format!("mp-fd-doc-{}", std::process::id()));
/// #     let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&p).unwrap();
/// #     std::fs::remove_file(&p).unwrap();
/// #     f
/// # }
/// ```
#[derive(Debug)]
pub struct Fd(OwnedFd);

impl Fd {
    /// The descriptor.
    pub fn into_inner(self) -> OwnedFd {
        self.0
    }
}

impl<T: Into<OwnedFd>> From<T> for Fd {
    fn from(fd: T) -> Fd {
        Fd(fd.into())
    }
}

crate::impl_as_fd!(Fd, 0);

impl crate::Waitable for Fd {}

impl Serialize for Fd {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        transfer::push_fd(self.0.as_fd()).map_err(S::Error::custom)?.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Fd {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let idx = u32::deserialize(d)?;
        transfer::take_fd(idx).map(Fd).map_err(D::Error::custom)
    }
}
