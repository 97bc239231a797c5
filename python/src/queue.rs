//! `evqueue.EventQueue`: the core queue with Python handlers.
//!
//! Handlers run on the core's worker threads. Each worker claims a batch of
//! events (`batch`, default 64) and takes the GIL once for the whole batch
//! (`around_batch`); the handlers inside re-enter the GIL for free. Every
//! wait (`flush`, `close`, the drop of a queue) runs with the GIL released,
//! or the workers could never finish.

use crate::args::{self, Props};
use crate::errors::{py_err, EvqueueError};
use crate::event::Event;
use crate::stats::{ShutdownReport, Stats};
use crate::subscriber::Subscriber;
use evqueue::blocking::lock;
use evqueue::{DispatchError, EventView, Failure, HandlerResult, Overflow, Start};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCFunction, PyDict, PyString, PyTuple};
use pyo3::{ffi, PyTraverseError, PyVisit};
use std::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How long one wait runs with the GIL released before Python gets a chance
/// to raise KeyboardInterrupt.
pub(crate) const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// What `drop` (and the interpreter's exit) gives a queue to drain.
const DROP_DEADLINE: Duration = Duration::from_secs(5);

/// Every live queue with the fork generation it was made in, so the
/// interpreter's exit can close them while Python still runs (worker threads
/// must not try to take the GIL of a finalizing interpreter).
static LIVE: Mutex<Vec<(u64, Weak<evqueue::EventQueue>)>> = Mutex::new(Vec::new());

/// How many times this process is a child of `os.fork()` (the package
/// registers [`_after_fork_in_child`] with `os.register_at_fork`). A queue or
/// forwarder made in an earlier generation has no threads here: its worker
/// and writer threads stayed in the parent.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Called in the child after `os.fork()`.
#[pyfunction]
pub(crate) fn _after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Relaxed);
}

/// This process's fork generation, to stamp a new queue or forwarder with.
pub(crate) fn fork_generation() -> u64 {
    FORK_GENERATION.load(Relaxed)
}

/// Refuses an object made before `os.fork()` (its threads are in the
/// parent: waiting on them would hang, joining them would panic).
pub(crate) fn check_same_process(generation: u64, what: &str) -> PyResult<()> {
    if generation == fork_generation() {
        return Ok(());
    }
    Err(EvqueueError::new_err(format!(
        "this {what} was made before os.fork(): its threads stayed in the parent \
         process, so it cannot be used in the child; make a new one here"
    )))
}

/// Runs `work` on a helper thread named `name` and waits for its result
/// with the GIL released, taking signals every [`SIGNAL_CHECK`]: a wait
/// inside native code would otherwise hold off Ctrl-C until it ends. If a
/// signal handler raises (KeyboardInterrupt), that is returned and `work`
/// goes on in the background; its result is dropped.
pub(crate) fn wait_interruptibly<T: Send + 'static>(
    py: Python<'_>,
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> PyResult<T> {
    let (tx, mut rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|e| EvqueueError::new_err(format!("could not start a {name} thread: {e}")))?;
    loop {
        let rx = &mut rx;
        match py.detach(move || rx.recv_timeout(SIGNAL_CHECK)) {
            Ok(result) => return Ok(result),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => py.check_signals()?,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(EvqueueError::new_err(format!(
                    "the {name} thread ended early"
                )));
            }
        }
    }
}

/// A handler's exception with the handler that raised it, carried through
/// the core as the handler's error.
struct Raised {
    error: PyErr,
    handler: Py<PyAny>,
}

impl std::fmt::Debug for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Raised {}

/// The Python callables a queue holds, mirrored for the garbage collector
/// (`__traverse__`, `__clear__`). The core registry holds clones of the same
/// `Arc`s: one Python reference per callable, visited once. (A callable the
/// mirror dropped while a worker still holds an old registry is briefly not
/// visited: an under-count, which only delays collection.)
#[derive(Default)]
struct Callbacks {
    named: Vec<(String, Arc<Py<PyAny>>)>,
    any: Vec<Arc<Py<PyAny>>>,
}

