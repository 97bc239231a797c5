//! The event codec: a Nakama event encoded into one slot, decoded as a
//! borrowed view with no allocation. A layer over the ring: raw payloads
//! share the ring with encoded events, so decoding validates everything.
//!
//! Layout (little-endian):
//! ```text
//! 0..8   timestamp, ns since the Unix epoch
//! 8      flags: bit 0 = external
//! 9      name length (1..=255)
//! 10..12 property count
//! 12..   name, then per property: key length (u8), value length (u16), key, value
//! ```
//!
//! A raw payload framed to share a ring with events ([`Payload::Raw`]) has
//! the same header with flags = 2 (raw), name length 0 and property count 0,
//! followed by the payload bytes.

use crate::error::Error;

/// Longest event name, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Longest property key, in bytes.
pub const MAX_KEY_LEN: usize = 255;
/// Longest property value, in bytes.
pub const MAX_VALUE_LEN: usize = u16::MAX as usize;
/// Most properties on one event.
pub const MAX_PROPERTIES: usize = u16::MAX as usize;
/// Bytes of the fixed event header.
pub const EVENT_HEADER_BYTES: usize = 12;
const PROPERTY_HEADER_BYTES: usize = 3;
const EXTERNAL: u8 = 1;
const RAW: u8 = 2;

/// An event to push: what game logic emits (Nakama's `Event`).
///
/// ```
/// use evqueue::{Event, HeapRing, Overflow};
/// let ring = HeapRing::with_capacity(16, 256, Overflow::Overwrite).unwrap();
/// let producer = ring.mp_producer().unwrap();
/// let event = Event::new("purchase").properties(&[("sku", "gem_pack")]).timestamp(1_700_000_000_000_000_000);
/// producer.push_event(&event).unwrap();
///
/// let mut buf = [0u8; 256];
/// let claim = ring.try_claim(&mut buf).unwrap();
/// let view = claim.event(&buf).unwrap();
/// assert_eq!(view.name, "purchase");
/// assert_eq!(view.properties().get("sku"), Some("gem_pack"));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event<'a> {
    /// Event name: UTF-8, 1 to [`MAX_NAME_LEN`] bytes.
    pub name: &'a str,
    /// String properties, keys 1 to [`MAX_KEY_LEN`] bytes, values up to [`MAX_VALUE_LEN`].
    pub properties: &'a [(&'a str, &'a str)],
    /// Nanoseconds since the Unix epoch; 0 (the default) means "stamp it at
    /// push time" with the `std` feature ([`now_nanos`](crate::now_nanos)'s
    /// clock); without `std` there is no clock and it stays 0.
    pub timestamp: u64,
    /// True when a client sent the event rather than the server.
    pub external: bool,
}

impl<'a> Event<'a> {
    /// An event with this name, no properties, timestamp 0 (stamped at
    /// push time with `std`), not external.
    pub const fn new(name: &'a str) -> Self {
        Event {
            name,
            properties: &[],
            timestamp: 0,
            external: false,
        }
    }
    /// With these properties.
    pub const fn properties(mut self, properties: &'a [(&'a str, &'a str)]) -> Self {
        self.properties = properties;
        self
    }
    /// With this timestamp (ns since the Unix epoch); 0 means "stamp it at
    /// push time" (with `std`; see [`now_nanos`](crate::now_nanos)).
    pub const fn timestamp(mut self, timestamp: u64) -> Self {
        self.timestamp = timestamp;
        self
    }
    /// Marked as sent by a client.
    pub const fn external(mut self, external: bool) -> Self {
        self.external = external;
        self
    }
}

