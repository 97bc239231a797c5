//! The queue's lanes: one ring per hash bucket of the ordering key, each
//! handled by at most one worker at a time (see [`crate::lane`] for the
//! ownership protocol and docs/ARCHITECTURE.md, "Ordered keys", for why).

use crate::lane::{lane_of, Lane, LaneGuard, MAX_ORDERING_KEY_LEN};
use crate::{Claim, Error, Event, HeapRing, Lag, MpProducer, Overflow, RecvError, Stats};
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::Arc;

/// Property whose value keys [`SESSION_START`](super::SESSION_START) and
/// [`SESSION_END`](super::SESSION_END) events when they are emitted without
/// an explicit key: events of one session are then handled in order and one
/// at a time. A session event without it is not keyed.
pub const SESSION_ID: &str = "session_id";

pub(crate) type LaneRing = Lane<Arc<HeapRing>>;
pub(crate) type Held<'a> = LaneGuard<'a, Arc<HeapRing>>;

pub(crate) struct Lanes {
    lanes: Box<[LaneRing]>,
    producers: Box<[MpProducer<Arc<HeapRing>>]>,
    /// Set by the first keyed emit; until then workers do not look at the
    /// lanes (a queue that never keys pays nothing). Written before the
    /// push, so the push's `SeqCst` fence publishes it with the event.
    used: CachePadded<AtomicBool>,
}

impl Lanes {
    /// `count` lanes (a power of two) of `capacity` slots each, whose
    /// workers continue as `lag` says when lapped.
    pub(crate) fn new(
        count: usize,
        capacity: usize,
        slot_bytes: usize,
        overflow: Overflow,
        lag: Lag,
    ) -> Result<Lanes, Error> {
        let mut lanes = Vec::with_capacity(count);
        let mut producers = Vec::with_capacity(count);
        for _ in 0..count {
            let ring =
                Arc::new(HeapRing::with_capacity(capacity, slot_bytes, overflow)?.with_lag(lag));
            producers.push(MpProducer::new(ring.clone())?);
            lanes.push(Lane::new(ring));
        }
        Ok(Lanes {
            lanes: lanes.into(),
            producers: producers.into(),
            used: CachePadded::new(AtomicBool::new(false)),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.lanes.len()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.lanes[0].ring().capacity()
    }

    /// The lane `key` goes to, or the error for a key that is too long.
    #[inline]
    pub(crate) fn index(&self, key: &[u8]) -> Result<usize, Error> {
        if key.len() > MAX_ORDERING_KEY_LEN {
            return Err(Error::OrderingKeyTooLong {
                len: key.len(),
                max: MAX_ORDERING_KEY_LEN,
            });
        }
        Ok(lane_of(key, self.lanes.len()))
    }

    /// The lane `key` goes to, whatever its length (session ids, which are
    /// property values and bounded as such).
    #[inline]
    pub(crate) fn index_unbounded(&self, key: &[u8]) -> usize {
        lane_of(key, self.lanes.len())
    }

    #[inline]
    fn mark_used(&self) {
        if !self.used.load(Relaxed) {
            self.used.store(true, Relaxed);
        }
    }

    /// Pushes into lane `index` (the caller then announces the push).
    #[inline]
    pub(crate) fn push_event(&self, index: usize, event: &Event<'_>) -> Result<u64, Error> {
        self.mark_used();
        let seq = self.producers[index].push_event(event)?;
        self.prefetch_next(index, seq);
        Ok(seq)
    }

    /// Asks the CPU to bring in the slot lane `index` writes after `seq`.
    /// An unkeyed emit writes one ring's slots in order and the hardware
    /// prefetcher streams them in; keyed emits write the 32 lanes in random
    /// order, which no stride prefetcher follows, so every slot a lane
    /// writes was a cache (and TLB) miss. The next push into this lane
    /// comes about `lanes` pushes later: by then the line is here.
    #[inline]
    fn prefetch_next(&self, index: usize, seq: u64) {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        {
            use crate::Storage;
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let ring = self.lanes[index].ring();
            let slot = ring.slots.slot((seq as usize + 1) & (ring.capacity() - 1));
            let line = (slot.stamp as *const crate::sync::AtomicU64).cast::<i8>();
            // SAFETY: a prefetch is a hint: it reads nothing the program
            // sees and cannot fault, whatever the address. (The stamp's line
            // and the next hold the header and the first payload bytes.)
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(line);
                _mm_prefetch::<_MM_HINT_T0>(line.wrapping_add(64));
            }
        }
        #[cfg(not(all(target_arch = "x86_64", not(miri))))]
        let _ = (index, seq);
    }

    #[inline]
    pub(crate) fn push_framed_raw(
        &self,
        index: usize,
        payload: &[u8],
        timestamp: u64,
    ) -> Result<u64, Error> {
        self.mark_used();
        let seq = self.producers[index].push_framed_raw(payload, timestamp)?;
        self.prefetch_next(index, seq);
        Ok(seq)
    }

    /// Pushes bytes that are already an encoded event or a framed raw
    /// payload into lane `index`, as they are (the caller validated them
    /// and then announces the push).
    #[cfg(all(feature = "shm", target_os = "linux", not(evqueue_loom)))]
    pub(crate) fn push_encoded(&self, index: usize, bytes: &[u8]) -> Result<u64, Error> {
        self.mark_used();
        let seq = self.producers[index].push(bytes)?;
        self.prefetch_next(index, seq);
        Ok(seq)
    }

    /// Events in the lanes not yet claimed by a worker: in all of them,
    /// and in the fullest one.
    #[cfg(all(feature = "shm", target_os = "linux", not(evqueue_loom)))]
    pub(crate) fn depths(&self) -> (u64, u64) {
        self.lanes.iter().fold((0, 0), |(total, most), lane| {
            let ring = lane.ring();
            // The cursor first: the depth read is never negative.
            let worker = ring.worker_position();
            let depth = ring.next_seq().saturating_sub(worker);
            (total + depth, most.max(depth))
        })
    }

    pub(crate) fn used(&self) -> bool {
        self.used.load(Relaxed)
    }

    /// Takes the first free lane with work from `*cursor` on (wrapping) and
    /// claims a batch from it; `*cursor` moves past it, so a worker goes
    /// round the lanes. A lane found empty on the claim is released at once.
    pub(crate) fn claim<'a>(
        &'a self,
        cursor: &mut usize,
        buf: &mut [u8],
        claims: &mut [Claim],
    ) -> Option<(Held<'a>, usize)> {
        let mask = self.lanes.len() - 1;
        for j in 0..self.lanes.len() {
            let k = (*cursor + j) & mask;
            let Some(mut held) = self.lanes[k].try_acquire() else {
                continue;
            };
            loop {
                match held.try_claim_batch(buf, claims) {
                    Ok(n) if n > 0 => {
                        *cursor = k + 1;
                        return Some((held, n));
                    }
                    // Skipped lost events and nothing followed: look again.
                    Err(RecvError::Lagged(_)) => continue,
                    _ => break,
                }
            }
        }
        None
    }

