//! The consumer-group side: [`RedisSource`].

use super::{connect, decode_fields};
use crate::blocking::lock;
use crate::forward::clock::Cancel;
use crate::forward::ForwardError;
use crate::{Event, EventQueue, HandlerResult, OwnedEvent};
use ::redis::{Connection, RedisResult, Value};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest `claim_idle`: a year is past any real redelivery delay, and
/// keeps the milliseconds sent to Redis and the next-claim instant in range.
const MAX_CLAIM_IDLE: Duration = Duration::from_secs(365 * 24 * 3600);

/// How a [`RedisSource`] reads.
#[derive(Clone)]
pub struct SourceConfig {
    url: String,
    stream: String,
    group: String,
    consumer: String,
    count: usize,
    block: Duration,
    claim_idle: Duration,
    start_id: String,
    connect_timeout: Duration,
    io_timeout: Duration,
    retry_delay: Duration,
    max_deliveries: Option<u64>,
    dead_letter: Option<SourceDeadLetter>,
}

/// Called with an entry's ID and event when it was delivered more than
/// `max_deliveries` times (see [`SourceConfig::max_deliveries`]).
pub type SourceDeadLetter = Arc<dyn Fn(&str, &OwnedEvent) + Send + Sync + 'static>;

impl std::fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceConfig")
            .field("url", &self.url)
            .field("stream", &self.stream)
            .field("group", &self.group)
            .field("consumer", &self.consumer)
            .field("count", &self.count)
            .field("block", &self.block)
            .field("claim_idle", &self.claim_idle)
            .field("start_id", &self.start_id)
            .field("max_deliveries", &self.max_deliveries)
            .field("dead_letter", &self.dead_letter.is_some())
            .finish_non_exhaustive()
    }
}

impl SourceConfig {
    /// Reads `stream` at `url` as `consumer` of `group` (both created when
    /// missing). Defaults: 128 entries per read, block 200 ms, reclaim
    /// entries pending for 30 s, a new group starts at the stream's first
    /// entry (`0`), reconnect after 200 ms.
    pub fn new(url: &str, stream: &str, group: &str, consumer: &str) -> Self {
        SourceConfig {
            url: url.to_owned(),
            stream: stream.to_owned(),
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            count: 128,
            block: Duration::from_millis(200),
            claim_idle: Duration::from_secs(30),
            start_id: "0".to_owned(),
            connect_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(5),
            retry_delay: Duration::from_millis(200),
            max_deliveries: None,
            dead_letter: None,
        }
    }
    /// Poison entries: the handler runs at most `n` times (`>= 1`) for an
    /// entry. Redis counts deliveries (every read and every claim); an entry
    /// claimed with a count above `n` goes to the
    /// [`dead_letter`](Self::dead_letter) hook instead, is acknowledged and
    /// counted as dead-lettered. By default entries are retried forever.
    pub fn max_deliveries(mut self, n: u64) -> Self {
        self.max_deliveries = Some(n);
        self
    }
    /// The hook for entries that passed `max_deliveries` (called on the
    /// source's thread with the entry ID and the event).
    pub fn dead_letter<F>(mut self, hook: F) -> Self
    where
        F: Fn(&str, &OwnedEvent) + Send + Sync + 'static,
    {
        self.dead_letter = Some(Arc::new(hook));
        self
    }
    /// Entries per read (`1..=10000`).
    pub fn count(mut self, n: usize) -> Self {
        self.count = n;
        self
    }
    /// How long one read waits for new entries (`1 ms..=io timeout/2`);
    /// also bounds how long `stop` waits for the reader.
    pub fn block(mut self, d: Duration) -> Self {
        self.block = d;
        self
    }
    /// Take over entries that another consumer (or a failed handler) left
    /// pending this long (1 ms to 365 days).
    pub fn claim_idle(mut self, d: Duration) -> Self {
        self.claim_idle = d;
        self
    }
    /// Where a newly created group starts: `0` (everything in the stream)
    /// or `$` (only new entries).
    pub fn start_id(mut self, id: &str) -> Self {
        self.start_id = id.to_owned();
        self
    }
    /// Connect and read/write timeouts (not zero; the I/O timeout at least
    /// twice `block`).
    pub fn timeouts(mut self, connect: Duration, io: Duration) -> Self {
        self.connect_timeout = connect;
        self.io_timeout = io;
        self
    }