/// Checks an event against the bounds and returns its encoded size.
pub fn encoded_len(event: &Event<'_>) -> Result<usize, Error> {
    check_name(event.name)?;
    if event.properties.len() > MAX_PROPERTIES {
        return Err(Error::TooManyProperties {
            count: event.properties.len(),
            max: MAX_PROPERTIES,
        });
    }
    let mut len = EVENT_HEADER_BYTES + event.name.len();
    for (key, value) in event.properties {
        if key.is_empty() {
            return Err(Error::EmptyKey);
        }
        if key.len() > MAX_KEY_LEN {
            return Err(Error::KeyTooLong {
                len: key.len(),
                max: MAX_KEY_LEN,
            });
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(Error::ValueTooLong {
                len: value.len(),
                max: MAX_VALUE_LEN,
            });
        }
        len += property_len(key, value);
    }
    Ok(len)
}

/// The encoded size of an event with this name and these properties, with
/// no bounds checked (an event within the bounds: [`encoded_len`]). Only
/// the forwarders, which size owned events, need it.
#[cfg(feature = "std")]
pub(crate) fn unchecked_len<'a>(
    name: &str,
    properties: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> usize {
    let props: usize = properties
        .into_iter()
        .map(|(k, v)| property_len(k, v))
        .sum();
    EVENT_HEADER_BYTES + name.len() + props
}

/// Bytes one property takes encoded: its header, the key and the value.
#[inline]
const fn property_len(key: &str, value: &str) -> usize {
    PROPERTY_HEADER_BYTES + key.len() + value.len()
}

/// The most properties an event can carry in a slot of `slot_bytes` bytes
/// (a 1-byte name, each property a 1-byte key and an empty value). For the
/// C ABI, which sizes its property arrays by it.
#[doc(hidden)]
pub const fn max_properties(slot_bytes: usize) -> usize {
    slot_bytes.saturating_sub(EVENT_HEADER_BYTES + 1) / property_len("k", "")
}

/// Checks an event name: non-empty, at most [`MAX_NAME_LEN`] bytes.
pub fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::EmptyName);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::NameTooLong {
            len: name.len(),
            max: MAX_NAME_LEN,
        });
    }
    Ok(())
}

/// Encodes `event` into `out` and returns the bytes written. The event is
/// checked first; `out` must hold [`encoded_len`] bytes or the result is
/// [`Error::TooLarge`]. The timestamp is written as given.
pub fn encode_into(event: &Event<'_>, out: &mut [u8]) -> Result<usize, Error> {
    let len = encoded_len(event)?;
    if len > out.len() {
        return Err(Error::TooLarge {
            size: len,
            max: out.len(),
        });
    }
    let mut sink = SliceSink::new(out);
    encode(event, event.timestamp, &mut sink);
    Ok(len)
}

/// Where the encoder writes: a slot writer or a byte slice.
pub(crate) trait ByteSink {
    fn write(&mut self, bytes: &[u8]);
}

/// Writes into a byte slice that the caller sized to fit.
pub(crate) struct SliceSink<'o> {
    out: &'o mut [u8],
    at: usize,
}

impl<'o> SliceSink<'o> {
    pub(crate) fn new(out: &'o mut [u8]) -> Self {
        SliceSink { out, at: 0 }
    }
}

impl ByteSink for SliceSink<'_> {
    fn write(&mut self, bytes: &[u8]) {
        self.out[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }
}

/// Writes a checked event (see [`encoded_len`]).
pub(crate) fn encode(event: &Event<'_>, timestamp: u64, sink: &mut impl ByteSink) {
    let mut header = [0u8; EVENT_HEADER_BYTES];
    header[..8].copy_from_slice(&timestamp.to_le_bytes());
    header[8] = if event.external { EXTERNAL } else { 0 };
    header[9] = event.name.len() as u8;
    header[10..12].copy_from_slice(&(event.properties.len() as u16).to_le_bytes());
    sink.write(&header);
    sink.write(event.name.as_bytes());
    for (key, value) in event.properties {
        let mut prop = [0u8; PROPERTY_HEADER_BYTES];
        prop[0] = key.len() as u8;
        prop[1..3].copy_from_slice(&(value.len() as u16).to_le_bytes());
        sink.write(&prop);
        sink.write(key.as_bytes());
        sink.write(value.as_bytes());
    }
}

