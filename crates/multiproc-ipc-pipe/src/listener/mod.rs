//! [`Listener`] and [`Client`]: connections between processes that share no parent, over a
//! Unix socket or TCP, with an optional authkey handshake.
//!
//! # The handshake
//!
//! With an authkey, before any message is exchanged:
//!
//! 1. the listener sends a challenge: 32 random bytes `ns`;
//! 2. the client answers `HMAC-SHA256(key, "multiproc-auth-v1 client" ‖ ns ‖ nc)` and its own
//!    32 random bytes `nc`;
//! 3. the listener checks the answer in constant time and replies either a welcome carrying
//!    `HMAC-SHA256(key, "multiproc-auth-v1 server" ‖ ns ‖ nc)` — which the client checks in
//!    turn — or a refusal.
//!
//! Each side thus proves it holds the key without revealing it, a recorded exchange cannot be
//! replayed (fresh nonces on both sides), and the two directions use different labels so one
//! side's answer cannot be reflected back. Handshake messages are at most 261 bytes; the
//! listener reads nothing else before authentication, and each client has
//! [`handshake_timeout`](ListenerBuilder::handshake_timeout) to complete it. Handshakes of
//! several clients run side by side inside [`Listener::accept`], so a client that connects and
//! stays silent costs one slot until its deadline, never the others' turn.
//!
//! Without an authkey (on both sides), nothing is exchanged, as in Python.

mod handshake;

pub(crate) use self::handshake::HS_MAGIC;
use self::handshake::{
    client_handshake, hs_message, hs_send, nonce, Handshake, Step, HS_HEADER, T_CHALLENGE,
};
use crate::authkey::AuthKey;
use crate::connection::Connection;
use crate::error::{Error, ErrorKind, Result};
use crate::lock;
use crate::sys;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default [`handshake_timeout`](ListenerBuilder::handshake_timeout) and client connect
/// timeout.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`handshake_timeout`](ListenerBuilder::handshake_timeout) of a listener: the
/// time an unauthenticated client may hold a slot. An honest client answers the challenge
/// within a round trip; a short limit keeps silent sockets from piling up.
pub const DEFAULT_LISTENER_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// Most handshakes a listener runs at once. When all are taken, the oldest is dropped to
/// make room once it has had [`MIN_HANDSHAKE_AGE`] (an honest client answers well within
/// that), so a flood of silent or idle connections cannot lock honest clients out: they
/// push the flood's oldest sockets out instead of waiting behind them.
const MAX_PENDING: usize = 256;
/// How long a handshake keeps its slot for sure, however many clients wait.
const MIN_HANDSHAKE_AGE: Duration = Duration::from_millis(50);
const LISTEN_TOKEN: u64 = u64::MAX;

