//! Test scaffolding: private redis-server instances, worker "hosts" (this test binary
//! re-run as a worker), and a watchdog so no test hangs.
#![allow(dead_code, unreachable_pub)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const AUTHKEY: &str = "cluster test key";

/// Cluster tests run one at a time (each starts a Redis and several hosts; two cores).
pub fn serial() -> MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    M.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` on a thread, one such test at a time ([`serial`]), and fails the test if it
/// takes longer than `secs`.
pub fn bounded<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let _g = serial();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => {
            h.join().unwrap();
            v
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!(),
        },
        Err(_) => panic!("the test did not finish within {secs} s (a hang)"),
    }
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "mpcluster-{tag}-{}-{:x}",
            std::process::id(),
            multiproc_arena::random_u64()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn find_redis_server() -> Option<PathBuf> {
    for d in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(d).join("redis-server");
        if p.is_file() {
            return Some(p);
        }
    }
    ["/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// The redis-server binary. On a fresh machine without it, the tests install it (once, with
/// the system's package manager, when they may: root and apt-get), so that the README's test
/// command passes there too; otherwise they fail, never skip.
fn redis_server() -> PathBuf {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    if let Some(p) = find_redis_server() {
        return p;
    }
    INSTALL.call_once(|| {
        eprintln!(
            "redis-server is missing: installing it with apt-get (the cluster tests need it)"
        );
        let quiet = |args: &[&str]| {
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !(quiet(&["install", "-y", "redis-server"])
            || (quiet(&["update"]) && quiet(&["install", "-y", "redis-server"])))
        {
            eprintln!("installing redis-server failed");
        }
    });
    find_redis_server().unwrap_or_else(|| {
        panic!(
            "redis-server is not installed and could not be installed here: the cluster tests \
             need it (Redis >= 6.2). Install it with `apt-get install -y redis-server` \
             (.ci/run does this)"
        )
    })
}

/// A private redis-server on a Unix socket in a temp dir (or on a loopback port).
pub struct Redis {
    pub dir: TempDir,
    child: Option<Child>,
    args: Vec<String>,
    pub url: String,
    pub socket: PathBuf,
}

/// A loopback TCP port free a moment ago.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Redis {
    /// On a Unix socket; `aof`: appendonly with fsync at every write.
    pub fn unix(aof: bool) -> Redis {
        let dir = TempDir::new("redis");
        let socket = dir.0.join("redis.sock");
        let mut args: Vec<String> = vec![
            "--port".into(),
            "0".into(),
            "--unixsocket".into(),
            socket.display().to_string(),
            "--unixsocketperm".into(),
            "700".into(),
            "--daemonize".into(),
            "no".into(),
        ];
        if aof {
            args.extend(["--appendonly", "yes", "--appendfsync", "always"].map(String::from));
        }
        let url = format!("redis+unix://{}", socket.display());
        Redis::launch(dir, args, url, socket)
    }

    /// On a random loopback port, with an ACL user `alice` (password `wonderland`) and the
    /// default user off; the URL carries the credentials.
    pub fn tcp_acl() -> Redis {
        let dir = TempDir::new("redis-tcp");
        let port = free_port();
        let args: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--user".into(),
            "alice".into(),
            "on".into(),
            ">wonderland".into(),
            "~*".into(),
            "&*".into(),
            "+@all".into(),
            "--user".into(),
            "default".into(),
            "off".into(),
        ];
        let url = format!("redis://alice:wonderland@127.0.0.1:{port}/");
        Redis::launch(dir, args, url, PathBuf::new())
    }

    /// TLS only (a test certificate valid until 2126), on a random loopback port, with the self-signed test certificate in
    /// `tests/tls/` (the URL skips verification: `#insecure`).
    pub fn tls() -> Redis {
        let dir = TempDir::new("redis-tls");
        let port = free_port();
        let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls");
        let cert = certs.join("cert.pem").display().to_string();
        let key = certs.join("key.pem").display().to_string();
        let args: Vec<String> = vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--tls-cert-file".into(),
            cert.clone(),
            "--tls-key-file".into(),
            key,
            "--tls-ca-cert-file".into(),
            cert,
            "--tls-auth-clients".into(),
            "no".into(),
        ];
        let url = format!("rediss://127.0.0.1:{port}/#insecure");
        Redis::launch(dir, args, url, PathBuf::new())
    }

    /// Starts redis-server with `args` (where and how it listens) and what every test server
    /// shares: its data and its log in `dir`, no snapshots.
    fn launch(dir: TempDir, mut args: Vec<String>, url: String, socket: PathBuf) -> Redis {
        let log = dir.0.join("redis.log").display().to_string();
        args.extend(["--dir".into(), dir.0.display().to_string(), "--save".into(), "".into()]);
        args.extend(["--logfile".into(), log]);
        let mut r = Redis { dir, child: None, args, url, socket };
        r.start();
        r
    }

    pub fn start(&mut self) {
        let child = Command::new(redis_server())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = redis::Client::open(self.url.as_str())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if r.is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                let log = std::fs::read_to_string(self.dir.0.join("redis.log")).unwrap_or_default();
                panic!("redis-server did not come up ({r:?}); its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn con(&self) -> redis::Connection {
        let c = redis::Client::open(self.url.as_str()).unwrap();
        let con = c.get_connection_with_timeout(Duration::from_secs(2)).unwrap();
        con.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        con
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A worker "host": this test binary re-run with MULTIPROC_CLUSTER_WORKER, in its own
/// process group (so killing the host kills its local pool too).
pub struct Host {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Host {
    pub fn start(redis: &Redis, ns: &str, name: &str, processes: usize) -> Host {
        Host::start_with_key(redis, ns, name, processes, AUTHKEY)
    }

    pub fn start_with_key(
        redis: &Redis,
        ns: &str,
        name: &str,
        processes: usize,
        key: &str,
    ) -> Host {
        let log = redis.dir.0.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "worker_host_entry", "--nocapture", "--test-threads=1"])
            .env("MULTIPROC_CLUSTER_WORKER", &redis.url)
            .env("MULTIPROC_CLUSTER_AUTHKEY", key)
            .env("MULTIPROC_CLUSTER_NAME", name)
            .env("MULTIPROC_CLUSTER_NAMESPACE", ns)
            .env("MULTIPROC_CLUSTER_PROCESSES", processes.to_string())
            .env("MULTIPROC_CLUSTER_HEARTBEAT_MS", "600")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("cannot start a worker host");
        Host { name: name.into(), child: Some(child), log }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// SIGKILL to the host and its pool (the whole process group).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pgid = c.id() as i32;
            kill_group(pgid);
            let _ = c.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn kill_group(pgid: i32) {
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `n` hosts of namespace `ns` are ready (their first heartbeat is written
/// once their local pool runs).
pub fn hosts_ready(redis: &Redis, ns: &str, n: usize) {
    let mut con = redis.con();
    eventually(30, "the worker hosts to be ready", || {
        keys(&mut con, ns).iter().filter(|k| k.starts_with(&format!("{ns}:worker:"))).count() >= n
    });
}

/// Waits up to `secs` for `cond`.
pub fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The keys of namespace `ns`.
pub fn keys(con: &mut redis::Connection, ns: &str) -> Vec<String> {
    let mut v: Vec<String> = redis::cmd("KEYS").arg(format!("{ns}:*")).query(con).unwrap();
    v.sort();
    v
}
