//! Hostile input: random bytes, truncated and corrupted frames, huge declared lengths — fed
//! to the decoder (no sockets) in well over 100,000 cases, and to real connections. No
//! panic, no allocation beyond the limit, an error for the connection.

mod common;

use common::{sys, T};
use multiproc_arena::testing::{fuzz_cases, Rng};
use multiproc_ipc_pipe::frame::{encode_frame, FrameDecoder, Header, HEADER_LEN, MAGIC};
use multiproc_ipc_pipe::{Connection, ErrorKind, Pipe};
use std::os::fd::AsFd;

const LIMITS: [usize; 5] = [0, 1, 100, 4096, 1 << 20];
const FIRST_RECORD_ROOM: usize = 64 << 10;
/// A lying length costs at most one receive record (512 KiB) beyond what arrived.
const ONE_RECORD: usize = 512 << 10;

fn check_peak(d: &FrameDecoder, limit: usize, records: bool, received: usize, ctx: &str) {
    let peak = d.peak_allocation();
    let cap = if records { limit.max(FIRST_RECORD_ROOM) } else { limit };
    assert!(peak <= cap, "{ctx}: peak {peak} > limit {cap}");
    assert!(peak <= 2 * received + ONE_RECORD + FIRST_RECORD_ROOM, "{ctx}: peak {peak}");
}

/// Feeds `data` to a fresh decoder in random pieces (stream) or as the given records.
fn feed(
    rng: &mut Rng,
    data: &[u8],
    limit: usize,
    records: bool,
) -> (FrameDecoder, Result<Vec<Vec<u8>>, ErrorKind>) {
    let mut d = if records { FrameDecoder::records(limit) } else { FrameDecoder::new(limit) };
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let n = (1 + rng.below(data.len() as u64 - pos as u64) as usize).min(data.len() - pos);
        match d.push(&data[pos..pos + n]) {
            Ok(v) => out.extend(v),
            Err(e) => return (d, Err(e.kind())),
        }
        pos += n;
    }
    (d, Ok(out))
}

/// 40,000 random byte strings, each as a stream and as records.
#[test]
fn random_bytes() {
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    for case in 0..fuzz_cases(40_000) {
        let len = rng.below(80) as usize;
        let mut data = rng.bytes(len);
        if rng.below(3) == 0 && data.len() >= HEADER_LEN {
            data[7] = MAGIC; // a plausible header with random length and descriptor count
        }
        let limit = LIMITS[case % LIMITS.len()];
        let records = case % 2 == 1;
        let (d, _) = feed(&mut rng, &data, limit, records);
        check_peak(&d, limit, records, data.len(), &format!("case {case}"));
        let _ = d.finish();
    }
}

/// 40,000 sequences of valid frames, then corrupted: a flipped byte, a cut, or nothing.
/// Intact input decodes to exactly the payloads; damaged input is an error or a prefix.
#[test]
fn corrupted_and_truncated_frames() {
    let mut rng = Rng::new(0xD1B5_4A32_D192_ED03);
    for case in 0..fuzz_cases(40_000) {
        let limit = LIMITS[2 + case % 3];
        let payloads: Vec<Vec<u8>> = (0..1 + rng.below(4))
            .map(|_| {
                let n = rng.below(limit as u64 + 1).min(300) as usize;
                rng.bytes(n)
            })
            .collect();
        let mut wire = Vec::new();
        for p in &payloads {
            wire.extend(encode_frame(p));
        }
        let damage = rng.below(3);
        match damage {
            0 => {}
            1 => {
                let i = rng.below(wire.len() as u64) as usize;
                wire[i] ^= 1 << rng.below(8);
            }
            _ => {
                let cut = rng.below(wire.len() as u64) as usize;
                wire.truncate(cut);
            }
        }
        let (d, res) = feed(&mut rng, &wire, limit, false);
        check_peak(&d, limit, false, wire.len(), &format!("case {case}"));
        match (damage, res) {
            (0, Ok(got)) => {
                assert_eq!(got, payloads, "case {case}");
                d.finish().unwrap();
            }
            (0, Err(e)) => panic!("case {case}: intact input failed: {e:?}"),
            (_, Ok(got)) => {
                // A flipped payload bit or a cut gives at most the frames before the damage
                // (payload bits are not checked: that is the transport's job).
                assert!(got.len() <= payloads.len(), "case {case}");
            }
            (_, Err(_)) => {}
        }
    }
}