/// Writes the header of a framed raw payload, then the payload.
pub(crate) fn encode_raw(bytes: &[u8], timestamp: u64, sink: &mut impl ByteSink) {
    sink.write(&raw_header(timestamp));
    sink.write(bytes);
}

/// The header that frames a raw payload.
#[inline]
pub(crate) fn raw_header(timestamp: u64) -> [u8; EVENT_HEADER_BYTES] {
    let mut header = [0u8; EVENT_HEADER_BYTES];
    header[..8].copy_from_slice(&timestamp.to_le_bytes());
    header[8] = RAW;
    header
}

/// The timestamp to store: the given one, or with `std` the current time for 0.
#[inline]
pub(crate) fn timestamp_or_now(timestamp: u64) -> u64 {
    #[cfg(feature = "std")]
    if timestamp == 0 {
        return now_nanos();
    }
    timestamp
}

/// The current time in nanoseconds since the Unix epoch: the clock that
/// stamps an event pushed with timestamp 0. 0 if the system clock is before
/// 1970; saturates in 2554.
///
/// ```
/// use evqueue::{now_nanos, Event};
/// let event = Event::new("match_end").timestamp(now_nanos()); // the same as leaving it 0
/// assert!(event.timestamp > 1_600_000_000_000_000_000);
/// ```
#[cfg(feature = "std")]
pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A decoded event borrowing the receive buffer: no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventView<'a> {
    /// Sequence number the ring assigned.
    pub seq: u64,
    /// Event name.
    pub name: &'a str,
    /// Nanoseconds since the Unix epoch.
    pub timestamp: u64,
    /// True when a client sent it.
    pub external: bool,
    properties: Properties<'a>,
}

impl<'a> EventView<'a> {
    /// Decodes and validates an encoded event (bounds, UTF-8, exact length).
    pub fn decode(bytes: &'a [u8], seq: u64) -> Result<Self, Error> {
        let header: &[u8; EVENT_HEADER_BYTES] = bytes
            .get(..EVENT_HEADER_BYTES)
            .and_then(|h| h.try_into().ok())
            .ok_or(Error::Malformed)?;
        let timestamp = u64::from_le_bytes([
            header[0], header[1], header[2], header[3], header[4], header[5], header[6], header[7],
        ]);
        let flags = header[8];
        let name_len = header[9] as usize;
        let count = u16::from_le_bytes([header[10], header[11]]) as usize;
        if flags & !EXTERNAL != 0 || name_len == 0 {
            return Err(Error::Malformed);
        }
        let rest = &bytes[EVENT_HEADER_BYTES..];
        let name = rest.get(..name_len).ok_or(Error::Malformed)?;
        let name = core::str::from_utf8(name).map_err(|_| Error::Malformed)?;
        let props = &rest[name_len..];
        // Validate every property once, so iteration cannot fail.
        let mut parser = PropertyParser { bytes: props };
        for _ in 0..count {
            let (key, value) = parser.next_raw().ok_or(Error::Malformed)?;
            if key.is_empty()
                || core::str::from_utf8(key).is_err()
                || core::str::from_utf8(value).is_err()
            {
                return Err(Error::Malformed);
            }
        }
        if !parser.bytes.is_empty() {
            return Err(Error::Malformed);
        }
        Ok(EventView {
            seq,
            name,
            timestamp,
            external: flags & EXTERNAL != 0,
            properties: Properties {
                bytes: props,
                count,
            },
        })
    }

    /// An event with no properties that stands for something else (a raw
    /// payload, in the error hook).
    #[cfg(feature = "std")]
    pub(crate) fn stand_in(name: &'a str, seq: u64, timestamp: u64) -> Self {
        EventView {
            seq,
            name,
            timestamp,
            external: false,
            properties: Properties {
                bytes: &[],
                count: 0,
            },
        }
    }

