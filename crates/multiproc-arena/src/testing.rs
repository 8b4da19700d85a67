//! Test support for the crates of multiproc: fork a closure into a child process, kill it,
//! wait for it with a timeout. Not part of the stable API (`multiproc-spawn` is the real
//! process API); lower crates use it in tests because they cannot depend on spawn.

use std::time::{Duration, Instant};

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// `_exit(code)`.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

/// A forked child; killed and reaped on drop if still running.
#[derive(Debug)]
pub struct Child {
    pid: u32,
    exit: Option<Exit>,
}

/// Forks; the child runs `f` and exits with its return value (101 if it panics), without
/// running destructors of the parent's objects (it gives back every shared-object reference
/// it holds first: [`fork::release_handles`](crate::fork::release_handles)). The parent drops
/// `f` as any value: the child's copies of its handles were counted at the fork.
pub fn fork(f: impl FnOnce() -> i32) -> Child {
    // SAFETY: test support; callers fork from tests whose other threads hold no locks the
    // child needs (the child only runs `f`, which the test controls, then `_exit`s).
    match unsafe { crate::sys::fork() }.expect("fork") {
        0 => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            // Give back the references the child inherited or took (it skips destructors).
            crate::fork::release_handles();
            crate::sys::exit_now(code)
        }
        pid => {
            // The child's copies of the captured handles were counted for it at the fork.
            drop(f);
            Child { pid, exit: None }
        }
    }
}

fn decode(status: i32) -> Exit {
    match crate::sys::decode_wait_status(status) {
        Ok(code) => Exit::Code(code),
        Err(sig) => Exit::Signal(sig),
    }
}

impl Child {
    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `SIGKILL`.
    pub fn kill(&self) {
        let _ = crate::sys::kill(self.pid, libc::SIGKILL);
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        let _ = crate::sys::kill(self.pid, sig);
    }

    /// Polls for the end of the child without blocking.
    pub fn try_wait(&mut self) -> Option<Exit> {
        if self.exit.is_none() {
            if let Ok(Some(st)) = crate::sys::try_wait(self.pid) {
                self.exit = Some(decode(st));
            }
        }
        self.exit
    }

    /// Waits up to `timeout` for the child to end.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Exit> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.try_wait() {
                return Some(e);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// Waits up to `timeout`; panics if the child is still running or did not exit 0.
    pub fn expect_success(mut self, timeout: Duration) {
        match self.wait_timeout(timeout) {
            Some(Exit::Code(0)) => {}
            other => panic!("child {} ended with {other:?} (None = still running)", self.pid),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            self.kill();
            let _ = self.wait_timeout(Duration::from_secs(5));
        }
    }
}

/// Whether a process with this pid runs now (not a zombie), from `/proc/<pid>/stat` in the
/// caller's own PID namespace. Test bookkeeping for a test's own children only: the library
/// never judges liveness by pid (see [`liveness`](crate::liveness)).
pub fn pid_running(pid: u32) -> bool {
    let Ok(line) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let Some(close) = line.rfind(')') else { return false };
    !matches!(line.get(close + 2..close + 3), Some("Z" | "X") | None)
}

/// Where a test child runs: the setups in which a live process used to be taken for dead
/// (see [`liveness`](crate::liveness)). Every setup but [`Setup::Plain`] needs root (and
/// namespaces); [`setups_available`] says whether this process can build them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// As the test process.
    Plain,
    /// Every descriptor used up (`RLIMIT_NOFILE` lowered, then filled), after the child
    /// joined the liveness registry (as every child of a process that uses shared memory
    /// does at fork).
    NoDescriptors,
    /// A private mount namespace without `/proc`.
    NoProc,
    /// A private mount namespace whose `/proc` is mounted with `hidepid=2`, running as user
    /// and group 65534 (nobody): the test process is invisible there.
    HiddenProcOtherUser,
    /// Process 1 of a new PID namespace with its own `/proc` (the pids it sees are not the
    /// test's). Killing the returned child kills it too.
    OwnPidNamespace,
}

/// All the setups.
pub const SETUPS: [Setup; 5] = [
    Setup::Plain,
    Setup::NoDescriptors,
    Setup::NoProc,
    Setup::HiddenProcOtherUser,
    Setup::OwnPidNamespace,
];

