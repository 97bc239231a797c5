//! Queue lifecycle: the default configuration, creating, starting and
//! destroying a queue.

use crate::boundary::ffi_boundary;
use crate::status::{fail, fail_with};
use crate::{
    evq_config, evq_queue, evq_status, lag_of, queue, EVQ_LAG_HEADROOM, EVQ_OVERFLOW_OVERWRITE,
    EVQ_OVERFLOW_REJECT,
};
use evq_core::{EventQueue, Overflow};
use std::time::Duration;

/// The default configuration: 65536 slots of 256 bytes, 8 workers,
/// overwrite when full, claim batch 32, 50 µs spin, 5 s drop deadline,
/// lanes chosen from the worker count, workers 5 nice levels down, lapped
/// workers continue with headroom.
/// Returned by value; any thread.
#[no_mangle]
pub extern "C" fn evq_config_default() -> evq_config {
    ffi_boundary!(; { DEFAULT_CONFIG })
}

pub(crate) const DEFAULT_CONFIG: evq_config = evq_config {
    capacity: 65536,
    slot_bytes: 256,
    workers: 8,
    overflow: EVQ_OVERFLOW_OVERWRITE,
    claim_batch: 32,
    spin_us: 50,
    drop_deadline_ms: 5000,
    lanes: 0,
    worker_nice: 5,
    lag: EVQ_LAG_HEADROOM,
};

/// Creates a queue from `config` (NULL: the defaults) and stores it in
/// `*out`. The workers are not started: register handlers, then call
/// `evq_start`; a queue never started is a pull-mode queue drained with
/// `evq_try_pop`. Events may be pushed at once either way.
///
/// Ownership: the caller owns `*out` and must release it with `evq_free`.
/// `config` is only read during the call. On failure `*out` is set to NULL
/// and the status says why (`EVQ_INVALID_CONFIG`, `EVQ_ALLOC_FAILED`).
/// Any thread.
///
/// # Safety
/// `config` is NULL or points to a readable `evq_config`; `out` points to a
/// writable `evq_queue*`.
#[no_mangle]
pub unsafe extern "C" fn evq_new(
    config: *const evq_config,
    out: *mut *mut evq_queue,
) -> evq_status {
    ffi_boundary!(out; {
        // SAFETY: `out` is not NULL (checked) and writable (caller's contract).
        unsafe { out.write(std::ptr::null_mut()) };
        let c = if config.is_null() {
            evq_config_default()
        } else {
            // SAFETY: not NULL, readable (caller's contract).
            unsafe { config.read() }
        };
        let overflow = match c.overflow {
            EVQ_OVERFLOW_OVERWRITE => Overflow::Overwrite,
            EVQ_OVERFLOW_REJECT => Overflow::Reject,
            other => {
                return fail_with(
                    evq_status::EVQ_INVALID_CONFIG,
                    &format!(
                        "overflow {other} is invalid: it must be EVQ_OVERFLOW_OVERWRITE (0) or EVQ_OVERFLOW_REJECT (1)"
                    ),
                )
            }
        };
        let Some(lag) = lag_of(c.lag) else {
            return fail_with(
                evq_status::EVQ_INVALID_CONFIG,
                &format!(
                    "lag {} is invalid: it must be EVQ_LAG_HEADROOM (0), EVQ_LAG_OLDEST (1) or EVQ_LAG_NEWEST (2)",
                    c.lag
                ),
            );
        };
        let built = EventQueue::builder()
            .capacity(c.capacity)
            .slot_bytes(c.slot_bytes)
            .workers(c.workers)
            .overflow(overflow)
            .lag(lag)
            .claim_batch(c.claim_batch as usize)
            .spin_for(Duration::from_micros(c.spin_us))
            .drop_deadline(Duration::from_millis(c.drop_deadline_ms))
            .lanes(c.lanes as usize)
            // Out of u8's range is out of range: refused as such.
            .worker_nice(u8::try_from(c.worker_nice).unwrap_or(u8::MAX))
            .build_paused();
        match built {
            Ok(queue) => {
                let q = Box::into_raw(Box::new(evq_queue { queue }));
                // SAFETY: as above.
                unsafe { out.write(q) };
                evq_status::EVQ_OK
            }
            Err(e) => fail(e),
        }
    })
}

/// Starts the worker threads (once). Fails with `EVQ_ALREADY_STARTED` the
/// second time, `EVQ_CLOSED` after shutdown, `EVQ_SPAWN_FAILED` if a thread
/// cannot start (the queue is then shut down). Any thread.
///
/// # Safety
/// `q` is a live queue from `evq_new`.
#[no_mangle]
pub unsafe extern "C" fn evq_start(q: *const evq_queue) -> evq_status {
    ffi_boundary!(q; {
        // SAFETY: live queue (caller's contract), not NULL (checked).
        match unsafe { queue(q) }.start() {
            Ok(()) => evq_status::EVQ_OK,
            Err(e) => fail(e),
        }
    })
}

/// Destroys a queue: if it was not shut down, shuts it down first with the
/// configured drop deadline (workers drain what they can, then are joined),
/// then releases the handlers, and the memory. `evq_free(NULL)` does
/// nothing.
///
/// Call it once, when no other thread uses `q` any more; afterwards `q` is
/// dangling. Subscribers stay valid (free them with `evq_subscriber_free`).
/// Called from inside one of this queue's own handlers it cannot join that
/// worker: it closes the queue and the workers exit on their own.
///
/// # Safety
/// `q` is NULL or a live queue from `evq_new` not used by any other thread.
#[no_mangle]
pub unsafe extern "C" fn evq_free(q: *mut evq_queue) {
    ffi_boundary!(; {
        if !q.is_null() {
            // SAFETY: `q` came from Box::into_raw in evq_new and is freed
            // once (caller's contract).
            drop(unsafe { Box::from_raw(q) });
        }
    })
}