    /// The event's properties, in the order they were given.
    pub fn properties(&self) -> Properties<'a> {
        self.properties
    }
}

/// A raw payload framed with the event header (see the module doc): a
/// user's own fixed-size record sharing a queue with events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawView<'a> {
    /// Sequence number the ring assigned.
    pub seq: u64,
    /// Nanoseconds since the Unix epoch.
    pub timestamp: u64,
    /// The payload, as pushed.
    pub bytes: &'a [u8],
}

/// What a slot of an event queue holds: an encoded event or a framed raw
/// payload.
///
/// ```
/// use evqueue::{Event, HeapRing, Overflow, Payload};
/// let ring = HeapRing::with_capacity(16, 64, Overflow::Overwrite).unwrap();
/// let producer = ring.mp_producer().unwrap();
/// producer.push_event(&Event::new("tick")).unwrap();
/// producer.push_framed_raw(&[1, 2, 3], 42).unwrap();
/// let mut buf = [0u8; 64];
/// let claim = ring.try_claim(&mut buf).unwrap();
/// assert!(matches!(claim.payload(&buf), Ok(Payload::Event(e)) if e.name == "tick"));
/// let claim = ring.try_claim(&mut buf).unwrap();
/// let Ok(Payload::Raw(raw)) = claim.payload(&buf) else { panic!() };
/// assert_eq!((raw.seq, raw.timestamp, raw.bytes), (1, 42, &[1u8, 2, 3][..]));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// An encoded event.
    Event(EventView<'a>),
    /// A framed raw payload.
    Raw(RawView<'a>),
}

impl<'a> Payload<'a> {
    /// Decodes and validates an encoded event or a framed raw payload.
    pub fn decode(bytes: &'a [u8], seq: u64) -> Result<Self, Error> {
        match bytes.get(..EVENT_HEADER_BYTES) {
            Some(header) if header[8] == RAW => {
                if header[9..12] != [0, 0, 0] {
                    return Err(Error::Malformed);
                }
                let mut ts = [0u8; 8];
                ts.copy_from_slice(&header[..8]);
                Ok(Payload::Raw(RawView {
                    seq,
                    timestamp: u64::from_le_bytes(ts),
                    bytes: &bytes[EVENT_HEADER_BYTES..],
                }))
            }
            _ => EventView::decode(bytes, seq).map(Payload::Event),
        }
    }

    /// The sequence number the ring assigned.
    pub fn seq(&self) -> u64 {
        match self {
            Payload::Event(e) => e.seq,
            Payload::Raw(r) => r.seq,
        }
    }
}

/// The properties of an [`EventView`]: iterate for `(key, value)` pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Properties<'a> {
    /// Validated by `EventView::decode`.
    bytes: &'a [u8],
    count: usize,
}

impl<'a> Properties<'a> {
    /// Number of properties.
    pub fn len(&self) -> usize {
        self.count
    }
    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// The value of the first property named `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
    /// The `(key, value)` pairs.
    pub fn iter(&self) -> PropertyIter<'a> {
        PropertyIter {
            parser: PropertyParser { bytes: self.bytes },
            left: self.count,
        }
    }
}

impl<'a> IntoIterator for Properties<'a> {
    type Item = (&'a str, &'a str);
    type IntoIter = PropertyIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over [`Properties`].
#[derive(Clone, Debug)]
pub struct PropertyIter<'a> {
    parser: PropertyParser<'a>,
    left: usize,
}

impl<'a> Iterator for PropertyIter<'a> {
    type Item = (&'a str, &'a str);
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let (key, value) = self.parser.next_raw()?;
        // SAFETY: `Properties` is only built by `EventView::decode`, which
        // checked that every key and value in these bytes is valid UTF-8.
        let pair = unsafe {
            (
                core::str::from_utf8_unchecked(key),
                core::str::from_utf8_unchecked(value),
            )
        };
        Some(pair)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for PropertyIter<'_> {}

#[derive(Clone, Debug)]
struct PropertyParser<'a> {
    bytes: &'a [u8],
}

