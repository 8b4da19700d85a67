//! Handle transfer to a separate program (this test binary re-executed, not a fork): a named
//! segment opened by name, and an arena handle passed over a Unix socket with SCM_RIGHTS.

use multiproc_arena::{transfer, Arena, ErrorKind, Shared, SharedMemory};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const ROLE: &str = "MULTIPROC_ARENA_TEST_ROLE";

fn send_msg(sock: &UnixStream, enc: &transfer::Encoded) {
    let len = (enc.bytes.len() as u32).to_le_bytes();
    let fds: Vec<_> = enc.fds.iter().map(|f| f.as_fd()).collect();
    let mut frame = len.to_vec();
    frame.extend_from_slice(&enc.bytes);
    let n = transfer::send_with_fds(sock.as_fd(), &frame, &fds).unwrap();
    assert_eq!(n, frame.len());
}

fn recv_msg(sock: &UnixStream) -> (Vec<u8>, Vec<OwnedFd>) {
    let mut buf = vec![0u8; 4096];
    let mut fds = Vec::new();
    let n = transfer::recv_with_fds(sock.as_fd(), &mut buf, &mut fds, false).unwrap();
    assert!(n >= 4, "short frame");
    let len = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
    assert_eq!(n, 4 + len, "frame arrives whole on a fresh socket");
    (buf[4..n].to_vec(), fds)
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Child side, selected by the environment; a no-op in the normal test run.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE) else { return };
    let fd: i32 = std::env::var("MULTIPROC_TEST_FD").unwrap().parse().unwrap();
    // SAFETY: the parent passed this descriptor to us (inheritable) and nothing else owns it.
    let sock = UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    match role.as_str() {
        "named" => {
            let name = std::env::var("MULTIPROC_TEST_NAME").unwrap();
            let shm = SharedMemory::open(&name).unwrap();
            let mut b = [0u8; 5];
            shm.read(0, &mut b).unwrap();
            shm.write(100, b"world").unwrap();
            (&sock).write_all(&b).unwrap();
        }
        "handles" => {
            let before = fd_count();
            let mut last = None;
            for _ in 0..100 {
                let (bytes, fds) = recv_msg(&sock);
                let (v, arena): (Shared<AtomicU64>, Arena) = transfer::decode(&bytes, fds).unwrap();
                v.fetch_add(1, Ordering::AcqRel);
                last = Some((v, arena));
            }
            let (v, arena) = last.unwrap();
            // One arena mapping however many times it was passed: the descriptors stay bounded.
            let growth = fd_count() as i64 - before as i64;
            let allocated = Shared::new_in(&arena, AtomicU64::new(123)).unwrap();
            let report =
                format!("{growth} {} {}", v.load(Ordering::Acquire), allocated.offset().raw());
            std::mem::forget(allocated);
            (&sock).write_all(report.as_bytes()).unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

fn run_child(role: &str, extra: &[(&str, &str)]) -> (std::process::Child, UnixStream) {
    let (mine, theirs) = UnixStream::pair().unwrap();
    transfer::set_inheritable(theirs.as_fd(), true).unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env("MULTIPROC_TEST_FD", theirs.as_raw_fd().to_string());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    drop(theirs);
    mine.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    (child, mine)
}

#[test]
fn unrelated_process_opens_named_shared_memory() {
    let shm = SharedMemory::create(4096).unwrap();
    shm.write(0, b"hello").unwrap();
    let (mut child, mut sock) = run_child("named", &[("MULTIPROC_TEST_NAME", shm.name())]);
    let mut got = [0u8; 5];
    sock.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello");
    assert!(child.wait().unwrap().success());
    let mut w = [0u8; 5];
    shm.read(100, &mut w).unwrap();
    assert_eq!(&w, b"world");
}

#[test]
fn handles_cross_to_a_reexecuted_program_with_bounded_fds() {
    let arena = Arena::new(1 << 20).unwrap();
    let v = Shared::new_in(&arena, AtomicU64::new(0)).unwrap();
    let (mut child, mut sock) = run_child("handles", &[]);
    for _ in 0..100 {
        let enc = transfer::encode(&(v.clone(), arena.clone())).unwrap();
        assert_eq!(enc.fds.len(), 1, "one descriptor for the arena, shared by both handles");
        send_msg(&sock, &enc);
    }
    let mut report = String::new();
    sock.read_to_string(&mut report).unwrap();
    assert!(child.wait().unwrap().success(), "child failed: {report}");
    let parts: Vec<u64> = report.split(' ').map(|s| s.parse().unwrap()).collect();
    assert!(parts[0] <= 2, "child's fd table grew by {} for 100 transfers", parts[0]);
    assert_eq!(parts[1], 100);
    assert_eq!(v.load(Ordering::Acquire), 100, "the child updated the parent's memory");
    // The child allocated in the same arena; the parent sees the value at that offset.
    let p = arena.ptr(multiproc_arena::Offset::from_raw(parts[2]), 64).unwrap();
    // SAFETY: the child placed a Shared<AtomicU64> block there (32-byte header, then the
    // value) and leaked its handle; we only read it.
    let val = unsafe { &*p.add(32).cast::<AtomicU64>() };
    assert_eq!(val.load(Ordering::Acquire), 123);
}

#[test]
fn serialising_a_handle_outside_a_context_is_an_error() {
    let v = Shared::new(AtomicU64::new(1)).unwrap();
    assert!(postcard::to_allocvec(&v).is_err());
    let err = transfer::decode::<Shared<AtomicU64>>(&[0, 0, 0, 0, 0], Vec::new()).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::InvalidHandle | ErrorKind::Codec),
        "a handle with no descriptors is refused: {err}"
    );
}

#[test]
fn received_handle_of_the_wrong_type_is_refused() {
    let v = Shared::new(AtomicU64::new(1)).unwrap();
    let enc = transfer::encode(&v).unwrap();
    let err =
        transfer::decode::<Shared<std::sync::atomic::AtomicU32>>(&enc.bytes, enc.fds).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidHandle, "{err}");
}
