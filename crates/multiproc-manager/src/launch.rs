//! Starting the server in a process of its own (`Manager::start`), with `multiproc-spawn`'s
//! default start method, and stopping it.
//!
//! The owner creates a private directory (mode 0700, named `multiproc-manager-<owner identity>-<hex>`)
//! for the socket, starts the server as a daemonic child (it dies with the owner, even if the
//! owner is SIGKILLed) and waits for its "ready" message on a pipe, which carries the bound
//! address (the real port for TCP `:0`) or why binding failed. The server also watches its
//! owner and shuts down cleanly when it is gone. Directories left by owners that were killed
//! are swept at the next start.

use crate::authkey::AuthKey;
use crate::client::Client;
use crate::error::{Error, ErrorKind, Result};
use crate::manager::{Manager, ManagerBuilder, Owned};
use crate::protocol::Request;
use crate::server::wait::lock;
use crate::server::Shared;
use crate::service::ServiceSet;
use crate::spin::DEFAULT_SPIN;
use crate::Address;
use multiproc_arena::ProcessId;
use multiproc_ipc_pipe::{Connection, Pipe};
use multiproc_spawn::{FnRef, JoinHandle, Process, FNREF_LEN};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DIR_PREFIX: &str = "multiproc-manager-";
/// How long a starting server may take to report ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an owner waits for the server to exit after asking it to.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the server checks that its owner is alive.
const OWNER_POLL: Duration = Duration::from_millis(100);

#[derive(Serialize, Deserialize)]
struct ServerArgs {
    authkey: AuthKey,
    address: Option<Address>,
    max_frame: u64,
    handshake_timeout_us: u64,
    spin_us: Option<u64>,
    names: Vec<String>,
    owner: (u32, u64),
    ready: Connection,
    initializer: Option<Vec<u8>>,
}

#[derive(Serialize, Deserialize)]
enum Ready {
    Listening(Address),
    Failed(String),
}

/// The server process's entry: bind, report, serve until shutdown or the owner's death.
fn server_main<S: ServiceSet>(args: ServerArgs) {
    // As Python's manager servers: a Ctrl-C to the process group is for the clients; the
    // server ends when its owner says so or is gone.
    multiproc_spawn::ignore_interrupts();
    if let Some(bytes) = &args.initializer {
        if let Err(why) = run_initializer(bytes) {
            let _ = args.ready.send(&Ready::Failed(why));
            return;
        }
    }
    let b = ManagerBuilder::<S> {
        authkey: Some(args.authkey.clone()),
        address: args.address.clone(),
        max_frame: args.max_frame as usize,
        handshake_timeout: Duration::from_micros(args.handshake_timeout_us),
        spin: Some(args.spin_us.map(Duration::from_micros)),
        names: args.names,
        initializer: None,
        _s: std::marker::PhantomData,
    };
    let shared = Shared::new(b.server_config(args.authkey));
    let listener = match shared.bind(b.address.as_ref()) {
        Ok(l) => l,
        Err(e) => {
            let _ = args.ready.send(&Ready::Failed(e.to_string()));
            return;
        }
    };
    if args.ready.send(&Ready::Listening(listener.address().clone())).is_err() {
        return;
    }
    drop(args.ready);
    let owner = ProcessId::from_parts(args.owner.0, args.owner.1);
    let watch = shared.clone();
    let _ = std::thread::Builder::new()
        .name("mpmgr-owner".into())
        .spawn(move || watch.wait_stop_unless(OWNER_POLL, || owner.is_alive()));
    shared.accept_loop(&listener);
    shared.stop();
    shared.wait_idle(Duration::from_secs(1));
    drop(listener);
    if let Some(Address::Unix(p)) = &b.address {
        if let Some(dir) = p.parent().filter(|d| is_our_dir(d)) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Runs the builder's initializer (a checked reference to `fn(())`); why it failed.
fn run_initializer(bytes: &[u8]) -> std::result::Result<(), String> {
    let b: [u8; FNREF_LEN] = bytes.try_into().map_err(|_| "garbled initializer".to_string())?;
    let f = FnRef::<(), ()>::from_bytes(b).resolve().map_err(|e| format!("initializer: {e}"))?;
    std::panic::catch_unwind(|| f(())).map_err(|p| {
        format!(
            "the initializer panicked: {}",
            multiproc_spawn::panic_payload_str(&*p).unwrap_or("(not a string)")
        )
    })
}

fn is_our_dir(d: &Path) -> bool {
    d.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(DIR_PREFIX))
}

fn base_dir() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir)
}

/// Removes socket directories left behind by owners that no longer run.
fn sweep_stale(base: &Path) {
    let Ok(rd) = std::fs::read_dir(base) else { return };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else { continue };
        let Some(owner) = rest
            .split('-')
            .next()
            .filter(|h| h.len() == 16)
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .and_then(multiproc_arena::Identity::from_bits)
        else {
            continue;
        };
        // Only on the kernel's proof that the owner ended (see multiproc_arena::liveness).
        if owner.is_dead() {
            let dir = e.path();
            let _ = std::fs::remove_file(dir.join("manager.sock"));
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

fn private_dir() -> Result<PathBuf> {
    let base = base_dir();
    sweep_stale(&base);
    for _ in 0..8 {
        let me = multiproc_arena::Identity::current().bits();
        let name = format!("{DIR_PREFIX}{me:016x}-{:016x}", multiproc_arena::random_u64());
        let dir = base.join(name);
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(e, format!("creating {}", dir.display()))),
        }
    }
    Err(Error::new(ErrorKind::Start, "could not create a private socket directory"))
}