/// Where a [`Listener`] listens and a [`Client`] connects.
///
/// Parsed from text by [`FromStr`] (and printed back by `Display`, which parses to the same
/// address):
///
/// | text | address |
/// |---|---|
/// | `unix:PATH`, or a path with a `/` in it (`/run/app.sock`, `./app.sock`) | [`Address::Unix`] |
/// | `@NAME` (or `"\0NAME"`, Python's spelling) | [`Address::Abstract`] |
/// | `IP:PORT`, `[IPv6]:PORT`, `tcp:…` | [`Address::Tcp`] |
/// | `HOST:PORT` (`localhost:6000`) | [`Address::Tcp`], the host resolved now (its first address) |
///
/// Anything else — an empty string, a bare name, a port that is not a number, a host that
/// does not resolve — is an [`ErrorKind::InvalidInput`] error saying which forms exist.
///
/// ```
/// use multiproc_ipc_pipe::Address;
/// assert_eq!("127.0.0.1:6000".parse::<Address>()?, Address::Tcp("127.0.0.1:6000".parse().unwrap()));
/// assert_eq!("/run/app.sock".parse::<Address>()?, Address::Unix("/run/app.sock".into()));
/// assert_eq!("@app".parse::<Address>()?, Address::Abstract(b"app".to_vec()));
/// let a: Address = "unix:app.sock".parse()?;
/// assert_eq!(a.to_string().parse::<Address>()?, a);
/// assert!("app".parse::<Address>().unwrap_err().kind() == multiproc_ipc_pipe::ErrorKind::InvalidInput);
/// # Ok::<(), multiproc_ipc_pipe::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Address {
    /// A Unix socket file.
    Unix(PathBuf),
    /// A Linux abstract Unix socket name (no file; Python's `"\0name"`).
    Abstract(Vec<u8>),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::Abstract(n) => write!(f, "@{}", String::from_utf8_lossy(n)),
            Address::Tcp(a) => write!(f, "{a}"),
        }
    }
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(s: &str) -> Result<Address> {
        let bad = |why: &str| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{s:?} is not an address ({why}): use unix:PATH, a path with a '/', \
                     @abstract-name, IP:PORT or HOST:PORT"
                ),
            )
        };
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(bad("an empty path"));
            }
            return Ok(Address::Unix(PathBuf::from(p)));
        }
        if let Some(n) = s.strip_prefix('@').or_else(|| s.strip_prefix('\0')) {
            if n.is_empty() {
                return Err(bad("an empty abstract name"));
            }
            return Ok(Address::Abstract(n.as_bytes().to_vec()));
        }
        if s.contains('/') {
            return Ok(Address::Unix(PathBuf::from(s)));
        }
        let hp = s.strip_prefix("tcp:").unwrap_or(s);
        if let Ok(a) = hp.parse::<SocketAddr>() {
            return Ok(Address::Tcp(a));
        }
        let Some((host, port)) = hp.rsplit_once(':') else {
            return Err(bad(if s.is_empty() { "empty" } else { "no ':PORT' and no '/'" }));
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad("HOST:PORT needs a host and a port number"));
        }
        match std::net::ToSocketAddrs::to_socket_addrs(hp).map(|mut it| it.next()) {
            Ok(Some(a)) => Ok(Address::Tcp(a)),
            Ok(None) => Err(bad("the host has no address")),
            Err(e) => Err(Error::with_source(
                ErrorKind::InvalidInput,
                format!("{s:?}: the host does not resolve"),
                e,
            )),
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Address {
        Address::Tcp(a)
    }
}

impl From<PathBuf> for Address {
    fn from(p: PathBuf) -> Address {
        Address::Unix(p)
    }
}

impl From<&Path> for Address {
    fn from(p: &Path) -> Address {
        Address::Unix(p.to_path_buf())
    }
}

enum Sock {
    /// A `SOCK_SEQPACKET` Unix socket (path or abstract name), non-blocking.
    Unix(OwnedFd),
    Tcp(TcpListener),
}

impl Sock {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Sock::Unix(l) => l.as_fd(),
            Sock::Tcp(l) => l.as_fd(),
        }
    }

    /// Accepts one waiting client (the listener is non-blocking): `(socket, is_tcp)`.
    fn accept(&self) -> std::io::Result<(OwnedFd, bool)> {
        match self {
            Sock::Unix(l) => sys::accept(l.as_fd()).map(|s| (s, false)),
            Sock::Tcp(l) => l.accept().map(|(s, _)| {
                let _ = s.set_nodelay(true);
                (OwnedFd::from(s), true)
            }),
        }
    }
}

fn unix_listen(addr: sys::UnixAddr<'_>, what: &Address) -> Result<OwnedFd> {
    let fd = sys::seqpacket_socket(true).map_err(|e| Error::io(e, "socket"))?;
    sys::bind_listen(fd.as_fd(), addr).map_err(|e| Error::io(e, format!("binding {what}")))?;
    Ok(fd)
}

