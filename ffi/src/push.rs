//! Producing: events (with or without an ordering key), raw payloads, JSON
//! bodies and the session events.

use crate::args::{ascii_event, ordering_key, store, text, with_pairs, Text, INLINE_PROPERTIES};
use crate::boundary::ffi_boundary;
use crate::status::{fail, fail_with};
use crate::{evq_event, evq_property, evq_queue, evq_status, queue};
use evq_core::{Event, EventQueue, EVENT_HEADER_BYTES};
use std::ffi::{c_char, c_void};
use std::mem::MaybeUninit;

/// The current time in nanoseconds since the Unix epoch (0 if the system
/// clock is before 1970): the clock that stamps an event pushed with
/// timestamp 0, for callers that want the time before pushing. Any thread.
#[no_mangle]
pub extern "C" fn evq_now() -> u64 {
    ffi_boundary!(; { evq_core::now_nanos() })
}

/// Pushes an event; safe from any number of threads at once, including
/// from handlers. Never blocks. Stores the sequence number in `*seq_out`
/// when `seq_out` is not NULL. `event->seq` is ignored; a timestamp of 0
/// means "stamp it now" (with `evq_now`'s clock). Everything `event` points
/// to is only read during the call.
///
/// Fails, pushing nothing, with `EVQ_NULL_POINTER`, `EVQ_INVALID_UTF8`,
/// `EVQ_EMPTY_NAME`, `EVQ_NAME_TOO_LONG`, `EVQ_EMPTY_KEY`,
/// `EVQ_KEY_TOO_LONG`, `EVQ_VALUE_TOO_LONG`, `EVQ_TOO_MANY_PROPERTIES`,
/// `EVQ_TOO_LARGE` (the encoded event does not fit in a slot),
/// `EVQ_CLOSED` (after shutdown) or `EVQ_FULL` (reject policy).
///
/// # Safety
/// `q` is a live queue; `event` points to a readable `evq_event` whose
/// pointers are readable for their lengths; `seq_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn evq_push(
    q: *const evq_queue,
    event: *const evq_event,
    seq_out: *mut u64,
) -> evq_status {
    ffi_boundary!(q, event; {
        // SAFETY: live queue, readable event (caller's contract; non-NULL checked).
        let (queue, e) = unsafe { (queue(q), &*event) };
        if e.name.is_null() {
            return fail_with(evq_status::EVQ_NULL_POINTER, "event name pointer is NULL");
        }
        let mut storage = [MaybeUninit::uninit(); INLINE_PROPERTIES];
        // SAFETY: the event's texts and properties are readable (caller's contract).
        if let Some((name, pairs)) = unsafe { ascii_event(e, &mut storage) } {
            // SAFETY: `seq_out` is NULL or writable (caller's contract).
            return unsafe { emit_event(queue, e, name, pairs, None, seq_out) };
        }
        // SAFETY: as above.
        unsafe { push_checked(queue, e, None, seq_out) }
    })
}

/// `evq_push` with an ordering key: events pushed with equal keys (the same
/// `key_len` bytes at `key`, any bytes, e.g. a session or player id) are
/// handled in the order they were pushed (from one thread; across threads
/// in the order the queue accepted them) and never by two handlers at once.
/// Events with other keys and unkeyed events run in parallel on the other
/// workers. Keys that hash to the same lane (see `evq_config.lanes`) wait
/// for each other. The key is only read during the call. Subscribers do
/// not see keyed events; `*seq_out` is the event's number within its lane.
/// A `session_start`/`session_end` pushed with `evq_push` is keyed by its
/// `session_id` property automatically.
///
/// Fails, pushing nothing, with `EVQ_ORDERING_KEY_TOO_LONG` (more than
/// `EVQ_MAX_ORDERING_KEY_LEN` bytes), `EVQ_NULL_POINTER` (`key` NULL with
/// `key_len` > 0) and the errors of `evq_push`. Any thread.
///
/// # Safety
/// As `evq_push`; `key` points to `key_len` readable bytes (or is NULL with
/// `key_len` 0).
#[no_mangle]
pub unsafe extern "C" fn evq_push_keyed(
    q: *const evq_queue,
    event: *const evq_event,
    key: *const c_void,
    key_len: usize,
    seq_out: *mut u64,
) -> evq_status {
    ffi_boundary!(q, event; {
        // SAFETY: live queue, readable event (caller's contract; non-NULL checked).
        let (queue, e) = unsafe { (queue(q), &*event) };
        // SAFETY: `key_len` readable bytes (caller's contract).
        let key = match unsafe { ordering_key(key, key_len) } {
            Ok(key) => key,
            Err(status) => return status,
        };
        if e.name.is_null() {
            return fail_with(evq_status::EVQ_NULL_POINTER, "event name pointer is NULL");
        }
        let mut storage = [MaybeUninit::uninit(); INLINE_PROPERTIES];
        // SAFETY: the event's texts and properties are readable (caller's contract).
        if let Some((name, pairs)) = unsafe { ascii_event(e, &mut storage) } {
            // SAFETY: `seq_out` is NULL or writable (caller's contract).
            return unsafe { emit_event(queue, e, name, pairs, Some(key), seq_out) };
        }
        // SAFETY: as above.
        unsafe { push_checked(queue, e, Some(key), seq_out) }
    })
}

