//! Receiving from the socket, and `poll`.

use super::{deadline_after, Connection, RecvSide};
use crate::error::{Error, ErrorKind, Result};
use crate::frame::{Progress, RecvState, Source, FIRST_PAYLOAD};
use crate::lock;
use crate::sys;
use multiproc_arena::transfer;
use serde::de::DeserializeOwned;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::{MutexGuard, TryLockError};
use std::time::{Duration, Instant};

/// A `try_` call's "not now": the deadline of `Instant::now()` that it receives with has
/// passed.
pub(super) fn would_block(e: Error) -> Error {
    if e.kind() == ErrorKind::Timeout {
        Error::new(ErrorKind::WouldBlock, "no whole message has arrived")
    } else {
        e
    }
}

impl Connection {
    /// Waits until `st` holds a whole frame (or its header only, without `payload`).
    pub(super) fn receive(
        &self,
        st: &mut RecvState,
        deadline: Option<Instant>,
        payload: bool,
    ) -> Result<()> {
        let limit = self.max_message_size();
        let mut src = Source::Sock(self.fd.as_fd());
        self.retry(deadline, |block| {
            let mut p = st.read_header(&mut src, limit, block)?;
            if p == Progress::Ready && payload {
                p = st.read_payload(&mut src, block)?;
            }
            Ok(p)
        })
    }

