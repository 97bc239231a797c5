//! `evqueue.Event`: an event as Python sees it (handlers, subscribers).

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// An event: what a handler or a subscriber receives.
///
/// `name` (str), `properties` (a new dict of str to str on every access),
/// `timestamp` (int, ns since the Unix epoch; an event emitted with timestamp
/// None or 0 was stamped at emit, with `evqueue.now()`'s clock), `external` (True when a client
/// sent it) and `seq` (the sequence number the queue assigned). Events are
/// immutable; build one yourself to test a handler.
#[pyclass(module = "evqueue", frozen, eq, hash)]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Event {
    pub(crate) name: String,
    pub(crate) props: Vec<(String, String)>,
    pub(crate) timestamp: u64,
    pub(crate) external: bool,
    pub(crate) seq: u64,
}

impl From<&evqueue::EventView<'_>> for Event {
    fn from(view: &evqueue::EventView<'_>) -> Self {
        Event {
            name: view.name.to_owned(),
            props: view
                .properties()
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            timestamp: view.timestamp,
            external: view.external,
            seq: view.seq,
        }
    }
}

impl From<evqueue::OwnedEvent> for Event {
    fn from(e: evqueue::OwnedEvent) -> Self {
        Event {
            name: e.name,
            props: e.properties,
            timestamp: e.timestamp,
            external: e.external,
            seq: e.seq,
        }
    }
}

#[pymethods]
impl Event {
    /// Builds an event by hand (for tests of your handlers); the queue builds
    /// the ones it delivers.
    #[new]
    #[pyo3(signature = (name, properties = None, timestamp = 0, external = false, seq = 0))]
    fn new(
        name: String,
        properties: Option<&Bound<'_, PyDict>>,
        timestamp: u64,
        external: bool,
        seq: u64,
    ) -> PyResult<Self> {
        let props = match properties {
            None => Vec::new(),
            Some(d) => crate::args::owned_props(d)?,
        };
        Ok(Event {
            name,
            props,
            timestamp,
            external,
            seq,
        })
    }

    /// The event name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The properties, as a new dict of str to str (changing it changes
    /// nothing in the event).
    #[getter]
    fn properties<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (k, v) in &self.props {
            dict.set_item(k, v)?;
        }
        Ok(dict)
    }

    /// Nanoseconds since the Unix epoch.
    #[getter]
    fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// True when a client sent the event, False when the server did.
    #[getter]
    fn external(&self) -> bool {
        self.external
    }

    /// The sequence number the queue assigned (0 for an event built by hand).
    #[getter]
    fn seq(&self) -> u64 {
        self.seq
    }

    fn __repr__(&self) -> String {
        let props: Vec<String> = self
            .props
            .iter()
            .map(|(k, v)| format!("{k:?}: {v:?}"))
            .collect();
        format!(
            "Event(name={:?}, properties={{{}}}, timestamp={}, external={}, seq={})",
            self.name,
            props.join(", "),
            self.timestamp,
            if self.external { "True" } else { "False" },
            self.seq
        )
    }
}

/// The current time in nanoseconds since the Unix epoch: the clock that
/// stamps an event emitted with timestamp None or 0.
#[pyfunction]
pub(crate) fn now() -> u64 {
    evqueue::now_nanos()
}
