//! The connections: accepting, the handshake, the request loop, stopping.

use super::wait::lock;
#[cfg(test)]
use super::wait::NeverGone;
use super::{fault, Cx, Shared};
use crate::error::{ErrorKind, Result};
use crate::protocol::*;
use crate::spin;
use crate::transport::{self, pipe_error, Connection, Listener};
use crate::Address;
use multiproc_arena::futex::{self, Deadline, Wake};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Most connections served at once; more are closed at once.
const MAX_CONNECTIONS: u32 = 4096;

/// Longest an unauthenticated connection may take to prove its key.
const PRE_AUTH_LIMIT: Duration = Duration::from_secs(2);
/// How often the accept loops look at the shutdown flag.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

impl Shared {
    /// Stops serving: no new connections, every open one is shut down.
    pub(crate) fn stop(&self) {
        if self.shutdown.swap(1, Ordering::AcqRel) != 0 {
            return;
        }
        futex::wake_all(&self.shutdown);
        for c in lock(&self.conns).values() {
            let _ = c.shutdown();
        }
    }

    /// Serves one accepted (authenticated) connection until it closes.
    pub(crate) fn serve_conn(self: &Arc<Self>, conn: Connection) {
        let conn = Arc::new(conn);
        conn.set_max_message_size(self.cfg.max_frame);
        let Ok(buf) = conn.recv_bytes_timeout(self.cfg.handshake_timeout) else { return };
        let refuse = |reason: String| {
            let w = Welcome::Refused { version: PROTOCOL_VERSION, reason };
            if let Ok(b) = postcard::to_allocvec(&w) {
                let _ = conn.send_bytes(&b);
            }
        };
        let hello: Hello = match postcard::from_bytes(&buf) {
            Ok(h) => h,
            Err(_) => return refuse("malformed hello".into()),
        };
        if hello.magic != MAGIC || hello.version != PROTOCOL_VERSION {
            return refuse(format!(
                "protocol version {} is not this server's {PROTOCOL_VERSION}",
                hello.version
            ));
        }
        if self.is_shut_down() {
            return;
        }
        let Some(session) = self.session_open(hello.join) else {
            return refuse("unknown session".into());
        };
        let conn_id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        lock(&self.conns).insert(conn_id, conn.clone());
        let w = Welcome::Ok {
            version: PROTOCOL_VERSION,
            session,
            server_id: self.server_id,
            server_pid: std::process::id(),
        };
        let ok = postcard::to_allocvec(&w).map(|b| conn.send_bytes(&b).is_ok()).unwrap_or(false);
        if ok && !self.is_shut_down() {
            self.request_loop(&conn, session);
        }
        lock(&self.conns).remove(&conn_id);
        self.session_conn_closed(session);
    }

