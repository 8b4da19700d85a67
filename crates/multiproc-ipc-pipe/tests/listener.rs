//! Listener / Client / authkey (checklist section LC), with real processes.

mod common;

use common::{fork_keep, T};
use multiproc_ipc_pipe::{wait, Address, AuthKey, Client, ErrorKind, Listener};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn tcp_any() -> Address {
    Address::Tcp("127.0.0.1:0".parse::<SocketAddr>().unwrap())
}

fn keyed(key: &[u8]) -> multiproc_ipc_pipe::ListenerBuilder {
    Listener::builder().authkey(key).handshake_timeout(Duration::from_secs(5))
}

/// A listener with key `k` and the given handshake timeout in a private directory, and its
/// socket's path (for raw clients).
fn private_keyed(handshake_timeout: Duration) -> (Listener, PathBuf) {
    let l = keyed(b"k").handshake_timeout(handshake_timeout).bind_private().unwrap();
    let Address::Unix(path) = l.address().clone() else { unreachable!() };
    (l, path)
}

/// LC05, LC15 (right key half): a child Client sends to the parent's accepted connection, for
/// each family.
#[test]
fn child_client_right_key_every_family() {
    let name = format!("multiproc-test-{}-{}", std::process::id(), line!());
    for l in [
        keyed(b"key").bind_private().unwrap(),
        keyed(b"key").bind(tcp_any()).unwrap(),
        keyed(b"key").bind(Address::Abstract(name.into_bytes())).unwrap(),
    ] {
        let addr = l.address().clone();
        let child = fork_keep(&[], || {
            let c = Client::connect(&addr, Some(&AuthKey::from(b"key"))).unwrap();
            c.send(&"hello").unwrap();
            let back: String = c.recv_timeout(T).unwrap();
            (back != "HELLO") as i32
        });
        let d = l.accept_timeout(T).unwrap();
        let s: String = d.recv_timeout(T).unwrap();
        d.send(&s.to_uppercase()).unwrap();
        child.expect_success(T);
    }
}

/// LC15, LC08, LC09: a wrong key fails on both sides; the listener then serves a right key.
#[test]
fn wrong_key_fails_both_sides_and_listener_keeps_serving() {
    for l in [keyed(b"right").bind_private().unwrap(), keyed(b"right").bind(tcp_any()).unwrap()] {
        let addr = l.address().clone();
        let child = fork_keep(&[], || {
            let e = Client::connect_timeout(&addr, Some(&AuthKey::from(b"wrong")), T).unwrap_err();
            if e.kind() != ErrorKind::Authentication {
                return 1;
            }
            let c = Client::connect_timeout(&addr, Some(&AuthKey::from(b"right")), T).unwrap();
            c.send(&42u32).unwrap();
            0
        });
        let e = l.accept_timeout(T).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
        assert!(e.to_string().contains("digest received was wrong"), "{e}");
        let d = l.accept_timeout(T).unwrap();
        assert_eq!(d.recv_timeout::<u32>(T).unwrap(), 42);
        child.expect_success(T);
    }
}

/// LC03: an empty key is a key.
#[test]
fn empty_authkey_is_valid() {
    let l = keyed(b"").bind(tcp_any()).unwrap();
    let addr = l.address().clone();
    let t = std::thread::spawn(move || {
        let c = Client::connect(&addr, Some(&AuthKey::from(b""))).unwrap();
        c.send(&1729u32).unwrap();
    });
    assert_eq!(l.accept_timeout(T).unwrap().recv_timeout::<u32>(T).unwrap(), 1729);
    t.join().unwrap();
    // A client without a key is refused by a keyed listener, even an empty key.
    let addr = l.address().clone();
    let t = std::thread::spawn(move || {
        let c = Client::connect(&addr, None).unwrap();
        let _ = c.send(&1u32);
        c.recv_timeout::<u32>(T).unwrap_err().kind()
    });
    assert_eq!(l.accept_timeout(T).unwrap_err().kind(), ErrorKind::Authentication);
    assert_eq!(t.join().unwrap(), ErrorKind::Protocol);
}

/// A keyed client meets an unkeyed listener: a timeout (no challenge came) whose message
/// suggests the missing authkey. Not `Authentication`: from the client's side this looks
/// exactly like a busy listener, and "wrong authkey" is kept for a key that was refused.
#[test]
fn keyed_client_unkeyed_listener() {
    let l = Listener::bind(tcp_any(), None).unwrap();
    let addr = l.address().clone();
    let t = std::thread::spawn(move || {
        Client::connect_timeout(&addr, Some(&AuthKey::from(b"k")), Duration::from_millis(300))
            .unwrap_err()
    });
    let _c = l.accept_timeout(T).unwrap();
    let err = t.join().unwrap();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.to_string().contains("authkey"), "{err}");
}