/// Configures a [`Listener`]: authkey, handshake timeout, message limit.
///
/// ```
/// use multiproc_ipc_pipe::Listener;
/// use std::time::Duration;
/// let l = Listener::builder()
///     .authkey(b"secret")
///     .handshake_timeout(Duration::from_secs(2))
///     .bind_private()
///     .unwrap();
/// println!("listening on {}", l.address());
/// ```
#[derive(Clone)]
pub struct ListenerBuilder {
    authkey: Option<AuthKey>,
    handshake_timeout: Duration,
    max_message_size: usize,
}

impl fmt::Debug for ListenerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerBuilder")
            .field("authkey", &self.authkey.as_ref().map(|_| "<redacted>"))
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_message_size", &self.max_message_size)
            .finish()
    }
}

impl Default for ListenerBuilder {
    fn default() -> Self {
        ListenerBuilder {
            authkey: None,
            handshake_timeout: DEFAULT_LISTENER_HANDSHAKE_TIMEOUT,
            max_message_size: crate::frame::DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

impl ListenerBuilder {
    multiproc_arena::setters! {
        /// Requires clients to prove they hold `key` (any length, empty included): an
        /// [`AuthKey`], or bytes in any form it is made from (`b"secret"`, `&[u8]`,
        /// `Vec<u8>`, `&str`).
        fn authkey(mut self, key: impl Into<AuthKey>) { self.authkey = Some(key.into()) }

        /// How long a client has to complete the handshake (default 2 s); a client still
        /// silent then is dropped.
        fn handshake_timeout(mut self, timeout: Duration) { self.handshake_timeout = timeout }

        /// The [`max_message_size`](Connection::set_max_message_size) of accepted connections.
        fn max_message_size(mut self, bytes: usize) { self.max_message_size = bytes }
    }

    /// Listens on `address`. A Unix socket file is created with mode 0600 and removed when
    /// the listener is dropped; an address in use is an error.
    pub fn bind(self, address: impl Into<Address>) -> Result<Listener> {
        let address = address.into();
        let (sock, address, path) = match &address {
            Address::Unix(p) => {
                let l = unix_listen(sys::UnixAddr::Path(p), &address)?;
                if let Err(e) = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
                {
                    let _ = std::fs::remove_file(p);
                    return Err(Error::io(e, "chmod 0600 of the socket"));
                }
                (Sock::Unix(l), address.clone(), Some(p.clone()))
            }
            Address::Abstract(n) => {
                let l = unix_listen(sys::UnixAddr::Abstract(n), &address)?;
                (Sock::Unix(l), address.clone(), None)
            }
            Address::Tcp(a) => {
                let l = TcpListener::bind(a).map_err(|e| Error::io(e, format!("binding {a}")))?;
                let real = l.local_addr().map_err(|e| Error::io(e, "local_addr"))?;
                (Sock::Tcp(l), Address::Tcp(real), None)
            }
        };
        self.finish(sock, address, path, None)
    }

    /// Listens on a Unix socket in a new private directory (mode 0700, under
    /// `$XDG_RUNTIME_DIR` or the temporary directory); both are removed on drop. Python's
    /// `Listener()` default address.
    pub fn bind_private(self) -> Result<Listener> {
        let base = private_base();
        let mut tries = 0;
        let dir = loop {
            let mut r = [0u8; 8];
            multiproc_arena::os::random_bytes(&mut r).map_err(|e| Error::io(e, "getrandom"))?;
            let me = multiproc_arena::Identity::current().bits();
            let name = format!("multiproc-{me:016x}-{:016x}", u64::from_le_bytes(r));
            let dir = base.join(name);
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => break dir,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 8 => tries += 1,
                Err(e) => return Err(Error::io(e, format!("creating {}", dir.display()))),
            }
        };
        let path = dir.join("listener.sock");
        let address = Address::Unix(path.clone());
        let l = match unix_listen(sys::UnixAddr::Path(&path), &address) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                return Err(e);
            }
        };
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        self.finish(Sock::Unix(l), address, Some(path), Some(dir))
    }

