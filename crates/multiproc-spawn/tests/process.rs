//! Process lifecycle, results, panics, exit codes, signals, join timeouts and daemons, for
//! every start method (CPython checklist PL, EX, JT, DM).

mod sys;
mod util;

use multiproc_arena::{Array, ProcessId, Shared};
use multiproc_spawn::*;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;
use util::*;

fn square(x: u64) -> u64 {
    x * x
}

fn sleep_forever(f: Array<AtomicU64>) -> u64 {
    f[0].store(1, SeqCst);
    loop {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A daemonic child that sets `f[0]` and sleeps until it is killed.
fn sleeper(m: StartMethod, f: &Array<AtomicU64>) -> JoinHandle<u64> {
    Process::builder()
        .daemon(true)
        .start_method(m)
        .target(sleep_forever, f.clone())
        .start()
        .unwrap()
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

per_method!(
    fn returns_value(m) {
        let h = Process::builder().start_method(m).target(square, 12).start().unwrap();
        assert_eq!(h.start_method(), m);
        assert_eq!(h.join().unwrap(), 144);
    }
);

type Mixed = (u8, String, Vec<u32>, (i64,), Option<f64>);

fn echo(a: Mixed) -> Mixed {
    a
}

// PL02: arguments arrive unchanged.
per_method!(
    fn args_arrive_unchanged(m) {
        let a: Mixed = (1, "str".into(), vec![1], (-1,), Some(2.54));
        let h = Process::builder().start_method(m).target(echo, a.clone()).start().unwrap();
        assert_eq!(h.join().unwrap(), a);
    }
);

#[derive(Serialize, Deserialize, Debug)]
struct Report {
    name: String,
    pid: u32,
    daemon: bool,
    method: Option<StartMethod>,
    global: StartMethod,
    parent: Option<(u32, String, bool)>,
    identity: Vec<u32>,
}

fn report(f: Array<AtomicU64>) -> Report {
    f[0].store(1, SeqCst);
    wait_flag(&f, 1, LONG);
    let me = current_process();
    Report {
        name: me.name().to_string(),
        pid: me.pid(),
        daemon: me.daemon(),
        method: me.start_method(),
        global: get_start_method(),
        parent: parent_process().map(|p| (p.pid(), p.name().to_string(), p.is_alive())),
        identity: me.identity().to_vec(),
    }
}

// PL01, PL03, PL04, PL05, PL14, DM02: the whole lifecycle.
per_method!(
    fn lifecycle(m) {
        let main = current_process();
        assert_eq!(main.name(), "MainProcess");
        assert_eq!(main.pid(), std::process::id());
        assert!(!main.daemon() && main.is_alive() && main.identity().is_empty());
        assert!(parent_process().is_none());

        let f = flags(2);
        let mut h =
            Process::builder().name("SomeProcess").start_method(m).target(report, f.clone()).start().unwrap();
        assert!(h.is_alive());
        assert_eq!(h.exitcode(), None);
        assert_eq!(h.name(), "SomeProcess");
        assert_ne!(h.pid(), std::process::id());
        let active = active_children();
        assert!(active.iter().any(|c| c.pid == h.pid() && c.name == "SomeProcess" && !c.daemon));
        wait_flag(&f, 0, LONG);
        assert!(h.is_alive());
        f[1].store(1, SeqCst);
        let r = h.join_timeout(LONG).unwrap();
        assert_eq!(r.name, "SomeProcess");
        assert_eq!(r.pid, h.pid());
        assert!(!r.daemon);
        assert_eq!(r.method, Some(m));
        assert_eq!(r.global, m);
        assert_eq!(r.parent, Some((std::process::id(), "MainProcess".to_string(), true)));
        assert_eq!(r.identity.len(), 1);
        assert_eq!(h.exitcode(), Some(0));
        assert!(!h.is_alive());
        assert!(!active_children().iter().any(|c| c.pid == h.pid()));
        assert!(matches!(h.join_timeout(LONG), Err(JoinError::AlreadyJoined)));
    }
);

fn default_name(_: ()) -> (String, Vec<u32>) {
    let me = current_process();
    (me.name().to_string(), me.identity().to_vec())
}

per_method!(
    fn default_names_follow_python(m) {
        let h = Process::builder().start_method(m).target(default_name, ()).start().unwrap();
        let expect = h.name().to_string();
        let (name, id) = h.join().unwrap();
        assert_eq!(name, expect);
        assert!(name.starts_with("Process-"), "{name}");
        assert_eq!(name, format!("Process-{}", id[0]));
    }
);

fn tree((ids, depth, m): (Vec<u32>, u32, StartMethod)) -> Vec<Vec<u32>> {
    let mut out = vec![ids.clone()];
    if depth > 0 {
        for i in 0..2 {
            let mut next = ids.clone();
            next.push(i);
            let h = Process::builder()
                .start_method(m)
                .target(tree, (next, depth - 1, m))
                .start()
                .unwrap();
            out.extend(h.join().unwrap());
        }
    }
    out
}

// PL07: each process starts two children and joins them, to depth 2.
per_method!(
    fn recursion(m) {
        let h = Process::builder().start_method(m).target(tree, (vec![], 2, m)).start().unwrap();
        let got = h.join().unwrap();
        let want: Vec<Vec<u32>> =
            vec![vec![], vec![0], vec![0, 0], vec![0, 1], vec![1], vec![1, 0], vec![1, 1]];
        assert_eq!(got, want);
    }
);

const BOOM_LINE: u32 = line!() + 2;
fn boom(x: u32) -> u64 {
    panic!("boom {x}")
}

fn boom_any(_: ()) -> u64 {
    std::panic::panic_any(42u8)
}

per_method!(
    fn panic_comes_back_with_location(m) {
        let h = Process::builder().start_method(m).target(boom, 42).start().unwrap();
        let pid = h.pid();
        let mut h2 = h;
        match h2.join_timeout(LONG) {
            Err(JoinError::Panicked { message, location }) => {
                assert_eq!(message, "boom 42");
                let l = location.expect("location");
                assert!(l.file.ends_with("process.rs"), "{l}");
                assert_eq!(l.line, BOOM_LINE);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(h2.exitcode(), Some(1), "pid {pid}");
        let h = Process::builder().start_method(m).target(boom_any, ()).start().unwrap();
        match h.join() {
            Err(e @ JoinError::Panicked { .. }) => {
                assert!(e.to_string().contains("non-string"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }
);

fn exit_with(code: i32) -> u64 {
    std::process::exit(code)
}

fn exit_unit(code: i32) {
    std::process::exit(code)
}

// EX06: exit(n) is exit code n; a `()` target that exits 0 succeeded.
per_method!(
    fn exit_codes(m) {
        for code in [0, 1, 3, 8, 255] {
            let mut h = Process::builder().start_method(m).target(exit_with, code).start().unwrap();
            match h.join_timeout(LONG) {
                Err(JoinError::Exited(c)) => assert_eq!(c, code),
                other => panic!("{code}: {other:?}"),
            }
            assert_eq!(h.exitcode(), Some(code));
        }
        let h = Process::builder().start_method(m).target(exit_unit, 0).start().unwrap();
        h.join().unwrap();
        let h = Process::builder().start_method(m).target(exit_unit, 5).start().unwrap();
        assert!(matches!(h.join(), Err(JoinError::Exited(5))));
    }
);

fn abort_now(_: ()) -> u64 {
    std::process::abort()
}

// A death by signal is an error naming the signal; exitcode is its negated number.
per_method!(
    fn signal_death_is_named(m) {
        let mut h = Process::builder().start_method(m).target(abort_now, ()).start().unwrap();
        match h.join_timeout(LONG) {
            Err(e @ JoinError::Signaled(s)) => {
                assert_eq!(s.number(), libc::SIGABRT);
                assert_eq!(s.name(), "SIGABRT");
                assert!(e.to_string().contains("SIGABRT"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(h.exitcode(), Some(-libc::SIGABRT));
    }
);

fn check_signal_end(m: StartMethod, sig: Signal, kill: bool) {
    let f = flags(1);
    let mut h = sleeper(m, &f);
    wait_flag(&f, 0, LONG);
    // JT01: a zero timeout returns at once, leaving the child running.
    let (r, _, own) = timed(|| h.join_timeout(Duration::ZERO).is_err_and(|e| e.is_timeout()));
    assert!(r);
    assert!(own < Duration::from_millis(100), "{own:?}");
    assert!(h.is_alive());
    assert_eq!(h.exitcode(), None);
    if kill {
        h.kill().unwrap();
    } else {
        h.terminate().unwrap();
    }
    match h.join_timeout(LONG) {
        Err(JoinError::Signaled(s)) => assert_eq!(s, sig),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.exitcode(), Some(-sig.number()));
    assert!(!h.is_alive());
    assert!(!active_children().iter().any(|c| c.pid == h.pid()));
    // EX09: terminating an ended process is a no-op.
    h.terminate().unwrap();
    h.kill().unwrap();
    assert_eq!(h.exitcode(), Some(-sig.number()));
}

// EX01
per_method!(
    fn terminate_live(m) {
        check_signal_end(m, Signal::TERM, false)
    }
);

// EX02
per_method!(
    fn kill_live(m) {
        check_signal_end(m, Signal::KILL, true)
    }
);

// EX05: terminated right after start.
per_method!(
    fn terminate_just_started(m) {
        let f = flags(1);
        let hs: Vec<_> = (0..10)
            .map(|_| {
                let h = sleeper(m, &f);
                h.terminate().unwrap();
                h
            })
            .collect();
        for mut h in hs {
            match h.join_timeout(LONG) {
                Err(JoinError::Signaled(s)) => assert_eq!(s, Signal::TERM),
                other => panic!("{other:?}"),
            }
            assert_eq!(h.exitcode(), Some(-libc::SIGTERM));
        }
    }
);

per_method!(
    fn kill_just_started(m) {
        let f = flags(1);
        let mut h = sleeper(m, &f);
        h.kill().unwrap();
        assert!(matches!(h.join_timeout(LONG), Err(JoinError::Signaled(Signal::KILL))));
    }
);

// JT06 and the brief's bounds: a timed-out join returns within t-0.1 s … t+2 s.
per_method!(
    fn join_timeout_bounds(m) {
        let f = flags(1);
        let mut h =
            sleeper(m, &f);
        for ms in [0u64, 200, 500] {
            let t = Duration::from_millis(ms);
            // `own`: the wall time minus the time this thread waited for a CPU, so that a
            // machine starved by other work cannot fail the upper bound.
            let (r, e, own) = timed(|| h.join_timeout(t).is_err_and(|e| e.is_timeout()));
            assert!(r);
            assert!(
                e + Duration::from_millis(100) >= t && own <= t + Duration::from_secs(2),
                "{t:?}: {e:?} ({own:?} not waiting for a CPU)"
            );
            assert!(h.is_alive());
            assert_eq!(h.exitcode(), None);
        }
        h.kill().unwrap();
        let r = h.join_timeout(LONG);
        assert!(matches!(r, Err(JoinError::Signaled(Signal::KILL))), "{r:?}");
    }
);

// PL08, JT05: the sentinel is readable only once the child has ended.
per_method!(
    fn sentinel(m) {
        let mut h = Process::builder().start_method(m).target(sleep_ms, 300).start().unwrap();
        assert!(!sys::poll_readable(h.sentinel(), 0));
        assert!(sys::poll_readable(h.sentinel(), 10_000));
        assert!(!h.is_alive());
        assert_eq!(h.join_timeout(Duration::ZERO).unwrap(), 300);
        assert!(sys::poll_readable(h.sentinel(), 0), "stays readable");
    }
);

fn try_start_child(m: StartMethod) -> String {
    match Process::builder().start_method(m).target(square, 2).start() {
        Err(e) => format!("{:?}", e.kind()),
        Ok(h) => format!("started {:?}", h.join()),
    }
}

fn daemon_flag(_: ()) -> bool {
    current_process().daemon()
}

// DM01, DM03, DM04.
per_method!(
    fn daemon_flag_and_no_children(m) {
        for (d, want) in [(Some(true), true), (Some(false), false), (None, false)] {
            let mut b = Process::builder().start_method(m);
            if let Some(d) = d {
                b = b.daemon(d);
            }
            assert_eq!(b.is_daemon(), want, "readable before the start");
            let b = b.target(daemon_flag, ());
            assert_eq!(b.is_daemon(), want);
            let h = b.start().unwrap();
            assert_eq!(h.daemon(), want);
            assert_eq!(h.join().unwrap(), want);
        }
        let mut h = Process::builder().daemon(true).start_method(m).target(try_start_child, m).start().unwrap();
        assert_eq!(h.join_timeout(LONG).unwrap(), "DaemonicParent");
    }
);

fn record_and_sleep(f: Array<AtomicU64>) {
    let me = ProcessId::current();
    f[1].store(me.identity_bits(), SeqCst);
    f[0].store(me.pid() as u64, SeqCst);
    loop {
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_daemon((f, m, then_return): (Array<AtomicU64>, StartMethod, bool)) {
    let h = Process::builder()
        .daemon(true)
        .start_method(m)
        .target(record_and_sleep, f.clone())
        .start()
        .unwrap();
    wait_flag(&f, 0, LONG);
    if then_return {
        return;
    }
    let _keep = h;
    loop {
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn daemon_of(f: &Array<AtomicU64>) -> ProcessId {
    wait_flag(f, 0, LONG);
    ProcessId::from_parts(f[0].load(SeqCst) as u32, f[1].load(SeqCst))
}

// A daemonic child dies with its parent even when the parent is SIGKILLed.
per_method!(
    fn daemon_dies_with_sigkilled_parent(m) {
        let f = flags(2);
        let mut p = Process::builder().start_method(m).target(start_daemon, (f.clone(), m, false)).start().unwrap();
        let d = daemon_of(&f);
        assert!(d.is_alive());
        p.kill().unwrap();
        assert!(matches!(p.join_timeout(LONG), Err(JoinError::Signaled(Signal::KILL))));
        assert!(wait_until(Duration::from_secs(5), || !d.is_alive()), "daemon {} survived", d.pid());
    }
);

// DM04: a daemonic child is terminated when its parent exits normally.
per_method!(
    fn daemon_dies_at_parent_exit(m) {
        let f = flags(2);
        let p = Process::builder().start_method(m).target(start_daemon, (f.clone(), m, true)).start().unwrap();
        let d = daemon_of(&f);
        p.join().unwrap();
        assert!(wait_until(Duration::from_secs(5), || !d.is_alive()), "daemon {} survived", d.pid());
    }
);

fn watch_parent(f: Array<AtomicU64>) {
    let p = parent_process().expect("has a parent");
    f[0].store(if p.is_alive() { 1 } else { 2 }, SeqCst);
    let ended = p.join_timeout(Duration::from_secs(20)).is_ok();
    f[1].store(if ended && !p.is_alive() { 1 } else { 2 }, SeqCst);
}

fn middle((f, m): (Array<AtomicU64>, StartMethod)) {
    let _h = Process::builder().start_method(m).target(watch_parent, f).start().unwrap();
    loop {
        std::thread::sleep(Duration::from_millis(50));
    }
}

// PL06, EX07, JT02: an orphaned grandchild notices its parent died (and is not killed).
per_method!(
    fn orphan_notices_parent_death(m) {
        let f = flags(2);
        let mut p = Process::builder().start_method(m).target(middle, (f.clone(), m)).start().unwrap();
        assert_eq!(wait_flag(&f, 0, LONG), 1, "grandchild saw its parent alive");
        p.terminate().unwrap();
        assert!(matches!(p.join_timeout(LONG), Err(JoinError::Signaled(Signal::TERM))));
        assert_eq!(wait_flag(&f, 1, LONG), 1, "grandchild noticed the death");
    }
);

fn big(n: usize) -> String {
    "0123456789abcdef".repeat(n / 16)
}

// A result larger than any socket buffer comes back without deadlock.
per_method!(
    fn big_result(m) {
        let n = 64 << 20;
        let mut h = Process::builder().start_method(m).target(big, n).start().unwrap();
        let s = h.join_timeout(Duration::from_secs(60)).unwrap();
        assert_eq!(s.len(), n);
        for at in [0, 16 << 10, n / 2, n - 16] {
            assert_eq!(&s[at..at + 16], "0123456789abcdef", "at {at}");
        }
    }
);

fn big_args(s: String) -> usize {
    s.len()
}

per_method!(
    fn big_args_arrive(m) {
        let n = 16 << 20;
        let h = Process::builder().start_method(m).target(big_args, big(n)).start().unwrap();
        assert_eq!(h.join().unwrap(), n);
    }
);

fn make_shared(x: u64) -> Shared<AtomicU64> {
    Shared::new(AtomicU64::new(x)).unwrap()
}

per_method!(
    fn shared_memory_result(m) {
        let h = Process::builder().start_method(m).target(make_shared, 77).start().unwrap();
        let v = h.join().unwrap();
        assert_eq!(v.load(SeqCst), 77);
    }
);

#[derive(Serialize, Deserialize)]
struct Upper(Vec<String>);

impl Run for Upper {
    type Output = Vec<String>;
    fn run(self) -> Vec<String> {
        self.0.iter().map(|s| s.to_uppercase()).collect()
    }
}

// PL21: the "class" style.
per_method!(
    fn run_trait(m) {
        let h = Process::builder().start_method(m).target_run(Upper(vec!["hello".into(), "world".into()])).start();
        assert_eq!(h.unwrap().join().unwrap(), ["HELLO", "WORLD"]);
    }
);

fn count_fds(f: Array<AtomicU64>) -> usize {
    f[0].fetch_add(1, SeqCst);
    wait_until(LONG, || f[0].load(SeqCst) >= 5);
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

// PL11: children's descriptors do not grow with their siblings (not fork: it copies all).
per_method!(
    fn child_fd_inflation(m) {
        if m == StartMethod::Fork {
            return;
        }
        let f = flags(1);
        let hs: Vec<_> = (0..5)
            .map(|_| Process::builder().start_method(m).target(count_fds, f.clone()).start().unwrap())
            .collect();
        let counts: Vec<usize> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(counts.iter().all(|&c| c == counts[0]), "{counts:?}");
    }
);

fn probe_fd(fd: i32) -> i32 {
    sys::fd_errno(fd)
}

// PL31: an unrelated inheritable descriptor of the parent does not reach spawn and
// forkserver children (EBADF there); under fork it is inherited.
per_method!(
    fn unrelated_fds_not_inherited(m) {
        use std::os::fd::{AsFd, AsRawFd};
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let high = sys::dup_inheritable_at_least(a.as_fd(), 200);
        let h = Process::builder().start_method(m).target(probe_fd, high.as_raw_fd()).start().unwrap();
        let errno = h.join().unwrap();
        if m == StartMethod::Fork {
            assert_eq!(errno, 0);
        } else {
            assert_eq!(errno, libc::EBADF);
        }
    }
);

// PL24, JT04: a handled signal during join does not abort it.
per_method!(
    fn join_survives_signals(m) {
        sys::install_usr1_handler();
        let me = sys::this_thread();
        let h = Process::builder().start_method(m).target(sleep_ms, 400).start().unwrap();
        let before = sys::USR1_SEEN.load(SeqCst);
        let sender = std::thread::spawn(move || {
            for _ in 0..3 {
                std::thread::sleep(Duration::from_millis(80));
                sys::signal_thread(me, libc::SIGUSR1);
            }
        });
        assert_eq!(h.join().unwrap(), 400);
        sender.join().unwrap();
        assert!(sys::USR1_SEEN.load(SeqCst) > before);
    }
);

fn not_serialisable_closure_target() -> u64 {
    1
}

#[test]
fn closures_need_fork() {
    for m in [StartMethod::Spawn, StartMethod::Forkserver] {
        let err = Process::builder()
            .start_method(m)
            .target_closure(not_serialisable_closure_target)
            .start();
        assert_eq!(err.unwrap_err().kind(), ErrorKind::ClosureNeedsFork);
    }
    let captured = String::from("abc");
    let h = Process::builder()
        .start_method(StartMethod::Fork)
        .target_closure(move || captured.len() as u64 * 2)
        .start()
        .unwrap();
    assert_eq!(h.join().unwrap(), 6);
}

fn pinned_cpu_count(_: ()) -> usize {
    assert!(sys::pin_to_cpu0());
    cpu_count()
}

// PL15, and the affinity mask is respected (`taskset`, container CPU sets).
#[test]
fn cpu_count_respects_affinity() {
    assert!(cpu_count() >= 1);
    let h = Process::builder().start_method(StartMethod::Fork).target(pinned_cpu_count, ()).start();
    assert_eq!(h.unwrap().join().unwrap(), 1);
}

#[test]
fn dropped_handles_are_reaped() {
    for m in StartMethod::all() {
        let h = Process::builder().start_method(m).target(sleep_ms, 100).start().unwrap();
        let pid = h.pid();
        drop(h);
        assert!(
            wait_until(Duration::from_secs(5), || proc_state(pid) != Some('Z')
                && ppid_of(pid) != Some(std::process::id())),
            "{m}: {pid} not reaped"
        );
        assert!(wait_until(Duration::from_secs(5), || !active_children()
            .iter()
            .any(|c| c.pid == pid)));
    }
}

fn where_stdout_goes(v: Shared<AtomicU64>) -> String {
    println!("hello from a child whose parent closed its standard streams");
    v.fetch_add(1, SeqCst);
    std::fs::read_link("/proc/self/fd/1").map_or("closed".into(), |p| p.display().to_string())
}

fn close_stdio_then_start(m: StartMethod) -> String {
    sys::close_fd(0);
    sys::close_fd(1);
    let v = Shared::new(AtomicU64::new(0)).unwrap();
    let h =
        Process::builder().start_method(m).target(where_stdout_goes, v.clone()).start().unwrap();
    let out = h.join().unwrap();
    assert_eq!(v.load(SeqCst), 1);
    out
}

// PL13: a child runs and exits 0 when its parent closed stdin/stdout; received descriptors
// never land on the standard numbers.
per_method!(
    fn closed_stdio(m) {
        let h = Process::builder()
            .start_method(StartMethod::Fork)
            .target(close_stdio_then_start, m)
            .start()
            .unwrap();
        let out = h.join().unwrap();
        assert!(!out.contains("memfd"), "{out}");
    }
);

#[test]
fn handles_and_errors_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<JoinHandle<String>>();
    check::<Error>();
    check::<JoinError>();
    check::<ParentProcess>();
}

// EX04: interrupt() with SIGINT's default action is -SIGINT.
per_method!(
    fn interrupt(m) {
        let f = flags(1);
        let mut h =
            sleeper(m, &f);
        wait_flag(&f, 0, LONG);
        h.interrupt().unwrap();
        match h.join_timeout(LONG) {
            Err(JoinError::Signaled(s)) => assert_eq!(s.name(), "SIGINT"),
            other => panic!("{other:?}"),
        }
        assert_eq!(h.exitcode(), Some(-libc::SIGINT));
    }
);

#[derive(Deserialize)]
struct BadResult(bool);

impl Serialize for BadResult {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        if self.0 {
            panic!("serialize panicked");
        }
        Err(serde::ser::Error::custom("no"))
    }
}

fn bad_result(panics: bool) -> BadResult {
    BadResult(panics)
}

// A result that cannot be encoded is an error for the parent, never a hang or a child that
// unwinds into its parent's code.
per_method!(
    fn unencodable_result(m) {
        for panics in [false, true] {
            let mut h = Process::builder().start_method(m).target(bad_result, panics).start().unwrap();
            match h.join_timeout(LONG) {
                Err(JoinError::Decode(msg)) => {
                    assert!(msg.contains(if panics { "panicked" } else { "encoding" }), "{msg}")
                }
                other => panic!("{:?}", other.map(|_| ())),
            }
            assert_eq!(h.exitcode(), Some(1));
        }
    }
);

fn my_authkey(_: ()) -> Vec<u8> {
    current_process().authkey().to_vec()
}

// Python's Process.authkey: random in the main process, inherited by children under every
// start method, settable per child; not shown by Debug.
per_method!(
    fn authkey_is_inherited_and_settable(m) {
        let mine = current_process().authkey().to_vec();
        assert_eq!(mine.len(), 32);
        assert_ne!(mine, vec![0u8; 32]);
        let h = Process::builder().start_method(m).target(my_authkey, ()).start().unwrap();
        assert_eq!(h.join().unwrap(), mine, "inherited");
        let h = Process::builder().start_method(m).authkey(b"other".to_vec()).target(my_authkey, ()).start().unwrap();
        assert_eq!(h.join().unwrap(), b"other".to_vec());
        assert!(!format!("{:?}", current_process()).contains(&format!("{:?}", mine)));
    }
);
