//! The consumer side: claiming the record at the head, reading it, and releasing its slots
//! for the next lap.

use super::{
    lap_of, notify_after_sc, pack, pos_of, span_of, state_of, Block, Mem, Refused, Ring, Waiter,
    DISCARDING, EMPTY, READING, READY, SKIP, SLOT_BYTES, TAIL_CLOSED, WRITING,
};
use multiproc_arena::sync::atomic::Ordering;

/// A record a consumer claimed; dropping it releases the slots.
pub struct Claim<'a, M: Mem> {
    ring: &'a Ring<M>,
    me: u32,
    /// First position.
    pub pos: u64,
    /// Slots.
    pub span: u32,
    /// The record is a `SKIP` (to drop, not deliver).
    pub discard: bool,
    word: u64,
}

impl<M: Mem> Ring<M> {
    /// One attempt to claim the record at the head. `Err(None)`: nothing there;
    /// `Err(Some(i, w))`: a producer is still writing it.
    fn try_take(&self, me: u32) -> Result<Claim<'_, M>, Option<(usize, u64)>> {
        let h = self.header();
        loop {
            let hw = h.head.load(Ordering::Acquire);
            let p = pos_of(hw);
            let (i, l) = (self.idx(p), self.lap(p));
            let s = self.slot(i).load(Ordering::Acquire);
            let d = self.lap_diff(lap_of(s), l);
            if d < 0 {
                return Err(None);
            }
            if d > 0 {
                continue;
            }
            match state_of(s) {
                READY | SKIP => {
                    let span = span_of(s);
                    let claimed = if state_of(s) == SKIP { DISCARDING } else { READING };
                    let w = pack(l, claimed, me, span);
                    if self
                        .slot(i)
                        .compare_exchange(s, w, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        if state_of(s) == SKIP {
                            h.unclaimed_skips.fetch_sub(1, Ordering::AcqRel);
                        }
                        Self::help_advance(&h.head, hw, span);
                        return Ok(Claim {
                            ring: self,
                            me,
                            pos: p,
                            span,
                            discard: state_of(s) == SKIP,
                            word: w,
                        });
                    }
                }
                READING | DISCARDING => Self::help_advance(&h.head, hw, span_of(s)),
                WRITING => return Err(Some((i, s))),
                EMPTY => return Err(None),
                _ => {}
            }
        }
    }

    /// Claims the record at the head, waiting as `block` allows. `Closed` once the queue is
    /// closed and nothing is left.
    pub fn take(&self, me: u32, block: Block) -> Result<Claim<'_, M>, Refused> {
        let h = self.header();
        let mut w = Waiter::new(block);
        loop {
            match self.try_take(me) {
                Ok(c) => return Ok(c),
                Err(None) => {
                    if self.drained_and_closed() {
                        return Err(Refused::Closed);
                    }
                    // Empty: watch the tail (a claim moves it) rather than the slot word, which
                    // the producer is about to claim and commit: it keeps that line to itself.
                    let hw = h.head.load(Ordering::Acquire);
                    let tw = h.tail.load(Ordering::Acquire);
                    if tw & TAIL_CLOSED != 0 && pos_of(tw) == pos_of(hw) {
                        // Closed since the check above: nothing will move `tail` again, so
                        // the wait below would never end (found by the exact futex model).
                        return Err(Refused::Closed);
                    }
                    if pos_of(tw) != pos_of(hw) {
                        // A claim is under way at the head: watch its slot.
                        let i = self.idx(pos_of(hw));
                        let s = self.slot(i).load(Ordering::Acquire);
                        // The claim may have been committed between `try_take` and the load
                        // above, and the producer may then have filled the ring and gone to
                        // sleep: `s` would already be the committed word and nothing would
                        // change it. Try once more after the load; a commit after it changes
                        // the word, so the wait below cannot miss it.
                        if let Ok(c) = self.try_take(me) {
                            return Ok(c);
                        }
                        w.pause(&h.ev_commit, true, || {
                            self.slot(i).load(Ordering::Acquire) != s
                                || h.head.load(Ordering::Acquire) != hw
                                || h.tail.load(Ordering::Acquire) != tw
                        })?;
                        continue;
                    }
                    w.pause(&h.ev_commit, false, || {
                        h.tail.load(Ordering::Acquire) != tw || h.head.load(Ordering::Acquire) != hw
                    })?;
                }
                Err(Some((i, s))) => {
                    if self.drained_and_closed() {
                        return Err(Refused::Closed); // a claim after the close: it aborts
                    }
                    if !w.blocking() {
                        return Err(Refused::WouldBlock);
                    }
                    if w.check_due() {
                        self.check_stuck(me, i, s);
                    }
                    let closed = self.is_closed();
                    w.pause(&h.ev_commit, true, || {
                        self.slot(i).load(Ordering::Acquire) != s || self.is_closed() != closed
                    })?;
                }
            }
        }
    }

    /// Releases the record at `pos` (claimed with `word`): continuation slots first, then
    /// the first slot; waits (with recovery) for continuation slots still busy with the
    /// previous lap (only a `SKIP` record can have those).
    pub(super) fn release(&self, me: u32, pos: u64, span: u32, word: u64, exclusive: bool) {
        let mut w = Waiter::new(Block::Forever);
        for j in 1..span as u64 {
            let p = self.add(pos, j);
            let (i, l) = (self.idx(p), self.lap(p));
            let next = pack(self.lap(self.add(p, self.n)), EMPTY, 0, 0);
            if exclusive {
                // Our own live claim of a committed record: every continuation slot is
                // EMPTY(l) and nobody else writes it.
                debug_assert_eq!(self.slot(i).load(Ordering::Relaxed), pack(l, EMPTY, 0, 0));
                self.slot(i).store(next, Ordering::Release);
                continue;
            }
            loop {
                let s = self.slot(i).load(Ordering::Acquire);
                let d = self.lap_diff(lap_of(s), l);
                if d > 0 {
                    break; // released already (by an earlier releaser of this record)
                }
                if d == 0 {
                    debug_assert_eq!(state_of(s), EMPTY);
                    if self
                        .slot(i)
                        .compare_exchange(s, next, Ordering::Release, Ordering::Relaxed)
                        .is_ok()
                    {
                        break;
                    }
                    continue;
                }
                if w.check_due() {
                    self.check_stuck(me, i, s);
                }
                let h = self.header();
                let _ = w.pause(&h.ev_release, true, || self.slot(i).load(Ordering::Acquire) != s);
            }
        }
        let i = self.idx(pos);
        let next = pack(self.lap(self.add(pos, self.n)), EMPTY, 0, 0);
        if exclusive {
            let _old = self.slot(i).swap(next, Ordering::SeqCst);
            debug_assert_eq!(_old, word);
            notify_after_sc(&self.header().ev_release);
        } else {
            let _ = self.slot(i).compare_exchange(word, next, Ordering::SeqCst, Ordering::Relaxed);
            notify_after_sc(&self.header().ev_release);
        }
    }
}

