//! loom models of the ring protocol (`cargo xtask loom -p multiproc-ipc-queue`).
//!
//! Processes are loom threads over a heap-backed ring (4 or 8 slots); each slot's payload is
//! a loom `UnsafeCell`, so a producer writing a slot while a consumer reads it is reported as
//! a data race. A process "dies" by clearing its liveness flag and stopping between two
//! steps, leaking what it held (as SIGKILL does); the survivors must recover. Futex waits
//! are modelled exactly (the arena's futex model, `multiproc_arena::futex`): a sleeper nobody wakes is a loom
//! deadlock, so every model also checks the wake-ups.
#![cfg(multiproc_loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use multiproc_arena::futex::{self, model_death};
use multiproc_arena::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use multiproc_ipc_queue::ring::{
    notify, notify_after_sc, prepare_wait, Block, Header, Mem, Party, Refused, Ring, StreamEntry,
    REC_HDR, SLOT_BYTES,
};
use multiproc_ipc_queue::spill::{self, SpillEntry};
use multiproc_ipc_queue::stream;

struct Data(Vec<UnsafeCell<[u8; SLOT_BYTES]>>);
// SAFETY: access to each cell is serialised by the ring protocol, which is what loom checks.
unsafe impl Sync for Data {}

struct HeapMem {
    header: Header,
    slots: Vec<AtomicU64>,
    parties: Vec<Party>,
    streams: Vec<StreamEntry>,
    spills: Vec<SpillEntry>,
    /// One word per spill entry stands for its region of the spill file: a loom cell, so
    /// two parties touching a region at once is a data race.
    regions: Vec<UnsafeCell<u64>>,
    data: Data,
    alive: Vec<AtomicBool>,
}

impl HeapMem {
    fn new(log_slots: u32, parties: usize, maxsize: u64) -> Self {
        let n = 1usize << log_slots;
        HeapMem {
            header: Header::new(log_slots, parties as u32, 1, maxsize, 0),
            slots: (0..n).map(|_| AtomicU64::new(0)).collect(),
            parties: (0..parties).map(|_| Party::new()).collect(),
            streams: vec![StreamEntry::new()],
            spills: vec![SpillEntry::new()],
            regions: vec![UnsafeCell::new(0)],
            data: Data((0..n).map(|_| UnsafeCell::new([0u8; SLOT_BYTES])).collect()),
            alive: (0..parties).map(|_| AtomicBool::new(true)).collect(),
        }
    }
}

impl Mem for HeapMem {
    fn header(&self) -> &Header {
        &self.header
    }
    fn slots(&self) -> &[AtomicU64] {
        &self.slots
    }
    fn parties(&self) -> &[Party] {
        &self.parties
    }
    fn streams(&self) -> &[StreamEntry] {
        &self.streams
    }
    fn spills(&self) -> &[SpillEntry] {
        &self.spills
    }
    fn spill_discard(&self, e: usize, _len: u64) {
        // SAFETY: loom checks that the entry's owner alone touches the region now.
        self.regions[e].with_mut(|p| unsafe { *p = 0 });
    }
    unsafe fn write(&self, mut off: usize, mut src: &[u8]) {
        while !src.is_empty() {
            let (slot, at) = (off / SLOT_BYTES, off % SLOT_BYTES);
            let n = src.len().min(SLOT_BYTES - at);
            self.data.0[slot].with_mut(|p| {
                // SAFETY: loom checks that nobody else accesses the cell now.
                unsafe { (&mut *p)[at..at + n].copy_from_slice(&src[..n]) }
            });
            src = &src[n..];
            off += n;
        }
    }
    unsafe fn read(&self, mut off: usize, mut dst: &mut [u8]) {
        while !dst.is_empty() {
            let (slot, at) = (off / SLOT_BYTES, off % SLOT_BYTES);
            let n = dst.len().min(SLOT_BYTES - at);
            self.data.0[slot].with(|p| {
                // SAFETY: loom checks that nobody writes the cell now.
                dst[..n].copy_from_slice(unsafe { &(&*p)[at..at + n] })
            });
            dst = &mut dst[n..];
            off += n;
        }
    }
    unsafe fn view(&self, _off: usize, _len: usize) -> Option<&[u8]> {
        None
    }
    fn alive(&self, party: u32) -> bool {
        self.alive[party as usize].load(Ordering::SeqCst)
    }
}

