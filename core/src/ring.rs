//! The ring: a fixed array of slots, a producer cursor (`head`), the worker
//! group's shared cursor, and counters.
//!
//! Algorithm (a seqlock per slot, stamped with the sequence number):
//! - A producer writing event `seq` sets the slot stamp to `WRITING(seq)`,
//!   issues a release fence, stores the payload with relaxed atomic stores and
//!   publishes `COMMITTED(seq)` with a release store.
//! - A reader at cursor `c` loads the stamp (acquire). `COMMITTED(c)`: it
//!   copies the words (relaxed), issues an acquire fence and re-loads the
//!   stamp; an unchanged stamp proves the copy is whole, a changed one means
//!   the slot was overwritten during the copy and the copy is discarded.
//!   A stamp of a later lap means `c` was overwritten: skip ahead as the
//!   reader's [`Lag`] policy says (by default an eighth of the ring past the
//!   oldest retained sequence number, `head - capacity`, so that the reader
//!   is not on the slot the producer overwrites next).
//! - The worker group copies first and claims second: a compare-exchange of
//!   the shared cursor `c → c + n` after the copy validated. Exactly one
//!   worker wins each sequence number; the cursor only moves forward, so each
//!   number is delivered or skipped (counted) exactly once.
//! - Multi-producer tickets are taken with a CAS on `head`; a ticket's slot is
//!   claimed with a CAS on its stamp. A producer that finds its slot still
//!   being written by a stale, lapped producer does not wait: it marks the
//!   ticket as a hole (its event is lost, counted as overwritten), so a
//!   preempted producer never blocks the others. Readers pass over holes
//!   as they pass over overwritten events, and count them the same way.

use crate::error::{Error, RecvError};
use crate::stamp::{self, View};
use crate::state::RingState;
use crate::storage::{SlotRef, Storage, WORD_BYTES};
use crate::sync::{const_fn, fence, spin_loop, Ordering::*};
use crate::words::{copy_words, PAIRED_COPY_MAX_BYTES};

#[cfg(feature = "alloc")]
use crate::storage::HeapSlots;
use crate::storage::StaticSlots;

/// What a push does when the worker group is a whole ring behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Overflow {
    /// Never wait, never fail for lack of room: overwrite the oldest
    /// unconsumed event and count it as overwritten.
    #[default]
    Overwrite,
    /// Refuse the push with [`Error::Full`] and count it as rejected.
    Reject,
}

/// Where a reader that was lapped (the worker group, or a [`Subscriber`](crate::Subscriber))
/// continues. Whatever the policy, every sequence number it passes over is
/// counted: [`RecvError::Lagged`] for a subscriber, [`Claim::lost`] (or
/// `Lagged`) and [`Stats::overwritten`] for the worker group.
///
/// ```
/// use evqueue::{HeapRing, Lag, Overflow, RecvError, Start};
/// // 16 slots: the headroom is 16 / 8 = 2 events.
/// let ring = HeapRing::with_capacity(16, 16, Overflow::Overwrite).unwrap();
/// let mut sub = ring.subscribe(Start::Now);
/// let mut oldest = ring.subscribe(Start::Now).with_lag(Lag::Oldest);
/// let p = ring.mp_producer().unwrap();
/// for i in 0..40u8 { p.push(&[i]).unwrap(); }   // 40 events, 16 retained: 24..40
/// let mut buf = [0u8; 16];
/// assert_eq!(sub.try_recv(&mut buf), Err(RecvError::Lagged(26)));
/// assert_eq!(sub.try_recv(&mut buf).unwrap().seq, 26);
/// assert_eq!(oldest.try_recv(&mut buf), Err(RecvError::Lagged(24)));
/// assert_eq!(oldest.try_recv(&mut buf).unwrap().seq, 24);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Lag {
    /// The oldest event the ring still holds: loses the fewest events when
    /// the producer has stopped. But that slot is the one a running producer
    /// overwrites next, so a reader slower than the producer is lapped again
    /// at once, over and over, and delivers a small fraction of what it can.
    Oldest,
    /// An eighth of the ring past the oldest event (at least one): the
    /// default. A reader slower than a running producer gets runs of
    /// consecutive events between laps and delivers about as many events per
    /// second as it can handle; when the producer has stopped, it loses at
    /// most an eighth of the ring more than [`Oldest`](Self::Oldest) would.
    #[default]
    Headroom,
    /// The newest event pushed: the reader gives up the backlog and follows
    /// the producer, for a view that must be as fresh as possible.
    Newest,
}

