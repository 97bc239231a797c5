//! Handlers: registering and removing them, and the error hook.

use crate::args::{store, text, Text};
use crate::boundary::ffi_boundary;
use crate::callbacks::{
    event_handler, with_c_event, CErrorHook, CRawHandler, Callback, HandlerFailed,
};
use crate::status::{fail, fail_with};
use crate::{
    evq_error_fn, evq_failure, evq_handler_fn, evq_queue, evq_raw, evq_raw_handler_fn, evq_status,
    queue,
};
use evq_core::RawView;
use std::ffi::{c_char, c_void, CString};

fn null_handler() -> evq_status {
    fail_with(evq_status::EVQ_NULL_POINTER, "argument `handler` is NULL")
}

/// What `evq_on_any`, `evq_on_session_start` and `evq_on_session_end`
/// register a handler as.
#[derive(Clone, Copy)]
enum Registration {
    Any,
    SessionStart,
    SessionEnd,
}

/// The one body of the three registrations that take no name.
///
/// # Safety
/// `q` is a live queue.
unsafe fn register(
    q: *const evq_queue,
    handler: evq_handler_fn,
    user_data: *mut c_void,
    what: Registration,
) -> evq_status {
    let Some(f) = handler else {
        return null_handler();
    };
    // SAFETY: live queue (caller's contract).
    let queue = unsafe { queue(q) };
    let handler = event_handler(f, user_data);
    match what {
        Registration::Any => queue.on_any(handler),
        Registration::SessionStart => queue.on_session_start(handler),
        Registration::SessionEnd => queue.on_session_end(handler),
    }
    evq_status::EVQ_OK
}

/// Registers `handler` for events named `name` (`name_len` bytes of UTF-8,
/// copied). Handlers of one name run in registration order, before the
/// catch-alls, on worker threads. `user_data` is passed back to every call
/// and is shared by all worker threads at once: what it points to must be
/// thread-safe and outlive the queue (or `evq_off`). Takes effect for events
/// claimed after it returns. Any thread, also from inside a handler.
/// Errors: `EVQ_NULL_POINTER`, `EVQ_INVALID_UTF8`, `EVQ_EMPTY_NAME`,
/// `EVQ_NAME_TOO_LONG`; nothing is registered then.
///
/// # Safety
/// `q` is a live queue; `name` points to `name_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn evq_on(
    q: *const evq_queue,
    name: *const c_char,
    name_len: usize,
    handler: evq_handler_fn,
    user_data: *mut c_void,
) -> evq_status {
    ffi_boundary!(q, name; {
        let Some(f) = handler else { return null_handler() };
        // SAFETY: readable name (caller's contract).
        let name = match unsafe { text(name, name_len, Text::Name) } {
            Ok(n) => n,
            Err(status) => return status,
        };
        // SAFETY: live queue.
        match unsafe { queue(q) }.on(name, event_handler(f, user_data)) {
            Ok(()) => evq_status::EVQ_OK,
            Err(e) => fail(e),
        }
    })
}

/// Registers a catch-all `handler`: it runs for every event (not raw
/// payloads), after the handlers registered for the event's name. Same
/// `user_data` and threading rules as `evq_on`.
///
/// # Safety
/// `q` is a live queue.
#[no_mangle]
pub unsafe extern "C" fn evq_on_any(
    q: *const evq_queue,
    handler: evq_handler_fn,
    user_data: *mut c_void,
) -> evq_status {
    ffi_boundary!(q; {
        // SAFETY: live queue (caller's contract).
        unsafe { register(q, handler, user_data, Registration::Any) }
    })
}

/// Registers `handler` for `session_start` events (the same as `evq_on`
/// with that name). Same rules as `evq_on`.
///
/// # Safety
/// `q` is a live queue.
#[no_mangle]
pub unsafe extern "C" fn evq_on_session_start(
    q: *const evq_queue,
    handler: evq_handler_fn,
    user_data: *mut c_void,
) -> evq_status {
    ffi_boundary!(q; {
        // SAFETY: live queue (caller's contract).
        unsafe { register(q, handler, user_data, Registration::SessionStart) }
    })
}

/// Registers `handler` for `session_end` events; the reason is the property
/// `reason` (the first one). Same rules as `evq_on`.
///
/// # Safety
/// `q` is a live queue.
#[no_mangle]
pub unsafe extern "C" fn evq_on_session_end(
    q: *const evq_queue,
    handler: evq_handler_fn,
    user_data: *mut c_void,
) -> evq_status {
    ffi_boundary!(q; {
        // SAFETY: live queue (caller's contract).
        unsafe { register(q, handler, user_data, Registration::SessionEnd) }
    })
}

