//! The `repr(C)` types of the ABI and the conversions between them and the
//! core's types.

use evq_core::{EventView, RawView};
use std::ffi::{c_char, c_int, c_void};

/// `evq_config.overflow`: when the workers are a whole ring behind, the
/// oldest unhandled event is overwritten and counted (the default).
pub const EVQ_OVERFLOW_OVERWRITE: u32 = 0;
/// `evq_config.overflow`: when the workers are a whole ring behind, a push
/// fails with `EVQ_FULL` and is counted.
pub const EVQ_OVERFLOW_REJECT: u32 = 1;

/// `evq_config.lag` and `evq_subscriber_set_lag`: a reader that was lapped
/// continues an eighth of the ring past the oldest event it still holds, so
/// a reader slower than the producers gets runs of consecutive events (the
/// default).
pub const EVQ_LAG_HEADROOM: u32 = 0;
/// `evq_config.lag` and `evq_subscriber_set_lag`: a lapped reader continues
/// at the oldest event the ring holds (loses the fewest once producers
/// stop; a slower reader is lapped again at once while they run).
pub const EVQ_LAG_OLDEST: u32 = 1;
/// `evq_config.lag` and `evq_subscriber_set_lag`: a lapped reader continues
/// at the newest event.
pub const EVQ_LAG_NEWEST: u32 = 2;

/// `evq_subscribe` start: with the next event pushed.
pub const EVQ_START_NOW: u32 = 0;
/// `evq_subscribe` start: with the oldest event the ring still holds.
pub const EVQ_START_OLDEST: u32 = 1;

/// `evq_payload.kind`: an event (read `event`).
pub const EVQ_PAYLOAD_EVENT: u32 = 0;
/// `evq_payload.kind`: a raw payload pushed with `evq_push_raw` (read `raw`).
pub const EVQ_PAYLOAD_RAW: u32 = 1;

/// The core's lag policy for an `EVQ_LAG_*` value; `None` for any other.
pub(crate) fn lag_of(lag: u32) -> Option<evq_core::Lag> {
    match lag {
        EVQ_LAG_HEADROOM => Some(evq_core::Lag::Headroom),
        EVQ_LAG_OLDEST => Some(evq_core::Lag::Oldest),
        EVQ_LAG_NEWEST => Some(evq_core::Lag::Newest),
        _ => None,
    }
}

/// A queue's configuration. Start from `evq_config_default()` and change
/// fields; `evq_new` validates every field.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct evq_config {
    /// Slots in the ring: a nonzero power of two, at most 2^30. Default 65536.
    pub capacity: usize,
    /// Bytes per slot (the largest encoded event): a multiple of 8 from 16
    /// to 1 MiB. Default 256.
    pub slot_bytes: usize,
    /// Worker threads started by `evq_start`, 1 to 1024. Default 8.
    pub workers: usize,
    /// `EVQ_OVERFLOW_OVERWRITE` (default) or `EVQ_OVERFLOW_REJECT`.
    pub overflow: u32,
    /// Events a worker claims at once, 1 to 1024 (handlers still get them
    /// one at a time). Default 32.
    pub claim_batch: u32,
    /// Microseconds an idle worker spins before it parks. Default 50.
    pub spin_us: u64,
    /// Milliseconds `evq_free` waits for the workers to drain the ring when
    /// the queue was not shut down first. Default 5000.
    pub drop_deadline_ms: u64,
    /// Lanes for keyed events (`evq_push_keyed`): 0 (the default) for the
    /// smallest power of two at least 4 x `workers`, else a power of two up
    /// to 4096. Each lane is a ring of `capacity / lanes` slots (at least 16)
    /// handled by one worker at a time.
    pub lanes: u32,
    /// How many nice levels below the thread that calls `evq_start` the
    /// workers run (Linux; elsewhere ignored), 0 to 39. Default 5: when
    /// handlers keep every core busy, the threads that push get the CPU
    /// first; 0 keeps the workers at their priority (more events handled
    /// under overload).
    pub worker_nice: u32,
    /// Where the workers continue when producers lapped them:
    /// `EVQ_LAG_HEADROOM` (default), `EVQ_LAG_OLDEST` or `EVQ_LAG_NEWEST`.
    /// Every event passed over is counted as overwritten either way.
    pub lag: u32,
}

/// Longest ordering key of `evq_push_keyed`, in bytes.
pub const EVQ_MAX_ORDERING_KEY_LEN: usize = 256;
// A literal above so cbindgen can copy it; held equal to the core's here.
const _: () = assert!(EVQ_MAX_ORDERING_KEY_LEN == evq_core::lane::MAX_ORDERING_KEY_LEN);

/// One property: a key and a value, each a pointer and a length in bytes
/// (UTF-8, not NUL-terminated). Keys are 1 to 255 bytes, values 0 to 65535;
/// a value pointer may be NULL when its length is 0.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
pub struct evq_property {
    /// The key's bytes.
    pub key: *const c_char,
    /// Length of the key in bytes.
    pub key_len: usize,
    /// The value's bytes.
    pub value: *const c_char,
    /// Length of the value in bytes.
    pub value_len: usize,
}