/// Bit 63 of `head`: the ring is closed and `head` no longer moves.
pub(crate) const CLOSED: u64 = 1 << 63;

/// `control` bits: which producer mode is live, and whether close was asked.
pub(crate) const SINGLE_LIVE: u8 = 1;
pub(crate) const MULTI: u8 = 2;
pub(crate) const CLOSE_REQUESTED: u8 = 4;

/// Producers sample the depth into the high-water mark every `capacity / 4`
/// events, at most every 64: the mark is within 64 events of the true peak.
const HIGH_WATER_SAMPLE_MAX: u64 = 64;

/// A lock-free ring of fixed-size slots. See the [crate docs](crate) for the
/// consumers and producers that run over it.
pub struct Ring<S: Storage> {
    pub(crate) overflow: Overflow,
    /// Where the worker group continues when it was lapped.
    pub(crate) lag: Lag,
    /// The slots and the shared state ([`RingState`]: cursors, counters,
    /// control byte), which the storage holds inline or in a mapped file.
    pub(crate) slots: S,
}

/// A ring whose slots live inline: `SLOTS` slots of `WORDS` 8-byte words.
///
/// ```
/// use evqueue::{Overflow, StaticRing};
/// static RING: StaticRing<1024, 8> = StaticRing::new(Overflow::Overwrite);
/// assert_eq!(RING.capacity(), 1024);
/// assert_eq!(RING.slot_bytes(), 64);
/// ```
pub type StaticRing<const SLOTS: usize, const WORDS: usize> = Ring<StaticSlots<SLOTS, WORDS>>;

/// A ring on the heap, sized at run time.
#[cfg(feature = "alloc")]
pub type HeapRing = Ring<HeapSlots>;

/// One received event: its sequence number and payload length. The payload
/// is the first `len` bytes of the buffer given to the receive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Claim {
    /// Sequence number the ring assigned at push.
    pub seq: u64,
    /// Payload length in bytes.
    pub len: usize,
    /// Worker-group claims only: sequence numbers this call passed over as
    /// lost just before `seq`: events overwritten (or skipped by the [`Lag`]
    /// policy because they were about to be), and the rare event of a
    /// multi-producer stalled for a whole lap.
    /// Every sequence number the worker group passes over is reported to
    /// exactly one caller, here or as [`RecvError::Lagged`]. Always 0 for
    /// subscribers, which get `Lagged` instead.
    pub lost: u64,
}

/// A snapshot of a ring's counters (each read atomically, not all at once).
///
/// The identity they keep, exact at quiescence:
///
/// ```text
/// pushed = delivered + overwritten + rejected + depth
///        = delivered + lost()                 + depth
/// ```
///
/// `pushed` counts every push that reached the open ring, rejected ones
/// included; [`lost`](Self::lost) is what the worker group will never get.
///
/// ```
/// use evqueue::{HeapRing, Overflow};
/// let ring = HeapRing::with_capacity(2, 16, Overflow::Overwrite).unwrap();
/// let mut producer = ring.producer().unwrap();
/// for _ in 0..5 { producer.push(b"hi")?; }
/// let s = ring.stats();
/// assert_eq!((s.pushed, s.lost(), s.depth), (5, 3, 2));
/// assert_eq!(s.pushed, s.delivered + s.lost() + s.depth);
/// # Ok::<(), evqueue::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Pushes that reached the ring while it was open: accepted or rejected.
    pub pushed: u64,
    /// Events claimed by the worker group.
    pub delivered: u64,
    /// Events lost to the worker group because they were overwritten.
    pub overwritten: u64,
    /// Pushes refused by the `Reject` policy.
    pub rejected: u64,
    /// Events in the ring not yet claimed by the worker group.
    pub depth: u64,
    /// Highest depth seen (sampled by producers every `min(64, capacity / 4)` events).
    pub high_water: u64,
}

