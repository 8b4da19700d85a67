//! The authkey handshake (see the parent module's documentation): its messages, the
//! listener's side as a non-blocking state machine, and the client's side.

use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

type HmacSha256 = Hmac<Sha256>;

/// First bytes of every handshake message.
pub(crate) const HS_MAGIC: [u8; 4] = *b"MPH\x01";
pub(super) const HS_HEADER: usize = 6;
pub(super) const T_CHALLENGE: u8 = 1;
const T_RESPONSE: u8 = 2;
const T_WELCOME: u8 = 3;
const T_FAILURE: u8 = 4;
pub(super) const NONCE: usize = 32;
const MAC: usize = 32;
const LABEL_CLIENT: &[u8] = b"multiproc-auth-v1 client";
const LABEL_SERVER: &[u8] = b"multiproc-auth-v1 server";

/// A handshake in progress on the listener's side.
pub(super) struct Handshake {
    pub(super) sock: OwnedFd,
    pub(super) tcp: bool,
    pub(super) deadline: Instant,
    pub(super) nonce: [u8; NONCE],
    pub(super) buf: [u8; HS_HEADER + 255],
    pub(super) filled: usize,
}

pub(super) enum Step {
    Wait,
    Done,
    /// The client failed: `Some` is reported by `accept`, `None` (it left, or stayed
    /// silent) is dropped quietly.
    Fail(Option<Error>),
}

fn mac(key: &[u8], label: &[u8], ns: &[u8], nc: &[u8]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(label);
    m.update(ns);
    m.update(nc);
    m
}

pub(super) fn hs_message(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HS_HEADER + body.len());
    v.extend_from_slice(&HS_MAGIC);
    v.push(ty);
    v.push(body.len() as u8);
    v.extend_from_slice(body);
    v
}

pub(super) fn nonce() -> Result<[u8; NONCE]> {
    let mut n = [0u8; NONCE];
    multiproc_arena::os::random_bytes(&mut n).map_err(|e| Error::io(e, "getrandom"))?;
    Ok(n)
}

/// Sends a tiny handshake message without blocking (a fresh socket's buffer always has room).
pub(super) fn hs_send(sock: BorrowedFd<'_>, msg: &[u8], dontwait: bool) -> Result<()> {
    match sys::sendmsg(sock, &[msg], &[], dontwait) {
        Ok(n) if n == msg.len() => Ok(()),
        Ok(_) => Err(Error::new(ErrorKind::Io, "handshake message cut short")),
        Err(e) => Err(Error::io(e, "sending the handshake")),
    }
}

fn bad_handshake(why: &str) -> Error {
    multiproc_arena::event!(warn, target: "multiproc::pipe", why, "authentication failed");
    Error::new(ErrorKind::Authentication, why.to_string())
}

