//! A bounded queue with its own thread in front of a sink, and fan-out made
//! of them.
//!
//! [`Buffered::write`] only copies events into the queue, so the caller (a
//! dispatcher worker) never waits for the sink. The thread takes up to
//! `max_batch` queued events at a time and writes them; an event stays
//! counted as pending until that write returns. Events beyond the bound are
//! refused with [`ForwardError::Overflow`] and counted as dropped: the queue
//! never discards what it already took.
//!
//! [`FanOut`] gives every sink its own `Buffered`: a slow sink fills only
//! its own queue (and drops only its own events), a failing one fails only
//! its own writes.

use super::{ForwardError, Sink, SinkError};
use crate::blocking::{deadline, lock, time_left, wait, wait_timeout};
use crate::OwnedEvent;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long dropping a [`Buffered`] (or a [`FanOut`]) that was not closed
/// waits for its queue to drain.
const DROP_TIMEOUT: Duration = Duration::from_secs(5);

/// Counters of a [`Buffered`] sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferedStats {
    /// Events taken into the queue.
    pub accepted: u64,
    /// Events refused because the queue was full.
    pub dropped: u64,
    /// Events the inner sink took.
    pub written: u64,
    /// Events in batches the inner sink refused.
    pub failed: u64,
    /// Events still queued when `close` gave up on them.
    pub abandoned: u64,
    /// Events queued or being written now.
    pub pending: u64,
    /// Highest `pending` seen.
    pub high_water: u64,
}

struct Queue {
    events: VecDeque<OwnedEvent>,
    in_flight: usize,
    /// No new writes.
    closed: bool,
    /// The thread exits now, counting what is left as abandoned.
    abandon: bool,
    high_water: usize,
    /// The thread waits on `work` (a writer must notify).
    idle: bool,
}

struct Shared<S> {
    inner: S,
    capacity: usize,
    max_batch: usize,
    queue: Mutex<Queue>,
    /// Signalled when events arrive or the queue is closed.
    work: Condvar,
    /// Signalled when a write finishes.
    progress: Condvar,
    accepted: AtomicU64,
    dropped: AtomicU64,
    written: AtomicU64,
    failed: AtomicU64,
    abandoned: AtomicU64,
}