impl Stats {
    /// Events the worker group lost: `overwritten + rejected`.
    pub const fn lost(&self) -> u64 {
        self.overwritten.saturating_add(self.rejected)
    }
}

/// Why a reader could not copy the event at its cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Blocked {
    /// Not pushed yet, or still being written.
    NotYet,
    /// A ticket whose event was lost before it was written (a producer
    /// lapped or stalled): skip it, counting it lost.
    Hole,
    /// Overwritten by a later lap: skip as the [`Lag`] policy says.
    Lapped,
    /// Overwritten during the copy: look again.
    Torn,
}

impl Blocked {
    /// Why a slot stamped `stamp` does not hold the committed event `seq`
    /// (not cold: an empty poll ends here).
    #[inline]
    fn at(stamp: u64, seq: u64) -> Blocked {
        match stamp::view(stamp, seq) {
            View::NotYet => Blocked::NotYet,
            View::Hole => Blocked::Hole,
            View::Lapped => Blocked::Lapped,
            // Not reached (the caller saw a different stamp); looking again
            // is always safe.
            View::Ready => Blocked::Torn,
        }
    }
}

impl<const SLOTS: usize, const WORDS: usize> Ring<StaticSlots<SLOTS, WORDS>> {
    const_fn! {
        /// An empty ring with inline slots, usable as a `static`. Capacity
        /// (`SLOTS`) must be a power of two and a slot (`WORDS * 8` bytes) at
        /// least [`MIN_SLOT_BYTES`](crate::MIN_SLOT_BYTES); both are checked
        /// at compile time.
        pub fn new(overflow: Overflow) -> Self {
            Ring::from_storage(StaticSlots::new(), overflow)
        }
    }

    const_fn! {
        /// The same ring with the worker group continuing as `lag` says when
        /// it is lapped (default [`Lag::Headroom`]).
        ///
        /// ```
        /// use evqueue::{Lag, Overflow, StaticRing};
        /// static RING: StaticRing<64, 4> = StaticRing::new(Overflow::Overwrite).with_lag(Lag::Oldest);
        /// assert_eq!(RING.lag(), Lag::Oldest);
        /// ```
        pub fn with_lag(self, lag: Lag) -> Self {
            Ring { lag, ..self }
        }
    }
}

#[cfg(feature = "alloc")]
impl Ring<HeapSlots> {
    /// A ring of `capacity` slots of `slot_bytes` bytes each, on the heap.
    ///
    /// ```
    /// use evqueue::{HeapRing, Overflow, Error};
    /// let ring = HeapRing::with_capacity(65536, 256, Overflow::Overwrite)?;
    /// assert_eq!(ring.capacity(), 65536);
    /// assert_eq!(HeapRing::with_capacity(1000, 256, Overflow::Overwrite).err(),
    ///            Some(Error::InvalidCapacity { capacity: 1000 }));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn with_capacity(
        capacity: usize,
        slot_bytes: usize,
        overflow: Overflow,
    ) -> Result<Self, Error> {
        Ok(Ring::from_storage(
            HeapSlots::new(capacity, slot_bytes)?,
            overflow,
        ))
    }

    /// The same ring with the worker group continuing as `lag` says when it
    /// is lapped (default [`Lag::Headroom`]).
    pub fn with_lag(self, lag: Lag) -> Self {
        Ring { lag, ..self }
    }
}

impl<S: Storage> Ring<S> {
    const_fn! {
        pub(crate) fn from_storage(slots: S, overflow: Overflow) -> Self {
            Ring {
                overflow,
                lag: Lag::Headroom,
                slots,
            }
        }
    }

    /// The cursors, counters and control byte, wherever the storage keeps them.
    #[inline(always)]
    pub(crate) fn state(&self) -> &RingState {
        self.slots.state()
    }

    /// Where the worker group continues when it was lapped.
    #[inline]
    pub fn lag(&self) -> Lag {
        self.lag
    }

