//! [`EventQueueBuilder`]: the queue's configuration, with Nakama's defaults.

use super::{DispatchError, EventQueue};
use crate::Overflow;
use std::sync::Arc;
use std::time::Duration;

/// Runs the handlers of one claimed batch.
type RunBatch<'a> = &'a mut dyn FnMut();

/// Wraps the handling of each claimed batch; see [`EventQueueBuilder::around_batch`].
#[derive(Clone)]
pub(crate) struct AroundBatch(pub(crate) Arc<dyn Fn(RunBatch<'_>) + Send + Sync + 'static>);

impl std::fmt::Debug for AroundBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AroundBatch(..)")
    }
}

/// Configures and starts an [`EventQueue`]. Defaults are Nakama's: 65536
/// slots of 256 bytes, 8 workers, [`Overflow::Overwrite`].
///
/// ```
/// use evqueue::{DispatchError, Error, EventQueue, Overflow};
/// let queue = EventQueue::builder()
///     .capacity(4096)
///     .slot_bytes(128)
///     .workers(2)
///     .overflow(Overflow::Reject)
///     .build()?;
/// assert_eq!((queue.capacity(), queue.workers()), (4096, 2));
/// assert_eq!(EventQueue::builder().workers(0).build().err(),
///            Some(DispatchError::InvalidWorkers { workers: 0 }));
/// assert_eq!(EventQueue::builder().capacity(1000).build().err(),
///            Some(DispatchError::Config(Error::InvalidCapacity { capacity: 1000 })));
/// # Ok::<(), DispatchError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct EventQueueBuilder {
    pub(crate) capacity: usize,
    pub(crate) slot_bytes: usize,
    pub(crate) workers: usize,
    pub(crate) overflow: Overflow,
    pub(crate) spin: Duration,
    pub(crate) drop_deadline: Duration,
    pub(crate) thread_name: String,
    pub(crate) claim_batch: usize,
    pub(crate) around_batch: Option<AroundBatch>,
}

impl Default for EventQueueBuilder {
    fn default() -> Self {
        EventQueueBuilder {
            capacity: 65536,
            slot_bytes: 256,
            workers: 8,
            overflow: Overflow::Overwrite,
            spin: Duration::from_micros(50),
            drop_deadline: Duration::from_secs(5),
            thread_name: "evqueue-worker".into(),
            claim_batch: 1,
            around_batch: None,
        }
    }
}

impl EventQueueBuilder {
    /// Largest worker count accepted.
    pub const MAX_WORKERS: usize = 1024;
    /// Largest [`claim_batch`](Self::claim_batch) accepted.
    pub const MAX_CLAIM_BATCH: usize = 1024;

    /// Number of slots: a nonzero power of two, at most
    /// [`MAX_CAPACITY`](crate::MAX_CAPACITY). Default 65536.
    pub fn capacity(mut self, slots: usize) -> Self {
        self.capacity = slots;
        self
    }

    /// Bytes per slot, the largest encoded event: a multiple of 8 between
    /// [`MIN_SLOT_BYTES`](crate::MIN_SLOT_BYTES) and
    /// [`MAX_SLOT_BYTES`](crate::MAX_SLOT_BYTES). Default 256.
    pub fn slot_bytes(mut self, bytes: usize) -> Self {
        self.slot_bytes = bytes;
        self
    }

    /// Worker threads, 1 to [`MAX_WORKERS`](Self::MAX_WORKERS). Default 8.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// What a push does when the workers are a whole ring behind. Default
    /// [`Overflow::Overwrite`].
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// How long an idle worker spins before it parks. Longer
    /// spinning lowers wake latency under bursty load and costs CPU when
    /// idle. Default 50 µs; zero parks at once.
    pub fn spin_for(mut self, spin: Duration) -> Self {
        self.spin = spin;
        self
    }

    /// The deadline `Drop` gives [`EventQueue::shutdown`]. Default 5 s.
    pub fn drop_deadline(mut self, deadline: Duration) -> Self {
        self.drop_deadline = deadline;
        self
    }

    /// Worker thread name prefix; workers are named `{prefix}-{index}`
    /// (Linux keeps the first 15 bytes). Default `evqueue-worker`. A prefix
    /// with a NUL byte makes `build` fail with
    /// [`DispatchError::InvalidThreadName`].
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name = prefix.into();
        self
    }

    /// How many events a worker claims at once, 1 to
    /// [`MAX_CLAIM_BATCH`](Self::MAX_CLAIM_BATCH). Default 1: with slow
    /// handlers, every idle worker can take the next event. Larger batches
    /// cut the per-event claim cost (one CAS per batch) when handlers are
    /// fast, and pair with [`around_batch`](Self::around_batch).
    pub fn claim_batch(mut self, events: usize) -> Self {
        self.claim_batch = events;
        self
    }

    /// Wraps the handling of every claimed batch: a worker calls
    /// `around(run)` once per batch, and `run()` runs the handlers of each
    /// event of the batch. Made for language bindings that must hold a lock
    /// while handlers run (Python takes the GIL once per batch).
    ///
    /// `around` should call `run` exactly once; if it returns (or panics)
    /// without calling it, the worker runs the batch itself afterwards, so no
    /// claimed event goes unhandled. Calling `run` again does nothing.
    ///
    /// ```
    /// use evqueue::{Event, EventQueue};
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// static LOCK: Mutex<()> = Mutex::new(());
    /// let batches = Arc::new(AtomicU64::new(0));
    /// let b = batches.clone();
    /// let queue = EventQueue::builder().capacity(64).workers(1).claim_batch(16)
    ///     .around_batch(move |run| { let _held = LOCK.lock(); b.fetch_add(1, Ordering::Relaxed); run() })
    ///     .build()?;
    /// for _ in 0..10 { queue.emit(&Event::new("tick"))?; }
    /// queue.flush(Duration::from_secs(5))?;
    /// assert_eq!(queue.stats().handled, 10);
    /// assert!((1..=10).contains(&batches.load(Ordering::Relaxed)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn around_batch<F>(mut self, around: F) -> Self
    where
        F: Fn(&mut dyn FnMut()) + Send + Sync + 'static,
    {
        self.around_batch = Some(AroundBatch(Arc::new(around)));
        self
    }

    /// Allocates the ring and starts the workers.
    ///
    /// Fails with [`DispatchError::Config`] for a bad capacity or slot size,
    /// [`DispatchError::InvalidWorkers`] for a worker count out of range,
    /// [`DispatchError::InvalidBatch`] for a claim batch out of range, and
    /// [`DispatchError::Spawn`] if a thread cannot start (the workers already
    /// started are stopped and joined).
    pub fn build(self) -> Result<EventQueue, DispatchError> {
        let queue = EventQueue::new_paused(self)?;
        queue.start()?;
        Ok(queue)
    }

    /// Allocates the ring without starting the workers: events can be
    /// emitted, subscribed to and popped ([`EventQueue::try_pop`]) at once,
    /// and handlers registered before any event is handled;
    /// [`EventQueue::start`] starts the workers. A queue that is never
    /// started is a pull-mode queue: the caller drains it with `try_pop`.
    ///
    /// ```
    /// use evqueue::{Event, EventQueue};
    /// let queue = EventQueue::builder().capacity(64).workers(1).build_paused()?;
    /// queue.emit(&Event::new("tick"))?;
    /// assert_eq!(queue.try_pop()?.name, "tick");
    /// assert_eq!(queue.stats().popped, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build_paused(self) -> Result<EventQueue, DispatchError> {
        EventQueue::new_paused(self)
    }
}
