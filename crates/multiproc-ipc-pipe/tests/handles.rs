//! Handles over a Connection (C09–C11, C16, C17): arena objects, connections and bare
//! descriptors created *after* the fork reach the child only through SCM_RIGHTS.

mod common;

use common::{fds, fork_keep, sys, T};
use multiproc_arena::{Arena, Shared};
use multiproc_ipc_pipe::{Connection, ErrorKind, Fd, Pipe};
use std::io::{Read, Seek, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};

/// An arena object and a fresh pipe end, both made after the fork, reach the child.
#[test]
fn shared_value_and_connection_to_forked_child() {
    let (boot_parent, boot_child) = Pipe::new().unwrap();
    let child = fork_keep(&fds(&[&boot_child]), || {
        let (counter, reply): (Shared<AtomicU64>, Connection) = boot_child.recv_timeout(T).unwrap();
        counter.fetch_add(41, Ordering::SeqCst);
        reply.send(&("done", counter.load(Ordering::SeqCst))).unwrap();
        // A connection can travel back the other way, too.
        let (x, y) = Pipe::new().unwrap();
        reply.send(&y).unwrap();
        drop(y);
        x.send(&"through a passed pipe").unwrap();
        0
    });
    drop(boot_child);
    let arena = Arena::new(1 << 20).unwrap();
    let counter = Shared::new_in(&arena, AtomicU64::new(1)).unwrap();
    let (mine, theirs) = Pipe::new().unwrap();
    boot_parent.send(&(counter.clone(), theirs)).unwrap();
    let (word, seen): (String, u64) = mine.recv_timeout(T).unwrap();
    assert_eq!((word.as_str(), seen), ("done", 42));
    assert_eq!(counter.load(Ordering::SeqCst), 42);
    let passed: Connection = mine.recv_timeout(T).unwrap();
    assert_eq!(passed.recv_timeout::<String>(T).unwrap(), "through a passed pipe");
    child.expect_success(T);
    // The child is gone and held the only other copies: end of stream on both.
    assert_eq!(mine.recv_timeout::<u8>(T).unwrap_err().kind(), ErrorKind::Disconnected);
    assert_eq!(passed.recv_timeout::<u8>(T).unwrap_err().kind(), ErrorKind::Disconnected);
}

/// C17: either end of a fresh one-way pipe can be sent, and works in the receiver.
#[test]
fn simplex_ends_travel() {
    let (boot_parent, boot_child) = Pipe::new().unwrap();
    let child = fork_keep(&fds(&[&boot_child]), || {
        let w: Connection = boot_child.recv_timeout(T).unwrap();
        let r: Connection = boot_child.recv_timeout(T).unwrap();
        if w.readable() || !r.readable() {
            return 2;
        }
        w.send(&"all is well").unwrap();
        let s: String = r.recv_timeout(T).unwrap();
        w.send(&s.repeat(2)).unwrap();
        0
    });
    drop(boot_child);
    let (r1, w1) = Pipe::simplex().unwrap();
    let (r2, w2) = Pipe::simplex().unwrap();
    boot_parent.send(&w1).unwrap();
    boot_parent.send(&r2).unwrap();
    drop((w1, r2));
    assert_eq!(r1.recv_timeout::<String>(T).unwrap(), "all is well");
    w2.send(&"foobar").unwrap();
    assert_eq!(r1.recv_timeout::<String>(T).unwrap(), "foobarfoobar");
    child.expect_success(T);
}

/// C09, C10: a bare descriptor (also one numbered above 256) reaches the child, which
/// writes through it; C11: a message without one is a decode error.
#[test]
fn bare_descriptors() {
    let path = std::env::temp_dir().join(format!("mp-pipe-fd-{}", std::process::id()));
    let (a, b) = Pipe::new().unwrap();
    let child = fork_keep(&fds(&[&b]), || {
        for _ in 0..2 {
            let f: Fd = b.recv_timeout(T).unwrap();
            let mut f = std::fs::File::from(f.into_inner());
            f.write_all(b"foo").unwrap();
        }
        let e = b.recv_timeout::<Fd>(T).unwrap_err();
        (e.kind() != ErrorKind::Codec) as i32
    });
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    a.send(&Fd::from(file.try_clone().unwrap())).unwrap();
    let high = sys::dup_above(file.as_fd(), 300);
    a.send(&Fd::from(high)).unwrap();
    a.send(&7u32).unwrap();
    child.expect_success(T);
    let mut file = file;
    file.rewind().unwrap();
    let mut s = String::new();
    file.read_to_string(&mut s).unwrap();
    assert_eq!(s, "foofoo");
}