/// A client that connects and says nothing does not delay others; it is dropped after the
/// handshake timeout.
#[test]
fn silent_client_does_not_block_others() {
    let (l, path) = private_keyed(Duration::from_millis(1500));
    let mut silent = common::sys::seqpacket_connect(&path);
    let silent2 = std::net::TcpStream::connect("127.0.0.1:9").ok(); // nothing: just noise
    drop(silent2);
    let addr = l.address().clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        let c = Client::connect(&addr, Some(&AuthKey::from(b"k"))).unwrap();
        c.send(&7u8).unwrap();
        c.recv_timeout::<u8>(T).unwrap()
    });
    let start = Instant::now();
    let d = l.accept_timeout(T).unwrap();
    assert!(start.elapsed() < Duration::from_millis(1000), "waited {:?}", start.elapsed());
    assert_eq!(d.recv_timeout::<u8>(T).unwrap(), 7);
    d.send(&8u8).unwrap();
    assert_eq!(t.join().unwrap(), 8);
    // The silent one got the challenge, and is dropped after its deadline.
    silent.set_read_timeout(Some(T)).unwrap();
    let mut buf = [0u8; 38];
    silent.read_exact(&mut buf).unwrap();
    assert_eq!(&buf[..4], b"MPH\x01");
    let e = l.accept_timeout(Duration::from_millis(2500)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    let mut rest = Vec::new();
    assert_eq!(silent.read_to_end(&mut rest).unwrap(), 0, "listener hung up on it");
}

/// Garbage instead of a handshake: an error for that client, the listener keeps serving.
#[test]
fn garbage_before_handshake() {
    let (l, path) = private_keyed(Duration::from_secs(5));
    for garbage in [&b"GET / HTTP/1.1\r\n\r\n"[..], b"MPH\x01\x02\xff", &[0u8; 300][..]] {
        let mut s = common::sys::seqpacket_connect(&path);
        s.write_all(garbage).unwrap();
        let e = l.accept_timeout(T).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    }
    // Right size, wrong digest.
    let mut s = common::sys::seqpacket_connect(&path);
    let mut m = b"MPH\x01\x02\x40".to_vec();
    m.extend([0xAAu8; 64]);
    s.write_all(&m).unwrap();
    let e = l.accept_timeout(T).unwrap_err();
    assert!(e.to_string().contains("digest received was wrong"), "{e}");
    // Garbage after a good handshake breaks that connection only.
    let addr = l.address().clone();
    let t = std::thread::spawn(move || {
        let c = Client::connect(&addr, Some(&AuthKey::from(b"k"))).unwrap();
        let mut raw = UnixStream::from(std::os::fd::OwnedFd::from(c));
        raw.write_all(b"\xff\xff\xff\xff\xff\xff\xff\xff garbage").unwrap();
        raw
    });
    let d = l.accept_timeout(T).unwrap();
    assert_eq!(d.recv_timeout::<u8>(T).unwrap_err().kind(), ErrorKind::Protocol);
    assert_eq!(d.recv_timeout::<u8>(T).unwrap_err().kind(), ErrorKind::Protocol);
    drop(t.join().unwrap());
    let addr = l.address().clone();
    let t = std::thread::spawn(move || {
        Client::connect(&addr, Some(&AuthKey::from(b"k"))).unwrap().send(&3u8)
    });
    assert_eq!(l.accept_timeout(T).unwrap().recv_timeout::<u8>(T).unwrap(), 3);
    t.join().unwrap().unwrap();
}

/// LC06, LC07: no key; a client that sent and left before accept is still accepted with its
/// message; poll on the client side sees the server's bytes.
#[test]
fn no_key_message_before_accept_and_poll() {
    let l = Listener::bind(tcp_any(), None).unwrap();
    let addr = l.address().clone();
    let c = Client::connect(&addr, None).unwrap();
    c.send(&"hello").unwrap();
    drop(c);
    std::thread::sleep(Duration::from_millis(50));
    let d = l.accept_timeout(T).unwrap();
    assert_eq!(d.recv_timeout::<String>(T).unwrap(), "hello");
    let c = Client::connect(&addr, None).unwrap();
    let d = l.accept_timeout(T).unwrap();
    d.send_bytes(b"hello").unwrap();
    assert!(c.poll(Duration::from_secs(1)).unwrap());
}

