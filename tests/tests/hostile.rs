//! Hostile input for every decoder that reads another process's bytes and that the crates'
//! own suites do not already cover: connection records carrying descriptors, handle-transfer
//! tables of every handle type, named-segment headers written by another process, the
//! authkey handshake from both sides (a hostile listener, hostile clients), and the manager
//! protocol before and after authentication.
//!
//! Deterministic pseudo-random cases (xorshift; each test prints its seed and counts). The
//! normal suite runs about 11,000 cases; `MULTIPROC_FUZZ_CASES=N` (`cargo xtask fuzz --cases
//! N`) runs N in total, shared between the targets. Checked for each: no panic in any thread
//! (servers included), no single allocation beyond the target's limit (a counting global
//! allocator), every wait bounded, every outcome `Ok` or a typed error, no descriptor leaked,
//! and the victim still serving legitimate peers.

use hmac::{Hmac, Mac};
use multiproc::arena::{transfer, Arena, Array, Segment, SharedMemory};
use multiproc::lock::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, Mutex, RLock, RwLock, Semaphore,
};
use multiproc::manager::{Address, AuthKey, Manager};
use multiproc::pipe::frame::{Header, HEADER_LEN};
use multiproc::pipe::{Client, Connection, Fd, Pipe};
use multiproc::queue::{JoinableQueue, Queue, SimpleQueue};
use multiproc_tests::alloc::{self, Counting};
use multiproc_tests::hygiene::open_fds;
use multiproc_tests::rng::{fuzz_cases, Rng, RngExt};
use multiproc_tests::sys;
use sha2::Sha256;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex as StdMutex, MutexGuard as StdMutexGuard, Once};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: Counting = Counting;

/// The tests of this file run one at a time, so descriptor counts and the largest
/// allocation belong to the test that reads them.
static SERIAL: StdMutex<()> = StdMutex::new(());
/// Panics on threads that are not a test's own (servers, connection threads).
static PANICS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static STARTED: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// One fuzz target's run: its seed, its number of cases and the outcomes counted so far.
/// Holds the file's serial lock ([`SERIAL`]) until it is dropped.
struct Target {
    seed: u64,
    cases: u64,
    outcomes: BTreeMap<String, u64>,
    _serial: StdMutexGuard<'static, ()>,
}

impl Target {
    /// Waits for this target's turn, installs the panic counter once, and gives the target
    /// with [`fuzz_cases`]`(default, share)` cases, and its random source (from `seed`).
    fn begin(seed: u64, default: u64, share: f64) -> (Target, Rng) {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let name = std::thread::current().name().unwrap_or("").to_string();
                if !name.starts_with("hostile_") {
                    PANICS.fetch_add(1, Ordering::SeqCst);
                }
                default(info);
            }));
        });
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        alloc::reset_largest();
        STARTED.with(|s| s.set(Some(Instant::now())));
        let cases = fuzz_cases(default, share);
        (Target { seed, cases, outcomes: BTreeMap::new(), _serial: serial }, Rng::new(seed))
    }

    /// Counts one outcome.
    fn count(&mut self, key: impl Into<String>) {
        *self.outcomes.entry(key.into()).or_insert(0) += 1;
    }

    /// Prints the figures of the target and checks the common invariants.
    fn finish(self, name: &str, max_alloc: usize) {
        let Target { seed, cases, outcomes, .. } = &self;
        let largest = alloc::largest();
        let took = STARTED.with(|s| s.get()).map_or(0.0, |t| t.elapsed().as_secs_f64());
        eprintln!(
            "hostile: {name}: {cases} cases in {took:.1} s (seed {seed:#x}), largest allocation {largest} bytes; outcomes {outcomes:?}"
        );
        assert_eq!(PANICS.load(Ordering::SeqCst), 0, "{name}: a server or helper thread panicked");
        assert!(
            largest <= max_alloc,
            "{name}: an allocation of {largest} bytes (limit {max_alloc})"
        );
    }
}

/// How long a receive waits: every record is in the socket before the receive starts, so
/// only a frame that claims more than was sent waits this long.
const T: Duration = Duration::from_micros(200);

/// The descriptors a hostile peer may attach: each call makes fresh ones.
struct FdSources {
    devnull: std::fs::File,
    arena: Arena,
    other: Arena,
    plain: Segment,
}

impl FdSources {
    fn new(arena: &Arena) -> FdSources {
        FdSources {
            devnull: std::fs::File::open("/dev/null").unwrap(),
            arena: arena.clone(),
            other: Arena::new(1 << 16).unwrap(),
            plain: Segment::anonymous(4096).unwrap(),
        }
    }

    fn one(&self, rng: &mut Rng) -> OwnedFd {
        match rng.below(5) {
            0 => self.devnull.as_fd().try_clone_to_owned().unwrap(),
            1 => self.arena.fd().try_clone_to_owned().unwrap(),
            2 => self.other.fd().try_clone_to_owned().unwrap(),
            3 => self.plain.fd().try_clone_to_owned().unwrap(),
            _ => OwnedFd::from(Pipe::new().unwrap().0),
        }
    }

