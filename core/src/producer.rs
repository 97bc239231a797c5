//! Producers: [`Producer`], the single producer (plain stores, no
//! read-modify-write on the hot path), and [`MpProducer`], the lock-free
//! multi-producer handle.

use crate::error::Error;
use crate::ring::{Overflow, Ring, RingRef, CLOSED, CLOSE_REQUESTED, MULTI, SINGLE_LIVE};
use crate::stamp;
use crate::storage::{SlotRef, Storage};
use crate::sync::{fence, spin_loop, Ordering::*};
use crate::words::write_payload;

/// The single producer of a ring. Only one can exist at a time, and not
/// alongside [`MpProducer`]s; dropping it frees the role.
///
/// ```
/// use evqueue::{Overflow, StaticRing, Start};
/// static RING: StaticRing<64, 4> = StaticRing::new(Overflow::Overwrite);
/// let mut producer = RING.producer().unwrap();
/// let mut sub = RING.subscribe(Start::Oldest);
/// assert_eq!(producer.push(&42u32.to_le_bytes()), Ok(0));
/// let mut buf = [0u8; 32];
/// let claim = sub.try_recv(&mut buf).unwrap();
/// assert_eq!(&buf[..claim.len], &42u32.to_le_bytes());
/// ```
pub struct Producer<R: RingRef> {
    pub(crate) ring: R,
    /// Sequence number of the next push (this handle alone writes `head`).
    next: u64,
    /// Pushes below this sequence number need no room check: `u64::MAX`
    /// under `Overwrite`; under `Reject`, the last worker-group cursor read
    /// plus the capacity. One compare on the hot path for both policies.
    room_until: u64,
    /// `Ring::sample_mask`, computed once.
    sample_mask: u64,
    /// The ring's refused-push count, kept here: this handle is its only
    /// writer while it lives, so a refusal publishes it with a plain store,
    /// not a read-modify-write.
    rejected: u64,
}

impl<R: RingRef> Producer<R> {
    /// Takes the single-producer role of the ring behind `ring`.
    /// Fails with [`Error::ProducerTaken`] if any producer exists, or
    /// [`Error::Closed`] if the ring is closed.
    ///
    /// On a [`SharedRing`](crate::SharedRing) the role is also held as a
    /// lock on the file, which the kernel drops when the holder dies: a
    /// role whose holder died is taken over: the new producer continues
    /// with the next sequence number.
    pub fn new(ring: R) -> Result<Self, Error> {
        let r = ring.ring();
        if !r.slots.lock_single() {
            return Err(Error::ProducerTaken);
        }
        let next = match take_role(r) {
            Ok(next) => next,
            Err(e) => {
                r.slots.unlock_single();
                return Err(e);
            }
        };
        let room_until = match r.overflow() {
            Overflow::Overwrite => u64::MAX,
            Overflow::Reject => r.state().worker.load(Acquire) + r.capacity() as u64,
        };
        let sample_mask = r.sample_mask();
        let rejected = r.state().counters.rejected.load(Acquire);
        Ok(Producer {
            ring,
            next,
            room_until,
            sample_mask,
            rejected,
        })
    }

    /// Pushes a raw payload (at most a slot) and returns its sequence number.
    ///
    /// Fails with [`Error::TooLarge`], [`Error::Closed`], or under the
    /// `Reject` policy [`Error::Full`]; a failed push changes nothing.
    // Inlined into the caller: the call and a `Result` returned through
    // memory were a third of the push time.
    #[inline(always)]
    pub fn push(&mut self, payload: &[u8]) -> Result<u64, Error> {
        self.ring.ring().check_payload(payload.len())?;
        self.push_with(|slot| write_payload(slot, payload))
    }

