//! `evq_status`, the result of every fallible call, and the mapping from the
//! core's errors onto it (each failure also records its message, see
//! `evq_last_error`).

use crate::boundary::set_last_error;
use evq_core::json::JsonError;
use evq_core::{DispatchError, Error, RecvError, RecvTimeoutError};
use std::fmt::Display;

/// The result of a call. `EVQ_OK` is 0; every other value is a refusal or
/// a non-event outcome (`EVQ_EMPTY`, `EVQ_TIMEOUT`, `EVQ_LAGGED`) and changed
/// nothing unless its description says so. `evq_status_str` names each one;
/// `evq_last_error` gives the detailed message of the last failure.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum evq_status {
    /// Success.
    EVQ_OK = 0,
    /// Nothing to pop or receive right now.
    EVQ_EMPTY = 1,
    /// A subscriber was lapped: events were overwritten before it read them
    /// (`*missed` gets the count of events lost); the next receive continues
    /// a little past the oldest retained event, with headroom so that a slow
    /// reader is not lapped again at once.
    EVQ_LAGGED = 2,
    /// A wait ended before its condition: nothing received, flush not done,
    /// or shutdown's deadline passed (the report is still filled).
    EVQ_TIMEOUT = 3,
    /// The queue is shut down: no more pushes; a receive has read everything.
    EVQ_CLOSED = 4,
    /// Reject policy: the workers are a whole ring behind; the push is
    /// refused and counted.
    EVQ_FULL = 5,
    /// A required pointer argument is NULL.
    EVQ_NULL_POINTER = 6,
    /// A name, key, value or reason is not valid UTF-8.
    EVQ_INVALID_UTF8 = 7,
    /// The event name is empty.
    EVQ_EMPTY_NAME = 8,
    /// The event name is longer than 255 bytes.
    EVQ_NAME_TOO_LONG = 9,
    /// A property key is empty.
    EVQ_EMPTY_KEY = 10,
    /// A property key is longer than 255 bytes.
    EVQ_KEY_TOO_LONG = 11,
    /// A property value is longer than 65535 bytes.
    EVQ_VALUE_TOO_LONG = 12,
    /// More than 65535 properties.
    EVQ_TOO_MANY_PROPERTIES = 13,
    /// The encoded event or raw payload does not fit in one slot.
    EVQ_TOO_LARGE = 14,
    /// The buffer given is too small: smaller than `evq_pop_buffer_size`
    /// for a pop or receive, or than the size `evq_stats_prometheus` says.
    EVQ_BUFFER_TOO_SMALL = 15,
    /// A configuration value is out of range (capacity, slot size, workers,
    /// overflow, claim batch).
    EVQ_INVALID_CONFIG = 16,
    /// The ring's memory could not be allocated.
    EVQ_ALLOC_FAILED = 17,
    /// A worker thread could not be started.
    EVQ_SPAWN_FAILED = 18,
    /// `evq_start` was already called.
    EVQ_ALREADY_STARTED = 19,
    /// `evq_flush` or `evq_shutdown` was called from inside a handler of the
    /// same queue (it would wait on itself).
    EVQ_IN_HANDLER = 20,
    /// `evq_flush` on a queue that was shut down with events left unhandled.
    EVQ_SHUT_DOWN = 21,
    /// A JSON body is larger than the limit.
    EVQ_JSON_TOO_LARGE = 22,
    /// A JSON body is not valid JSON.
    EVQ_JSON_SYNTAX = 23,
    /// A JSON body is valid JSON of the wrong shape (missing name, a
    /// non-string property, an unknown field, ...).
    EVQ_JSON_SHAPE = 24,
    /// A JSON body's timestamp is not an RFC 3339 date-time.
    EVQ_JSON_TIMESTAMP = 25,
    /// An argument is out of range (an unknown enum value, a NULL data
    /// pointer with a nonzero length).
    EVQ_INVALID_ARGUMENT = 26,
    /// An internal error: a panic was caught at the boundary (a bug in
    /// evqueue; the call changed nothing it could undo).
    EVQ_PANIC = 27,
    /// An ordering key (`evq_push_keyed`) is longer than
    /// `EVQ_MAX_ORDERING_KEY_LEN` bytes.
    EVQ_ORDERING_KEY_TOO_LONG = 28,
    /// Shared ring (Linux): a system call on its file failed: the file
    /// exists (`evq_shared_create`), does not exist, may not be opened, or
    /// there is no room for it; `evq_last_error` names the call and the
    /// system's reason.
    EVQ_SHM_IO = 29,
    /// Shared ring (Linux): the file is not a shared ring this build can
    /// use: not a regular file, owned by another user, truncated, another
    /// layout version, or a header or state that does not validate
    /// (`evq_last_error` names the field).
    EVQ_SHM_INVALID = 30,
    /// A single-producer handle (a Rust `SharedRing::producer`) holds the
    /// ring: multi-producer pushes are refused while it lives. Or every
    /// one of the ring's 128 process entries is held by other processes.
    EVQ_PRODUCER_TAKEN = 31,
    /// A claimed slot holds bytes that are neither an event nor a framed
    /// raw payload (pushed by something other than evqueue's event calls),
    /// or an event where `evq_shared_try_claim_raw` reads raw payloads; it
    /// was consumed all the same.
    EVQ_MALFORMED = 32,
}