impl evq_property {
    pub(crate) fn from_pair((key, value): (&str, &str)) -> evq_property {
        evq_property {
            key: key.as_ptr().cast(),
            key_len: key.len(),
            value: value.as_ptr().cast(),
            value_len: value.len(),
        }
    }
}

/// An event: what `evq_push` reads, and what handlers, `evq_try_pop` and
/// subscribers hand back (then as a view: every pointer in it points into
/// memory whose owner and lifetime the function that produced it documents).
/// Strings are UTF-8 with a length, not NUL-terminated.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
pub struct evq_event {
    /// Sequence number the queue assigned. Ignored by `evq_push`.
    pub seq: u64,
    /// The name's bytes: 1 to 255 bytes of UTF-8.
    pub name: *const c_char,
    /// Length of the name in bytes.
    pub name_len: usize,
    /// `property_count` properties (may be NULL when the count is 0).
    pub properties: *const evq_property,
    /// Number of properties.
    pub property_count: usize,
    /// Nanoseconds since the Unix epoch; 0 in `evq_push` means "stamp it at
    /// push time" (the clock of `evq_now`).
    pub timestamp: u64,
    /// True when a client sent the event rather than the server.
    pub external: bool,
}

impl evq_event {
    /// A view of `view` whose properties are `props` (already filled from it).
    pub(crate) fn from_view(view: &EventView<'_>, props: &[evq_property]) -> evq_event {
        evq_event {
            seq: view.seq,
            name: view.name.as_ptr().cast(),
            name_len: view.name.len(),
            properties: if props.is_empty() {
                std::ptr::null()
            } else {
                props.as_ptr()
            },
            property_count: props.len(),
            timestamp: view.timestamp,
            external: view.external,
        }
    }

    pub(crate) const EMPTY: evq_event = evq_event {
        seq: 0,
        name: std::ptr::null(),
        name_len: 0,
        properties: std::ptr::null(),
        property_count: 0,
        timestamp: 0,
        external: false,
    };
}

/// A raw payload as handed back by raw handlers, `evq_try_pop` and
/// subscribers: the bytes given to `evq_push_raw`, as a view.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
pub struct evq_raw {
    /// Sequence number the queue assigned.
    pub seq: u64,
    /// Nanoseconds since the Unix epoch (as pushed; 0 was replaced by "now").
    pub timestamp: u64,
    /// The payload bytes (NULL when `len` is 0).
    pub bytes: *const u8,
    /// Payload length in bytes.
    pub len: usize,
}

impl evq_raw {
    pub(crate) fn from_view(raw: &RawView<'_>) -> evq_raw {
        evq_raw {
            seq: raw.seq,
            timestamp: raw.timestamp,
            bytes: if raw.bytes.is_empty() {
                std::ptr::null()
            } else {
                raw.bytes.as_ptr()
            },
            len: raw.bytes.len(),
        }
    }

    pub(crate) const EMPTY: evq_raw = evq_raw {
        seq: 0,
        timestamp: 0,
        bytes: std::ptr::null(),
        len: 0,
    };
}

/// What `evq_try_pop` and the subscriber receives produce: an event or a raw
/// payload, as `kind` says (`EVQ_PAYLOAD_EVENT` or `EVQ_PAYLOAD_RAW`); the
/// other member is zeroed.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
pub struct evq_payload {
    /// `EVQ_PAYLOAD_EVENT` or `EVQ_PAYLOAD_RAW`.
    pub kind: u32,
    /// The event, when `kind` is `EVQ_PAYLOAD_EVENT`.
    pub event: evq_event,
    /// The raw payload, when `kind` is `EVQ_PAYLOAD_RAW`.
    pub raw: evq_raw,
}

impl evq_payload {
    /// An event whose properties are `props` (already converted).
    pub(crate) fn event(view: &EventView<'_>, props: &[evq_property]) -> evq_payload {
        evq_payload {
            kind: EVQ_PAYLOAD_EVENT,
            event: evq_event::from_view(view, props),
            raw: evq_raw::EMPTY,
        }
    }

    /// A raw payload.
    pub(crate) fn raw(raw: &RawView<'_>) -> evq_payload {
        evq_payload {
            kind: EVQ_PAYLOAD_RAW,
            event: evq_event::EMPTY,
            raw: evq_raw::from_view(raw),
        }
    }
}

/// How a handler failed, as passed to the error hook.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
pub struct evq_failure {
    /// A NUL-terminated description (`message_len` bytes before the NUL).
    pub message: *const c_char,
    /// Length of the message in bytes, without the NUL.
    pub message_len: usize,
    /// The nonzero value a C handler returned; 0 when the failure was not a
    /// C handler's return value (a panic inside evqueue).
    pub code: c_int,
    /// True when the failure was a panic caught inside evqueue.
    pub panicked: bool,
}

