//! The XADD side: [`RedisStreamSink`] (one pipeline per batch, no retries of
//! its own) and [`RedisForwarder`] (the sink behind retry and a bounded
//! buffer, attached to a queue).

use super::connect;
use crate::blocking::lock;
use crate::forward::{
    handler, Buffered, ForwardError, Retry, RetryPolicy, RetryStats, Sink, SinkError,
};
use crate::{EventQueue, OwnedEvent};
use ::redis::ConnectionLike;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Appends batches to a stream: one pipeline of `XADD` per batch, with
/// `MAXLEN ~ n` when a bound is set. A failed write drops the connection
/// (the next write reconnects) and returns the error; wrap it in a
/// [`Retry`] to retry.
pub struct RedisStreamSink {
    client: ::redis::Client,
    stream: String,
    maxlen: Option<u64>,
    connect_timeout: Duration,
    io_timeout: Duration,
    conn: Mutex<Option<::redis::Connection>>,
    connects: AtomicU64,
    batches: AtomicU64,
}

impl RedisStreamSink {
    /// A sink appending to `stream` at `url` (`redis://host:port/db`). Does
    /// not connect yet. `maxlen` (`>= 1`) trims approximately.
    pub fn new(url: &str, stream: &str, maxlen: Option<u64>) -> Result<Self, ForwardError> {
        if stream.is_empty() {
            return Err(ForwardError::Config("stream name must not be empty".into()));
        }
        if maxlen == Some(0) {
            return Err(ForwardError::Config("maxlen must be at least 1".into()));
        }
        let client = ::redis::Client::open(url)
            .map_err(|e| ForwardError::Config(format!("bad redis url {url:?}: {e}")))?;
        Ok(RedisStreamSink {
            client,
            stream: stream.to_owned(),
            maxlen,
            connect_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(5),
            conn: Mutex::new(None),
            connects: AtomicU64::new(0),
            batches: AtomicU64::new(0),
        })
    }

    /// Sets the connect and read/write timeouts (defaults 2 s and 5 s). A
    /// zero timeout makes every connect fail (sockets refuse it).
    pub fn timeouts(mut self, connect: Duration, io: Duration) -> Self {
        self.connect_timeout = connect;
        self.io_timeout = io;
        self
    }

    /// The stream's name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Connections made so far (the first one and every reconnect).
    pub fn connects(&self) -> u64 {
        self.connects.load(Relaxed)
    }
}

impl Sink for RedisStreamSink {
    fn write(&self, batch: &[OwnedEvent]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        // One buffer of RESP commands for the whole pipeline: no per-command
        // allocation, one write to the socket.
        let mut packed = Vec::with_capacity(batch.len() * 96);
        for event in batch {
            pack_xadd(&mut packed, &self.stream, self.maxlen, event);
        }
        let mut conn = lock(&self.conn);
        if conn.is_none() {
            *conn = Some(connect(
                &self.client,
                self.connect_timeout,
                self.io_timeout,
            )?);
            self.connects.fetch_add(1, Relaxed);
        }
        let con = conn.as_mut().expect("connected above");
        let replies = con
            .req_packed_commands(&packed, 0, batch.len())
            .and_then(|replies| {
                match replies
                    .into_iter()
                    .find(|v| matches!(v, ::redis::Value::ServerError(_)))
                {
                    Some(::redis::Value::ServerError(e)) => Err(e.into()),
                    _ => Ok(()),
                }
            });
        match replies {
            Ok(()) => {
                self.batches.fetch_add(1, Relaxed);
                Ok(())
            }
            Err(e) => {
                // The connection may hold half a reply: never reuse it.
                *conn = None;
                Err(Box::new(e))
            }
        }
    }
}

