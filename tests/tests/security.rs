//! Security: a wrong authkey is refused and the server keeps serving; silent and slow
//! clients do not block others; oversized frames before and after authentication are
//! refused without allocating what they claim; sockets and named segments are private to
//! the user (modes checked, and another user's attempts refused for real when run as root).

use multiproc::arena::{Arena, Segment, SharedMemory};
use multiproc::manager::{Address, AuthKey, ErrorKind as MgrErrorKind, Manager};
use multiproc::pipe::frame::Header;
use multiproc::pipe::{Client, ErrorKind as PipeErrorKind, Listener};
use multiproc_tests::alloc::{self, Counting};
use multiproc_tests::{bounded, sys};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex as StdMutex;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: Counting = Counting;

/// One test at a time: the allocation and timing checks belong to the test that reads them.
static SERIAL: StdMutex<()> = StdMutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn tcp_any() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A legitimate client is served within `limit`.
fn served_within(address: &Address, key: &AuthKey, limit: Duration) {
    let t0 = Instant::now();
    let m = Manager::connect(address, key).unwrap();
    let l = m.list::<u32>().unwrap();
    for i in 0..10 {
        l.append(i).unwrap();
    }
    assert_eq!(l.len().unwrap(), 10);
    assert!(
        t0.elapsed() < limit,
        "a legitimate client waited {:?} (limit {limit:?})",
        t0.elapsed()
    );
}

#[test]
fn wrong_authkey_is_refused_and_the_server_keeps_serving() {
    let _s = serial();
    bounded(60, || {
        let m = Manager::start().unwrap();
        for _ in 0..20 {
            let t0 = Instant::now();
            let e = Manager::connect(m.address(), &AuthKey::random()).unwrap_err();
            assert_eq!(e.kind(), MgrErrorKind::Authentication, "{e}");
            assert!(t0.elapsed() < Duration::from_secs(3));
        }
        let e = Manager::connect(m.address(), &AuthKey::from_bytes(Vec::new())).unwrap_err();
        assert_eq!(e.kind(), MgrErrorKind::Authentication, "{e}");
        served_within(m.address(), m.authkey(), Duration::from_secs(3));
        // The default key is the process's (Python's `current_process().authkey`): random
        // per process tree and long; a manager built with a key of its own uses that one.
        assert_eq!(m.authkey().as_bytes(), multiproc::current_process().authkey());
        assert!(m.authkey().as_bytes().len() >= 32);
        let other = Manager::builder().authkey(AuthKey::random()).start().unwrap();
        assert_ne!(m.authkey().as_bytes(), other.authkey().as_bytes());
        // The pipe listener: the wrong key is an error on both sides, then the next client
        // is accepted; a client without a key and a keyed client of a keyless listener fail.
        let l = Listener::builder().authkey(b"right").bind(tcp_any()).unwrap();
        let addr = l.address().clone();
        let a2 = addr.clone();
        let t = std::thread::spawn(move || {
            let e = Client::connect_timeout(
                &a2,
                Some(&AuthKey::from(b"wrong")),
                Duration::from_secs(5),
            )
            .unwrap_err();
            assert_eq!(e.kind(), PipeErrorKind::Authentication, "{e}");
            let c = Client::connect_timeout(
                &a2,
                Some(&AuthKey::from(b"right")),
                Duration::from_secs(5),
            )
            .unwrap();
            c.send(&42u32).unwrap();
        });
        let e = l.accept_timeout(Duration::from_secs(10)).unwrap_err();
        assert_eq!(e.kind(), PipeErrorKind::Authentication, "{e}");
        let c = l.accept_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(c.recv_timeout::<u32>(Duration::from_secs(5)).unwrap(), 42);
        t.join().unwrap();
        std::thread::scope(|sc| {
            let acc = sc.spawn(|| l.accept_timeout(Duration::from_secs(3)));
            let plain = Client::connect_timeout(&addr, None, Duration::from_secs(5)).unwrap();
            let e = plain.recv_timeout::<u32>(Duration::from_secs(5)).unwrap_err();
            assert_eq!(e.kind(), PipeErrorKind::Protocol, "{e}");
            drop(plain);
            assert!(acc.join().unwrap().is_err());
        });
        let keyless = Listener::bind(tcp_any(), None).unwrap();
        let ka = keyless.address().clone();
        let t = std::thread::spawn(move || {
            Client::connect_timeout(&ka, Some(&AuthKey::from(b"k")), Duration::from_millis(500))
                .unwrap_err()
        });
        let _held = keyless.accept_timeout(Duration::from_secs(5)).unwrap();
        // No challenge came: a timeout that suggests the missing authkey (from the client's
        // side a busy listener looks the same; "wrong authkey" is kept for a refused key).
        let e = t.join().unwrap();
        assert_eq!(e.kind(), PipeErrorKind::Timeout, "{e}");
        assert!(e.to_string().contains("authkey"), "{e}");
    });
}