    /// Number of slots.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    /// Bytes a slot holds: the largest payload or encoded event.
    #[inline]
    pub fn slot_bytes(&self) -> usize {
        self.slots.slot_words() * WORD_BYTES
    }

    /// The overflow policy chosen at construction.
    #[inline]
    pub fn overflow(&self) -> Overflow {
        self.overflow
    }

    /// Closes the ring: pushes fail with [`Error::Closed`] from now on, and
    /// consumers drain what is left and then see [`RecvError::Closed`].
    /// Returns `false` if it was already closed.
    ///
    /// A live single [`Producer`](crate::Producer) owns `head`, so it seals
    /// the ring itself: consumers see `Closed` once it has observed the close
    /// (its next push fails) or has been dropped.
    pub fn close(&self) -> bool {
        let before = self.state().control.fetch_or(CLOSE_REQUESTED, AcqRel);
        if before & SINGLE_LIVE == 0 {
            self.state().head.fetch_or(CLOSED, AcqRel);
        }
        before & CLOSE_REQUESTED == 0
    }

    /// The sequence number the next push will get: events pushed so far,
    /// counting tickets in flight.
    pub fn next_seq(&self) -> u64 {
        self.head_seq()
    }

    /// The worker group's cursor: every sequence number below it has been
    /// claimed by a worker or counted as lost.
    pub fn worker_position(&self) -> u64 {
        self.state().worker.load(Acquire)
    }

    /// Whether the ring is sealed: no push can succeed any more, and
    /// consumers that reach [`next_seq`](Self::next_seq) see `Closed`.
    pub fn is_sealed(&self) -> bool {
        self.state().head.load(Acquire) & CLOSED != 0
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.state().control.load(Acquire) & CLOSE_REQUESTED != 0
    }

    /// Claims the next event for the worker group, copying it into `buf`
    /// (at least [`slot_bytes`](Self::slot_bytes) long). Each event is
    /// claimed by exactly one caller, in push order.
    ///
    /// ```
    /// use evqueue::{HeapRing, Overflow, RecvError};
    /// let ring = HeapRing::with_capacity(8, 64, Overflow::Overwrite).unwrap();
    /// ring.mp_producer().unwrap().push(b"hello").unwrap();
    /// let mut buf = [0u8; 64];
    /// let claim = ring.try_claim(&mut buf).unwrap();
    /// assert_eq!((claim.seq, &buf[..claim.len]), (0, &b"hello"[..]));
    /// assert_eq!(ring.try_claim(&mut buf), Err(RecvError::Empty));
    /// ```
    #[inline]
    pub fn try_claim(&self, buf: &mut [u8]) -> Result<Claim, RecvError> {
        self.check_buffer(buf.len())?;
        let mut cursor = self.state().worker.load(Acquire);
        let mut lost = 0;
        loop {
            cursor = match self.copy_event::<true>(cursor, buf) {
                Ok(len) => {
                    match self
                        .state()
                        .worker
                        .compare_exchange(cursor, cursor + 1, AcqRel, Acquire)
                    {
                        Ok(_) => {
                            return Ok(Claim {
                                seq: cursor,
                                len,
                                lost,
                            })
                        }
                        Err(now) => now,
                    }
                }
                Err(blocked) => self.worker_blocked(cursor, blocked, &mut lost)?,
            };
            spin_loop();
        }
    }