/// Registers `handler` for raw payloads (`evq_push_raw`); they run in
/// registration order on worker threads, with a view valid for the call.
/// Failures are counted and reported to the error hook under the name
/// `<raw>`. Same `user_data` rules as `evq_on`.
///
/// # Safety
/// `q` is a live queue.
#[no_mangle]
pub unsafe extern "C" fn evq_on_raw(
    q: *const evq_queue,
    handler: evq_raw_handler_fn,
    user_data: *mut c_void,
) -> evq_status {
    ffi_boundary!(q; {
        let Some(f) = handler else { return null_handler() };
        let cb: Callback<CRawHandler> = Callback { f, user_data };
        // SAFETY: live queue.
        unsafe { queue(q) }.on_raw(move |raw: &RawView<'_>| {
            let view = evq_raw::from_view(raw);
            let (f, user_data) = cb.parts();
            // SAFETY: `view` and the bytes it points to live for this call.
            let code = unsafe { f(&view, user_data) };
            if code == 0 {
                Ok(())
            } else {
                Err(Box::new(HandlerFailed(code)))
            }
        });
        evq_status::EVQ_OK
    })
}

/// Removes every handler registered for `name` (not the catch-alls) and
/// stores how many there were in `*removed` when not NULL. A worker already
/// inside one of them finishes that call (so its `user_data` must stay
/// valid until then: `evq_flush` after `evq_off` waits for it). Any thread.
///
/// # Safety
/// `q` is a live queue; `name` points to `name_len` readable bytes;
/// `removed` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn evq_off(
    q: *const evq_queue,
    name: *const c_char,
    name_len: usize,
    removed: *mut usize,
) -> evq_status {
    ffi_boundary!(q, name; {
        // SAFETY: readable name (caller's contract).
        let name = match unsafe { text(name, name_len, Text::Name) } {
            Ok(n) => n,
            Err(status) => return status,
        };
        // SAFETY: live queue.
        let n = unsafe { queue(q) }.remove_handlers(name);
        // SAFETY: NULL or writable.
        unsafe { store(removed, n) };
        evq_status::EVQ_OK
    })
}

/// Removes every catch-all handler; stores how many in `*removed` when not
/// NULL. As `evq_off`.
///
/// # Safety
/// `q` is a live queue; `removed` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn evq_off_any(q: *const evq_queue, removed: *mut usize) -> evq_status {
    ffi_boundary!(q; {
        // SAFETY: live queue.
        let n = unsafe { queue(q) }.remove_catch_all();
        // SAFETY: NULL or writable.
        unsafe { store(removed, n) };
        evq_status::EVQ_OK
    })
}

/// Removes every raw payload handler; stores how many in `*removed` when not
/// NULL. As `evq_off`.
///
/// # Safety
/// `q` is a live queue; `removed` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn evq_off_raw(q: *const evq_queue, removed: *mut usize) -> evq_status {
    ffi_boundary!(q; {
        // SAFETY: live queue.
        let n = unsafe { queue(q) }.remove_raw_handlers();
        // SAFETY: NULL or writable.
        unsafe { store(removed, n) };
        evq_status::EVQ_OK
    })
}

/// Sets the error hook (replacing any previous one): called on the worker
/// thread after a handler returned nonzero (or a panic was caught inside
/// evqueue), once the failure is counted. Same `user_data` rules as
/// `evq_on`. Any thread.
///
/// # Safety
/// `q` is a live queue.
#[no_mangle]
pub unsafe extern "C" fn evq_on_error(
    q: *const evq_queue,
    hook: evq_error_fn,
    user_data: *mut c_void,
) -> evq_status {
    ffi_boundary!(q; {
        let Some(f) = hook else {
            return fail_with(evq_status::EVQ_NULL_POINTER, "argument `hook` is NULL");
        };
        let cb: Callback<CErrorHook> = Callback { f, user_data };
        // SAFETY: live queue.
        unsafe { queue(q) }.on_error(move |view, failure| {
            let (message, code, panicked) = match failure {
                evq_core::Failure::Error(e) => (
                    e.to_string(),
                    e.downcast_ref::<HandlerFailed>().map_or(0, |h| h.0),
                    false,
                ),
                evq_core::Failure::Panic(m) => (m.to_string(), 0, true),
                _ => (String::from("unknown failure"), 0, false),
            };
            let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
            let failure = evq_failure {
                message: message.as_ptr(),
                message_len: message.as_bytes().len(),
                code,
                panicked,
            };
            let (f, user_data) = cb.parts();
            with_c_event(view, |event| {
                // SAFETY: `event`, `failure` and what they point to live
                // for this call; the hook's contract is in the header.
                unsafe { f(event, &failure, user_data) }
            });
        });
        evq_status::EVQ_OK
    })
}