/// A sink behind a bounded queue and its own thread.
///
/// [`Buffered::write`] only copies events into the queue, so the caller (a
/// dispatcher worker) never waits for the sink. The thread takes up to
/// `max_batch` queued events at a time and writes them; an event stays
/// counted as pending until that write returns. Events beyond the bound are
/// refused with [`ForwardError::Overflow`] and counted as dropped: the queue
/// never discards what it already took.
///
/// ```
/// use evqueue::forward::{Buffered, FnSink, Sink};
/// use evqueue::OwnedEvent;
/// use std::time::Duration;
/// let slow = FnSink::new(|_: &[OwnedEvent]| { std::thread::sleep(Duration::from_millis(1)); Ok(()) });
/// let sink = Buffered::new(slow, 1024, 64)?;
/// sink.write(&vec![OwnedEvent::default(); 10])?; // returns at once
/// sink.close(Duration::from_secs(5))?;        // waits for the writes
/// assert_eq!(sink.stats().written, 10);
/// # Ok::<(), evqueue::forward::SinkError>(())
/// ```
pub struct Buffered<S: Sink> {
    shared: Arc<Shared<S>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<S: Sink> Buffered<S> {
    /// Puts a queue of `capacity` events (`>= 1`) in front of `inner`; its
    /// thread writes batches of at most `max_batch` events (`>= 1`).
    pub fn new(inner: S, capacity: usize, max_batch: usize) -> Result<Self, ForwardError> {
        Self::named(inner, capacity, max_batch, "evqueue-sink")
    }

    /// [`Buffered::new`] with a thread name.
    pub fn named(
        inner: S,
        capacity: usize,
        max_batch: usize,
        thread_name: &str,
    ) -> Result<Self, ForwardError> {
        if capacity == 0 {
            return Err(ForwardError::Config("capacity must be at least 1".into()));
        }
        if max_batch == 0 {
            return Err(ForwardError::Config("max_batch must be at least 1".into()));
        }
        let shared = Arc::new(Shared {
            inner,
            capacity,
            max_batch,
            queue: Mutex::new(Queue {
                events: VecDeque::new(),
                in_flight: 0,
                closed: false,
                abandon: false,
                high_water: 0,
                idle: false,
            }),
            work: Condvar::new(),
            progress: Condvar::new(),
            accepted: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || drain(&s))
            .map_err(|e| ForwardError::Config(format!("cannot start the sink thread: {e}")))?;
        Ok(Buffered {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The wrapped sink.
    pub fn inner(&self) -> &S {
        &self.shared.inner
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> BufferedStats {
        let s = &*self.shared;
        let q = lock(&s.queue);
        BufferedStats {
            accepted: s.accepted.load(Relaxed),
            dropped: s.dropped.load(Relaxed),
            written: s.written.load(Relaxed),
            failed: s.failed.load(Relaxed),
            abandoned: s.abandoned.load(Relaxed),
            pending: (q.events.len() + q.in_flight) as u64,
            high_water: q.high_water as u64,
        }
    }

    /// Waits until the queue is empty and no write is in progress, or the
    /// deadline; returns the events still pending.
    fn wait_drained(&self, deadline: Option<Instant>) -> usize {
        let s = &*self.shared;
        let mut q = lock(&s.queue);
        loop {
            let pending = q.events.len() + q.in_flight;
            let left = time_left(deadline);
            if pending == 0 || left.is_zero() {
                return pending;
            }
            q = wait_timeout(&s.progress, q, left);
        }
    }
}

impl<S: Sink> Buffered<S> {
    /// Takes as many of `len` events as there is room for (`fill` moves the
    /// first `take` of them into the queue) and counts the rest as dropped.
    fn push(
        &self,
        len: usize,
        fill: impl FnOnce(&mut VecDeque<OwnedEvent>, usize),
    ) -> Result<(), SinkError> {
        let s = &*self.shared;
        let mut q = lock(&s.queue);
        if q.closed {
            return Err(Box::new(ForwardError::Closed));
        }
        let room = s.capacity.saturating_sub(q.events.len() + q.in_flight);
        let take = len.min(room);
        fill(&mut q.events, take);
        q.high_water = q.high_water.max(q.events.len() + q.in_flight);
        // Notifying costs a syscall: only when the thread sleeps.
        let wake = take > 0 && q.idle;
        drop(q);
        if take > 0 {
            s.accepted.fetch_add(take as u64, Relaxed);
        }
        if wake {
            s.work.notify_one();
        }
        let dropped = len - take;
        if dropped > 0 {
            s.dropped.fetch_add(dropped as u64, Relaxed);
            return Err(Box::new(ForwardError::Overflow {
                dropped,
                capacity: s.capacity,
            }));
        }
        Ok(())
    }
}

fn drain<S: Sink>(s: &Shared<S>) {
    let mut batch = Vec::with_capacity(s.max_batch);
    loop {
        {
            let mut q = lock(&s.queue);
            loop {
                if q.abandon {
                    let left = q.events.len() as u64;
                    q.events.clear();
                    s.abandoned.fetch_add(left, Relaxed);
                    s.progress.notify_all();
                    return;
                }
                if !q.events.is_empty() {
                    break;
                }
                if q.closed {
                    return;
                }
                q.idle = true;
                q = wait(&s.work, q);
                q.idle = false;
            }
            let n = q.events.len().min(s.max_batch);
            batch.extend(q.events.drain(..n));
            q.in_flight = n;
        }
        let n = batch.len() as u64;
        match s.inner.write(&batch) {
            Ok(()) => s.written.fetch_add(n, Relaxed),
            Err(_) => s.failed.fetch_add(n, Relaxed),
        };
        batch.clear();
        lock(&s.queue).in_flight = 0;
        s.progress.notify_all();
    }
}

impl<S: Sink> Sink for Buffered<S> {
    /// Queues the events (returns at once). Events beyond the bound are
    /// refused: [`ForwardError::Overflow`] says how many, the rest were
    /// taken.
    fn write(&self, batch: &[OwnedEvent]) -> Result<(), SinkError> {
        self.push(batch.len(), |q, take| {
            q.extend(batch[..take].iter().cloned());
        })
    }

    /// [`write`](Self::write) without copying the events.
    fn write_owned(&self, mut batch: Vec<OwnedEvent>) -> Result<(), SinkError> {
        self.push(batch.len(), |q, take| {
            batch.truncate(take);
            q.extend(batch);
        })
    }

    /// Waits until every queued event was written (or refused by the inner
    /// sink), then flushes the inner sink.
    fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        let deadline = deadline(timeout);
        let pending = self.wait_drained(deadline);
        if pending > 0 {
            return Err(Box::new(ForwardError::Timeout { pending }));
        }
        self.shared.inner.flush(time_left(deadline))
    }

    /// Refuses new writes and lets the thread drain the queue until
    /// `timeout`; then closes the inner sink (which cancels a write that is
    /// still retrying) and counts what is left as abandoned.
    fn close(&self, timeout: Duration) -> Result<(), SinkError> {
        let deadline = deadline(timeout);
        let s = &*self.shared;
        lock(&s.queue).closed = true;
        s.work.notify_all();
        let pending = self.wait_drained(deadline);
        let before = s.abandoned.load(Relaxed) + s.failed.load(Relaxed);
        let closed = if pending > 0 {
            // Cancel the write in progress first, then stop the thread.
            let r = s.inner.close(Duration::ZERO);
            lock(&s.queue).abandon = true;
            s.work.notify_all();
            r
        } else {
            Ok(())
        };
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
        if pending > 0 {
            let lost = s.abandoned.load(Relaxed) + s.failed.load(Relaxed) - before;
            return Err(Box::new(ForwardError::Abandoned {
                events: lost as usize,
            }));
        }
        closed?;
        s.inner.close(time_left(deadline))
    }
}

impl<S: Sink> Drop for Buffered<S> {
    fn drop(&mut self) {
        if lock(&self.thread).is_some() {
            let _ = self.close(DROP_TIMEOUT);
        }
    }
}

/// Counters of a [`FanOut`], per sink.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FanOutStats {
    /// `(name, stats)` for each sink, in the order they were added.
    pub sinks: Vec<(String, BufferedStats)>,
}

/// Writes every event to several sinks, each behind its own bounded queue
/// and thread ([`Buffered`]), so a slow or failing sink does not stall the
/// others.
///
/// ```
/// use evqueue::forward::{FanOut, FnSink, Sink};
/// use evqueue::OwnedEvent;
/// use std::time::Duration;
/// let fan = FanOut::new()
///     .with("analytics", FnSink::new(|_: &[OwnedEvent]| Ok(())), 4096)?
///     .with("ads", FnSink::new(|_: &[OwnedEvent]| Err("ads down".into())), 4096)?;
/// fan.write(&[OwnedEvent::default()])?;
/// fan.close(Duration::from_secs(5))?;
/// let stats = fan.stats();
/// assert_eq!((stats.sinks[0].1.written, stats.sinks[1].1.failed), (1, 1));
/// # Ok::<(), evqueue::forward::SinkError>(())
/// ```
#[derive(Default)]
pub struct FanOut {
    branches: Vec<(String, Buffered<Box<dyn Sink>>)>,
}

impl FanOut {
    /// A fan-out to no sinks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `sink` under `name`, behind a queue of `capacity` events (its
    /// thread writes batches of up to 256).
    pub fn with<S: Sink>(
        mut self,
        name: &str,
        sink: S,
        capacity: usize,
    ) -> Result<Self, ForwardError> {
        let boxed: Box<dyn Sink> = Box::new(sink);
        let thread = format!("evqueue-fanout-{name}");
        self.branches.push((
            name.to_owned(),
            Buffered::named(boxed, capacity, 256, &thread)?,
        ));
        Ok(self)
    }

    /// A snapshot of every sink's counters.
    pub fn stats(&self) -> FanOutStats {
        FanOutStats {
            sinks: self
                .branches
                .iter()
                .map(|(n, b)| (n.clone(), b.stats()))
                .collect(),
        }
    }

    fn each(
        &self,
        f: impl Fn(&Buffered<Box<dyn Sink>>) -> Result<(), SinkError>,
    ) -> Result<(), SinkError> {
        let failures: Vec<(String, SinkError)> = self
            .branches
            .iter()
            .filter_map(|(name, b)| f(b).err().map(|e| (name.clone(), e)))
            .collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Box::new(ForwardError::FanOut { failures }))
        }
    }
}

impl Sink for FanOut {
    /// Queues the batch for every sink; a sink whose queue is full drops
    /// (and counts) its share, the others still take theirs.
    fn write(&self, batch: &[OwnedEvent]) -> Result<(), SinkError> {
        self.each(|b| b.write(batch))
    }

    fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        let deadline = deadline(timeout);
        self.each(|b| b.flush(time_left(deadline)))
    }

    fn close(&self, timeout: Duration) -> Result<(), SinkError> {
        let deadline = deadline(timeout);
        self.each(|b| b.close(time_left(deadline)))
    }
}
