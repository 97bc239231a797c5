//! The exception hierarchy and the one place where Rust errors become Python
//! exceptions.
//!
//! ```text
//! EvqueueError
//!  ├── InvalidEvent    bad name, key or value; malformed JSON
//!  ├── EventTooLarge   does not fit in one slot (or over the JSON limit)
//!  ├── QueueFull       "reject" policy and the workers are a ring behind
//!  └── QueueClosed     the queue was closed
//! ```
//! Bad constructor arguments raise `ValueError`, wrong types `TypeError`.

use pyo3::exceptions::{PyMemoryError, PyValueError};
use pyo3::{create_exception, PyErr};

create_exception!(
    evqueue,
    EvqueueError,
    pyo3::exceptions::PyException,
    "Base class of every error evqueue raises (besides TypeError and ValueError for bad arguments)."
);
create_exception!(
    evqueue,
    InvalidEvent,
    EvqueueError,
    "The event was refused: empty or too long name, bad property, malformed JSON. Nothing was emitted."
);
create_exception!(
    evqueue,
    EventTooLarge,
    EvqueueError,
    "The encoded event does not fit in one slot (the message names both sizes). Nothing was emitted."
);
create_exception!(
    evqueue,
    QueueFull,
    EvqueueError,
    "overflow=\"reject\" and the workers are a whole ring behind: the event was refused and counted."
);
create_exception!(
    evqueue,
    QueueClosed,
    EvqueueError,
    "The queue was closed: it accepts no more events (or a subscriber has read everything)."
);

/// Every Rust error the bindings can meet, converted in one place.
pub(crate) enum Failure {
    Event(evqueue::Error),
    Dispatch(evqueue::DispatchError),
    Json(evqueue::json::JsonError),
    Recv(evqueue::RecvError),
}

impl From<evqueue::Error> for Failure {
    fn from(e: evqueue::Error) -> Self {
        Failure::Event(e)
    }
}

impl From<evqueue::DispatchError> for Failure {
    fn from(e: evqueue::DispatchError) -> Self {
        Failure::Dispatch(e)
    }
}

impl From<evqueue::json::JsonError> for Failure {
    fn from(e: evqueue::json::JsonError) -> Self {
        Failure::Json(e)
    }
}

impl From<evqueue::RecvError> for Failure {
    fn from(e: evqueue::RecvError) -> Self {
        Failure::Recv(e)
    }
}

impl From<Failure> for PyErr {
    fn from(failure: Failure) -> PyErr {
        use evqueue::json::JsonError;
        use evqueue::{DispatchError, Error};
        match failure {
            Failure::Event(e) => event_error(e),
            Failure::Json(JsonError::Event(e)) => event_error(e),
            Failure::Json(e @ JsonError::TooLarge { .. }) => EventTooLarge::new_err(e.to_string()),
            Failure::Json(e) => InvalidEvent::new_err(e.to_string()),
            Failure::Dispatch(DispatchError::Config(e @ Error::AllocationFailed { .. })) => {
                PyMemoryError::new_err(e.to_string())
            }
            Failure::Dispatch(
                e @ (DispatchError::Config(_)
                | DispatchError::InvalidWorkers { .. }
                | DispatchError::InvalidBatch { .. }
                | DispatchError::InvalidNice { .. }
                | DispatchError::InvalidLanes { .. }),
            ) => PyValueError::new_err(e.to_string()),
            Failure::Dispatch(e @ (DispatchError::Closed | DispatchError::ShutDown { .. })) => {
                QueueClosed::new_err(e.to_string())
            }
            Failure::Dispatch(e) => EvqueueError::new_err(e.to_string()),
            Failure::Recv(evqueue::RecvError::Closed) => {
                QueueClosed::new_err("queue is closed and this subscriber has read everything")
            }
            Failure::Recv(e) => EvqueueError::new_err(e.to_string()),
        }
    }
}

fn event_error(e: evqueue::Error) -> PyErr {
    use evqueue::Error;
    let message = e.to_string();
    match e {
        Error::Full => QueueFull::new_err(message),
        Error::Closed => QueueClosed::new_err(message),
        Error::TooLarge { .. } => EventTooLarge::new_err(message),
        Error::EmptyName
        | Error::NameTooLong { .. }
        | Error::EmptyKey
        | Error::KeyTooLong { .. }
        | Error::ValueTooLong { .. }
        | Error::TooManyProperties { .. }
        | Error::ReservedKey { .. }
        | Error::OrderingKeyTooLong { .. }
        | Error::Malformed => InvalidEvent::new_err(message),
        Error::InvalidCapacity { .. } | Error::InvalidSlotSize { .. } => {
            PyValueError::new_err(message)
        }
        Error::AllocationFailed { .. } => PyMemoryError::new_err(message),
        _ => EvqueueError::new_err(message),
    }
}

/// Shorthand: `result.map_err(py_err)?`.
pub(crate) fn py_err(e: impl Into<Failure>) -> PyErr {
    e.into().into()
}
