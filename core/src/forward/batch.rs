//! Batching by count, encoded bytes and interval, whichever comes first.
//!
//! Events collect in a buffer. A write that brings it to `max_events`
//! events or `max_bytes` bytes ([`event_bytes`]) writes the batch on the
//! caller's thread (an event that would push the buffer over `max_bytes`
//! first sends what is buffered, so a batch exceeds `max_bytes` only when a
//! single event does). A background thread writes a batch whose oldest
//! event has waited `interval`, with no new events needed. Batches reach the
//! inner sink one at a time, in the order they were formed.
//!
//! A batch the inner sink refuses is counted as failed: put a [`Retry`](super::Retry)
//! inside the batcher (`Batch::new(Retry::new(..))`) to retry whole batches.

use super::{event_bytes, ForwardError, Sink, SinkError};
use crate::blocking::{deadline, deadline_at, lock, time_left, wait, wait_timeout};
use crate::OwnedEvent;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// When [`Batch`] writes. Defaults: 512 events, 1 MiB, 100 ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    max_events: usize,
    max_bytes: usize,
    interval: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_events: 512,
            max_bytes: 1 << 20,
            interval: Duration::from_millis(100),
        }
    }
}

impl BatchConfig {
    /// Write when this many events are buffered (`>= 1`).
    pub fn max_events(mut self, n: usize) -> Self {
        self.max_events = n;
        self
    }
    /// Write when the buffered events' encoded size reaches this (`>= 1`).
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }
    /// Write when the oldest buffered event has waited this long (`> 0`).
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d;
        self
    }
    fn validate(&self) -> Result<(), ForwardError> {
        if self.max_events == 0 {
            return Err(ForwardError::Config("max_events must be at least 1".into()));
        }
        if self.max_bytes == 0 {
            return Err(ForwardError::Config("max_bytes must be at least 1".into()));
        }
        if self.interval.is_zero() {
            return Err(ForwardError::Config("interval must be positive".into()));
        }
        Ok(())
    }
}

/// Counters of a [`Batch`], by what triggered each batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Batches written because they reached `max_events`.
    pub by_count: u64,
    /// Batches written because of `max_bytes`.
    pub by_bytes: u64,
    /// Batches written by the interval timer.
    pub by_interval: u64,
    /// Batches written by `flush` or `close`.
    pub by_flush: u64,
    /// Events the inner sink took.
    pub written: u64,
    /// Batches the inner sink refused.
    pub failed_batches: u64,
    /// Events in refused batches.
    pub failed_events: u64,
    /// Events currently buffered.
    pub buffered: u64,
}

#[derive(Clone, Copy)]
enum Trigger {
    Count,
    Bytes,
    Interval,
    Flush,
}

struct Buffer {
    events: Vec<OwnedEvent>,
    bytes: usize,
    first_at: Option<Instant>,
    closed: bool,
}

struct Shared<S> {
    inner: S,
    config: BatchConfig,
    buffer: Mutex<Buffer>,
    wake: Condvar,
    /// Held while a batch is written, so batches go out one at a time and
    /// in order.
    writing: Mutex<()>,
    stats: [AtomicU64; 7],
}

const BY_COUNT: usize = 0;
const BY_BYTES: usize = 1;
const BY_INTERVAL: usize = 2;
const BY_FLUSH: usize = 3;
const WRITTEN: usize = 4;
const FAILED_EVENTS: usize = 5;
const FAILED_BATCHES: usize = 6;

