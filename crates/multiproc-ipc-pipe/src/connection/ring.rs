//! The receive side of a pipe's shared rings: taking inline and bulk records, keeping socket
//! frames in order with their marks, spinning, and `poll` of a ring pipe.

use super::{corrupt, Connection, PEER_CHECK, SPIN_POLITE};
use crate::bell::{Rx, BULK, MARK, MSG};
use crate::error::{Error, ErrorKind, Result};
use crate::frame::{Progress, RecvState, Signal, Source, FIRST_PAYLOAD};
use crate::sys;
use multiproc_arena::spsc::Corrupt;
use multiproc_arena::spsc::Rec;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The next message of a ring pipe, once known.
pub(super) enum Next {
    /// Inline in the ring.
    Ring(Rec),
    /// In the bulk ring: the ring's [`BULK`] record, then the bulk ring's record.
    Bulk(Rec, Rec),
    /// A frame on the socket, its first record read (`in_dst` payload bytes of it in the
    /// caller's buffer).
    Socket { in_dst: usize },
}

/// What a first-record read of a ring pipe's socket found.
pub(super) enum Sock {
    Frame(usize),
    Doorbell,
    Eof,
    Nothing,
}

impl Connection {
    /// Receives one whole message into `st.payload`/`st.fds`, from the ring or the socket.
    pub(super) fn receive_any(
        &self,
        st: &mut RecvState,
        rx: Option<&mut Rx>,
        bulk: Option<&mut Rx>,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let Some(rx) = rx else {
            return self.receive(st, deadline, true);
        };
        let r = self.ring_receive(rx, bulk, st, deadline);
        rx.leave();
        r
    }

    fn ring_receive(
        &self,
        rx: &mut Rx,
        mut bulk: Option<&mut Rx>,
        st: &mut RecvState,
        deadline: Option<Instant>,
    ) -> Result<()> {
        match self.ring_next(rx, bulk.as_deref_mut(), st, deadline, None)? {
            Next::Ring(rec) => {
                copy_out(rx, &rec, st)?;
                rx.advance(rec);
                Ok(())
            }
            Next::Bulk(rec, brec) => {
                let bulk = bulk.expect("a bulk record comes with its ring");
                copy_out(bulk, &brec, st)?;
                bulk.advance(brec);
                rx.advance(rec);
                Ok(())
            }
            Next::Socket { .. } => {
                self.receive(st, deadline, true)?;
                self.settle_marks(rx, st);
                Ok(())
            }
        }
    }

