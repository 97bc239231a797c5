//! Passing events by name or predicate.

use super::{Sink, SinkError};
use crate::OwnedEvent;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

type Predicate = Box<dyn Fn(&OwnedEvent) -> bool + Send + Sync + 'static>;

/// Counters of a [`Filter`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterStats {
    /// Events passed on.
    pub passed: u64,
    /// Events filtered out.
    pub filtered: u64,
}

/// Writes to the inner sink only the events a predicate accepts (a batch
/// with none left is not written at all).
///
/// ```
/// use evqueue::forward::{Filter, FnSink, Sink};
/// use evqueue::OwnedEvent;
/// let only_external = Filter::new(FnSink::new(|b: &[OwnedEvent]| { assert!(b.iter().all(|e| e.external)); Ok(()) }),
///                                 |e: &OwnedEvent| e.external);
/// only_external.write(&[OwnedEvent::default(), OwnedEvent { external: true, ..Default::default() }])?;
/// assert_eq!((only_external.stats().passed, only_external.stats().filtered), (1, 1));
/// # Ok::<(), evqueue::forward::SinkError>(())
/// ```
pub struct Filter<S> {
    inner: S,
    predicate: Predicate,
    passed: AtomicU64,
    filtered: AtomicU64,
}

impl<S: Sink> Filter<S> {
    /// Passes the events for which `predicate` returns true.
    pub fn new<P>(inner: S, predicate: P) -> Self
    where
        P: Fn(&OwnedEvent) -> bool + Send + Sync + 'static,
    {
        Filter {
            inner,
            predicate: Box::new(predicate),
            passed: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
        }
    }

    /// Passes the events with one of these names.
    pub fn names(inner: S, names: &[&str]) -> Self {
        let names: HashSet<String> = names.iter().map(|n| (*n).to_owned()).collect();
        Self::new(inner, move |e| names.contains(&e.name))
    }

    /// The wrapped sink.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> FilterStats {
        FilterStats {
            passed: self.passed.load(Relaxed),
            filtered: self.filtered.load(Relaxed),
        }
    }
}

impl<S: Sink> Sink for Filter<S> {
    fn write(&self, batch: &[OwnedEvent]) -> Result<(), SinkError> {
        let n = batch.iter().filter(|e| (self.predicate)(e)).count();
        self.filtered.fetch_add((batch.len() - n) as u64, Relaxed);
        self.passed.fetch_add(n as u64, Relaxed);
        if n == batch.len() {
            return self.inner.write(batch);
        }
        if n == 0 {
            return Ok(());
        }
        let kept: Vec<OwnedEvent> = batch
            .iter()
            .filter(|e| (self.predicate)(e))
            .cloned()
            .collect();
        self.inner.write(&kept)
    }
    fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        self.inner.flush(timeout)
    }
    fn close(&self, timeout: Duration) -> Result<(), SinkError> {
        self.inner.close(timeout)
    }
}