    fn validate(&self) -> Result<::redis::Client, ForwardError> {
        let bad = |what: &str| Err(ForwardError::Config(what.to_owned()));
        if self.stream.is_empty() || self.group.is_empty() || self.consumer.is_empty() {
            return bad("stream, group and consumer names must not be empty");
        }
        if !(1..=10_000).contains(&self.count) {
            return bad("count must be 1..=10000");
        }
        if self.connect_timeout.is_zero() {
            return bad("the connect timeout must not be zero");
        }
        if self.block < Duration::from_millis(1) || self.block > self.io_timeout / 2 {
            return bad("block must be at least 1 ms and at most half the I/O timeout");
        }
        if self.claim_idle < Duration::from_millis(1) || self.claim_idle > MAX_CLAIM_IDLE {
            return bad("claim_idle must be between 1 ms and 365 days");
        }
        if self.max_deliveries == Some(0) {
            return bad("max_deliveries must be at least 1");
        }
        if self.start_id != "0" && self.start_id != "$" {
            return bad("start_id must be \"0\" or \"$\"");
        }
        ::redis::Client::open(self.url.as_str())
            .map_err(|e| ForwardError::Config(format!("bad redis url {:?}: {e}", self.url)))
    }
}

/// Counters of a [`RedisSource`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedisSourceStats {
    /// Entries received (new, re-read or claimed).
    pub received: u64,
    /// Entries whose handler succeeded (and that were acknowledged).
    pub handled: u64,
    /// Entries taken over from an idle pending list with `XAUTOCLAIM`.
    pub claimed: u64,
    /// Handler failures (the entry stays pending and is retried after
    /// `claim_idle`).
    pub handler_errors: u64,
    /// Entries that are not events (acknowledged and skipped: they can never
    /// be handled).
    pub malformed: u64,
    /// Entries delivered more than `max_deliveries` times (passed to the
    /// dead-letter hook and acknowledged).
    pub dead_lettered: u64,
    /// Connections made (the first and every reconnect).
    pub connects: u64,
    /// Redis errors (each followed by a reconnect).
    pub redis_errors: u64,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    handled: AtomicU64,
    claimed: AtomicU64,
    handler_errors: AtomicU64,
    malformed: AtomicU64,
    dead_lettered: AtomicU64,
    connects: AtomicU64,
    redis_errors: AtomicU64,
}

struct Shared {
    stop: Cancel,
    counters: Counters,
    last_error: Mutex<Option<String>>,
}

