//! `evqueue.Stats` and `evqueue.ShutdownReport`: read-only snapshots.

use pyo3::prelude::*;

/// A snapshot of a queue's counters, from `EventQueue.stats()`.
///
/// Once the queue is quiet, `pushed == handled + popped + lost + depth`,
/// where `lost == overwritten + rejected` (`pushed` includes rejected emits).
#[pyclass(module = "evqueue", frozen)]
pub(crate) struct Stats(pub(crate) evqueue::QueueStats);

#[pymethods]
impl Stats {
    /// Events pushed while the queue was open (accepted or rejected).
    #[getter]
    fn pushed(&self) -> u64 {
        self.0.ring.pushed
    }
    /// Events claimed by the workers.
    #[getter]
    fn delivered(&self) -> u64 {
        self.0.ring.delivered
    }
    /// Events whose handlers have all returned (including failed ones).
    #[getter]
    fn handled(&self) -> u64 {
        self.0.handled
    }
    /// Events taken out by pull-mode pops.
    #[getter]
    fn popped(&self) -> u64 {
        self.0.popped
    }
    /// Events lost because newer ones overwrote them before a worker claimed them.
    #[getter]
    fn overwritten(&self) -> u64 {
        self.0.ring.overwritten
    }
    /// Emits refused with QueueFull (overflow="reject").
    #[getter]
    fn rejected(&self) -> u64 {
        self.0.ring.rejected
    }
    /// Exceptions raised by handlers.
    #[getter]
    fn errors(&self) -> u64 {
        self.0.handler_errors
    }
    /// Rust panics caught in handlers (should stay 0).
    #[getter]
    fn panics(&self) -> u64 {
        self.0.panics
    }
    /// Events waiting for a worker.
    #[getter]
    fn depth(&self) -> u64 {
        self.0.ring.depth
    }
    /// Highest depth sampled.
    #[getter]
    fn high_water(&self) -> u64 {
        self.0.ring.high_water
    }
    /// Slots in the ring.
    #[getter]
    fn capacity(&self) -> usize {
        self.0.capacity
    }
    /// Worker threads.
    #[getter]
    fn workers(&self) -> usize {
        self.0.workers
    }
    /// Workers claiming or handling events at the time of the snapshot.
    #[getter]
    fn busy_workers(&self) -> usize {
        self.0.busy_workers
    }
    /// Handler failures by event name: `{name: (errors, panics)}`.
    #[getter]
    fn failures_by_name(&self) -> std::collections::BTreeMap<String, (u64, u64)> {
        self.0
            .failures_by_name
            .iter()
            .map(|(name, f)| (name.clone(), (f.errors, f.panics)))
            .collect()
    }
    /// Live subscribers: `(id, lag, missed)` each.
    #[getter]
    fn subscribers(&self) -> Vec<(u64, u64, u64)> {
        self.0
            .subscribers
            .iter()
            .map(|s| (s.id, s.lag, s.missed))
            .collect()
    }
    /// Events lost: `overwritten + rejected`.
    #[getter]
    fn lost(&self) -> u64 {
        self.0.lost()
    }
    /// The snapshot in the Prometheus text exposition format.
    fn to_prometheus(&self) -> String {
        self.0.to_prometheus()
    }
    fn __repr__(&self) -> String {
        let s = &self.0;
        format!(
            "Stats(pushed={}, delivered={}, handled={}, popped={}, overwritten={}, rejected={}, lost={}, errors={}, panics={}, depth={}, high_water={})",
            s.ring.pushed, s.ring.delivered, s.handled, s.popped, s.ring.overwritten,
            s.ring.rejected, s.lost(), s.handler_errors, s.panics, s.ring.depth, s.ring.high_water
        )
    }
}

/// What `EventQueue.close()` reports. Once the workers are joined,
/// `pushed == handled + popped + lost + left`, where
/// `lost == overwritten + rejected`.
#[pyclass(module = "evqueue", frozen)]
pub(crate) struct ShutdownReport(pub(crate) evqueue::ShutdownReport);

#[pymethods]
impl ShutdownReport {
    /// Events pushed while the queue was open (accepted or rejected).
    #[getter]
    fn pushed(&self) -> u64 {
        self.0.pushed
    }
    /// Events the workers dispatched to their handlers (failed ones included).
    #[getter]
    fn handled(&self) -> u64 {
        self.0.handled
    }
    /// Events taken out by pull-mode pops.
    #[getter]
    fn popped(&self) -> u64 {
        self.0.popped
    }
    /// Events lost because newer ones overwrote them.
    #[getter]
    fn overwritten(&self) -> u64 {
        self.0.overwritten
    }
    /// Emits refused with QueueFull.
    #[getter]
    fn rejected(&self) -> u64 {
        self.0.rejected
    }
    /// Exceptions raised by handlers.
    #[getter]
    fn errors(&self) -> u64 {
        self.0.errors
    }
    /// Rust panics caught in handlers (should stay 0).
    #[getter]
    fn panics(&self) -> u64 {
        self.0.panics
    }
    /// Events still unhandled when the deadline passed.
    #[getter]
    fn left(&self) -> u64 {
        self.0.left
    }
    /// Whether the deadline passed before the workers drained the queue.
    #[getter]
    fn timed_out(&self) -> bool {
        self.0.timed_out
    }
    /// Events lost: `overwritten + rejected`.
    #[getter]
    fn lost(&self) -> u64 {
        self.0.lost()
    }
    fn __repr__(&self) -> String {
        let r = &self.0;
        format!(
            "ShutdownReport(pushed={}, handled={}, popped={}, overwritten={}, rejected={}, lost={}, errors={}, panics={}, left={}, timed_out={})",
            r.pushed, r.handled, r.popped, r.overwritten, r.rejected, r.lost(), r.errors, r.panics, r.left,
            if r.timed_out { "True" } else { "False" }
        )
    }
}