/// 20,000 headers that claim huge lengths (up to 2^48 − 1) followed by a few bytes: refused
/// from the header when over the limit, and never an allocation beyond what arrived.
#[test]
fn huge_declared_lengths() {
    let mut rng = Rng::new(0xA076_1D64_78BD_642F);
    for case in 0..fuzz_cases(20_000) {
        let len = rng.next_u64() >> (16 + rng.below(48));
        let limit = if case % 2 == 0 { usize::MAX } else { 1 << 20 };
        let records = case % 3 == 0;
        let mut data = Header { len, fds: 0 }.encode().to_vec();
        let extra = rng.below(64) as usize;
        data.extend(rng.bytes(extra));
        let mut d = if records { FrameDecoder::records(limit) } else { FrameDecoder::new(limit) };
        let r = d.push(&data);
        if len > limit as u64 {
            assert_eq!(r.unwrap_err().kind(), ErrorKind::TooLarge, "case {case}");
        }
        check_peak(&d, limit.min(1 << 40), records, data.len(), &format!("case {case} len {len}"));
        assert!(d.peak_allocation() <= 2 * data.len() + ONE_RECORD + FIRST_RECORD_ROOM);
    }
}

/// 200,000 random header words through the pure header check.
#[test]
fn header_decode_is_total() {
    let mut rng = Rng::new(0x94D0_49BB_1331_11EB);
    for _ in 0..fuzz_cases(200_000) {
        let mut w = rng.next_u64();
        if rng.below(2) == 0 {
            w = (w & !(0xFF << 56)) | ((MAGIC as u64) << 56);
        }
        let limit = rng.next_u64() as usize >> rng.below(64);
        if let Ok(h) = Header::decode(w.to_le_bytes(), limit) {
            assert!(h.len <= limit as u64 && h.fds as usize <= multiproc_ipc_pipe::frame::MAX_FDS);
            assert_eq!(Header::decode(h.encode(), limit).unwrap(), h);
        }
    }
}

fn raw_end(c: Connection) -> std::os::fd::OwnedFd {
    std::os::fd::OwnedFd::from(c)
}

/// Real sockets: garbage records, a frame claiming descriptors it lacks, a lying length, a
/// peer that closes mid-frame — each an error for that connection, never a panic.
#[test]
fn hostile_peer_on_a_real_pipe() {
    let cases: Vec<(Vec<u8>, ErrorKind)> = vec![
        (b"hello, not a frame".to_vec(), ErrorKind::Protocol),
        (vec![1, 2, 3], ErrorKind::Protocol),
        (Header { len: 1 << 40, fds: 0 }.encode().to_vec(), ErrorKind::TooLarge),
        (Header { len: 0, fds: 3 }.encode().to_vec(), ErrorKind::Protocol),
        ([&Header { len: 2, fds: 0 }.encode()[..], b"abc"].concat(), ErrorKind::Protocol),
        ([&Header { len: 10, fds: 0 }.encode()[..], b"abc"].concat(), ErrorKind::Disconnected),
    ];
    for (bytes, want) in cases {
        let (a, b) = Pipe::new().unwrap();
        let raw = raw_end(b);
        sys::send_raw(raw.as_fd(), &bytes).unwrap();
        drop(raw);
        let e = a.recv_timeout::<Vec<u8>>(T).unwrap_err();
        assert_eq!(e.kind(), want, "{bytes:?}: {e}");
        // The error sticks: the stream cannot be trusted any more.
        assert_eq!(a.recv_bytes_timeout(T).unwrap_err().kind(), want);
    }
    // A stream connection (as a Listener makes) with a lying length and garbage.
    let (x, y) = std::os::unix::net::UnixStream::pair().unwrap();
    let a = Connection::from_fd(x.into()).unwrap();
    let mut y = y;
    std::io::Write::write_all(&mut y, &Header { len: 1 << 33, fds: 0 }.encode()).unwrap();
    a.set_max_message_size(1 << 30);
    assert_eq!(a.recv_bytes_timeout(T).unwrap_err().kind(), ErrorKind::TooLarge);
    // Not a socket at all (C19).
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    assert_eq!(Connection::from_fd(file.into()).unwrap_err().kind(), ErrorKind::InvalidInput);
}

/// Sends over the limit are refused before anything is written; receives over the limit
/// break the connection before anything is allocated.
#[test]
fn message_size_limit() {
    let (a, b) = Pipe::new().unwrap();
    a.set_max_message_size(100);
    assert_eq!(a.send_bytes(&[0; 101]).unwrap_err().kind(), ErrorKind::TooLarge);
    a.send_bytes(&[0; 100]).unwrap();
    b.set_max_message_size(10);
    assert_eq!(b.recv_bytes().unwrap_err().kind(), ErrorKind::TooLarge);
}
