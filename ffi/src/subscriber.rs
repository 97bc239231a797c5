//! Subscribers: creating one, receiving (with or without waiting), its lag,
//! and freeing it.

use crate::args::store;
use crate::boundary::ffi_boundary;
use crate::status::{fail, fail_with};
use crate::{
    evq_payload, evq_property, evq_queue, evq_status, evq_subscriber, lag_of, queue, EVQ_START_NOW,
    EVQ_START_OLDEST,
};
use evq_core::{max_properties, Payload, Start};
use std::time::Duration;

/// Creates a broadcast subscriber: it sees every event and raw payload
/// pushed from now on (`start` = `EVQ_START_NOW`) or every one the ring
/// still holds (`EVQ_START_OLDEST`), independently of the workers; a
/// subscriber that falls a whole ring behind is told how many it missed
/// (`EVQ_LAGGED`). Ownership: the caller owns `*out` and frees it with
/// `evq_subscriber_free`. Any thread. Errors: `EVQ_INVALID_ARGUMENT` for an
/// unknown `start` (`*out` is then NULL).
///
/// # Safety
/// `q` is a live queue; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn evq_subscribe(
    q: *const evq_queue,
    start: u32,
    out: *mut *mut evq_subscriber,
) -> evq_status {
    ffi_boundary!(q, out; {
        // SAFETY: writable (caller's contract).
        unsafe { out.write(std::ptr::null_mut()) };
        let start = match start {
            EVQ_START_NOW => Start::Now,
            EVQ_START_OLDEST => Start::Oldest,
            other => {
                return fail_with(
                    evq_status::EVQ_INVALID_ARGUMENT,
                    &format!("start {other} is invalid: it must be EVQ_START_NOW (0) or EVQ_START_OLDEST (1)"),
                )
            }
        };
        // SAFETY: live queue.
        let queue = unsafe { queue(q) };
        let sub = evq_subscriber {
            sub: queue.subscribe(start),
            // Enough for most events without reallocating; an event with more
            // properties grows it once (the capacity is kept).
            props: Vec::with_capacity(max_properties(queue.slot_bytes()).min(64)),
        };
        // SAFETY: writable.
        unsafe { out.write(Box::into_raw(Box::new(sub))) };
        evq_status::EVQ_OK
    })
}

impl evq_subscriber {
    /// Converts a received payload into `*out`, pointing into this
    /// subscriber's buffers.
    fn fill(props: &mut Vec<evq_property>, payload: Payload<'_>) -> evq_payload {
        match payload {
            Payload::Event(view) => {
                props.clear();
                props.extend(view.properties().iter().map(evq_property::from_pair));
                evq_payload::event(&view, props)
            }
            Payload::Raw(raw) => evq_payload::raw(&raw),
        }
    }
}

/// Receives the next event or raw payload without waiting into `*out`: a
/// view into the subscriber's own buffers, valid until the next receive on
/// this subscriber or its `evq_subscriber_free`.
///
/// Returns `EVQ_OK`, `EVQ_EMPTY` (nothing yet), `EVQ_LAGGED` (the subscriber
/// was lapped: `*missed`, when not NULL, is set to how many events it
/// lost; `*out` is untouched and the next call continues a little past the
/// oldest retained event), or `EVQ_CLOSED` (shut down and everything
/// read). One thread at a time per subscriber.
///
/// # Safety
/// `sub` is a live subscriber used by no other thread; `out` is writable;
/// `missed` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn evq_subscriber_try_recv(
    sub: *mut evq_subscriber,
    out: *mut evq_payload,
    missed: *mut u64,
) -> evq_status {
    ffi_boundary!(sub, out; {
        // SAFETY: live subscriber, exclusive (caller's contract).
        let s = unsafe { &mut *sub };
        match s.sub.try_recv_payload() {
            Ok(payload) => {
                let p = evq_subscriber::fill(&mut s.props, payload);
                // SAFETY: writable.
                unsafe { out.write(p) };
                evq_status::EVQ_OK
            }
            Err(evq_core::RecvError::Empty) => evq_status::EVQ_EMPTY,
            Err(evq_core::RecvError::Lagged(n)) => {
                // SAFETY: NULL or writable.
                unsafe { store(missed, n) };
                evq_status::EVQ_LAGGED
            }
            Err(e) => fail(e),
        }
    })
}

