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
use std::fmt;

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
    if body.len() > MAX_JSON_BYTES {
        return Err(JsonError::TooLarge {
            len: body.len(),
            max: MAX_JSON_BYTES,
        });
    }
    let raw: RawBody = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            JsonError::Shape(e.to_string())
        } else {
            JsonError::Syntax(e.to_string())
        }
    })?;
    let timestamp = match raw.timestamp {
        None => 0,
        Some(text) => parse_timestamp(&text)?,
    };
    let event = JsonEvent {
        name: raw.name,
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

/// The accepted shape. `Option` fields may be absent but not `null`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBody {
    name: String,
    #[serde(default, deserialize_with = "present")]
    properties: Option<OrderedProperties>,
    #[serde(default, deserialize_with = "present")]
    timestamp: Option<String>,
}

/// Refuses `null` for a field that may only be absent.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// String-to-string pairs in document order, duplicate keys refused.
struct OrderedProperties(Vec<(String, String)>);

impl<'de> Deserialize<'de> for OrderedProperties {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PropertiesVisitor)
    }
}

struct PropertiesVisitor;

impl<'de> Visitor<'de> for PropertiesVisitor {
    type Value = OrderedProperties;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of string values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, String>()? {
            if pairs.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate property {key:?}"
                )));
            }
            pairs.push((key, value));
        }
        Ok(OrderedProperties(pairs))
    }
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
    }
}
