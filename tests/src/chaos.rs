//! The chaos workload: every primitive of multiproc in use at once by many processes, while a
//! driver SIGKILLs random participants at random instants and restarts them; then the
//! invariants of DESIGN.md §5 are checked.
//!
//! A run is a series of rounds over the same queue, mutex, lock, manager and pool (so each
//! must stay usable through every kill). In a round:
//!
//! - **producers** put sequence-numbered, checksummed messages of mixed sizes (a few bytes to
//!   200 KB, the largest spilled into the queue's memory file, or streamed through the ring
//!   when the spill table is full) on one [`Queue`], each generation of a
//!   producer its own stream; after each `put` returns, the producer records how many it put;
//! - **consumers** (processes, and a thread of the driver that is never killed) take them,
//!   check the bytes against the checksum and the regenerated content, check that each
//!   stream's sequence numbers only grow (FIFO per producer), and set the message's bit in a
//!   shared bitmap (a bit already set is a duplicate);
//! - **lock workers** take a [`Mutex`] and a [`Lock`] in turn and check mutual exclusion with
//!   an "inside" mark and a counter that must equal the sum of per-worker counters; a
//!   poisoned lock (its holder was killed) is repaired and its poison cleared;
//! - **manager clients** append `(stream, seq)` to a managed list and store `seq` in a managed
//!   dict, recording how many appends returned;
//! - **pipe peers** echo what a driver thread sends them over a [`Pipe`]; a killed peer must
//!   show up as a disconnection within seconds;
//! - a **pool** maps a checked function over batches while its workers are killed.
//!
//! At the end of a round, producers are told to stop, then consumers, and the driver drains
//! the queue. Checked: no message corrupted, duplicated, out of order or invented; none lost
//! beyond one per killed consumer (the queue's contract: a consumer killed after taking a
//! message loses that one); every completed put delivered; lock exclusion never broken and
//! every dead holder's lock recovered; the managed list holds each client's appends exactly
//! once and in order, through at least its last acknowledged one; every pool task accounted
//! for (its result, or `WorkerDied`); every echo intact; every wait bounded; every primitive
//! usable afterwards.

use crate::hygiene::Proc;
use crate::rng::{Rng, RngExt};
use crate::sys;
use multiproc::arena::{Arena, Array};
use multiproc::lock::{Lock, Mutex};
use multiproc::manager::{DictProxy, ListProxy, Manager};
use multiproc::pipe::{Connection, ErrorKind as PipeErrorKind, Pipe};
use multiproc::pool::{ErrorKind as PoolErrorKind, Pool};
use multiproc::queue::{GetError, PutError, Queue};
use multiproc::spawn::{JoinError, JoinHandle, Process, StartMethod};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex as StdMutex, MutexGuard as StdMutexGuard, TryLockError};
use std::time::{Duration, Instant};

/// Streams (producer generations) a round can hold.
const MAX_STREAMS: usize = 1024;
/// Messages a producer generation puts before it exits (and is restarted as a new stream).
const MAX_SEQ: u32 = 4096;
const WORDS: usize = MAX_SEQ as usize / 64;
/// Manager-client generations a round can hold.
const MAX_CLIENTS: usize = 1024;
/// Payload bytes of the queue's ring: messages over half of it stream through it.
const QUEUE_CAPACITY: usize = 128 << 10;
/// The longest any single wait of a participant may take before it counts as a hang.
const HANG: Duration = Duration::from_secs(15);
/// How long a participant told to stop may take to do so.
const STOP_GRACE: Duration = Duration::from_secs(20);
/// The longest a pipe peer's death may take to show up as a disconnection.
const EOF_LIMIT: Duration = Duration::from_secs(3);

// Words of the shared control block.
const STOP_PRODUCE: usize = 0;
const STOP_CONSUME: usize = 1;
const STOP_WORK: usize = 2;
const N_CHECKED: usize = 3;
const N_BYTES: usize = 4;
const N_LOCK_OPS: usize = 5;
const N_POISON: usize = 6;
const N_MGR_OPS: usize = 7;
const LOCK_INSIDE: usize = 8;
const V_FIRST: usize = 16;
const V_NAMES: [&str; 10] = [
    "corrupted message",
    "duplicated message",
    "out-of-order message (per-producer FIFO)",
    "message from an unknown stream or sequence",
    "queue error",
    "put blocked past the hang limit",
    "lock exclusion broken",
    "lock not acquired within the hang limit",
    "manager call failed",
    "manager read back a wrong value",
];
const V_CORRUPT: usize = V_FIRST;
const V_DUP: usize = V_FIRST + 1;
const V_ORDER: usize = V_FIRST + 2;
const V_RANGE: usize = V_FIRST + 3;
const V_QUEUE: usize = V_FIRST + 4;
const V_PUT_HANG: usize = V_FIRST + 5;
const V_LOCK_EXCL: usize = V_FIRST + 6;
const V_LOCK_HANG: usize = V_FIRST + 7;
const V_MGR: usize = V_FIRST + 8;
const V_MGR_VALUE: usize = V_FIRST + 9;
const CTL_LEN: usize = V_FIRST + V_NAMES.len();

/// What a run does: how long, how many participants of each kind, how often the driver kills.
#[derive(Debug, Clone)]
pub struct Config {
    /// Total running time (the last round is cut to fit).
    pub duration: Duration,
    /// Longest round.
    pub round: Duration,
    /// Producer processes.
    pub producers: usize,
    /// Consumer processes (besides the driver's own consumer thread).
    pub consumers: usize,
    /// Lock-worker processes (at most 6).
    pub lockers: usize,
    /// Manager-client processes.
    pub manager_clients: usize,
    /// Pipe peers (each with a driver thread talking to it).
    pub pipes: usize,
    /// Pool worker processes.
    pub pool_workers: usize,
    /// The driver kills one participant every `kill_every_ms.0..=kill_every_ms.1` ms.
    pub kill_every_ms: (u64, u64),
    /// Seed of every random choice of the driver.
    pub seed: u64,
    /// Print a line per round to stderr.
    pub progress: bool,
}