impl<'a, M: Mem> Claim<'a, M> {
    /// Copies bytes at `off` of the record into `dst`.
    pub fn read(&self, off: usize, dst: &mut [u8]) {
        assert!(off + dst.len() <= self.span as usize * SLOT_BYTES, "read past the record");
        // SAFETY: the claim owns the record (its first slot is READING(us)); it was
        // published whole by its producer (READY, acquired in `take`).
        unsafe { self.ring.copy_out(self.ring.byte_of(self.pos) + off, dst) };
    }

    /// A view of `len` bytes at `off` if they do not wrap (and the memory allows views).
    pub fn view(&self, off: usize, len: usize) -> Option<&[u8]> {
        assert!(off + len <= self.span as usize * SLOT_BYTES, "view past the record");
        let at = self.ring.byte_of(self.pos) + off;
        if at + len > self.ring.data_bytes() {
            return None;
        }
        // SAFETY: as for `read`; the view borrows the claim, which holds the record.
        unsafe { self.ring.mem.view(at, len) }
    }

    /// Byte offset of the record in the data area.
    pub fn byte_offset(&self) -> usize {
        self.ring.byte_of(self.pos)
    }

    /// Releases the record (also done on drop).
    pub fn release(self) {}
}

impl<M: Mem> Drop for Claim<'_, M> {
    #[inline]
    fn drop(&mut self) {
        if self.span == 1 && !self.discard {
            // The common case, inline: our own one-slot record.
            let r = self.ring;
            let next = pack(r.lap(r.add(self.pos, r.n)), EMPTY, 0, 0);
            let _old = r.slot(r.idx(self.pos)).swap(next, Ordering::SeqCst);
            debug_assert_eq!(_old, self.word);
            notify_after_sc(&r.header().ev_release);
            return;
        }
        if self.discard {
            crate::spill::drop_at(self.ring, self.me, self.pos);
        }
        // A SKIP record may have continuation slots its dead producer never prepared.
        self.ring.release(self.me, self.pos, self.span, self.word, !self.discard);
    }
}

impl<M: Mem> std::fmt::Debug for Claim<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("pos", &self.pos)
            .field("span", &self.span)
            .field("discard", &self.discard)
            .finish()
    }
}