    /// A push whose bytes `write` stores into the slot it reserved: the
    /// protocol the raw and event pushes share.
    #[inline(always)]
    pub(crate) fn push_with(&mut self, write: impl FnOnce(SlotRef<'_>)) -> Result<u64, Error> {
        let r = self.ring.ring();
        if r.state().control.load(Relaxed) & CLOSE_REQUESTED != 0 {
            return Err(self.seal());
        }
        let seq = self.next;
        if seq >= self.room_until && !make_room(r, &mut self.room_until, seq) {
            self.rejected += 1;
            r.state().counters.rejected.store(self.rejected, Relaxed);
            return Err(Error::Full);
        }
        let slot = r.slot(seq);
        slot.stamp.store(stamp::writing(seq), Relaxed);
        // Orders the WRITING stamp before the data stores for any reader
        // whose copy sees one of them (its acquire fence pairs with this).
        fence(Release);
        write(slot);
        slot.stamp.store(stamp::committed(seq), Release);
        r.state().head.store(seq + 1, Release);
        self.next = seq + 1;
        if seq & self.sample_mask == 0 {
            r.record_depth(seq);
        }
        Ok(seq)
    }

    /// A close was requested. We own `head`, so we seal it: consumers see
    /// `Closed` after our last event.
    #[cold]
    fn seal(&self) -> Error {
        self.ring
            .ring()
            .state()
            .head
            .store(self.next | CLOSED, Release);
        Error::Closed
    }
}

/// Sets `SINGLE_LIVE` (the caller holds the storage's lock on the role) and
/// returns the sequence number to push next.
///
/// If the bit is already set but the storage says its holder is dead (a
/// shared ring whose role lock was free), the role is taken over as it is.
/// The dead holder may have committed event `head` without publishing
/// `head + 1`; then a worker may already have claimed it, so we continue
/// after it (and publish that). A write it left unfinished at `head` is
/// simply written again. If a close was requested meanwhile, we seal the
/// ring for it and give the role back.
fn take_role<S: Storage>(r: &Ring<S>) -> Result<u64, Error> {
    let state = r.state();
    let mut control = state.control.load(Acquire);
    loop {
        if control & SINGLE_LIVE != 0 && r.slots.single_holder_dead() {
            let head = state.head.load(Acquire) & !CLOSED;
            if control & CLOSE_REQUESTED != 0 {
                let sealed = if r.slot(head).stamp.load(Acquire) == stamp::committed(head) {
                    head + 1
                } else {
                    head
                };
                state.head.store(sealed | CLOSED, Release);
                state.control.fetch_and(!SINGLE_LIVE, AcqRel);
                return Err(Error::Closed);
            }
            if r.slot(head).stamp.load(Acquire) == stamp::committed(head) {
                state.head.store(head + 1, Release);
                return Ok(head + 1);
            }
            return Ok(head);
        }
        if control & CLOSE_REQUESTED != 0 {
            return Err(Error::Closed);
        }
        if control & (SINGLE_LIVE | MULTI) != 0 {
            return Err(Error::ProducerTaken);
        }
        match state
            .control
            .compare_exchange_weak(control, control | SINGLE_LIVE, AcqRel, Acquire)
        {
            Ok(_) => return Ok(state.head.load(Acquire) & !CLOSED),
            Err(now) => control = now,
        }
    }
}

/// Under `Reject`, the single producer's room check once `seq` reached
/// `room_until`: reads the worker cursor again; `false` if the worker group
/// is still a whole ring behind.
#[cold]
fn make_room<S: Storage>(r: &Ring<S>, room_until: &mut u64, seq: u64) -> bool {
    // Acquire: the worker that moved the cursor finished copying the slot we
    // are about to overwrite.
    *room_until = r.state().worker.load(Acquire) + r.capacity() as u64;
    seq < *room_until
}

impl<R: RingRef> Drop for Producer<R> {
    fn drop(&mut self) {
        let r = self.ring.ring();
        let before = r.state().control.fetch_and(!SINGLE_LIVE, AcqRel);
        if before & CLOSE_REQUESTED != 0 {
            r.state().head.fetch_or(CLOSED, AcqRel);
        }
        r.slots.unlock_single();
    }
}

/// A multi-producer handle: push from any number of threads at once. Clone
/// it to share it. Lock-free: a producer preempted in the middle of a push
/// delays no other producer, and readers skip its slot once it is lapped.
/// Under [`Overflow::Overwrite`] such a producer's event counts as
/// overwritten (its push still returns `Ok`), and so does the event of a
/// push whose slot a producer stalled for a whole lap still holds.
///
/// ```
/// use evqueue::{HeapRing, Overflow};
/// use std::sync::Arc;
/// let ring = Arc::new(HeapRing::with_capacity(1024, 64, Overflow::Overwrite).unwrap());
/// let producer = evqueue::MpProducer::new(ring.clone()).unwrap();
/// std::thread::scope(|s| {
///     for t in 0..4u8 {
///         let p = producer.clone();
///         s.spawn(move || { for _ in 0..10 { p.push(&[t]).unwrap(); } });
///     }
/// });
/// assert_eq!(ring.stats().pushed, 40);
/// ```
pub struct MpProducer<R: RingRef> {
    pub(crate) ring: R,
}

impl<R: RingRef + Clone> Clone for MpProducer<R> {
    fn clone(&self) -> Self {
        MpProducer {
            ring: self.ring.clone(),
        }
    }
}

impl<R: RingRef> MpProducer<R> {
    /// A multi-producer handle for the ring behind `ring`. Fails with
    /// [`Error::ProducerTaken`] while a single [`Producer`] is live (or, on
    /// a [`SharedRing`](crate::SharedRing), when every process entry is
    /// held by other processes).
    pub fn new(ring: R) -> Result<Self, Error> {
        let r = ring.ring();
        if !r.slots.attach_writer() {
            return Err(Error::ProducerTaken);
        }
        let mut control = r.state().control.load(Acquire);
        while control & MULTI == 0 {
            if control & SINGLE_LIVE != 0 {
                return Err(Error::ProducerTaken);
            }
            match r
                .state()
                .control
                .compare_exchange_weak(control, control | MULTI, AcqRel, Acquire)
            {
                Ok(_) => break,
                Err(now) => control = now,
            }
        }
        Ok(MpProducer { ring })
    }