/// Reads a stream through a consumer group on its own thread and hands each
/// entry to a handler; see the [module docs](super).
///
/// ```no_run
/// use evqueue::forward::redis::{RedisSource, SourceConfig};
/// use evqueue::EventQueue;
/// use std::time::Duration;
/// let queue = EventQueue::builder().build()?;
/// queue.on_any(|e| { println!("{} from the stream", e.name); Ok(()) });
/// let config = SourceConfig::new("redis://127.0.0.1/", "events", "analytics", "worker-1")
///     .claim_idle(Duration::from_secs(10));
/// let source = RedisSource::into_queue(config, &queue)?;
/// // ...
/// source.stop();
/// # Ok::<(), evqueue::forward::SinkError>(())
/// ```
pub struct RedisSource {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl RedisSource {
    /// Starts reading; `handler` runs on the source's thread for every entry
    /// (at least once each: after a failure or a crash an entry comes
    /// again). An entry is acknowledged once its handler returned `Ok`.
    pub fn spawn<F>(config: SourceConfig, handler: F) -> Result<Self, ForwardError>
    where
        F: FnMut(&OwnedEvent) -> HandlerResult + Send + 'static,
    {
        let client = config.validate()?;
        let shared = Arc::new(Shared {
            stop: Cancel::new(),
            counters: Counters::default(),
            last_error: Mutex::new(None),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("evqueue-redis-source".into())
            .spawn(move || {
                Reader {
                    config,
                    client,
                    shared: s,
                    handler,
                }
                .run()
            })
            .map_err(|e| ForwardError::Config(format!("cannot start the source thread: {e}")))?;
        Ok(RedisSource {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Starts reading into `queue`: every entry is emitted as an event (name,
    /// properties, timestamp and the external flag kept) and acknowledged
    /// once the queue took it. With [`Overflow::Reject`](crate::Overflow::Reject)
    /// a full queue leaves the entry pending, to come again.
    pub fn into_queue(config: SourceConfig, queue: &EventQueue) -> Result<Self, ForwardError> {
        let emitter = queue.emitter();
        Self::spawn(config, move |e| {
            let props: Vec<(&str, &str)> = e
                .properties
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let event = Event::new(&e.name)
                .properties(&props)
                .timestamp(e.timestamp)
                .external(e.external);
            emitter.emit(&event)?;
            Ok(())
        })
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> RedisSourceStats {
        let c = &self.shared.counters;
        RedisSourceStats {
            received: c.received.load(Relaxed),
            handled: c.handled.load(Relaxed),
            claimed: c.claimed.load(Relaxed),
            handler_errors: c.handler_errors.load(Relaxed),
            malformed: c.malformed.load(Relaxed),
            dead_lettered: c.dead_lettered.load(Relaxed),
            connects: c.connects.load(Relaxed),
            redis_errors: c.redis_errors.load(Relaxed),
        }
    }

    /// The last Redis error, if any (for logs).
    pub fn last_error(&self) -> Option<String> {
        lock(&self.shared.last_error).clone()
    }

    /// Stops reading and joins the thread (within about one `block`
    /// interval, or an I/O timeout when the server hangs). Entries read but
    /// not yet handled stay pending for another consumer. Idempotent.
    pub fn stop(&self) {
        self.shared.stop.cancel();
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

impl Drop for RedisSource {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Reader<F> {
    config: SourceConfig,
    client: ::redis::Client,
    shared: Arc<Shared>,
    handler: F,
}

/// One entry: its ID, and its fields (`None` when the entry was deleted
/// while pending).
type Entry = (Vec<u8>, Option<Vec<(Vec<u8>, Vec<u8>)>>);

/// Delivery counts of claimed entries, by ID (only with `max_deliveries`).
type Deliveries = std::collections::HashMap<Vec<u8>, u64>;

impl<F: FnMut(&OwnedEvent) -> HandlerResult> Reader<F> {
    fn run(mut self) {
        while !self.shared.stop.is_cancelled() {
            if let Err(e) = self.session() {
                self.shared.counters.redis_errors.fetch_add(1, Relaxed);
                *lock(&self.shared.last_error) = Some(e.to_string());
                self.shared.stop.sleep(self.config.retry_delay);
            }
        }
    }

    /// One connection's life: create the group, re-read this consumer's own
    /// pending entries, then read new ones and reclaim idle ones.
    fn session(&mut self) -> RedisResult<()> {
        let mut con = connect(
            &self.client,
            self.config.connect_timeout,
            self.config.io_timeout,
        )?;
        self.shared.counters.connects.fetch_add(1, Relaxed);
        let created: RedisResult<()> = ::redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.config.stream)
            .arg(&self.config.group)
            .arg(&self.config.start_id)
            .arg("MKSTREAM")
            .query(&mut con);
        if let Err(e) = created {
            if e.code() != Some("BUSYGROUP") {
                return Err(e);
            }
        }
        // Our own pending entries first (from an earlier connection or an
        // earlier run under the same consumer name).
        let mut cursor = b"0".to_vec();
        while !self.shared.stop.is_cancelled() {
            let entries = self.read_group(&mut con, &cursor, false)?;
            let Some((last, _)) = entries.last() else {
                break;
            };
            cursor = last.clone();
            self.handle(&mut con, entries, None)?;
        }
        let mut claim_cursor = b"0-0".to_vec();
        let mut next_claim = Instant::now();
        while !self.shared.stop.is_cancelled() {
            if Instant::now() >= next_claim {
                let (next, entries) = self.autoclaim(&mut con, &claim_cursor)?;
                let deliveries = self.deliveries(&mut con, &entries)?;
                self.handle(&mut con, entries, Some(&deliveries))?;
                if next == b"0-0" {
                    // A full pass: wait a fraction of the idle time.
                    next_claim =
                        Instant::now() + (self.config.claim_idle / 4).max(Duration::from_millis(1));
                }
                claim_cursor = next;
            }
            let entries = self.read_group(&mut con, b">", true)?;
            self.handle(&mut con, entries, None)?;
        }
        Ok(())
    }

    fn read_group(&self, con: &mut Connection, id: &[u8], block: bool) -> RedisResult<Vec<Entry>> {
        let mut cmd = ::redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.config.group)
            .arg(&self.config.consumer)
            .arg("COUNT")
            .arg(self.config.count);
        if block {
            cmd.arg("BLOCK").arg(self.config.block.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(&self.config.stream).arg(id);
        let reply: Value = cmd.query(con)?;
        // Nil (timeout) or [[stream, [entry...]]].
        match reply {
            Value::Nil => Ok(Vec::new()),
            Value::Array(streams) => match streams.into_iter().next() {
                Some(Value::Array(mut pair)) if pair.len() == 2 => {
                    parse_entries(pair.pop().unwrap())
                }
                None => Ok(Vec::new()),
                Some(other) => Err(unexpected("XREADGROUP", &other)),
            },
            Value::Map(streams) => match streams.into_iter().next() {
                Some((_, entries)) => parse_entries(entries),
                None => Ok(Vec::new()),
            },
            other => Err(unexpected("XREADGROUP", &other)),
        }
    }

    fn autoclaim(&self, con: &mut Connection, cursor: &[u8]) -> RedisResult<(Vec<u8>, Vec<Entry>)> {
        let reply: Value = ::redis::cmd("XAUTOCLAIM")
            .arg(&self.config.stream)
            .arg(&self.config.group)
            .arg(&self.config.consumer)
            .arg(self.config.claim_idle.as_millis() as u64)
            .arg(cursor)
            .arg("COUNT")
            .arg(self.config.count)
            .query(con)?;
        // [next cursor, [entry...], [deleted id...]] (the last since 7.0).
        let Value::Array(parts) = reply else {
            return Err(unexpected("XAUTOCLAIM", &reply));
        };
        let mut parts = parts.into_iter();
        let next = match parts.next() {
            Some(Value::BulkString(b)) => b,
            Some(Value::SimpleString(s)) => s.into_bytes(),
            other => return Err(unexpected("XAUTOCLAIM", &other.unwrap_or(Value::Nil))),
        };
        let entries = parse_entries(parts.next().unwrap_or(Value::Array(Vec::new())))?;
        let mut all = entries;
        if let Some(Value::Array(deleted)) = parts.next() {
            for id in deleted {
                if let Value::BulkString(id) = id {
                    all.push((id, None));
                }
            }
        }
        Ok((next, all))
    }

    /// How often each claimed entry was delivered (XPENDING over the claimed
    /// range, this consumer), when `max_deliveries` is set.
    fn deliveries(&self, con: &mut Connection, entries: &[Entry]) -> RedisResult<Deliveries> {
        let mut out = Deliveries::new();
        let live: Vec<&Vec<u8>> = entries
            .iter()
            .filter(|(_, f)| f.is_some())
            .map(|(id, _)| id)
            .collect();
        let (Some(_), Some(first), Some(last)) =
            (self.config.max_deliveries, live.first(), live.last())
        else {
            return Ok(out);
        };
        let reply: Value = ::redis::cmd("XPENDING")
            .arg(&self.config.stream)
            .arg(&self.config.group)
            .arg(&first[..])
            .arg(&last[..])
            .arg(live.len())
            .arg(&self.config.consumer)
            .query(con)?;
        // [[id, consumer, idle ms, deliveries], ...]
        let Value::Array(rows) = reply else {
            return Err(unexpected("XPENDING", &reply));
        };
        for row in rows {
            if let Value::Array(row) = row {
                if let (Some(Value::BulkString(id)), Some(Value::Int(n))) =
                    (row.first(), row.get(3))
                {
                    out.insert(id.clone(), *n as u64);
                }
            }
        }
        Ok(out)
    }

    /// Runs the handler for each entry and acknowledges the ones it handled
    /// (and the malformed and deleted ones, which can never be handled).
    fn handle(
        &mut self,
        con: &mut Connection,
        entries: Vec<Entry>,
        claimed: Option<&Deliveries>,
    ) -> RedisResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let c = &self.shared.counters;
        let mut ack: Vec<Vec<u8>> = Vec::with_capacity(entries.len());
        for (id, fields) in entries {
            let Some(fields) = fields else {
                ack.push(id);
                continue;
            };
            c.received.fetch_add(1, Relaxed);
            let delivered = match claimed {
                Some(d) => {
                    c.claimed.fetch_add(1, Relaxed);
                    d.get(&id).copied().unwrap_or(0)
                }
                None => 0,
            };
            match decode_fields(&fields) {
                Err(e) => {
                    c.malformed.fetch_add(1, Relaxed);
                    *lock(&self.shared.last_error) =
                        Some(format!("entry {}: {e}", String::from_utf8_lossy(&id)));
                    ack.push(id);
                }
                Ok(event)
                    if self
                        .config
                        .max_deliveries
                        .is_some_and(|max| delivered > max) =>
                {
                    c.dead_lettered.fetch_add(1, Relaxed);
                    if let Some(hook) = &self.config.dead_letter {
                        hook(&String::from_utf8_lossy(&id), &event);
                    }
                    ack.push(id);
                }
                Ok(event) => match (self.handler)(&event) {
                    Ok(()) => {
                        c.handled.fetch_add(1, Relaxed);
                        ack.push(id);
                    }
                    Err(_) => {
                        c.handler_errors.fetch_add(1, Relaxed);
                    }
                },
            }
        }
        if ack.is_empty() {
            return Ok(());
        }
        let mut cmd = ::redis::cmd("XACK");
        cmd.arg(&self.config.stream).arg(&self.config.group);
        for id in &ack {
            cmd.arg(&id[..]);
        }
        cmd.query::<()>(con)
    }
}

fn unexpected(command: &str, value: &Value) -> ::redis::RedisError {
    ::redis::RedisError::from((
        ::redis::ErrorKind::TypeError,
        "unexpected reply",
        format!("{command}: {value:?}"),
    ))
}

/// `[[id, [field, value, ...] or nil], ...]`.
fn parse_entries(value: Value) -> RedisResult<Vec<Entry>> {
    let Value::Array(items) = value else {
        return Err(unexpected("stream entries", &value));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(mut pair) = item else {
            return Err(unexpected("stream entry", &item));
        };
        if pair.len() != 2 {
            return Err(unexpected("stream entry", &Value::Array(pair)));
        }
        let fields = pair.pop().unwrap();
        let id = match pair.pop().unwrap() {
            Value::BulkString(b) => b,
            Value::SimpleString(s) => s.into_bytes(),
            other => return Err(unexpected("stream entry id", &other)),
        };
        let fields = match fields {
            Value::Nil => None,
            Value::Array(flat) => {
                let mut pairs = Vec::with_capacity(flat.len() / 2);
                let mut it = flat.into_iter();
                while let Some(f) = it.next() {
                    match (f, it.next()) {
                        (Value::BulkString(f), Some(Value::BulkString(v))) => pairs.push((f, v)),
                        (f, _) => return Err(unexpected("stream entry field", &f)),
                    }
                }
                Some(pairs)
            }
            other => return Err(unexpected("stream entry fields", &other)),
        };
        out.push((id, fields));
    }
    Ok(out)
}
