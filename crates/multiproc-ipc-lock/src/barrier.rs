//! [`Barrier`]: Python's `multiprocessing.Barrier` (parties, action, timeout, abort, reset).

use crate::error::{Error, ErrorKind, Result};
use crate::ident;
use crate::wait::{self, Deadline, Wake};
use multiproc_arena::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use multiproc_arena::{Arena, Shared};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The most parties a [`Barrier`] may have.
pub const BARRIER_MAX_PARTIES: u32 = ARRIVED;

/// Parties whose liveness a barrier watches while they wait (the first this many arrivals of
/// each round).
#[cfg(not(multiproc_loom))]
const WATCHED: usize = 64;
#[cfg(multiproc_loom)]
const WATCHED: usize = 3;

const ARRIVED: u32 = 0xfff;
const GEN_SHIFT: u32 = 12;
const GEN_MASK: u32 = 0xfff;
const HIST_SHIFT: u32 = 24;
const HIST_MASK: u32 = 0x7f;
const HIST_LEN: u32 = 7;
const BROKEN: u32 = 1 << 31;

fn arrived(v: u32) -> u32 {
    v & ARRIVED
}
fn generation(v: u32) -> u32 {
    (v >> GEN_SHIFT) & GEN_MASK
}
fn history(v: u32) -> u32 {
    (v >> HIST_SHIFT) & HIST_MASK
}

/// The word that opens round `g + 1` after round `g` (whose word was `v`) ended.
fn next_round(v: u32, broken: bool) -> u32 {
    let g = (generation(v) + 1) & GEN_MASK;
    let h = ((history(v) << 1) | broken as u32) & HIST_MASK;
    (h << HIST_SHIFT) | (g << GEN_SHIFT)
}

#[repr(C)]
pub(crate) struct BarrierState {
    /// The futex word: the whole state, so that every decision reads one snapshot.
    ///
    /// | bits    | meaning                                                            |
    /// |---------|--------------------------------------------------------------------|
    /// | 0..=11  | parties arrived in this round (`parties` = the last one is tripping) |
    /// | 12..=23 | round number (wraps)                                               |
    /// | 24..=30 | how the 7 previous rounds ended, newest in bit 24: 1 = broken       |
    /// | 31      | `BROKEN`: this round is broken (abort, timeout, action panic, death) |
    ///
    /// - arrive: CAS `arrived + 1`; the last arrival CASes to `parties` (tripping), runs the
    ///   action, then CASes to the next round with outcome 0 and wakes everyone;
    /// - a waiter returns when the round number moves on, reading its round's outcome from
    ///   the history bits of the same snapshot, or when `BROKEN` is set in its round;
    /// - break (abort, timeout, action panic, a waiting party found dead): set `BROKEN`;
    /// - reset: CAS to the next round with outcome "broken" if anyone was waiting.
    word: AtomicU32,
    parties: u32,
    /// Default timeout of `wait` in nanoseconds, `u64::MAX` for none.
    timeout_ns: u64,
    /// Per arrival index: the identity of the party that waits there (written first), so a
    /// waiter can break the barrier when a waiting party died...
    watched: [AtomicU64; WATCHED],
    /// ...and the round it waits in (written second, with Release). A reader that finds its
    /// round here may read a later round's identity beside it only once its own round is
    /// over, when breaking it is a no-op.
    watched_round: [AtomicU32; WATCHED],
}

crate::cell::plain_state!(BarrierState, [u64; 2 + WATCHED + WATCHED / 2]);

impl BarrierState {
    fn watch(&self, index: u32, round: u32) {
        let i = index as usize;
        if let (Some(w), Some(r)) = (self.watched.get(i), self.watched_round.get(i)) {
            w.store(ident::me().id, Ordering::Relaxed);
            r.store(round, Ordering::Release);
        }
    }

    /// Whether the kernel proved that a party registered in round `round` (word `v`) died.
    fn a_party_died(&self, v: u32, round: u32) -> bool {
        let n = (arrived(v) as usize).min(WATCHED);
        (0..n).any(|i| {
            self.watched_round[i].load(Ordering::Acquire) == round
                && !ident::alive(self.watched[i].load(Ordering::Relaxed))
        })
    }

    /// Sets `BROKEN` in round `round` unless it is already over; wakes everyone.
    fn break_round(&self, round: u32) {
        let mut v = self.word.load(Ordering::Relaxed);
        while generation(v) == round && v & BROKEN == 0 {
            match self.word.compare_exchange_weak(
                v,
                v | BROKEN,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(x) => v = x,
            }
        }
        wait::wake_all(&self.word);
    }

    /// The outcome of round `round` seen from the later word `v`: `Some(true)` = tripped.
    fn outcome(round: u32, v: u32) -> bool {
        let d = generation(v).wrapping_sub(round) & GEN_MASK;
        if d == 0 || d > HIST_LEN {
            // Slept through more rounds than the history holds: report it broken.
            return false;
        }
        history(v) & (1 << (d - 1)) == 0
    }
}