    pub(super) fn ring_recv_into(
        &self,
        rx: &mut Rx,
        mut bulk: Option<&mut Rx>,
        st: &mut RecvState,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize> {
        match self.ring_next(rx, bulk.as_deref_mut(), st, deadline, Some(&mut *buf))? {
            Next::Ring(rec) => {
                let len = rec.len();
                if buf.len() < len {
                    return Err(Error::too_small(len, buf.len()));
                }
                rx.read(&rec, &mut buf[..len]);
                rx.advance(rec);
                Ok(len)
            }
            Next::Bulk(rec, brec) => {
                let len = brec.len();
                if buf.len() < len {
                    // Both records stay: the message is the next one still.
                    return Err(Error::too_small(len, buf.len()));
                }
                let bulk = bulk.expect("a bulk record comes with its ring");
                bulk.read(&brec, &mut buf[..len]);
                bulk.advance(brec);
                rx.advance(rec);
                Ok(len)
            }
            Next::Socket { in_dst } => {
                let n = self.finish_into(st, buf, in_dst, deadline)?;
                self.settle_marks(rx, st);
                Ok(n)
            }
        }
    }

    /// [`recv_bytes_with`](Self::recv_bytes_with) of a ring pipe: `f` sees an inline or bulk
    /// message in place, a socket one in `st.payload`; the message is consumed after `f`
    /// returns or panics (the panic is returned, to be resumed once the lock is released).
    pub(super) fn ring_recv_with<R>(
        &self,
        rx: &mut Rx,
        mut bulk: Option<&mut Rx>,
        st: &mut RecvState,
        f: impl FnOnce(&[u8]) -> R,
        deadline: Option<Instant>,
    ) -> Result<std::thread::Result<R>> {
        match self.ring_next(rx, bulk.as_deref_mut(), st, deadline, None)? {
            Next::Ring(rec) => {
                let out = catch_unwind(AssertUnwindSafe(|| f(rx.view(&rec))));
                rx.advance(rec);
                Ok(out)
            }
            Next::Bulk(rec, brec) => {
                let bulk = bulk.expect("a bulk record comes with its ring");
                let out = catch_unwind(AssertUnwindSafe(|| f(bulk.view(&brec))));
                bulk.advance(brec);
                rx.advance(rec);
                Ok(out)
            }
            Next::Socket { .. } => {
                self.receive(st, deadline, true)?;
                self.settle_marks(rx, st);
                let out = catch_unwind(AssertUnwindSafe(|| f(&st.payload)));
                st.finish_frame();
                Ok(out)
            }
        }
    }

    /// Waits until the next message is known: a ring record at the head (with its bulk
    /// record), or a socket frame whose first record is read (into `dst` if it is given and
    /// at least 64 KiB long).
    fn ring_next(
        &self,
        rx: &mut Rx,
        mut bulk: Option<&mut Rx>,
        st: &mut RecvState,
        deadline: Option<Instant>,
        mut dst: Option<&mut [u8]>,
    ) -> Result<Next> {
        let mut spun = false;
        loop {
            st.check_broken()?;
            if st.in_progress() {
                return Ok(Next::Socket { in_dst: 0 });
            }
            let rec = match rx.peek() {
                Ok(r) => r,
                Err(_) => return Err(st.fail(corrupt())),
            };
            match rec {
                Some(rec) if rec.kind() == MSG => {
                    if st.marks_owed > 0 {
                        return Err(st.fail(corrupt()));
                    }
                    let limit = self.max_message_size();
                    if rec.len() > limit {
                        let e = Error::new(
                            ErrorKind::TooLarge,
                            format!(
                                "incoming message of {} bytes exceeds the limit of {limit}",
                                rec.len()
                            ),
                        );
                        return Err(st.fail(e));
                    }
                    return Ok(Next::Ring(rec));
                }
                Some(rec) if rec.kind() == BULK => {
                    // It names its bulk record, published before it.
                    let mut pos = [0u8; 8];
                    if st.marks_owed > 0 || rec.len() != pos.len() {
                        return Err(st.fail(corrupt()));
                    }
                    rx.read(&rec, &mut pos);
                    let brec =
                        match bulk.as_deref_mut().map(|b| bulk_at(b, u64::from_le_bytes(pos))) {
                            Some(Ok(b)) => b,
                            _ => return Err(st.fail(corrupt())),
                        };
                    let limit = self.max_message_size();
                    if brec.len() > limit {
                        let e = Error::new(
                            ErrorKind::TooLarge,
                            format!(
                                "incoming message of {} bytes exceeds the limit of {limit}",
                                brec.len()
                            ),
                        );
                        return Err(st.fail(e));
                    }
                    return Ok(Next::Bulk(rec, brec));
                }
                Some(rec) => {
                    if st.marks_owed > 0 {
                        // The mark of a frame taken already.
                        st.marks_owed -= 1;
                        rx.advance(rec);
                        continue;
                    }
                    // The frame's first record was sent before its mark was published.
                    match self.read_first_sock(st, dst.as_deref_mut(), deadline.is_none())? {
                        Sock::Frame(in_dst) => {
                            rx.advance(rec);
                            return Ok(Next::Socket { in_dst });
                        }
                        Sock::Doorbell => rx.took_bell(),
                        Sock::Eof => {
                            let e = Error::new(
                                ErrorKind::Disconnected,
                                "the peer closed the connection in the middle of a message",
                            );
                            return Err(st.fail(e));
                        }
                        Sock::Nothing => self.wait_readable(deadline)?,
                    }
                }
                None => {
                    if st.eof {
                        self.check_shut()?;
                        let e =
                            Error::new(ErrorKind::Disconnected, "the peer closed the connection");
                        return Err(st.fail(e));
                    }
                    if !spun {
                        spun = true;
                        if self.spin_on(rx, deadline) {
                            continue;
                        }
                    }
                    if rx.arm() {
                        continue;
                    }
                    match self.read_first_sock(st, dst.as_deref_mut(), deadline.is_none())? {
                        Sock::Frame(in_dst) => {
                            self.frame_arrived(rx, st)?;
                            return Ok(Next::Socket { in_dst });
                        }
                        Sock::Doorbell => rx.took_bell(),
                        Sock::Eof => st.eof = true,
                        Sock::Nothing => self.wait_readable(deadline)?,
                    }
                }
            }
        }
    }

    /// Spins on the ring for up to [`spin`](Self::spin) (and `deadline`), watching it so
    /// senders need not ring; `true` when a record arrived. Asks the kernel every 50 µs
    /// whether the peer is gone (then stops).
    fn spin_on(&self, rx: &Rx, deadline: Option<Instant>) -> bool {
        let spin = self.spin_ns.load(Ordering::Relaxed);
        if spin == 0 {
            return false;
        }
        let start = Instant::now();
        if deadline.is_some_and(|d| d <= start) {
            return false;
        }
        rx.watch();
        let mut until = start.checked_add(Duration::from_nanos(spin)).unwrap_or(start);
        if let Some(d) = deadline {
            until = until.min(d);
        }
        let mut check = start + PEER_CHECK;
        let mut i = 0u32;
        loop {
            if rx.nonempty() {
                return true;
            }
            std::hint::spin_loop();
            i = i.wrapping_add(1);
            if i % 64 == 0 {
                let now = Instant::now();
                if now >= until {
                    return false;
                }
                if now >= check {
                    check = now + PEER_CHECK;
                    if sys::hung_up(self.fd.as_fd()) {
                        return false;
                    }
                }
                if now - start >= SPIN_POLITE {
                    // The answer is late: perhaps the peer waits for this CPU.
                    std::thread::yield_now();
                }
            }
        }
    }

    /// Reads the next record of a ring pipe's socket, if it begins a frame (into `dst` when
    /// it is at least 64 KiB long).
    fn read_first_sock(
        &self,
        st: &mut RecvState,
        dst: Option<&mut [u8]>,
        block: bool,
    ) -> Result<Sock> {
        let limit = self.max_message_size();
        let mut src = Source::Sock(self.fd.as_fd());
        st.signal = None;
        let got = match dst {
            Some(d) if d.len() >= FIRST_PAYLOAD => {
                st.read_first_record_into(&mut src, limit, block, d)?
            }
            _ => match st.read_header(&mut src, limit, block)? {
                Progress::Ready => Some(0),
                Progress::Pending => None,
            },
        };
        Ok(match (got, st.signal.take()) {
            (Some(n), _) => Sock::Frame(n),
            (None, Some(Signal::Doorbell)) => Sock::Doorbell,
            (None, Some(Signal::Eof)) => Sock::Eof,
            (None, None) => Sock::Nothing,
        })
    }

    /// A frame came on the socket while the ring looked empty: its mark is the next record
    /// (or is about to be published).
    fn frame_arrived(&self, rx: &mut Rx, st: &mut RecvState) -> Result<()> {
        match rx.peek() {
            Ok(Some(rec)) if rec.kind() == MARK => rx.advance(rec),
            Ok(None) => st.marks_owed += 1,
            _ => return Err(st.fail(corrupt())),
        }
        Ok(())
    }

    /// After a frame taken before its mark: consumes the mark, which the sender publishes
    /// right after its first system call (waits a few ms at most; a mark still missing then
    /// is consumed by a later receive).
    fn settle_marks(&self, rx: &mut Rx, st: &mut RecvState) {
        let start = Instant::now();
        let mut i = 0u32;
        while st.marks_owed > 0 {
            match rx.peek() {
                Ok(Some(rec)) if rec.kind() == MARK => {
                    rx.advance(rec);
                    st.marks_owed -= 1;
                    continue;
                }
                Ok(None) => {}
                _ => return,
            }
            i += 1;
            if i < 256 {
                std::hint::spin_loop();
            } else if start.elapsed() > Duration::from_millis(5) || sys::hung_up(self.fd.as_fd()) {
                return;
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// [`poll`](Self::poll) of a ring pipe: the ring, then the socket, where stale doorbells
    /// are drained (never a frame: those are only peeked at).
    pub(super) fn ring_poll(
        &self,
        rx: &mut Rx,
        st: &mut RecvState,
        deadline: Option<Instant>,
    ) -> Result<bool> {
        loop {
            if st.in_progress() || st.eof || st.check_broken().is_err() {
                return Ok(true);
            }
            match rx.peek() {
                Ok(Some(rec)) if rec.kind() == MARK && st.marks_owed > 0 => {
                    st.marks_owed -= 1;
                    rx.advance(rec);
                    continue;
                }
                Ok(Some(_)) | Err(_) => return Ok(true),
                Ok(None) => {}
            }
            if rx.arm() {
                continue;
            }
            match sys::peek_record(self.fd.as_fd()) {
                Ok((1, false)) => {
                    // A doorbell: drain it and look again.
                    let mut b = [MaybeUninit::<u8>::uninit(); 1];
                    let mut fds = Vec::new();
                    if let Ok((1, false)) =
                        sys::recvmsg(self.fd.as_fd(), &mut b, &mut [], &mut fds, true)
                    {
                        rx.took_bell();
                    }
                }
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match self.wait_readable(deadline) {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::Timeout => return Ok(false),
                        Err(e) => return Err(e),
                    }
                }
                Err(_) => return Ok(true),
            }
        }
    }
}

/// Copies the payload of `rec` into `st.payload` (a whole message, no descriptors).
fn copy_out(rx: &Rx, rec: &Rec, st: &mut RecvState) -> Result<()> {
    st.payload.clear();
    if st.payload.try_reserve_exact(rec.len()).is_err() {
        return Err(Error::new(ErrorKind::Io, "out of memory"));
    }
    st.payload.resize(rec.len(), 0);
    rx.read(rec, &mut st.payload);
    st.fds.clear();
    Ok(())
}

/// The bulk ring's record that begins at `pos` (what a [`BULK`] record names). Records before
/// it are dropped: a sender killed between publishing a message in the bulk ring and its
/// [`BULK`] record leaves one that no [`BULK`] record names, and another process holding the
/// same end may have sent on.
fn bulk_at(bulk: &mut Rx, pos: u64) -> std::result::Result<Rec, Corrupt> {
    loop {
        match bulk.peek()? {
            Some(r) if r.kind() == MSG && r.at() == pos => return Ok(r),
            // Before `pos` (positions only grow; the ring is far smaller than 2^63).
            Some(r) if r.kind() == MSG && (pos.wrapping_sub(r.at()) as i64) > 0 => bulk.advance(r),
            _ => return Err(Corrupt),
        }
    }
}