/// The `on_error` callable, shared with the core's error hook.
type ErrorSlot = Arc<Mutex<Option<Py<PyAny>>>>;

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

/// An ordering key argument: None (no key), str (its UTF-8 bytes) or bytes.
fn key_arg<'a>(key: Option<&'a Bound<'_, PyAny>>) -> PyResult<Option<&'a [u8]>> {
    match key {
        None => Ok(None),
        Some(k) if k.is_none() => Ok(None),
        Some(k) => {
            if let Ok(b) = k.cast::<PyBytes>() {
                Ok(Some(b.as_bytes()))
            } else if let Ok(s) = k.cast::<PyString>() {
                Ok(Some(s.to_str()?.as_bytes()))
            } else {
                Err(PyTypeError::new_err(format!(
                    "key must be str, bytes or None, not {}",
                    args::type_name(k)
                )))
            }
        }
    }
}

/// The core handler for one Python callable: builds an `Event`, calls it,
/// turns an exception into the handler's error. Runs on a worker thread
/// that already holds the GIL for its batch, so `attach` costs a counter.
fn handler_fn(
    callable: Arc<Py<PyAny>>,
) -> impl Fn(&EventView<'_>) -> HandlerResult + Send + Sync + 'static {
    move |view| {
        Python::attach(|py| {
            let result =
                Bound::new(py, Event::from(view)).and_then(|event| call_one(&callable, &event));
            result.map_err(|error| {
                Box::new(Raised {
                    error,
                    handler: callable.clone_ref(py),
                }) as evqueue::HandlerError
            })
        })
    }
}

/// `f(arg)` without building an argument tuple: under the stable ABI of
/// Python 3.10 pyo3's `call1` builds one, `PyObject_CallFunctionObjArgs`
/// passes the arguments on the C stack (vectorcall inside CPython).
fn call_one(f: &Py<PyAny>, arg: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = arg.py();
    // SAFETY: we hold the GIL (`arg` is bound to it) and references to both
    // objects; the variadic argument list ends with NULL as the function
    // requires; it returns a new reference, or NULL with an exception set,
    // which `from_owned_ptr_or_err` turns into the `PyErr`.
    unsafe {
        let result = ffi::PyObject_CallFunctionObjArgs(
            f.as_ptr(),
            arg.as_ptr(),
            std::ptr::null_mut::<ffi::PyObject>(),
        );
        Bound::from_owned_ptr_or_err(py, result).map(drop)
    }
}

/// The core error hook: passes `(event, exception)` to the Python `on_error`
/// callable, or reports through `sys.unraisablehook` when none is set.
fn error_hook_fn(slot: ErrorSlot) -> impl Fn(&EventView<'_>, &Failure<'_>) + Send + Sync + 'static {
    move |view, failure| {
        Python::attach(|py| {
            let (error, handler) = match failure {
                Failure::Error(e) => match e.downcast_ref::<Raised>() {
                    Some(r) => (r.error.clone_ref(py), Some(r.handler.clone_ref(py))),
                    None => (EvqueueError::new_err(e.to_string()), None),
                },
                Failure::Panic(message) => (
                    EvqueueError::new_err(format!("handler panicked: {message}")),
                    None,
                ),
                _ => (EvqueueError::new_err("handler failed"), None),
            };
            let hook = lock(&slot).as_ref().map(|h| h.clone_ref(py));
            match hook {
                Some(hook) => {
                    let called = Bound::new(py, Event::from(view))
                        .and_then(|event| hook.bind(py).call1((event, error.value(py))));
                    if let Err(e) = called {
                        e.write_unraisable(py, Some(hook.bind(py)));
                    }
                }
                None => error.write_unraisable(py, handler.as_ref().map(|h| h.bind(py))),
            }
        })
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

/// Set by `_close_all` (at interpreter exit): from then on a worker thread
/// that ends leaves its thread state to the interpreter's own cleanup.
static EXITING: AtomicBool = AtomicBool::new(false);

/// A worker thread's Python thread state, kept across batches so that
/// taking the GIL for a batch does not create and destroy one; deleted when
/// the thread ends.
struct KeptThreadState;

impl KeptThreadState {
    fn new() -> Self {
        // SAFETY: called on a worker thread that does not hold the GIL.
        // PyGILState_Ensure creates the thread state and returns with the
        // GIL held and the state's count at 1, where it stays until `drop`;
        // PyEval_SaveThread releases the GIL, keeping the state. Each batch
        // then takes the GIL with a balanced Ensure/Release pair of its own.
        unsafe {
            ffi::PyGILState_Ensure();
            ffi::PyEval_SaveThread();
        }
        KeptThreadState
    }
}

impl Drop for KeptThreadState {
    fn drop(&mut self) {
        if EXITING.load(Acquire) {
            return;
        }
        // SAFETY: the thread does not hold the GIL (it runs this when it
        // ends, outside any batch). Ensure takes the GIL (count 2); the
        // release that pairs with it keeps the GIL (LOCKED); the release that
        // pairs with `new`'s Ensure (which found no GIL: UNLOCKED) brings the
        // count to 0, which deletes the thread state and releases the GIL.
        unsafe {
            ffi::PyGILState_Ensure();
            ffi::PyGILState_Release(ffi::PyGILState_STATE::PyGILState_LOCKED);
            ffi::PyGILState_Release(ffi::PyGILState_STATE::PyGILState_UNLOCKED);
        }
    }
}

thread_local! {
    static KEPT: std::cell::OnceCell<KeptThreadState> = const { std::cell::OnceCell::new() };
}

/// Runs one batch of handlers with the GIL held.
fn with_gil_for_batch(run: &mut dyn FnMut()) {
    KEPT.with(|k| {
        k.get_or_init(KeptThreadState::new);
    });
    Python::attach(|_py| run());
}

fn parse_overflow(overflow: &Bound<'_, PyAny>) -> PyResult<Overflow> {
    match args::str_arg(overflow, "overflow")?.to_str()? {
        "overwrite" => Ok(Overflow::Overwrite),
        "reject" => Ok(Overflow::Reject),
        other => Err(PyValueError::new_err(format!(
            "overflow must be \"overwrite\" or \"reject\", not {other:?}"
        ))),
    }
}

fn count_arg(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<usize> {
    let n = args::uint(obj, what)?;
    usize::try_from(n).map_err(|_| PyValueError::new_err(format!("{what} {n} is too large")))
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
    /// (Linux), 0 to 39; default 5.
    #[pyo3(
        signature = (capacity = None, slot_size = None, workers = None, overflow = None, *, batch = None, lanes = None, worker_nice = None),
        text_signature = "(capacity=65536, slot_size=256, workers=8, overflow='overwrite', *, batch=64, lanes=0, worker_nice=5)"
    )]
    fn new(
        capacity: Option<&Bound<'_, PyAny>>,
        slot_size: Option<&Bound<'_, PyAny>>,
        workers: Option<&Bound<'_, PyAny>>,
        overflow: Option<&Bound<'_, PyAny>>,
        batch: Option<&Bound<'_, PyAny>>,
        lanes: Option<&Bound<'_, PyAny>>,
        worker_nice: Option<&Bound<'_, PyAny>>,
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
        let inner = Arc::new(builder.build_paused().map_err(py_err)?);
        let error_hook = ErrorSlot::default();
        inner.on_error(error_hook_fn(error_hook.clone()));
        let generation = fork_generation();
        {
            let mut live = lock(&LIVE);
            live.retain(|(_, w)| w.strong_count() > 0);
            live.push((generation, Arc::downgrade(&inner)));
        }
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
        let timestamp = match timestamp {
            Some(t) if !t.is_none() => args::uint(t, "timestamp")?,
            _ => 0,
        };
        let external = match external {
            Some(e) => args::bool_arg(e, "external")?,
            None => false,
        };
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
        let external = match external {
            Some(e) => args::bool_arg(e, "external")?,
            None => true,
        };
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

    /// Emits `(name, props)` pairs in order and returns how many. Every pair
    /// is checked first: a bad one raises and emits nothing. `QueueFull` or
    /// `QueueClosed` part way leaves the events before it emitted (the message
    /// says how many).
    fn emit_many(&self, events: &Bound<'_, PyAny>) -> PyResult<usize> {
        self.check_process()?;
        let py = events.py();
        let iter = events.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "emit_many takes an iterable of (name, props) pairs, not {}",
                args::type_name(events)
            ))
        })?;
        let mut items: Vec<(Bound<'_, PyString>, Props<'_>)> = Vec::new();
        for (i, item) in iter.enumerate() {
            let item = item?;
            let pair = item
                .cast::<PyTuple>()
                .ok()
                .filter(|t| t.len() == 2)
                .ok_or_else(|| {
                    PyTypeError::new_err(format!(
                        "emit_many item {i} must be a (name, props) tuple, not {}",
                        args::type_name(&item)
                    ))
                })?;
            let name = pair.get_item(0)?;
            let name = args::str_arg(&name, "the event name")
                .map_err(|e| context(py, e, &format!("emit_many item {i}: ")))?
                .clone();
            let props = Props::from_arg(Some(&pair.get_item(1)?))
                .map_err(|e| context(py, e, &format!("emit_many item {i}: ")))?;
            items.push((name, props));
        }
        let mut events = Vec::with_capacity(items.len());
        for (name, props) in &items {
            events.push((name.to_str()?, props.pairs()?));
        }
        // Check every event before the first push: a bad one changes nothing.
        let slot = self.inner.slot_bytes();
        for (i, (name, pairs)) in events.iter().enumerate() {
            let event = evqueue::Event::new(name).properties(pairs);
            let size = evqueue::encoded_len(&event)
                .map_err(|e| context(py, py_err(e), &format!("emit_many item {i}: ")))?;
            if size > slot {
                let e = py_err(evqueue::Error::TooLarge { size, max: slot });
                return Err(context(py, e, &format!("emit_many item {i}: ")));
            }
        }
        let total = events.len();
        for (i, (name, pairs)) in events.iter().enumerate() {
            if let Err(e) = self
                .inner
                .emit(&evqueue::Event::new(name).properties(pairs))
            {
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
    /// of the handlers.
    #[pyo3(
        signature = (from_oldest = None),
        text_signature = "($self, from_oldest=False)"
    )]
    fn subscribe(&self, from_oldest: Option<&Bound<'_, PyAny>>) -> PyResult<Subscriber> {
        self.check_process()?;
        let oldest = match from_oldest {
            Some(o) => args::bool_arg(o, "from_oldest")?,
            None => false,
        };
        let start = if oldest { Start::Oldest } else { Start::Now };
        Ok(Subscriber::new(
            self.inner.subscribe(start),
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

/// Closes every queue still open; `evqueue` registers it with `atexit`, so
/// no worker thread wants the GIL while the interpreter finalizes.
#[pyfunction]
pub(crate) fn _close_all(py: Python<'_>) {
    EXITING.store(true, Release);
    let generation = fork_generation();
    let live: Vec<Arc<evqueue::EventQueue>> = lock(&LIVE)
        .iter()
        .filter(|(g, _)| *g == generation)
        .filter_map(|(_, w)| w.upgrade())
        .collect();
    py.detach(|| {
        for queue in &live {
            let _ = queue.shutdown(DROP_DEADLINE);
        }
    });
    drop(live);
}