impl<S: Sink> Shared<S> {
    /// Takes the buffer (called with it locked), then writes it with the
    /// write lock held; the buffer lock is released before the write.
    fn send(
        &self,
        mut buf: std::sync::MutexGuard<'_, Buffer>,
        trigger: Trigger,
    ) -> Result<(), SinkError> {
        if buf.events.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(&mut buf.events);
        buf.bytes = 0;
        buf.first_at = None;
        let writing = lock(&self.writing);
        drop(buf);
        let index = match trigger {
            Trigger::Count => BY_COUNT,
            Trigger::Bytes => BY_BYTES,
            Trigger::Interval => BY_INTERVAL,
            Trigger::Flush => BY_FLUSH,
        };
        self.stats[index].fetch_add(1, Relaxed);
        let n = events.len() as u64;
        let result = self.inner.write(&events);
        drop(writing);
        match &result {
            Ok(()) => {
                self.stats[WRITTEN].fetch_add(n, Relaxed);
            }
            Err(_) => {
                self.stats[FAILED_EVENTS].fetch_add(n, Relaxed);
                self.stats[FAILED_BATCHES].fetch_add(1, Relaxed);
            }
        }
        result
    }
}

/// Batches writes to a sink.
///
/// Batching by count, encoded bytes and interval, whichever comes first.
///
/// Events collect in a buffer. A write that brings it to `max_events`
/// events or `max_bytes` bytes ([`event_bytes`]) writes the batch on the
/// caller's thread (an event that would push the buffer over `max_bytes`
/// first sends what is buffered, so a batch exceeds `max_bytes` only when a
/// single event does). A background thread writes a batch whose oldest
/// event has waited `interval`, with no new events needed. Batches reach the
/// inner sink one at a time, in the order they were formed.
///
/// A batch the inner sink refuses is counted as failed: put a [`Retry`](super::Retry)
/// inside the batcher (`Batch::new(Retry::new(..))`) to retry whole batches.
///
/// ```
/// use evqueue::forward::{Batch, BatchConfig, FnSink, Sink};
/// use evqueue::OwnedEvent;
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// let sizes = Arc::new(Mutex::new(Vec::new()));
/// let s = sizes.clone();
/// let sink = Batch::new(
///     FnSink::new(move |b: &[OwnedEvent]| { s.lock().unwrap().push(b.len()); Ok(()) }),
///     BatchConfig::default().max_events(3).interval(Duration::from_millis(20)),
/// )?;
/// for _ in 0..4 { sink.write(&[OwnedEvent::default()])?; }
/// std::thread::sleep(Duration::from_millis(200)); // the interval sends the 4th
/// assert_eq!(*sizes.lock().unwrap(), [3, 1]);
/// # Ok::<(), evqueue::forward::SinkError>(())
/// ```
pub struct Batch<S: Sink> {
    shared: Arc<Shared<S>>,
    timer: Mutex<Option<JoinHandle<()>>>,
}

impl<S: Sink> Batch<S> {
    /// Batches writes to `inner`; starts the interval thread.
    pub fn new(inner: S, config: BatchConfig) -> Result<Self, ForwardError> {
        config.validate()?;
        let shared = Arc::new(Shared {
            inner,
            config,
            buffer: Mutex::new(Buffer {
                events: Vec::new(),
                bytes: 0,
                first_at: None,
                closed: false,
            }),
            wake: Condvar::new(),
            writing: Mutex::new(()),
            stats: Default::default(),
        });
        let s = shared.clone();
        let timer = std::thread::Builder::new()
            .name("evqueue-batch".into())
            .spawn(move || interval_loop(&s))
            .map_err(|e| ForwardError::Config(format!("cannot start the batch thread: {e}")))?;
        Ok(Batch {
            shared,
            timer: Mutex::new(Some(timer)),
        })
    }

