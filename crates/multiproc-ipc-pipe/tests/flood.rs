//! Hostile connections before authentication: a TCP listener with an authkey, 400 sockets
//! that connect and then stay silent, plus a thread that keeps reconnecting; honest clients
//! connect, authenticate and make a round trip each, and must get through quickly (the
//! issue's bound: under 100 ms). A wrong key is still refused as a wrong key, and the flood
//! leaves the listener serving. Loopback only.

use multiproc_ipc_pipe::{Address, AuthKey, Client, ErrorKind, Listener};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &[u8] = b"the right key";

#[test]
fn honest_clients_get_through_a_flood_of_silent_sockets() {
    let l = Listener::builder()
        .authkey(KEY)
        .bind("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap())
        .unwrap();
    let addr = l.address().clone();
    let Address::Tcp(sa) = addr else { panic!("tcp") };
    let stop = Arc::new(AtomicBool::new(false));
    // The server: accepts and echoes one message per connection.
    let st = stop.clone();
    let server = std::thread::spawn(move || {
        let mut wrong = 0;
        while !st.load(Ordering::SeqCst) {
            match l.accept_timeout(Duration::from_millis(50)) {
                Ok(c) => {
                    std::thread::spawn(move || {
                        if let Ok(b) = c.recv_bytes_timeout(Duration::from_secs(5)) {
                            let _ = c.send_bytes(&b);
                        }
                    });
                }
                Err(e) if e.kind() == ErrorKind::Authentication => wrong += 1,
                Err(_) => {}
            }
        }
        wrong
    });
    // 400 silent sockets.
    let mut silent = Vec::new();
    for _ in 0..400 {
        silent.push(TcpStream::connect(sa).unwrap());
    }
    // A reconnecting attacker: connects, waits a little, leaves, again.
    let st = stop.clone();
    let churn = std::thread::spawn(move || {
        let mut n = 0u64;
        while !st.load(Ordering::SeqCst) {
            let mut batch = Vec::new();
            for _ in 0..20 {
                if let Ok(s) = TcpStream::connect(sa) {
                    batch.push(s);
                }
            }
            n += batch.len() as u64;
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut times = Vec::new();
    for i in 0..8u8 {
        let t = Instant::now();
        let c = Client::connect_timeout(&addr, Some(&AuthKey::from(KEY)), Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("honest client {i} failed under the flood: {e}"));
        c.send_bytes(&[i]).unwrap();
        assert_eq!(c.recv_bytes_timeout(Duration::from_secs(10)).unwrap(), vec![i]);
        times.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(30));
    }
    // A wrong key is refused as a wrong key, under the flood too.
    let err =
        Client::connect_timeout(&addr, Some(&AuthKey::from(b"wrong")), Duration::from_secs(10))
            .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
    stop.store(true, Ordering::SeqCst);
    let churned = churn.join().unwrap();
    let wrong = server.join().unwrap();
    drop(silent);
    times.sort();
    eprintln!(
        "honest connect + handshake + round trip under 400 silent sockets and {churned} \
         reconnects: median {:?}, worst {:?}",
        times[times.len() / 2],
        times[times.len() - 1]
    );
    assert_eq!(wrong, 1, "the server saw exactly one wrong key");
    assert!(times[times.len() / 2] < Duration::from_millis(100), "{times:?}");
    assert!(times[times.len() - 1] < Duration::from_millis(500), "{times:?}");
}
