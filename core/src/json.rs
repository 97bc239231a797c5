//! JSON ingestion: the body of a client's `POST /v2/event`, as Nakama takes it.
//!
//! ```text
//! {"name": "level_up", "properties": {"level": "7"}, "timestamp": "2026-11-23T05:00:00Z"}
//! ```
//!
//! Strict, so a hostile client cannot smuggle anything through: the body
//! must be one object with `name` (a string), optionally `properties` (an
//! object of string values, no duplicate keys) and optionally `timestamp`
//! (an RFC 3339 string, at or after the Unix epoch); nothing else, no
//! `null`s, at most [`MAX_JSON_BYTES`]. The event must also pass the
//! codec's bounds. Any failure is a [`JsonError`] and nothing is pushed.
//!
//! Nesting cannot grow the parser's stack: every value has a fixed shape,
//! so the first `[` or `{` where a string belongs is an error.

use crate::{encoded_len, Error, Event};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::hash::Hash;

/// Largest JSON body accepted, in bytes.
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// Why a JSON body was refused. Nothing was pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonError {
    /// The body is larger than [`MAX_JSON_BYTES`].
    TooLarge {
        /// Body length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not well-formed JSON (or not UTF-8); the message says where.
    Syntax(String),
    /// Well-formed JSON of the wrong shape: not an object, a missing or
    /// unknown field, a non-string value, a duplicate key.
    Shape(String),
    /// `timestamp` is not an RFC 3339 time at or after the Unix epoch.
    Timestamp(String),
    /// The event itself was refused: bad name or property, too large for a
    /// slot, or the queue is closed or full.
    Event(Error),
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::TooLarge { len, max } => {
                write!(f, "JSON body is {len} bytes, more than the limit of {max}")
            }
            JsonError::Syntax(e) => write!(f, "malformed JSON: {e}"),
            JsonError::Shape(e) => write!(f, "JSON is not an event: {e}"),
            JsonError::Timestamp(e) => write!(f, "invalid event timestamp: {e}"),
            JsonError::Event(e) => write!(f, "invalid event: {e}"),
        }
    }
}

impl std::error::Error for JsonError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JsonError::Event(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Error> for JsonError {
    fn from(e: Error) -> Self {
        JsonError::Event(e)
    }
}

/// An event parsed from JSON, checked against the codec's bounds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JsonEvent {
    /// Event name.
    pub name: String,
    /// Properties, in the order they were given.
    pub properties: Vec<(String, String)>,
    /// Nanoseconds since the Unix epoch; 0 when the body had no timestamp
    /// (stamped at push).
    pub timestamp: u64,
}

impl JsonEvent {
    /// Calls `f` with this as an [`Event`] (which borrows string slices).
    pub fn with_event<R>(&self, external: bool, f: impl FnOnce(&Event<'_>) -> R) -> R {
        let pairs: Vec<(&str, &str)> = self
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        f(&Event::new(&self.name)
            .properties(&pairs)
            .timestamp(self.timestamp)
            .external(external))
    }
}

/// Parses and checks one event body; see the [module docs](self).
///
/// ```
/// use evqueue::json::{parse_event, JsonError};
/// let event = parse_event(br#"{"name": "level_up", "properties": {"level": "7"},
///                              "timestamp": "2026-11-23T05:00:00.5Z"}"#)?;
/// assert_eq!(event.name, "level_up");
/// assert_eq!(event.properties, [("level".to_owned(), "7".to_owned())]);
/// assert_eq!(event.timestamp, 1_795_410_000_500_000_000);
/// assert!(matches!(parse_event(br#"{"name": "x", "properties": {"level": 7}}"#), Err(JsonError::Shape(_))));
/// # Ok::<(), JsonError>(())
/// ```
pub fn parse_event(body: &[u8]) -> Result<JsonEvent, JsonError> {
    let event = parse_borrowed(body)?;
    Ok(JsonEvent {
        name: event.name.into_owned(),
        properties: event
            .properties
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        timestamp: event.timestamp,
    })
}

/// Parses and checks one event body as [`parse_event`] does, then calls `f`
/// with it as an [`Event`], without copying the strings that have no escapes.
pub(crate) fn with_parsed_event<R>(
    body: &[u8],
    external: bool,
    f: impl FnOnce(&Event<'_>) -> R,
) -> Result<R, JsonError> {
    Ok(parse_borrowed(body)?.with_event(external, f))
}

/// A parsed and checked event whose strings borrow the body where they can.
struct Parsed<'a> {
    name: Cow<'a, str>,
    properties: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    timestamp: u64,
}

impl Parsed<'_> {
    fn with_event<R>(&self, external: bool, f: impl FnOnce(&Event<'_>) -> R) -> R {
        let pairs: Vec<(&str, &str)> = self.properties.iter().map(|(k, v)| (&**k, &**v)).collect();
        f(&Event::new(&self.name)
            .properties(&pairs)
            .timestamp(self.timestamp)
            .external(external))
    }
}

fn parse_borrowed(body: &[u8]) -> Result<Parsed<'_>, JsonError> {
    if body.len() > MAX_JSON_BYTES {
        return Err(JsonError::TooLarge {
            len: body.len(),
            max: MAX_JSON_BYTES,
        });
    }
    let raw: RawBody<'_> = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            JsonError::Shape(e.to_string())
        } else {
            JsonError::Syntax(e.to_string())
        }
    })?;
    let timestamp = match raw.timestamp {
        None => 0,
        Some(text) => parse_timestamp(&text.0)?,
    };
    let event = Parsed {
        name: raw.name.0,
        properties: raw.properties.map_or_else(Vec::new, |p| p.0),
        timestamp,
    };
    event.with_event(false, encoded_len)?;
    Ok(event)
}