impl<'a> PropertyParser<'a> {
    fn next_raw(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        let head = self.bytes.get(..PROPERTY_HEADER_BYTES)?;
        let key_len = head[0] as usize;
        let value_len = u16::from_le_bytes([head[1], head[2]]) as usize;
        let body = &self.bytes[PROPERTY_HEADER_BYTES..];
        let key = body.get(..key_len)?;
        let value = body.get(key_len..key_len + value_len)?;
        self.bytes = &body[key_len + value_len..];
        Some((key, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let props = [("sku", "gem_pack"), ("price", "499"), ("note", "")];
        let event = Event::new("purchase")
            .properties(&props)
            .timestamp(42)
            .external(true);
        let mut buf = [0u8; 128];
        let len = encode_into(&event, &mut buf).unwrap();
        assert_eq!(len, encoded_len(&event).unwrap());
        let view = EventView::decode(&buf[..len], 7).unwrap();
        assert_eq!(
            (view.seq, view.name, view.timestamp, view.external),
            (7, "purchase", 42, true)
        );
        assert!(view.properties().iter().eq(props.iter().copied()));
        assert_eq!(view.properties().get("price"), Some("499"));
        assert_eq!(view.properties().get("nope"), None);
    }

    #[test]
    fn bad_events_are_refused() {
        let mut buf = [0u8; 64];
        assert_eq!(
            encode_into(&Event::new(""), &mut buf),
            Err(Error::EmptyName)
        );
        let long = "x".repeat(256);
        assert_eq!(
            encode_into(&Event::new(&long), &mut buf),
            Err(Error::NameTooLong { len: 256, max: 255 })
        );
        assert_eq!(
            encode_into(&Event::new("a").properties(&[("", "v")]), &mut buf),
            Err(Error::EmptyKey)
        );
        assert_eq!(
            encode_into(&Event::new("a").properties(&[(&long, "v")]), &mut buf),
            Err(Error::KeyTooLong { len: 256, max: 255 })
        );
        let huge = "v".repeat(MAX_VALUE_LEN + 1);
        assert_eq!(
            encode_into(&Event::new("a").properties(&[("k", &huge)]), &mut buf),
            Err(Error::ValueTooLong {
                len: MAX_VALUE_LEN + 1,
                max: MAX_VALUE_LEN
            })
        );
        assert_eq!(
            encode_into(
                &Event::new("a").properties(&[(
                    "k",
                    "0123456789012345678901234567890123456789012345678901234567890"
                )]),
                &mut buf
            ),
            Err(Error::TooLarge {
                size: 12 + 1 + 3 + 1 + 61,
                max: 64
            })
        );
        assert_eq!(buf, [0u8; 64], "a refused encode writes nothing");
    }

    #[test]
    fn malformed_bytes_are_refused() {
        let mut buf = [0u8; 64];
        let len = encode_into(&Event::new("ok").properties(&[("k", "v")]), &mut buf).unwrap();
        for cut in 0..len {
            assert_eq!(
                EventView::decode(&buf[..cut], 0),
                Err(Error::Malformed),
                "cut at {cut}"
            );
        }
        assert_eq!(
            EventView::decode(&buf[..len + 1], 0),
            Err(Error::Malformed),
            "trailing byte"
        );
        let mut bad = buf;
        bad[12] = 0xff; // invalid UTF-8 in the name
        assert_eq!(EventView::decode(&bad[..len], 0), Err(Error::Malformed));
        let mut bad = buf;
        bad[8] = 0x80; // unknown flag
        assert_eq!(EventView::decode(&bad[..len], 0), Err(Error::Malformed));
    }
}
