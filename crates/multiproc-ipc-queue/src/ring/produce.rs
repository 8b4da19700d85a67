//! The producer side: claiming a record at the tail, preparing its continuation slots,
//! writing and committing it (or aborting it as `SKIP`).

use super::{
    advanced, cnt_diff, cnt_of, lap_of, notify, notify_after_sc, pack, pos_of, span_of,
    spin_backoff, state_of, Block, Mem, Refused, Ring, Waiter, EMPTY, READY, SKIP, SLOT_BYTES,
    SPIN, TAIL_CLOSED, WRITING,
};
use multiproc_arena::sync::atomic::Ordering;

/// Slots a producer waiting on a full ring lets the consumers free before it resumes (in its
/// spin phase).
const FULL_BATCH: u64 = 128;

/// A claimed record a producer is filling; commit or abort it (dropping it aborts).
pub struct Reservation<'a, M: Mem> {
    ring: &'a Ring<M>,
    /// First position.
    pub pos: u64,
    /// Slots.
    pub span: u32,
    done: bool,
}

impl<M: Mem> Ring<M> {
    /// One attempt to claim `span` slots at the tail. `Err(None)`: closed;
    /// `Err(Some(i, w))`: slot `i` (word `w`) is not free yet (`i == usize::MAX`: maxsize).
    fn try_claim(&self, me: u32, span: u32) -> Result<u64, Option<(usize, u64)>> {
        let h = self.header();
        loop {
            let tw = h.tail.load(Ordering::Acquire);
            if tw & TAIL_CLOSED != 0 {
                return Err(None);
            }
            if self.maxsize != 0 {
                let hw = h.head.load(Ordering::Acquire);
                if cnt_diff(cnt_of(tw), cnt_of(hw)) >= self.maxsize {
                    return Err(Some((usize::MAX, hw)));
                }
            }
            let t = pos_of(tw);
            let (i, l) = (self.idx(t), self.lap(t));
            let s = self.slot(i).load(Ordering::Acquire);
            if s == pack(l, EMPTY, 0, 0) {
                let w = pack(l, WRITING, me, span);
                if self.slot(i).compare_exchange(s, w, Ordering::AcqRel, Ordering::Relaxed).is_err()
                {
                    continue;
                }
                let adv = advanced(tw, span);
                let Err(mut cw) =
                    h.tail.compare_exchange(tw, adv, Ordering::AcqRel, Ordering::Acquire)
                else {
                    return Ok(t);
                };
                if cw & TAIL_CLOSED == 0 || pos_of(cw) != t {
                    return Ok(t); // a helper advanced past our claim: it precedes any close
                }
                // Closed at our position: the claim came after the close. Drop it: the
                // tail first, so that `head` (a consumer discarding the SKIP) never passes
                // `tail` (found by the exact futex model: a consumer then watched the wrong
                // slot).
                while pos_of(cw) == t {
                    match h.tail.compare_exchange(
                        cw,
                        advanced(cw, span),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => break,
                        Err(seen) => cw = seen,
                    }
                }
                h.skipped.fetch_add(1, Ordering::Relaxed);
                h.unclaimed_skips.fetch_add(1, Ordering::AcqRel);
                self.slot(i).store(pack(l, SKIP, 0, span), Ordering::Release);
                notify(&h.ev_commit);
                return Err(None);
            }
            let d = self.lap_diff(lap_of(s), l);
            if d == 0 {
                if state_of(s) != EMPTY {
                    Self::help_advance(&h.tail, tw, span_of(s));
                }
                continue;
            }
            if d > 0 {
                continue; // stale tail
            }
            return Err(Some((i, s)));
        }
    }