/// A snapshot of a queue's counters, each read atomically (not all at
/// once). Once the queue is quiet:
/// `pushed = handled + popped + lost + depth`, where
/// `lost = overwritten + rejected` (`pushed` includes rejected pushes).
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct evq_queue_stats {
    /// Pushes that reached the queue while it was open (accepted or rejected).
    pub pushed: u64,
    /// Events claimed by the workers or popped.
    pub delivered: u64,
    /// Events whose handlers have all returned (including failed ones).
    pub handled: u64,
    /// Events taken by `evq_try_pop`.
    pub popped: u64,
    /// Events lost because they were overwritten before anyone claimed them.
    pub overwritten: u64,
    /// Pushes refused under `EVQ_OVERFLOW_REJECT`.
    pub rejected: u64,
    /// Handler errors (nonzero returns), all names together.
    pub handler_errors: u64,
    /// Panics caught inside evqueue while running handlers.
    pub panics: u64,
    /// Events in the ring not yet claimed or popped.
    pub depth: u64,
    /// Highest depth sampled.
    pub high_water: u64,
    /// Slots in the ring.
    pub capacity: u64,
    /// Worker threads configured.
    pub workers: u64,
    /// Workers inside a claim or a handler at the time of the snapshot.
    pub busy_workers: u64,
    /// Live subscribers.
    pub subscribers: u64,
    /// Largest lag among the live subscribers (events pushed, not yet read).
    pub max_subscriber_lag: u64,
    /// Events lost: `overwritten + rejected`.
    pub lost: u64,
}

/// What `evq_shutdown` reports. Once the workers are joined,
/// `pushed = handled + popped + lost + left`, where
/// `lost = overwritten + rejected` (`pushed` includes rejected pushes).
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct evq_shutdown_report {
    /// Events pushed while the queue was open (accepted or rejected).
    pub pushed: u64,
    /// Events the workers dispatched to their handlers.
    pub handled: u64,
    /// Events taken by `evq_try_pop`.
    pub popped: u64,
    /// Events lost because they were overwritten before anyone claimed them.
    pub overwritten: u64,
    /// Pushes refused under `EVQ_OVERFLOW_REJECT`.
    pub rejected: u64,
    /// Handler errors returned.
    pub errors: u64,
    /// Panics caught inside evqueue while running handlers.
    pub panics: u64,
    /// Events still in the ring, unhandled, when the deadline passed.
    pub left: u64,
    /// True when the deadline passed before the workers drained the ring.
    pub timed_out: bool,
    /// Events lost: `overwritten + rejected`.
    pub lost: u64,
}

/// An event handler: called on a worker thread with a view of the event
/// (valid only for the duration of the call: copy what you keep) and the
/// `user_data` given at registration. Return 0 for success; any other value
/// counts as a handler error and reaches the error hook as `code`. It may
/// call `evq_push*` (never blocks) but not `evq_flush`/`evq_shutdown`
/// (`EVQ_IN_HANDLER`). It must not unwind (no C++ exception may escape it).
#[allow(non_camel_case_types)]
pub type evq_handler_fn =
    Option<unsafe extern "C" fn(event: *const evq_event, user_data: *mut c_void) -> c_int>;

/// A raw payload handler: as `evq_handler_fn`, for payloads pushed with
/// `evq_push_raw`; the view is valid only for the duration of the call.
#[allow(non_camel_case_types)]
pub type evq_raw_handler_fn =
    Option<unsafe extern "C" fn(raw: *const evq_raw, user_data: *mut c_void) -> c_int>;

/// The error hook: called on the worker thread after a handler failed (and
/// after the failure was counted), with a view of the event and of the
/// failure, both valid only for the duration of the call. For a failed raw
/// handler, `event` has the raw payload's `seq` and `timestamp`, the name
/// `"<raw>"` and no properties. It must not unwind.
#[allow(non_camel_case_types)]
pub type evq_error_fn = Option<
    unsafe extern "C" fn(
        event: *const evq_event,
        failure: *const evq_failure,
        user_data: *mut c_void,
    ),
>;

/// A snapshot of a shared ring's counters (filled by `evq_shared_stats`), kept in the
/// file and so common to every process on the ring; each read atomically,
/// not all at once. Once the ring is quiet:
/// `pushed = delivered + overwritten + rejected + depth`, and
/// `lost = overwritten + rejected`. Linux only.
#[cfg(target_os = "linux")]
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct evq_shared_counters {
    /// Pushes that reached the ring while it was open (accepted or rejected).
    pub pushed: u64,
    /// Events claimed by the worker group (`evq_shared_try_claim`, and the
    /// claims of other processes).
    pub delivered: u64,
    /// Events lost because they were overwritten before anyone claimed them.
    pub overwritten: u64,
    /// Pushes refused under `EVQ_OVERFLOW_REJECT`.
    pub rejected: u64,
    /// Events in the ring not yet claimed.
    pub depth: u64,
    /// Highest depth sampled.
    pub high_water: u64,
    /// `overwritten + rejected`.
    pub lost: u64,
    /// Slots in the ring.
    pub capacity: u64,
    /// Bytes per slot.
    pub slot_bytes: u64,
}
