//! Forwarding (`std`): sinks that handlers are made of, and combinators to
//! retry, batch, fan out and filter them; with the `redis` feature, a bridge
//! to Redis Streams (the `redis` module).
//!
//! A [`Sink`] takes owned events ([`OwnedEvent`]) in batches. The
//! combinators are sinks that wrap sinks, so they stack:
//!
//! - [`Retry`]: exponential backoff with full jitter, an attempt limit and a
//!   dead-letter hook, and a circuit breaker (after N consecutive failures it
//!   waits a cool-down before the next attempt). Time comes from a [`Clock`],
//!   so tests use a [`FakeClock`].
//! - [`Batch`]: collects events and writes them when a count, a byte size
//!   ([`event_bytes`], the core codec's encoded size) or an interval is
//!   reached, whichever comes first; a background thread makes the interval
//!   fire with no new events; flushed on `flush` and `close`.
//! - [`Buffered`]: a bounded queue in front of a sink, drained by its own
//!   thread; events beyond the bound are refused and counted. [`FanOut`] is
//!   one `Buffered` per sink, so a slow or failing sink stalls no other.
//! - [`Filter`]: passes events by name or predicate.
//!
//! [`handler`] turns a sink into a dispatcher handler (`queue.on_any(..)` or
//! `queue.on(name, ..)`).
//!
//! Order of errors: a sink's `write` returns `Err` when it could not take the
//! batch; nothing is ever dropped without a counter saying so.
//!
//! ```
//! use evqueue::forward::{handler, Batch, BatchConfig, Filter, FnSink, Sink};
//! use evqueue::{Event, EventQueue, OwnedEvent};
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//!
//! let seen = Arc::new(Mutex::new(Vec::<usize>::new()));
//! let s = seen.clone();
//! let analytics = FnSink::new(move |batch: &[OwnedEvent]| {
//!     s.lock().unwrap().push(batch.len());
//!     Ok(())
//! });
//! let batched = Batch::new(analytics, BatchConfig::default().max_events(2))?;
//! let sink = Arc::new(Filter::names(batched, &["purchase"]));
//!
//! let queue = EventQueue::builder().capacity(64).workers(1).build()?;
//! queue.on_any(handler(sink.clone()));
//! for _ in 0..3 {
//!     queue.emit(&Event::new("purchase"))?;
//!     queue.emit(&Event::new("chat"))?;
//! }
//! queue.shutdown(Duration::from_secs(5))?;
//! sink.close(Duration::from_secs(5))?; // writes the last, partial batch
//! assert_eq!(*seen.lock().unwrap(), [2, 1]);
//! # Ok::<(), evqueue::forward::SinkError>(())
//! ```

mod batch;
mod buffered;
mod clock;
mod error;
mod filter;
#[cfg(feature = "redis")]
pub mod redis;
mod retry;

pub use batch::{Batch, BatchConfig, BatchStats};
pub use buffered::{Buffered, BufferedStats, FanOut, FanOutStats};
pub use clock::{Cancel, Clock, FakeClock, SystemClock};
pub use error::ForwardError;
pub use filter::{Filter, FilterStats};
pub use retry::{DeadLetter, Retry, RetryPolicy, RetryStats};

use crate::{EventView, HandlerResult, OwnedEvent};
use std::sync::Arc;
use std::time::Duration;