/// Runs once per round in the last party to arrive, before any party is released.
type Action = Arc<dyn Fn() + Send + Sync>;

/// A reusable barrier for a fixed number of parties (Python's `multiprocessing.Barrier`).
///
/// [`wait`](Self::wait) blocks until `parties` calls are waiting, then releases them all and
/// returns each its arrival index (`0..parties`). An optional action runs once per round,
/// in the last party to arrive, before any is released. The barrier breaks — every waiting
/// and later `wait` fails with [`BrokenBarrier`](ErrorKind::BrokenBarrier) until
/// [`reset`](Self::reset) — on [`abort`](Self::abort), on a timeout of any party, when the
/// action panics, and (beyond Python) when a waiting party's process dies: waiters check
/// the liveness of the first 64 parties of the round every 20 ms, so survivors learn it
/// within about that. A party that dies *before* arriving cannot be told from a late one:
/// use a timeout.
///
/// The action is process-local: a forked child inherits it, a handle received through
/// handle transfer has none (set one with [`set_action`](Self::set_action)).
///
/// ```
/// use multiproc_ipc_lock::Barrier;
/// let b = Barrier::new(1).unwrap();
/// assert_eq!(b.wait().unwrap(), 0);
/// assert_eq!(b.wait().unwrap(), 0);
/// assert!(Barrier::new(0).is_err());
/// ```
#[derive(Clone)]
pub struct Barrier {
    state: Shared<BarrierState>,
    action: Option<Action>,
}

/// Builds a [`Barrier`] with an action and a default timeout: `Barrier::builder(5)
/// .action(f).timeout(d).build()`.
pub struct BarrierBuilder {
    parties: u32,
    action: Option<Action>,
    timeout: Option<Duration>,
}

impl BarrierBuilder {
    /// Runs `f` once per round in the last party to arrive, before the others are released.
    pub fn action(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.action = Some(Arc::new(f));
        self
    }

    /// The default timeout of [`Barrier::wait`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn state(&self) -> Result<BarrierState> {
        if self.parties == 0 || self.parties > BARRIER_MAX_PARTIES {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("a barrier needs 1..={BARRIER_MAX_PARTIES} parties, not {}", self.parties),
            ));
        }
        Ok(BarrierState {
            word: AtomicU32::new(0),
            parties: self.parties,
            timeout_ns: self
                .timeout
                .map_or(u64::MAX, |d| d.as_nanos().min(u64::MAX as u128 - 1) as u64),
            watched: std::array::from_fn(|_| AtomicU64::new(0)),
            watched_round: std::array::from_fn(|_| AtomicU32::new(0)),
        })
    }

    /// Creates the barrier in the [global arena](Arena::global).
    pub fn build(self) -> Result<Barrier> {
        let st = self.state()?;
        Ok(Barrier { state: Shared::new(st)?, action: self.action })
    }

    /// Creates the barrier in `arena`.
    pub fn build_in(self, arena: &Arena) -> Result<Barrier> {
        let st = self.state()?;
        Ok(Barrier { state: Shared::new_in(arena, st)?, action: self.action })
    }

    /// Creates the barrier under `name`, for processes that share no parent (see
    /// [`Lock::create_named`](crate::Lock::create_named); the action runs only in the
    /// processes that set one). `AlreadyExists` if the name is taken.
    #[cfg(not(multiproc_loom))]
    pub fn create_named(self, name: &str) -> Result<Barrier> {
        let st = self.state()?;
        Ok(Barrier { state: Shared::create_named(name, st)?, action: self.action })
    }
}

