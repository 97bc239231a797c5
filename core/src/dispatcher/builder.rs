//! [`EventQueueBuilder`]: the queue's configuration, with Nakama's defaults.

use super::{DispatchError, EventQueue};
use crate::Overflow;
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
    pub(crate) spin: Duration,
    pub(crate) drop_deadline: Duration,
    pub(crate) thread_name: String,
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
        }
    }
}

impl EventQueueBuilder {
    /// Largest worker count accepted.
    pub const MAX_WORKERS: usize = 1024;

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
    /// (Linux keeps the first 15 bytes). Default `evqueue-worker`.
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name = prefix.into();
        self
    }

    /// Allocates the ring and starts the workers.
    ///
    /// Fails with [`DispatchError::Config`] for a bad capacity or slot size,
    /// [`DispatchError::InvalidWorkers`] for a worker count out of range, and
    /// [`DispatchError::Spawn`] if a thread cannot start (the workers already
    /// started are stopped and joined).
    pub fn build(self) -> Result<EventQueue, DispatchError> {
        EventQueue::start(self)
    }
}