    /// Pushes a raw payload (at most a slot) and returns its sequence number.
    /// Errors as [`Producer::push`].
    #[inline]
    pub fn push(&self, payload: &[u8]) -> Result<u64, Error> {
        self.ring.ring().check_payload(payload.len())?;
        self.push_with(|slot| write_payload(slot, payload))
    }

    /// A push whose bytes `write` stores into the slot it reserved: the
    /// protocol the raw and event pushes share.
    #[inline(always)]
    pub(crate) fn push_with(&self, write: impl Fn(SlotRef<'_>)) -> Result<u64, Error> {
        let r = self.ring.ring();
        if r.overflow() == Overflow::Reject {
            return self.push_reject(write);
        }
        let ticket = self.begin_push()?;
        if let Some(slot) = self.claim_slot(ticket) {
            // Same protocol as the single producer (see there), except the
            // commit is a CAS: a newer ticket may have marked our slot while
            // we wrote.
            fence(Release);
            write(slot);
            if finish(slot, ticket, stamp::committed(ticket)) {
                r.sample_depth(ticket);
            }
        }
        // Otherwise the ticket was lapped before we wrote it, or its slot was
        // still held by a producer stalled a whole lap: the event was
        // accepted and lost, as an overwritten one is. No retry: a push that
        // returned `Ok` is counted once, as pushed and then overwritten, and
        // the ticket (a hole) reads as a lost event to every reader.
        r.slots.writing_end();
        Ok(ticket)
    }

    /// The push under `Reject`: one CAS (the ticket), then the single
    /// producer's plain stores. Ticket `t` is taken only once the worker
    /// group has claimed `t - capacity` (acquired through the room check),
    /// so the writer of that event has committed (or, on a shared ring,
    /// died and had its ticket recovered: see `SharedRing::recover`) and nobody
    /// else writes the slot: no newer ticket exists before ours is claimed,
    /// and no live writer's ticket is ever lapped or abandoned under this
    /// policy.
    #[inline(always)]
    fn push_reject(&self, write: impl Fn(SlotRef<'_>)) -> Result<u64, Error> {
        let r = self.ring.ring();
        let ticket = self.begin_push()?;
        let slot = r.slot(ticket);
        slot.stamp.store(stamp::writing(ticket), Relaxed);
        fence(Release);
        write(slot);
        slot.stamp.store(stamp::committed(ticket), Release);
        r.slots.writing_end();
        r.sample_depth(ticket);
        Ok(ticket)
    }

    /// Counts the push in flight (shared rings) and takes its ticket; a
    /// refused ticket is counted out again. The caller calls
    /// `writing_end` once done with the slot.
    #[inline(always)]
    fn begin_push(&self) -> Result<u64, Error> {
        let r = self.ring.ring();
        r.slots.writing_begin();
        self.take_ticket().inspect_err(|_| r.slots.writing_end())
    }

    /// Takes the next sequence number with a CAS on `head`, which also checks
    /// the closed bit; under `Reject`, only if the worker group has room.
    ///
    /// Where writers are counted, the CAS is also acquire-release: a
    /// reader that sees `head` past our ticket sees our process counted in
    /// flight, and we see every earlier ticket's writer counted.
    #[inline(always)]
    pub(crate) fn take_ticket(&self) -> Result<u64, Error> {
        let r = self.ring.ring();
        let taken = if R::Storage::COUNTS_WRITERS {
            AcqRel
        } else {
            Relaxed
        };
        let mut head = r.state().head.load(Relaxed);
        loop {
            if head & CLOSED != 0 {
                return Err(Error::Closed);
            }
            if r.overflow() == Overflow::Reject && !has_room(r, head) {
                // Many handles may refuse at once, so this is a shared
                // count. Its line is written only by producers refusing
                // (never by a consumer, whose progress is what they wait for).
                r.state().counters.rejected.fetch_add(1, Relaxed);
                return Err(Error::Full);
            }
            match r
                .state()
                .head
                .compare_exchange_weak(head, head + 1, taken, Relaxed)
            {
                Ok(_) => return Ok(head),
                Err(now) => head = now,
            }
            spin_loop();
        }
    }

    /// Makes us the writer of `ticket`'s slot, or marks the ticket a hole:
    /// when a later ticket already took the slot (we were lapped), or when a
    /// stale producer is still writing it (we do not wait for it). A slot
    /// still marked busy by a writer whose process died is taken over.
    pub(crate) fn claim_slot(&self, ticket: u64) -> Option<SlotRef<'_>> {
        let r = self.ring.ring();
        let slot = r.slot(ticket);
        let mut current = slot.stamp.load(Acquire);
        loop {
            if stamp::seq_plus_one(current) > ticket {
                return None;
            }
            // Busy from an earlier lap: its writer is stale, or dead. Dead
            // only if no process but ours (this push alone) is writing.
            let next = if stamp::is_busy(current)
                && !(R::Storage::COUNTS_WRITERS && r.slots.writers_gone(1))
            {
                stamp::hole_busy(ticket)
            } else {
                stamp::writing(ticket)
            };
            // Acquire: the previous writer's data stores happen before ours.
            match slot
                .stamp
                .compare_exchange_weak(current, next, Acquire, Acquire)
            {
                Ok(_) if next == stamp::writing(ticket) => return Some(slot),
                Ok(_) => return None,
                Err(now) => current = now,
            }
        }
    }
}

/// The `Reject` room check for ticket `seq`: the worker group has claimed
/// `seq - capacity`. Reads the cached cursor first, and the real one (and
/// refreshes the cache) only when the ring looks full. Acquire on both, and
/// release on the refresh: the worker that moved the cursor past our slot
/// finished copying it before we overwrite it.
#[inline(always)]
fn has_room<S: Storage>(r: &Ring<S>, seq: u64) -> bool {
    let cap = r.capacity() as u64;
    let seen = r.state().worker_seen.load(Acquire);
    if seq.saturating_sub(seen) < cap {
        return true;
    }
    let worker = r.state().worker.load(Acquire);
    if worker > seen {
        r.state().worker_seen.fetch_max(worker, AcqRel);
    }
    seq.saturating_sub(worker) < cap
}

/// Ends a write of `ticket`: `WRITING(ticket) → done`. If a newer ticket
/// marked the slot `HOLE_BUSY` meanwhile, hands the slot back as a free hole
/// and returns `false`.
pub(crate) fn finish(slot: SlotRef<'_>, ticket: u64, done: u64) -> bool {
    if slot
        .stamp
        .compare_exchange(stamp::writing(ticket), done, Release, Relaxed)
        .is_ok()
    {
        return true;
    }
    let mut current = slot.stamp.load(Relaxed);
    while stamp::is_hole_busy(current) {
        match slot.stamp.compare_exchange_weak(
            current,
            stamp::release_busy(current),
            Release,
            Relaxed,
        ) {
            Ok(_) => break,
            Err(now) => current = now,
        }
    }
    false
}

/// The producer handles of a ring.
impl<S: Storage> Ring<S> {
    /// Takes the single-producer handle, borrowing the ring (for a `static`
    /// ring, or scoped threads); [`producer_owned`](Self::producer_owned)
    /// gives one that moves to any thread. See [`Producer`](crate::Producer).
    pub fn producer(&self) -> Result<crate::Producer<&Self>, Error> {
        crate::Producer::new(self)
    }