    fn finish(
        self,
        sock: Sock,
        address: Address,
        path: Option<PathBuf>,
        dir: Option<PathBuf>,
    ) -> Result<Listener> {
        let cleanup = Cleanup { path, dir, pid: std::process::id() };
        if let Sock::Tcp(l) = &sock {
            l.set_nonblocking(true).map_err(|e| Error::io(e, "set_nonblocking"))?;
            // std listens with a backlog of 128: a flood of connections fills it and honest
            // clients' SYNs are dropped (a retransmit costs them a second). Take the system's
            // most.
            sys::listen(l.as_fd()).map_err(|e| Error::io(e, "listen"))?;
        }
        let epoll = sys::epoll_create().map_err(|e| Error::io(e, "epoll_create"))?;
        sys::epoll_add(epoll.as_fd(), sock.fd(), LISTEN_TOKEN)
            .map_err(|e| Error::io(e, "epoll_ctl"))?;
        Ok(Listener {
            sock,
            address,
            authkey: self.authkey,
            handshake_timeout: self.handshake_timeout,
            max_message_size: self.max_message_size,
            epoll,
            pending: Mutex::new(Pending { list: Vec::new(), listening: true }),
            _cleanup: cleanup,
        })
    }
}

/// Where private listener directories go: `$XDG_RUNTIME_DIR`, else the temporary directory.
fn private_base() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir)
}

/// Removes the private directories (and socket files) that listeners of processes now dead
/// left behind — a process killed by a signal cannot remove its own. Returns how many were
/// removed. A directory is named after its maker's arena
/// [`Identity`](multiproc_arena::Identity) (`multiproc-<identity>-<random>`, both 16 hex
/// digits) and removed only when the kernel proved that process dead (see
/// [`multiproc_arena::liveness`]): a live listener in another PID namespace, or one whose
/// death cannot be proved from here, keeps its directory. Anything else is left alone.
pub fn cleanup_orphan_listeners() -> Result<usize> {
    let base = private_base();
    let rd = std::fs::read_dir(&base)
        .map_err(|e| Error::io(e, format!("reading {}", base.display())))?;
    let mut removed = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("multiproc-")) else {
            continue;
        };
        let Some((who, hex)) = rest.split_once('-') else { continue };
        let hex16 = |h: &str| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex16(who) || !hex16(hex) {
            continue;
        }
        let maker =
            u64::from_str_radix(who, 16).ok().and_then(multiproc_arena::Identity::from_bits);
        if !maker.is_some_and(|m| m.is_dead()) || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = e.path();
        let sock = dir.join("listener.sock");
        let _ = std::fs::remove_file(&sock);
        if std::fs::remove_dir(&dir).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// The handshakes in progress, and whether the listening socket is in the epoll set (it is
/// taken out while every slot is busy, so a full listener sleeps instead of spinning on a
/// backlog it cannot take).
struct Pending {
    list: Vec<Handshake>,
    listening: bool,
}