fn parse_timestamp(text: &str) -> Result<u64, JsonError> {
    let time = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| JsonError::Timestamp(format!("{text:?} is not RFC 3339 ({e})")))?;
    u64::try_from(time.unix_timestamp_nanos())
        .map_err(|_| JsonError::Timestamp(format!("{text:?} is before 1970 or after 2554")))
}

/// The accepted shape: one JSON object, nothing else.
///
/// Deserialized by hand through `deserialize_map`, not derived: serde's
/// derive also accepts a sequence for a struct, so `["level_up"]` would pass
/// as an event named `level_up`. A field may be absent but not `null`, and
/// may not appear twice.
struct RawBody<'de> {
    name: JsonStr<'de>,
    properties: Option<OrderedProperties<'de>>,
    timestamp: Option<JsonStr<'de>>,
}

impl<'de> Deserialize<'de> for RawBody<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(BodyVisitor)
    }
}

const FIELDS: &[&str] = &["name", "properties", "timestamp"];

struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = RawBody<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut name = None;
        let mut properties = None;
        let mut timestamp = None;
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Name => set_once(&mut name, "name", map.next_value()?)?,
                Field::Properties => set_once(&mut properties, "properties", map.next_value()?)?,
                Field::Timestamp => set_once(&mut timestamp, "timestamp", map.next_value()?)?,
            }
        }
        Ok(RawBody {
            name: name.ok_or_else(|| de::Error::missing_field("name"))?,
            properties,
            timestamp,
        })
    }
}

fn set_once<T, E: de::Error>(slot: &mut Option<T>, field: &'static str, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(field));
    }
    *slot = Some(value);
    Ok(())
}

/// A top-level key; anything but the three fields is refused.
enum Field {
    Name,
    Properties,
    Timestamp,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_identifier(FieldVisitor)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
        match v {
            "name" => Ok(Field::Name),
            "properties" => Ok(Field::Properties),
            "timestamp" => Ok(Field::Timestamp),
            _ => Err(E::unknown_field(v, FIELDS)),
        }
    }
}

/// A JSON string, borrowed from the body unless it had escapes.
struct JsonStr<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for JsonStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(JsonStrVisitor)
    }
}

struct JsonStrVisitor;

impl<'de> Visitor<'de> for JsonStrVisitor {
    type Value = JsonStr<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(JsonStr(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(JsonStr(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(JsonStr(Cow::Owned(v)))
    }
}

/// String-to-string pairs in document order, duplicate keys refused.
struct OrderedProperties<'de>(Vec<(Cow<'de, str>, Cow<'de, str>)>);

impl<'de> Deserialize<'de> for OrderedProperties<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PropertiesVisitor)
    }
}

struct PropertiesVisitor;