/// Reads one handshake message into `buf` (non-blocking): `Ok(true)` once
/// `HS_HEADER + len` bytes are in. On a stream, reads exactly that (nothing of what follows);
/// on a record socket, one whole record. Checks the magic as soon as it is in, and the (type,
/// length) against `expect` as soon as the header is. `Err(None)`: the peer left.
fn hs_read(
    sock: BorrowedFd<'_>,
    records: bool,
    buf: &mut [u8; HS_HEADER + 255],
    filled: &mut usize,
    expect: &[(u8, usize)],
) -> std::result::Result<bool, Option<Error>> {
    loop {
        let need = if *filled < HS_HEADER { HS_HEADER } else { HS_HEADER + buf[5] as usize };
        if *filled == need {
            return Ok(true);
        }
        let mut fds = Vec::new();
        let dst = if records { &mut buf[..] } else { &mut buf[*filled..need] };
        // SAFETY: reinterpreting initialised bytes as MaybeUninit is always sound, and recvmsg
        // only writes initialised bytes into it.
        let dst = unsafe { &mut *(dst as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) };
        match sys::recvmsg(sock, dst, &mut [], &mut fds, true) {
            Ok((0, _)) => return Err(None),
            Ok((n, cut)) => {
                if !fds.is_empty() || cut {
                    return Err(Some(bad_handshake("malformed handshake message")));
                }
                *filled += n;
                let magic = (*filled).min(HS_MAGIC.len());
                if buf[..magic] != HS_MAGIC[..magic] {
                    return Err(Some(bad_handshake(
                        "the peer did not follow the authkey handshake (no authkey, or not \
                         a multiproc peer)",
                    )));
                }
                if *filled >= HS_HEADER && !expect.contains(&(buf[4], buf[5] as usize)) {
                    return Err(Some(bad_handshake("unexpected handshake message")));
                }
                if records && *filled != HS_HEADER + buf[5] as usize {
                    return Err(Some(bad_handshake("handshake record of the wrong size")));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
            Err(_) => return Err(None),
        }
    }
}

impl Handshake {
    pub(super) fn step(&mut self, key: &[u8]) -> Step {
        match hs_read(
            self.sock.as_fd(),
            !self.tcp,
            &mut self.buf,
            &mut self.filled,
            &[(T_RESPONSE, MAC + NONCE)],
        ) {
            Ok(false) => return Step::Wait,
            Ok(true) => {}
            Err(e) => return Step::Fail(e),
        }
        if self.buf[4] != T_RESPONSE || self.buf[5] as usize != MAC + NONCE {
            return Step::Fail(Some(bad_handshake("unexpected handshake message from the client")));
        }
        let body = &self.buf[HS_HEADER..HS_HEADER + MAC + NONCE];
        let (their_mac, nc) = body.split_at(MAC);
        if mac(key, LABEL_CLIENT, &self.nonce, nc).verify_slice(their_mac).is_err() {
            let _ = hs_send(self.sock.as_fd(), &hs_message(T_FAILURE, &[]), true);
            return Step::Fail(Some(bad_handshake(
                "digest received was wrong (the client's authkey differs)",
            )));
        }
        let proof = mac(key, LABEL_SERVER, &self.nonce, nc).finalize().into_bytes();
        match hs_send(self.sock.as_fd(), &hs_message(T_WELCOME, &proof), true) {
            Ok(()) => Step::Done,
            Err(e) => Step::Fail(Some(e)),
        }
    }
}

/// Reads one handshake message before `deadline`.
fn client_read(
    sock: BorrowedFd<'_>,
    records: bool,
    deadline: Instant,
    expect: &[(u8, usize)],
) -> Result<([u8; HS_HEADER + 255], usize)> {
    let mut buf = [0u8; HS_HEADER + 255];
    let mut filled = 0;
    loop {
        match hs_read(sock, records, &mut buf, &mut filled, expect) {
            Ok(true) => return Ok((buf, filled)),
            Ok(false) => {}
            Err(Some(e)) => return Err(e),
            // Not a wrong key: the listener was busy, timed the handshake out, or went away.
            // Only a refusal (`T_FAILURE`) or a bad proof is an authentication error.
            Err(None) => {
                return Err(Error::new(
                    ErrorKind::Disconnected,
                    "the listener closed the connection during the handshake",
                ))
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::new(
                ErrorKind::Timeout,
                "no handshake from the listener in time (busy, or it uses no authkey)",
            ));
        }
        let mut set = [sys::PollFd::new(sock, sys::POLL_IN)];
        match sys::poll(&mut set, Some(deadline - now)) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(e, "poll")),
        }
    }
}

pub(super) fn client_handshake(
    sock: BorrowedFd<'_>,
    records: bool,
    key: &[u8],
    deadline: Instant,
) -> Result<()> {
    let (buf, _) = client_read(sock, records, deadline, &[(T_CHALLENGE, NONCE)])?;
    if buf[4] != T_CHALLENGE || buf[5] as usize != NONCE {
        return Err(bad_handshake("unexpected handshake message from the listener"));
    }
    let ns = &buf[HS_HEADER..HS_HEADER + NONCE];
    let nc = nonce()?;
    let answer = mac(key, LABEL_CLIENT, ns, &nc).finalize().into_bytes();
    let mut body = [0u8; MAC + NONCE];
    body[..MAC].copy_from_slice(&answer);
    body[MAC..].copy_from_slice(&nc);
    hs_send(sock, &hs_message(T_RESPONSE, &body), false)?;
    let (reply, _) = client_read(sock, records, deadline, &[(T_WELCOME, MAC), (T_FAILURE, 0)])?;
    match (reply[4], reply[5] as usize) {
        (T_WELCOME, MAC) => {
            let proof = &reply[HS_HEADER..HS_HEADER + MAC];
            if mac(key, LABEL_SERVER, ns, &nc).verify_slice(proof).is_err() {
                return Err(bad_handshake(
                    "the listener's proof was wrong (it does not hold the authkey)",
                ));
            }
            Ok(())
        }
        (T_FAILURE, 0) => Err(bad_handshake("digest sent was rejected (the authkey differs)")),
        _ => Err(bad_handshake("unexpected handshake message from the listener")),
    }
}