/// LC01: a second listener on a used address fails; LC12: a Windows pipe name is refused.
#[test]
fn address_in_use_and_bad_family() {
    let l = Listener::bind(tcp_any(), None).unwrap();
    assert!(Listener::bind(l.address().clone(), None).is_err());
    let p = Listener::builder().bind_private().unwrap();
    assert!(Listener::bind(p.address().clone(), None).is_err());
    let e = r"\\.\pipe\test".parse::<Address>().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!("@x".parse::<Address>().unwrap(), Address::Abstract(b"x".to_vec()));
    assert_eq!("127.0.0.1:80".parse::<Address>().unwrap().to_string(), "127.0.0.1:80".to_string());
}

/// Socket files are private and removed with the listener.
#[test]
fn private_socket_permissions_and_cleanup() {
    let l = Listener::builder().authkey(b"k").bind_private().unwrap();
    let Address::Unix(path) = l.address().clone() else { unreachable!() };
    let dir = path.parent().unwrap().to_path_buf();
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    drop(l);
    assert!(!path.exists() && !dir.exists());
    let explicit = std::env::temp_dir().join(format!("mp-pipe-test-{}.sock", std::process::id()));
    let l = Listener::bind(explicit.clone(), None).unwrap();
    assert_eq!(std::fs::metadata(&explicit).unwrap().permissions().mode() & 0o777, 0o600);
    drop(l);
    assert!(!explicit.exists());
}

/// A listener sits in wait() beside connections and wakes for a client and for its handshake.
#[test]
fn listener_in_wait() {
    let l = keyed(b"k").bind(tcp_any()).unwrap();
    let (a, _b) = multiproc_ipc_pipe::Pipe::new().unwrap();
    assert!(wait(&[&l, &a], Some(Duration::ZERO)).unwrap().is_empty());
    let addr = l.address().clone();
    let t = std::thread::spawn(move || {
        Client::connect(&addr, Some(&AuthKey::from(b"k"))).unwrap().send(&5u8)
    });
    let mut got = None;
    let start = Instant::now();
    while got.is_none() && start.elapsed() < T {
        let r = wait(&[&l, &a], Some(T)).unwrap();
        assert_eq!(r, vec![0]);
        match l.accept_timeout(Duration::ZERO) {
            Ok(c) => got = Some(c),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Timeout),
        }
    }
    assert_eq!(got.unwrap().recv_timeout::<u8>(T).unwrap(), 5);
    t.join().unwrap().unwrap();
}

/// CPU time of the calling thread, in clock ticks.
fn thread_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// A flood of silent clients beyond the handshake slots: the listener sleeps (no spinning)
/// until slots free, and a good client behind them is served once the silent ones expire.
#[test]
fn silent_flood_costs_time_not_cpu() {
    let (l, path) = private_keyed(Duration::from_millis(600));
    let silent: Vec<_> = (0..300).map(|_| common::sys::seqpacket_connect(&path)).collect();
    let addr = l.address().clone();
    let t = std::thread::spawn(move || {
        let c = Client::connect_timeout(&addr, Some(&AuthKey::from(b"k")), T).unwrap();
        c.send(&9u8).unwrap();
    });
    let cpu = thread_cpu_ticks();
    let start = Instant::now();
    let d = l.accept_timeout(T).unwrap();
    assert_eq!(d.recv_timeout::<u8>(T).unwrap(), 9);
    let took = start.elapsed();
    let used = thread_cpu_ticks() - cpu;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(used < 30, "accept burnt {used} ticks of CPU in {took:?}");
    t.join().unwrap();
    drop(silent);
}

/// A process killed while listening leaves its private directory; the cleanup removes it
/// (and nothing of live processes).
#[test]
fn orphan_listener_cleanup() {
    let (r, w) = multiproc_ipc_pipe::Pipe::simplex().unwrap();
    let mut child = fork_keep(&common::fds(&[&w]), || {
        let l = Listener::builder().bind_private().unwrap();
        let Address::Unix(p) = l.address().clone() else { unreachable!() };
        w.send(&p).unwrap();
        std::mem::forget(l);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    drop(w);
    let path: std::path::PathBuf = r.recv_timeout(T).unwrap();
    let mine = Listener::builder().bind_private().unwrap();
    let Address::Unix(my_path) = mine.address().clone() else { unreachable!() };
    assert!(path.exists());
    child.kill();
    child.wait_timeout(T).unwrap();
    assert!(path.exists(), "a killed process cannot clean up");
    assert!(multiproc_ipc_pipe::cleanup_orphan_listeners().unwrap() >= 1);
    assert!(!path.exists() && !path.parent().unwrap().exists());
    assert!(my_path.exists(), "a live listener is left alone");
}