/// Removes the socket file (and private directory) of a listener, in the process that made
/// them only (a forked child dropping its copy leaves them).
struct Cleanup {
    path: Option<PathBuf>,
    dir: Option<PathBuf>,
    pid: u32,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            return;
        }
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Accepts [`Connection`]s from [`Client`]s (Python's `multiprocessing.connection.Listener`).
///
/// Its descriptor ([`AsFd`]) is readable whenever [`accept`](Self::accept) has progress to
/// make — a new client, or a handshake step — so a listener can sit in [`wait`](crate::wait)
/// or an event loop beside connections.
///
/// ```
/// use multiproc_ipc_pipe::{AuthKey, Client, Listener};
/// let l = Listener::builder().authkey(b"k").bind("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap()).unwrap();
/// let addr = l.address().clone();
/// let t = std::thread::spawn(move || {
///     let c = Client::connect(&addr, Some(&AuthKey::from(b"k"))).unwrap();
///     c.send(&1729u32).unwrap();
/// });
/// let d = l.accept().unwrap();
/// assert_eq!(d.recv::<u32>().unwrap(), 1729);
/// t.join().unwrap();
/// ```
pub struct Listener {
    sock: Sock,
    address: Address,
    authkey: Option<AuthKey>,
    handshake_timeout: Duration,
    max_message_size: usize,
    epoll: OwnedFd,
    pending: Mutex<Pending>,
    _cleanup: Cleanup,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("address", &self.address)
            .field("authkey", &self.authkey.as_ref().map(|_| "<redacted>"))
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

impl Listener {
    /// A builder for the options (authkey, handshake timeout, message limit).
    pub fn builder() -> ListenerBuilder {
        ListenerBuilder::default()
    }

    /// Listens on `address`, requiring `authkey` from clients if given (Python's
    /// `Listener(address, authkey=...)`; [`builder`](Self::builder) for the other options).
    pub fn bind(address: impl Into<Address>, authkey: Option<&AuthKey>) -> Result<Listener> {
        let mut b = Listener::builder();
        b.authkey = authkey.cloned();
        b.bind(address)
    }

    /// The address clients connect to (for TCP port 0, the port chosen).
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Waits for a client and completes its handshake. A client with the wrong key is an
    /// [`ErrorKind::Authentication`] error (it gets one too) and the listener keeps serving;
    /// clients that leave or stay silent past the handshake timeout are dropped quietly.
    pub fn accept(&self) -> Result<Connection> {
        self.accept_deadline(None)
    }

    /// [`accept`](Self::accept) that gives up after `timeout` with [`ErrorKind::Timeout`];
    /// handshakes in progress carry on at the next call.
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Connection> {
        self.accept_deadline(Some(Instant::now() + timeout))
    }

    fn accept_deadline(&self, deadline: Option<Instant>) -> Result<Connection> {
        let mut guard = lock(&self.pending);
        let Pending { list: pending, listening } = &mut *guard;
        let mut ready: Vec<u64> = Vec::new();
        let mut check_all = true;
        loop {
            // New clients; when every slot is taken, the oldest handshake makes room (see
            // MAX_PENDING), so a flood of silent sockets cannot keep new clients waiting.
            loop {
                if pending.len() >= MAX_PENDING {
                    let oldest = (0..pending.len()).min_by_key(|&i| pending[i].deadline);
                    match oldest {
                        Some(i)
                            if pending[i].deadline
                                <= Instant::now() + self.handshake_timeout - MIN_HANDSHAKE_AGE =>
                        {
                            let h = pending.swap_remove(i);
                            let _ = sys::epoll_del(self.epoll.as_fd(), h.sock.as_fd());
                        }
                        _ => break,
                    }
                }
                let (sock, tcp) = match self.sock.accept() {
                    Ok(s) => s,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::Interrupted
                        ) =>
                    {
                        continue
                    }
                    Err(e) => return Err(Error::io(e, "accept")),
                };
                if self.authkey.is_none() {
                    let c = Connection::from_parts(sock, true, true, tcp);
                    c.set_max_message_size(self.max_message_size);
                    return Ok(c);
                }
                let n = nonce()?;
                if hs_send(sock.as_fd(), &hs_message(T_CHALLENGE, &n), true).is_err() {
                    continue;
                }
                sys::epoll_add(self.epoll.as_fd(), sock.as_fd(), sock.as_raw_fd() as u64)
                    .map_err(|e| Error::io(e, "epoll_ctl"))?;
                pending.push(Handshake {
                    sock,
                    tcp,
                    deadline: Instant::now() + self.handshake_timeout,
                    nonce: n,
                    buf: [0; HS_HEADER + 255],
                    filled: 0,
                });
            }
            // Handshake steps.
            if let Some(key) = &self.authkey {
                let mut i = 0;
                while i < pending.len() {
                    let fd = pending[i].sock.as_raw_fd() as u64;
                    let step = if check_all || ready.contains(&fd) {
                        pending[i].step(key.as_bytes())
                    } else {
                        Step::Wait
                    };
                    let step = match step {
                        Step::Wait if pending[i].deadline <= Instant::now() => Step::Fail(None),
                        s => s,
                    };
                    match step {
                        Step::Wait => i += 1,
                        Step::Done => {
                            let h = pending.swap_remove(i);
                            let _ = sys::epoll_del(self.epoll.as_fd(), h.sock.as_fd());
                            let c = Connection::from_parts(h.sock, true, true, h.tcp);
                            c.set_max_message_size(self.max_message_size);
                            return Ok(c);
                        }
                        Step::Fail(e) => {
                            let h = pending.swap_remove(i);
                            let _ = sys::epoll_del(self.epoll.as_fd(), h.sock.as_fd());
                            if let Some(e) = e {
                                return Err(e);
                            }
                        }
                    }
                }
            }
            check_all = false;
            // Sleep until something happens, a handshake expires, or the deadline.
            let now = Instant::now();
            let mut until = deadline;
            if let Some(first) = pending.iter().map(|h| h.deadline).min() {
                until = Some(until.map_or(first, |d| d.min(first)));
            }
            if let Some(d) = deadline {
                if now >= d {
                    return Err(Error::new(ErrorKind::Timeout, "no client connected in time"));
                }
            }
            let full = pending.len() >= MAX_PENDING;
            if full == *listening {
                let r = if full {
                    sys::epoll_del(self.epoll.as_fd(), self.sock.fd())
                } else {
                    sys::epoll_add(self.epoll.as_fd(), self.sock.fd(), LISTEN_TOKEN)
                };
                r.map_err(|e| Error::io(e, "epoll_ctl"))?;
                *listening = !full;
            }
            ready.clear();
            match sys::epoll_wait(
                self.epoll.as_fd(),
                until.map(|u| u.saturating_duration_since(now)),
                &mut ready,
            ) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(e, "epoll_wait")),
            }
        }
    }
}

