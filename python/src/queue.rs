//! `evqueue.EventQueue`: the core queue with Python handlers.
//!
//! Handlers run on the core's worker threads. Each worker claims a batch of
//! events (`batch`, default 64) and takes the GIL once for the whole batch
//! (`around_batch`); the handlers inside re-enter the GIL for free. Every
//! wait (`flush`, `close`, the drop of a queue) runs with the GIL released,
//! or the workers could never finish.
//!
//! The class is here; how workers hold the GIL and waits take Ctrl-C is in
//! `gil.rs`, how Python callables become core handlers in `callbacks.rs`,
//! and `os.fork()` and the interpreter's exit in `process.rs`.

use crate::args::{self, count_arg, key_arg, parse_lag, parse_overflow, Props};
use crate::callbacks::{error_hook_fn, handler_fn, Callbacks, ErrorSlot};
use crate::errors::{py_err, EvqueueError};
use crate::gil::{wait_interruptibly, with_gil_for_batch, SIGNAL_CHECK};
use crate::process::{check_same_process, fork_generation, register_live, DROP_DEADLINE, EXITING};
use crate::stats::{ShutdownReport, Stats};
use crate::subscriber::Subscriber;
use evqueue::blocking::lock;
use evqueue::{DispatchError, Start};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCFunction, PyDict, PyString, PyTuple};
use pyo3::{PyTraverseError, PyVisit};
use std::sync::atomic::Ordering::Acquire;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An event queue with a pool of worker threads running Python handlers.
///
/// `EventQueue(capacity=65536, slot_size=256, workers=8, overflow="overwrite")`
/// allocates the ring; handlers registered with `on`, `on_any`,
/// `on_session_start` and `on_session_end` run once `start()` is called
/// (events emitted before are kept, up to `capacity`). `emit` never blocks:
/// with `overflow="overwrite"` the oldest unhandled events are overwritten
/// and counted, with `"reject"` the emit raises `QueueFull`. `close()` drains
/// the queue and reports; `with EventQueue() as q:` starts the queue and
/// closes it at the end of the block.
#[pyclass(module = "evqueue", frozen, weakref)]
pub(crate) struct EventQueue {
    inner: Arc<evqueue::EventQueue>,
    callbacks: Mutex<Callbacks>,
    error_hook: ErrorSlot,
    /// The fork generation it was made in (see [`check_same_process`]).
    generation: u64,
}

impl EventQueue {
    /// Refuses a queue inherited through `os.fork()`.
    fn check_process(&self) -> PyResult<()> {
        check_same_process(self.generation, "queue")
    }

    fn register(&self, name: Option<&str>, handler: &Bound<'_, PyAny>) -> PyResult<()> {
        if !handler.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "a handler must be callable, not {}",
                args::type_name(handler)
            )));
        }
        let py = handler.py();
        let inspect = py.import("inspect")?;
        if inspect
            .call_method1("iscoroutinefunction", (handler,))?
            .is_truthy()?
        {
            return Err(PyTypeError::new_err(
                "handlers run on worker threads and must be plain functions, not async def \
                 (use a subscriber with `async for` for asyncio code)",
            ));
        }
        // One Python reference, shared by the core's handler and the mirror,
        // so that `__traverse__` reports exactly the references we hold.
        let callable = Arc::new(handler.clone().unbind());
        let run = handler_fn(callable.clone());
        match name {
            Some(name) => {
                self.inner.on(name, run).map_err(py_err)?;
                lock(&self.callbacks)
                    .named
                    .push((name.to_owned(), callable));
            }
            None => {
                self.inner.on_any(run);
                lock(&self.callbacks).any.push(callable);
            }
        }
        Ok(())
    }

    /// Builds the core event and emits it.
    fn emit_one(
        &self,
        name: &Bound<'_, PyAny>,
        props: Option<&Bound<'_, PyAny>>,
        timestamp: u64,
        external: bool,
        key: Option<&[u8]>,
    ) -> PyResult<u64> {
        self.check_process()?;
        let name = args::str_arg(name, "the event name")?.to_str()?;
        let event = evqueue::Event::new(name)
            .timestamp(timestamp)
            .external(external);
        let emit = |event: &evqueue::Event<'_>| match key {
            None => self.inner.emit(event),
            Some(key) => self.inner.emit_keyed(event, key),
        };
        match props {
            Some(p) if !p.is_none() => {
                let props = Props::from_arg(Some(p))?;
                let pairs = props.pairs()?;
                emit(&event.properties(&pairs)).map_err(py_err)
            }
            _ => emit(&event).map_err(py_err),
        }
    }
}

