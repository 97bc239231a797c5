//! [`EventQueueBuilder`]: the queue's configuration, with Nakama's defaults.

use super::shared::{AroundBatch, WorkerStart};
use super::{DispatchError, EventQueue};
use crate::{Lag, Overflow};
use std::sync::Arc;
use std::time::Duration;

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
    pub(crate) lag: Lag,
    pub(crate) spin: Duration,
    pub(crate) drop_deadline: Duration,
    pub(crate) thread_name: String,
    pub(crate) claim_batch: usize,
    pub(crate) around_batch: Option<AroundBatch>,
    pub(crate) worker_nice: u8,
    pub(crate) on_worker_start: Option<WorkerStart>,
    /// 0: chosen from the worker count.
    pub(crate) lanes: usize,
}

impl Default for EventQueueBuilder {
    fn default() -> Self {
        EventQueueBuilder {
            capacity: 65536,
            slot_bytes: 256,
            workers: 8,
            overflow: Overflow::Overwrite,
            lag: Lag::Headroom,
            spin: Duration::from_micros(50),
            drop_deadline: Duration::from_secs(5),
            thread_name: "evqueue-worker".into(),
            claim_batch: 32,
            around_batch: None,
            worker_nice: 5,
            on_worker_start: None,
            lanes: 0,
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

    /// Where the workers continue when producers lapped them (in the ring
    /// and in each lane; see [`Lag`]). Every event passed over is counted
    /// as overwritten either way. Default [`Lag::Headroom`]: workers slower
    /// than the producers get runs of consecutive events between laps.
    pub fn lag(mut self, lag: Lag) -> Self {
        self.lag = lag;
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

    /// The most events a worker claims at once, 1 to
    /// [`MAX_CLAIM_BATCH`](Self::MAX_CLAIM_BATCH). Default 32. A worker
    /// claims at most its share of the backlog it saw last (the events
    /// waiting, divided by the worker count), so with a short backlog every
    /// idle worker can still take the next event and a slow handler holds
    /// up no batch; with a long one a batch costs one claim (one CAS)
    /// instead of one per event. Handlers still get events one at a time.
    /// Pairs with [`around_batch`](Self::around_batch).
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

    /// How many nice levels below the thread that starts them the worker
    /// threads run (Linux; elsewhere the workers keep their priority), 0 to
    /// [`MAX_WORKER_NICE`](Self::MAX_WORKER_NICE). Default 5: when handlers
    /// keep every core busy, a thread that emits (a player's request) gets
    /// the CPU before the workers do, so a burst of slow handlers does not
    /// stall it for whole scheduler slices; idle cores still run the
    /// workers at full speed. 0 keeps them at the same priority. A value
    /// over the maximum makes `build` fail with
    /// [`DispatchError::InvalidNice`].
    pub fn worker_nice(mut self, levels: u8) -> Self {
        self.worker_nice = levels;
        self
    }

    /// Runs `start(index)` on each worker thread as it starts, after its
    /// priority is set and before it handles any event: to pin it to a CPU,
    /// register it with a profiler, or set a priority of your own. A panic
    /// in `start` is caught and counted as a handler panic; the worker runs
    /// on.
    ///
    /// ```
    /// use evqueue::EventQueue;
    /// use std::sync::{Arc, Mutex};
    /// let started = Arc::new(Mutex::new(Vec::new()));
    /// let s = started.clone();
    /// let queue = EventQueue::builder().capacity(64).workers(2)
    ///     .on_worker_start(move |index| s.lock().unwrap().push(index))
    ///     .build()?;
    /// queue.shutdown(std::time::Duration::from_secs(5))?;
    /// let mut seen = started.lock().unwrap().clone();
    /// seen.sort();
    /// assert_eq!(seen, [0, 1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_worker_start<F>(mut self, start: F) -> Self
    where
        F: Fn(usize) + Send + Sync + 'static,
    {
        self.on_worker_start = Some(WorkerStart(Arc::new(start)));
        self
    }

    /// Largest [`worker_nice`](Self::worker_nice) accepted (Linux's range
    /// of nice values is -20 to 19).
    pub const MAX_WORKER_NICE: u8 = 39;

    /// Largest lane count ([`lanes`](Self::lanes)).
    pub const MAX_LANES: usize = 4096;

    /// Number of lanes for keyed events ([`EventQueue::emit_keyed`]): a
    /// power of two, at most [`MAX_LANES`](Self::MAX_LANES); 0 (the
    /// default) picks the smallest power of two at least 4 × the workers
    /// (32 for 8). Each lane is a ring of `capacity / lanes` slots (at least
    /// 16) handled by one worker at a time, so keys that hash to one lane
    /// wait for each other: more lanes, less head-of-line blocking, more
    /// rings to look through when idle. Anything else fails the build with
    /// [`DispatchError::InvalidLanes`].
    ///
    /// ```
    /// use evqueue::EventQueue;
    /// let queue = EventQueue::builder().capacity(1024).workers(2).lanes(16).build_paused()?;
    /// assert_eq!((queue.lanes(), queue.lane_capacity()), (16, 64));
    /// assert!(EventQueue::builder().lanes(12).build_paused().is_err());
    /// # Ok::<(), evqueue::DispatchError>(())
    /// ```
    pub fn lanes(mut self, lanes: usize) -> Self {
        self.lanes = lanes;
        self
    }

    /// The lane count `build` uses.
    pub(crate) fn lane_count(&self) -> usize {
        if self.lanes == 0 {
            (self.workers * 4).next_power_of_two().min(Self::MAX_LANES)
        } else {
            self.lanes
        }
    }

    /// Allocates the ring and starts the workers.
    ///
    /// Fails with [`DispatchError::Config`] for a bad capacity or slot size,
    /// [`DispatchError::InvalidWorkers`] for a worker count out of range,
    /// [`DispatchError::InvalidBatch`] for a claim batch out of range,
    /// [`DispatchError::InvalidNice`] for a worker nice out of range, and
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
