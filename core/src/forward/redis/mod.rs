//! The Redis Streams bridge (feature `redis`): game server processes append
//! their events to one stream ([`RedisForwarder`], [`RedisStreamSink`]) and
//! a pool of processes consumes it through a consumer group
//! ([`RedisSource`]) with at-least-once delivery.
//!
//! # Stream entry layout
//!
//! One event is one entry, with an ID that Redis assigns (`XADD key *`) and
//! these fields, in this order:
//!
//! | field     | value                                                    |
//! |-----------|----------------------------------------------------------|
//! | `name`    | the event name                                           |
//! | `ts`      | nanoseconds since the Unix epoch, decimal                |
//! | `ext`     | `1` when a client sent the event, else `0`               |
//! | `p:<key>` | one per property, in the event's order; the value as is |
//!
//! [`encode_fields`] and [`decode_fields`] are the two directions; decoding
//! is strict (a missing or repeated `name`/`ts`/`ext`, an unknown field, a
//! bad number, or a name the codec refuses is an error).
//!
//! # Delivery
//!
//! - The sink side: [`RedisForwarder`] is a [`Buffered`](super::Buffered)
//!   queue (bounded, `buffer` events; overflow refused and counted) whose
//!   thread writes batches of up to `batch` events as one pipeline of
//!   `XADD key MAXLEN ~ n * ...` through a [`Retry`](super::Retry) with
//!   unlimited attempts and the breaker: when the connection is lost, the
//!   batch is retried (reconnecting) until it is written or the forwarder
//!   is closed, and events behind it wait in the queue. A batch that failed
//!   part-way is sent again whole, so a lost connection can duplicate
//!   entries, never lose one the forwarder took.
//! - The source side: [`RedisSource`] reads with `XREADGROUP`, runs the
//!   handler for every entry and `XACK`s the entries whose handler succeeded.
//!   Entries left pending (a handler error, a consumer that died before its
//!   `XACK`) are taken over with `XAUTOCLAIM` once idle for `claim_idle`, by
//!   any consumer of the group. So every entry is handled at least once.

mod sink;
mod source;

pub use sink::{RedisConfig, RedisForwarder, RedisForwarderStats, RedisStreamSink};
pub use source::{RedisSource, RedisSourceStats, SourceConfig, SourceDeadLetter};

use crate::{check_name, OwnedEvent};
use std::fmt;

/// Why a stream entry is not an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutError(String);

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed stream entry: {}", self.0)
    }
}

impl std::error::Error for LayoutError {}

/// The fields of `event`'s stream entry, as `(field, value)` pairs.
///
/// ```
/// use evqueue::forward::redis::{decode_fields, encode_fields};
/// use evqueue::OwnedEvent;
/// let e = OwnedEvent { name: "purchase".into(), timestamp: 7,
///                      properties: vec![("sku".into(), "gem".into())], ..Default::default() };
/// let fields = encode_fields(&e);
/// assert_eq!(fields[0], (b"name".to_vec(), b"purchase".to_vec()));
/// assert_eq!(fields[3], (b"p:sku".to_vec(), b"gem".to_vec()));
/// assert_eq!(decode_fields(&fields)?, e);
/// # Ok::<(), evqueue::forward::redis::LayoutError>(())
/// ```
pub fn encode_fields(event: &OwnedEvent) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut fields = Vec::with_capacity(3 + event.properties.len());
    fields.push((b"name".to_vec(), event.name.as_bytes().to_vec()));
    fields.push((b"ts".to_vec(), event.timestamp.to_string().into_bytes()));
    fields.push((
        b"ext".to_vec(),
        if event.external { b"1" } else { b"0" }.to_vec(),
    ));
    for (k, v) in &event.properties {
        let mut key = Vec::with_capacity(2 + k.len());
        key.extend_from_slice(b"p:");
        key.extend_from_slice(k.as_bytes());
        fields.push((key, v.as_bytes().to_vec()));
    }
    fields
}

/// The event a stream entry holds (its `seq` is 0: sequence numbers belong
/// to the queue an event is emitted into). See the layout above.
pub fn decode_fields<F: AsRef<[u8]>, V: AsRef<[u8]>>(
    fields: &[(F, V)],
) -> Result<OwnedEvent, LayoutError> {
    let text = |what: &str, b: &[u8]| {
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| LayoutError(format!("{what} is not UTF-8")))
    };
    let mut name = None;
    let mut ts = None;
    let mut ext = None;
    let mut properties = Vec::new();
    for (field, value) in fields {
        let (field, value) = (field.as_ref(), value.as_ref());
        let slot = match field {
            b"name" => &mut name,
            b"ts" => &mut ts,
            b"ext" => &mut ext,
            _ => {
                let Some(key) = field.strip_prefix(b"p:") else {
                    return Err(LayoutError(format!(
                        "unknown field {:?}",
                        String::from_utf8_lossy(field)
                    )));
                };
                if key.is_empty() {
                    return Err(LayoutError("empty property key".into()));
                }
                properties.push((
                    text("a property key", key)?,
                    text("a property value", value)?,
                ));
                continue;
            }
        };
        if slot.replace(value).is_some() {
            return Err(LayoutError(format!(
                "field {:?} appears twice",
                String::from_utf8_lossy(field)
            )));
        }
    }
    let name = text(
        "the name",
        name.ok_or_else(|| LayoutError("no name".into()))?,
    )?;
    check_name(&name).map_err(|e| LayoutError(format!("bad name: {e}")))?;
    let ts = ts.ok_or_else(|| LayoutError("no ts".into()))?;
    let timestamp = std::str::from_utf8(ts)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| LayoutError(format!("bad ts {:?}", String::from_utf8_lossy(ts))))?;
    let external = match ext.ok_or_else(|| LayoutError("no ext".into()))? {
        b"0" => false,
        b"1" => true,
        other => {
            return Err(LayoutError(format!(
                "bad ext {:?}",
                String::from_utf8_lossy(other)
            )))
        }
    };
    Ok(OwnedEvent {
        seq: 0,
        name,
        properties,
        timestamp,
        external,
    })
}

/// Connects with the configured timeouts.
pub(crate) fn connect(
    client: &::redis::Client,
    connect_timeout: std::time::Duration,
    io_timeout: std::time::Duration,
) -> ::redis::RedisResult<::redis::Connection> {
    let con = client.get_connection_with_timeout(connect_timeout)?;
    con.set_read_timeout(Some(io_timeout))?;
    con.set_write_timeout(Some(io_timeout))?;
    Ok(con)
}