type Q = Arc<Ring<HeapMem>>;

fn ring(log_slots: u32, parties: usize) -> Q {
    Arc::new(Ring::new(HeapMem::new(log_slots, parties, 0)))
}

/// Checks `f` with loom over every interleaving, each on a fresh ring of `2^log_slots` slots
/// and `parties` parties (no item limit).
fn model(log_slots: u32, parties: usize, f: impl Fn(Q) + Send + Sync + 'static) {
    loom::model(move || f(ring(log_slots, parties)));
}

/// Runs `f` on a new model thread (a process) with its own handle on `q`.
fn spawn<R: Send + 'static>(
    q: &Q,
    f: impl FnOnce(&Ring<HeapMem>) -> R + Send + 'static,
) -> thread::JoinHandle<R> {
    let q = q.clone();
    thread::spawn(move || f(&q))
}

/// Party `me` is killed here: its liveness flag clears and the futex model wakes every
/// sleeper to poll (as the real waits' poll timers would).
fn die(q: &Ring<HeapMem>, me: u32) {
    q.mem.alive[me as usize].store(false, Ordering::SeqCst);
    model_death();
}

/// Party `me` takes the record at the head and is killed holding it.
fn take_and_die(q: &Ring<HeapMem>, me: u32) {
    let c = q.take(me, Block::Forever).unwrap();
    std::mem::forget(c);
    die(q, me);
}

/// Puts a message of `len` bytes, every byte `tag`.
fn put(q: &Ring<HeapMem>, me: u32, tag: u8, len: usize) -> Result<(), Refused> {
    let mut buf = vec![tag; REC_HDR + len];
    buf[..4].copy_from_slice(&(len as u32).to_le_bytes());
    buf[4..8].fill(0);
    let span = buf.len().div_ceil(SLOT_BYTES) as u32;
    let mut r = q.reserve(me, span, Block::Forever)?;
    r.prepare(me, Block::Forever)?;
    r.write(0, &buf);
    r.commit();
    Ok(())
}

/// Takes the next message: (tag, len), checking it is whole.
fn get(q: &Ring<HeapMem>, me: u32, block: Block) -> Result<(u8, usize), Refused> {
    loop {
        let c = q.take(me, block)?;
        if c.discard {
            continue;
        }
        let mut hdr = [0u8; REC_HDR];
        c.read(0, &mut hdr);
        let len = u32::from_le_bytes(hdr[..4].try_into().unwrap()) as usize;
        let mut body = vec![0u8; len];
        c.read(REC_HDR, &mut body);
        let tag = body.first().copied().unwrap_or(0);
        assert!(body.iter().all(|&b| b == tag), "torn message");
        return Ok((tag, len));
    }
}

/// Party 0 puts `msgs` (tag, len) on its own thread while party 1 gets `expect`, in order
/// and whole, blocking on both sides.
fn put_while_getting(q: &Q, msgs: &'static [(u8, usize)], expect: &[(u8, usize)]) {
    let p = spawn(q, move |q| {
        for &(tag, len) in msgs {
            put(q, 0, tag, len).unwrap();
        }
    });
    for &m in expect {
        assert_eq!(get(q, 1, Block::Forever).unwrap(), m);
    }
    p.join().unwrap();
}

/// One producer, one consumer: reserve/commit/consume in order, with a 2-slot record.
#[test]
fn spsc_reserve_commit_consume() {
    model(2, 2, |q| {
        // The second message takes two slots.
        put_while_getting(&q, &[(1, 10), (2, 70)], &[(1, 10), (2, 70)]);
        assert_eq!(q.len(), 0);
    });
}

