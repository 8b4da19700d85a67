//! `wait()` over connections, raw sockets and process sentinels (checklist section W).

mod common;

use common::{fds, fork_keep, sys, T};
use multiproc_ipc_pipe::{wait, ErrorKind, Pipe, Waitable};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// W01, W02: 4 children each send 10 messages (with random delays) on their own one-way
/// pipe and close it; the parent collects exactly the 40 messages through wait().
#[test]
fn wait_collects_from_many_children() {
    for slow in [false, true] {
        let mut readers = Vec::new();
        let mut children = Vec::new();
        for i in 0..4u32 {
            let (r, w) = Pipe::simplex().unwrap();
            children.push(fork_keep(&fds(&[&w]), || {
                let mut seed = (i as u64 + 1) * 0x9E37_79B9;
                for j in 0..10u32 {
                    if slow {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                        std::thread::sleep(Duration::from_millis((seed >> 33) % 100));
                    }
                    w.send(&(i, j, std::process::id())).unwrap();
                }
                0
            }));
            drop(w);
            readers.push(r);
        }
        let mut got = Vec::new();
        let start = Instant::now();
        while !readers.is_empty() {
            assert!(start.elapsed() < T, "wait loop took too long");
            let objs: Vec<&dyn Waitable> = readers.iter().map(|r| r as &dyn Waitable).collect();
            let ready = wait(&objs, Some(T)).unwrap();
            assert!(!ready.is_empty());
            let mut gone = Vec::new();
            for i in ready {
                match readers[i].recv::<(u32, u32, u32)>() {
                    Ok(m) => got.push(m),
                    Err(e) if e.kind() == ErrorKind::Disconnected => gone.push(i),
                    Err(e) => panic!("{e}"),
                }
            }
            for i in gone.into_iter().rev() {
                readers.remove(i);
            }
        }
        let mut want = Vec::new();
        for (i, c) in children.iter().enumerate() {
            for j in 0..10 {
                want.push((i as u32, j, c.pid()));
            }
        }
        got.sort();
        want.sort();
        assert_eq!(got, want);
        for c in children {
            c.expect_success(T);
        }
    }
}

/// W03: raw sockets mix with connections.
#[test]
fn wait_on_raw_sockets() {
    let (mut s1, mut s2) = UnixStream::pair().unwrap();
    let (a, b) = Pipe::new().unwrap();
    let child = fork_keep(&fds(&[&s2]), || {
        for i in 0..10 {
            writeln!(s2, "{i}").unwrap();
        }
        0
    });
    drop(s2);
    let mut all = Vec::new();
    loop {
        let r = wait(&[&s1, &a], Some(T)).unwrap();
        assert_eq!(r, vec![0]);
        let mut buf = [0u8; 64];
        let n = s1.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    assert_eq!(all, b"0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n");
    child.expect_success(T);
    drop(b);
}

/// W04, W06: nothing ready is an empty list after the timeout (zero: at once); a message makes
/// its connection ready at once.
#[test]
fn wait_timeout() {
    let (a, b) = Pipe::new().unwrap();
    let (c, d) = Pipe::new().unwrap();
    let t = Instant::now();
    assert!(wait(&[&a, &c], Some(Duration::from_millis(300))).unwrap().is_empty());
    assert!(t.elapsed() >= Duration::from_millis(295));
    let t = Instant::now();
    assert!(wait(&[&a, &c], Some(Duration::ZERO)).unwrap().is_empty());
    assert!(t.elapsed() < Duration::from_millis(500));
    d.send(&()).unwrap();
    let t = Instant::now();
    assert_eq!(wait(&[&a, &c], Some(Duration::from_secs(20))).unwrap(), vec![1]);
    assert!(t.elapsed() < Duration::from_millis(1000));
    drop(b);
    // End of stream counts as ready.
    assert_eq!(wait(&[&a, &c], Some(T)).unwrap(), vec![0, 1]);
}

/// W05, W07: a process sentinel (a pidfd) mixes with connections: not ready while the child
/// runs, ready once it ends; connections join as they get messages.
#[test]
fn wait_on_process_sentinel() {
    let (a, b) = Pipe::new().unwrap();
    let child = fork_keep(&[], || {
        std::thread::sleep(Duration::from_millis(300));
        0
    });
    let sentinel = sys::pidfd_open(child.pid());
    assert!(wait(&[&sentinel], Some(Duration::ZERO)).unwrap().is_empty());
    let t = Instant::now();
    assert_eq!(wait(&[&a, &sentinel, &b], Some(T)).unwrap(), vec![1]);
    assert!(t.elapsed() > Duration::from_millis(150), "{:?}", t.elapsed());
    a.send(&1u8).unwrap();
    let t = Instant::now();
    assert_eq!(wait(&[&a, &sentinel, &b], Some(T)).unwrap(), vec![1, 2]);
    b.send(&2u8).unwrap();
    assert_eq!(wait(&[&a, &sentinel, &b], Some(T)).unwrap(), vec![0, 1, 2]);
    assert!(t.elapsed() < Duration::from_millis(1000));
    child.expect_success(T);
}

/// A connection with part of a message already read counts as ready even though its socket
/// has nothing new.
#[test]
fn wait_sees_partly_received_message() {
    let (a, b) = Pipe::new().unwrap();
    let child = fork_keep(&fds(&[&b]), || {
        b.send_bytes(&vec![1u8; 8 << 20]).unwrap();
        0
    });
    drop(b);
    // Let the child start and fill the socket, freeze it mid-message, and drain what it sent.
    assert!(a.poll(T).unwrap());
    std::thread::sleep(Duration::from_millis(20));
    child.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(20));
    let e = a.recv_bytes_timeout(Duration::from_millis(50)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(wait(&[&a], Some(Duration::ZERO)).unwrap(), vec![0]);
    assert!(a.poll(Duration::ZERO).unwrap());
    child.signal(libc::SIGCONT);
    assert_eq!(a.recv_bytes_timeout(T).unwrap().len(), 8 << 20);
    child.expect_success(T);
}
