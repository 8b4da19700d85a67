//! Quick measurements of the pipe crate against the raw floors, in one run.
//!
//! `cargo run --release -p multiproc-ipc-pipe --example pipe_bench`
//!
//! Prints medians of several repetitions: small-message round trips between two processes
//! (raw socketpair, Connection blocking, Connection with spinning receivers, a shared-memory
//! busy-spin floor), one-way 1 MiB throughput, and Listener/Client connect + authenticate.

use multiproc_arena::testing::fork;
use multiproc_arena::Shared;
use multiproc_ipc_pipe::{Address, AuthKey, Client, Connection, Listener, Pipe};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const REPS: usize = 7;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Round trip of 8 bytes over a raw socketpair (read/write), in µs.
fn raw_socketpair_rt(n: usize) -> f64 {
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let child = fork(|| {
        let mut buf = [0u8; 8];
        for _ in 0..n {
            b.read_exact(&mut buf).unwrap();
            b.write_all(&buf).unwrap();
        }
        0
    });
    let mut buf = [0u8; 8];
    let t = Instant::now();
    for i in 0..n as u64 {
        a.write_all(&i.to_le_bytes()).unwrap();
        a.read_exact(&mut buf).unwrap();
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    child.expect_success(Duration::from_secs(30));
    us
}

/// Round trip of a u64 through Connection::send/recv, in µs; `spin` on both receivers.
fn conn_rt(n: usize, spin: Duration) -> f64 {
    let (a, b) = Pipe::new().unwrap();
    a.set_spin(spin);
    b.set_spin(spin);
    let child = fork(|| {
        for _ in 0..n {
            let v: u64 = b.recv().unwrap();
            b.send(&v).unwrap();
        }
        0
    });
    let t = Instant::now();
    for i in 0..n as u64 {
        a.send(&i).unwrap();
        let v: u64 = a.recv().unwrap();
        assert_eq!(v, i);
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    child.expect_success(Duration::from_secs(30));
    us
}

/// Busy-spin ping-pong on a shared atomic: the shared-memory floor, in µs.
fn shm_spin_rt(n: usize) -> f64 {
    let w = Shared::new(AtomicU64::new(0)).unwrap();
    let child = fork(|| {
        for i in 0..n as u64 {
            while w.load(Ordering::Acquire) != 2 * i + 1 {
                std::hint::spin_loop();
            }
            w.store(2 * i + 2, Ordering::Release);
        }
        0
    });
    let t = Instant::now();
    for i in 0..n as u64 {
        w.store(2 * i + 1, Ordering::Release);
        while w.load(Ordering::Acquire) != 2 * i + 2 {
            std::hint::spin_loop();
        }
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    child.expect_success(Duration::from_secs(30));
    us
}

/// One-way throughput of `size`-byte messages, in GB/s. `mode`: 0 = recv_bytes_into a reused
/// buffer, 1 = recv_bytes (a Vec per message), 2 = raw socketpair write/read_exact.
fn one_way(size: usize, count: usize, mode: u8) -> f64 {
    let msg = vec![0x5Au8; size];
    let (a, b) = Pipe::new().unwrap();
    let (mut ra, mut rb) = UnixStream::pair().unwrap();
    let child = fork(|| {
        for _ in 0..count {
            if mode == 2 {
                rb.write_all(&msg).unwrap();
            } else {
                b.send_bytes(&msg).unwrap();
            }
        }
        0
    });
    let mut buf = vec![0u8; size];
    let t = Instant::now();
    for _ in 0..count {
        match mode {
            0 => assert_eq!(a.recv_bytes_into(&mut buf).unwrap(), size),
            1 => assert_eq!(a.recv_bytes().unwrap().len(), size),
            _ => ra.read_exact(&mut buf).unwrap(),
        }
    }
    let gbs = (size * count) as f64 / t.elapsed().as_secs_f64() / 1e9;
    child.expect_success(Duration::from_secs(60));
    gbs
}

/// Connect + authenticate (or just connect) to a listener in this process's other thread:
/// the median µs per connection, measured on the client side.
fn connect_auth(addr_kind: &str, key: Option<&'static [u8]>, n: usize) -> f64 {
    let b = Listener::builder();
    let b = if let Some(k) = key { b.authkey(k) } else { b };
    let l = match addr_kind {
        "unix" => b.bind_private().unwrap(),
        _ => b.bind("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap()).unwrap(),
    };
    let addr: Address = l.address().clone();
    let server = std::thread::spawn(move || {
        let mut conns: Vec<Connection> = Vec::new();
        for _ in 0..n {
            conns.push(l.accept().unwrap());
            if conns.len() > 64 {
                conns.clear();
            }
        }
    });
    // The median connection, not the mean: on loopback TCP an occasional reused port
    // meets a TIME_WAIT socket and the SYN is retried a second later.
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let c = Client::connect(&addr, key.map(AuthKey::from).as_ref()).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e6);
        drop(c);
    }
    let us = median(times);
    server.join().unwrap();
    us
}

/// Round trip of a u64 over a Listener/Client connection (Unix or TCP), in µs.
fn listener_rt(n: usize, tcp: bool) -> f64 {
    let l = if tcp {
        Listener::bind(
            "127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap(),
            Some(&AuthKey::from(b"k")),
        )
        .unwrap()
    } else {
        Listener::builder().authkey(b"k").bind_private().unwrap()
    };
    let addr = l.address().clone();
    let child = fork(|| {
        let c = Client::connect(&addr, Some(&AuthKey::from(b"k"))).unwrap();
        for _ in 0..n {
            let v: u64 = c.recv().unwrap();
            c.send(&v).unwrap();
        }
        0
    });
    let a = l.accept().unwrap();
    let t = Instant::now();
    for i in 0..n as u64 {
        a.send(&i).unwrap();
        assert_eq!(a.recv::<u64>().unwrap(), i);
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    child.expect_success(Duration::from_secs(30));
    us
}

/// Runs each closure `REPS` times, interleaved (so drifting machine load hits all alike), and
/// returns the medians.
fn interleaved(fs: &mut [&mut dyn FnMut() -> f64]) -> Vec<f64> {
    let mut all = vec![Vec::new(); fs.len()];
    for _ in 0..REPS {
        for (f, v) in fs.iter_mut().zip(all.iter_mut()) {
            v.push(f());
        }
    }
    all.into_iter().map(median).collect()
}

fn main() {
    let n = 10_000;
    println!("multiproc-ipc-pipe measurements (medians of {REPS} interleaved runs)");
    let m = interleaved(&mut [
        &mut || raw_socketpair_rt(n),
        &mut || conn_rt(n, Duration::ZERO),
        &mut || listener_rt(n, false),
        &mut || listener_rt(n, true),
    ]);
    println!(
        "round trip, blocking: raw socketpair {:6.2} µs | Connection {:6.2} µs (ratio {:.2}) | Listener unix {:6.2} µs | tcp {:6.2} µs",
        m[0], m[1], m[1] / m[0], m[2], m[3]
    );
    let m = interleaved(&mut [
        &mut || conn_rt(n, Duration::from_micros(20)),
        &mut || conn_rt(n, Duration::from_micros(200)),
        &mut || shm_spin_rt(n * 10),
    ]);
    println!(
        "round trip, receiver spinning: Connection spin 20 µs {:6.2} µs | spin 200 µs {:6.2} µs | shm busy-spin floor {:5.2} µs",
        m[0], m[1], m[2]
    );
    for (size, count) in [(1usize << 20, 1000usize), (64 << 10, 10_000)] {
        let m = interleaved(&mut [
            &mut || one_way(size, count, 0),
            &mut || one_way(size, count, 1),
            &mut || one_way(size, count, 2),
        ]);
        println!(
            "one-way {:>4} KiB messages: recv_bytes_into {:5.2} GB/s | recv_bytes {:5.2} GB/s | raw socketpair stream {:5.2} GB/s",
            size >> 10, m[0], m[1], m[2]
        );
    }
    let key = Some(&b"secret key"[..]);
    let m = interleaved(&mut [
        &mut || connect_auth("unix", key, 300),
        &mut || connect_auth("tcp", key, 300),
        &mut || connect_auth("unix", None, 300),
        &mut || connect_auth("tcp", None, 300),
    ]);
    println!(
        "connect + authenticate: unix {:6.1} µs | tcp {:6.1} µs   (no key: unix {:6.1} µs | tcp {:6.1} µs)",
        m[0], m[1], m[2], m[3]
    );
}