    /// Whether some lane has work and nobody holds it.
    pub(crate) fn waiting(&self) -> bool {
        self.lanes.iter().any(|l| l.has_work() && !l.is_held())
    }

    /// One event from any free lane (pull mode).
    pub(crate) fn pop(&self, buf: &mut [u8]) -> Option<Claim> {
        for lane in self.lanes.iter() {
            let Some(mut held) = lane.try_acquire() else {
                continue;
            };
            loop {
                match held.try_claim(buf) {
                    Ok(claim) => return Some(claim),
                    Err(RecvError::Lagged(_)) => continue,
                    Err(_) => break,
                }
            }
        }
        None
    }

    /// Every lane is closed and drained, or held by a worker that will
    /// drain it (a holder looks again after it lets go). Does not trust
    /// `used`: a keyed push may have raced with the close.
    pub(crate) fn finished(&self) -> bool {
        self.lanes.iter().all(|l| l.is_drained() || l.is_held())
    }

    pub(crate) fn close(&self) {
        for lane in self.lanes.iter() {
            lane.ring().close();
        }
    }

    /// Each lane's next sequence number: what a flush waits for.
    pub(crate) fn targets(&self) -> Vec<u64> {
        self.lanes.iter().map(|l| l.ring().next_seq()).collect()
    }

    /// Every lane handled everything below its target.
    pub(crate) fn done_below(&self, targets: &[u64]) -> bool {
        self.lanes
            .iter()
            .zip(targets)
            .all(|(lane, &target)| lane.done_below(target))
    }

    /// Events below the targets not yet claimed.
    pub(crate) fn left_below(&self, targets: &[u64]) -> u64 {
        self.lanes
            .iter()
            .zip(targets)
            .map(|(lane, &t)| t.saturating_sub(lane.ring().worker_position()))
            .sum()
    }

    pub(crate) fn held(&self) -> usize {
        self.lanes.iter().filter(|l| l.is_held()).count()
    }

    /// `main`'s counters plus every lane's (high-water marks summed too: an
    /// upper bound of the total depth ever seen at once).
    pub(crate) fn add_stats(&self, mut total: Stats) -> Stats {
        for lane in self.lanes.iter() {
            let s = lane.ring().stats();
            total.pushed += s.pushed;
            total.delivered += s.delivered;
            total.overwritten += s.overwritten;
            total.rejected += s.rejected;
            total.depth += s.depth;
            total.high_water += s.high_water;
        }
        total
    }
}