    /// The descriptors for a message whose honest table is `honest`: usually those, else a
    /// random set (0 to 4).
    fn pick(&self, rng: &mut Rng, honest: Vec<OwnedFd>) -> Vec<OwnedFd> {
        if rng.below(3) != 0 {
            return honest;
        }
        (0..rng.below(5)).map(|_| self.one(rng)).collect()
    }
}

/// The set-up of the handle targets: [`Handles`], [`FdSources`] in their arena, and the number
/// of descriptors open before the target.
struct HandleFixture {
    h: Handles,
    src: FdSources,
    fds_before: usize,
}

impl HandleFixture {
    fn new() -> HandleFixture {
        let h = Handles::new();
        let src = FdSources::new(&h.arena);
        HandleFixture { h, src, fds_before: open_fds() }
    }

    /// After the target: every handle still works, and no descriptor leaked.
    fn check(self) {
        let HandleFixture { h, src, fds_before } = self;
        h.check_usable();
        drop(src);
        assert!(open_fds() <= fds_before + 1, "descriptors: {fds_before} -> {}", open_fds());
    }
}

/// Every handle type of the crates, one live object each, in one arena.
struct Handles {
    arena: Arena,
    queue: Queue<u64>,
    simple: SimpleQueue<u64>,
    joinable: JoinableQueue<u64>,
    lock: Lock,
    rlock: RLock,
    mutex: Mutex<u64>,
    sem: Semaphore,
    bsem: BoundedSemaphore,
    event: Event,
    cond: Condition<RLock>,
    barrier: Barrier,
    rwlock: RwLock<u64>,
    array: Array<u64>,
}

impl Handles {
    fn new() -> Handles {
        let arena = Arena::new(4 << 20).unwrap();
        Handles {
            queue: Queue::builder().capacity(4096).build_in(&arena).unwrap(),
            simple: SimpleQueue::new_in(&arena).unwrap(),
            joinable: JoinableQueue::new_in(&arena).unwrap(),
            lock: Lock::new_in(&arena).unwrap(),
            rlock: RLock::new_in(&arena).unwrap(),
            mutex: Mutex::new_in(&arena, 7).unwrap(),
            sem: Semaphore::new_in(&arena, 2).unwrap(),
            bsem: BoundedSemaphore::new_in(&arena, 2).unwrap(),
            event: Event::new_in(&arena).unwrap(),
            cond: Condition::new_in(&arena).unwrap(),
            barrier: Barrier::new_in(&arena, 2).unwrap(),
            rwlock: RwLock::new_in(&arena, 9).unwrap(),
            array: Array::from_fn_in(&arena, 16, |i| i as u64).unwrap(),
            arena,
        }
    }

    /// A fresh transfer encoding of handle type `t` (each takes the reference its decoding
    /// adopts).
    fn encode(&self, t: u64) -> transfer::Encoded {
        let r = match t {
            0 => transfer::encode(&self.queue),
            1 => transfer::encode(&self.simple),
            2 => transfer::encode(&self.joinable),
            3 => transfer::encode(&self.lock),
            4 => transfer::encode(&self.rlock),
            5 => transfer::encode(&self.mutex),
            6 => transfer::encode(&self.sem),
            7 => transfer::encode(&self.bsem),
            8 => transfer::encode(&self.event),
            9 => transfer::encode(&self.cond),
            10 => transfer::encode(&self.barrier),
            11 => transfer::encode(&self.rwlock),
            12 => transfer::encode(&self.array),
            13 => transfer::encode(&self.arena),
            14 => transfer::encode(&(self.queue.clone(), self.lock.clone(), 5u32)),
            _ => transfer::encode(&Fd::from(std::fs::File::open("/dev/null").unwrap())),
        };
        r.unwrap()
    }

    /// Decodes `bytes` + `fds` as handle type `t`; the decoded value is dropped at once.
    fn decode(t: u64, bytes: &[u8], fds: Vec<OwnedFd>) -> Result<(), String> {
        fn d<T: serde::de::DeserializeOwned>(b: &[u8], f: Vec<OwnedFd>) -> Result<(), String> {
            transfer::decode::<T>(b, f).map(drop).map_err(|e| format!("{:?}", e.kind()))
        }
        match t {
            0 => d::<Queue<u64>>(bytes, fds),
            1 => d::<SimpleQueue<u64>>(bytes, fds),
            2 => d::<JoinableQueue<u64>>(bytes, fds),
            3 => d::<Lock>(bytes, fds),
            4 => d::<RLock>(bytes, fds),
            5 => d::<Mutex<u64>>(bytes, fds),
            6 => d::<Semaphore>(bytes, fds),
            7 => d::<BoundedSemaphore>(bytes, fds),
            8 => d::<Event>(bytes, fds),
            9 => d::<Condition<RLock>>(bytes, fds),
            10 => d::<Barrier>(bytes, fds),
            11 => d::<RwLock<u64>>(bytes, fds),
            12 => d::<Array<u64>>(bytes, fds),
            13 => d::<Arena>(bytes, fds),
            14 => d::<(Queue<u64>, Lock, u32)>(bytes, fds),
            _ => d::<Fd>(bytes, fds),
        }
    }