/// As `evq_subscriber_try_recv`, but waits up to `timeout_ms` milliseconds
/// for something to arrive (`UINT64_MAX`: no limit): `EVQ_TIMEOUT`
/// when nothing did (a heartbeat: time to send a keep-alive). Blocks only
/// the calling thread (called from a handler, it holds up that worker for
/// as long). One thread at a time per subscriber.
///
/// # Safety
/// As `evq_subscriber_try_recv`.
#[no_mangle]
pub unsafe extern "C" fn evq_subscriber_recv_timeout(
    sub: *mut evq_subscriber,
    timeout_ms: u64,
    out: *mut evq_payload,
    missed: *mut u64,
) -> evq_status {
    ffi_boundary!(sub, out; {
        // SAFETY: live subscriber, exclusive (caller's contract).
        let s = unsafe { &mut *sub };
        match s.sub.recv_payload_timeout(Duration::from_millis(timeout_ms)) {
            Ok(payload) => {
                let p = evq_subscriber::fill(&mut s.props, payload);
                // SAFETY: writable.
                unsafe { out.write(p) };
                evq_status::EVQ_OK
            }
            Err(evq_core::RecvTimeoutError::Timeout) => evq_status::EVQ_TIMEOUT,
            Err(evq_core::RecvTimeoutError::Lagged(n)) => {
                // SAFETY: NULL or writable.
                unsafe { store(missed, n) };
                evq_status::EVQ_LAGGED
            }
            Err(e) => fail(e),
        }
    })
}

/// Sets where this subscriber continues when it is lapped, from its next
/// receive on: `EVQ_LAG_HEADROOM` (the default), `EVQ_LAG_OLDEST` or
/// `EVQ_LAG_NEWEST`. Events passed over are reported as `EVQ_LAGGED` with
/// their count either way. Errors: `EVQ_INVALID_ARGUMENT` for another value
/// (nothing changes). One thread at a time per subscriber.
///
/// # Safety
/// `sub` is a live subscriber used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn evq_subscriber_set_lag(sub: *mut evq_subscriber, lag: u32) -> evq_status {
    ffi_boundary!(sub; {
        let Some(lag) = lag_of(lag) else {
            return fail_with(
                evq_status::EVQ_INVALID_ARGUMENT,
                &format!(
                    "lag {lag} is invalid: it must be EVQ_LAG_HEADROOM (0), EVQ_LAG_OLDEST (1) or EVQ_LAG_NEWEST (2)"
                ),
            );
        };
        // SAFETY: live subscriber, used by this thread only (caller's contract).
        unsafe { (*sub).sub.set_lag(lag) };
        evq_status::EVQ_OK
    })
}

/// Events pushed and not yet read by this subscriber (its current lag) in
/// `*lag`, and how many it lost to lapping so far in `*missed`; either may
/// be NULL. One thread at a time per subscriber.
///
/// # Safety
/// `sub` is a live subscriber; `lag` and `missed` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn evq_subscriber_lag(
    sub: *const evq_subscriber,
    lag: *mut u64,
    missed: *mut u64,
) -> evq_status {
    ffi_boundary!(sub; {
        // SAFETY: live subscriber.
        let s = unsafe { &*sub };
        // SAFETY: NULL or writable.
        unsafe {
            store(lag, s.sub.lag());
            store(missed, s.sub.missed());
        }
        evq_status::EVQ_OK
    })
}

/// Destroys a subscriber (and the views it handed out). NULL does nothing.
/// Call once, when no other thread uses it; before or after `evq_free` of
/// its queue.
///
/// # Safety
/// `sub` is NULL or a live subscriber used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn evq_subscriber_free(sub: *mut evq_subscriber) {
    ffi_boundary!(; {
        if !sub.is_null() {
            // SAFETY: from Box::into_raw in evq_subscribe, freed once.
            drop(unsafe { Box::from_raw(sub) });
        }
    })
}