crate::impl_as_fd!(Listener, epoll);

impl crate::Waitable for Listener {}

/// Connects to a [`Listener`] (Python's `multiprocessing.connection.Client`).
#[derive(Debug)]
pub struct Client {
    _private: (),
}

impl Client {
    /// Connects to `address`, proving `authkey` if given (it must match the listener's), and
    /// waiting at most [`DEFAULT_HANDSHAKE_TIMEOUT`] for the listener's side of the handshake.
    pub fn connect(address: &Address, authkey: Option<&AuthKey>) -> Result<Connection> {
        Client::connect_timeout(address, authkey, DEFAULT_HANDSHAKE_TIMEOUT)
    }

    /// [`connect`](Self::connect) with a limit on the TCP connect and the handshake.
    pub fn connect_timeout(
        address: &Address,
        authkey: Option<&AuthKey>,
        timeout: Duration,
    ) -> Result<Connection> {
        let deadline = Instant::now() + timeout;
        let what = || format!("connecting to {address}");
        let (sock, tcp) = match address {
            Address::Unix(p) => {
                (unix_connect(sys::UnixAddr::Path(p)).map_err(|e| Error::io(e, what()))?, false)
            }
            Address::Abstract(n) => {
                (unix_connect(sys::UnixAddr::Abstract(n)).map_err(|e| Error::io(e, what()))?, false)
            }
            Address::Tcp(a) => {
                let s = TcpStream::connect_timeout(a, timeout).map_err(|e| Error::io(e, what()))?;
                let _ = s.set_nodelay(true);
                (OwnedFd::from(s), true)
            }
        };
        if let Some(key) = authkey {
            client_handshake(sock.as_fd(), !tcp, key.as_bytes(), deadline)?;
        }
        Ok(Connection::from_parts(sock, true, true, tcp))
    }
}

fn unix_connect(addr: sys::UnixAddr<'_>) -> std::io::Result<OwnedFd> {
    let fd = sys::seqpacket_socket(false)?;
    sys::connect(fd.as_fd(), addr)?;
    Ok(fd)
}