/// Silent clients (they connect and say nothing) and slow ones (a byte now and then) hold a
/// handshake slot until their deadline, never the others' turn; past the deadline they are
/// dropped. More silent clients than slots only delay others up to one handshake timeout.
#[test]
fn silent_and_slow_clients_do_not_block_others() {
    let _s = serial();
    bounded(90, || {
        let timeout = Duration::from_secs(1);
        let m = Manager::builder().handshake_timeout(timeout).address(tcp_any()).start().unwrap();
        let Address::Tcp(sa) = m.address().clone() else { panic!("tcp expected") };
        let unix = Manager::builder().handshake_timeout(timeout).start().unwrap();
        let Address::Unix(path) = unix.address().clone() else { panic!("unix expected") };
        // 64 silent on each transport, and 8 slow-drip clients.
        let silent: Vec<TcpStream> = (0..64).map(|_| TcpStream::connect(sa).unwrap()).collect();
        let silent_unix: Vec<_> = (0..64).map(|_| sys::seqpacket_connect(&path).unwrap()).collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let drips: Vec<_> = (0..8)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut s = TcpStream::connect(sa).unwrap();
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 30 {
                        if s.write_all(b"M").is_err() {
                            return n;
                        }
                        n += 1;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    n
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        served_within(m.address(), m.authkey(), Duration::from_millis(900));
        served_within(unix.address(), unix.authkey(), Duration::from_millis(900));
        // Past the handshake timeout, the silent are dropped: each sees the end of its stream.
        let t0 = Instant::now();
        for mut s in silent {
            s.set_read_timeout(Some(timeout + Duration::from_secs(3))).unwrap();
            let mut buf = [0u8; 64];
            // The challenge first (38 bytes), then the end.
            let mut got = 0;
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                    Err(e) => panic!("a silent client was not dropped: {e} after {got} bytes"),
                }
            }
        }
        for s in &silent_unix {
            let mut buf = [0u8; 64];
            let deadline = Instant::now() + timeout + Duration::from_secs(3);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match sys::recv_timeout(s.as_fd(), &mut buf, left) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                    Err(e) => panic!("a silent Unix client was not dropped: {e}"),
                }
            }
        }
        assert!(t0.elapsed() < timeout + Duration::from_secs(3), "{:?}", t0.elapsed());
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for d in drips {
            // Cut off by the server well before it sent all 30 bytes.
            let n = d.join().unwrap();
            assert!(n < 30, "a slow client kept its connection for {n} bytes");
        }
        drop(silent_unix);
        // More silent clients than handshake slots (256): a legitimate client waits at
        // most about one handshake timeout.
        let many: Vec<TcpStream> = (0..300).map(|_| TcpStream::connect(sa).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(100));
        served_within(m.address(), m.authkey(), timeout + Duration::from_secs(3));
        drop(many);
        served_within(m.address(), m.authkey(), Duration::from_secs(2));
    });
}

/// Oversized messages before authentication (a handshake message longer than its limit,
/// a huge record) and frames claiming huge lengths after it are refused; the server
/// allocates nothing near what they claim and keeps serving.
#[test]
fn oversized_frames_are_refused_before_and_after_authentication() {
    let _s = serial();
    bounded(60, || {
        let server = Manager::builder()
            .address(tcp_any())
            .max_frame(1 << 20)
            .handshake_timeout(Duration::from_secs(2))
            .bind()
            .unwrap();
        let unix_server = Manager::builder()
            .max_frame(1 << 20)
            .handshake_timeout(Duration::from_secs(2))
            .bind()
            .unwrap();
        let (addr, key) = (server.address().clone(), server.authkey().clone());
        let (uaddr, ukey) = (unix_server.address().clone(), unix_server.authkey().clone());
        let stops = [server.shutdown_handle(), unix_server.shutdown_handle()];
        let threads = [
            std::thread::spawn(move || server.serve().unwrap()),
            std::thread::spawn(move || unix_server.serve().unwrap()),
        ];
        let Address::Tcp(sa) = addr.clone() else { panic!() };
        let Address::Unix(path) = uaddr.clone() else { panic!() };
        alloc::reset_largest();
        // Before authentication, TCP: a full-length handshake message and 1 MiB behind it.
        let mut s = TcpStream::connect(sa).unwrap();
        let mut msg = b"MPH\x01\x02\xff".to_vec();
        msg.extend(vec![0x41; 255 + (1 << 20)]);
        let _ = s.write_all(&msg);
        assert_closed(&mut s);
        // Before authentication, Unix: a 100 KiB record.
        let u = sys::seqpacket_connect(&path).unwrap();
        let _ = sys::send(u.as_fd(), &vec![0x42; 100 << 10]);
        let mut buf = [0u8; 64];
        let mut ended = false;
        for _ in 0..4 {
            match sys::recv_timeout(u.as_fd(), &mut buf, Duration::from_secs(5)) {
                Ok(0) | Err(_) => {
                    ended = true;
                    break;
                }
                Ok(_) => {}
            }
        }
        assert!(ended, "an oversized pre-auth record did not end the connection");
        // After authentication: frames claiming 2^40 bytes and 64 MiB (limit 1 MiB), and a
        // frame just over the limit that really carries its bytes.
        for claim in [1u64 << 40, 64 << 20, (1 << 20) + 1] {
            let c = Client::connect(&addr, Some(&key)).unwrap();
            let fd = std::os::fd::OwnedFd::from(c);
            let mut s = TcpStream::from(fd);
            s.write_all(&Header { len: claim, fds: 0 }.encode()).unwrap();
            if claim == (1 << 20) + 1 {
                let _ = s.write_all(&vec![0u8; claim as usize]);
            }
            assert_closed(&mut s);
        }
        let largest = alloc::largest();
        assert!(largest < (1 << 20) + (256 << 10), "largest allocation {largest} bytes");
        served_within(&addr, &key, Duration::from_secs(3));
        served_within(&uaddr, &ukey, Duration::from_secs(3));
        for s in &stops {
            s.shutdown();
        }
        for t in threads {
            t.join().unwrap();
        }
    });
}

