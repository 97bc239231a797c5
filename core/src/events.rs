//! The event layer over the ring: pushing a Nakama [`Event`] (or a raw
//! payload framed like one) into a slot, and decoding what a claim copied
//! out. The ring below it moves bytes and knows nothing of events.

use crate::codec::{self, ByteSink, Event};
use crate::error::Error;
use crate::producer::{MpProducer, Producer};
use crate::ring::{Claim, Ring, RingRef};
use crate::storage::{SlotRef, Storage, WORD_BYTES};
use crate::sync::Ordering::Relaxed;
use crate::words::{store_words, write_encoded, write_payload, SlotWriter};

impl<R: RingRef> Producer<R> {
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
}

impl<R: RingRef> MpProducer<R> {
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
}

impl Claim {
    /// Decodes the received bytes as an event (see [`EventView`](crate::EventView)).
    pub fn event<'b>(&self, buf: &'b [u8]) -> Result<crate::EventView<'b>, Error> {
        let bytes = buf.get(..self.len).ok_or(Error::Malformed)?;
        crate::EventView::decode(bytes, self.seq)
    }

    /// Decodes the received bytes as an event or a framed raw payload (see
    /// [`Payload`](crate::Payload)).
    pub fn payload<'b>(&self, buf: &'b [u8]) -> Result<crate::Payload<'b>, Error> {
        let bytes = buf.get(..self.len).ok_or(Error::Malformed)?;
        crate::Payload::decode(bytes, self.seq)
    }
}

impl ByteSink for SlotWriter<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        SlotWriter::write(self, bytes)
    }
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
