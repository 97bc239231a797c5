//! Producers: [`Producer`], the single producer (plain stores, no
//! read-modify-write on the hot path), and [`MpProducer`], the lock-free
//! multi-producer handle.

use crate::codec::{self, Event};
use crate::error::Error;
use crate::ring::{Overflow, Ring, RingRef, CLOSED, CLOSE_REQUESTED, MULTI, SINGLE_LIVE};
use crate::stamp;
use crate::storage::{SlotRef, Storage, WORD_BYTES};
use crate::sync::{fence, spin_loop, AtomicU64, Ordering::*};

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
    ring: R,
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
    pub fn new(ring: R) -> Result<Self, Error> {
        let r = ring.ring();
        let mut control = r.control.load(Acquire);
        loop {
            if control & CLOSE_REQUESTED != 0 {
                return Err(Error::Closed);
            }
            if control & (SINGLE_LIVE | MULTI) != 0 {
                return Err(Error::ProducerTaken);
            }
            match r
                .control
                .compare_exchange_weak(control, control | SINGLE_LIVE, AcqRel, Acquire)
            {
                Ok(_) => break,
                Err(now) => control = now,
            }
        }
        let next = r.head.load(Acquire) & !CLOSED;
        let room_until = match r.overflow() {
            Overflow::Overwrite => u64::MAX,
            Overflow::Reject => r.worker.load(Acquire) + r.capacity() as u64,
        };
        let sample_mask = r.sample_mask();
        let rejected = r.counters.rejected.load(Acquire);
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

    /// Encodes and pushes an event; see [`Event`]. Returns its sequence number.
    pub fn push_event(&mut self, event: &Event<'_>) -> Result<u64, Error> {
        let (len, timestamp) = prepare_event(self.ring.ring(), event)?;
        self.push_with(|slot| write_event(slot, event, len, timestamp))
    }

    /// Pushes a raw payload framed with the event header, so it can share a
    /// ring with events (see [`Payload`](crate::Payload)); timestamp 0 means
    /// now (with `std`). At most `slot_bytes - EVENT_HEADER_BYTES` bytes.
    pub fn push_framed_raw(&mut self, payload: &[u8], timestamp: u64) -> Result<u64, Error> {
        let timestamp = prepare_framed_raw(self.ring.ring(), payload, timestamp)?;
        self.push_with(|slot| write_framed_raw(slot, payload, timestamp))
    }

    #[inline(always)]
    fn push_with(&mut self, write: impl FnOnce(SlotRef<'_>)) -> Result<u64, Error> {
        let r = self.ring.ring();
        if r.control.load(Relaxed) & CLOSE_REQUESTED != 0 {
            return Err(self.seal());
        }
        let seq = self.next;
        if seq >= self.room_until && !make_room(r, &mut self.room_until, seq) {
            self.rejected += 1;
            r.counters.rejected.store(self.rejected, Relaxed);
            return Err(Error::Full);
        }
        let slot = r.slot(seq);
        slot.stamp.store(stamp::writing(seq), Relaxed);
        // Orders the WRITING stamp before the data stores for any reader
        // whose copy sees one of them (its acquire fence pairs with this).
        fence(Release);
        write(slot);
        slot.stamp.store(stamp::committed(seq), Release);
        r.head.store(seq + 1, Release);
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
        self.ring.ring().head.store(self.next | CLOSED, Release);
        Error::Closed
    }
}

/// Under `Reject`, the single producer's room check once `seq` reached
/// `room_until`: reads the worker cursor again; `false` if the worker group
/// is still a whole ring behind.
#[cold]
fn make_room<S: Storage>(r: &Ring<S>, room_until: &mut u64, seq: u64) -> bool {
    // Acquire: the worker that moved the cursor finished copying the slot we
    // are about to overwrite.
    *room_until = r.worker.load(Acquire) + r.capacity() as u64;
    seq < *room_until
}

impl<R: RingRef> Drop for Producer<R> {
    fn drop(&mut self) {
        let r = self.ring.ring();
        let before = r.control.fetch_and(!SINGLE_LIVE, AcqRel);
        if before & CLOSE_REQUESTED != 0 {
            r.head.fetch_or(CLOSED, AcqRel);
        }
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
    ring: R,
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
    /// [`Error::ProducerTaken`] while a single [`Producer`] is live.
    pub fn new(ring: R) -> Result<Self, Error> {
        let r = ring.ring();
        let mut control = r.control.load(Acquire);
        while control & MULTI == 0 {
            if control & SINGLE_LIVE != 0 {
                return Err(Error::ProducerTaken);
            }
            match r
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

    /// Encodes and pushes an event; see [`Event`].
    pub fn push_event(&self, event: &Event<'_>) -> Result<u64, Error> {
        let (len, timestamp) = prepare_event(self.ring.ring(), event)?;
        self.push_with(|slot| write_event(slot, event, len, timestamp))
    }

    /// Pushes a framed raw payload; see [`Producer::push_framed_raw`].
    pub fn push_framed_raw(&self, payload: &[u8], timestamp: u64) -> Result<u64, Error> {
        let timestamp = prepare_framed_raw(self.ring.ring(), payload, timestamp)?;
        self.push_with(|slot| write_framed_raw(slot, payload, timestamp))
    }

    #[inline(always)]
    fn push_with(&self, write: impl Fn(SlotRef<'_>)) -> Result<u64, Error> {
        let r = self.ring.ring();
        if r.overflow() == Overflow::Reject {
            return self.push_reject(write);
        }
        let ticket = self.take_ticket()?;
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
        Ok(ticket)
    }

    /// The push under `Reject`: one CAS (the ticket), then the single
    /// producer's plain stores. Ticket `t` is taken only once the worker
    /// group has claimed `t - capacity` (acquired through the room check),
    /// so the writer of that event has committed and nobody else writes the
    /// slot: no newer ticket exists before ours is claimed, and no ticket is
    /// ever lapped or abandoned under this policy.
    #[inline(always)]
    fn push_reject(&self, write: impl Fn(SlotRef<'_>)) -> Result<u64, Error> {
        let r = self.ring.ring();
        let ticket = self.take_ticket()?;
        let slot = r.slot(ticket);
        slot.stamp.store(stamp::writing(ticket), Relaxed);
        fence(Release);
        write(slot);
        slot.stamp.store(stamp::committed(ticket), Release);
        r.sample_depth(ticket);
        Ok(ticket)
    }

    /// Takes the next sequence number with a CAS on `head`, which also checks
    /// the closed bit; under `Reject`, only if the worker group has room.
    #[inline(always)]
    pub(crate) fn take_ticket(&self) -> Result<u64, Error> {
        let r = self.ring.ring();
        let mut head = r.head.load(Relaxed);
        loop {
            if head & CLOSED != 0 {
                return Err(Error::Closed);
            }
            if r.overflow() == Overflow::Reject && !has_room(r, head) {
                // Many handles may refuse at once, so this is a shared
                // count. Its line is written only by producers refusing
                // (never by a consumer, whose progress is what they wait for).
                r.counters.rejected.fetch_add(1, Relaxed);
                return Err(Error::Full);
            }
            match r
                .head
                .compare_exchange_weak(head, head + 1, Relaxed, Relaxed)
            {
                Ok(_) => return Ok(head),
                Err(now) => head = now,
            }
            spin_loop();
        }
    }

    /// Makes us the writer of `ticket`'s slot, or marks the ticket a hole:
    /// when a later ticket already took the slot (we were lapped), or when a
    /// stale producer is still writing it (we do not wait for it).
    pub(crate) fn claim_slot(&self, ticket: u64) -> Option<SlotRef<'_>> {
        let slot = self.ring.ring().slot(ticket);
        let mut current = slot.stamp.load(Acquire);
        loop {
            if stamp::seq_plus_one(current) > ticket {
                return None;
            }
            let next = if stamp::is_busy(current) {
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
    let seen = r.worker_seen.load(Acquire);
    if seq.saturating_sub(seen) < cap {
        return true;
    }
    let worker = r.worker.load(Acquire);
    if worker > seen {
        r.worker_seen.fetch_max(worker, AcqRel);
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

/// Stores a raw payload and its length into a slot the caller is writing:
/// whole words in one tight loop, then one zero-padded tail word.
#[inline]
pub(crate) fn write_payload(slot: SlotRef<'_>, payload: &[u8]) {
    slot.len.store(payload.len() as u64, Relaxed);
    store_words(slot.data, payload);
}

/// Checks an event against the codec's bounds and the ring's slot size, and
/// picks its timestamp: everything a push does before touching the ring.
fn prepare_event<S: Storage>(ring: &Ring<S>, event: &Event<'_>) -> Result<(usize, u64), Error> {
    let len = codec::encoded_len(event)?;
    ring.check_payload(len)?;
    Ok((len, codec::timestamp_or_now(event.timestamp)))
}

/// Checks that a framed raw payload fits a slot; returns the timestamp to store.
fn prepare_framed_raw<S: Storage>(
    ring: &Ring<S>,
    payload: &[u8],
    timestamp: u64,
) -> Result<u64, Error> {
    let max = ring.slot_bytes().saturating_sub(codec::EVENT_HEADER_BYTES);
    if payload.len() > max {
        return Err(Error::TooLarge {
            size: payload.len(),
            max,
        });
    }
    Ok(codec::timestamp_or_now(timestamp))
}

/// Stores the length and the framing of a checked raw payload into a slot
/// the caller is writing. Behind the 12-byte header the payload is not
/// word-aligned: the header's second word takes the payload's first 4
/// bytes, and the rest then falls on whole words (no byte-by-byte stores,
/// and no staging copy whose mixed-size stores the word loads would stall on).
fn write_framed_raw(slot: SlotRef<'_>, payload: &[u8], timestamp: u64) {
    let len = codec::EVENT_HEADER_BYTES + payload.len();
    let (Some(first), Some(rest), [word0, word1, cells @ ..]) =
        (payload.first_chunk::<4>(), payload.get(4..), slot.data)
    else {
        // Under 4 bytes (or a 2-word slot): stream it.
        write_encoded(slot, len, |w| codec::encode_raw(payload, timestamp, w));
        return;
    };
    slot.len.store(len as u64, Relaxed);
    let header = codec::raw_header(timestamp);
    let (mut w0, mut w1) = ([0u8; WORD_BYTES], [0u8; WORD_BYTES]);
    w0.copy_from_slice(&header[..WORD_BYTES]);
    w1[..4].copy_from_slice(&header[WORD_BYTES..]);
    w1[4..].copy_from_slice(first);
    word0.store(u64::from_ne_bytes(w0), Relaxed);
    word1.store(u64::from_ne_bytes(w1), Relaxed);
    store_words(cells, rest);
}

/// Stores `bytes` (checked to fit) into `cells`, whole words in one tight
/// loop, then one zero-padded tail word.
#[inline(always)]
fn store_words(cells: &[AtomicU64], bytes: &[u8]) {
    let words = bytes.chunks_exact(WORD_BYTES);
    let tail = words.remainder();
    // The bytes were checked to fit; `split_at_checked` keeps this panic-free
    // and, for a length known at compile time, makes the loop count a
    // constant (the loop is then unrolled).
    let Some((full, rest)) = cells.split_at_checked(bytes.len() / WORD_BYTES) else {
        return;
    };
    for (cell, word) in full.iter().zip(words) {
        let mut w = [0u8; WORD_BYTES];
        w.copy_from_slice(word);
        cell.store(u64::from_ne_bytes(w), Relaxed);
    }
    if let (false, Some(cell)) = (tail.is_empty(), rest.first()) {
        let mut w = [0u8; WORD_BYTES];
        w[..tail.len()].copy_from_slice(tail);
        cell.store(u64::from_ne_bytes(w), Relaxed);
    }
}

/// Events up to this size are encoded on the stack, then stored word by
/// word: an event is many short, unaligned pieces, and streaming them into
/// atomic words byte by byte cost more than the copy.
const STAGED_EVENT_BYTES: usize = 256;

/// Stores the length and the encoding of a checked event (`len` bytes) into
/// a slot the caller is writing.
fn write_event(slot: SlotRef<'_>, event: &Event<'_>, len: usize, timestamp: u64) {
    if len <= STAGED_EVENT_BYTES {
        let mut stage = [0u8; STAGED_EVENT_BYTES];
        let stage = &mut stage[..len];
        codec::encode(event, timestamp, &mut codec::SliceSink::new(stage));
        write_payload(slot, stage);
    } else {
        write_encoded(slot, len, |w| codec::encode(event, timestamp, w));
    }
}

/// Stores `len` and streams what `encode` writes (exactly `len` bytes, checked
/// to fit) into the slot's data words.
#[inline(always)]
fn write_encoded(slot: SlotRef<'_>, len: usize, encode: impl FnOnce(&mut SlotWriter<'_>)) {
    slot.len.store(len as u64, Relaxed);
    let mut writer = SlotWriter {
        cells: slot.data.iter(),
        pending: 0,
        filled: 0,
    };
    encode(&mut writer);
    writer.flush();
}

/// Streams bytes into a slot's data words, one relaxed atomic store per word.
/// The caller has checked that the total fits. All state is plain integers so
/// it stays in registers: whole words go straight to the slot, and a partial
/// word is assembled in `pending` in memory (native) byte order.
pub(crate) struct SlotWriter<'a> {
    cells: core::slice::Iter<'a, AtomicU64>,
    pending: u64,
    filled: usize,
}

impl SlotWriter<'_> {
    #[inline]
    pub(crate) fn write(&mut self, mut bytes: &[u8]) {
        if self.filled != 0 {
            while let Some((&byte, rest)) = bytes.split_first() {
                self.push_byte(byte);
                bytes = rest;
                if self.filled == 0 {
                    break;
                }
            }
            if bytes.is_empty() {
                return;
            }
        }
        let mut words = bytes.chunks_exact(WORD_BYTES);
        for word in &mut words {
            let mut w = [0u8; WORD_BYTES];
            w.copy_from_slice(word);
            self.store(u64::from_ne_bytes(w));
        }
        for &byte in words.remainder() {
            self.push_byte(byte);
        }
    }

    /// Appends one byte to the pending word, storing it when full.
    #[inline]
    fn push_byte(&mut self, byte: u8) {
        let shift = if cfg!(target_endian = "little") {
            8 * self.filled
        } else {
            8 * (WORD_BYTES - 1 - self.filled)
        };
        self.pending |= u64::from(byte) << shift;
        self.filled += 1;
        if self.filled == WORD_BYTES {
            self.store(self.pending);
            self.pending = 0;
            self.filled = 0;
        }
    }

    #[inline]
    fn store(&mut self, word: u64) {
        let cell = self.cells.next();
        debug_assert!(cell.is_some(), "payload length was checked");
        if let Some(cell) = cell {
            cell.store(word, Relaxed);
        }
    }

    #[inline]
    fn flush(&mut self) {
        if self.filled != 0 {
            self.store(self.pending);
            self.filled = 0;
        }
    }
}
