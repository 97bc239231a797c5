//! `EventQueue.forward_to_redis`: the core's Redis Streams forwarder
//! (`evqueue::forward::redis`), the same Rust code the Rust API uses.

use crate::args;
use crate::errors::EvqueueError;
use crate::gil::wait_interruptibly;
use crate::process::{check_same_process, fork_generation};
use evqueue::forward::redis::{RedisConfig, RedisForwarder as CoreForwarder};
use evqueue::forward::ForwardError;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::Arc;
use std::time::Duration;

/// Attaches a forwarder to `queue` (a catch-all handler); see
/// `EventQueue.forward_to_redis`.
pub(crate) fn attach(
    queue: &evqueue::EventQueue,
    url: &str,
    stream: &str,
    batch: usize,
    maxlen: Option<u64>,
) -> PyResult<RedisForwarder> {
    let mut config = RedisConfig::new(url, stream).batch(batch);
    if let Some(maxlen) = maxlen {
        config = config.maxlen(maxlen);
    }
    match CoreForwarder::attach(queue, config) {
        Ok(inner) => Ok(RedisForwarder {
            inner: Arc::new(inner),
            generation: fork_generation(),
        }),
        Err(e @ ForwardError::Config(_)) => Err(PyValueError::new_err(e.to_string())),
        Err(e) => Err(EvqueueError::new_err(e.to_string())),
    }
}

/// Forwards every event of a queue to a Redis stream with `XADD` in
/// pipelined batches, retrying with backoff and a circuit breaker when the
/// server is away, and losing nothing it took (up to a buffer of 65536
/// events; beyond that events are refused and counted as `dropped`).
/// Made by `EventQueue.forward_to_redis`.
///
/// Close the queue first (its handlers have then run), then the forwarder
/// (the stream then has everything).
#[pyclass(module = "evqueue", frozen)]
pub(crate) struct RedisForwarder {
    inner: Arc<CoreForwarder>,
    /// The fork generation it was made in: its writer thread is there.
    generation: u64,
}

impl Drop for RedisForwarder {
    fn drop(&mut self) {
        if self.generation != fork_generation() {
            // Inherited through `os.fork()`: its writer thread is in the
            // parent, and closing it here would wait for nothing. Leak it.
            std::mem::forget(self.inner.clone());
        }
    }
}

#[pymethods]
impl RedisForwarder {
    /// The counters: accepted, dropped, written, failed, abandoned, pending,
    /// high_water, batches, connects (a dict of str to int).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let dict = PyDict::new(py);
        for (key, value) in [
            ("accepted", s.accepted),
            ("dropped", s.dropped),
            ("written", s.written),
            ("failed", s.failed),
            ("abandoned", s.abandoned),
            ("pending", s.pending),
            ("high_water", s.high_water),
            ("batches", s.batches),
            ("connects", s.connects),
        ] {
            dict.set_item(key, value)?;
        }
        Ok(dict)
    }

    /// Waits until every event taken so far is in the stream, for at most
    /// `timeout` seconds (None: no limit). True when done, False on
    /// timeout. Releases the GIL while it waits; Ctrl-C interrupts it.
    #[pyo3(signature = (timeout = None))]
    fn flush(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        check_same_process(self.generation, "forwarder")?;
        let timeout = args::timeout(timeout)?.unwrap_or(Duration::MAX);
        let inner = self.inner.clone();
        match wait_interruptibly(py, "evqueue-redis-flush", move || inner.flush(timeout))? {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.downcast_ref(), Some(ForwardError::Timeout { .. })) => Ok(false),
            Err(e) => Err(EvqueueError::new_err(e.to_string())),
        }
    }

    /// Writes what is buffered (retrying for at most `timeout` seconds; None:
    /// no limit), then stops. Raises `EvqueueError` naming how many events
    /// were given up when the time ran out. Releases the GIL while it waits;
    /// Ctrl-C interrupts the wait (the close goes on in the background).
    #[pyo3(signature = (timeout = None))]
    fn close(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        check_same_process(self.generation, "forwarder")?;
        let timeout = args::timeout(timeout)?.unwrap_or(Duration::MAX);
        let inner = self.inner.clone();
        wait_interruptibly(py, "evqueue-redis-close", move || inner.close(timeout))?
            .map_err(|e| EvqueueError::new_err(e.to_string()))
    }

    fn __repr__(&self) -> String {
        let s = self.inner.stats();
        format!(
            "<RedisForwarder written={} pending={} dropped={}>",
            s.written, s.pending, s.dropped
        )
    }
}