    /// Runs `attempt` (its argument: whether it may block in the kernel) until it is
    /// `Ready`: first without blocking, spinning for [`spin`](Self::spin), then blocking —
    /// in the receive itself without a deadline, in `poll` with one.
    fn retry(
        &self,
        deadline: Option<Instant>,
        mut attempt: impl FnMut(bool) -> Result<Progress>,
    ) -> Result<()> {
        let spin = self.spin_ns.load(Ordering::Relaxed);
        let mut spin_until = None;
        let mut block = deadline.is_none() && spin == 0;
        loop {
            match attempt(block) {
                Ok(Progress::Ready) => return Ok(()),
                Ok(Progress::Pending) => {}
                Err(e) if e.kind() == ErrorKind::Disconnected => {
                    // A shutdown by another thread of ours reads as end of stream.
                    self.check_shut()?;
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
            if spin > 0 {
                let now = Instant::now();
                let until = *spin_until.get_or_insert_with(|| {
                    let end = now + Duration::from_nanos(spin);
                    deadline.map_or(end, |d| end.min(d))
                });
                if now < until {
                    std::hint::spin_loop();
                    continue;
                }
                if deadline.is_none() {
                    block = true;
                    continue;
                }
            }
            self.wait_readable(deadline)?;
        }
    }

    /// Blocks until the socket is readable; a passed deadline is [`ErrorKind::Timeout`].
    pub(super) fn wait_readable(&self, deadline: Option<Instant>) -> Result<()> {
        self.wait_for(sys::POLL_IN, deadline)
    }

    /// Blocks until the socket is writable; a passed deadline is [`ErrorKind::Timeout`].
    pub(super) fn wait_writable(&self, deadline: Option<Instant>) -> Result<()> {
        self.wait_for(sys::POLL_OUT, deadline)
    }

    fn wait_for(&self, events: i16, deadline: Option<Instant>) -> Result<()> {
        loop {
            let timeout = match deadline {
                None => None,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(Error::kind_only(ErrorKind::Timeout));
                    }
                    Some(d - now)
                }
            };
            let mut set = [sys::PollFd::new(self.fd.as_fd(), events)];
            match sys::poll(&mut set, timeout) {
                Ok(_) if set[0].ready() => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(e, "poll")),
            }
        }
    }

    /// The receive state, for a `try_` call: taken only if no other thread holds it (that
    /// thread is receiving or polling; what comes is its).
    fn try_lock_recv(&self) -> Result<MutexGuard<'_, RecvSide>> {
        match self.recv.try_lock() {
            Ok(g) => Ok(g),
            Err(TryLockError::Poisoned(e)) => Ok(e.into_inner()),
            Err(TryLockError::WouldBlock) => Err(Error::new(
                ErrorKind::WouldBlock,
                "another thread is receiving on this connection",
            )),
        }
    }

    fn recv_deadline<T: DeserializeOwned>(&self, deadline: Option<Instant>) -> Result<T> {
        self.check_read()?;
        let mut g = lock(&self.recv);
        self.recv_locked(&mut g, deadline)
    }

    fn recv_locked<T: DeserializeOwned>(
        &self,
        g: &mut RecvSide,
        deadline: Option<Instant>,
    ) -> Result<T> {
        let RecvSide { st, rx, bulk } = g;
        self.receive_any(st, rx.as_mut(), bulk.as_mut(), deadline)?;
        let fds = std::mem::take(&mut st.fds);
        match transfer::decode(&st.payload, fds) {
            Ok(v) => {
                st.finish_frame();
                Ok(v)
            }
            Err(e) => {
                // The message goes back to the caller: its buffer is taken, not copied (the
                // next receive allocates anew; the path of a decoded message is unchanged).
                let bytes = std::mem::take(&mut st.payload);
                st.finish_frame();
                Err(Error::undecodable(e, bytes))
            }
        }
    }

    /// Receives one message sent by [`send`](Self::send) and decodes it as `T`, blocking until
    /// one arrives. A type mismatch is an [`ErrorKind::Codec`] error that hands the message's
    /// bytes back ([`Error::undecoded`]; the message is consumed, the connection stays usable);
    /// a closed or dead peer is [`ErrorKind::Disconnected`].
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T> {
        self.recv_deadline(None)
    }

    /// [`recv`](Self::recv) that gives up after `timeout` with [`ErrorKind::Timeout`]
    /// (`Duration::ZERO`: only what has arrived). A message partly received is kept.
    pub fn recv_timeout<T: DeserializeOwned>(&self, timeout: Duration) -> Result<T> {
        self.recv_deadline(deadline_after(timeout))
    }

    /// Receives one message and decodes it as `T` if a whole one has arrived; never waits.
    /// When none has, an [`ErrorKind::WouldBlock`] error (`is_would_block()`; as an
    /// [`io::Error`], [`io::ErrorKind::WouldBlock`], which is what tokio's
    /// `AsyncFd::try_io` expects). Part of a large message may have arrived: it is kept, and a
    /// later call completes it.
    ///
    /// Made for readiness loops (epoll, tokio's `AsyncFd`, [`wait`](crate::wait)): call it
    /// until it reports would-block, then wait for the descriptor ([`AsFd`]) to become
    /// readable. That is never too late: before reporting would-block it has taken every
    /// stale wake-up out of the socket and told the sender (through the pipe's shared ring)
    /// to ring, so a message sent afterwards makes the descriptor readable — a *new* event,
    /// as edge-triggered epoll needs. The crate docs ("From async code") show a tokio loop.
    ///
    /// Another thread inside a receive or [`poll`](Self::poll) of this connection holds its
    /// receiving state: then this reports would-block at once (the message is that thread's).
    pub fn try_recv<T: DeserializeOwned>(&self) -> Result<T> {
        self.check_read()?;
        let mut g = self.try_lock_recv()?;
        self.recv_locked(&mut g, Some(Instant::now())).map_err(would_block)
    }

    /// [`recv_bytes`](Self::recv_bytes) if a whole message has arrived; never waits (see
    /// [`try_recv`](Self::try_recv)).
    pub fn try_recv_bytes(&self) -> Result<Vec<u8>> {
        self.check_read()?;
        let mut g = self.try_lock_recv()?;
        self.recv_bytes_locked(&mut g, Some(Instant::now())).map_err(would_block)
    }

    fn recv_bytes_deadline(&self, deadline: Option<Instant>) -> Result<Vec<u8>> {
        self.check_read()?;
        let mut g = lock(&self.recv);
        self.recv_bytes_locked(&mut g, deadline)
    }

    fn recv_bytes_locked(&self, g: &mut RecvSide, deadline: Option<Instant>) -> Result<Vec<u8>> {
        let RecvSide { st, rx, bulk } = g;
        self.receive_any(st, rx.as_mut(), bulk.as_mut(), deadline)?;
        let len = st.payload.len();
        let out = if st.payload.capacity() <= 2 * len.max(64) {
            std::mem::take(&mut st.payload)
        } else {
            st.payload.clone()
        };
        st.finish_frame();
        Ok(out)
    }

    /// Receives one message as bytes (Python's `recv_bytes()`); descriptors sent with it are
    /// closed.
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        self.recv_bytes_deadline(None)
    }

    /// [`recv_bytes`](Self::recv_bytes) with a timeout.
    pub fn recv_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        self.recv_bytes_deadline(deadline_after(timeout))
    }

    fn recv_into_deadline(&self, buf: &mut [u8], deadline: Option<Instant>) -> Result<usize> {
        self.check_read()?;
        let mut g = lock(&self.recv);
        let RecvSide { st, rx, bulk } = &mut *g;
        if let Some(rx) = rx {
            let r = self.ring_recv_into(rx, bulk.as_mut(), st, buf, deadline);
            rx.leave();
            return r;
        }
        let mut src = Source::Sock(self.fd.as_fd());
        // Payload bytes that are in `buf` only.
        let mut in_dst = 0;
        if self.record.is_some() && st.header().is_none() && buf.len() >= FIRST_PAYLOAD {
            // The first record goes straight into the caller's buffer.
            let limit = self.max_message_size();
            self.retry(deadline, |block| {
                Ok(match st.read_first_record_into(&mut src, limit, block, buf)? {
                    Some(got) => {
                        in_dst = got;
                        Progress::Ready
                    }
                    None => Progress::Pending,
                })
            })?;
        } else {
            self.receive(st, deadline, false)?;
        }
        self.finish_into(st, buf, in_dst, deadline)
    }

    /// The rest of a receive into `buf` once the frame's header is in (`in_dst` payload bytes
    /// of its first record already in `buf`).
    pub(super) fn finish_into(
        &self,
        st: &mut RecvState,
        buf: &mut [u8],
        mut in_dst: usize,
        deadline: Option<Instant>,
    ) -> Result<usize> {
        let mut src = Source::Sock(self.fd.as_fd());
        let len = st.header().expect("header complete").len as usize;
        if buf.len() < len {
            st.keep(&buf[..in_dst]);
            return Err(Error::too_small(len, buf.len()));
        }
        self.retry(deadline, |block| {
            let p = st.read_payload_direct(&mut src, buf, in_dst, block);
            // Whatever happened, the bytes now live in `st` (or the frame is complete).
            in_dst = 0;
            p
        })?;
        st.finish_frame();
        Ok(len)
    }

    /// Receives one message into `buf` and returns its length (Python's
    /// `recv_bytes_into`; pass `&mut buf[offset..]` for an offset). A buffer shorter than the
    /// message is an [`ErrorKind::BufferTooSmall`] error whose [`Error::needed`] is the
    /// message length; the message stays queued for the next call.
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_into_deadline(buf, None)
    }

    /// [`recv_bytes_into`](Self::recv_bytes_into) with a timeout.
    pub fn recv_bytes_into_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.recv_into_deadline(buf, deadline_after(timeout))
    }

    /// Receives one message and hands it to `f` without copying it out: a [`Pipe`]'s
    /// message in shared memory (inline or in the bulk ring, see the crate's "Data path") is
    /// seen in place, any other in the connection's receive buffer. Returns what `f`
    /// returns; descriptors sent with the message are closed. The message is consumed once
    /// `f` returns — also if `f` panics (the panic then goes on after the receive state is
    /// put back in order: the next receive takes the next message). While `f` runs the
    /// sender may wait for room, so keep `f` short (compare, parse, or copy out what you keep);
    /// `f` must not receive on this connection (it runs under the connection's receive lock:
    /// such a receive would wait forever).
    ///
    /// ```
    /// use multiproc_ipc_pipe::Pipe;
    /// let (a, b) = Pipe::new().unwrap();
    /// a.send_bytes(&[7u8; 100_000]).unwrap();
    /// assert!(b.recv_bytes_with(|m| m.len() == 100_000 && m.iter().all(|&x| x == 7)).unwrap());
    /// ```
    ///
    /// [`Pipe`]: crate::Pipe
    pub fn recv_bytes_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.recv_with_deadline(f, None)
    }

    /// [`recv_bytes_with`](Self::recv_bytes_with) that gives up after `timeout` with
    /// [`ErrorKind::Timeout`] (`is_timeout()`; `f` is not called). A message partly received
    /// is kept.
    pub fn recv_bytes_with_timeout<R>(
        &self,
        f: impl FnOnce(&[u8]) -> R,
        timeout: Duration,
    ) -> Result<R> {
        self.recv_with_deadline(f, deadline_after(timeout))
    }

    fn recv_with_deadline<R>(
        &self,
        f: impl FnOnce(&[u8]) -> R,
        deadline: Option<Instant>,
    ) -> Result<R> {
        self.check_read()?;
        let mut g = lock(&self.recv);
        let RecvSide { st, rx, bulk } = &mut *g;
        let out = if let Some(rx) = rx {
            let r = self.ring_recv_with(rx, bulk.as_mut(), st, f, deadline);
            rx.leave();
            r?
        } else {
            self.receive(st, deadline, true)?;
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&st.payload)));
            st.finish_frame();
            out
        };
        drop(g);
        match out {
            Ok(r) => Ok(r),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Whether a message (or the end of the stream) is waiting, waiting up to `timeout` for
    /// one (`Duration::ZERO`: just look). Consumes nothing. Python's `poll(timeout)`: the
    /// time passing is `Ok(false)`, not an error (to receive with a limit, use
    /// [`recv_timeout`](Self::recv_timeout); to take only what is there,
    /// [`try_recv`](Self::try_recv); for many connections, [`wait`](crate::wait)).
    pub fn poll(&self, timeout: Duration) -> Result<bool> {
        self.check_read()?;
        if self.pending() {
            return Ok(true);
        }
        if self.shm.is_some() {
            // (Another thread receiving holds the state: its receive takes what comes.)
            if let Ok(mut g) = self.recv.try_lock() {
                if let RecvSide { st, rx: Some(rx), .. } = &mut *g {
                    return self.ring_poll(rx, st, deadline_after(timeout));
                }
            }
        }
        match self.wait_readable(deadline_after(timeout)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::Timeout => {
                // A zero timeout still checks once.
                let mut set = [sys::PollFd::new(self.fd.as_fd(), sys::POLL_IN)];
                Ok(sys::poll(&mut set, Some(Duration::ZERO)).is_ok() && set[0].ready())
            }
            Err(e) => Err(e),
        }
    }

    /// Whether part of a message has already been read from the socket, or a message waits
    /// in the ring (so the connection is ready although the socket may not be).
    pub(crate) fn pending(&self) -> bool {
        match self.recv.try_lock() {
            Ok(g) => {
                g.st.in_progress() || g.st.eof || g.rx.as_ref().is_some_and(|rx| rx.nonempty())
            }
            Err(_) => false,
        }
    }

    /// After the descriptor polled readable: whether a message really waits (a ring pipe's
    /// socket may hold only stale doorbells, which this drains).
    pub(crate) fn confirm_ready(&self) -> bool {
        if self.shm.is_none() || !self.readable {
            return true;
        }
        self.poll(Duration::ZERO).unwrap_or(true)
    }
}