/// The error a sink returns: any error type, boxed. The combinators return
/// [`ForwardError`]s in it.
pub type SinkError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where forwarded events go: an analytics service, a log, a Redis stream.
///
/// `write` takes a batch of owned events (a single event is a batch of one).
/// `Err` means the sink did not take the batch as a whole: some of it may
/// have arrived, so a caller that retries the whole batch gets at-least-once
/// delivery. Sinks are shared between threads (`&self`), so `write` may be
/// called concurrently.
pub trait Sink: Send + Sync + 'static {
    /// Writes a batch of events.
    fn write(&self, batch: &[OwnedEvent]) -> Result<(), SinkError>;

    /// Writes a batch the caller gives away; sinks that keep events
    /// ([`Buffered`], [`Batch`]) take them without copying. Same contract
    /// as `write`.
    fn write_owned(&self, batch: Vec<OwnedEvent>) -> Result<(), SinkError> {
        self.write(&batch)
    }

    /// Writes out anything buffered, waiting at most `timeout`.
    fn flush(&self, _timeout: Duration) -> Result<(), SinkError> {
        Ok(())
    }

    /// Flushes within `timeout`, then stops: later writes fail with
    /// [`ForwardError::Closed`]. Anything that could not be written by then
    /// is counted and reported in the error. Idempotent.
    fn close(&self, timeout: Duration) -> Result<(), SinkError> {
        self.flush(timeout)
    }
}

impl<S: Sink + ?Sized> Sink for Arc<S> {
    fn write(&self, batch: &[OwnedEvent]) -> Result<(), SinkError> {
        (**self).write(batch)
    }
    fn write_owned(&self, batch: Vec<OwnedEvent>) -> Result<(), SinkError> {
        (**self).write_owned(batch)
    }
    fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        (**self).flush(timeout)
    }
    fn close(&self, timeout: Duration) -> Result<(), SinkError> {
        (**self).close(timeout)
    }
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn write(&self, batch: &[OwnedEvent]) -> Result<(), SinkError> {
        (**self).write(batch)
    }
    fn write_owned(&self, batch: Vec<OwnedEvent>) -> Result<(), SinkError> {
        (**self).write_owned(batch)
    }
    fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        (**self).flush(timeout)
    }
    fn close(&self, timeout: Duration) -> Result<(), SinkError> {
        (**self).close(timeout)
    }
}

/// A sink made of a closure (flush and close do nothing).
///
/// ```
/// use evqueue::forward::{FnSink, Sink};
/// use evqueue::OwnedEvent;
/// let sink = FnSink::new(|batch: &[OwnedEvent]| {
///     for e in batch { println!("{}", e.name); }
///     Ok(())
/// });
/// sink.write(&[OwnedEvent { name: "chat".into(), ..Default::default() }])?;
/// # Ok::<(), evqueue::forward::SinkError>(())
/// ```
pub struct FnSink<F>(F);

impl<F> FnSink<F>
where
    F: Fn(&[OwnedEvent]) -> Result<(), SinkError> + Send + Sync + 'static,
{
    /// A sink that calls `f` with every batch.
    pub fn new(f: F) -> Self {
        FnSink(f)
    }
}

impl<F> Sink for FnSink<F>
where
    F: Fn(&[OwnedEvent]) -> Result<(), SinkError> + Send + Sync + 'static,
{
    fn write(&self, batch: &[OwnedEvent]) -> Result<(), SinkError> {
        (self.0)(batch)
    }
}

/// A dispatcher handler that writes every event it gets to `sink`, as a
/// batch of one: `queue.on_any(handler(sink.clone()))` forwards everything,
/// `queue.on("purchase", handler(sink.clone()))` one name. A sink error
/// becomes the handler's error (counted by the queue, passed to its error
/// hook).
///
/// The queue does not own the sink: shut the queue down first, then close
/// the sink, so the last events are written.
pub fn handler<S: Sink + ?Sized>(
    sink: Arc<S>,
) -> impl Fn(&EventView<'_>) -> HandlerResult + Send + Sync + 'static {
    move |view: &EventView<'_>| sink.write_owned(vec![OwnedEvent::from(view)])
}

/// The size of `event` in the core codec's encoding (what it takes in a
/// slot: a 12-byte header, the name, and 3 bytes plus key and value per
/// property), the measure [`Batch`] uses for its byte limit.
pub fn event_bytes(event: &OwnedEvent) -> usize {
    crate::codec::unchecked_len(
        &event.name,
        event
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
}