/// Reads until the server closes the connection (within 5 s).
fn assert_closed(s: &mut TcpStream) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the server did not close the connection: {e}"),
        }
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Sockets in private directories (0700, socket 0600), named segments 0600, all owned by us;
/// run as root, a process of another user (nobody) can open none of them.
#[test]
fn sockets_and_segments_are_private_to_the_user() {
    let _s = serial();
    bounded(60, || {
        let uid = sys::geteuid();
        let m = Manager::start().unwrap();
        let Address::Unix(msock) = m.address().clone() else { panic!("unix expected") };
        let mdir = msock.parent().unwrap().to_path_buf();
        assert_eq!(mode(&mdir), 0o700, "{}", mdir.display());
        assert_eq!(mode(&msock), 0o600, "{}", msock.display());
        assert_eq!(std::fs::metadata(&mdir).unwrap().uid(), uid);
        let l = Listener::builder().authkey(b"k").bind_private().unwrap();
        let Address::Unix(lsock) = l.address().clone() else { panic!("unix expected") };
        assert_eq!(mode(lsock.parent().unwrap()), 0o700);
        assert_eq!(mode(&lsock), 0o600);
        let dir = std::env::temp_dir().join(format!(
            "multiproc-{}-{:016x}",
            std::process::id(),
            0x5ec_u64
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let explicit = dir.join("explicit.sock");
        let l2 = Listener::bind(explicit.as_path(), Some(&AuthKey::from(b"k"))).unwrap();
        assert_eq!(mode(&explicit), 0o600);
        let pid = std::process::id();
        let seg_name = format!("multiproc-{pid}-sec-seg");
        let seg = Segment::create(&seg_name, 4096).unwrap();
        let arena_name = format!("multiproc-{pid}-sec-arena");
        let arena = Arena::create(&arena_name, 1 << 16).unwrap();
        let shm_name = format!("multiproc-{pid}-sec-shm");
        let shm = SharedMemory::create_named(&shm_name, 4096).unwrap();
        let anon = SharedMemory::create(4096).unwrap();
        for n in [&seg_name, &arena_name, &shm_name, &anon.name().to_string()] {
            let p = Path::new("/dev/shm").join(n.trim_start_matches('/'));
            assert_eq!(mode(&p), 0o600, "{}", p.display());
            assert_eq!(std::fs::metadata(&p).unwrap().uid(), uid);
        }
        if uid == 0 {
            // Another user, for real: a forked child drops to nobody and tries everything.
            let names = [seg_name.clone(), arena_name.clone(), shm_name.clone()];
            let (ms, ls, es) = (msock.clone(), lsock.clone(), explicit.clone());
            let (maddr, key) = (m.address().clone(), m.authkey().clone());
            let mut child = multiproc::arena::testing::fork(move || {
                if sys::become_user(65534, 65534).is_err() {
                    return 90;
                }
                let mut opened = 0;
                for n in &names {
                    opened += i32::from(Segment::open(n).is_ok());
                    opened += i32::from(SharedMemory::open(n).is_ok());
                    opened += i32::from(std::fs::File::open(Path::new("/dev/shm").join(n)).is_ok());
                }
                for s in [&ms, &ls, &es] {
                    opened += i32::from(sys::seqpacket_connect(s).is_ok());
                }
                // Even holding the key, the socket is out of reach.
                opened += i32::from(Manager::connect(&maddr, &key).is_ok());
                opened
            });
            match child.wait_timeout(Duration::from_secs(30)) {
                Some(multiproc::arena::testing::Exit::Code(0)) => {}
                other => panic!("another user opened something of ours: {other:?}"),
            }
        } else {
            eprintln!("not root: the other-user attempts are skipped (modes checked)");
        }
        drop((seg, arena, shm, anon, l, l2));
        std::fs::remove_dir(&dir).unwrap();
        m.shutdown().unwrap();
        assert!(!mdir.exists(), "the manager's socket directory was left behind");
        assert!(!lsock.exists() && !explicit.exists(), "a listener's socket was left behind");
        let left = multiproc_tests::hygiene::shm_names_of(&[pid]);
        assert!(left.is_empty(), "left in /dev/shm: {left:?}");
    });
}