    fn request_loop(&self, conn: &Connection, session: u64) {
        let mut out = Vec::new();
        let max = self.cfg.max_frame;
        loop {
            spin::server_poll(conn, self.cfg.spin, &self.pollers);
            let Ok(buf) = conn.recv_bytes() else { return };
            let _awake = self.pollers.request(conn as *const Connection as u64);
            let req: Request = match postcard::from_bytes(&buf) {
                Ok(r) => r,
                Err(e) => {
                    // The frame is intact but is no request of ours: say so and close.
                    let resp: Response =
                        Err(fault(ErrorKind::Protocol, format!("bad request: {e}")));
                    if transport::encode(&resp, &mut out, max).is_ok() {
                        let _ = conn.send_bytes(&out);
                    }
                    return;
                }
            };
            drop(buf);
            let shutdown = matches!(req, Request::Shutdown);
            let resp = {
                // While a request blocks, a readable socket means the client closed it (or
                // broke the protocol by sending ahead): either way, abandon the request.
                let mut probe = || conn.poll(Duration::ZERO).unwrap_or(true);
                let mut cx = Cx { session, probe: &mut probe };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.handle(&mut cx, req)
                }));
                r.unwrap_or_else(|p| {
                    Err(fault(ErrorKind::Protocol, crate::service::panic_message(&*p)))
                })
            };
            if let Err(e) = transport::encode(&resp, &mut out, max) {
                let resp: Response = Err(fault(e.kind(), e.to_string()));
                if transport::encode(&resp, &mut out, max).is_err() {
                    return;
                }
            }
            out.push(if self.pollers.shared() { spin::BUSY } else { 0 });
            if conn.send_bytes(&out).is_err() {
                return;
            }
            if out.capacity() > 1 << 20 {
                out = Vec::new();
            }
            if shutdown {
                self.stop();
                return;
            }
        }
    }

    /// Accepts connections until shutdown, a thread per connection.
    pub(crate) fn accept_loop(self: &Arc<Self>, listener: &Listener) {
        while !self.is_shut_down() {
            let conn = match listener.accept_timeout(ACCEPT_POLL) {
                Ok(c) => c,
                Err(e) => {
                    use multiproc_ipc_pipe::ErrorKind as P;
                    if !matches!(e.kind(), P::Timeout | P::Authentication | P::Disconnected) {
                        // EMFILE and friends: back off instead of spinning.
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    continue;
                }
            };
            if self.is_shut_down() {
                return;
            }
            if self.active.load(Ordering::Acquire) >= MAX_CONNECTIONS {
                continue;
            }
            self.active.fetch_add(1, Ordering::AcqRel);
            let me = self.clone();
            let spawned = std::thread::Builder::new()
                .name("mpmgr-conn".into())
                .stack_size(1 << 20)
                .spawn(move || {
                    me.serve_conn(conn);
                    me.conn_thread_done();
                });
            if spawned.is_err() {
                self.conn_thread_done();
            }
        }
    }

    pub(super) fn conn_thread_done(&self) {
        if self.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            futex::wake_all(&self.active);
        }
    }

    /// Waits (bounded) for the connection threads to finish after a stop.
    pub(crate) fn wait_idle(&self, limit: Duration) {
        let deadline = futex::deadline_after(limit);
        loop {
            let n = self.active.load(Ordering::Acquire);
            if n == 0 || !futex::wait(&self.active, n, deadline) {
                return;
            }
        }
    }

    /// Sleeps until the server stops; every `poll` asks `alive()`, and stops the server
    /// when it answers `false` (the owner of a launched server died).
    pub(crate) fn wait_stop_unless(&self, poll: Duration, mut alive: impl FnMut() -> bool) {
        let mut never = Deadline::never();
        while !self.is_shut_down() {
            if futex::park(&self.shutdown, 0, &mut never, Some(poll)) == Wake::Poll && !alive() {
                self.stop();
            }
        }
    }

    /// Binds a listener on `address` (a Unix path or TCP), or in a new private directory.
    pub(crate) fn bind(&self, address: Option<&Address>) -> Result<Listener> {
        let b = Listener::builder()
            .authkey(self.cfg.authkey.as_bytes())
            // The server's pre-authentication deadline is short whatever the clients'
            // patience: an unauthenticated socket must not hold a slot for long.
            .handshake_timeout(self.cfg.handshake_timeout.min(PRE_AUTH_LIMIT))
            .max_message_size(self.cfg.max_frame);
        let what = match address {
            Some(a) => format!("binding {a}"),
            None => "binding a private Unix socket".to_string(),
        };
        let l = match address {
            Some(a) => b.bind(a.clone()),
            None => b.bind_private(),
        }
        .map_err(|e| pipe_error(e, &what))?;
        if let Address::Tcp(_) = l.address() {
            *lock(&self.tcp) = Some(l.address().clone());
        }
        Ok(l)
    }

    /// A request handled without a connection (tests of the dispatch).
    #[cfg(test)]
    pub(crate) fn handle_plain(&self, session: u64, req: Request) -> Response {
        self.handle(&mut Cx { session, probe: &mut NeverGone }, req)
    }
}