    /// Every object still works (nothing the fuzzer sent disturbed them).
    fn check_usable(&self) {
        let w = Duration::from_secs(5);
        self.queue.put(1).unwrap();
        assert_eq!(self.queue.get_timeout(w).unwrap(), 1);
        self.simple.put(2).unwrap();
        assert_eq!(self.simple.get().unwrap(), 2);
        self.joinable.put(3).unwrap();
        assert_eq!(self.joinable.get_timeout(w).unwrap(), 3);
        self.joinable.task_done().unwrap();
        drop(self.lock.try_lock_for(w).unwrap());
        drop(self.rlock.try_lock_for(w).unwrap());
        assert_eq!(*self.mutex.try_lock_for(w).unwrap(), 7);
        drop(self.sem.permit_for(w).unwrap());
        drop(self.bsem.permit_for(w).unwrap());
        self.event.set();
        assert!(self.event.is_set());
        assert_eq!(self.barrier.parties(), 2);
        assert_eq!(*self.rwlock.read().unwrap(), 9);
        assert_eq!(self.array[15], 15);
        drop(self.cond.get_lock().try_lock_for(w).unwrap());
        assert!(self.event.wait_timeout(Duration::ZERO).is_err() || self.event.is_set());
    }
}

const HANDLE_TYPES: u64 = 16;

/// Transfer encodings of every handle type, damaged (bytes, descriptor table, or the type
/// they are read as), decoded without sockets.
#[test]
fn hostile_handle_tables() {
    let seed = 0x4A4E_D1E5_0000_0001;
    let (mut target, mut rng) = Target::begin(seed, 4_000, 0.45);
    let fx = HandleFixture::new();
    let mut accepted_intact = 0u64;
    for case in 0..target.cases {
        let t = case % HANDLE_TYPES;
        let enc = fx.h.encode(t);
        let mut bytes = enc.bytes;
        let intact_bytes = rng.below(4) == 0;
        if !intact_bytes {
            rng.mutate(&mut bytes);
        }
        let honest = enc.fds.len();
        let fds = fx.src.pick(&mut rng, enc.fds);
        let intact = intact_bytes && fds.len() == honest;
        let as_type = if rng.below(8) == 0 { rng.below(HANDLE_TYPES) } else { t };
        let res = Handles::decode(as_type, &bytes, fds);
        if res.is_ok() && intact && as_type == t {
            accepted_intact += 1;
        }
        target.count(res.err().unwrap_or_else(|| "Ok".into()));
    }
    // Honest messages are accepted (the decoder is not simply refusing everything).
    assert!(target.cases < 64 || accepted_intact > 0, "{:?}", target.outcomes);
    fx.check();
    target.finish("handle tables", 1 << 20);
}

/// Records sent on a real connection by a hostile peer: random bytes, valid frames of
/// handle-carrying messages damaged in the header or payload, descriptor counts that lie,
/// descriptors that are not what the bytes say.
#[test]
fn hostile_connection_records() {
    let seed = 0xC0EC_7104_0000_0002;
    let (mut target, mut rng) = Target::begin(seed, 4_000, 0.30);
    let fx = HandleFixture::new();
    let mut pair: Option<(Connection, OwnedFd)> = None;
    let mut ok_intact = 0u64;
    for case in 0..target.cases {
        let (rx, tx) = match pair.take() {
            Some(p) => p,
            None => {
                let (a, b) = Pipe::new().unwrap();
                (a, OwnedFd::from(b))
            }
        };
        if case % 3 == 0 {
            rx.set_max_message_size(1 << 20);
        }
        let kind = rng.below(HANDLE_TYPES + 3);
        let (payload, honest) = match kind {
            k if k < HANDLE_TYPES => {
                let e = fx.h.encode(k);
                (e.bytes, e.fds)
            }
            k if k == HANDLE_TYPES => {
                let len = rng.below(40) as usize;
                (rng.bytes(len), Vec::new())
            }
            _ => (postcard::to_allocvec(&(7u32, "seven".to_string())).unwrap(), Vec::new()),
        };
        let mut frame =
            Header { len: payload.len() as u64, fds: honest.len() as u8 }.encode().to_vec();
        frame.extend_from_slice(&payload);
        let damage = rng.below(4);
        match damage {
            0 => {}
            1 => rng.mutate(&mut frame),
            2 => {
                // A header that lies: huge length, or a descriptor count, or no magic.
                let lie = match rng.below(3) {
                    0 => Header { len: rng.next_u64() >> rng.range(16, 60), fds: 0 }.encode(),
                    1 => Header { len: payload.len() as u64, fds: rng.below(255) as u8 }.encode(),
                    _ => rng.next_u64().to_le_bytes(),
                };
                frame[..HEADER_LEN].copy_from_slice(&lie);
            }
            _ => {
                let at = rng.below(payload.len() as u64 + 1) as usize + HEADER_LEN;
                frame.truncate(at);
            }
        }
        let honest_n = honest.len();
        let fds = fx.src.pick(&mut rng, honest);
        let intact = damage == 0 && fds.len() == honest_n;
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        let sent = transfer::send_with_fds(tx.as_fd(), &frame, &borrowed);
        drop(fds);
        if sent.is_err() {
            target.count("send refused");
            continue;
        }
        if rng.below(6) == 0 {
            // The peer leaves right after its record.
            drop(tx);
            let r = rx.recv_bytes_timeout(T);
            target.count(format!("then closed: {:?}", r.map(drop).map_err(|e| e.kind())));
            continue;
        }
        let res: Result<(), multiproc::pipe::Error> = match kind {
            0 => rx.recv_timeout::<Queue<u64>>(T).map(drop),
            3 => rx.recv_timeout::<Lock>(T).map(drop),
            5 => rx.recv_timeout::<Mutex<u64>>(T).map(drop),
            8 => rx.recv_timeout::<Event>(T).map(drop),
            12 => rx.recv_timeout::<Array<u64>>(T).map(drop),
            13 => rx.recv_timeout::<Arena>(T).map(drop),
            14 => rx.recv_timeout::<(Queue<u64>, Lock, u32)>(T).map(drop),
            15 => rx.recv_timeout::<Fd>(T).map(drop),
            k if k == HANDLE_TYPES + 1 => rx.recv_timeout::<(u32, String)>(T).map(drop),
            _ => rx.recv_bytes_timeout(T).map(drop),
        };
        match res {
            Ok(()) => {
                if intact {
                    ok_intact += 1;
                }
                target.count("Ok");
                pair = Some((rx, tx));
            }
            Err(e) => target.count(format!("{:?}", e.kind())),
        }
    }
    drop(pair);
    assert!(target.cases < 64 || ok_intact > 0, "{:?}", target.outcomes);
    fx.check();
    // A lying length may cost one growth step of the receive buffer, never the claim.
    target.finish("connection records", (16 << 20) + (128 << 10));
}