/// Appends `XADD stream [MAXLEN ~ n] * <fields>` in RESP to `out` (the
/// layout of [`encode_fields`](super::encode_fields)).
fn pack_xadd(out: &mut Vec<u8>, stream: &str, maxlen: Option<u64>, event: &OwnedEvent) {
    fn header(out: &mut Vec<u8>, tag: u8, n: usize) {
        out.push(tag);
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut n = n;
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        out.extend_from_slice(&digits[i..]);
        out.extend_from_slice(b"\r\n");
    }
    fn bulk(out: &mut Vec<u8>, parts: &[&[u8]]) {
        header(out, b'$', parts.iter().map(|p| p.len()).sum());
        for p in parts {
            out.extend_from_slice(p);
        }
        out.extend_from_slice(b"\r\n");
    }
    let args = 3 + if maxlen.is_some() { 3 } else { 0 } + 6 + 2 * event.properties.len();
    header(out, b'*', args);
    bulk(out, &[b"XADD"]);
    bulk(out, &[stream.as_bytes()]);
    if let Some(n) = maxlen {
        bulk(out, &[b"MAXLEN"]);
        bulk(out, &[b"~"]);
        bulk(out, &[n.to_string().as_bytes()]);
    }
    bulk(out, &[b"*"]);
    bulk(out, &[b"name"]);
    bulk(out, &[event.name.as_bytes()]);
    bulk(out, &[b"ts"]);
    bulk(out, &[event.timestamp.to_string().as_bytes()]);
    bulk(out, &[b"ext"]);
    bulk(out, &[if event.external { b"1" } else { b"0" }]);
    for (k, v) in &event.properties {
        bulk(out, &[b"p:", k.as_bytes()]);
        bulk(out, &[v.as_bytes()]);
    }
}

/// How a [`RedisForwarder`] writes.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    url: String,
    stream: String,
    batch: usize,
    maxlen: Option<u64>,
    buffer: usize,
    retry: RetryPolicy,
    connect_timeout: Duration,
    io_timeout: Duration,
}

impl RedisConfig {
    /// Appends to `stream` at `url`. Defaults: batches of up to 256 events,
    /// no trimming, a buffer of 65536 events, unlimited attempts with
    /// backoff from 10 ms to 1 s and the breaker after 3 consecutive
    /// failures (1 s cool-down), timeouts 2 s (connect) and 5 s (I/O).
    pub fn new(url: &str, stream: &str) -> Self {
        RedisConfig {
            url: url.to_owned(),
            stream: stream.to_owned(),
            batch: 256,
            maxlen: None,
            buffer: 65536,
            retry: RetryPolicy::default()
                .unlimited_attempts()
                .base_delay(Duration::from_millis(10))
                .max_delay(Duration::from_secs(1))
                .breaker_threshold(3)
                .breaker_cooldown(Duration::from_secs(1)),
            connect_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(5),
        }
    }
    /// Up to `n` events per pipeline (`1..=65536`).
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n;
        self
    }
    /// Trim the stream to about `n` entries (`MAXLEN ~ n`, `n >= 1`).
    pub fn maxlen(mut self, n: u64) -> Self {
        self.maxlen = Some(n);
        self
    }
    /// Hold at most `n` events not yet written (`>= 1`); more are refused
    /// and counted as dropped.
    pub fn buffer(mut self, n: usize) -> Self {
        self.buffer = n;
        self
    }
    /// The retry policy for a batch (attempt limits apply per batch; an
    /// exhausted batch is counted as failed).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }
    /// Connect and read/write timeouts (not zero).
    pub fn timeouts(mut self, connect: Duration, io: Duration) -> Self {
        self.connect_timeout = connect;
        self.io_timeout = io;
        self
    }
}

/// Counters of a [`RedisForwarder`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedisForwarderStats {
    /// Events taken into the buffer.
    pub accepted: u64,
    /// Events refused because the buffer was full.
    pub dropped: u64,
    /// Events written to the stream.
    pub written: u64,
    /// Events in batches that ran out of attempts (only with an attempt
    /// limit).
    pub failed: u64,
    /// Events given up at `close` (the deadline passed while retrying).
    pub abandoned: u64,
    /// Events buffered or being written now.
    pub pending: u64,
    /// Highest `pending` seen.
    pub high_water: u64,
    /// Pipelines written.
    pub batches: u64,
    /// Connections made (the first and every reconnect).
    pub connects: u64,
    /// The retry layer's counters (attempts, failures, breaker).
    pub retry: RetryStats,
}

