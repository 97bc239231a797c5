//! Python callables as core handlers and error hook: calling them on a
//! worker thread, carrying their exceptions through the core, and the
//! mirror of them a queue keeps for the garbage collector.

use crate::errors::EvqueueError;
use crate::event::Event;
use evqueue::blocking::lock;
use evqueue::{EventView, Failure, HandlerResult};
use pyo3::ffi;
use pyo3::prelude::*;
use std::sync::{Arc, Mutex};

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
pub(crate) struct Callbacks {
    pub(crate) named: Vec<(String, Arc<Py<PyAny>>)>,
    pub(crate) any: Vec<Arc<Py<PyAny>>>,
}

/// The `on_error` callable, shared with the core's error hook.
pub(crate) type ErrorSlot = Arc<Mutex<Option<Py<PyAny>>>>;

/// The core handler for one Python callable: builds an `Event`, calls it,
/// turns an exception into the handler's error. Runs on a worker thread
/// that already holds the GIL for its batch, so `attach` costs a counter.
pub(crate) fn handler_fn(
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
pub(crate) fn call_one(f: &Py<PyAny>, arg: &Bound<'_, PyAny>) -> PyResult<()> {
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
pub(crate) fn error_hook_fn(
    slot: ErrorSlot,
) -> impl Fn(&EventView<'_>, &Failure<'_>) + Send + Sync + 'static {
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