/// The creator's live handle on a named segment, if any.
#[allow(dead_code)]
enum Live {
    Segment(Segment),
    Arena(Arena),
    None,
}

/// Named segments whose header another process of the same user scribbled on, or that it
/// made up: opened by name as a segment, shared memory and arena.
#[test]
fn hostile_named_segments() {
    let seed = 0x5E6_0000_0003;
    let (mut target, mut rng) = Target::begin(seed, 1_000, 0.12);
    let pid = std::process::id();
    let template = {
        let name = format!("multiproc-{pid}-fztemplate");
        let s = Segment::create(&name, 4096).unwrap();
        let bytes = std::fs::read(format!("/dev/shm/{name}")).unwrap();
        drop(s);
        bytes
    };
    for case in 0..target.cases {
        let name = format!("multiproc-{pid}-fz{case:x}");
        let path = format!("/dev/shm/{name}");
        // Either a live segment whose header is overwritten in place, or a file made up
        // from a mutated copy of a real header.
        let live = match rng.below(3) {
            0 => Live::Segment(Segment::create(&name, 4096 * (1 + rng.below(4) as usize)).unwrap()),
            1 => Live::Arena(Arena::create(&name, 1 << 16).unwrap()),
            _ => Live::None,
        };
        let mut hdr = if !matches!(live, Live::None) {
            std::fs::read(&path).unwrap()[..128].to_vec()
        } else {
            template[..128].to_vec()
        };
        rng.mutate(&mut hdr);
        hdr.resize(128, 0);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &hdr, 0).unwrap();
        if matches!(live, Live::None) {
            let len = match rng.below(4) {
                0 => rng.below(4096),
                1 => 4096 + rng.below(8192),
                _ => template.len() as u64,
            };
            f.set_len(len).unwrap();
            f.flush().unwrap();
        }
        drop(f);
        let res = match rng.below(3) {
            0 => Segment::open(&name).map(|s| s.len()),
            1 => SharedMemory::open(&name).map(|s| s.size()),
            _ => Arena::open(&name).map(|a| a.capacity()),
        };
        target.count(res.map(|_| "Ok".to_string()).unwrap_or_else(|e| format!("{:?}", e.kind())));
        drop(live);
        let _ = std::fs::remove_file(&path);
    }
    let left = multiproc_tests::hygiene::shm_names_of(&[pid]);
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
    target.finish("named segments", 1 << 20);
}

// ---- the authkey handshake and the manager protocol ---------------------------------------

const HS_MAGIC: &[u8; 4] = b"MPH\x01";
const T_CHALLENGE: u8 = 1;
const T_RESPONSE: u8 = 2;
const T_WELCOME: u8 = 3;
const T_FAILURE: u8 = 4;
const LABEL_CLIENT: &[u8] = b"multiproc-auth-v1 client";
const LABEL_SERVER: &[u8] = b"multiproc-auth-v1 server";

fn hs_msg(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = HS_MAGIC.to_vec();
    v.push(ty);
    v.push(body.len() as u8);
    v.extend_from_slice(body);
    v
}

fn mac(key: &[u8], label: &[u8], ns: &[u8], nc: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(label);
    m.update(ns);
    m.update(nc);
    m.finalize().into_bytes().to_vec()
}

/// A raw client socket: TCP (a byte stream) or a `SOCK_SEQPACKET` Unix socket (records).
enum Raw {
    Tcp(TcpStream),
    Seq(OwnedFd),
}

impl Raw {
    fn connect(addr: &Address) -> std::io::Result<Raw> {
        match addr {
            Address::Tcp(a) => {
                let s = TcpStream::connect_timeout(a, Duration::from_secs(2))?;
                s.set_nodelay(true)?;
                Ok(Raw::Tcp(s))
            }
            Address::Unix(p) => sys::seqpacket_connect(p).map(Raw::Seq),
            other => panic!("no raw client for {other}"),
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Raw::Tcp(s) => s.as_fd(),
            Raw::Seq(f) => f.as_fd(),
        }
    }