    /// Claims up to `claims.len()` consecutive events at once for the worker
    /// group. Event `i` is copied to `buf[i * slot_bytes..]` and described by
    /// `claims[i]`; returns how many were claimed (at least one, unless
    /// `claims` is empty).
    ///
    /// ```
    /// use evqueue::{Claim, HeapRing, Overflow};
    /// let ring = HeapRing::with_capacity(8, 16, Overflow::Overwrite).unwrap();
    /// let p = ring.mp_producer().unwrap();
    /// for word in [&b"a"[..], b"bb", b"ccc"] { p.push(word).unwrap(); }
    /// let (mut buf, mut claims) = ([0u8; 4 * 16], [Claim::default(); 4]);
    /// let n = ring.try_claim_batch(&mut buf, &mut claims).unwrap();
    /// assert_eq!(n, 3);
    /// assert_eq!(&buf[32..32 + claims[2].len], b"ccc");
    /// ```
    pub fn try_claim_batch(
        &self,
        buf: &mut [u8],
        claims: &mut [Claim],
    ) -> Result<usize, RecvError> {
        let slot_bytes = self.slot_bytes();
        let max = self.batch_room(buf.len(), claims.len())?;
        if max == 0 {
            return Ok(0);
        }
        let mut cursor = self.state().worker.load(Acquire);
        let mut lost = 0;
        loop {
            // Copy the run of ready events from the cursor; stop at the first
            // one that is not (it is dealt with once it is at the cursor).
            let mut n = 0;
            let mut first_blocked = Blocked::Torn;
            while n < max {
                let seq = cursor + n as u64;
                match self.copy_event::<false>(seq, &mut buf[n * slot_bytes..(n + 1) * slot_bytes])
                {
                    Ok(len) => claims[n] = Claim { seq, len, lost: 0 },
                    Err(blocked) => {
                        first_blocked = blocked;
                        break;
                    }
                }
                n += 1;
            }
            cursor = if n > 0 {
                match self.state().worker.compare_exchange(
                    cursor,
                    cursor + n as u64,
                    AcqRel,
                    Acquire,
                ) {
                    Ok(_) => {
                        claims[0].lost = lost;
                        return Ok(n);
                    }
                    Err(now) => now,
                }
            } else {
                self.worker_blocked(cursor, first_blocked, &mut lost)?
            };
            spin_loop();
        }
    }

