//! Waiting on the queue: flush and shutdown.

use crate::args::store;
use crate::boundary::{ffi_boundary, set_last_error};
use crate::status::fail;
use crate::{evq_queue, evq_shutdown_report, evq_status, queue};
use std::time::Duration;

/// Waits up to `timeout_ms` milliseconds (`UINT64_MAX`: no limit) until every
/// event pushed before this call has been handled or counted lost. Events
/// pushed meanwhile are not waited for. On a queue never started (pull
/// mode) it waits for `evq_try_pop` on other threads to take them. Returns
/// `EVQ_OK`, `EVQ_TIMEOUT`, `EVQ_SHUT_DOWN` (shut down with events left
/// unhandled), or `EVQ_IN_HANDLER` (called from a handler of this queue).
/// Any thread but this queue's workers.
///
/// # Safety
/// `q` is a live queue.
#[no_mangle]
pub unsafe extern "C" fn evq_flush(q: *const evq_queue, timeout_ms: u64) -> evq_status {
    ffi_boundary!(q; {
        // SAFETY: live queue.
        match unsafe { queue(q) }.flush(Duration::from_millis(timeout_ms)) {
            Ok(()) => evq_status::EVQ_OK,
            Err(e) => fail(e),
        }
    })
}

/// Shuts the queue down: pushes fail with `EVQ_CLOSED` from now on; the
/// workers drain the ring until it is empty or `timeout_ms` (`UINT64_MAX`:
/// no limit) has passed, and are joined; then the handlers are released. Fills
/// `*report` when not NULL. Returns `EVQ_OK`, `EVQ_TIMEOUT` (the deadline
/// passed: the report is still filled, with `timed_out` set and `left`
/// counting what stayed), or `EVQ_IN_HANDLER`. Calling it again reports the
/// first shutdown. The queue must still be released with `evq_free`. Any
/// thread but this queue's workers.
///
/// # Safety
/// `q` is a live queue; `report` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn evq_shutdown(
    q: *const evq_queue,
    timeout_ms: u64,
    report: *mut evq_shutdown_report,
) -> evq_status {
    ffi_boundary!(q; {
        // SAFETY: live queue.
        match unsafe { queue(q) }.shutdown(Duration::from_millis(timeout_ms)) {
            Ok(r) => {
                let c = evq_shutdown_report {
                    pushed: r.pushed,
                    handled: r.handled,
                    popped: r.popped,
                    overwritten: r.overwritten,
                    rejected: r.rejected,
                    errors: r.errors,
                    panics: r.panics,
                    left: r.left,
                    timed_out: r.timed_out,
                    lost: r.lost(),
                };
                // SAFETY: NULL or writable.
                unsafe { store(report, c) };
                if r.timed_out {
                    set_last_error(&format!(
                        "shutdown deadline passed with {} events left unhandled",
                        r.left
                    ));
                    evq_status::EVQ_TIMEOUT
                } else {
                    evq_status::EVQ_OK
                }
            }
            Err(e) => fail(e),
        }
    })
}
