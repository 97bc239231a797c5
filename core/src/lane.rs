//! Lanes: a ring whose worker group is at most one consumer at a time, so
//! events are handled one after another in the order the ring accepted them.
//! The dispatcher keeps one lane per hash bucket of the ordering key (see
//! [`lane_of`]); raw ring users can build the same thing over any ring.
//!
//! Protocol (one atomic per lane, `owner`):
//! - `owner` is [`FREE`] (`u64::MAX`) when no consumer holds the lane, and
//!   otherwise a lower bound of the sequence numbers its holder may be
//!   handling: the lane's worker cursor when it took the lane.
//!   [`Lane::try_acquire`] takes it with one CAS `FREE -> cursor`; only the
//!   holder claims, so everything it claims is at or above that cursor.
//! - The holder claims and handles through its [`LaneGuard`]; dropping the
//!   guard stores `FREE` (release). A holder must look at the lane again
//!   after dropping the guard before it sleeps, and sleep the usual way
//!   (register, `SeqCst` fence, look again): a push made while it held the
//!   lane may have woken a consumer that saw the lane held and slept again.
//!   The push (write, `SeqCst` fence, read the sleepers) is then either seen
//!   by the holder's look after its fence, or sees the holder registered
//!   and wakes it.
//! - Flush: everything below `target` is done when the lane's worker cursor
//!   is at least `target` and `owner >= target` ([`Lane::done_below`]). The
//!   `owner` CAS comes before the claim, and the claim's CAS on the cursor
//!   publishes it: a flush that sees the cursor past `s` sees the holder's
//!   `owner <= s`, or `FREE` stored after its handlers returned.

use crate::sync::{AtomicU64, Ordering::*};
use crate::{Claim, RecvError, Ring, RingRef};

/// `owner` of a lane that nobody holds.
pub const FREE: u64 = u64::MAX;

/// Longest ordering key, in bytes. Longer keys are refused with
/// [`Error::OrderingKeyTooLong`](crate::Error::OrderingKeyTooLong).
pub const MAX_ORDERING_KEY_LEN: usize = 256;

/// A ring consumed by one holder at a time; see the [module docs](self).
/// Claim from its ring only through a [`LaneGuard`].
///
/// ```
/// use evqueue::lane::Lane;
/// use evqueue::{HeapRing, Overflow, RecvError};
/// let ring = HeapRing::with_capacity(8, 64, Overflow::Overwrite)?;
/// let lane = Lane::new(&ring); // or an `Arc<HeapRing>`
/// lane.ring().mp_producer()?.push(b"first")?;
/// let mut held = lane.try_acquire().expect("non-empty and free");
/// assert!(lane.try_acquire().is_none(), "one holder at a time");
/// let mut buf = [0u8; 64];
/// assert_eq!(held.try_claim(&mut buf)?.seq, 0);
/// drop(held);
/// assert!(lane.try_acquire().is_none(), "empty");
/// assert!(lane.done_below(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Lane<R: RingRef> {
    ring: R,
    /// [`FREE`], or a lower bound of the seq the holder may be handling.
    owner: AtomicU64,
}

impl<R: RingRef> Lane<R> {
    /// A lane over `ring`, held by nobody.
    pub fn new(ring: R) -> Self {
        Lane {
            ring,
            owner: AtomicU64::new(FREE),
        }
    }

    /// The ring underneath (push into it with its producers).
    pub fn ring(&self) -> &Ring<R::Storage> {
        self.ring.ring()
    }

    /// Whether the worker group has something to claim (or lost events to
    /// skip): one or two loads, no write.
    #[inline]
    pub fn has_work(&self) -> bool {
        let ring = self.ring();
        ring.next_seq() > ring.worker_position()
    }

    /// Holds the lane if it has something to claim and nobody holds it.
    #[inline]
    pub fn try_acquire(&self) -> Option<LaneGuard<'_, R>> {
        let position = self.ring().worker_position();
        if self.ring().next_seq() <= position {
            return None;
        }
        self.owner
            .compare_exchange(FREE, position, SeqCst, SeqCst)
            .ok()
            .map(|_| LaneGuard { lane: self })
    }

    /// Whether some consumer holds the lane now.
    pub fn is_held(&self) -> bool {
        self.owner.load(SeqCst) != FREE
    }

    /// Closed, and every event accepted before the close claimed or counted
    /// lost: nothing will ever be claimable again.
    pub fn is_drained(&self) -> bool {
        let ring = self.ring();
        ring.is_sealed() && ring.worker_position() >= ring.next_seq()
    }

    /// Every event below `target` was claimed (or skipped as lost) and no
    /// holder is still handling one of them.
    pub fn done_below(&self, target: u64) -> bool {
        // Acquire on the cursor synchronizes with the claim of any event
        // below it, so the holder's `owner` store made before that claim
        // (or a later one) is what we read next.
        self.ring().worker_position() >= target && self.owner.load(SeqCst) >= target
    }
}

