//! Sending: a message through a pipe's ring, inline or in its bulk ring (with the doorbell
//! handshake), or as a frame on the socket.

use super::{corrupt, deadline_after, Connection, Link, BELL_GRACE, PEER_CHECK};
use super::{BulkTx, SendState};
use crate::bell::{Bell, NoRoom, Tx, BULK, MARK, MSG};
use crate::error::{Error, ErrorKind, Result};
use crate::frame::{Header, FIRST_RECORD, HEADER_LEN, KEEP_CAPACITY};
use crate::lock;
use crate::sys;
use multiproc_arena::futex::Deadline;
use multiproc_arena::transfer;
use serde::Serialize;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{MutexGuard, TryLockError};
use std::time::{Duration, Instant};

impl Connection {
    /// Sends `value` (postcard; handles inside it travel with SCM_RIGHTS). Blocks only while
    /// the peer's receive buffer is full.
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.send_deadline(value, None, false)
    }

    /// [`send`](Self::send) that never waits for the peer to make room: when the pipe's rings
    /// or the socket cannot take the message now, an [`ErrorKind::WouldBlock`] error
    /// (`is_would_block()`) and nothing was sent. Another thread sending on this connection
    /// at the same time is also would-block.
    ///
    /// A message goes whole or not at all when it fits in one piece: a pipe's messages
    /// without handles up to 2 MiB (inline in its small ring up to 16 KiB, else in its bulk
    /// ring), or one socket record (up to 64 KiB). A larger one
    /// is refused only if its first record cannot be sent now; once that is out, the rest is
    /// sent as [`send`](Self::send) sends it (waiting while the peer's socket is full — the
    /// peer is receiving it), so a message is never abandoned half-way. On a stream
    /// connection (TCP) the same holds from its first byte.
    pub fn try_send<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.send_deadline(value, Some(Instant::now()), true)
    }

    /// [`send`](Self::send) that gives up after `timeout` if the peer does not make room:
    /// [`ErrorKind::Timeout`]. If nothing was sent yet, the connection is unchanged; if the
    /// peer stopped reading in the middle of a large message, the message is abandoned and
    /// the connection can no longer send.
    pub fn send_timeout<T: Serialize + ?Sized>(&self, value: &T, timeout: Duration) -> Result<()> {
        self.send_deadline(value, deadline_after(timeout), false)
    }

    fn send_deadline<T: Serialize + ?Sized>(
        &self,
        value: &T,
        deadline: Option<Instant>,
        try_: bool,
    ) -> Result<()> {
        self.check_write()?;
        let mut st = self.lock_send(try_)?;
        let st = &mut *st;
        st.buf.clear();
        st.buf.extend_from_slice(&[0; HEADER_LEN]);
        let fds = match transfer::encode_into(value, &mut st.buf) {
            Ok(fds) => fds,
            Err(e) => return Err(Error::codec(e)),
        };
        let len = st.buf.len() - HEADER_LEN;
        let header = self.header_for(len, fds.len())?;
        st.buf[..HEADER_LEN].copy_from_slice(&header);
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        let st = &mut *st;
        let res = self.send_message(
            &mut st.link,
            st.tx.as_mut(),
            st.bulk.as_mut(),
            &[&st.buf],
            &borrowed,
            deadline,
            try_,
        );
        if st.buf.capacity() > KEEP_CAPACITY {
            st.buf = Vec::new();
        }
        res
    }

    /// Sends `bytes` as one message (Python's `send_bytes(buf)`).
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.send_bytes_deadline(bytes, None, false)
    }

    /// [`send_bytes`](Self::send_bytes) with a timeout, as [`send_timeout`](Self::send_timeout).
    pub fn send_bytes_timeout(&self, bytes: &[u8], timeout: Duration) -> Result<()> {
        self.send_bytes_deadline(bytes, deadline_after(timeout), false)
    }

    /// [`send_bytes`](Self::send_bytes) that never waits for room, as
    /// [`try_send`](Self::try_send): [`ErrorKind::WouldBlock`] and nothing sent when the
    /// message cannot start now.
    pub fn try_send_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.send_bytes_deadline(bytes, Some(Instant::now()), true)
    }

    fn send_bytes_deadline(
        &self,
        bytes: &[u8],
        deadline: Option<Instant>,
        try_: bool,
    ) -> Result<()> {
        self.check_write()?;
        let header = self.header_for(bytes.len(), 0)?;
        let mut st = self.lock_send(try_)?;
        let st = &mut *st;
        let frame: [&[u8]; 2] = [&header, bytes];
        self.send_message(
            &mut st.link,
            st.tx.as_mut(),
            st.bulk.as_mut(),
            &frame,
            &[],
            deadline,
            try_,
        )
    }

    /// The sending state; for a `try_` call only if no other thread is sending.
    fn lock_send(&self, try_: bool) -> Result<MutexGuard<'_, SendState>> {
        if !try_ {
            return Ok(lock(&self.send));
        }
        match self.send.try_lock() {
            Ok(g) => Ok(g),
            Err(TryLockError::Poisoned(e)) => Ok(e.into_inner()),
            Err(TryLockError::WouldBlock) => Err(Error::new(
                ErrorKind::WouldBlock,
                "another thread is sending on this connection",
            )),
        }
    }

    /// Sends one message given as its whole frame (`frame`: the header first, in up to two
    /// pieces): inline through the ring when this is a ring pipe and it fits, else through
    /// the bulk ring when it fits there (without descriptors), else as a frame on the socket
    /// (with a mark in the ring, so the order holds). With `try_`, waits for nothing before
    /// the message has started (see [`try_send`](Self::try_send)).
    #[allow(clippy::too_many_arguments)]
    fn send_message(
        &self,
        link: &mut Link,
        tx: Option<&mut Tx>,
        bulk: Option<&mut BulkTx>,
        frame: &[&[u8]],
        fds: &[BorrowedFd<'_>],
        deadline: Option<Instant>,
        try_: bool,
    ) -> Result<()> {
        let Some(tx) = tx else {
            return self.write_frame(link, frame, fds, deadline, None, try_);
        };
        let total: usize = frame.iter().map(|b| b.len()).sum();
        let body = total - HEADER_LEN;
        if fds.is_empty() && body > tx.max_inline() {
            if let Some(b) = bulk.filter(|b| body <= b.tx.max_inline()) {
                if b.usable() {
                    return self.bulk_send(
                        tx,
                        &mut b.tx,
                        link,
                        &payload_parts(frame),
                        deadline,
                        try_,
                    );
                }
            }
        } else if fds.is_empty() {
            return self.ring_send(tx, link, &payload_parts(frame), deadline, try_);
        }
        link.check()?;
        self.wait_room(tx, link, 0, deadline, try_)?;
        self.write_frame(link, frame, fds, deadline, Some(tx), try_)
    }

    /// Publishes a message in the ring (waiting for room), then rings the doorbell if the
    /// receiver is not watching the ring.
    fn ring_send(
        &self,
        tx: &mut Tx,
        link: &mut Link,
        parts: &[&[u8]],
        deadline: Option<Instant>,
        try_: bool,
    ) -> Result<()> {
        link.check()?;
        let at = self.push_waiting(tx, link, parts, deadline, try_)?;
        self.bell(tx, link, at)
    }

    /// Publishes `parts` as one [`MSG`] record in `tx`'s ring, waiting for room: where it
    /// went.
    #[inline]
    fn push_waiting(
        &self,
        tx: &mut Tx,
        link: &mut Link,
        parts: &[&[u8]],
        deadline: Option<Instant>,
        try_: bool,
    ) -> Result<u64> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        loop {
            match tx.try_push(MSG, parts) {
                Ok(Some(at)) => return Ok(at),
                Ok(None) => self.wait_room(tx, link, len, deadline, try_)?,
                Err(_) => {
                    link.broken = true;
                    return Err(corrupt());
                }
            }
        }
    }

    /// Publishes a message in the bulk ring, then a [`BULK`] record in the ring that names
    /// it (its position in the bulk ring), then rings as [`ring_send`](Self::ring_send) does.
    /// Room for the [`BULK`] record is made first, so once the message is in the bulk ring
    /// nothing can stop its record (a sender killed between the two leaves a bulk record that
    /// no [`BULK`] record names: the receiver drops it when it takes the next one).
    fn bulk_send(
        &self,
        tx: &mut Tx,
        bulk: &mut Tx,
        link: &mut Link,
        parts: &[&[u8]],
        deadline: Option<Instant>,
        try_: bool,
    ) -> Result<()> {
        link.check()?;
        self.wait_room(tx, link, 8, deadline, try_)?;
        let pos = self.push_waiting(bulk, link, parts, deadline, try_)?;
        match tx.try_push(BULK, &[&pos.to_le_bytes()]) {
            Ok(Some(at)) => self.bell(tx, link, at),
            _ => {
                link.broken = true;
                Err(corrupt())
            }
        }
    }

    /// The sender's half of the wake-up handshake, after publishing a record at `at`.
    fn bell(&self, tx: &Tx, link: &mut Link, at: u64) -> Result<()> {
        let bell = tx.after_publish(at);
        let mut ring = matches!(bell, Bell::Ring | Bell::Armed);
        if bell == Bell::Armed && tx.peer_spin_us() > 0 {
            // The receiver spins when it receives: it may be on its way back into a receive
            // (a ping-pong peer sending its answer). Give it a moment; once it watches, it
            // takes this record itself.
            let spin = Duration::from_micros(tx.peer_spin_us().into());
            let until = Instant::now() + BELL_GRACE.min(spin);
            let mut i = 0u32;
            while ring {
                std::hint::spin_loop();
                ring = !tx.watching();
                i += 1;
                if i % 32 == 0 && Instant::now() >= until {
                    break;
                }
            }
        }
        if ring {
            tx.ringing();
            return match sys::sendmsg(self.fd.as_fd(), &[&[0u8]], &[], true) {
                Ok(_) => Ok(()),
                // A full socket is readable already (and keeps a doorbell: receivers take
                // them out only when the ring is empty).
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tx.not_rung();
                    Ok(())
                }
                Err(e) => {
                    tx.not_rung();
                    link.gone = true;
                    if tx.taken(at) {
                        // The peer took the message, then went (a fast peer answers and exits
                        // before its doorbell goes): delivered. The next send reports the end.
                        return Ok(());
                    }
                    Err(Error::io(e, "sending"))
                }
            };
        }
        // No system call on this path: now and then, ask whether the peer is gone.
        let now = Instant::now();
        if link.checked.map_or(true, |t| now.saturating_duration_since(t) >= PEER_CHECK) {
            link.checked = Some(now);
            if sys::hung_up(self.fd.as_fd()) {
                link.gone = true;
                if !tx.taken(at) {
                    return Err(Error::new(
                        ErrorKind::Disconnected,
                        "the peer closed the connection",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Waits until the ring has room for a record of `len` payload bytes: a short spin, then
    /// sleeps on the ring's futex in slices, asking between them whether the peer is gone.
    /// With `try_`, only looks: no room is [`ErrorKind::WouldBlock`].
    fn wait_room(
        &self,
        tx: &Tx,
        link: &mut Link,
        len: usize,
        deadline: Option<Instant>,
        try_: bool,
    ) -> Result<()> {
        if try_ {
            return match tx.has_room(len) {
                Ok(true) => Ok(()),
                Ok(false) => {
                    if sys::hung_up(self.fd.as_fd()) {
                        link.gone = true;
                        return Err(Error::new(
                            ErrorKind::Disconnected,
                            "the peer closed the connection",
                        ));
                    }
                    Err(Error::new(ErrorKind::WouldBlock, "the pipe's ring is full"))
                }
                Err(_) => {
                    link.broken = true;
                    Err(corrupt())
                }
            };
        }
        let spin_until = Instant::now() + PEER_CHECK;
        let mut i = 0u32;
        loop {
            match tx.has_room(len) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(_) => {
                    link.broken = true;
                    return Err(corrupt());
                }
            }
            i += 1;
            if i % 32 == 0 && Instant::now() >= spin_until {
                break;
            }
            std::hint::spin_loop();
        }
        let mut dl =
            Deadline::from_option(deadline.map(|d| d.saturating_duration_since(Instant::now())));
        match tx.wait_room(len, &mut dl, || sys::hung_up(self.fd.as_fd())) {
            Ok(()) => Ok(()),
            Err(NoRoom::Corrupt) => {
                link.broken = true;
                Err(corrupt())
            }
            Err(NoRoom::TimedOut) => Err(Error::kind_only(ErrorKind::Timeout)),
            Err(NoRoom::Gone) => {
                link.gone = true;
                Err(Error::new(ErrorKind::Disconnected, "the peer closed the connection"))
            }
        }
    }

    /// Sends `bytes[offset..offset + size]` (`size` `None`: to the end), checking the range as
    /// Python's `send_bytes(buf, offset, size)` does: out of range is
    /// [`ErrorKind::InvalidInput`].
    pub fn send_bytes_range(&self, bytes: &[u8], offset: usize, size: Option<usize>) -> Result<()> {
        if offset > bytes.len() {
            return Err(Error::new(ErrorKind::InvalidInput, "offset beyond the buffer"));
        }
        let size = size.unwrap_or(bytes.len() - offset);
        if size > bytes.len() - offset {
            return Err(Error::new(ErrorKind::InvalidInput, "offset + size beyond the buffer"));
        }
        self.send_bytes(&bytes[offset..offset + size])
    }

    fn header_for(&self, len: usize, nfds: usize) -> Result<[u8; HEADER_LEN]> {
        let limit = self.max_message_size();
        if len > limit {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!("message of {len} bytes exceeds the limit of {limit}"),
            ));
        }
        if nfds > 0 && self.tcp {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "handles (descriptors) cannot be sent over a TCP connection",
            ));
        }
        Ok(Header { len: len as u64, fds: nfds as u8 }.encode())
    }

    /// Writes a whole frame: `bufs` concatenated, `fds` attached to its first byte. With
    /// `mark`, publishes a mark record in that ring once the first record is sent (the
    /// caller made room for it). With `try_`, a first record the socket cannot take now is
    /// [`ErrorKind::WouldBlock`] (nothing sent); once it is out, the rest is sent blocking.
    fn write_frame(
        &self,
        link: &mut Link,
        bufs: &[&[u8]],
        fds: &[BorrowedFd<'_>],
        mut deadline: Option<Instant>,
        mut mark: Option<&mut Tx>,
        try_: bool,
    ) -> Result<()> {
        link.check()?;
        let broken = &mut link.broken;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut sent = 0;
        let mut fds = fds;
        while sent < total {
            // A record socket takes the frame in records; a stream takes what it can (all of
            // it unless a signal interrupts a large blocking send).
            let end = match self.record {
                Some(_) if sent == 0 => total.min(FIRST_RECORD),
                Some(r) => total.min(sent + r),
                None => total,
            };
            let mut rest: [&[u8]; 2] = [&[], &[]];
            let mut k = 0;
            let mut pos = 0;
            for b in bufs {
                let (lo, hi) = (sent.max(pos), end.min(pos + b.len()));
                if lo < hi {
                    rest[k] = &b[lo - pos..hi - pos];
                    k += 1;
                }
                pos += b.len();
            }
            match sys::sendmsg(self.fd.as_fd(), &rest[..k], fds, deadline.is_some()) {
                Ok(n) => {
                    if try_ {
                        // Started: the rest goes as `send` sends it.
                        deadline = None;
                    }
                    if sent == 0 {
                        if let Some(tx) = mark.as_deref_mut() {
                            if !matches!(tx.try_push(MARK, &[]), Ok(Some(_))) {
                                *broken = true;
                                return Err(corrupt());
                            }
                        }
                    }
                    sent += n;
                    fds = &[];
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && try_ && sent == 0 => {
                    return Err(Error::new(
                        ErrorKind::WouldBlock,
                        "the socket cannot take the message now",
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && deadline.is_some() => {
                    if let Err(e) = self.wait_writable(deadline) {
                        if sent > 0 {
                            *broken = true;
                            return Err(Error::new(
                                ErrorKind::Timeout,
                                "the peer stopped reading in the middle of the message; it was \
                                 abandoned and the connection is unusable for sending",
                            ));
                        }
                        return Err(e);
                    }
                }
                Err(e) => {
                    if sent > 0 {
                        *broken = true;
                    }
                    return Err(Error::io(e, "sending"));
                }
            }
        }
        Ok(())
    }
}

/// A message's payload: its frame (the header first, in up to two pieces) without the header.
fn payload_parts<'a>(frame: &[&'a [u8]]) -> [&'a [u8]; 2] {
    let mut parts: [&[u8]; 2] = [&[], &[]];
    let mut skip = HEADER_LEN;
    for (slot, b) in parts.iter_mut().zip(frame) {
        let cut = skip.min(b.len());
        *slot = &b[cut..];
        skip -= cut;
    }
    parts
}