/// Emits the event `name` with `pairs` and `e`'s timestamp and flag, and
/// stores its sequence number in `*seq_out` when not NULL.
///
/// # Safety
/// `seq_out` is NULL or writable.
#[inline(always)]
pub(crate) unsafe fn emit_event(
    queue: &EventQueue,
    e: &evq_event,
    name: &str,
    pairs: &[(&str, &str)],
    key: Option<&[u8]>,
    seq_out: *mut u64,
) -> evq_status {
    let event = Event::new(name)
        .properties(pairs)
        .timestamp(e.timestamp)
        .external(e.external);
    let emitted = match key {
        None => queue.emit(&event),
        Some(key) => queue.emit_keyed(&event, key),
    };
    match emitted {
        Ok(seq) => {
            // SAFETY: NULL or writable (caller's contract).
            unsafe { store(seq_out, seq) };
            evq_status::EVQ_OK
        }
        Err(err) => fail(err),
    }
}

/// `evq_push` for non-ASCII text or a bad argument: each argument checked
/// in order, the first error reported. Out of line, so the fast path stays
/// small.
///
/// # Safety
/// As `evq_push`; `e.name` is not NULL.
#[cold]
#[inline(never)]
pub(crate) unsafe fn push_checked(
    queue: &EventQueue,
    e: &evq_event,
    key: Option<&[u8]>,
    seq_out: *mut u64,
) -> evq_status {
    // SAFETY: the name is readable for `name_len` bytes (caller's contract).
    let name = match unsafe { text(e.name, e.name_len, Text::Name) } {
        Ok(name) => name,
        Err(status) => return status,
    };
    let emit = |pairs: &[(&str, &str)]| {
        // SAFETY: `seq_out` is NULL or writable (caller's contract).
        unsafe { emit_event(queue, e, name, pairs, key, seq_out) }
    };
    // SAFETY: the properties are readable (caller's contract).
    unsafe { with_pairs(e.properties, e.property_count, emit) }
}

/// Pushes a raw payload: `len` bytes at `bytes` (a struct of your own),
/// at most `slot_bytes - 12`. Raw handlers (`evq_on_raw`), `evq_try_pop`
/// and subscribers receive it as `EVQ_PAYLOAD_RAW`; event handlers never see
/// it. `timestamp` 0 means now. Stores the sequence number in `*seq_out`
/// when not NULL. The bytes are copied during the call. Any thread, any
/// number at once. Errors: `EVQ_NULL_POINTER` (`bytes` NULL with `len` > 0),
/// `EVQ_TOO_LARGE`, `EVQ_CLOSED`, `EVQ_FULL`.
///
/// # Safety
/// `q` is a live queue; `bytes` points to `len` readable bytes (or is NULL
/// with `len` 0); `seq_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn evq_push_raw(
    q: *const evq_queue,
    bytes: *const c_void,
    len: usize,
    timestamp: u64,
    seq_out: *mut u64,
) -> evq_status {
    ffi_boundary!(q; {
        // SAFETY: live queue (caller's contract).
        let queue = unsafe { queue(q) };
        let max = queue.slot_bytes() - EVENT_HEADER_BYTES;
        if len > max {
            return fail(evq_core::Error::TooLarge { size: len, max });
        }
        let payload: &[u8] = if len == 0 {
            &[]
        } else if bytes.is_null() {
            return fail_with(
                evq_status::EVQ_NULL_POINTER,
                &format!("raw payload pointer is NULL with a length of {len}"),
            );
        } else {
            // SAFETY: `len` readable bytes (caller's contract), `len` bounded
            // by the slot size.
            unsafe { std::slice::from_raw_parts(bytes.cast::<u8>(), len) }
        };
        match queue.emit_raw(payload, timestamp) {
            Ok(seq) => {
                // SAFETY: NULL or writable.
                unsafe { store(seq_out, seq) };
                evq_status::EVQ_OK
            }
            Err(e) => fail(e),
        }
    })
}

