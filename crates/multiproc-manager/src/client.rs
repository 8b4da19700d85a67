//! The client side of a connection to a manager: one session per process, a pool of
//! connections so that threads calling at once (or one blocked in a lock acquire) do not wait
//! for each other.

use crate::authkey::AuthKey;
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::*;
use crate::server::wait::lock;
use crate::spin::{self, Adaptive};
use crate::transport::{self, pipe_error, Connection, PipeClient};
use crate::Address;
use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Idle connections kept per client; more are closed when returned.
const MAX_IDLE: usize = 16;

/// Connection settings of a client.
#[derive(Debug, Clone)]
pub(crate) struct ClientConfig {
    pub max_frame: usize,
    pub handshake_timeout: Duration,
    /// Poll this long for an answer before sleeping in the kernel (adaptive: see `spin`).
    pub spin: Option<Duration>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            max_frame: DEFAULT_MAX_FRAME,
            handshake_timeout: Duration::from_secs(10),
            spin: crate::spin::DEFAULT_SPIN,
        }
    }
}

/// A session with one manager server, for the process that opened it.
pub(crate) struct Client {
    pub(crate) address: Address,
    pub(crate) authkey: AuthKey,
    pub(crate) pid: u32,
    pub(crate) session: u64,
    pub(crate) server_id: u64,
    pub(crate) server_pid: u32,
    cfg: ClientConfig,
    idle: Mutex<Vec<Connection>>,
    spin: Adaptive,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        multiproc_arena::debug_fields!(f, self, "Client" { address, pid, server_pid } ..)
    }
}

/// This process's sessions (fork-safe: see [`multiproc_arena::fork::WeakMap`]).
static REGISTRY: multiproc_arena::fork::WeakMap<Client> = multiproc_arena::fork::WeakMap::new();

thread_local! {
    static FRAME: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static THREAD_TOKEN: u64 = next_token();
}

fn next_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Identifies the calling thread within its process (the owner of an RLock).
pub(crate) fn thread_token() -> u64 {
    THREAD_TOKEN.with(|t| *t)
}

impl Client {
    /// Dials, authenticates and says hello; joins `session` if given.
    fn dial(
        address: &Address,
        authkey: &AuthKey,
        cfg: &ClientConfig,
        join: Option<u64>,
    ) -> Result<(Connection, u64, u64, u32)> {
        let what = format!("connecting to the manager at {address}");
        let conn = PipeClient::connect_timeout(address, Some(authkey), cfg.handshake_timeout)
            .map_err(|e| pipe_error(e, &what))?;
        conn.set_max_message_size(cfg.max_frame.saturating_add(1)); // the answer's hint byte
        let hello =
            Hello { magic: MAGIC, version: PROTOCOL_VERSION, join, pid: std::process::id() };
        let mut buf = Vec::new();
        transport::encode(&hello, &mut buf, cfg.max_frame)?;
        conn.send_bytes(&buf).map_err(|e| pipe_error(e, &what))?;
        let buf =
            conn.recv_bytes_timeout(cfg.handshake_timeout).map_err(|e| pipe_error(e, &what))?;
        match postcard::from_bytes::<Welcome>(&buf) {
            Ok(Welcome::Ok { session, server_id, server_pid, .. }) => {
                Ok((conn, session, server_id, server_pid))
            }
            Ok(Welcome::Refused { reason, .. }) => Err(Error::new(ErrorKind::Protocol, reason)),
            Err(e) => Err(Error::new(ErrorKind::Protocol, format!("bad welcome: {e}"))),
        }
    }

    /// Opens a new session.
    pub(crate) fn open(
        address: &Address,
        authkey: &AuthKey,
        cfg: ClientConfig,
    ) -> Result<Arc<Client>> {
        let (conn, session, server_id, server_pid) = Self::dial(address, authkey, &cfg, None)?;
        let c = Arc::new(Client {
            address: address.clone(),
            authkey: authkey.clone(),
            pid: std::process::id(),
            session,
            server_id,
            server_pid,
            cfg,
            idle: Mutex::new(vec![conn]),
            spin: Adaptive::default(),
        });
        REGISTRY.insert(0, &c);
        Ok(c)
    }