/// Records wrap around the end of a 4-slot ring and reuse released slots (laps).
#[test]
fn wrap_around() {
    model(2, 2, |q| {
        put(&q, 0, 9, 1).unwrap();
        put(&q, 0, 8, 1).unwrap();
        assert_eq!(get(&q, 1, Block::No).unwrap(), (9, 1));
        // Slots 2,3, then slots 0,1 (the second waits for the consumer).
        put_while_getting(&q, &[(1, 70), (2, 70)], &[(8, 1), (1, 70), (2, 70)]);
    });
}

/// Two producers race for the tail; the consumer gets each message once.
#[test]
fn mpsc_exactly_once() {
    model(2, 3, |q| {
        let producers: Vec<_> =
            (0..2u32).map(|p| spawn(&q, move |q| put(q, p, 10 + p as u8, 3).unwrap())).collect();
        let mut got =
            [get(&q, 2, Block::Forever).unwrap().0, get(&q, 2, Block::Forever).unwrap().0];
        for p in producers {
            p.join().unwrap();
        }
        got.sort_unstable();
        assert_eq!(got, [10, 11]);
    });
}

/// Two consumers race for the head (and help each other advance it): each message once, and
/// a consumer's own messages in order.
#[test]
fn spmc_exactly_once() {
    model(2, 3, |q| {
        put(&q, 0, 1, 1).unwrap();
        put(&q, 0, 2, 70).unwrap();
        let c = spawn(&q, |q| get(q, 1, Block::No).map(|m| m.0).ok());
        let mine = get(&q, 2, Block::No).map(|m| m.0).ok();
        let theirs = c.join().unwrap();
        let mut all: Vec<u8> = [mine, theirs].into_iter().flatten().collect();
        while let Ok((t, _)) = get(&q, 2, Block::No) {
            all.push(t);
        }
        all.sort_unstable();
        assert_eq!(all, [1, 2]);
    });
}