impl Config {
    /// The short form the normal test suite runs (`secs` seconds, one or two rounds).
    pub fn short(secs: u64) -> Config {
        Config {
            duration: Duration::from_secs(secs),
            round: Duration::from_secs(6),
            producers: 3,
            consumers: 2,
            lockers: 2,
            manager_clients: 2,
            pipes: 2,
            pool_workers: 2,
            kill_every_ms: (15, 90),
            seed: 0x5EED_0000_0000_0001 ^ u64::from(std::process::id()),
            progress: false,
        }
    }

    /// The long form (`cargo xtask soak`): rounds of 20 s for `duration`.
    pub fn soak(duration: Duration) -> Config {
        Config { duration, round: Duration::from_secs(20), progress: true, ..Config::short(0) }
    }
}

/// The figures of a run, and every invariant violation found (there must be none).
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Rounds completed.
    pub rounds: u64,
    /// Participants that died of the driver's SIGKILL, by role (see [`ROLES`]).
    pub kills: [u64; 6],
    /// Participant processes started (first starts and restarts).
    pub started: u64,
    /// Messages whose `put` returned.
    pub messages_put: u64,
    /// Messages taken and checked (content, checksum, order, duplicates).
    pub messages_checked: u64,
    /// Payload bytes checked.
    pub bytes_checked: u64,
    /// Acknowledged messages never delivered (allowed: at most one per killed consumer).
    pub messages_lost: u64,
    /// Killed producers whose next message (the one a `put` may have been writing) was not
    /// delivered: allowed, a put that never returned promised nothing.
    pub puts_cut_short: u64,
    /// Critical sections run under the mutex and the lock.
    pub lock_ops: u64,
    /// Poisoned acquisitions repaired (a holder had been killed).
    pub poison_recoveries: u64,
    /// Manager calls made by the clients.
    pub manager_ops: u64,
    /// List entries checked at the ends of rounds.
    pub manager_entries_checked: u64,
    /// Pipe round trips checked.
    pub pipe_echoes: u64,
    /// Slowest disconnection seen after a pipe peer was killed.
    pub eof_max: Duration,
    /// Pool tasks that returned their (checked) value.
    pub pool_tasks_ok: u64,
    /// Pool tasks that failed with `WorkerDied` (their worker was killed).
    pub pool_tasks_died: u64,
    /// Invariant violations: each one a sentence. Must be empty.
    pub violations: Vec<String>,
    /// Every participant started, by identity (pid and start time: pids are reused quickly
    /// on a busy machine), for the hygiene checks.
    pub pids: Vec<Proc>,
}

/// The roles a participant plays, in the order of [`Report::kills`].
pub const ROLES: [&str; 6] =
    ["producer", "consumer", "lock worker", "manager client", "pipe peer", "pool worker"];
const PRODUCER: usize = 0;
const CONSUMER: usize = 1;
const LOCKER: usize = 2;
const MGR_CLIENT: usize = 3;
const PIPE_PEER: usize = 4;
const POOL_WORKER: usize = 5;

impl Report {
    /// SIGKILLs that landed, all roles together.
    pub fn total_kills(&self) -> u64 {
        self.kills.iter().sum()
    }

    /// Pool tasks run (succeeded or failed by a killed worker).
    pub fn pool_tasks(&self) -> u64 {
        self.pool_tasks_ok + self.pool_tasks_died
    }

    fn absorb(&mut self, r: Report) {
        self.rounds += r.rounds;
        for (a, b) in self.kills.iter_mut().zip(r.kills) {
            *a += b;
        }
        self.started += r.started;
        self.messages_put += r.messages_put;
        self.messages_checked += r.messages_checked;
        self.bytes_checked += r.bytes_checked;
        self.messages_lost += r.messages_lost;
        self.puts_cut_short += r.puts_cut_short;
        self.lock_ops += r.lock_ops;
        self.poison_recoveries += r.poison_recoveries;
        self.manager_ops += r.manager_ops;
        self.manager_entries_checked += r.manager_entries_checked;
        self.pipe_echoes += r.pipe_echoes;
        self.eof_max = self.eof_max.max(r.eof_max);
        self.pool_tasks_ok += r.pool_tasks_ok;
        self.pool_tasks_died += r.pool_tasks_died;
        self.violations.extend(r.violations);
        self.pids.extend(r.pids);
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "chaos: {:.1} s, {} rounds", self.elapsed.as_secs_f64(), self.rounds)?;
        let by_role: Vec<String> =
            ROLES.iter().zip(self.kills).map(|(r, k)| format!("{k} {r}s")).collect();
        writeln!(f, "  kills survived:       {} ({})", self.total_kills(), by_role.join(", "))?;
        writeln!(f, "  processes started:    {}", self.started)?;
        writeln!(
            f,
            "  queue:                {} messages checked ({:.1} MB), {} put; {} lost to killed consumers, {} cut short by killed producers",
            self.messages_checked,
            self.bytes_checked as f64 / 1e6,
            self.messages_put,
            self.messages_lost,
            self.puts_cut_short
        )?;
        writeln!(
            f,
            "  locks:                {} critical sections, {} dead holders recovered",
            self.lock_ops, self.poison_recoveries
        )?;
        writeln!(
            f,
            "  manager:              {} calls, {} list entries checked",
            self.manager_ops, self.manager_entries_checked
        )?;
        writeln!(
            f,
            "  pipes:                {} echoes checked, slowest EOF after a kill {} ms",
            self.pipe_echoes,
            self.eof_max.as_millis()
        )?;
        writeln!(
            f,
            "  pool:                 {} tasks run ({} ok, {} WorkerDied)",
            self.pool_tasks(),
            self.pool_tasks_ok,
            self.pool_tasks_died
        )?;
        write!(f, "  invariant violations: {}", self.violations.len())?;
        for v in self.violations.iter().take(20) {
            write!(f, "\n    - {v}")?;
        }
        Ok(())
    }
}

