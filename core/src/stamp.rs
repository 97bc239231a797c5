//! Slot stamps: one `u64` per slot saying which sequence number the slot holds
//! and in what state. Encoding: high 62 bits `seq + 1` (0 = never written),
//! low 2 bits the state below.

/// The slot holds the committed event `seq`.
const COMMITTED: u64 = 0b00;
/// A producer is writing event `seq` (the seqlock's odd phase).
const WRITING: u64 = 0b01;
/// Ticket `seq` was given up (its event lost to lapping): no event is in the slot; it is free.
const HOLE: u64 = 0b10;
/// Ticket `seq` was given up because a stale producer is still writing into
/// the slot; that producer turns this into `HOLE` when it is done.
const HOLE_BUSY: u64 = 0b11;
const STATE_MASK: u64 = 0b11;

#[inline]
const fn encode(seq: u64, state: u64) -> u64 {
    ((seq + 1) << 2) | state
}

#[inline]
pub(crate) const fn committed(seq: u64) -> u64 {
    encode(seq, COMMITTED)
}
#[inline]
pub(crate) const fn writing(seq: u64) -> u64 {
    encode(seq, WRITING)
}
#[cfg(any(test, all(feature = "shm", target_os = "linux", not(evqueue_loom))))]
#[inline]
pub(crate) const fn hole(seq: u64) -> u64 {
    encode(seq, HOLE)
}
#[inline]
pub(crate) const fn hole_busy(seq: u64) -> u64 {
    encode(seq, HOLE_BUSY)
}

/// Someone is writing slot data right now (an owner, or a stale owner behind
/// a hole): the low bit is the seqlock's "odd" bit in both busy states.
#[inline]
pub(crate) const fn is_busy(stamp: u64) -> bool {
    stamp & WRITING != 0
}

#[inline]
pub(crate) const fn is_hole_busy(stamp: u64) -> bool {
    stamp & STATE_MASK == HOLE_BUSY
}

/// `HOLE_BUSY(s)` → `HOLE(s)`: the stale writer is done with the slot.
#[inline]
pub(crate) const fn release_busy(stamp: u64) -> u64 {
    (stamp & !STATE_MASK) | HOLE
}

/// `seq + 1` of the stamp (0 for a never-written slot), for ordering comparisons.
#[inline]
pub(crate) const fn seq_plus_one(stamp: u64) -> u64 {
    stamp >> 2
}

/// What a reader at cursor `cursor` should do with a slot carrying `stamp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum View {
    /// Event `cursor` is committed: copy it, then re-check the stamp.
    Ready,
    /// Event `cursor` is not there yet (not written, or being written).
    NotYet,
    /// Ticket `cursor` was given up: its event was lost; skip it.
    Hole,
    /// The slot already holds a later lap: event `cursor` was overwritten.
    Lapped,
}

#[inline]
pub(crate) const fn view(stamp: u64, cursor: u64) -> View {
    let held = seq_plus_one(stamp);
    let want = cursor + 1;
    if held < want {
        View::NotYet
    } else if held > want {
        View::Lapped
    } else {
        match stamp & STATE_MASK {
            COMMITTED => View::Ready,
            WRITING => View::NotYet,
            _ => View::Hole,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views() {
        assert_eq!(view(0, 0), View::NotYet);
        assert_eq!(view(committed(0), 0), View::Ready);
        assert_eq!(view(writing(0), 0), View::NotYet);
        assert_eq!(view(hole(3), 3), View::Hole);
        assert_eq!(view(hole_busy(3), 3), View::Hole);
        assert_eq!(view(committed(2), 6), View::NotYet);
        assert_eq!(view(committed(6), 2), View::Lapped);
        assert_eq!(view(writing(6), 2), View::Lapped);
    }

    #[test]
    fn busy_states() {
        assert!(is_busy(writing(1)));
        assert!(is_busy(hole_busy(1)));
        assert!(!is_busy(committed(1)));
        assert!(!is_busy(hole(1)));
        assert!(!is_busy(0));
        assert_eq!(release_busy(hole_busy(9)), hole(9));
    }
}