/// Up to this many properties, duplicates are found by comparing every pair
/// (cheaper than hashing for the few properties a real event carries); above
/// it, by a hash set, so that a hostile body of many keys costs linear time.
const SCAN_PROPERTIES: usize = 8;

impl<'de> Visitor<'de> for PropertiesVisitor {
    type Value = OrderedProperties<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of string values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs = Vec::new();
        while let Some((key, value)) = map.next_entry::<JsonStr<'de>, JsonStr<'de>>()? {
            pairs.push((key.0, value.0));
        }
        if let Some(key) = first_duplicate(&pairs) {
            return Err(de::Error::custom(format_args!(
                "duplicate property {key:?}"
            )));
        }
        Ok(OrderedProperties(pairs))
    }
}

/// The first key (in document order) that repeats an earlier one. Linear in
/// the total key bytes (expected, with std's randomly keyed hasher), whatever
/// the keys are.
fn first_duplicate<K: Eq + Hash, V>(pairs: &[(K, V)]) -> Option<&K> {
    let mut keys = pairs.iter().map(|(key, _)| key);
    if pairs.len() <= SCAN_PROPERTIES {
        return keys
            .enumerate()
            .find(|(i, key)| pairs[..*i].iter().any(|(k, _)| k == *key))
            .map(|(_, key)| key);
    }
    let mut seen = HashSet::with_capacity(pairs.len());
    keys.find(|key| !seen.insert(*key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(body: &str) -> bool {
        matches!(parse_event(body.as_bytes()), Err(JsonError::Shape(_)))
    }

    #[test]
    fn accepts_the_documented_shapes() {
        let e = parse_event(br#"{"name":"a"}"#).unwrap();
        assert_eq!(
            (e.name.as_str(), e.properties.len(), e.timestamp),
            ("a", 0, 0)
        );
        let e = parse_event(br#" {"properties":{"z":"1","a":"2"},"name":"b"} "#).unwrap();
        assert_eq!(e.properties[0].0, "z", "document order is kept");
        let e = parse_event(br#"{"name":"c","timestamp":"1970-01-01T00:00:01+01:00"}"#);
        assert!(
            matches!(e, Err(JsonError::Timestamp(_))),
            "before the epoch"
        );
        let e = parse_event(br#"{"name":"c","timestamp":"1970-01-01T01:00:01+01:00"}"#).unwrap();
        assert_eq!(e.timestamp, 1_000_000_000);
        let e = parse_event(
            "{\"name\":\"\u{e9}\u{1F3AE}\",\"properties\":{\"k\":\"\\u00e9\\n\"}}".as_bytes(),
        )
        .unwrap();
        assert_eq!(
            (e.name.as_str(), e.properties[0].1.as_str()),
            ("\u{e9}\u{1F3AE}", "\u{e9}\n")
        );
    }

    /// A corpus of hostile bodies: each is refused with the right kind of
    /// error, and none panics.
    #[test]
    fn refuses_hostile_bodies() {
        let deep_array = "[".repeat(60_000);
        let deep_in_props = format!(
            r#"{{"name":"a","properties":{{"k":{}}}}}"#,
            "[".repeat(10_000)
        );
        let deep_unknown = format!(r#"{{"name":"a","x":{}}}"#, "{\"a\":".repeat(10_000));
        let long_name = format!(r#"{{"name":"{}"}}"#, "n".repeat(256));
        let long_key = format!(
            r#"{{"name":"a","properties":{{"{}":"v"}}}}"#,
            "k".repeat(256)
        );
        let huge = format!(
            r#"{{"name":"a","properties":{{"k":"{}"}}}}"#,
            "v".repeat(MAX_JSON_BYTES)
        );
        for body in [
            "",
            " ",
            "{",
            "}",
            "{\"name\":\"a\"",
            "{\"name\":\"a\"}}",
            "{\"name\":\"a\"} x",
            "{\"name\":\"a\",}",
            "{'name':'a'}",
            "{\"name\":\"\\x41\"}",
            "{\"name\":\"\\ud800\"}",
            "{\"name\":\"a\" \"properties\":{}}",
            "nul",
            "{\"name\":\"a\tb\"}",
            deep_array.as_str(),
        ] {
            let got = parse_event(body.as_bytes());
            assert!(
                matches!(got, Err(JsonError::Syntax(_)) | Err(JsonError::Shape(_))),
                "{body:.40}: {got:?}"
            );
        }
        for body in [
            "null",
            "[]",
            "\"a\"",
            "1",
            "{}",
            "{\"name\":null}",
            "{\"name\":1}",
            "{\"name\":[\"a\"]}",
            "{\"name\":{\"a\":\"b\"}}",
            "{\"name\":\"a\",\"name\":\"b\"}",
            "{\"name\":\"a\",\"extra\":1}",
            "{\"Name\":\"a\"}",
            "{\"name\":\"a\",\"properties\":null}",
            "{\"name\":\"a\",\"properties\":[]}",
            "{\"name\":\"a\",\"properties\":\"k=v\"}",
            "{\"name\":\"a\",\"properties\":{\"k\":1}}",
            "{\"name\":\"a\",\"properties\":{\"k\":null}}",
            "{\"name\":\"a\",\"properties\":{\"k\":true}}",
            "{\"name\":\"a\",\"properties\":{\"k\":{}}}",
            "{\"name\":\"a\",\"properties\":{\"k\":\"1\",\"k\":\"2\"}}",
            "{\"name\":\"a\",\"timestamp\":null}",
            "{\"name\":\"a\",\"properties\":{},\"properties\":{}}",
            "{\"name\":\"a\",\"timestamp\":\"2026-11-23T05:00:00Z\",\"timestamp\":\"2026-11-23T05:00:00Z\"}",
            // One object and nothing else: serde's derive would take a
            // sequence for a struct, field by field.
            "[\"level_up\"]",
            "[\"level_up\",{\"level\":\"7\"}]",
            "[\"level_up\",{\"level\":\"7\"},\"2026-11-23T05:00:00Z\"]",
            " [\"level_up\", null, null] ",
            "[[\"level_up\"]]",
            "[{\"name\":\"level_up\"}]",
            "{\"name\":\"a\",\"properties\":[[\"k\",\"v\"]]}",
            "{\"name\":\"a\",\"timestamp\":1700000000}",
            deep_in_props.as_str(),
            deep_unknown.as_str(),
        ] {
            assert!(
                shape(body),
                "{body:.60}: {:?}",
                parse_event(body.as_bytes())
            );
        }
        for body in [
            "{\"name\":\"a\",\"timestamp\":\"yesterday\"}",
            "{\"name\":\"a\",\"timestamp\":\"2026-11-23\"}",
            "{\"name\":\"a\",\"timestamp\":\"2026-11-23T05:00:00\"}",
            "{\"name\":\"a\",\"timestamp\":\"2026-13-01T00:00:00Z\"}",
            "{\"name\":\"a\",\"timestamp\":\"1969-12-31T23:59:59Z\"}",
            "{\"name\":\"a\",\"timestamp\":\"9999-12-31T23:59:59Z\"}",
        ] {
            let got = parse_event(body.as_bytes());
            assert!(
                matches!(got, Err(JsonError::Timestamp(_))),
                "{body}: {got:?}"
            );
        }
        assert_eq!(
            parse_event(b"{\"name\":\"\"}"),
            Err(JsonError::Event(Error::EmptyName))
        );
        assert_eq!(
            parse_event(long_name.as_bytes()),
            Err(JsonError::Event(Error::NameTooLong { len: 256, max: 255 }))
        );
        assert_eq!(
            parse_event(long_key.as_bytes()),
            Err(JsonError::Event(Error::KeyTooLong { len: 256, max: 255 }))
        );
        assert_eq!(
            parse_event(b"{\"name\":\"a\",\"properties\":{\"\":\"v\"}}"),
            Err(JsonError::Event(Error::EmptyKey))
        );
        assert!(matches!(
            parse_event(huge.as_bytes()),
            Err(JsonError::TooLarge {
                max: MAX_JSON_BYTES,
                ..
            })
        ));
        assert!(
            matches!(
                parse_event(b"{\"name\":\"\xff\"}"),
                Err(JsonError::Syntax(_))
            ),
            "invalid UTF-8"
        );
    }

    /// A 64 KiB body of as many distinct 3-byte keys as fit, then one
    /// duplicate: the shape that took 80 ms with the old pairwise check.
    /// Refused as a duplicate; the same body without the duplicate is
    /// accepted with every property.
    #[test]
    fn many_keys_then_a_duplicate() {
        let (body, keys) = many_keys(MAX_JSON_BYTES, true);
        assert!(keys > 7_000, "{keys}");
        assert!(body.len() <= MAX_JSON_BYTES);
        let got = parse_event(body.as_bytes()).unwrap_err();
        assert!(
            matches!(&got, JsonError::Shape(m) if m.starts_with("duplicate property \"aaa\"")),
            "{got}"
        );
        let (body, keys) = many_keys(MAX_JSON_BYTES, false);
        assert_eq!(parse_event(body.as_bytes()).unwrap().properties.len(), keys);
    }

    /// `{"name":"a","properties":{"aaa":"","aab":"",...}}` up to `max` bytes,
    /// ending with `"aaa":""` again when `duplicate`; and how many distinct keys.
    pub(crate) fn many_keys(max: usize, duplicate: bool) -> (String, usize) {
        let mut body = String::from(r#"{"name":"a","properties":{"#);
        let tail = r#""aaa":""}}"#;
        let mut keys = 0;
        let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        'outer: for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    if body.len() + 8 + tail.len() > max {
                        break 'outer;
                    }
                    let key = [*a, *b, *c];
                    body.push('"');
                    body.push_str(std::str::from_utf8(&key).unwrap());
                    body.push_str(r#"":"","#);
                    keys += 1;
                }
            }
        }
        if duplicate {
            body.push_str(tail);
        } else {
            body.pop();
            body.push_str("}}");
        }
        (body, keys)
    }

    /// Linear, counted rather than timed: finding the duplicate among `n`
    /// distinct keys compares keys for equality far fewer than `n` times
    /// (the pairwise check made `n * (n - 1) / 2` comparisons), and the
    /// first repeat in document order is the one named.
    #[test]
    fn duplicate_check_compares_linearly() {
        use std::cell::Cell;
        use std::hash::Hasher;

        thread_local!(static EQS: Cell<usize> = const { Cell::new(0) });
        struct Counted(u32);
        impl PartialEq for Counted {
            fn eq(&self, other: &Self) -> bool {
                EQS.with(|n| n.set(n.get() + 1));
                self.0 == other.0
            }
        }
        impl Eq for Counted {}
        impl Hash for Counted {
            fn hash<H: Hasher>(&self, h: &mut H) {
                self.0.hash(h);
            }
        }

        for n in [SCAN_PROPERTIES + 1, 1_000, 10_000] {
            let n32 = u32::try_from(n).unwrap();
            let mut pairs: Vec<(Counted, ())> = (0..n32).map(|k| (Counted(k), ())).collect();
            EQS.with(|c| c.set(0));
            assert!(first_duplicate(&pairs).is_none());
            let eqs = EQS.with(Cell::get);
            assert!(eqs < n, "{eqs} comparisons for {n} distinct keys");

            pairs.push((Counted(7), ()));
            pairs.push((Counted(3), ()));
            EQS.with(|c| c.set(0));
            assert_eq!(first_duplicate(&pairs).map(|k| k.0), Some(7));
            let eqs = EQS.with(Cell::get);
            assert!(eqs <= n + 2, "{eqs} comparisons for {n} keys");
        }
        let few: Vec<(&str, ())> = vec![("a", ()), ("b", ()), ("b", ()), ("a", ())];
        assert_eq!(first_duplicate(&few), Some(&"b"));
        assert_eq!(first_duplicate::<&str, ()>(&[]), None);
    }

    #[test]
    fn errors_read_clearly() {
        let e = parse_event(br#"{"name":"a","properties":{"k":7}}"#).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("JSON is not an event: invalid type: integer `7`, expected a string"),
            "{text}"
        );
        let e = parse_event(br#"{"name":"a","colour":"red"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `colour`"), "{e}");
        let e = parse_event(br#"["level_up"]"#).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "JSON is not an event: invalid type: sequence, expected an event object"
            ),
            "{e}"
        );
        let e = parse_event(br#"{"name":"a","name":"b"}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate field `name`"), "{e}");
        let e = parse_event(br#"{"properties":{}}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `name`"), "{e}");
    }
}