/// Highest status value (for `evq_status_str` and tests).
pub(crate) const LAST_STATUS: i32 = evq_status::EVQ_MALFORMED as i32;

impl evq_status {
    /// The status whose value is `value`, if any.
    pub(crate) fn from_i32(value: i32) -> Option<evq_status> {
        use evq_status::*;
        const ALL: [evq_status; (LAST_STATUS + 1) as usize] = [
            EVQ_OK,
            EVQ_EMPTY,
            EVQ_LAGGED,
            EVQ_TIMEOUT,
            EVQ_CLOSED,
            EVQ_FULL,
            EVQ_NULL_POINTER,
            EVQ_INVALID_UTF8,
            EVQ_EMPTY_NAME,
            EVQ_NAME_TOO_LONG,
            EVQ_EMPTY_KEY,
            EVQ_KEY_TOO_LONG,
            EVQ_VALUE_TOO_LONG,
            EVQ_TOO_MANY_PROPERTIES,
            EVQ_TOO_LARGE,
            EVQ_BUFFER_TOO_SMALL,
            EVQ_INVALID_CONFIG,
            EVQ_ALLOC_FAILED,
            EVQ_SPAWN_FAILED,
            EVQ_ALREADY_STARTED,
            EVQ_IN_HANDLER,
            EVQ_SHUT_DOWN,
            EVQ_JSON_TOO_LARGE,
            EVQ_JSON_SYNTAX,
            EVQ_JSON_SHAPE,
            EVQ_JSON_TIMESTAMP,
            EVQ_INVALID_ARGUMENT,
            EVQ_PANIC,
            EVQ_ORDERING_KEY_TOO_LONG,
            EVQ_SHM_IO,
            EVQ_SHM_INVALID,
            EVQ_PRODUCER_TAKEN,
            EVQ_MALFORMED,
        ];
        usize::try_from(value)
            .ok()
            .and_then(|i| ALL.get(i))
            .copied()
    }

    /// A short, static, NUL-terminated description.
    pub(crate) fn describe(self) -> &'static std::ffi::CStr {
        use evq_status::*;
        match self {
            EVQ_OK => c"ok",
            EVQ_EMPTY => c"nothing to receive right now",
            EVQ_LAGGED => c"subscriber lagged: events were overwritten before it read them",
            EVQ_TIMEOUT => c"timed out",
            EVQ_CLOSED => c"queue is shut down",
            EVQ_FULL => c"queue is full: the workers are a whole ring behind",
            EVQ_NULL_POINTER => c"a required pointer argument is NULL",
            EVQ_INVALID_UTF8 => c"text is not valid UTF-8",
            EVQ_EMPTY_NAME => c"event name is empty",
            EVQ_NAME_TOO_LONG => c"event name is longer than 255 bytes",
            EVQ_EMPTY_KEY => c"property key is empty",
            EVQ_KEY_TOO_LONG => c"property key is longer than 255 bytes",
            EVQ_VALUE_TOO_LONG => c"property value is longer than 65535 bytes",
            EVQ_TOO_MANY_PROPERTIES => c"more than 65535 properties",
            EVQ_TOO_LARGE => c"event does not fit in one slot",
            EVQ_BUFFER_TOO_SMALL => {
                c"buffer is too small (see evq_pop_buffer_size, evq_stats_prometheus)"
            }
            EVQ_INVALID_CONFIG => c"invalid queue configuration",
            EVQ_ALLOC_FAILED => c"could not allocate the ring",
            EVQ_SPAWN_FAILED => c"could not start a worker thread",
            EVQ_ALREADY_STARTED => c"queue already started",
            EVQ_IN_HANDLER => c"called from inside a handler of the same queue",
            EVQ_SHUT_DOWN => c"queue is shut down with events left unhandled",
            EVQ_JSON_TOO_LARGE => c"JSON body is too large",
            EVQ_JSON_SYNTAX => c"JSON body is not valid JSON",
            EVQ_JSON_SHAPE => c"JSON body has the wrong shape",
            EVQ_JSON_TIMESTAMP => c"JSON timestamp is not RFC 3339",
            EVQ_INVALID_ARGUMENT => c"argument out of range",
            EVQ_PANIC => c"internal error (panic caught at the C boundary)",
            EVQ_ORDERING_KEY_TOO_LONG => c"ordering key is longer than 256 bytes",
            EVQ_SHM_IO => c"a system call on the shared ring file failed",
            EVQ_SHM_INVALID => c"the file is not a valid shared ring",
            EVQ_PRODUCER_TAKEN => {
                c"a single producer holds the ring (or all its process entries are taken)"
            }
            EVQ_MALFORMED => c"the claimed slot holds neither an event nor a framed raw payload",
        }
    }
}