/// Pushes the body of a client's `POST /v2/event`:
/// `{"name": "...", "properties": {"k": "v", ...}, "timestamp": "<RFC 3339>"}`
/// (properties and timestamp optional; strict: unknown fields, non-string
/// values and duplicate keys are refused). `len` bytes at `json`, not
/// NUL-terminated, read during the call only. `external` marks it as sent by
/// a client. Any thread, any number at once.
///
/// Errors: `EVQ_JSON_TOO_LARGE`, `EVQ_JSON_SYNTAX`, `EVQ_JSON_SHAPE`,
/// `EVQ_JSON_TIMESTAMP`, and the event errors of `evq_push`
/// (`EVQ_EMPTY_NAME`, `EVQ_TOO_LARGE`, `EVQ_CLOSED`, ...); `evq_last_error`
/// says where the body is wrong.
///
/// # Safety
/// `q` is a live queue; `json` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn evq_push_json(
    q: *const evq_queue,
    json: *const c_char,
    len: usize,
    external: bool,
) -> evq_status {
    ffi_boundary!(q, json; {
        // SAFETY: live queue (caller's contract).
        let queue = unsafe { queue(q) };
        if len > evq_core::json::MAX_JSON_BYTES {
            return fail(evq_core::json::JsonError::TooLarge {
                len,
                max: evq_core::json::MAX_JSON_BYTES,
            });
        }
        // SAFETY: `len` readable bytes (caller's contract), bounded above.
        let body = unsafe { std::slice::from_raw_parts(json.cast::<u8>(), len) };
        match queue.emit_json(body, external) {
            Ok(_) => evq_status::EVQ_OK,
            Err(e) => fail(e),
        }
    })
}

/// `evq_push_json` with an ordering key chosen by the server: key a
/// client's events by the session (or player) they arrived on, so they are
/// handled in arrival order and one at a time (see `evq_push_keyed`). The
/// key is checked before the body; nothing is pushed on any error.
///
/// Errors: `EVQ_ORDERING_KEY_TOO_LONG`, `EVQ_NULL_POINTER` (`key` NULL with
/// `key_len` > 0), and those of `evq_push_json`.
///
/// # Safety
/// As `evq_push_json`; `key` points to `key_len` readable bytes (or is NULL
/// with `key_len` 0).
#[no_mangle]
pub unsafe extern "C" fn evq_push_json_keyed(
    q: *const evq_queue,
    json: *const c_char,
    len: usize,
    external: bool,
    key: *const c_void,
    key_len: usize,
) -> evq_status {
    ffi_boundary!(q, json; {
        // SAFETY: live queue (caller's contract).
        let queue = unsafe { queue(q) };
        // SAFETY: `key_len` readable bytes (caller's contract).
        let key = match unsafe { ordering_key(key, key_len) } {
            Ok(key) => key,
            Err(status) => return status,
        };
        if len > evq_core::json::MAX_JSON_BYTES {
            return fail(evq_core::json::JsonError::TooLarge {
                len,
                max: evq_core::json::MAX_JSON_BYTES,
            });
        }
        // SAFETY: `len` readable bytes (caller's contract), bounded above.
        let body = unsafe { std::slice::from_raw_parts(json.cast::<u8>(), len) };
        match queue.emit_json_keyed(body, external, key) {
            Ok(_) => evq_status::EVQ_OK,
            Err(e) => fail(e),
        }
    })
}

/// Pushes a `session_start` event with these properties (`count` of them at
/// `props`, NULL when 0). With a `session_id` property it is keyed by its
/// value (see `evq_push_keyed`): one session's events run in order, one at
/// a time; without one it is not keyed. Errors as `evq_push`. Any thread.
///
/// # Safety
/// `q` is a live queue; `props` points to `count` readable properties.
#[no_mangle]
pub unsafe extern "C" fn evq_emit_session_start(
    q: *const evq_queue,
    props: *const evq_property,
    count: usize,
) -> evq_status {
    ffi_boundary!(q; {
        // SAFETY: live queue (caller's contract).
        let queue = unsafe { queue(q) };
        let emit = |pairs: &[(&str, &str)]| match queue.emit_session_start(pairs) {
            Ok(_) => evq_status::EVQ_OK,
            Err(e) => fail(e),
        };
        // SAFETY: readable properties (caller's contract).
        unsafe { with_pairs(props, count, emit) }
    })
}

/// Pushes a `session_end` event whose first property is `reason` (UTF-8,
/// `reason_len` bytes, may be empty), followed by these properties. Errors
/// as `evq_push`, and `EVQ_INVALID_ARGUMENT` when a property's key is
/// `reason` (handlers would see two). Keyed by a `session_id` property as
/// `evq_emit_session_start` is. Any thread.
///
/// # Safety
/// `q` is a live queue; `reason` points to `reason_len` readable bytes (or
/// is NULL with 0); `props` points to `count` readable properties.
#[no_mangle]
pub unsafe extern "C" fn evq_emit_session_end(
    q: *const evq_queue,
    reason: *const c_char,
    reason_len: usize,
    props: *const evq_property,
    count: usize,
) -> evq_status {
    ffi_boundary!(q; {
        // SAFETY: live queue (caller's contract).
        let queue = unsafe { queue(q) };
        // SAFETY: readable reason (caller's contract).
        let reason = match unsafe { text(reason, reason_len, Text::Reason) } {
            Ok(r) => r,
            Err(status) => return status,
        };
        let emit = |pairs: &[(&str, &str)]| match queue.emit_session_end(reason, pairs) {
            Ok(_) => evq_status::EVQ_OK,
            Err(e) => fail(e),
        };
        // SAFETY: readable properties (caller's contract).
        unsafe { with_pairs(props, count, emit) }
    })
}