    /// A multi-producer handle borrowing the ring; clone it for more.
    /// [`mp_producer_owned`](Self::mp_producer_owned) gives one that moves to
    /// any thread. See [`MpProducer`](crate::MpProducer).
    pub fn mp_producer(&self) -> Result<crate::MpProducer<&Self>, Error> {
        crate::MpProducer::new(self)
    }
}

/// Handles that own a share of the ring, for threads that outlive the
/// scope that made it.
///
/// ```
/// use evqueue::{HeapRing, Overflow, Start};
/// use std::sync::Arc;
/// let ring = Arc::new(HeapRing::with_capacity(64, 16, Overflow::Overwrite)?);
/// let producer = ring.mp_producer_owned()?;
/// let mut sub = ring.subscribe_owned(Start::Now);
/// std::thread::spawn(move || producer.push(b"hi").unwrap()).join().unwrap();
/// let mut buf = [0u8; 16];
/// let claim = sub.try_recv(&mut buf).unwrap();
/// assert_eq!(&buf[..claim.len], b"hi");
/// # Ok::<(), evqueue::Error>(())
/// ```
#[cfg(feature = "alloc")]
impl<S: Storage> Ring<S> {
    /// [`producer`](Self::producer), owning a share of the ring.
    pub fn producer_owned(
        self: &alloc::sync::Arc<Self>,
    ) -> Result<crate::Producer<alloc::sync::Arc<Self>>, Error> {
        crate::Producer::new(self.clone())
    }

    /// [`mp_producer`](Self::mp_producer), owning a share of the ring.
    pub fn mp_producer_owned(
        self: &alloc::sync::Arc<Self>,
    ) -> Result<crate::MpProducer<alloc::sync::Arc<Self>>, Error> {
        crate::MpProducer::new(self.clone())
    }
}
