//! The queue's counters, as a struct and in the Prometheus text format.

use crate::args::store;
use crate::boundary::ffi_boundary;
use crate::status::fail_with;
use crate::{evq_queue, evq_queue_stats, evq_status, queue};
use std::ffi::c_char;

/// Fills `*out` with a snapshot of the queue's counters. Any thread.
///
/// # Safety
/// `q` is a live queue; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn evq_stats(q: *const evq_queue, out: *mut evq_queue_stats) -> evq_status {
    ffi_boundary!(q, out; {
        // SAFETY: live queue.
        let s = unsafe { queue(q) }.stats();
        let c = evq_queue_stats {
            pushed: s.ring.pushed,
            delivered: s.ring.delivered,
            handled: s.handled,
            popped: s.popped,
            overwritten: s.ring.overwritten,
            rejected: s.ring.rejected,
            handler_errors: s.handler_errors,
            panics: s.panics,
            depth: s.ring.depth,
            high_water: s.ring.high_water,
            capacity: s.capacity as u64,
            workers: s.workers as u64,
            busy_workers: s.busy_workers as u64,
            subscribers: s.subscribers.len() as u64,
            max_subscriber_lag: s.subscribers.iter().map(|x| x.lag).max().unwrap_or(0),
            lost: s.lost(),
        };
        // SAFETY: writable.
        unsafe { out.write(c) };
        evq_status::EVQ_OK
    })
}

/// Renders the counters in the Prometheus text format into `buf`
/// (`buf_len` bytes, NUL-terminated). Stores the bytes needed, NUL included,
/// in `*needed` when not NULL. Returns `EVQ_BUFFER_TOO_SMALL` (writing
/// nothing) when `buf_len` is less than that; a NULL `buf` with `buf_len` 0
/// asks for the size. A NULL `buf` with any other length is
/// `EVQ_NULL_POINTER` (and `*needed` is not written). Any thread.
///
/// # Safety
/// `q` is a live queue; `buf` points to `buf_len` writable bytes (or is
/// NULL with 0); `needed` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn evq_stats_prometheus(
    q: *const evq_queue,
    buf: *mut c_char,
    buf_len: usize,
    needed: *mut usize,
) -> evq_status {
    ffi_boundary!(q; {
        // NULL with 0 is the size query; NULL with a length is an error,
        // whether or not that length would have been enough.
        if buf.is_null() && buf_len > 0 {
            return fail_with(evq_status::EVQ_NULL_POINTER, "argument `buf` is NULL");
        }
        // SAFETY: live queue.
        let text = unsafe { queue(q) }.stats().to_prometheus();
        let need = text.len() + 1;
        // SAFETY: NULL or writable.
        unsafe { store(needed, need) };
        if buf_len < need {
            return fail_with(
                evq_status::EVQ_BUFFER_TOO_SMALL,
                &format!(
                    "buffer of {buf_len} bytes is smaller than the {need} bytes of the \
                     metrics text (with its NUL)"
                ),
            );
        }
        // SAFETY: `buf` is not NULL (checked above, and `buf_len >= need > 0`)
        // and has `buf_len >= need` writable bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
            buf.add(text.len()).write(0);
        }
        evq_status::EVQ_OK
    })
}