// ---- shared state ------------------------------------------------------------------------

/// The shared tables of a round, in an arena every participant maps.
#[derive(Clone, Serialize, Deserialize)]
struct Board {
    ctl: Array<AtomicU64>,
    /// Per stream: how many `put`s returned.
    committed: Array<AtomicU64>,
    /// Per stream: a bit per sequence number delivered.
    seen: Array<AtomicU64>,
    /// Per manager client generation: how many appends returned.
    mgr_committed: Array<AtomicU64>,
}

impl Board {
    fn new(arena: &Arena) -> Board {
        let zeros = |n: usize| Array::from_fn_in(arena, n, |_| AtomicU64::new(0)).expect("arena");
        Board {
            ctl: zeros(CTL_LEN),
            committed: zeros(MAX_STREAMS),
            seen: zeros(MAX_STREAMS * WORDS),
            mgr_committed: zeros(MAX_CLIENTS),
        }
    }

    fn get(&self, i: usize) -> u64 {
        self.ctl[i].load(Ordering::Acquire)
    }

    fn add(&self, i: usize, n: u64) {
        self.ctl[i].fetch_add(n, Ordering::AcqRel);
    }

    fn flag(&self, i: usize) -> bool {
        self.get(i) != 0
    }

    fn raise(&self, i: usize) {
        self.ctl[i].store(1, Ordering::Release);
    }

    fn seen(&self, stream: usize, seq: u32) -> bool {
        let w = self.seen[stream * WORDS + seq as usize / 64].load(Ordering::Acquire);
        w & (1 << (seq % 64)) != 0
    }

    /// Marks a message delivered; false if it was already.
    fn mark(&self, stream: usize, seq: u32) -> bool {
        let bit = 1u64 << (seq % 64);
        self.seen[stream * WORDS + seq as usize / 64].fetch_or(bit, Ordering::AcqRel) & bit == 0
    }
}

/// A queue message: its stream and sequence number, a checksum, and a body that is a pure
/// function of (stream, seq), so the consumer can regenerate it.
#[derive(Serialize, Deserialize)]
struct Msg {
    stream: u32,
    seq: u32,
    sum: u64,
    body: Vec<u8>,
}

fn body_of(stream: u32, seq: u32) -> Vec<u8> {
    let mut r = Rng::new((u64::from(stream) << 32 | u64::from(seq)) ^ 0x0005_DEEC_E66D_1234);
    let k = r.below(100);
    let n = if k < 70 {
        r.below(64)
    } else if k < 97 {
        r.range(64, 4096)
    } else {
        r.range(70_000, 200_000)
    };
    r.bytes(n as usize)
}

