//! Recovery: what a waiter does when the party that holds the slot it waits on is dead
//! (a dead producer's record becomes `SKIP`, a dead consumer's is stolen and released).

use super::{
    lap_of, notify, pack, party_of, span_of, state_of, Mem, Ring, DISCARDING, EMPTY, POS_MASK,
    READING, SKIP, SLOT_BYTES, WRITING,
};
use multiproc_arena::sync::atomic::Ordering;

impl<M: Mem> Ring<M> {
    /// Someone waits on slot `i`, which holds `s` and does not move: if the record holding
    /// it belongs to a dead party, do what that party would have done.
    pub fn check_stuck(&self, me: u32, i: usize, s: u64) {
        match state_of(s) {
            WRITING | READING | DISCARDING => self.recover_first(me, i, s),
            EMPTY => {
                // A continuation slot of a record of its lap: find the record's first slot
                // (before it, only more continuation slots) and check that.
                let p = self.pos_at(lap_of(s), i);
                for back in 1..=self.max_inline_span() as u64 {
                    let q = p.wrapping_sub(back) & POS_MASK;
                    let (qi, ql) = (self.idx(q), self.lap(q));
                    let w = self.slot(qi).load(Ordering::Acquire);
                    if lap_of(w) != ql {
                        return;
                    }
                    if state_of(w) != EMPTY {
                        if span_of(w) as u64 > back {
                            self.recover_first(me, qi, w);
                        }
                        return;
                    }
                }
            }
            _ => {} // READY / SKIP: waiting for a consumer, nobody to recover
        }
    }

    fn recover_first(&self, me: u32, i: usize, s: u64) {
        let owner = party_of(s);
        match state_of(s) {
            WRITING => {
                if self.mem.alive(owner) {
                    return;
                }
                let skip = pack(lap_of(s), SKIP, 0, span_of(s));
                let h = self.header();
                // The tail past the record first (as the dead producer would have), so that
                // `head` never passes `tail`. Counted before the record can be claimed.
                self.help_tail(self.pos_at(lap_of(s), i), span_of(s));
                h.unclaimed_skips.fetch_add(1, Ordering::AcqRel);
                if self
                    .slot(i)
                    .compare_exchange(s, skip, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    h.skipped.fetch_add(1, Ordering::Relaxed);
                    h.discarded.fetch_add(1, Ordering::Relaxed);
                    notify(&h.ev_commit);
                    notify(&h.ev_join);
                } else {
                    h.unclaimed_skips.fetch_sub(1, Ordering::AcqRel);
                }
            }
            phase @ (READING | DISCARDING) => {
                if owner == me || self.mem.alive(owner) {
                    return;
                }
                let mine = pack(lap_of(s), phase, me, span_of(s));
                if self
                    .slot(i)
                    .compare_exchange(s, mine, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    let pos = self.pos_at(lap_of(s), i);
                    self.help_head(pos, span_of(s));
                    if phase == DISCARDING {
                        // A dead consumer was dropping a SKIP record (already counted out of
                        // `join`, never a stream it could hand back): just release it.
                        crate::spill::drop_at(self, me, pos);
                        self.release(me, pos, span_of(s), mine, false);
                        return;
                    }
                    let h = self.header();
                    // The dead consumer's message (if it was one) is lost and will never
                    // see `task_done`: count it out of `join`.
                    h.skipped.fetch_add(1, Ordering::Relaxed);
                    notify(&h.ev_join);
                    if !self.stolen_window_handed_back(me, pos, span_of(s), mine) {
                        self.release(me, pos, span_of(s), mine, false);
                    }
                }
            }
            _ => {}
        }
    }

    /// A record we stole from a dead consumer: if it is the window of a stream whose
    /// producer is still writing into it, hand it to that producer (which releases it once
    /// it stopped writing) and return true.
    fn stolen_window_handed_back(&self, me: u32, pos: u64, span: u32, word: u64) -> bool {
        let mut hdr = [0u8; crate::stream::DESC_BYTES];
        if (span as usize) * SLOT_BYTES < hdr.len() {
            return false;
        }
        // SAFETY: we own the record (stolen with a CAS); its header was written before the
        // producer committed it (or it is a SKIP, whose bytes we only parse).
        unsafe { self.copy_out(self.byte_of(pos), &mut hdr) };
        if crate::spill::parse(&hdr).is_some() {
            crate::spill::on_stolen(self, me, &hdr);
            return false;
        }
        crate::stream::on_stolen(self, me, pos, span, word, &hdr)
    }

    /// The slot word of position `pos`.
    pub(crate) fn word_at(&self, pos: u64) -> u64 {
        self.slot(self.idx(pos)).load(Ordering::Acquire)
    }

    /// Moves the claim of the record at `pos` from `from` to party `to`.
    pub(crate) fn hand_over(&self, pos: u64, from: u64, to: u32) -> bool {
        let w = pack(lap_of(from), READING, to, span_of(from));
        self.slot(self.idx(pos))
            .compare_exchange(from, w, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Releases the record at `pos` claimed with `word` (not necessarily by us: a window
    /// handed back by a recoverer).
    pub(crate) fn release_claimed(&self, me: u32, pos: u64, span: u32, word: u64) {
        self.release(me, pos, span, word, false);
    }
}