    /// Claims a record of `span` slots (1 ..= [`max_inline_span`](Self::max_inline_span))
    /// at the tail, waiting for room as `block` allows. Its continuation slots are not
    /// prepared yet: call [`Reservation::prepare`].
    pub fn reserve(&self, me: u32, span: u32, block: Block) -> Result<Reservation<'_, M>, Refused> {
        debug_assert!(span >= 1 && span <= self.max_inline_span());
        let mut w = Waiter::new(block);
        let mut batched = false;
        loop {
            match self.try_claim(me, span) {
                Ok(pos) => return Ok(Reservation { ring: self, pos, span, done: false }),
                Err(None) => return Err(Refused::Closed),
                Err(Some((i, s))) => {
                    if !w.blocking() {
                        return Err(Refused::WouldBlock);
                    }
                    if i != usize::MAX && w.check_due() {
                        self.check_stuck(me, i, s);
                    }
                    let h = self.header();
                    if i != usize::MAX && !batched && w.spin_left == SPIN {
                        // The ring is full: the consumer works on the very slot we wait for.
                        // While spinning, wait for a batch of slots to be free instead, so
                        // the two sides stop fighting over one cache line; the sleep below
                        // waits for our slot alone (no batch is owed to us). Once per wait:
                        // if our slot stays taken while the batch is free (its consumer is
                        // slow or dead), the pauses below keep the deadline and the checks.
                        batched = true;
                        let t = pos_of(h.tail.load(Ordering::Relaxed));
                        let ahead = self.add(t, FULL_BATCH.min(self.n / 4));
                        let free = pack(self.lap(ahead), EMPTY, 0, 0);
                        let ai = self.idx(ahead);
                        if spin_backoff(&mut w.spin_left, || {
                            self.slot(ai).load(Ordering::Acquire) == free || self.is_closed()
                        }) {
                            continue;
                        }
                    }
                    let slice = i != usize::MAX;
                    w.pause(&h.ev_release, slice, || {
                        self.is_closed()
                            || if i == usize::MAX {
                                h.head.load(Ordering::Acquire) != s
                            } else {
                                self.slot(i).load(Ordering::Acquire) != s
                            }
                    })?;
                }
            }
        }
    }

    /// Waits until position `p` (not claimed by anyone else at its lap) is free for its
    /// lap; returns the free word.
    fn wait_free(&self, me: u32, p: u64, w: &mut Waiter) -> Result<u64, Refused> {
        let (i, l) = (self.idx(p), self.lap(p));
        let free = pack(l, EMPTY, 0, 0);
        loop {
            let s = self.slot(i).load(Ordering::Acquire);
            if s == free {
                return Ok(s);
            }
            debug_assert!(self.lap_diff(lap_of(s), l) < 0, "continuation slot moved ahead");
            if w.check_due() {
                self.check_stuck(me, i, s);
            }
            let h = self.header();
            w.pause(&h.ev_release, true, || self.slot(i).load(Ordering::Acquire) != s)?;
        }
    }
}

impl<'a, M: Mem> Reservation<'a, M> {
    /// Waits for the continuation slots to be free (released by the previous lap); `Err`
    /// (the record was aborted) when the deadline passes.
    pub fn prepare(&mut self, me: u32, block: Block) -> Result<(), Refused> {
        let ring = self.ring;
        let mut w = Waiter::new(block);
        for j in 1..self.span as u64 {
            if let Err(e) = ring.wait_free(me, ring.add(self.pos, j), &mut w) {
                self.abort_inner();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Writes one whole slot (the record must be one slot long): a fixed-size copy.
    #[inline]
    pub fn write_slot(&mut self, src: &[u8; SLOT_BYTES]) {
        assert_eq!(self.span, 1);
        // SAFETY: the reservation owns its one slot (WRITING, ours).
        unsafe { self.ring.mem.write_slot(self.ring.byte_of(self.pos), src) };
    }

    /// Writes `src` at byte `off` of the record.
    pub fn write(&mut self, off: usize, src: &[u8]) {
        assert!(off + src.len() <= self.span as usize * SLOT_BYTES, "write past the record");
        // SAFETY: the reservation owns these bytes: its first slot is WRITING (ours) and
        // `prepare` made the continuation slots ours.
        unsafe { self.ring.copy_in(self.ring.byte_of(self.pos) + off, src) };
    }

    /// Byte offset of the record in the data area.
    pub fn byte_offset(&self) -> usize {
        self.ring.byte_of(self.pos)
    }

    /// Publishes the record.
    pub fn commit(mut self) {
        let r = self.ring;
        self.done = true;
        let i = r.idx(self.pos);
        r.slot(i).swap(pack(r.lap(self.pos), READY, 0, self.span), Ordering::SeqCst);
        notify_after_sc(&r.header().ev_commit);
    }

    /// Publishes the record as `SKIP` (nothing is delivered).
    pub fn abort(mut self) {
        self.abort_inner();
    }

    fn abort_inner(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let r = self.ring;
        let h = r.header();
        // Counted as put (by `tail`) and never delivered.
        h.skipped.fetch_add(1, Ordering::Relaxed);
        h.unclaimed_skips.fetch_add(1, Ordering::AcqRel);
        r.slot(r.idx(self.pos)).store(pack(r.lap(self.pos), SKIP, 0, self.span), Ordering::Release);
        notify(&h.ev_commit);
        notify(&h.ev_join);
    }
}

impl<M: Mem> Drop for Reservation<'_, M> {
    fn drop(&mut self) {
        self.abort_inner();
    }
}

impl<M: Mem> std::fmt::Debug for Reservation<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation").field("pos", &self.pos).field("span", &self.span).finish()
    }
}