fn checksum(stream: u32, seq: u32, body: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in stream.to_le_bytes().iter().chain(&seq.to_le_bytes()).chain(body) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn message(stream: u32, seq: u32) -> Msg {
    let body = body_of(stream, seq);
    Msg { stream, seq, sum: checksum(stream, seq, &body), body }
}

/// Checks one taken message and records it; `last` is this consumer's last sequence number
/// per stream.
fn check_message(b: &Board, m: &Msg, last: &mut std::collections::HashMap<u32, u32>) {
    if m.stream as usize >= MAX_STREAMS || m.seq >= MAX_SEQ {
        b.add(V_RANGE, 1);
        return;
    }
    if m.sum != checksum(m.stream, m.seq, &m.body) || m.body != body_of(m.stream, m.seq) {
        b.add(V_CORRUPT, 1);
        return;
    }
    if let Some(&prev) = last.get(&m.stream) {
        if m.seq <= prev {
            b.add(V_ORDER, 1);
        }
    }
    last.insert(m.stream, m.seq);
    if !b.mark(m.stream as usize, m.seq) {
        b.add(V_DUP, 1);
    }
    b.add(N_CHECKED, 1);
    b.add(N_BYTES, m.body.len() as u64);
}

// ---- participants (process targets) ------------------------------------------------------

#[derive(Serialize, Deserialize)]
struct ProducerArgs {
    q: Queue<Msg>,
    board: Board,
    stream: u32,
}

/// Set in a stream's `committed` word when its producer ended by itself (not killed).
const CLEAN_END: u64 = 1 << 63;

fn producer(a: ProducerArgs) {
    produce(&a);
    a.board.committed[a.stream as usize].fetch_or(CLEAN_END, Ordering::AcqRel);
}

fn produce(a: &ProducerArgs) {
    let b = &a.board;
    for seq in 0..MAX_SEQ {
        if b.flag(STOP_PRODUCE) {
            return;
        }
        let mut msg = message(a.stream, seq);
        let t0 = Instant::now();
        loop {
            match a.q.put_timeout(msg, Duration::from_millis(500)) {
                Ok(()) => break,
                Err(PutError::Timeout(m)) => {
                    if b.flag(STOP_PRODUCE) {
                        return;
                    }
                    if t0.elapsed() > HANG {
                        b.add(V_PUT_HANG, 1);
                        return;
                    }
                    msg = m;
                }
                Err(PutError::Closed(_)) => return,
                Err(_) => {
                    b.add(V_QUEUE, 1);
                    return;
                }
            }
        }
        b.committed[a.stream as usize].store(u64::from(seq) + 1, Ordering::Release);
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[derive(Serialize, Deserialize)]
struct ConsumerArgs {
    q: Queue<Msg>,
    board: Board,
}

fn consumer(a: ConsumerArgs) {
    let mut last = std::collections::HashMap::new();
    loop {
        match a.q.get_timeout(Duration::from_millis(100)) {
            Ok(m) => check_message(&a.board, &m, &mut last),
            Err(GetError::Timeout) | Err(GetError::Empty) => {
                if a.board.flag(STOP_CONSUME) {
                    return;
                }
            }
            Err(GetError::Closed) => return,
            Err(_) => a.board.add(V_QUEUE, 1),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct LockArgs {
    m: Mutex<[u64; 8]>,
    l: Lock,
    board: Board,
    slot: u32,
}

fn spin(us: u64) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_micros(us) {
        std::hint::spin_loop();
    }
}

/// One critical section under the mutex: `[0]` a total, `[1]` an "inside" mark, `[2 + w]`
/// worker w's count; outside a section, `[0]` is the sum of the counts and `[1]` is 0.
fn mutex_section(a: &LockArgs) {
    let b = &a.board;
    let (mut g, poisoned) = match a.m.try_lock_for(HANG) {
        Ok(g) => (g, false),
        Err(TryLockError::Poisoned(p)) => (p.into_inner(), true),
        Err(TryLockError::WouldBlock) => {
            b.add(V_LOCK_HANG, 1);
            return;
        }
    };
    let sum: u64 = g[2..].iter().sum();
    if poisoned {
        // The holder died mid-section: repair, then clear the poison.
        b.add(N_POISON, 1);
        g[0] = sum;
        g[1] = 0;
        a.m.clear_poison();
    } else if g[1] != 0 || g[0] != sum {
        b.add(V_LOCK_EXCL, 1);
        g[0] = sum;
    }
    g[1] = 1;
    g[0] += 1;
    // Long enough that some kills land inside the section.
    spin(150);
    g[2 + a.slot as usize] += 1;
    g[1] = 0;
    drop(g);
    b.add(N_LOCK_OPS, 1);
}

/// One critical section under the lock, with an "inside" word that must be 0 on entry.
fn lock_section(a: &LockArgs) {
    let b = &a.board;
    let (g, poisoned) = match a.l.try_lock_for(HANG) {
        Ok(g) => (g, false),
        Err(TryLockError::Poisoned(p)) => (p.into_inner(), true),
        Err(TryLockError::WouldBlock) => {
            b.add(V_LOCK_HANG, 1);
            return;
        }
    };
    let was = b.ctl[LOCK_INSIDE].swap(1, Ordering::AcqRel);
    if poisoned {
        b.add(N_POISON, 1);
        a.l.clear_poison();
    } else if was != 0 {
        b.add(V_LOCK_EXCL, 1);
    }
    spin(100);
    b.ctl[LOCK_INSIDE].store(0, Ordering::Release);
    drop(g);
    b.add(N_LOCK_OPS, 1);
}

fn lock_worker(a: LockArgs) {
    let mut i = 0u64;
    while !a.board.flag(STOP_WORK) {
        if i % 2 == 0 {
            mutex_section(&a);
        } else {
            lock_section(&a);
        }
        i += 1;
        std::thread::sleep(Duration::from_micros(300));
    }
}

#[derive(Serialize, Deserialize)]
struct ClientArgs {
    list: ListProxy<(u32, u32)>,
    dict: DictProxy<String, u32>,
    board: Board,
    id: u32,
}

fn manager_client(a: ClientArgs) {
    let b = &a.board;
    let key = format!("k{}", a.id);
    for seq in 0..u32::MAX {
        if b.flag(STOP_WORK) {
            return;
        }
        if a.list.append((a.id, seq)).is_err() || a.dict.insert(key.clone(), seq).is_err() {
            b.add(V_MGR, 1);
            return;
        }
        b.mgr_committed[a.id as usize].store(u64::from(seq) + 1, Ordering::Release);
        b.add(N_MGR_OPS, 2);
        if seq % 16 == 0 {
            match a.dict.get(&key) {
                Ok(Some(v)) if v == seq => {}
                Ok(_) => b.add(V_MGR_VALUE, 1),
                Err(_) => b.add(V_MGR, 1),
            }
            b.add(N_MGR_OPS, 1);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn echo(c: Connection) {
    while let Ok(m) = c.recv_bytes() {
        if c.send_bytes(&m).is_err() {
            return;
        }
    }
}

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 27)
}

fn pool_task(x: u64) -> u64 {
    spin(200);
    mix(x)
}

// ---- the driver --------------------------------------------------------------------------

fn lock<T>(m: &StdMutex<T>) -> StdMutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A participant's place: its role and the handle of the process now in it.
struct Slot {
    role: usize,
    index: usize,
    handle: StdMutex<Option<JoinHandle<()>>>,
    killed_at: StdMutex<Option<Instant>>,
}

/// What the driver threads of a round share.
struct Round<'a> {
    cfg: &'a Config,
    board: Board,
    q: &'a Queue<Msg>,
    m: &'a Mutex<[u64; 8]>,
    l: &'a Lock,
    list: ListProxy<(u32, u32)>,
    dict: DictProxy<String, u32>,
    pool: &'a Pool,
    slots: Vec<Slot>,
    next_stream: AtomicU32,
    next_client: AtomicU32,
    stop_killer: AtomicBool,
    drain: AtomicBool,
    stopped_at: StdMutex<[Option<Instant>; 3]>,
    deaths: [AtomicU64; 6],
    started: AtomicU64,
    pipe_echoes: AtomicU64,
    eof_max_us: AtomicU64,
    pool_ok: AtomicU64,
    pool_died: AtomicU64,
    violations: StdMutex<Vec<String>>,
    pids: StdMutex<Vec<Proc>>,
}

impl Round<'_> {
    fn violation(&self, v: String) {
        if self.cfg.progress {
            eprintln!("chaos: VIOLATION: {v}");
        }
        lock(&self.violations).push(v);
    }

    /// The control word that stops `role`, if any.
    fn stop_word(role: usize) -> usize {
        match role {
            PRODUCER => STOP_PRODUCE,
            CONSUMER => STOP_CONSUME,
            _ => STOP_WORK,
        }
    }

    fn stopped(&self, role: usize) -> bool {
        self.board.flag(Self::stop_word(role))
    }

    /// How long ago `role` was told to stop.
    fn stopped_for(&self, role: usize) -> Option<Duration> {
        lock(&self.stopped_at)[Self::stop_word(role)].map(|t| t.elapsed())
    }

    fn stop(&self, word: usize) {
        lock(&self.stopped_at)[word] = Some(Instant::now());
        self.board.raise(word);
    }

    fn start(&self, slot: &Slot) -> Option<Result<JoinHandle<()>, String>> {
        let b =
            Process::builder().daemon(true).name(format!("{}-{}", ROLES[slot.role], slot.index));
        let r = match slot.role {
            PRODUCER => {
                let s = self.next_stream.fetch_add(1, Ordering::AcqRel);
                if s as usize >= MAX_STREAMS {
                    return None;
                }
                let args = ProducerArgs { q: self.q.clone(), board: self.board.clone(), stream: s };
                b.start_method(StartMethod::Forkserver).target(producer, args).start()
            }
            CONSUMER => {
                let args = ConsumerArgs { q: self.q.clone(), board: self.board.clone() };
                b.start_method(StartMethod::Forkserver).target(consumer, args).start()
            }
            LOCKER => {
                let args = LockArgs {
                    m: self.m.clone(),
                    l: self.l.clone(),
                    board: self.board.clone(),
                    slot: slot.index as u32,
                };
                b.start_method(StartMethod::Spawn).target(lock_worker, args).start()
            }
            MGR_CLIENT => {
                let id = self.next_client.fetch_add(1, Ordering::AcqRel);
                if id as usize >= MAX_CLIENTS {
                    return None;
                }
                let args = ClientArgs {
                    list: self.list.clone(),
                    dict: self.dict.clone(),
                    board: self.board.clone(),
                    id,
                };
                b.start_method(StartMethod::Forkserver).target(manager_client, args).start()
            }
            _ => unreachable!("pipe peers are started by their own loop"),
        };
        Some(r.map_err(|e| e.to_string()))
    }

    /// Puts a started process in its slot.
    fn install(&self, slot: &Slot, h: JoinHandle<()>) {
        self.started.fetch_add(1, Ordering::Relaxed);
        // (A process already gone cannot be left running.)
        if let Some(id) = Proc::of_pid(h.pid()) {
            lock(&self.pids).push(id);
        }
        *lock(&slot.killed_at) = None;
        *lock(&slot.handle) = Some(h);
    }

    /// Waits for the process in `slot` to end (killing it once it outstays its stop), and
    /// files its outcome.
    fn reap(&self, slot: &Slot, deadline_after_stop: Duration) {
        let outcome = loop {
            std::thread::sleep(Duration::from_millis(5));
            let mut g = lock(&slot.handle);
            let Some(h) = g.as_mut() else { return };
            match h.try_join() {
                Err(e) if e.is_would_block() => {}
                r => {
                    *g = None;
                    break r;
                }
            }
            if self.stopped_for(slot.role).is_some_and(|d| d > deadline_after_stop) {
                self.violation(format!(
                    "a {} (pid {}) did not stop within {:?} of being told to",
                    ROLES[slot.role],
                    h.pid(),
                    deadline_after_stop
                ));
                let _ = h.kill();
                let r = h.join_timeout(Duration::from_secs(10));
                *g = None;
                match r {
                    Err(e) if e.is_timeout() => {
                        self.violation(format!("a {} could not be reaped", ROLES[slot.role]));
                        return;
                    }
                    r => break r,
                }
            }
        };
        self.file_outcome(slot, outcome);
    }

    fn file_outcome(&self, slot: &Slot, outcome: Result<(), JoinError>) {
        match outcome {
            Ok(()) => {}
            Err(JoinError::Signaled(s)) if s.0 == libc::SIGKILL => {
                self.deaths[slot.role].fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.violation(format!("a {} ended badly: {e}", ROLES[slot.role])),
        }
    }

    /// A slot's life: start a process, wait for it to end (killed or done), start the next.
    fn own(&self, slot: &Slot) {
        while !self.stopped(slot.role) {
            match self.start(slot) {
                None => {
                    // No stream ids left this round: idle until the round ends.
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Some(Err(e)) => {
                    self.violation(format!("starting a {}: {e}", ROLES[slot.role]));
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                Some(Ok(h)) => self.install(slot, h),
            }
            self.reap(slot, STOP_GRACE);
        }
    }

    /// A pipe slot: a peer process echoes what this thread sends; when the peer is killed the
    /// disconnection must arrive promptly; then a new pipe and peer.
    fn own_pipe(&self, slot: &Slot, seed: u64) {
        let mut rng = Rng::new(seed);
        while !self.stopped(slot.role) {
            let (a, b) = match Pipe::new() {
                Ok(p) => p,
                Err(e) => {
                    self.violation(format!("Pipe::new: {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let started = Process::builder()
                .daemon(true)
                .name(format!("pipe-peer-{}", slot.index))
                .start_method(StartMethod::Forkserver)
                .target(echo, b)
                .start();
            match started {
                Ok(h) => self.install(slot, h),
                Err(e) => {
                    self.violation(format!("starting a pipe peer: {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
            while !self.stopped(slot.role) {
                let n = match rng.below(10) {
                    0 => rng.range(4096, 256 << 10),
                    1..=3 => rng.range(64, 4096),
                    _ => rng.below(64),
                } as usize;
                let msg = rng.bytes(n);
                let t = Duration::from_secs(5);
                match a.send_bytes_timeout(&msg, t).and_then(|()| a.recv_bytes_timeout(t)) {
                    Ok(r) if r == msg => {
                        self.pipe_echoes.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        self.violation(format!(
                            "pipe echo differs: sent {} bytes, got {} back",
                            msg.len(),
                            r.len()
                        ));
                        break;
                    }
                    Err(e) => {
                        let killed = *lock(&slot.killed_at);
                        match (e.kind(), killed) {
                            (PipeErrorKind::Disconnected, Some(t)) => {
                                let us = t.elapsed().as_micros() as u64;
                                self.eof_max_us.fetch_max(us, Ordering::Relaxed);
                                if t.elapsed() > EOF_LIMIT {
                                    self.violation(format!(
                                        "a killed pipe peer showed up as a disconnection only after {:?}",
                                        t.elapsed()
                                    ));
                                }
                            }
                            _ => self.violation(format!(
                                "pipe to a {} peer failed: {e}",
                                if killed.is_some() { "killed" } else { "live" }
                            )),
                        }
                        break;
                    }
                }
            }
            // Our end closed: a live peer sees EOF and ends by itself.
            drop(a);
            self.reap(slot, Duration::from_secs(10));
        }
    }

    /// Maps a checked function over batches until the round stops.
    fn run_pool(&self) {
        let mut base = 0u64;
        while !self.board.flag(STOP_WORK) {
            let items: Vec<u64> = (base..base + 64).collect();
            base += 64;
            let results: Vec<_> = match self.pool.job().chunksize(1).imap(pool_task, items.clone())
            {
                Ok(it) => it.collect(),
                Err(e) => {
                    self.violation(format!("pool imap: {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            if results.len() != items.len() {
                self.violation(format!(
                    "pool lost tasks: {} results for {} items",
                    results.len(),
                    items.len()
                ));
            }
            for (x, r) in items.iter().zip(results) {
                match r {
                    Ok(v) if v == mix(*x) => {
                        self.pool_ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(v) => self.violation(format!("pool task {x} returned {v}, not {}", mix(*x))),
                    Err(e) if e.kind() == PoolErrorKind::WorkerDied => {
                        self.pool_died.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => self.violation(format!("pool task {x} failed: {e}")),
                }
            }
        }
    }

    /// The driver's own consumer (never killed): takes messages until told to drain and the
    /// queue is empty.
    fn consume(&self) {
        let mut last = std::collections::HashMap::new();
        loop {
            match self.q.get_timeout(Duration::from_millis(50)) {
                Ok(m) => check_message(&self.board, &m, &mut last),
                Err(GetError::Timeout) | Err(GetError::Empty) => {
                    if self.drain.load(Ordering::Acquire) && self.q.qsize() == 0 {
                        return;
                    }
                }
                Err(e) => {
                    self.violation(format!("the driver's get failed: {e}"));
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    /// Kills a random participant at random instants until told to stop.
    fn kill_loop(&self, seed: u64) {
        let mut rng = Rng::new(seed);
        let weights = [3u64, 2, 2, 1, 1, 2];
        let total: u64 = weights.iter().sum();
        while !self.stop_killer.load(Ordering::Acquire) {
            let (lo, hi) = self.cfg.kill_every_ms;
            std::thread::sleep(Duration::from_millis(rng.range(lo, hi)));
            let mut pick = rng.below(total);
            let mut role = 0;
            while pick >= weights[role] {
                pick -= weights[role];
                role += 1;
            }
            if role == POOL_WORKER {
                self.kill_pool_worker(&mut rng);
                continue;
            }
            let candidates: Vec<&Slot> = self.slots.iter().filter(|s| s.role == role).collect();
            if candidates.is_empty() {
                continue;
            }
            let slot = candidates[rng.below(candidates.len() as u64) as usize];
            let g = lock(&slot.handle);
            if let Some(h) = g.as_ref() {
                if h.is_alive() {
                    // Noted before the signal: its victim's peers may see the death at once.
                    *lock(&slot.killed_at) = Some(Instant::now());
                    if h.kill().is_err() {
                        *lock(&slot.killed_at) = None;
                    }
                }
            }
        }
    }

    fn kill_pool_worker(&self, rng: &mut Rng) {
        let pids = self.pool.worker_pids();
        if pids.is_empty() {
            return;
        }
        let pid = pids[rng.below(pids.len() as u64) as usize];
        // A pidfd first, then check the pid is still a worker: never a recycled pid.
        let Ok(fd) = sys::pidfd_open(pid) else { return };
        if self.pool.worker_pids().contains(&pid)
            && sys::pidfd_send_signal(std::os::fd::AsFd::as_fd(&fd), libc::SIGKILL).is_ok()
        {
            self.deaths[POOL_WORKER].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What lives through a whole run: the queue, mutex, lock, manager and pool.
struct Fixture {
    _arena: Arena,
    q: Queue<Msg>,
    m: Mutex<[u64; 8]>,
    l: Lock,
    manager: Manager,
    pool: Pool,
}

fn fixture(cfg: &Config) -> Result<Fixture, String> {
    let arena = Arena::new(8 << 20).map_err(|e| format!("arena: {e}"))?;
    let q = Queue::builder()
        .capacity(QUEUE_CAPACITY)
        .build_in(&arena)
        .map_err(|e| format!("queue: {e}"))?;
    let m = Mutex::new_in(&arena, [0u64; 8]).map_err(|e| format!("mutex: {e}"))?;
    let l = Lock::new_in(&arena).map_err(|e| format!("lock: {e}"))?;
    let manager = Manager::start().map_err(|e| format!("manager: {e}"))?;
    let pool = Pool::builder()
        .processes(cfg.pool_workers.max(1))
        .start_method(StartMethod::Forkserver)
        .task_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("pool: {e}"))?;
    Ok(Fixture { _arena: arena, q, m, l, manager, pool })
}

/// Runs the chaos workload for `cfg.duration` and returns its figures; the caller fails on
/// any violation. Every wait inside is bounded.
pub fn run(cfg: &Config) -> Report {
    let t0 = Instant::now();
    let mut report = Report::default();
    let fx = match fixture(cfg) {
        Ok(f) => f,
        Err(e) => {
            report.violations.push(format!("setting up: {e}"));
            return report;
        }
    };
    report.pids.extend(Proc::of_pid(fx.manager.server_pid()));
    let mut n = 0u64;
    loop {
        let left = cfg.duration.saturating_sub(t0.elapsed());
        if n > 0 && left < Duration::from_secs(1) {
            break;
        }
        let len = cfg.round.min(left).max(Duration::from_secs(1));
        let r = round(cfg, &fx, len, cfg.seed.wrapping_add(n.wrapping_mul(0x9E37_79B9)));
        if cfg.progress {
            eprintln!(
                "chaos: round {} ({:.0} s): {} kills, {} messages, {} pool tasks, {} violations",
                n + 1,
                t0.elapsed().as_secs_f64(),
                r.total_kills(),
                r.messages_checked,
                r.pool_tasks(),
                r.violations.len()
            );
        }
        report.absorb(r);
        n += 1;
    }
    report.pids.extend(fx.pool.worker_pids().into_iter().filter_map(Proc::of_pid));
    teardown(fx, &mut report);
    report.elapsed = t0.elapsed();
    report
}

fn teardown(fx: Fixture, report: &mut Report) {
    fx.pool.close();
    if let Err(e) = fx.pool.join_timeout(Duration::from_secs(20)) {
        report.violations.push(format!("pool join: {e}"));
        fx.pool.terminate();
    }
    if let Err(e) = fx.manager.shutdown() {
        report.violations.push(format!("manager shutdown: {e}"));
    }
    drop(fx);
}

fn round(cfg: &Config, fx: &Fixture, len: Duration, seed: u64) -> Report {
    let mut report = Report { rounds: 1, ..Report::default() };
    let arena = match Arena::new(4 << 20) {
        Ok(a) => a,
        Err(e) => {
            report.violations.push(format!("round arena: {e}"));
            return report;
        }
    };
    let (list, dict) = match (fx.manager.list(), fx.manager.dict()) {
        (Ok(l), Ok(d)) => (l, d),
        (l, d) => {
            report.violations.push(format!(
                "manager list/dict: {:?} {:?}",
                l.err().map(|e| e.to_string()),
                d.err().map(|e| e.to_string())
            ));
            return report;
        }
    };
    let mut slots = Vec::new();
    for (role, n) in [
        (PRODUCER, cfg.producers),
        (CONSUMER, cfg.consumers),
        (LOCKER, cfg.lockers.min(6)),
        (MGR_CLIENT, cfg.manager_clients),
        (PIPE_PEER, cfg.pipes),
    ] {
        for index in 0..n {
            slots.push(Slot {
                role,
                index,
                handle: StdMutex::new(None),
                killed_at: StdMutex::new(None),
            });
        }
    }
    let r = Round {
        cfg,
        board: Board::new(&arena),
        q: &fx.q,
        m: &fx.m,
        l: &fx.l,
        list,
        dict,
        pool: &fx.pool,
        slots,
        next_stream: AtomicU32::new(0),
        next_client: AtomicU32::new(0),
        stop_killer: AtomicBool::new(false),
        drain: AtomicBool::new(false),
        stopped_at: StdMutex::new([None; 3]),
        deaths: Default::default(),
        started: AtomicU64::new(0),
        pipe_echoes: AtomicU64::new(0),
        eof_max_us: AtomicU64::new(0),
        pool_ok: AtomicU64::new(0),
        pool_died: AtomicU64::new(0),
        violations: StdMutex::new(Vec::new()),
        pids: StdMutex::new(Vec::new()),
    };
    std::thread::scope(|s| {
        let r = &r;
        let mut owners: [Vec<std::thread::ScopedJoinHandle<'_, ()>>; 5] = Default::default();
        for (i, slot) in r.slots.iter().enumerate() {
            let h = if slot.role == PIPE_PEER {
                let seed = seed ^ (i as u64) << 40;
                s.spawn(move || r.own_pipe(slot, seed))
            } else {
                s.spawn(move || r.own(slot))
            };
            owners[slot.role].push(h);
        }
        let pool = s.spawn(|| r.run_pool());
        let consumer = s.spawn(|| r.consume());
        let killer = s.spawn(move || r.kill_loop(seed));
        let end = Instant::now() + len;
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Wind down: no more kills; producers and the other workers stop; then consumers;
        // then the driver drains what is left.
        r.stop_killer.store(true, Ordering::Release);
        let _ = killer.join();
        r.stop(STOP_PRODUCE);
        r.stop(STOP_WORK);
        for h in std::mem::take(&mut owners[PRODUCER]) {
            let _ = h.join();
        }
        r.stop(STOP_CONSUME);
        for h in std::mem::take(&mut owners[CONSUMER]) {
            let _ = h.join();
        }
        r.drain.store(true, Ordering::Release);
        let _ = consumer.join();
        for hs in owners {
            for h in hs {
                let _ = h.join();
            }
        }
        let _ = pool.join();
    });
    verify(&r, &mut report);
    usable(&r, fx, &mut report);
    report
}

/// Checks the invariants of the round's shared tables and fills in the figures.
fn verify(r: &Round<'_>, report: &mut Report) {
    let b = &r.board;
    for (i, name) in V_NAMES.iter().enumerate() {
        let n = b.get(V_FIRST + i);
        if n > 0 {
            report.violations.push(format!("{name}: {n} times"));
        }
    }
    for (k, d) in report.kills.iter_mut().zip(&r.deaths) {
        *k = d.load(Ordering::Relaxed);
    }
    // Queue: every acknowledged put delivered (but one per killed consumer), nothing beyond.
    let streams = (r.next_stream.load(Ordering::Acquire) as usize).min(MAX_STREAMS);
    let mut lost = 0u64;
    for s in 0..streams {
        let raw = b.committed[s].load(Ordering::Acquire);
        let (c, clean) = (raw & !CLEAN_END, raw & CLEAN_END != 0);
        report.messages_put += c;
        for seq in 0..MAX_SEQ {
            let seen = b.seen(s, seq);
            if seen && u64::from(seq) > c {
                report.violations.push(format!(
                    "stream {s}: message {seq} delivered but its producer acknowledged only {c}"
                ));
            }
            if !seen && u64::from(seq) < c {
                lost += 1;
            }
            if !seen && !clean && u64::from(seq) == c && c < u64::from(MAX_SEQ) {
                report.puts_cut_short += 1;
            }
        }
    }
    let allowed = report.kills[CONSUMER];
    if lost > allowed {
        report.violations.push(format!(
            "{lost} acknowledged messages never delivered; at most {allowed} allowed (one per killed consumer)"
        ));
    }
    report.messages_lost = lost;
    report.messages_checked = b.get(N_CHECKED);
    report.bytes_checked = b.get(N_BYTES);
    // Mutex: consistent, and the sum of the workers' counts.
    match r.m.try_lock_for(HANG) {
        Ok(g) => {
            let sum: u64 = g[2..].iter().sum();
            if g[1] != 0 || g[0] != sum {
                report.violations.push(format!("mutex state inconsistent: {:?}", *g));
            }
        }
        Err(TryLockError::Poisoned(p)) => {
            // The last holder was killed after the last check: repair for the next round.
            let mut g = p.into_inner();
            let sum: u64 = g[2..].iter().sum();
            g[0] = sum;
            g[1] = 0;
            r.m.clear_poison();
        }
        Err(TryLockError::WouldBlock) => {
            report.violations.push("the mutex stayed locked after every worker ended".into())
        }
    }
    report.lock_ops = b.get(N_LOCK_OPS);
    report.poison_recoveries = b.get(N_POISON);
    report.manager_ops = b.get(N_MGR_OPS);
    verify_manager(r, report);
    report.pipe_echoes = r.pipe_echoes.load(Ordering::Relaxed);
    report.eof_max = Duration::from_micros(r.eof_max_us.load(Ordering::Relaxed));
    report.pool_tasks_ok = r.pool_ok.load(Ordering::Relaxed);
    report.pool_tasks_died = r.pool_died.load(Ordering::Relaxed);
    report.started = r.started.load(Ordering::Relaxed);
    report.violations.extend(std::mem::take(&mut *lock(&r.violations)));
    report.pids.extend(std::mem::take(&mut *lock(&r.pids)));
}

/// The managed list holds each client's appends once, in order, through at least its last
/// acknowledged one (and at most one more); the dict holds its last or next-to-last value.
fn verify_manager(r: &Round<'_>, report: &mut Report) {
    let b = &r.board;
    let entries = match r.list.to_vec() {
        Ok(v) => v,
        Err(e) => {
            report.violations.push(format!("manager list unreadable: {e}"));
            return;
        }
    };
    report.manager_entries_checked += entries.len() as u64;
    let clients = (r.next_client.load(Ordering::Acquire) as usize).min(MAX_CLIENTS);
    let mut next = vec![0u64; clients];
    for (id, seq) in &entries {
        let Some(n) = next.get_mut(*id as usize) else {
            report.violations.push(format!("manager list holds an unknown client {id}"));
            continue;
        };
        if u64::from(*seq) != *n {
            report.violations.push(format!(
                "manager list: client {id} entry {seq} where {n} was due (lost, duplicated or reordered)"
            ));
        }
        *n = u64::from(*seq) + 1;
    }
    for (id, n) in next.iter().enumerate() {
        let c = b.mgr_committed[id].load(Ordering::Acquire);
        if *n != c && *n != c + 1 {
            report.violations.push(format!(
                "manager list: client {id} has {n} entries but {c} appends were acknowledged"
            ));
        }
        match r.dict.get(&format!("k{id}")) {
            Ok(None) if c == 0 => {}
            Ok(Some(v)) if u64::from(v) + 1 >= c && u64::from(v) <= c => {}
            Ok(v) => report.violations.push(format!(
                "manager dict: client {id} holds {v:?} after {c} acknowledged updates"
            )),
            Err(e) => report.violations.push(format!("manager dict unreadable: {e}")),
        }
    }
}

/// Every primitive still works after the round's kills.
fn usable(r: &Round<'_>, fx: &Fixture, report: &mut Report) {
    let mut fail = |what: &str, e: String| report.violations.push(format!("{what} unusable: {e}"));
    let probe = Msg { stream: u32::MAX, seq: 7, sum: 0, body: b"probe".to_vec() };
    match fx
        .q
        .put_timeout(probe, HANG)
        .map_err(|e| e.to_string())
        .and_then(|()| fx.q.get_timeout(HANG).map_err(|e| e.to_string()))
    {
        Ok(m) if m.stream == u32::MAX && m.body == b"probe" => {}
        Ok(_) => fail("queue", "a stray message after the drain".into()),
        Err(e) => fail("queue", e),
    }
    match fx.m.try_lock_for(HANG) {
        Ok(_) => {}
        Err(e) => fail("mutex", e.to_string()),
    }
    match fx.l.try_lock_for(HANG) {
        Ok(_) => {}
        Err(TryLockError::Poisoned(p)) => {
            drop(p.into_inner());
            fx.l.clear_poison();
        }
        Err(e) => fail("lock", e.to_string()),
    }
    if let Err(e) = r.list.len() {
        fail("manager", e.to_string());
    }
    let echoed = (|| -> Result<(), String> {
        let (a, b) = Pipe::new().map_err(|e| e.to_string())?;
        let mut h = Process::builder()
            .start_method(StartMethod::Forkserver)
            .target(echo, b)
            .start()
            .map_err(|e| e.to_string())?;
        a.send_bytes(b"ping").map_err(|e| e.to_string())?;
        let got = a.recv_bytes_timeout(HANG).map_err(|e| e.to_string())?;
        drop(a);
        h.join_timeout(HANG).map_err(|e| {
            if e.is_timeout() {
                "the peer did not end at EOF".to_string()
            } else {
                e.to_string()
            }
        })?;
        if got != b"ping" {
            return Err("echo differs".into());
        }
        Ok(())
    })();
    if let Err(e) = echoed {
        fail("pipe", e);
    }
    match fx.pool.map(pool_task, 0..8u64) {
        Ok(v) if v == (0..8).map(mix).collect::<Vec<_>>() => {}
        Ok(_) => fail("pool", "wrong results".into()),
        Err(e) => fail("pool", e.to_string()),
    }
}