/// `close` racing a put: a consumer that sees `Closed` has received every message whose
/// put succeeded, and no message appears after.
#[test]
fn close_races_put() {
    model(2, 2, |q| {
        let p = spawn(&q, |q| put(q, 0, 5, 1).is_ok());
        let closer = spawn(&q, |q| q.close());
        let mut got = 0;
        loop {
            match get(&q, 1, Block::Forever) {
                Ok(_) => got += 1,
                Err(Refused::Closed) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        let put_ok = p.join().unwrap();
        closer.join().unwrap();
        assert_eq!(got, put_ok as usize);
        assert!(matches!(get(&q, 1, Block::No), Err(Refused::Closed)));
    });
}

/// The sleep protocol on an event word: a waiter that announced itself and then found its
/// condition false sleeps on `seen`; the notifier's state change must either be seen by the
/// waiter's check or change the word and wake it: no lost wake-up.
/// Checked for both notifiers (fence + load, and SC read-modify-write + SC load).
#[test]
fn no_lost_wakeup() {
    for sc in [false, true] {
        loom::model(move || {
            let ev = Arc::new(AtomicU32::new(0));
            let state = Arc::new(AtomicU64::new(0));
            let n = {
                let (ev, state) = (ev.clone(), state.clone());
                thread::spawn(move || {
                    if sc {
                        state.swap(1, Ordering::SeqCst);
                        notify_after_sc(&ev);
                    } else {
                        state.store(1, Ordering::Release);
                        notify(&ev);
                    }
                })
            };
            let seen = prepare_wait(&ev);
            if state.load(Ordering::Acquire) != 1 {
                // Sleeps for real (the exact futex model): a notifier that missed the sleeper
                // leaves it asleep for ever, a loom deadlock.
                futex::wait(&ev, seen, None);
                assert_ne!(ev.load(Ordering::SeqCst), seen, "woken without a notification");
            }
            n.join().unwrap();
        });
    }
}

/// The lost wake-up once fixed in `Ring::take`: the consumer finds nothing at the head
/// (`try_take`), the producer then claims and commits there and blocks (maxsize 1) on its
/// next put, and the consumer, seeing a claim under way (tail ahead of head), loads the head
/// slot's word — already the committed one — and would sleep until that word changes, which
/// nothing does any more. The fix takes again after that load. Both sides block for real
/// (exact futex model): a lost wake-up is a deadlock here.
#[test]
fn take_after_commit_no_lost_wakeup() {
    loom::model(|| {
        let q = Arc::new(Ring::new(HeapMem::new(2, 2, 1)));
        // The second put waits for the first to be taken (maxsize 1).
        put_while_getting(&q, &[(1, 3), (2, 3)], &[(1, 3), (2, 3)]);
    });
}

/// A producer dies after claiming a 2-slot record, with only part of it prepared; another
/// producer's message behind it must still arrive, and the dead one's never.
#[test]
fn producer_dies_mid_put() {
    model(2, 3, |q| {
        let dead = spawn(&q, |q| {
            let mut r = q.reserve(0, 2, Block::Forever).unwrap();
            r.write(0, &[0xee; 8]);
            std::mem::forget(r); // killed: nothing is cleaned up
            die(q, 0);
        });
        let live = spawn(&q, |q| put(q, 1, 7, 2).unwrap());
        assert_eq!(get(&q, 2, Block::Forever).unwrap(), (7, 2));
        dead.join().unwrap();
        live.join().unwrap();
        assert!(matches!(get(&q, 2, Block::No), Err(Refused::WouldBlock)));
    });
}

/// A consumer dies holding a record it took; a producer that needs those slots recovers
/// them, and the other consumer receives every other message in order.
#[test]
fn consumer_dies_mid_get() {
    model(2, 3, |q| {
        put(&q, 0, 1, 70).unwrap(); // slots 0,1
        put(&q, 0, 2, 1).unwrap(); // slot 2
        let dead = spawn(&q, |q| take_and_die(q, 1));
        // Slots 3,0: needs what the dead consumer holds.
        let p = spawn(&q, |q| put(q, 0, 3, 70).unwrap());
        let mut got = vec![];
        while got.len() < 2 {
            got.push(get(&q, 2, Block::Forever).unwrap().0);
        }
        dead.join().unwrap();
        p.join().unwrap();
        // The dead consumer took one of the three; we get the other two, in order.
        assert!(matches!(got[..], [1, 2] | [1, 3] | [2, 3]), "{got:?}");
    });
}

/// A message larger than half the ring streams through a window while the consumer reads.
#[test]
fn stream_through_small_ring() {
    // 8 slots: messages over 4 slots stream through a 2-slot window.
    model(3, 2, |q| {
        let msg: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let sent = msg.clone();
        let p = spawn(&q, move |q| stream::send(q, 0, &sent, Block::Forever).unwrap());
        let c = q.take(1, Block::Forever).unwrap();
        let mut hdr = [0u8; stream::DESC_BYTES];
        c.read(0, &mut hdr);
        let desc = stream::parse(&hdr).expect("a stream descriptor");
        let mut out = Vec::new();
        stream::recv(&q, 1, &c, desc, &mut out).unwrap();
        drop(c);
        assert_eq!(out, msg);
        p.join().unwrap();
    });
}

/// Spills message `id` (its "bytes" go to the region of the entry it gets) and puts its
/// descriptor. `false`: no free spill entry. `killed`: stop for ever after publishing the entry,
/// before committing the record (as a SIGKILL there).
fn spill_put(q: &Ring<HeapMem>, me: u32, id: u64, killed: bool) -> bool {
    let Some((e, gen)) = spill::acquire(q, me) else { return false };
    spill::will_write(q, e, 8);
    // SAFETY: loom checks that nobody else touches the region while we hold the entry.
    q.mem.regions[e].with_mut(|p| unsafe { *p = id });
    let mut r = q.reserve(me, 1, Block::Forever).unwrap();
    r.write(0, &spill::descriptor(e, gen, 8));
    assert!(spill::publish(q, me, e, gen, r.pos));
    if killed {
        std::mem::forget(r);
        die(q, me);
        return true;
    }
    r.commit();
    true
}

/// Takes the next message: `Ok(Some(id))` for a spilled one (read from its region, entry
/// freed), `Ok(None)` for an inline one.
fn get_any(q: &Ring<HeapMem>, me: u32, block: Block) -> Result<Option<u64>, Refused> {
    loop {
        let c = q.take(me, block)?;
        if c.discard {
            continue; // dropping the claim releases it (and frees a spill entry it held)
        }
        let mut hdr = [0u8; spill::DESC_BYTES];
        c.read(0, &mut hdr);
        let Some((e, gen, _)) = spill::parse(&hdr) else { return Ok(None) };
        assert!(spill::is_queued(q, e, gen), "a committed descriptor's entry is queued");
        // SAFETY: loom checks that the producer's write happens before this read.
        let id = q.mem.regions[e].with(|p| unsafe { *p });
        spill::consumed(q, me, e, gen);
        return Ok(Some(id));
    }
}

/// A spilled message travels whole; its entry is free again once it is consumed, and a
/// second producer gets the entry only then (a race on the region would be reported).
#[test]
fn spill_put_get_entry_reuse() {
    model(2, 3, |q| {
        let p = spawn(&q, |q| {
            // The other party may hold the only entry for a moment.
            while !spill_put(q, 0, 7, false) {
                thread::yield_now();
            }
        });
        let p2 = spawn(&q, |q| {
            // Takes the only entry if it is free (before the first or after it was
            // consumed), then gives it up.
            if let Some((e, gen)) = spill::acquire(q, 1) {
                // SAFETY: loom checks the exclusivity.
                q.mem.regions[e].with_mut(|p| unsafe { *p = 99 });
                spill::abandon(q, 1, e, gen);
            }
        });
        assert_eq!(get_any(&q, 2, Block::Forever).unwrap(), Some(7));
        p.join().unwrap();
        p2.join().unwrap();
        assert_eq!(spill::held(&*q).0, 0, "every entry is free again");
    });
}

/// A producer dies after handing its entry to the descriptor record and before committing
/// it: the record is skipped, the entry freed (by the consumer that discards the record, or
/// by a reclaim pass), and another producer's message arrives.
#[test]
fn spill_producer_dies_before_commit() {
    model(2, 3, |q| {
        let dead = spawn(&q, |q| {
            spill_put(q, 0, 7, true);
        });
        let live = spawn(&q, |q| put(q, 1, 3, 1).unwrap());
        assert_eq!(get_any(&q, 2, Block::Forever).unwrap(), None);
        dead.join().unwrap();
        live.join().unwrap();
        // The dead producer's record: made SKIP by one pass, its entry freed by the next.
        spill::reclaim_dead(&*q, 2);
        spill::reclaim_dead(&*q, 2);
        assert_eq!(spill::held(&*q).0, 0, "the dead producer's entry is freed");
        assert!(matches!(get_any(&q, 2, Block::No), Err(Refused::WouldBlock)));
    });
}

/// A consumer dies holding a spilled message's descriptor: the message is lost, its entry
/// freed by the next producer that needs one, whose message then arrives.
#[test]
fn spill_consumer_dies_holding_descriptor() {
    model(2, 3, |q| {
        assert!(spill_put(&q, 0, 5, false));
        spawn(&q, |q| take_and_die(q, 1)).join().unwrap();
        // The only entry is held by the dead consumer's record: acquiring steals it back.
        assert!(spill_put(&q, 0, 6, false), "the dead consumer's entry is reclaimed");
        assert_eq!(get_any(&q, 2, Block::Forever).unwrap(), Some(6));
        assert_eq!(spill::held(&*q).0, 0);
    });
}