    /// Recovers ticket `seq` from a dead multi-producer (the algorithm
    /// behind `SharedRing::recover`, generic
    /// for the loom models): if `seq` was handed out but its slot shows it
    /// neither committed nor lost, and every process with a multi-producer
    /// push in flight has died, marks it a hole. Returns whether the slot
    /// of `seq` now shows readers something to do. Never recovers on an
    /// in-process storage: a writer there that stopped mid-push is alive
    /// (preempted) and will finish.
    #[cfg(any(
        all(feature = "shm", target_os = "linux", not(evqueue_loom)),
        all(test, evqueue_loom)
    ))]
    pub(crate) fn recover_ticket(&self, seq: u64) -> bool {
        let slot = self.slot(seq);
        let observed = slot.stamp.load(Acquire);
        if stamp::view(observed, seq) != View::NotYet {
            return true;
        }
        if !S::COUNTS_WRITERS || self.state().control.load(Acquire) & MULTI == 0 {
            return false;
        }
        // Acquire: every writer that took a ticket up to `seq` counted its
        // process in flight before it did (`take_ticket`), so the look at
        // the counts below sees them.
        if self.head_seq() <= seq || !self.slots.writers_gone(0) {
            return false;
        }
        // Nobody writes the slot any more: neither its stamp's writer nor
        // the holder of `seq`. The CAS fails if either finished meanwhile.
        slot.stamp
            .compare_exchange(observed, stamp::hole(seq), AcqRel, Acquire)
            .is_ok()
            || stamp::view(slot.stamp.load(Acquire), seq) != View::NotYet
    }

    /// A snapshot of the counters (each read atomically, not all at once).
    pub fn stats(&self) -> Stats {
        let cap = self.capacity() as u64;
        let c = &self.state().counters;
        let skipped = c.skipped.load(Acquire);
        let worker = self.state().worker.load(Acquire);
        let head = self.state().head.load(Acquire) & !CLOSED;
        // A single producer commits a slot just before it publishes `head`,
        // so a worker may briefly be one past it.
        let worker = worker.min(head);
        let rejected = c.rejected.load(Acquire);
        // Events the producers already overwrote but the worker group has not
        // skipped yet: lost all the same.
        let overwritten_unskipped = head.saturating_sub(cap).saturating_sub(worker);
        let depth = head
            .saturating_sub(worker)
            .saturating_sub(overwritten_unskipped);
        Stats {
            pushed: head + rejected,
            delivered: worker.saturating_sub(skipped),
            overwritten: skipped + overwritten_unskipped,
            rejected,
            depth,
            high_water: c.high_water.fetch_max(depth, Relaxed).max(depth),
        }
    }

    // ---- internals shared by producers and consumers ----

    /// Next sequence number to hand out, without the closed bit.
    #[inline]
    pub(crate) fn head_seq(&self) -> u64 {
        self.state().head.load(Acquire) & !CLOSED
    }

    #[inline]
    pub(crate) fn check_buffer(&self, len: usize) -> Result<(), RecvError> {
        let needed = self.slot_bytes();
        if len < needed {
            return Err(RecvError::BufferTooSmall { needed, got: len });
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn check_payload(&self, size: usize) -> Result<(), Error> {
        let max = self.slot_bytes();
        if size > max {
            return Err(Error::TooLarge { size, max });
        }
        Ok(())
    }

    /// Where a reader lapped at `cursor` continues under `lag`: never past
    /// `head`, and at least one past `cursor` (the stamp already proved
    /// `cursor` gone, even if `head` is not yet published).
    pub(crate) fn lag_target(&self, cursor: u64, lag: Lag) -> u64 {
        let cap = self.capacity() as u64;
        let head = self.head_seq();
        let oldest = head.saturating_sub(cap);
        let to = match lag {
            Lag::Oldest => oldest,
            Lag::Headroom => oldest + (cap / 8).max(1),
            Lag::Newest => head.saturating_sub(1),
        };
        to.min(head).max(cursor + 1)
    }

    /// How many events a batch read can take: `claims` entries, as many as
    /// whole slots fit in `buf` (0 for no entries; `BufferTooSmall` when
    /// entries are asked for but not even one slot fits).
    pub(crate) fn batch_room(&self, buf: usize, claims: usize) -> Result<usize, RecvError> {
        let slot_bytes = self.slot_bytes();
        let max = claims.min(buf / slot_bytes);
        if claims > 0 && max == 0 {
            return Err(RecvError::BufferTooSmall {
                needed: slot_bytes,
                got: buf,
            });
        }
        Ok(max)
    }

    /// `Closed` once the ring is sealed and `cursor` has reached the final head.
    ///
    /// Reads `control` first: it is written only by `close` and producer
    /// handles coming and going, so an empty poll stays in the reader's
    /// cache instead of pulling `head`, which the producer writes on every
    /// push. `head` carries `CLOSED` only after `control` has
    /// `CLOSE_REQUESTED`, so no seal is missed (at worst seen a poll later).
    #[inline]
    pub(crate) fn empty_or_closed(&self, cursor: u64) -> RecvError {
        if self.state().control.load(Acquire) & CLOSE_REQUESTED == 0 {
            return RecvError::Empty;
        }
        let head = self.state().head.load(Acquire);
        if head & CLOSED != 0 && cursor >= head & !CLOSED {
            RecvError::Closed
        } else {
            RecvError::Empty
        }
    }

    /// Moves the worker cursor from `cursor` past lost sequence numbers to
    /// `to`, counting them (in the ring's total and in `lost`, what this
    /// call reports); returns the cursor to continue from.
    fn skip_worker(&self, cursor: u64, to: u64, lost: &mut u64) -> u64 {
        match self
            .state()
            .worker
            .compare_exchange(cursor, to, AcqRel, Acquire)
        {
            Ok(_) => {
                self.state()
                    .counters
                    .skipped
                    .fetch_add(to - cursor, Relaxed);
                *lost += to - cursor;
                to
            }
            Err(now) => now,
        }
    }

    /// The worker group could not copy the event at `cursor`: skip it (and
    /// count it) when it is lost, report `Empty` or `Closed` when it is not
    /// there yet (or `Lagged` with what this call skipped, so that every
    /// skip reaches one caller). Returns the cursor to continue from.
    fn worker_blocked(
        &self,
        cursor: u64,
        blocked: Blocked,
        lost: &mut u64,
    ) -> Result<u64, RecvError> {
        match blocked {
            Blocked::NotYet if *lost > 0 => Err(RecvError::Lagged(*lost)),
            Blocked::NotYet => Err(self.empty_or_closed(cursor)),
            Blocked::Hole => Ok(self.skip_worker(cursor, cursor + 1, lost)),
            Blocked::Lapped => {
                let to = self.lag_target(cursor, self.lag);
                Ok(self.skip_worker(cursor, to, lost))
            }
            Blocked::Torn => Ok(cursor),
        }
    }

    /// Copies event `seq` into `buf` (at least a slot long) if its slot holds
    /// it, proves the copy whole with the seqlock re-check, and returns its
    /// length.
    ///
    /// `SINGLE`: the caller reads one event and hands it straight back, so
    /// the caller's next loads of `buf` may still find the copy in the store
    /// buffer: see [`copy_words`] for why that changes how it is stored.
    #[inline]
    pub(crate) fn copy_event<const SINGLE: bool>(
        &self,
        seq: u64,
        buf: &mut [u8],
    ) -> Result<usize, Blocked> {
        let slot = self.slots.slot(seq as usize);
        let before = slot.stamp.load(Acquire);
        // The common case first: one compare instead of decoding the stamp.
        if before != stamp::committed(seq) {
            return Err(Blocked::at(before, seq));
        }
        // A torn read can see any length: clamp it (and the word count, which
        // also spares the slice a bounds check) so the copy stays in bounds;
        // the stamp re-check below then discards the copy.
        let data = slot.data;
        let len = (slot.len.load(Relaxed) as usize).min(data.len() * WORD_BYTES);
        // `len` is clamped to at most a slot, so `len + 7` cannot overflow;
        // `div_ceil`, which must allow for that, costs 4 more instructions.
        #[allow(clippy::manual_div_ceil)]
        let words = ((len + WORD_BYTES - 1) / WORD_BYTES).min(data.len());
        // Whole words (no variable-length memcpy): the buffer is at least a
        // slot long, so the tail word fits; bytes past `len` are unspecified.
        copy_words(&data[..words], buf, SINGLE && len <= PAIRED_COPY_MAX_BYTES);
        // Pairs with the writer's release fence: if any word above came from
        // a later write, this re-load sees that write's WRITING stamp.
        fence(Acquire);
        if slot.stamp.load(Relaxed) == before {
            Ok(len)
        } else {
            Err(Blocked::Torn)
        }
    }

    /// Every how many sequence numbers producers sample the depth, minus one:
    /// `capacity / 4` clamped to `1..=64`, a power of two.
    #[inline]
    pub(crate) fn sample_mask(&self) -> u64 {
        (self.capacity() as u64 / 4).clamp(1, HIGH_WATER_SAMPLE_MAX) - 1
    }

    /// Samples the depth after a push into the high-water mark.
    #[inline]
    pub(crate) fn sample_depth(&self, seq: u64) {
        if seq & self.sample_mask() == 0 {
            self.record_depth(seq);
        }
    }

    /// Records the depth after the push of `seq` in the high-water mark.
    pub(crate) fn record_depth(&self, seq: u64) {
        let depth = (seq + 1).saturating_sub(self.state().worker.load(Relaxed));
        let depth = depth.min(self.capacity() as u64);
        self.state().counters.high_water.fetch_max(depth, Relaxed);
    }

    /// The slot event `seq` lives in.
    #[inline]
    pub(crate) fn slot(&self, seq: u64) -> SlotRef<'_> {
        self.slots.slot(seq as usize)
    }
}

/// Something that gives access to a ring: `&Ring` or `Arc<Ring>`. Handles are
/// generic over it so they can borrow a `static` ring or share a heap one.
pub trait RingRef {
    /// The ring's storage.
    type Storage: Storage;
    /// The ring.
    fn ring(&self) -> &Ring<Self::Storage>;
}

impl<S: Storage> RingRef for &Ring<S> {
    type Storage = S;
    #[inline]
    fn ring(&self) -> &Ring<S> {
        self
    }
}

#[cfg(feature = "alloc")]
impl<S: Storage> RingRef for alloc::sync::Arc<Ring<S>> {
    type Storage = S;
    #[inline]
    fn ring(&self) -> &Ring<S> {
        self
    }
}