/// `Ok` when this process can build every [`Setup`] (it is root and may create mount and PID
/// namespaces), else why not.
pub fn setups_available() -> Result<(), String> {
    if crate::sys::geteuid() != 0 {
        return Err("not root".into());
    }
    let mut c = fork(|| match crate::sys::setup::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWPID) {
        Ok(()) => 0,
        Err(_) => 1,
    });
    match c.wait_timeout(Duration::from_secs(10)) {
        Some(Exit::Code(0)) => Ok(()),
        other => Err(format!("cannot unshare mount and PID namespaces ({other:?})")),
    }
}

/// Forks a child that enters `setup`, then runs `f` and exits with its result (101 on a
/// panic; 102 to 106 if the setup itself failed).
pub fn fork_in(setup: Setup, f: impl FnOnce() -> i32) -> Child {
    use crate::sys::setup as s;
    fork(move || {
        let private_mounts = || {
            s::unshare(libc::CLONE_NEWNS).ok()?;
            s::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None).ok()
        };
        match setup {
            Setup::Plain => f(),
            Setup::NoDescriptors => {
                let _ = crate::Identity::current();
                if s::limit_descriptors(64).is_err() {
                    return 102;
                }
                let mut hoard = Vec::new();
                loop {
                    match std::fs::File::open("/dev/null") {
                        Ok(file) => hoard.push(file),
                        Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
                        Err(_) => return 102,
                    }
                }
                let code = f();
                drop(hoard);
                code
            }
            Setup::NoProc => {
                if private_mounts().is_none() || s::umount_detach(c"/proc").is_err() {
                    return 103;
                }
                if std::path::Path::new("/proc/self").exists() {
                    return 103;
                }
                f()
            }
            Setup::HiddenProcOtherUser => {
                if private_mounts().is_none()
                    || s::mount(Some(c"proc"), c"/proc", Some(c"proc"), 0, Some(c"hidepid=2"))
                        .is_err()
                    || s::become_user(65534, 65534).is_err()
                {
                    return 104;
                }
                f()
            }
            Setup::OwnPidNamespace => {
                if s::unshare(libc::CLONE_NEWPID).is_err() || private_mounts().is_none() {
                    return 105;
                }
                // SAFETY: as in `fork`: the test controls what the child runs.
                match unsafe { crate::sys::fork() } {
                    Ok(0) => {
                        let ok = s::die_with_parent().is_ok()
                            && s::mount(Some(c"proc"), c"/proc", Some(c"proc"), 0, None).is_ok()
                            && crate::sys::getpid() == 1;
                        let code = if ok {
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101)
                        } else {
                            106
                        };
                        crate::sys::exit_now(code)
                    }
                    Ok(pid) => {
                        drop(f);
                        match s::wait_blocking(pid).map(crate::sys::decode_wait_status) {
                            Ok(Ok(code)) => code,
                            _ => 101,
                        }
                    }
                    Err(_) => 105,
                }
            }
        }
    })
}