/// The same exception type with `prefix` before its message.
fn context(py: Python<'_>, e: PyErr, prefix: &str) -> PyErr {
    PyErr::from_type(e.get_type(py), format!("{prefix}{}", e.value(py)))
}

/// The same exception type with `suffix` after its message.
fn context_after(py: Python<'_>, e: PyErr, suffix: &str) -> PyErr {
    PyErr::from_type(e.get_type(py), format!("{}{suffix}", e.value(py)))
}

#[pymethods]
impl EventQueue {
    /// Allocates the queue. Its workers start with `start()` or on entering
    /// a `with` block, whichever comes first (the other then does nothing);
    /// until then events wait in the ring (and may be overwritten). Handlers
    /// may be registered before or after.
    ///
    /// `capacity`: slots, a power of two. `slot_size`: bytes per slot, the
    /// largest encoded event (a multiple of 8). `workers`: worker threads.
    /// `overflow`: `"overwrite"` (drop the oldest, never fail) or `"reject"`
    /// (raise `QueueFull`). `batch`: events a worker claims and handles per
    /// GIL acquisition (1 to 1024).
    #[new]
    /// `lanes`: rings for keyed events (`emit(..., key=...)`), a power of
    /// two; 0 picks the smallest at least 4 x `workers`. `worker_nice`: how
    /// many nice levels below the thread that starts them the workers run
    /// (Linux), 0 to 39; default 5. `lag`: where workers lapped by the
    /// producers continue, `"headroom"` (an eighth of the ring past the
    /// oldest event: a slow reader gets runs of events), `"oldest"` or
    /// `"newest"`; what they pass over is counted as overwritten.
    #[pyo3(
        signature = (capacity = None, slot_size = None, workers = None, overflow = None, *, batch = None, lanes = None, worker_nice = None, lag = None),
        text_signature = "(capacity=65536, slot_size=256, workers=8, overflow='overwrite', *, batch=64, lanes=0, worker_nice=5, lag='headroom')"
    )]
    // One argument per keyword of the Python constructor.
    #[allow(clippy::too_many_arguments)]
    fn new(
        capacity: Option<&Bound<'_, PyAny>>,
        slot_size: Option<&Bound<'_, PyAny>>,
        workers: Option<&Bound<'_, PyAny>>,
        overflow: Option<&Bound<'_, PyAny>>,
        batch: Option<&Bound<'_, PyAny>>,
        lanes: Option<&Bound<'_, PyAny>>,
        worker_nice: Option<&Bound<'_, PyAny>>,
        lag: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        if EXITING.load(Acquire) {
            // `_close_all` has run: nothing would close this queue before the
            // interpreter finalizes, and dropping it then would wait forever
            // on workers parked for the GIL.
            return Err(EvqueueError::new_err(
                "the interpreter is exiting (evqueue's atexit hook has run): \
                 a new queue cannot be made now",
            ));
        }
        let mut builder = evqueue::EventQueue::builder()
            .drop_deadline(DROP_DEADLINE)
            .thread_name("evqueue-py")
            .claim_batch(64)
            .around_batch(with_gil_for_batch);
        if let Some(c) = capacity {
            builder = builder.capacity(count_arg(c, "capacity")?);
        }
        if let Some(s) = slot_size {
            builder = builder.slot_bytes(count_arg(s, "slot_size")?);
        }
        if let Some(w) = workers {
            builder = builder.workers(count_arg(w, "workers")?);
        }
        if let Some(o) = overflow {
            builder = builder.overflow(parse_overflow(o)?);
        }
        if let Some(b) = batch {
            builder = builder.claim_batch(count_arg(b, "batch")?);
        }
        if let Some(l) = lanes {
            builder = builder.lanes(count_arg(l, "lanes")?);
        }
        if let Some(n) = worker_nice {
            // Out of u8's range is out of range: the builder refuses it.
            let levels = u8::try_from(count_arg(n, "worker_nice")?).unwrap_or(u8::MAX);
            builder = builder.worker_nice(levels);
        }
        if let Some(l) = lag {
            builder = builder.lag(parse_lag(l)?);
        }
        let inner = Arc::new(builder.build_paused().map_err(py_err)?);
        let error_hook = ErrorSlot::default();
        inner.on_error(error_hook_fn(error_hook.clone()));
        let generation = fork_generation();
        register_live(generation, &inner);
        Ok(EventQueue {
            inner,
            callbacks: Mutex::default(),
            error_hook,
            generation,
        })
    }

    /// Starts the worker threads; does nothing if they already run (so
    /// `start()` inside `with EventQueue() as q:` is harmless). Raises
    /// `QueueClosed` after `close()`.
    fn start(&self) -> PyResult<()> {
        self.check_process()?;
        match self.inner.start() {
            Ok(()) | Err(DispatchError::AlreadyStarted) => Ok(()),
            Err(e) => Err(py_err(e)),
        }
    }

    /// Registers `handler(event)` for events named `name`; handlers of one
    /// name run in registration order, before the `on_any` ones. Without
    /// `handler`, returns a decorator: `@q.on("match_end")`. Returns the
    /// handler. Raises `InvalidEvent` for an empty or too long name.
    #[pyo3(signature = (name, handler = None))]
    fn on<'py>(
        slf: &Bound<'py, Self>,
        name: &Bound<'py, PyAny>,
        handler: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let name = args::str_arg(name, "the event name")?.to_str()?.to_owned();
        evqueue::check_name(&name).map_err(py_err)?;
        if let Some(handler) = handler {
            slf.get().register(Some(&name), handler)?;
            return Ok(handler.clone());
        }
        let queue = slf.clone().unbind();
        let decorator = PyCFunction::new_closure(
            slf.py(),
            None,
            Some(c"Registers the decorated function as a handler and returns it."),
            move |a: &Bound<'_, PyTuple>, _kw: Option<&Bound<'_, PyDict>>| -> PyResult<Py<PyAny>> {
                let handler = a.get_item(0).map_err(|_| {
                    PyTypeError::new_err("the decorator takes the handler function")
                })?;
                if a.len() != 1 {
                    return Err(PyTypeError::new_err("the decorator takes one argument"));
                }
                queue.get().register(Some(&name), &handler)?;
                Ok(handler.unbind())
            },
        )?;
        Ok(decorator.into_any())
    }

    /// Registers `handler(event)` for every event, run after the handlers of
    /// the event's name. Returns the handler (usable as a decorator).
    fn on_any<'py>(&self, handler: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.register(None, handler)?;
        Ok(handler.clone())
    }

    /// Registers `handler(event)` for `session_start` events. Returns the
    /// handler (usable as a decorator).
    fn on_session_start<'py>(&self, handler: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.register(Some(evqueue::SESSION_START), handler)?;
        Ok(handler.clone())
    }

    /// Registers `handler(event)` for `session_end` events (the reason is
    /// `event.properties["reason"]`). Returns the handler.
    fn on_session_end<'py>(&self, handler: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.register(Some(evqueue::SESSION_END), handler)?;
        Ok(handler.clone())
    }

    /// Sets `hook(event, exception)`, called on the worker thread for every
    /// exception a handler raises (after it is counted in `stats().errors`);
    /// replaces the previous hook. Without a hook, exceptions are reported
    /// through `sys.unraisablehook`. An exception in the hook itself is
    /// reported there too. Returns the hook.
    fn on_error<'py>(&self, hook: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if !hook.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "on_error takes a callable, not {}",
                args::type_name(hook)
            )));
        }
        let old = lock(&self.error_hook).replace(hook.clone().unbind());
        drop(old); // outside the lock: dropping may run Python code
        Ok(hook.clone())
    }

    /// Removes every handler registered for `name` (not the `on_any` ones)
    /// and returns how many there were.
    fn off(&self, name: &Bound<'_, PyAny>) -> PyResult<usize> {
        let name = args::str_arg(name, "the event name")?.to_str()?;
        let removed = self.inner.remove_handlers(name);
        let gone: Vec<(String, Arc<Py<PyAny>>)> = {
            let mut callbacks = lock(&self.callbacks);
            let (gone, kept) = std::mem::take(&mut callbacks.named)
                .into_iter()
                .partition(|(n, _)| n == name);
            callbacks.named = kept;
            gone
        };
        drop(gone);
        Ok(removed)
    }

    /// Emits an event and returns its sequence number; never blocks.
    ///
    /// `props`: a dict of str to str, or None. `timestamp`: ns since the Unix
    /// epoch; None or 0 means "stamp it at emit" (the clock of
    /// `evqueue.now()`). `external`: True when a client sent it.
    /// `key` (str or bytes, at most 256 bytes): an ordering key; events with
    /// equal keys are handled in the order they were emitted and never by
    /// two handlers at once (a `session_start`/`session_end` with a
    /// `session_id` property is keyed by it without one). Subscribers do not
    /// see keyed events, and a keyed event's number counts within its lane.
    /// Raises `InvalidEvent` (also for a key over 256 bytes),
    /// `EventTooLarge`, `QueueFull` or `QueueClosed` (nothing emitted),
    /// `TypeError` for wrong types.
    #[pyo3(
        signature = (name, props = None, timestamp = None, external = None, *, key = None),
        text_signature = "($self, name, props=None, timestamp=None, external=False, *, key=None)"
    )]
    fn emit(
        &self,
        name: &Bound<'_, PyAny>,
        props: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
        external: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let key = key_arg(key)?;
        let timestamp = args::timestamp_arg(timestamp)?;
        let external = args::external_arg(external, false)?;
        self.emit_one(name, props, timestamp, external, key)
    }

    /// Emits a JSON event, `{"name": str, "properties": {str: str},
    /// "timestamp": "<RFC 3339>"}` (properties and timestamp optional), given
    /// as bytes or str. `external` defaults to True: JSON usually comes from
    /// clients. Returns the sequence number; raises `InvalidEvent` for
    /// malformed JSON, `EventTooLarge` when it does not fit. `key`: an
    /// ordering key chosen by the server (e.g. the session the body arrived
    /// on), as for `emit`.
    #[pyo3(
        signature = (body, external = None, *, key = None),
        text_signature = "($self, body, external=True, *, key=None)"
    )]
    fn emit_json(
        &self,
        body: &Bound<'_, PyAny>,
        external: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        self.check_process()?;
        let key = key_arg(key)?;
        let external = args::external_arg(external, true)?;
        let bytes: &[u8] = if let Ok(b) = body.cast::<PyBytes>() {
            b.as_bytes()
        } else if let Ok(s) = body.cast::<PyString>() {
            s.to_str()?.as_bytes()
        } else {
            return Err(PyTypeError::new_err(format!(
                "emit_json takes bytes or str, not {}",
                args::type_name(body)
            )));
        };
        match key {
            None => self.inner.emit_json(bytes, external),
            Some(key) => self.inner.emit_json_keyed(bytes, external, key),
        }
        .map_err(py_err)
    }

    /// Emits `(name, props)` pairs, or `(name, props, key)` triples (`key`
    /// as for `emit`), in order and returns how many. Every item is checked
    /// first: a bad one raises and emits nothing. `QueueFull` or
    /// `QueueClosed` part way leaves the events before it emitted (the
    /// message says how many).
    fn emit_many(&self, events: &Bound<'_, PyAny>) -> PyResult<usize> {
        self.check_process()?;
        let py = events.py();
        let iter = events.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "emit_many takes an iterable of (name, props) pairs, not {}",
                args::type_name(events)
            ))
        })?;
        let mut items: Vec<(Bound<'_, PyString>, Props<'_>, Option<Bound<'_, PyAny>>)> = Vec::new();
        for (i, item) in iter.enumerate() {
            let item = item?;
            let tuple = item
                .cast::<PyTuple>()
                .ok()
                .filter(|t| t.len() == 2 || t.len() == 3)
                .ok_or_else(|| {
                    PyTypeError::new_err(format!(
                        "emit_many item {i} must be a (name, props) or (name, props, key) tuple, not {}",
                        args::type_name(&item)
                    ))
                })?;
            let name = tuple.get_item(0)?;
            let name = args::str_arg(&name, "the event name")
                .map_err(|e| context(py, e, &format!("emit_many item {i}: ")))?
                .clone();
            let props = Props::from_arg(Some(&tuple.get_item(1)?))
                .map_err(|e| context(py, e, &format!("emit_many item {i}: ")))?;
            let key = if tuple.len() == 3 {
                Some(tuple.get_item(2)?)
            } else {
                None
            };
            items.push((name, props, key));
        }
        let mut events = Vec::with_capacity(items.len());
        for (i, (name, props, key)) in items.iter().enumerate() {
            let key = key_arg(key.as_ref())
                .map_err(|e| context(py, e, &format!("emit_many item {i}: ")))?;
            if let Some(k) = key.filter(|k| k.len() > evqueue::lane::MAX_ORDERING_KEY_LEN) {
                let e = py_err(evqueue::Error::OrderingKeyTooLong {
                    len: k.len(),
                    max: evqueue::lane::MAX_ORDERING_KEY_LEN,
                });
                return Err(context(py, e, &format!("emit_many item {i}: ")));
            }
            events.push((name.to_str()?, props.pairs()?, key));
        }
        // Check every event before the first push: a bad one changes nothing.
        let slot = self.inner.slot_bytes();
        for (i, (name, pairs, _)) in events.iter().enumerate() {
            let event = evqueue::Event::new(name).properties(pairs);
            let size = evqueue::encoded_len(&event)
                .map_err(|e| context(py, py_err(e), &format!("emit_many item {i}: ")))?;
            if size > slot {
                let e = py_err(evqueue::Error::TooLarge { size, max: slot });
                return Err(context(py, e, &format!("emit_many item {i}: ")));
            }
        }
        let total = events.len();
        for (i, (name, pairs, key)) in events.iter().enumerate() {
            let event = evqueue::Event::new(name).properties(pairs);
            let emitted = match key {
                None => self.inner.emit(&event),
                Some(key) => self.inner.emit_keyed(&event, key),
            };
            if let Err(e) = emitted {
                let suffix = format!(" ({i} of {total} events emitted)");
                return Err(context_after(py, py_err(e), &suffix));
            }
        }
        Ok(total)
    }

    /// Emits `session_start` with these properties; returns its sequence number.
    #[pyo3(signature = (props = None))]
    fn emit_session_start(&self, props: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
        self.check_process()?;
        let props = Props::from_arg(props)?;
        let pairs = props.pairs()?;
        self.inner.emit_session_start(&pairs).map_err(py_err)
    }

    /// Emits `session_end` with a `reason` property and these properties;
    /// returns its sequence number.
    #[pyo3(signature = (reason, props = None))]
    fn emit_session_end(
        &self,
        reason: &Bound<'_, PyAny>,
        props: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        self.check_process()?;
        let reason = args::str_arg(reason, "reason")?.to_str()?;
        let props = Props::from_arg(props)?;
        let pairs = props.pairs()?;
        self.inner.emit_session_end(reason, &pairs).map_err(py_err)
    }

    /// Waits until every event emitted before this call is handled or
    /// counted lost, for at most `timeout` seconds (None: no limit). Returns
    /// True when done, False on timeout. Releases the GIL while it waits;
    /// Ctrl-C interrupts it. Raises `QueueClosed` when the queue was closed
    /// with events left, and `EvqueueError` from inside a handler (it would
    /// wait on itself).
    #[pyo3(signature = (timeout = None))]
    fn flush(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        self.check_process()?;
        let total = args::timeout(timeout)?.unwrap_or(Duration::MAX);
        // A first look in this thread: done already, refused from inside a
        // handler (the core knows its workers by thread), or a short wait.
        let first = total.min(SIGNAL_CHECK);
        let result = match py.detach(|| self.inner.flush(first)) {
            Err(DispatchError::Timeout { .. }) if total > first => {
                // A long wait runs the core flush in a helper thread, so that
                // this thread can take Ctrl-C every SIGNAL_CHECK while the
                // flush keeps its target (the events emitted before it).
                let inner = self.inner.clone();
                let left = total - first;
                wait_interruptibly(py, "evqueue-flush", move || inner.flush(left))?
            }
            other => other,
        };
        match result {
            Ok(()) => Ok(true),
            Err(DispatchError::Timeout { .. }) => Ok(false),
            Err(e) => Err(py_err(e)),
        }
    }

    /// Closes the queue: emits raise `QueueClosed` from now on; the workers
    /// drain what is left for at most `timeout` seconds (None: until empty),
    /// then stop. Returns a `ShutdownReport` (the same one on later calls).
    /// Releases the GIL while it waits; Ctrl-C interrupts the wait (the
    /// queue still closes, in the background: call `close` again for the
    /// report). Raises `EvqueueError` from inside a handler (it would wait
    /// on itself).
    #[pyo3(signature = (timeout = None))]
    fn close(
        &self,
        py: Python<'_>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<ShutdownReport> {
        self.check_process()?;
        let timeout = args::timeout(timeout)?.unwrap_or(Duration::MAX);
        // The core refuses this on a worker thread; the helper thread below
        // is not one, so ask here.
        if self.inner.is_worker_thread() {
            return Err(py_err(DispatchError::InHandler));
        }
        let inner = self.inner.clone();
        let report = wait_interruptibly(py, "evqueue-close", move || inner.shutdown(timeout))?
            .map_err(py_err)?;
        // The core dropped its handlers; drop our references too.
        self.__clear__();
        Ok(ShutdownReport(report))
    }

    /// Forwards every event of this queue to the Redis stream `stream` at
    /// `url` (e.g. ``"redis://127.0.0.1:6379/"``) with `XADD` in pipelined
    /// batches of up to `batch` events, trimming the stream to about `maxlen`
    /// entries (``MAXLEN ~``) when given. Returns the `RedisForwarder`
    /// (stats, flush, close). Does not connect yet: a server that is down is
    /// retried. Raises ValueError for a bad url, an empty stream name,
    /// `batch` outside 1..=65536 or `maxlen` below 1.
    #[pyo3(
        signature = (url, stream, *, batch = None, maxlen = None),
        text_signature = "($self, url, stream, *, batch=256, maxlen=None)"
    )]
    fn forward_to_redis(
        &self,
        url: &str,
        stream: &str,
        batch: Option<&Bound<'_, PyAny>>,
        maxlen: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<crate::forward::RedisForwarder> {
        self.check_process()?;
        let batch = match batch {
            Some(b) => usize::try_from(args::uint(b, "batch")?).unwrap_or(usize::MAX),
            None => 256,
        };
        let maxlen = match maxlen.filter(|m| !m.is_none()) {
            Some(m) => Some(args::uint(m, "maxlen")?),
            None => None,
        };
        crate::forward::attach(&self.inner, url, stream, batch, maxlen)
    }

    /// A snapshot of the counters.
    fn stats(&self) -> Stats {
        Stats(self.inner.stats())
    }

    /// A subscriber that sees every event emitted from now on (with
    /// `from_oldest=True`: every event the ring still holds), independently
    /// of the handlers. `lag`: where it continues when the producers lapped
    /// it, as for the queue's workers (`"headroom"`, `"oldest"`, `"newest"`).
    #[pyo3(
        signature = (from_oldest = None, *, lag = None),
        text_signature = "($self, from_oldest=False, *, lag='headroom')"
    )]
    fn subscribe(
        &self,
        from_oldest: Option<&Bound<'_, PyAny>>,
        lag: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Subscriber> {
        self.check_process()?;
        let oldest = match from_oldest {
            Some(o) => args::bool_arg(o, "from_oldest")?,
            None => false,
        };
        let lag = match lag {
            Some(l) => parse_lag(l)?,
            None => evqueue::Lag::Headroom,
        };
        let start = if oldest { Start::Oldest } else { Start::Now };
        Ok(Subscriber::new(
            self.inner.subscribe(start).with_lag(lag),
            self.generation,
        ))
    }

    /// Slots in the ring.
    #[getter]
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// Bytes per slot: the largest encoded event.
    #[getter]
    fn slot_size(&self) -> usize {
        self.inner.slot_bytes()
    }

    /// Worker threads.
    #[getter]
    fn workers(&self) -> usize {
        self.inner.workers()
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_shut_down()
    }

    /// Starts the workers (if not started yet, as `start()`) and returns the
    /// queue.
    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().check_process()?;
        match slf.get().inner.start() {
            Ok(()) | Err(DispatchError::AlreadyStarted) => Ok(slf),
            Err(e) => Err(py_err(e)),
        }
    }

    /// Closes the queue, waiting until it is drained.
    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py, None)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "EventQueue(capacity={}, slot_size={}, workers={}, closed={})",
            self.inner.capacity(),
            self.inner.slot_bytes(),
            self.inner.workers(),
            if self.inner.is_shut_down() {
                "True"
            } else {
                "False"
            }
        )
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // `try_lock`: the GC must never wait; a lock held elsewhere means the
        // holder is in `on`/`off` right now, which keeps the queue reachable.
        if let Ok(callbacks) = self.callbacks.try_lock() {
            for (_, f) in &callbacks.named {
                visit.call(&**f)?;
            }
            for f in &callbacks.any {
                visit.call(&**f)?;
            }
        }
        if let Ok(hook) = self.error_hook.try_lock() {
            visit.call(&*hook)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        let callbacks = std::mem::take(&mut *lock(&self.callbacks));
        for (name, _) in &callbacks.named {
            self.inner.remove_handlers(name);
        }
        self.inner.remove_catch_all();
        let hook = lock(&self.error_hook).take();
        drop((callbacks, hook));
    }
}

impl Drop for EventQueue {
    fn drop(&mut self) {
        if self.generation != fork_generation() {
            // Inherited through `os.fork()`: its workers are in the parent,
            // and joining them here would panic. Leak it.
            std::mem::forget(self.inner.clone());
            return;
        }
        // Shut down with the GIL released: the workers need it to finish
        // their batches. (From inside a handler the core refuses to wait on
        // itself and stops the workers without joining them.)
        let inner = &self.inner;
        Python::attach(|py| {
            py.detach(|| {
                let _ = inner.shutdown(DROP_DEADLINE);
            })
        });
    }
}