/// An error that maps onto a status.
pub(crate) trait ToStatus: Display {
    fn status(&self) -> evq_status;
}

impl ToStatus for Error {
    fn status(&self) -> evq_status {
        use evq_status::*;
        match self {
            Error::Full => EVQ_FULL,
            Error::Closed => EVQ_CLOSED,
            Error::InvalidCapacity { .. } | Error::InvalidSlotSize { .. } => EVQ_INVALID_CONFIG,
            Error::AllocationFailed { .. } => EVQ_ALLOC_FAILED,
            Error::TooLarge { .. } => EVQ_TOO_LARGE,
            Error::EmptyName => EVQ_EMPTY_NAME,
            Error::NameTooLong { .. } => EVQ_NAME_TOO_LONG,
            Error::EmptyKey => EVQ_EMPTY_KEY,
            Error::KeyTooLong { .. } => EVQ_KEY_TOO_LONG,
            Error::ValueTooLong { .. } => EVQ_VALUE_TOO_LONG,
            Error::TooManyProperties { .. } => EVQ_TOO_MANY_PROPERTIES,
            Error::ReservedKey { .. } => EVQ_INVALID_ARGUMENT,
            Error::OrderingKeyTooLong { .. } => EVQ_ORDERING_KEY_TOO_LONG,
            // From the shared ring, where other processes push too.
            Error::ProducerTaken => EVQ_PRODUCER_TAKEN,
            Error::Malformed => EVQ_MALFORMED,
            // Future variants cannot come from the calls this crate makes:
            // report them as internal.
            _ => EVQ_PANIC,
        }
    }
}

impl ToStatus for DispatchError {
    fn status(&self) -> evq_status {
        use evq_status::*;
        match self {
            DispatchError::Config(e) => e.status(),
            DispatchError::InvalidWorkers { .. }
            | DispatchError::InvalidBatch { .. }
            | DispatchError::InvalidNice { .. }
            | DispatchError::InvalidLanes { .. } => EVQ_INVALID_CONFIG,
            DispatchError::Spawn(_) => EVQ_SPAWN_FAILED,
            DispatchError::InHandler => EVQ_IN_HANDLER,
            DispatchError::Timeout { .. } => EVQ_TIMEOUT,
            DispatchError::ShutDown { .. } => EVQ_SHUT_DOWN,
            DispatchError::AlreadyStarted => EVQ_ALREADY_STARTED,
            DispatchError::Closed => EVQ_CLOSED,
            _ => EVQ_PANIC,
        }
    }
}

impl ToStatus for RecvError {
    fn status(&self) -> evq_status {
        use evq_status::*;
        match self {
            RecvError::Empty => EVQ_EMPTY,
            RecvError::Closed => EVQ_CLOSED,
            RecvError::Lagged(_) => EVQ_LAGGED,
            RecvError::BufferTooSmall { .. } => EVQ_BUFFER_TOO_SMALL,
            _ => EVQ_PANIC,
        }
    }
}

impl ToStatus for RecvTimeoutError {
    fn status(&self) -> evq_status {
        use evq_status::*;
        match self {
            RecvTimeoutError::Timeout => EVQ_TIMEOUT,
            RecvTimeoutError::Lagged(_) => EVQ_LAGGED,
            RecvTimeoutError::Closed => EVQ_CLOSED,
            _ => EVQ_PANIC,
        }
    }
}

#[cfg(target_os = "linux")]
impl ToStatus for evq_core::ShmError {
    fn status(&self) -> evq_status {
        use evq_core::ShmError;
        match self {
            ShmError::Io { .. } => evq_status::EVQ_SHM_IO,
            ShmError::Config(e) => e.status(),
            _ => evq_status::EVQ_SHM_INVALID,
        }
    }
}

impl ToStatus for JsonError {
    fn status(&self) -> evq_status {
        use evq_status::*;
        match self {
            JsonError::TooLarge { .. } => EVQ_JSON_TOO_LARGE,
            JsonError::Syntax(_) => EVQ_JSON_SYNTAX,
            JsonError::Shape(_) => EVQ_JSON_SHAPE,
            JsonError::Timestamp(_) => EVQ_JSON_TIMESTAMP,
            JsonError::Event(e) => e.status(),
            #[allow(unreachable_patterns)]
            _ => EVQ_PANIC,
        }
    }
}

/// Records the error's message as this thread's last error and returns its
/// status.
/// `EVQ_FULL` records no message: under the reject policy a producer may
/// retry in a tight loop, and formatting a message each time would slow it.
#[cold]
pub(crate) fn fail(error: impl ToStatus) -> evq_status {
    let status = error.status();
    if status != evq_status::EVQ_FULL {
        set_last_error(&error.to_string());
    }
    status
}

/// Records `message` and returns `status`.
#[cold]
pub(crate) fn fail_with(status: evq_status, message: &str) -> evq_status {
    set_last_error(message);
    status
}
