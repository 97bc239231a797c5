//! `evqueue.Subscriber`: a broadcast reader with short-poll, long-poll,
//! iteration and `async for`.
//!
//! The core subscriber sits behind a mutex that is only ever taken with the
//! GIL released (or with `try_lock`), so a thread blocked in `recv` never
//! holds the lock while it waits for the GIL, and nobody waits for the lock
//! while holding the GIL.

use crate::errors::{py_err, QueueClosed};
use crate::event::Event;
use crate::gil::SIGNAL_CHECK;
use crate::process::{check_same_process, fork_generation};
use evqueue::blocking::{deadline, lock, time_left};
use evqueue::{EventSubscriber, OwnedEvent, RecvError, RecvTimeoutError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

struct State {
    inner: EventSubscriber,
    /// An event received by `_wait` (for `async for`) and not handed out
    /// yet: a cancelled wait loses nothing.
    pending: Option<OwnedEvent>,
}

/// What one receive attempt found.
enum Got {
    Event(OwnedEvent),
    Nothing,
    Closed,
}

impl State {
    fn try_recv(&mut self, lagged: &AtomicU64) -> Got {
        if let Some(event) = self.pending.take() {
            return Got::Event(event);
        }
        loop {
            let result = self.inner.try_recv();
            lagged.store(self.inner.missed(), Relaxed);
            match result {
                Ok(event) => return Got::Event(event),
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Empty) => return Got::Nothing,
                Err(_) => return Got::Closed,
            }
        }
    }

    fn recv_timeout(&mut self, timeout: Duration, lagged: &AtomicU64) -> Got {
        if let Some(event) = self.pending.take() {
            return Got::Event(event);
        }
        let deadline = deadline(timeout);
        loop {
            let left = time_left(deadline);
            let result = self.inner.recv_timeout(left);
            lagged.store(self.inner.missed(), Relaxed);
            match result {
                Ok(event) => return Got::Event(event),
                Err(RecvTimeoutError::Lagged(_)) => continue,
                Err(RecvTimeoutError::Timeout) => return Got::Nothing,
                Err(_) => return Got::Closed,
            }
        }
    }
}

/// A broadcast subscriber, from `EventQueue.subscribe()`: it sees every
/// event, independently of the handlers and of other subscribers. The queue
/// never waits for it: when it falls a whole ring behind, the events it
/// missed are counted in `lagged` and it goes on with the oldest one kept.
///
/// `try_recv()` returns an `Event` or None; `recv(timeout)` waits with the
/// GIL released; `for event in sub` and `async for event in sub` run until
/// the queue is closed and everything was read.
#[pyclass(module = "evqueue", frozen)]
pub(crate) struct Subscriber {
    /// An `Arc` only so that a subscriber inherited through `os.fork()` can
    /// be leaked (see `Drop`).
    state: Arc<Mutex<State>>,
    lagged: AtomicU64,
    id: u64,
    /// The fork generation its queue was made in.
    generation: u64,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if self.generation != fork_generation() {
            // Inherited through `os.fork()`: dropping the core subscriber
            // takes its queue's subscriber lock, which a thread of the parent
            // may have held at the fork. Leak it.
            std::mem::forget(self.state.clone());
        }
    }
}

fn closed() -> PyErr {
    py_err(RecvError::Closed)
}

impl Subscriber {
    /// A subscriber of a queue made in fork generation `generation`.
    pub(crate) fn new(inner: EventSubscriber, generation: u64) -> Self {
        Subscriber {
            id: inner.id(),
            state: Arc::new(Mutex::new(State {
                inner,
                pending: None,
            })),
            lagged: AtomicU64::new(0),
            generation,
        }
    }

    fn recv_inner(&self, py: Python<'_>, timeout: Option<Duration>) -> PyResult<Option<Event>> {
        check_same_process(self.generation, "subscriber")?;
        // No timeout, or one too long to add: no deadline.
        let deadline = timeout.and_then(deadline);
        loop {
            let slice = time_left(deadline).min(SIGNAL_CHECK);
            let got = py.detach(|| lock(&self.state).recv_timeout(slice, &self.lagged));
            match got {
                Got::Event(event) => return Ok(Some(event.into())),
                Got::Closed => return Err(closed()),
                Got::Nothing => {}
            }
            if time_left(deadline).is_zero() {
                return Ok(None);
            }
            py.check_signals()?;
        }
    }
}

static ANEXT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

#[pymethods]
impl Subscriber {
    /// The next event if one is waiting, else None (never blocks: also None
    /// while another thread is inside `recv` on this subscriber). Raises
    /// `QueueClosed` once the queue is closed and everything was read.
    fn try_recv(&self) -> PyResult<Option<Event>> {
        check_same_process(self.generation, "subscriber")?;
        let mut state = match self.state.try_lock() {
            Ok(state) => state,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(None),
        };
        match state.try_recv(&self.lagged) {
            Got::Event(event) => Ok(Some(event.into())),
            Got::Nothing => Ok(None),
            Got::Closed => Err(closed()),
        }
    }

    /// Waits for the next event, at most `timeout` seconds (None: no limit),
    /// with the GIL released; returns None on timeout. Raises `QueueClosed`
    /// once the queue is closed and everything was read.
    #[pyo3(signature = (timeout = None))]
    fn recv(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Event>> {
        let timeout = crate::args::timeout(timeout)?;
        self.recv_inner(py, timeout)
    }

    /// For `async for`: waits up to `timeout` seconds (GIL released) until an
    /// event is ready, keeping it for the next `try_recv`. True when an event
    /// is ready or the queue is closed.
    fn _wait(&self, py: Python<'_>, timeout: f64) -> bool {
        let timeout = Duration::try_from_secs_f64(timeout).unwrap_or(SIGNAL_CHECK);
        py.detach(|| {
            let mut state = lock(&self.state);
            match state.recv_timeout(timeout, &self.lagged) {
                Got::Event(event) => {
                    state.pending = Some(event);
                    true
                }
                Got::Closed => true,
                Got::Nothing => false,
            }
        })
    }

    /// Events this subscriber missed so far because the queue overwrote
    /// them before it read them.
    #[getter]
    fn lagged(&self) -> u64 {
        self.lagged.load(Relaxed)
    }

    /// This subscriber's id, as in `Stats.subscribers`.
    #[getter]
    fn id(&self) -> u64 {
        self.id
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Event>> {
        match self.recv_inner(py, None) {
            Err(e) if e.is_instance_of::<QueueClosed>(py) => Ok(None),
            other => other,
        }
    }

    fn __aiter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __anext__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let anext = ANEXT.get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("evqueue._aio")?.getattr("anext")?.unbind())
        })?;
        anext.bind(py).call1((slf,))
    }

    fn __repr__(&self) -> String {
        format!(
            "Subscriber(id={}, lagged={})",
            self.id,
            self.lagged.load(Relaxed)
        )
    }
}