impl fmt::Debug for BarrierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierBuilder")
            .field("parties", &self.parties)
            .field("action", &self.action.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Barrier {
    /// A barrier for `parties` parties, no action, no default timeout, in the
    /// [global arena](Arena::global). `parties == 0` is an error of kind
    /// [`InvalidArgument`](ErrorKind::InvalidArgument), as is more than
    /// [`BARRIER_MAX_PARTIES`].
    pub fn new(parties: u32) -> Result<Barrier> {
        Self::builder(parties).build()
    }

    /// A barrier for `parties` parties in `arena`.
    pub fn new_in(arena: &Arena, parties: u32) -> Result<Barrier> {
        Self::builder(parties).build_in(arena)
    }

    /// A builder, to add an action or a default timeout.
    pub fn builder(parties: u32) -> BarrierBuilder {
        BarrierBuilder { parties, action: None, timeout: None }
    }

    /// Opens the barrier another process created under `name` (no action in this process):
    /// `NotFound` if there is none, `WrongType` if the name holds another kind of object.
    #[cfg(not(multiproc_loom))]
    pub fn open(name: &str) -> Result<Barrier> {
        Ok(Barrier { state: Shared::open_named(name)?, action: None })
    }

    /// Sets (or replaces) this handle's action; see [`Barrier`].
    pub fn set_action(&mut self, f: impl Fn() + Send + Sync + 'static) {
        self.action = Some(Arc::new(f));
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        self.state.parties
    }

    /// The default timeout, if any.
    pub fn timeout(&self) -> Option<Duration> {
        (self.state.timeout_ns != u64::MAX).then(|| Duration::from_nanos(self.state.timeout_ns))
    }

    /// How many parties wait in the current round (0 while it is being released or broken).
    pub fn n_waiting(&self) -> u32 {
        let v = self.state.word.load(Ordering::Relaxed);
        if v & BROKEN != 0 || arrived(v) >= self.state.parties {
            0
        } else {
            arrived(v)
        }
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        self.state.word.load(Ordering::Relaxed) & BROKEN != 0
    }

    /// Waits for the other parties (with the default timeout, if the barrier has one);
    /// returns this party's arrival index in `0..parties`.
    pub fn wait(&self) -> Result<usize> {
        self.wait_deadline(&mut match self.timeout() {
            Some(t) => Deadline::after(t),
            None => Deadline::never(),
        })
    }

    /// Waits at most `timeout`; a timeout breaks the barrier for every party.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize> {
        self.wait_deadline(&mut Deadline::after(timeout))
    }

    fn broken_error() -> Error {
        ErrorKind::BrokenBarrier.into()
    }

    fn wait_deadline(&self, dl: &mut Deadline) -> Result<usize> {
        let st = &*self.state;
        let parties = st.parties;
        loop {
            let v = st.word.load(Ordering::Acquire);
            if v & BROKEN != 0 {
                return Err(Self::broken_error());
            }
            let a = arrived(v);
            if a >= parties {
                // The last party of this round runs the action: wait for the next round (then
                // arrive, and if our deadline passed meanwhile, break that round as a timeout
                // does). If the action's party dies, break this round.
                if wait::wait(&st.word, v, &mut Deadline::never(), true) == Wake::Poll
                    && st.a_party_died(v, generation(v))
                {
                    st.break_round(generation(v));
                }
                continue;
            }
            if st.word.compare_exchange(v, v + 1, Ordering::AcqRel, Ordering::Relaxed).is_err() {
                continue;
            }
            let round = generation(v);
            st.watch(a, round);
            if a + 1 == parties {
                return self.trip(v + 1, a);
            }
            return self.wait_round(round, a, dl);
        }
    }

    /// The last arrival: run the action, then open the next round.
    fn trip(&self, v: u32, index: u32) -> Result<usize> {
        let st = &*self.state;
        if let Some(f) = &self.action {
            if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f())) {
                st.break_round(generation(v));
                std::panic::resume_unwind(p);
            }
        }
        let ok = st
            .word
            .compare_exchange(v, next_round(v, false), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        wait::wake_all(&st.word);
        if ok {
            Ok(index as usize)
        } else {
            // Aborted, reset or timed out while the action ran.
            Err(Self::broken_error())
        }
    }

    fn wait_round(&self, round: u32, index: u32, dl: &mut Deadline) -> Result<usize> {
        let st = &*self.state;
        // The last party often comes within microseconds: spin before the futex.
        wait::spin(|| {
            let w = st.word.load(Ordering::Relaxed);
            generation(w) != round || w & BROKEN != 0
        });
        loop {
            let w = st.word.load(Ordering::Acquire);
            if generation(w) != round {
                return if BarrierState::outcome(round, w) {
                    Ok(index as usize)
                } else {
                    Err(Self::broken_error())
                };
            }
            if w & BROKEN != 0 {
                return Err(Self::broken_error());
            }
            match wait::wait(&st.word, w, dl, true) {
                Wake::Woken => {}
                Wake::Poll => {
                    if st.a_party_died(w, round) {
                        st.break_round(round);
                    }
                }
                Wake::TimedOut => st.break_round(round),
            }
        }
    }

    /// Breaks the barrier: every waiting and later [`wait`](Self::wait) fails until
    /// [`reset`](Self::reset).
    pub fn abort(&self) {
        let st = &*self.state;
        st.word.fetch_or(BROKEN, Ordering::Release);
        wait::wake_all(&st.word);
    }

    /// Returns the barrier to its empty state; parties waiting now fail with
    /// [`BrokenBarrier`](ErrorKind::BrokenBarrier). Also repairs a broken barrier.
    pub fn reset(&self) {
        let st = &*self.state;
        let mut v = st.word.load(Ordering::Relaxed);
        loop {
            let waiters = arrived(v) > 0 || v & BROKEN != 0;
            match st.word.compare_exchange_weak(
                v,
                next_round(v, waiters),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(x) => v = x,
            }
        }
        wait::wake_all(&st.word);
    }

    /// Whether two handles name the same barrier.
    pub fn same(&self, other: &Barrier) -> bool {
        std::ptr::eq(&*self.state, &*other.state)
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("n_waiting", &self.n_waiting())
            .field("broken", &self.is_broken())
            .field("action", &self.action.is_some())
            .finish()
    }
}

impl serde::Serialize for Barrier {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.state.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Barrier {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Barrier { state: Shared::deserialize(d)?, action: None })
    }
}