/// CLOCK_MONOTONIC in nanoseconds: comparable between processes of one machine (PID and
/// mount namespaces share it).
pub fn monotonic_ns() -> u64 {
    let ts = crate::sys::monotonic_now();
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// xorshift64*: a small deterministic generator for hostile-input tests (a fixed seed per
/// test, so a failing case replays).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced: xorshift would stay at 0).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// How many cases a hostile-input test runs: `default`, or `MULTIPROC_FUZZ_CASES` (what
/// `cargo xtask fuzz --cases N` sets) when that is larger.
pub fn fuzz_cases(default: usize) -> usize {
    std::env::var("MULTIPROC_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(default, |n: usize| n.max(default))
}

/// Exit code of a child that could not set up its fault (no privilege): the test is skipped.
pub const SKIP_CODE: i32 = 77;

/// How a fault-injection child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The body ran and returned normally.
    Passed,
    /// The fault could not be set up here (no privilege); the reason was printed loudly.
    Skipped,
}

/// Runs `body` in a forked child whose `/dev/shm` is a private tmpfs of `bytes` (a private
/// mount namespace: nothing outside the child sees it), waiting at most `timeout`. Panics if
/// the body panics, is killed by a signal (SIGBUS included) or runs past `timeout`. Without
/// the privilege to mount (not root, no `CAP_SYS_ADMIN`) it prints why, loudly, and returns
/// [`Outcome::Skipped`].
pub fn with_small_dev_shm(bytes: u64, timeout: Duration, body: impl FnOnce()) -> Outcome {
    run_faulted(timeout, "a private tmpfs over /dev/shm", move || {
        crate::sys::private_small_dev_shm(bytes).map_err(|e| format!("mounting: {e}"))?;
        body();
        Ok(())
    })
}

/// Resizes the private `/dev/shm` of a [`with_small_dev_shm`] body (the fault passes).
pub fn resize_dev_shm(bytes: u64) {
    crate::sys::resize_dev_shm(bytes).expect("remounting /dev/shm");
}

/// Sets this process's soft limit of open descriptors (`RLIMIT_NOFILE`); returns the old one.
pub fn set_nofile_limit(n: u64) -> std::io::Result<u64> {
    crate::sys::set_soft_limit(libc::RLIMIT_NOFILE, n)
}

/// Sets this process's soft limit of processes of its user (`RLIMIT_NPROC`); returns the old
/// one. Root ignores it: see [`with_process_quota`].
pub fn set_nproc_limit(n: u64) -> std::io::Result<u64> {
    crate::sys::set_soft_limit(libc::RLIMIT_NPROC, n)
}

/// The user the process-quota tests run as (`nobody`).
pub const QUOTA_UID: u32 = 65534;

/// Runs `body` in a forked child that is not root (uid/gid 65534, so that `RLIMIT_NPROC`
/// applies to it; root ignores the limit), waiting at most `timeout`; panics as
/// [`with_small_dev_shm`] does. Skips loudly when the test does not run as root (it cannot
/// change user); a non-root user's own limit would count every process of that user.
pub fn with_process_quota(timeout: Duration, body: impl FnOnce()) -> Outcome {
    run_faulted(timeout, "switching to uid 65534 for RLIMIT_NPROC", move || {
        if crate::sys::getuid() != 0 {
            return Err("not root: cannot become another user".into());
        }
        crate::sys::become_user(QUOTA_UID, QUOTA_UID).map_err(|e| format!("setresuid: {e}"))?;
        body();
        Ok(())
    })
}

/// Runs `body` in a forked child with at most `n` open descriptors (`RLIMIT_NOFILE`; no
/// privilege needed), waiting at most `timeout`.
pub fn with_descriptor_limit(n: u64, timeout: Duration, body: impl FnOnce()) -> Outcome {
    run_faulted(timeout, "RLIMIT_NOFILE", move || {
        set_nofile_limit(n).map_err(|e| format!("setrlimit: {e}"))?;
        body();
        Ok(())
    })
}

fn run_faulted(
    timeout: Duration,
    what: &str,
    body: impl FnOnce() -> Result<(), String>,
) -> Outcome {
    let mut child = fork(move || match body() {
        Ok(()) => 0,
        Err(why) => {
            eprintln!("{why}");
            SKIP_CODE
        }
    });
    match child.wait_timeout(timeout) {
        Some(Exit::Code(0)) => Outcome::Passed,
        Some(Exit::Code(SKIP_CODE)) => {
            eprintln!(
                "\n*** SKIPPED: this test needs {what} and could not set it up here \
                 (it runs as root in CI) ***\n"
            );
            Outcome::Skipped
        }
        other => panic!(
            "the faulted child {} ended with {other:?} (None = still running after {timeout:?})",
            child.pid()
        ),
    }
}

/// Sets the process-wide file-mode creation mask; returns the old one. Test support for
/// "never reachable by another user" checks (with umask 0 a careless bind is world-writable).
pub fn set_umask(mask: u32) -> u32 {
    crate::sys::umask(mask)
}

/// A user's own `fork()` (`libc::fork`, no wrapper of this crate around the child): 0 in the
/// child, which must end with [`exit_now`]; the child's pid in the parent. For tests of
/// handles across forks the library did not make.
///
/// # Safety
/// In a multi-threaded parent (the test harness) the child may only use what no other thread
/// could hold locked: shared memory, futexes, and its own handles.
pub unsafe fn user_fork() -> u32 {
    // SAFETY: the caller upholds the post-fork restrictions.
    unsafe { crate::sys::user_fork::fork() }.expect("fork")
}

/// `_exit(code)`: ends a [`user_fork`] child without running the parent's destructors.
pub fn exit_now(code: i32) -> ! {
    crate::sys::exit_now(code)
}

/// Waits (bounded: 60 s, then panics) until every pid in `pids` ended, and asserts each
/// exited 0.
pub fn wait_all(pids: &mut Vec<u32>) {
    let t0 = Instant::now();
    while !pids.is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(60), "children still running: a hang");
        pids.retain(|&p| match crate::sys::user_fork::exited_ok(p) {
            None => true,
            Some(ok) => {
                assert!(ok, "child {p} failed");
                false
            }
        });
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Starts another copy of the running test binary that runs only `test`, with the
/// environment `env` (how a test starts processes that share nothing with it but what they
/// open by name: not forked, nothing inherited).
pub fn start_copy(test: &str, env: &[(&str, &str)]) -> std::process::Child {
    let mut c = std::process::Command::new(std::env::current_exe().expect("current_exe"));
    c.args([test, "--exact", "--nocapture", "--test-threads=1"]);
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().expect("starting a copy of the test binary")
}

/// The environment variables through which [`start_role`] gives a copy its role and name.
const ROLE_VAR: &str = "MULTIPROC_TEST_ROLE";
const NAME_VAR: &str = "MULTIPROC_TEST_NAME";

/// [`start_copy`] for a test that plays a part in its copies: the copy runs only `test`, and
/// there [`role`] returns `role` and `name` (say, of a named object to open).
pub fn start_role(test: &str, role: &str, name: &str) -> std::process::Child {
    start_copy(test, &[(ROLE_VAR, role), (NAME_VAR, name)])
}

/// In a copy started by [`start_role`]: its role and name; `None` in the test itself.
pub fn role() -> Option<(String, String)> {
    Some((std::env::var(ROLE_VAR).ok()?, std::env::var(NAME_VAR).ok()?))
}

/// Waits (bounded by `timeout`, then kills it and panics) for `child` to succeed.
pub fn wait_success(mut child: std::process::Child, what: &str, timeout: Duration) {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            assert!(st.success(), "{what}: {st}");
            return;
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `fut` to completion on this thread (polls, parks until its waker unparks it): a
/// minimal executor for tests of `.await`. Panics if it is not done within `limit`.
pub fn block_on<F: std::future::Future>(fut: F, limit: Duration) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    let deadline = Instant::now() + limit;
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        assert!(Instant::now() < deadline, ".await did not finish within {limit:?}");
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// A `tracing` subscriber that keeps every event's target and message, for tests that check
/// what multiproc reports (feature `tracing`).
#[cfg(feature = "tracing")]
#[derive(Debug, Clone, Default)]
pub struct EventLog(std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>);

#[cfg(feature = "tracing")]
impl EventLog {
    /// Runs `f` with this log as the thread's subscriber.
    pub fn capture<R>(&self, f: impl FnOnce() -> R) -> R {
        tracing::subscriber::with_default(self.clone(), f)
    }

    /// Makes this log the subscriber of every thread of the process (once per process; for
    /// events raised on a library's own threads). `false` if another was installed first.
    pub fn install_global(&self) -> bool {
        tracing::subscriber::set_global_default(self.clone()).is_ok()
    }

    /// The events so far: `(target, message)`.
    pub fn events(&self) -> Vec<(String, String)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether an event of `target` has a message containing `text`.
    pub fn has(&self, target: &str, text: &str) -> bool {
        self.events().iter().any(|(t, m)| t == target && m.contains(text))
    }
}

#[cfg(feature = "tracing")]
impl tracing::Subscriber for EventLog {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{v:?}");
                } else {
                    self.0 += &format!(" {}={v:?}", field.name());
                }
            }
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        let target = event.metadata().target().to_string();
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push((target, m.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