/// Forwards a queue's events to a Redis stream; see the [module docs](super).
///
/// ```no_run
/// use evqueue::forward::redis::{RedisConfig, RedisForwarder};
/// use evqueue::{Event, EventQueue};
/// use std::time::Duration;
/// let queue = EventQueue::builder().build()?;
/// let fwd = RedisForwarder::attach(&queue, RedisConfig::new("redis://127.0.0.1/", "events").maxlen(1_000_000))?;
/// queue.emit(&Event::new("match_end"))?;
/// queue.shutdown(Duration::from_secs(5))?;  // handlers have run...
/// fwd.close(Duration::from_secs(5))?;        // ...and the stream has them
/// println!("{:?}", fwd.stats());
/// # Ok::<(), evqueue::forward::SinkError>(())
/// ```
pub struct RedisForwarder {
    sink: Arc<Buffered<Retry<RedisStreamSink>>>,
}

impl RedisForwarder {
    /// A forwarder not attached to any queue (write to it as a [`Sink`], or
    /// register [`RedisForwarder::sink`] yourself). Does not connect yet:
    /// a server that is down is retried like a lost connection.
    pub fn new(config: RedisConfig) -> Result<Self, ForwardError> {
        if !(1..=65536).contains(&config.batch) {
            return Err(ForwardError::Config(format!(
                "batch must be 1..=65536, got {}",
                config.batch
            )));
        }
        if config.buffer == 0 {
            return Err(ForwardError::Config("buffer must be at least 1".into()));
        }
        if config.connect_timeout.is_zero() || config.io_timeout.is_zero() {
            // Every connect would fail: sockets refuse a zero timeout.
            return Err(ForwardError::Config(
                "the connect and I/O timeouts must not be zero".into(),
            ));
        }
        let raw = RedisStreamSink::new(&config.url, &config.stream, config.maxlen)?
            .timeouts(config.connect_timeout, config.io_timeout);
        let retry = Retry::new(raw, config.retry)?;
        let sink = Buffered::named(retry, config.buffer, config.batch, "evqueue-redis")?;
        Ok(RedisForwarder {
            sink: Arc::new(sink),
        })
    }

    /// A forwarder for every event of `queue` (a catch-all handler). The
    /// handler only copies the event into the buffer; a full buffer makes
    /// it fail with [`ForwardError::Overflow`] (counted by the queue too).
    pub fn attach(queue: &EventQueue, config: RedisConfig) -> Result<Self, ForwardError> {
        let forwarder = Self::new(config)?;
        queue.on_any(handler(forwarder.sink.clone()));
        Ok(forwarder)
    }

    /// The forwarder as a sink, to register per name
    /// (`queue.on(name, handler(fwd.sink()))`) or put in a [`FanOut`](crate::forward::FanOut).
    pub fn sink(&self) -> Arc<dyn Sink> {
        self.sink.clone()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> RedisForwarderStats {
        let b = self.sink.stats();
        let retry = self.sink.inner();
        let raw = retry.inner();
        RedisForwarderStats {
            accepted: b.accepted,
            dropped: b.dropped,
            written: b.written,
            failed: b.failed,
            abandoned: b.abandoned,
            pending: b.pending,
            high_water: b.high_water,
            batches: raw.batches.load(Relaxed),
            connects: raw.connects(),
            retry: retry.stats(),
        }
    }

    /// Waits until everything taken so far is in the stream.
    pub fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        self.sink.flush(timeout)
    }

    /// Writes what is buffered (retrying until `timeout`), then stops;
    /// anything not written by then is counted as abandoned and reported.
    pub fn close(&self, timeout: Duration) -> Result<(), SinkError> {
        self.sink.close(timeout)
    }
}

impl Sink for RedisForwarder {
    fn write(&self, batch: &[OwnedEvent]) -> Result<(), SinkError> {
        self.sink.write(batch)
    }
    fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        self.sink.flush(timeout)
    }
    fn close(&self, timeout: Duration) -> Result<(), SinkError> {
        self.sink.close(timeout)
    }
}