    fn send(&self, b: &[u8]) -> std::io::Result<usize> {
        sys::send(self.fd(), b)
    }

    /// Exactly `n` bytes of a stream, or one record; `Ok(empty)` at the end of the stream.
    fn recv(&self, n: usize, timeout: Duration) -> std::io::Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; n.max(1)];
        match self {
            Raw::Seq(f) => {
                let mut big = vec![0u8; 1024];
                let k = sys::recv_timeout(f.as_fd(), &mut big, timeout)?;
                big.truncate(k);
                Ok(big)
            }
            Raw::Tcp(s) => {
                let mut filled = 0;
                while filled < n {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let k = sys::recv_timeout(s.as_fd(), &mut buf[filled..n], left)?;
                    if k == 0 {
                        buf.truncate(filled);
                        return Ok(buf);
                    }
                    filled += k;
                }
                buf.truncate(n);
                Ok(buf)
            }
        }
    }

    /// The client's side of the handshake, by hand.
    fn handshake(&self, key: &[u8], rng: &mut Rng) -> std::io::Result<bool> {
        let t = Duration::from_secs(2);
        let ch = self.recv(6 + 32, t)?;
        if ch.len() != 38 || &ch[..4] != HS_MAGIC || ch[4] != T_CHALLENGE {
            return Ok(false);
        }
        let nc = rng.bytes(32);
        let body = [mac(key, LABEL_CLIENT, &ch[6..], &nc), nc].concat();
        self.send(&hs_msg(T_RESPONSE, &body))?;
        let w = self.recv(6 + 32, t)?;
        Ok(w.len() == 38 && w[4] == T_WELCOME)
    }
}

