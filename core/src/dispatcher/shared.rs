//! What the workers share with the queue: [`Shared`], each worker's
//! published [`WorkerSlot`], the worker hooks set by the builder, and the
//! per-name failure counts.

use super::handlers::Registry;
use super::lanes::Lanes;
use super::park::{Sleepers, Wake};
use super::stats::NameFailures;
use super::subscriber::SubscriberState;
use crate::blocking::lock;
use crate::HeapRing;
use arc_swap::ArcSwap;
use crossbeam_utils::CachePadded;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

/// Runs the handlers of one claimed batch.
type RunBatch<'a> = &'a mut dyn FnMut();

/// Wraps the handling of each claimed batch; see [`EventQueueBuilder::around_batch`](super::EventQueueBuilder::around_batch).
#[derive(Clone)]
pub(crate) struct AroundBatch(pub(crate) Arc<dyn Fn(RunBatch<'_>) + Send + Sync + 'static>);

impl std::fmt::Debug for AroundBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AroundBatch(..)")
    }
}

/// Runs on each worker thread as it starts; see [`EventQueueBuilder::on_worker_start`](super::EventQueueBuilder::on_worker_start).
#[derive(Clone)]
pub(crate) struct WorkerStart(pub(crate) Arc<dyn Fn(usize) + Send + Sync + 'static>);

impl std::fmt::Debug for WorkerStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkerStart(..)")
    }
}

/// `handling` of a worker that holds no event.
pub(crate) const IDLE: u64 = u64::MAX;

/// One worker's published state, on its own cache line.
pub(crate) struct WorkerSlot {
    /// A lower bound of the seq this worker is handling; [`IDLE`] when none.
    pub(crate) handling: AtomicU64,
    /// Events this worker dispatched (written by this worker only).
    pub(crate) handled: AtomicU64,
}

impl Default for WorkerSlot {
    fn default() -> Self {
        WorkerSlot {
            handling: AtomicU64::new(IDLE),
            handled: AtomicU64::new(0),
        }
    }
}

/// What the workers share with the queue.
pub(crate) struct Shared {
    pub(crate) id: u64,
    pub(crate) ring: Arc<HeapRing>,
    /// Rings for keyed events, one worker at a time each.
    pub(crate) lanes: Arc<Lanes>,
    pub(crate) wake: Arc<Wake>,
    pub(crate) registry: ArcSwap<Registry>,
    pub(crate) slots: Box<[CachePadded<WorkerSlot>]>,
    pub(crate) spin: Duration,
    pub(crate) claim_batch: usize,
    pub(crate) around_batch: Option<AroundBatch>,
    /// Nice levels below their starter the workers run at (Linux).
    pub(crate) worker_nice: u8,
    pub(crate) on_worker_start: Option<WorkerStart>,
    /// Set once by `start`.
    pub(crate) started: AtomicBool,
    /// Events taken by `try_pop` (pull mode).
    pub(crate) popped: AtomicU64,
    /// Set when the shutdown deadline passed: workers stop at the next event.
    pub(crate) stop: AtomicBool,
    /// Events claimed in a batch and left unhandled because the shutdown
    /// deadline passed (part of the report's `left`).
    pub(crate) left_in_hand: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) panics: AtomicU64,
    /// Per event name; touched only when a handler fails.
    pub(crate) failures: Mutex<BTreeMap<String, NameFailures>>,
    pub(crate) live_workers: AtomicUsize,
    /// Notified when a worker exits.
    pub(crate) exited: Sleepers,
    pub(crate) subscribers: Mutex<Vec<Weak<SubscriberState>>>,
    /// Held shared by a drain of a shared ring (`drain.rs`) while it claims
    /// a batch there and hands it over, and exclusively while the queue
    /// closes: so no event a drain claimed is refused as closed.
    pub(crate) intake: Arc<RwLock<()>>,
    pub(crate) next_subscriber: AtomicU64,
    /// `flush_async` and `shutdown_async` wait here; woken by
    /// [`progressed`](Self::progressed).
    #[cfg(feature = "async")]
    pub(crate) progress: super::waiter::Waiters,
}

impl Shared {
    pub(crate) fn record_failures(&self, name: &str, errors: u64, panics: u64) {
        self.errors.fetch_add(errors, Relaxed);
        self.panics.fetch_add(panics, Relaxed);
        let mut map = lock(&self.failures);
        // Names can come from clients (`emit_json`): past the bound, new
        // names share one entry, so the map (and the metrics) stay bounded.
        let key = if map.len() < MAX_FAILURE_NAMES || map.contains_key(name) {
            name
        } else {
            OTHER_FAILURE_NAMES
        };
        let entry = map.entry(key.to_owned()).or_default();
        entry.errors += errors;
        entry.panics += panics;
    }

    /// After a change a flush or a shutdown may wait for (a worker's
    /// `handling` slot, a lane let go, the worker cursor moved by a pop, a
    /// worker's exit, the lifecycle lock released): wakes the tasks in
    /// `flush_async` and `shutdown_async`. One `SeqCst` fence and one
    /// relaxed load when none awaits; nothing without the `async` feature.
    #[inline]
    pub(crate) fn progressed(&self) {
        #[cfg(feature = "async")]
        {
            // Pairs with the fence in `Waiters::poll_with`: either the
            // awaiting task registered before and is woken here, or its
            // re-check sees this change.
            crate::sync::fence(SeqCst);
            self.progress.wake_all();
        }
    }

    /// Closes the lanes and the main ring: emits fail with
    /// [`Error::Closed`](crate::Error::Closed) from now on. Waits for a
    /// drain handing over a batch (microseconds: it never blocks inside).
    pub(crate) fn close_rings(&self) {
        let _intake = self.intake.write().unwrap_or_else(|e| e.into_inner());
        self.lanes.close();
        self.ring.close();
    }

    pub(crate) fn handled(&self) -> u64 {
        self.slots.iter().map(|s| s.handled.load(Acquire)).sum()
    }
}

/// Distinct event names [`QueueStats::failures_by_name`](super::QueueStats::failures_by_name) counts on their
/// own; failures of further names are counted under [`OTHER_FAILURE_NAMES`].
pub const MAX_FAILURE_NAMES: usize = 1024;

/// The [`QueueStats::failures_by_name`](super::QueueStats::failures_by_name) entry for names past
/// [`MAX_FAILURE_NAMES`] (spelled like the `<raw>` and `<malformed>` entries;
/// an event really named `<other>` would share it).
pub const OTHER_FAILURE_NAMES: &str = "<other>";
