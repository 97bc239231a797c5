//! Broadcast subscribers: private cursors over the ring. Every subscriber
//! sees every event it was not lapped on; producers never read subscriber
//! state, so a slow subscriber slows nobody down.

use crate::error::RecvError;
use crate::ring::{Blocked, Claim, Lag, Ring, RingRef};
use crate::storage::Storage;
use crate::sync::spin_loop;

/// Where a new subscriber starts reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Start {
    /// With the next event pushed.
    #[default]
    Now,
    /// With the oldest event the ring still holds.
    Oldest,
}

/// A broadcast subscriber: a private cursor over the ring.
///
/// ```
/// use evqueue::{HeapRing, Overflow, RecvError, Start};
/// let ring = HeapRing::with_capacity(4, 16, Overflow::Overwrite).unwrap();
/// let mut sub = ring.subscribe(Start::Now);
/// let p = ring.mp_producer().unwrap();
/// for i in 0..6u8 { p.push(&[i]).unwrap(); }      // laps the 4-slot ring
/// let mut buf = [0u8; 16];
/// // 2..6 are retained; the default `Lag::Headroom` continues one past the oldest.
/// assert_eq!(sub.try_recv(&mut buf), Err(RecvError::Lagged(3)));
/// let claim = sub.try_recv(&mut buf).unwrap();
/// assert_eq!((claim.seq, buf[0]), (3, 3));
/// assert_eq!(sub.missed(), 3);
/// ```
pub struct Subscriber<R: RingRef> {
    ring: R,
    /// Next sequence number to read.
    cursor: u64,
    /// Sequence numbers lost to lapping so far.
    missed: u64,
    /// Where to continue when lapped.
    pub(crate) lag: Lag,
}

impl<R: RingRef> Subscriber<R> {
    /// A subscriber of the ring behind `ring`, starting as `start` says.
    pub fn new(ring: R, start: Start) -> Self {
        let r = ring.ring();
        let head = r.head_seq();
        let cursor = match start {
            Start::Now => head,
            Start::Oldest => head.saturating_sub(r.capacity() as u64),
        };
        Subscriber {
            ring,
            cursor,
            missed: 0,
            lag: Lag::Headroom,
        }
    }

    /// The same subscriber, continuing as `lag` says when it is lapped
    /// (default [`Lag::Headroom`]; see [`Lag`]).
    pub fn with_lag(mut self, lag: Lag) -> Self {
        self.lag = lag;
        self
    }

    /// Receives the next event into `buf` (at least a slot long).
    ///
    /// Returns [`RecvError::Lagged`]`(n)` once when this subscriber was
    /// lapped and `n` events were lost; the next call continues where its
    /// [`Lag`] policy says (by default an eighth of the ring past the oldest
    /// retained event). The rare event lost by a multi-producer stalled for
    /// a whole lap is reported as `Lagged(1)`. Every sequence number is
    /// either received or counted in a `Lagged`: [`missed`](Self::missed)
    /// is their sum. [`RecvError::Closed`] once the ring is closed and this
    /// subscriber has read everything.
    #[inline]
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<Claim, RecvError> {
        let r = self.ring.ring();
        r.check_buffer(buf.len())?;
        loop {
            match r.copy_event::<true>(self.cursor, buf) {
                Ok(len) => {
                    let seq = self.cursor;
                    self.cursor += 1;
                    return Ok(Claim { seq, len, lost: 0 });
                }
                Err(Blocked::NotYet) => return Err(r.empty_or_closed(self.cursor)),
                Err(Blocked::Hole) => {
                    self.cursor += 1;
                    self.missed += 1;
                    return Err(RecvError::Lagged(1));
                }
                Err(Blocked::Lapped) => {
                    let to = r.lag_target(self.cursor, self.lag);
                    let lost = to - self.cursor;
                    self.cursor = to;
                    self.missed += lost;
                    return Err(RecvError::Lagged(lost));
                }
                Err(Blocked::Torn) => spin_loop(),
            }
        }
    }

    /// Receives up to `claims.len()` consecutive events at once: event `i`
    /// is copied to `buf[i * slot_bytes..]` and described by `claims[i]`.
    /// Returns how many (at least one) or, when none was ready, the error
    /// [`try_recv`](Self::try_recv) would give. A lap (or a lost event)
    /// found after the first event ends the batch and is reported by the
    /// next call.
    ///
    /// ```
    /// use evqueue::{Claim, HeapRing, Overflow, Start};
    /// let ring = HeapRing::with_capacity(8, 16, Overflow::Overwrite).unwrap();
    /// let mut sub = ring.subscribe(Start::Now);
    /// let p = ring.mp_producer().unwrap();
    /// for word in [&b"a"[..], b"bb", b"ccc"] { p.push(word).unwrap(); }
    /// let (mut buf, mut claims) = ([0u8; 4 * 16], [Claim::default(); 4]);
    /// assert_eq!(sub.try_recv_batch(&mut buf, &mut claims), Ok(3));
    /// assert_eq!(&buf[32..32 + claims[2].len], b"ccc");
    /// ```
    pub fn try_recv_batch(
        &mut self,
        buf: &mut [u8],
        claims: &mut [Claim],
    ) -> Result<usize, RecvError> {
        let r = self.ring.ring();
        // The zip below stops at the same count `batch_room` computes.
        r.batch_room(buf.len(), claims.len())?;
        // The cursor stays in a register until the batch ends.
        let mut cursor = self.cursor;
        let mut n = 0;
        for (out, claim) in buf.chunks_exact_mut(r.slot_bytes()).zip(claims.iter_mut()) {
            let Ok(len) = r.copy_event::<false>(cursor, out) else {
                // Not there yet, lost, or torn: the batch ends; a first
                // event is left to `try_recv`, which reports or retries.
                self.cursor = cursor;
                if n > 0 {
                    return Ok(n);
                }
                return self.try_recv(out).map(|first| {
                    *claim = first;
                    1
                });
            };
            *claim = Claim {
                seq: cursor,
                len,
                lost: 0,
            };
            cursor += 1;
            n += 1;
        }
        self.cursor = cursor;
        Ok(n)
    }

    /// Events this subscriber lost so far: the sum of its `Lagged(n)`.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// How far behind the producers this subscriber is: events pushed and not
    /// yet read, at most the capacity (beyond that it has been lapped, and
    /// its next receive reports `Lagged`).
    pub fn lag(&self) -> u64 {
        let r = self.ring.ring();
        let behind = r.head_seq().saturating_sub(self.cursor);
        behind.min(r.capacity() as u64)
    }

    /// Sequence number of the next event this subscriber reads.
    pub fn next_seq(&self) -> u64 {
        self.cursor
    }
}

/// The subscriber handles of a ring.
impl<S: Storage> Ring<S> {
    /// A new broadcast subscriber borrowing the ring;
    /// [`subscribe_owned`](Self::subscribe_owned) gives one that moves to any
    /// thread. See [`Subscriber`](crate::Subscriber).
    pub fn subscribe(&self, start: crate::Start) -> crate::Subscriber<&Self> {
        crate::Subscriber::new(self, start)
    }
}

#[cfg(feature = "alloc")]
impl<S: Storage> Ring<S> {
    /// [`subscribe`](Self::subscribe), owning a share of the ring.
    pub fn subscribe_owned(
        self: &alloc::sync::Arc<Self>,
        start: crate::Start,
    ) -> crate::Subscriber<alloc::sync::Arc<Self>> {
        crate::Subscriber::new(self.clone(), start)
    }
}