/// A manager server in a thread of this process (so its panics and allocations are seen).
struct InProcessServer {
    address: Address,
    key: AuthKey,
    stop: multiproc::manager::ShutdownHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcessServer {
    fn start(tcp: bool) -> InProcessServer {
        let mut b = Manager::builder().max_frame(1 << 20).handshake_timeout(Duration::from_secs(2));
        if tcp {
            b = b.address("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap());
        }
        let server = b.bind().unwrap();
        let (address, key) = (server.address().clone(), server.authkey().clone());
        let stop = server.shutdown_handle();
        let thread = std::thread::Builder::new()
            .name("mgr-server".into())
            .spawn(move || server.serve().unwrap())
            .unwrap();
        InProcessServer { address, key, stop, thread: Some(thread) }
    }

    /// A legitimate client is served promptly.
    fn check_serves(&self) {
        let t0 = Instant::now();
        let m = Manager::connect(&self.address, &self.key).unwrap();
        let l = m.list::<u32>().unwrap();
        l.append(1).unwrap();
        assert_eq!(l.len().unwrap(), 1);
        assert!(t0.elapsed() < Duration::from_secs(3), "served after {:?}", t0.elapsed());
    }

    /// Every session of the fuzzer ended, and with it every object it made.
    fn check_no_objects_left(&self) {
        let m = Manager::connect(&self.address, &self.key).unwrap();
        let ok = multiproc_tests::hygiene::eventually(Duration::from_secs(5), || {
            m.num_objects().unwrap() == 0
        });
        assert!(ok, "objects left on the server: {}", m.num_objects().unwrap());
    }

    /// After a target: each server still serves and holds no object; then they stop.
    fn check_and_stop(servers: [InProcessServer; 2]) {
        for s in &servers {
            s.check_serves();
            s.check_no_objects_left();
        }
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        self.stop.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Hostile clients before authentication, on TCP and on a Unix socket: garbage, truncated
/// and oversized handshake messages, a wrong key, clients that leave at every step. Nothing
/// but the handshake may be read; a legitimate client is served throughout.
#[test]
fn hostile_manager_preauth() {
    let seed = 0x0A07_0000_0004;
    let (mut target, mut rng) = Target::begin(seed, 600, 0.04);
    let servers = [InProcessServer::start(true), InProcessServer::start(false)];
    let wrong = AuthKey::random();
    for case in 0..target.cases {
        let s = &servers[(case % 2) as usize];
        let Ok(c) = Raw::connect(&s.address) else {
            target.count("connect failed");
            continue;
        };
        let tcp = matches!(c, Raw::Tcp(_));
        let kind = rng.below(10);
        if kind != 0 && kind != 7 && rng.below(2) == 0 {
            // Read the challenge first (or not).
            let _ = c.recv(38, Duration::from_millis(500));
        }
        let msg: Vec<u8> = match kind {
            0 => Vec::new(),
            1 => rng.bytes_in(1, 300),
            2 => hs_msg(T_RESPONSE, &rng.bytes(64)),
            3 => {
                let mut m = hs_msg(T_RESPONSE, &rng.bytes(64));
                rng.mutate(&mut m);
                m
            }
            4 => {
                let ty = rng.below(256) as u8;
                let len = rng.below(256) as usize;
                let mut m = hs_msg(ty, &rng.bytes(len));
                m[5] = rng.below(256) as u8;
                m
            }
            5 => hs_msg(T_RESPONSE, &rng.bytes(64))[..rng.range(1, 5) as usize].to_vec(),
            6 => {
                // Oversized: a full-length message and far more behind it.
                let mut m = hs_msg(T_RESPONSE, &rng.bytes(255));
                m[5] = 255;
                m.extend(rng.bytes(if tcp { 4096 } else { 60_000 }));
                m
            }
            7 => {
                // A well-formed answer made with the wrong key.
                if let Ok(true) = c.handshake(wrong.as_bytes(), &mut rng) {
                    panic!("case {case}: a client with the wrong key was welcomed");
                }
                target.count("wrong key refused");
                continue;
            }
            8 => [Header { len: 1 << 40, fds: 0 }.encode().to_vec(), rng.bytes(64)].concat(),
            _ => [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], &rng.bytes(16)].concat(),
        };
        if !msg.is_empty() {
            if tcp && rng.below(2) == 0 {
                // In pieces.
                let cut = rng.below(msg.len() as u64) as usize;
                let _ = c.send(&msg[..cut]);
                let _ = c.send(&msg[cut..]);
            } else {
                let _ = c.send(&msg);
            }
        }
        if rng.below(8) == 0 {
            // Wait for the verdict: never a welcome.
            let r = c.recv(38, Duration::from_millis(300));
            if let Ok(b) = &r {
                let welcomed = b.len() >= 5 && &b[..4] == HS_MAGIC && b[4] == T_WELCOME;
                assert!(!welcomed, "case {case}: garbage was welcomed");
            }
            target.count(format!("verdict {:?}", r.map(|b| b.len()).map_err(|e| e.kind())));
        } else {
            target.count(format!("kind {kind} sent"));
        }
        drop(c);
        if case % 64 == 63 {
            s.check_serves();
        }
    }
    InProcessServer::check_and_stop(servers);
    target.finish("manager pre-auth", (1 << 20) + (128 << 10));
}

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// Decodes a postcard varint at the start of `b`.
fn read_varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// The manager's request variant that stops the server (an authenticated client may do
/// that; the fuzzer must not).
const REQ_SHUTDOWN: u64 = 7;

/// A stored value (postcard bytes, no proxies inside).
fn stored(b: &[u8]) -> Vec<u8> {
    [varint(b.len() as u64), b.to_vec(), vec![0]].concat()
}

/// Requests that create one object of each kind.
fn creates() -> Vec<Vec<u8>> {
    vec![
        vec![0, 0, 0],                              // List
        vec![0, 1, 0],                              // Dict
        vec![0, 2],                                 // Namespace
        [vec![0, 3], stored(&[1])].concat(),        // Value
        vec![0, 4, 0],                              // Queue { maxsize 0 }
        vec![0, 5],                                 // Lock
        vec![0, 7, 1, 0],                           // Semaphore { 1, unbounded }
        vec![0, 8],                                 // Condition
        vec![0, 9],                                 // Event
        vec![0, 10, 2, 1, 0],                       // Barrier { 2, Some(0) }
        [vec![0, 11, 1, b'x'], varint(0)].concat(), // Service "x" (unknown)
    ]
}

/// Valid requests on the objects `ids` (in the order of [`creates`]), none that blocks.
fn requests(ids: &[u64]) -> Vec<Vec<u8>> {
    let id = |i: usize| varint(ids.get(i).copied().unwrap_or(1));
    let one = stored(&[1]);
    let k = vec![1, b'k'];
    let w0 = vec![1, 0]; // Some(0): do not wait
    let c = |parts: &[&[u8]]| parts.concat();
    let (l, d, ns, v, q, lk, sem, cond, ev, bar) =
        (id(0), id(1), id(2), id(3), id(4), id(5), id(6), id(7), id(8), id(9));
    // Requests of three parts: the request, an object and one byte (mostly an
    // operation without arguments): (request, object, each last byte).
    let bare: [(u8, &Vec<u8>, &[u8]); 11] = [
        (4, &l, &[0]),
        (8, &l, &[4, 10, 11, 13]),
        (9, &d, &[4, 5, 6, 7, 10, 11]),
        (10, &ns, &[3, 4]),
        (11, &v, &[0]),
        (12, &q, &[2, 3]),
        (13, &lk, &[2, 3, 4]),
        (14, &sem, &[2]),
        (15, &cond, &[4]),
        (16, &ev, &[0, 1, 2]),
        (17, &bar, &[1, 2, 3, 4, 5]),
    ];
    let mut all = vec![
        c(&[&[1], &l]),
        c(&[&[2, 1], &l]),
        c(&[&[3], &l]),
        vec![5],
        c(&[&[8], &l, &[0], &one]),
        c(&[&[8], &l, &[1, 1], &one]),
        c(&[&[8], &l, &[2, 0]]),
        c(&[&[8], &l, &[3, 0], &one]),
        c(&[&[8], &l, &[5, 0]]),
        c(&[&[8], &l, &[6, 0], &one]),
        c(&[&[8], &l, &[7, 1, 1]]),
        c(&[&[8], &l, &[8, 1, 1]]),
        c(&[&[8], &l, &[9, 1, 1]]),
        c(&[&[8], &l, &[12, 0], &varint(u64::MAX)]),
        c(&[&[8], &l, &[14, 0]]),
        c(&[&[9], &d, &[0], &k]),
        c(&[&[9], &d, &[1], &k, &one]),
        c(&[&[9], &d, &[2], &k]),
        c(&[&[9], &d, &[3], &k]),
        c(&[&[9], &d, &[8, 1], &k, &one]),
        c(&[&[9], &d, &[9], &k, &one]),
        c(&[&[10], &ns, &[0, 1, b'a']]),
        c(&[&[10], &ns, &[1, 1, b'a'], &one]),
        c(&[&[10], &ns, &[2, 1, b'a']]),
        c(&[&[11], &v, &[1], &one]),
        c(&[&[11], &v, &[2], &one]),
        c(&[&[11], &v, &[3, 1, 1], &one]),
        c(&[&[12], &q, &[0], &one, &w0]),
        c(&[&[12], &q, &[1], &w0]),
        c(&[&[12], &q, &[4], &w0]),
        c(&[&[13], &lk, &[0, 5], &w0]),
        c(&[&[13], &lk, &[1, 5]]),
        c(&[&[14], &sem, &[0], &w0]),
        c(&[&[14], &sem, &[1, 1]]),
        c(&[&[15], &cond, &[0, 5], &w0]),
        c(&[&[15], &cond, &[1, 5]]),
        c(&[&[15], &cond, &[2, 5], &w0]),
        c(&[&[15], &cond, &[3, 5, 1]]),
        c(&[&[16], &ev, &[3], &w0]),
        c(&[&[17], &bar, &[0], &w0]),
        c(&[&[18], &id(10), &[2, 1, 2]]),
    ];
    for (req, obj, ops) in bare {
        all.extend(ops.iter().map(|&op| c(&[&[req], obj, &[op]])));
    }
    all
}

fn hello(rng: &mut Rng) -> Vec<u8> {
    [&b"MPMG"[..], &varint(1), &[0], &varint(rng.below(1 << 22))].concat()
}

/// Authenticated clients that speak the manager protocol badly: damaged hellos, damaged and
/// random requests (never `Shutdown`) on live objects, frames with lying headers. Each is
/// answered with a typed error or the connection is closed; the server keeps serving, and
/// once the hostile sessions end their objects are freed.
#[test]
fn hostile_manager_protocol() {
    let seed = 0x0A07_0000_0005;
    let (mut target, mut rng) = Target::begin(seed, 1_500, 0.05);
    let servers = [InProcessServer::start(false), InProcessServer::start(true)];
    let wait = Duration::from_millis(200);
    let mut case = 0u64;
    let mut conns = 0u64;
    while case < target.cases {
        conns += 1;
        let s = &servers[(conns % 2) as usize];
        if conns % 50 == 0 {
            s.check_serves();
        }
        if rng.below(8) == 0 {
            // Raw frames after a real handshake: headers that lie, garbage payloads.
            case += 1;
            let c = Raw::connect(&s.address).unwrap();
            assert!(c.handshake(s.key.as_bytes(), &mut rng).unwrap(), "handshake");
            let mut f = match rng.below(3) {
                0 => Header { len: rng.next_u64() >> rng.range(8, 40), fds: 0 }.encode().to_vec(),
                1 => Header { len: 9, fds: rng.range(1, 255) as u8 }.encode().to_vec(),
                _ => rng.next_u64().to_le_bytes().to_vec(),
            };
            f.extend(rng.bytes_in(0, 199));
            let _ = c.send(&f);
            let r = c.recv(1, wait);
            target.count(format!("raw frame: {:?}", r.map(|b| b.len()).map_err(|e| e.kind())));
            continue;
        }
        let conn = match Client::connect_timeout(&s.address, Some(&s.key), Duration::from_secs(2)) {
            Ok(c) => c,
            Err(e) => panic!("a legitimate handshake failed: {e}"),
        };
        let mut h = hello(&mut rng);
        if rng.below(5) == 0 {
            case += 1;
            rng.mutate(&mut h);
            conn.send_bytes(&h).unwrap();
            let r = conn.recv_bytes_timeout(wait);
            target
                .count(format!("hello: {:?}", r.map(|b| b.first().copied()).map_err(|e| e.kind())));
            continue;
        }
        conn.send_bytes(&h).unwrap();
        let w = conn.recv_bytes_timeout(Duration::from_secs(2)).unwrap();
        assert_eq!(w.first(), Some(&0), "welcome");
        let mut ids = Vec::new();
        for req in creates() {
            conn.send_bytes(&req).unwrap();
            let r = conn.recv_bytes_timeout(Duration::from_secs(2)).unwrap();
            // Ok(Created(id)) = [0, 3, id].
            ids.push(if r.len() > 2 && r[0] == 0 && r[1] == 3 {
                read_varint(&r[2..]).map_or(0, |v| v.0)
            } else {
                0
            });
        }
        let seeds = requests(&ids);
        for _ in 0..rng.range(5, 40) {
            if case >= target.cases {
                break;
            }
            case += 1;
            let mut req = seeds[rng.below(seeds.len() as u64) as usize].clone();
            match rng.below(6) {
                0 | 1 => {}
                2 => req = rng.bytes_in(0, 23),
                _ => rng.mutate(&mut req),
            }
            if read_varint(&req).is_some_and(|v| v.0 == REQ_SHUTDOWN) {
                req[0] = 5; // Info instead
            }
            if conn.send_bytes(&req).is_err() {
                target.count("closed before the request");
                break;
            }
            match conn.recv_bytes_timeout(wait) {
                Ok(r) => {
                    target.count(match r.first() {
                        Some(0) => "Ok reply",
                        Some(1) => "typed error",
                        _ => "other reply",
                    });
                }
                Err(e) => {
                    // A request that blocks (a damaged wait) or a connection the server
                    // closed after a bad request.
                    target.count(format!("{:?}", e.kind()));
                    break;
                }
            }
        }
    }
    InProcessServer::check_and_stop(servers);
    eprintln!("hostile: manager protocol: {conns} connections");
    target.finish("manager protocol", (1 << 20) + (128 << 10));
}

/// What a fake listener does to a real `Client::connect` in one case.
fn fake_listener_acts(c: &Raw, plan: u64, rng: &mut Rng, key: &[u8]) -> Option<Vec<u8>> {
    let ns = rng.bytes(32);
    let mut challenge = hs_msg(T_CHALLENGE, &ns);
    if plan == 5 {
        rng.mutate(&mut challenge);
    }
    match plan {
        0 => {
            let n = rng.below(300) as usize;
            let _ = c.send(&rng.bytes(n));
            return None;
        }
        7 => return None,
        _ => {}
    }
    let _ = c.send(&challenge);
    if plan == 8 {
        std::thread::sleep(Duration::from_millis(150));
        return None;
    }
    let r = c.recv(6 + 64, Duration::from_secs(2)).ok()?;
    if r.len() != 70 || r[4] != T_RESPONSE {
        return None;
    }
    let nc = &r[38..70];
    let proof = mac(key, LABEL_SERVER, &ns, nc);
    let welcome = hs_msg(T_WELCOME, &proof);
    let reply = match plan {
        1 => rng.bytes_in(1, 80),
        2 => hs_msg(T_FAILURE, &[]),
        3 => hs_msg(T_WELCOME, &rng.bytes(32)),
        4 => welcome.clone(),
        _ => {
            let mut w = welcome.clone();
            rng.mutate(&mut w);
            w
        }
    };
    let _ = c.send(&reply);
    Some(if reply.len() >= welcome.len() && reply[..welcome.len()] == welcome[..] {
        welcome
    } else {
        Vec::new()
    })
}

/// A hostile listener against the real client: garbage challenges, wrong or damaged
/// proofs, refusals, silence. The client must fail with an error within its timeout, and
/// succeed only when the listener proved it holds the key.
#[test]
fn hostile_handshake_client_side() {
    let seed = 0x0C11_0000_0006;
    let (mut target, mut rng) = Target::begin(seed, 600, 0.04);
    let key = b"the right key".to_vec();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_addr = Address::Tcp(tcp.local_addr().unwrap());
    let dir = std::env::temp_dir().join(format!("multiproc-{}-{:016x}", std::process::id(), seed));
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("fake.sock");
    let seq = sys::seqpacket_listen(&path).unwrap();
    let unix_addr = Address::Unix(path.clone());
    let (plans, plans_rx) = std::sync::mpsc::channel::<(u64, u64)>();
    let (done, done_rx) = std::sync::mpsc::channel::<Option<Vec<u8>>>();
    let server_key = key.clone();
    let server = std::thread::Builder::new()
        .name("fake-listener".into())
        .spawn(move || {
            let mut rng = Rng::new(seed ^ 0xFF);
            for (case, plan) in plans_rx {
                let c = if case % 2 == 0 {
                    tcp.set_nonblocking(false).unwrap();
                    Raw::Tcp(tcp.accept().unwrap().0)
                } else {
                    Raw::Seq(sys::accept_timeout(seq.as_fd(), Duration::from_secs(5)).unwrap())
                };
                let r = fake_listener_acts(&c, plan, &mut rng, &server_key);
                drop(c);
                done.send(r).unwrap();
            }
        })
        .unwrap();
    let timeout = Duration::from_millis(100);
    for case in 0..target.cases {
        // Plan 8 (silence) costs the client its whole timeout: rarer.
        let plan = if case % 512 == 13 { 8 } else { rng.below(8) };
        plans.send((case, plan)).unwrap();
        let addr = if case % 2 == 0 { &tcp_addr } else { &unix_addr };
        let t0 = Instant::now();
        let res = Client::connect_timeout(addr, Some(&AuthKey::from(&key[..])), timeout);
        let took = t0.elapsed();
        let proved = done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("fake listener")
            .is_some_and(|w| !w.is_empty());
        match &res {
            Ok(_) => assert!(
                proved,
                "case {case} (plan {plan}): accepted a listener that did not prove the key"
            ),
            Err(e) => {
                assert!(!proved || plan != 4, "case {case}: refused an honest listener: {e}");
                assert!(took < timeout + Duration::from_secs(2), "case {case}: took {took:?}");
            }
        }
        target.count(format!("plan {plan}: {:?}", res.map(drop).map_err(|e| e.kind())));
    }
    drop(plans);
    server.join().unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_dir(&dir).unwrap();
    target.finish("handshake (client side)", 1 << 20);
}