/// The owner's hold on the server process.
struct ProcOwner {
    pid: u32,
    client: Arc<Client>,
    child: Mutex<Option<JoinHandle<()>>>,
    /// The server's exit code, once [`stop`](Self::stop) has reaped it.
    exit: Mutex<Option<i32>>,
    dir: Option<PathBuf>,
}

impl ProcOwner {
    fn stop(&self) -> Result<()> {
        let Some(mut child) = lock(&self.child).take() else { return Ok(()) };
        let _ = self.client.call(&Request::Shutdown);
        let mut res = Ok(());
        if child.join_timeout(STOP_TIMEOUT).is_err_and(|e| e.is_timeout()) {
            let _ = child.kill();
            if child.join_timeout(STOP_TIMEOUT).is_err_and(|e| e.is_timeout()) {
                res = Err(Error::new(ErrorKind::Io, "the manager server did not exit"));
            }
        }
        *lock(&self.exit) = child.exitcode();
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_file(d.join("manager.sock"));
            let _ = std::fs::remove_dir(d);
        }
        res
    }
}

impl Owned for ProcOwner {
    fn shutdown(&self, _client: &Client) -> Result<()> {
        if self.pid != std::process::id() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "only the process that started the manager can stop it this way",
            ));
        }
        self.stop()
    }

    fn exit_code(&self) -> Option<i32> {
        if self.pid != std::process::id() {
            return None;
        }
        match lock(&self.child).as_ref() {
            Some(child) => child.exitcode(),
            None => *lock(&self.exit),
        }
    }
}

impl Drop for ProcOwner {
    fn drop(&mut self) {
        // A forked child holding a copy of the owner must not stop the server.
        if self.pid == std::process::id() {
            let _ = self.stop();
        }
    }
}

impl<S: ServiceSet> ManagerBuilder<S> {
    /// Starts the server in a new process (with `multiproc-spawn`'s default start method, as a
    /// daemonic child) and connects to it. The server stops when the last clone of the
    /// returned handle is dropped, at [`Manager::shutdown`], or when this process dies (even
    /// by SIGKILL). Failing to bind (a TCP address in use, say) is an error of kind
    /// [`Start`](ErrorKind::Start) carrying the reason; so is calling this from a daemonic
    /// process, which may not start children.
    pub fn start(self) -> Result<Manager> {
        let initializer = match &self.initializer {
            None => None,
            Some(Ok(b)) => Some(b.clone()),
            Some(Err(why)) => {
                return Err(Error::new(ErrorKind::Start, format!("the initializer: {why}")));
            }
        };
        let authkey = self.authkey.clone().unwrap_or_else(crate::manager::process_authkey);
        let dir = match &self.address {
            None => Some(private_dir()?),
            Some(_) => None,
        };
        let address = match &dir {
            Some(d) => Some(Address::Unix(d.join("manager.sock"))),
            None => self.address.clone(),
        };
        let fail = |e: Error| {
            if let Some(d) = &dir {
                let _ = std::fs::remove_dir(d);
            }
            e
        };
        let (rx, tx) = Pipe::new()
            .map_err(|e| fail(Error::new(ErrorKind::Start, format!("ready pipe: {e}"))))?;
        let me = ProcessId::current();
        let args = ServerArgs {
            authkey: authkey.clone(),
            address,
            max_frame: self.max_frame as u64,
            handshake_timeout_us: self.handshake_timeout.as_micros() as u64,
            spin_us: self.spin.unwrap_or(DEFAULT_SPIN).map(|d| d.as_micros() as u64),
            names: self.names.clone(),
            owner: (me.pid(), me.identity_bits()),
            ready: tx,
            initializer,
        };
        let mut child = Process::builder()
            .name("multiproc-manager")
            .daemon(true)
            .target(server_main::<S>, args)
            .start()
            .map_err(|e| fail(Error::new(ErrorKind::Start, format!("starting the server: {e}"))))?;
        let ready = rx.recv_timeout::<Ready>(START_TIMEOUT);
        let kill = |child: &mut JoinHandle<()>| {
            let _ = child.kill();
            let _ = child.join_timeout(STOP_TIMEOUT);
        };
        let address = match ready {
            Ok(Ready::Listening(a)) => a,
            Ok(Ready::Failed(why)) => {
                kill(&mut child);
                return Err(fail(Error::new(ErrorKind::Start, why)));
            }
            Err(e) => {
                kill(&mut child);
                return Err(fail(Error::new(
                    ErrorKind::Start,
                    format!("the server did not report ready: {e}"),
                )));
            }
        };
        let client = match Client::open(&address, &authkey, self.client_config()) {
            Ok(c) => c,
            Err(e) => {
                kill(&mut child);
                return Err(fail(e));
            }
        };
        let owner = ProcOwner {
            pid: std::process::id(),
            client: client.clone(),
            child: Mutex::new(Some(child)),
            exit: Mutex::new(None),
            dir,
        };
        Ok(Manager { client, owner: Some(Arc::new(owner)) })
    }
}

impl Manager {
    /// Starts a manager server process with the default options (a private Unix socket, a
    /// random authkey) and connects to it; see [`ManagerBuilder::start`].
    pub fn start() -> Result<Manager> {
        Manager::builder().start()
    }
}