    /// The wrapped sink.
    pub fn inner(&self) -> &S {
        &self.shared.inner
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> BatchStats {
        let s = &self.shared.stats;
        BatchStats {
            by_count: s[BY_COUNT].load(Relaxed),
            by_bytes: s[BY_BYTES].load(Relaxed),
            by_interval: s[BY_INTERVAL].load(Relaxed),
            by_flush: s[BY_FLUSH].load(Relaxed),
            written: s[WRITTEN].load(Relaxed),
            failed_batches: s[FAILED_BATCHES].load(Relaxed),
            failed_events: s[FAILED_EVENTS].load(Relaxed),
            buffered: lock(&self.shared.buffer).events.len() as u64,
        }
    }

    fn stop_timer(&self) {
        lock(&self.shared.buffer).closed = true;
        self.shared.wake.notify_all();
        if let Some(t) = lock(&self.timer).take() {
            let _ = t.join();
        }
    }
}

impl<S: Sink> Batch<S> {
    fn push(&self, events: impl Iterator<Item = OwnedEvent>) -> Result<(), SinkError> {
        let shared = &*self.shared;
        let mut result: Result<(), SinkError> = Ok(());
        let mut buf = lock(&shared.buffer);
        for event in events {
            // Checked per event: a batch written on the way releases the
            // lock, and `close` may have run meanwhile.
            if buf.closed {
                return result.and(Err(Box::new(ForwardError::Closed)));
            }
            let size = event_bytes(&event);
            if !buf.events.is_empty() && buf.bytes + size > shared.config.max_bytes {
                let r = shared.send(buf, Trigger::Bytes);
                result = result.and(r);
                buf = lock(&shared.buffer);
            }
            if buf.events.is_empty() {
                buf.first_at = Some(Instant::now());
                shared.wake.notify_all();
            }
            buf.events.push(event);
            buf.bytes += size;
            let trigger = if buf.events.len() >= shared.config.max_events {
                Some(Trigger::Count)
            } else if buf.bytes >= shared.config.max_bytes {
                Some(Trigger::Bytes)
            } else {
                None
            };
            if let Some(trigger) = trigger {
                let r = shared.send(buf, trigger);
                result = result.and(r);
                buf = lock(&shared.buffer);
            }
        }
        result
    }
}

fn interval_loop<S: Sink>(shared: &Shared<S>) {
    let mut buf = lock(&shared.buffer);
    loop {
        if buf.closed {
            return;
        }
        match buf.first_at {
            None => {
                buf = wait(&shared.wake, buf);
            }
            Some(first) => {
                let left = time_left(deadline_at(first, shared.config.interval));
                if left.is_zero() {
                    // Errors are counted in the stats; nobody to return them to.
                    let _ = shared.send(buf, Trigger::Interval);
                    buf = lock(&shared.buffer);
                } else {
                    buf = wait_timeout(&shared.wake, buf, left);
                }
            }
        }
    }
}

impl<S: Sink> Sink for Batch<S> {
    /// Buffers the events; writes a batch when a limit is reached (and
    /// returns the inner sink's error for that batch).
    fn write(&self, batch: &[OwnedEvent]) -> Result<(), SinkError> {
        self.push(batch.iter().cloned())
    }

    /// [`write`](Self::write) without copying the events.
    fn write_owned(&self, batch: Vec<OwnedEvent>) -> Result<(), SinkError> {
        self.push(batch.into_iter())
    }

    /// Writes what is buffered now, then flushes the inner sink.
    fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        let r = self.shared.send(lock(&self.shared.buffer), Trigger::Flush);
        r?;
        self.shared.inner.flush(timeout)
    }

    /// Stops the interval thread, writes what is buffered, closes the inner
    /// sink.
    fn close(&self, timeout: Duration) -> Result<(), SinkError> {
        let deadline = deadline(timeout);
        self.stop_timer();
        let r = self.shared.send(lock(&self.shared.buffer), Trigger::Flush);
        let closed = self.shared.inner.close(time_left(deadline));
        r.and(closed)
    }
}

/// Dropping a batcher that was not closed closes it, waiting up to this
/// long, so the last partial batch is written.
const DROP_TIMEOUT: Duration = Duration::from_secs(5);

impl<S: Sink> Drop for Batch<S> {
    fn drop(&mut self) {
        if lock(&self.timer).is_some() {
            let _ = self.close(DROP_TIMEOUT);
        }
    }
}