/// Holding a [`Lane`]: claims go through here; dropping it frees the lane.
/// Look at the lane again after the drop (see the [module docs](self)).
pub struct LaneGuard<'a, R: RingRef> {
    lane: &'a Lane<R>,
}

impl<R: RingRef> LaneGuard<'_, R> {
    /// Claims up to `claims.len()` events; see [`Ring::try_claim_batch`].
    /// Lost events skipped on the way are reported in `claims[0].lost`, or
    /// as [`RecvError::Lagged`] when nothing followed them.
    pub fn try_claim_batch(
        &mut self,
        buf: &mut [u8],
        claims: &mut [Claim],
    ) -> Result<usize, RecvError> {
        // `owner` still holds the cursor at acquisition, a lower bound of
        // whatever this claims: nothing to store.
        self.lane.ring().try_claim_batch(buf, claims)
    }

    /// Claims one event; see [`Ring::try_claim`].
    pub fn try_claim(&mut self, buf: &mut [u8]) -> Result<Claim, RecvError> {
        self.lane.ring().try_claim(buf)
    }
}

impl<R: RingRef> Drop for LaneGuard<'_, R> {
    fn drop(&mut self) {
        // Release: a flush that reads `FREE` sees the handlers' effects.
        self.lane.owner.store(FREE, Release);
    }
}

/// The lane (of `lanes`, a power of two) that `key` maps to: a fixed,
/// seedless hash, the same in every process, language binding and run.
/// Word-at-a-time multiply-rotate (FxHash style) with a final mix; 1-2 ns
/// for a 16-byte key.
///
/// ```
/// use evqueue::lane::lane_of;
/// assert_eq!(lane_of(b"session-42", 32), lane_of(b"session-42", 32));
/// assert!(lane_of(b"session-42", 32) < 32);
/// assert_eq!(lane_of(b"anything", 1), 0);
/// ```
#[inline]
pub fn lane_of(key: &[u8], lanes: usize) -> usize {
    debug_assert!(lanes.is_power_of_two());
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = key.len() as u64;
    let mut words = key.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let mut last = [0u8; 8];
        last[..tail.len()].copy_from_slice(tail);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(last)).wrapping_mul(K);
    }
    // Mix the high bits down, then take the top bits (the best mixed).
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let bits = lanes.trailing_zeros();
    if bits == 0 {
        0
    } else {
        (h >> (64 - bits)) as usize
    }
}

#[cfg(all(test, not(evqueue_loom)))]
mod tests {
    use super::*;
    use crate::{HeapRing, Overflow};

    #[test]
    // A hash's spread: no unsafe code and no threads for Miri to check, and
    // interpreted it was half of the whole Miri stage.
    #[cfg_attr(miri, ignore)]
    fn keys_spread_over_lanes() {
        let per_lane: u32 = 1000;
        let mut counts = [0u32; 32];
        for i in 0..32 * per_lane {
            counts[lane_of(format!("session-{i}").as_bytes(), 32)] += 1;
        }
        // A poor hash piles keys into a few lanes.
        let (lo, hi) = (per_lane * 6 / 10, per_lane * 14 / 10);
        assert!(counts.iter().all(|&c| (lo..hi).contains(&c)), "{counts:?}");
    }

    #[test]
    fn flush_bound_follows_the_holder() {
        let ring = HeapRing::with_capacity(4, 64, Overflow::Overwrite).unwrap();
        let lane = Lane::new(&ring);
        let p = lane.ring().mp_producer().unwrap();
        p.push(b"a").unwrap();
        p.push(b"b").unwrap();
        let mut held = lane.try_acquire().unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(held.try_claim(&mut buf).unwrap().seq, 0);
        // Claimed but still being handled: not done.
        assert!(!lane.done_below(1));
        assert_eq!(held.try_claim(&mut buf).unwrap().seq, 1);
        assert!(!lane.done_below(2));
        assert_eq!(held.try_claim(&mut buf), Err(RecvError::Empty));
        assert!(lane.is_held());
        drop(held);
        assert!(lane.done_below(2) && !lane.is_held());
        lane.ring().close();
        assert!(lane.is_drained());
    }
}