    /// This process's session with the manager at `address`, opening one if needed.
    pub(crate) fn for_process(address: &Address, authkey: &AuthKey) -> Result<Arc<Client>> {
        let pid = std::process::id();
        {
            let live = REGISTRY.live();
            if let Some(c) = live
                .into_iter()
                .find(|c| c.pid == pid && &c.address == address && &c.authkey == authkey)
            {
                return Ok(c);
            }
        }
        Client::open(address, authkey, ClientConfig::default())
    }

    /// This process's session with the server `server_id`, if one is open.
    pub(crate) fn find_by_server(server_id: u64) -> Option<Arc<Client>> {
        let pid = std::process::id();
        REGISTRY.live().into_iter().find(|c| c.pid == pid && c.server_id == server_id)
    }

    pub(crate) fn max_frame(&self) -> usize {
        self.cfg.max_frame
    }

    fn take_conn(&self) -> Result<Connection> {
        if let Some(c) = lock(&self.idle).pop() {
            return Ok(c);
        }
        let (conn, ..) = Self::dial(&self.address, &self.authkey, &self.cfg, Some(self.session))?;
        Ok(conn)
    }

    fn put_back(&self, conn: Connection) {
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// Sends one request and waits for its answer.
    pub(crate) fn call(&self, req: &Request) -> Result<Reply> {
        if self.pid != std::process::id() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a manager session cannot be used from a forked child (use the proxies: they reconnect)",
            ));
        }
        self.call_here(req)
    }

    /// [`call`](Self::call) for a caller that checked it runs in this client's process.
    pub(crate) fn call_here(&self, req: &Request) -> Result<Reply> {
        let mut buf = FRAME.with(|b| std::mem::take(&mut *b.borrow_mut()));
        let r = self.call_with(req, &mut buf);
        if buf.capacity() <= 1 << 20 {
            FRAME.with(|b| *b.borrow_mut() = buf);
        }
        r
    }

    fn call_with(&self, req: &Request, buf: &mut Vec<u8>) -> Result<Reply> {
        transport::encode(req, buf, self.cfg.max_frame)?;
        let conn = self.take_conn()?;
        let answer = conn.send_bytes(buf).and_then(|()| {
            let wait = spin::Timed::poll(&conn, self.cfg.spin, &self.spin);
            let a = conn.recv_bytes();
            if let Some(w) = wait {
                w.done();
            }
            a
        });
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                // The server is gone (or broke the protocol): the idle connections are too.
                lock(&self.idle).clear();
                let what = format!("manager at {}", self.address);
                let mut err = pipe_error(e, &what);
                if err.kind() == ErrorKind::Io {
                    err = Error::new(ErrorKind::Disconnected, err.to_string());
                }
                return Err(err);
            }
        };
        self.put_back(conn);
        let (resp, hint): (Response, _) = postcard::take_from_bytes(&answer)
            .map_err(|e| Error::new(ErrorKind::Protocol, format!("bad response: {e}")))?;
        if hint == [spin::BUSY] {
            self.spin.server_busy();
        }
        resp.map_err(Error::from)
    }

    /// Tells the server this session ends cleanly (not a crash); sent by the last connection
    /// left, just before it closes.
    fn goodbye(&self) {
        if self.pid != std::process::id() {
            return;
        }
        let conn = lock(&self.idle).pop();
        if let Some(conn) = conn {
            let mut buf = Vec::new();
            if transport::encode(&Request::Goodbye, &mut buf, self.cfg.max_frame).is_ok()
                && conn.send_bytes(&buf).is_ok()
            {
                // Wait for the answer, so the goodbye is processed before the close is seen
                // on this session's other connections; bounded, the server may be gone.
                let _ = conn.recv_bytes_timeout(std::time::Duration::from_secs(1));
            }
        }
    }

    /// Drops references without waiting for anything but the answer; errors are ignored (a
    /// server that is gone has freed everything anyway).
    pub(crate) fn decref(&self, ids: Vec<Id>) {
        if !ids.is_empty() && self.pid == std::process::id() {
            let _ = self.call(&Request::Decref(ids));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.goodbye();
    }
}
