//! The shared ring (Linux): a ring in a memory-mapped file that several
//! processes, in any language, push into and claim from. `evq_shared` is
//! the core's `SharedRing` with a multi-producer handle taken at the first
//! push. No workers run here: a consumer claims with `evq_shared_try_claim`
//! and sleeps in `evq_shared_wait` (a futex in the file, no polling); an
//! observer subscribes (`evq_shared_subscribe`) and sees every event
//! without taking any from the workers.

use crate::args::{ascii_event, store, text, with_pairs, Text, INLINE_PROPERTIES};
use crate::boundary::ffi_boundary;
use crate::pull::{pop_buffer_size, write_view};
use crate::status::{fail, fail_with};
use crate::{
    evq_event, evq_payload, evq_shared_counters, evq_status, EVQ_OVERFLOW_OVERWRITE,
    EVQ_OVERFLOW_REJECT, EVQ_START_NOW, EVQ_START_OLDEST,
};
use evq_core::{
    Claim, Event, MpProducer, Overflow, Payload, RecvError, SharedRing, Start, Subscriber,
    EVENT_HEADER_BYTES,
};
use std::ffi::{c_char, OsStr};
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Longest path accepted, in bytes (Linux's `PATH_MAX` less its NUL).
const MAX_PATH_LEN: usize = 4095;

/// A shared ring opened or created by this process. Created by
/// `evq_shared_create` or `evq_shared_open`, destroyed by
/// `evq_shared_free` (which unmaps it; the file stays until
/// `evq_shared_remove`). Every function taking a `const evq_shared*` may be
/// called from any thread, concurrently, until `evq_shared_free`.
pub struct evq_shared {
    ring: Arc<SharedRing>,
    /// Taken at the first push, so that a process that only consumes never
    /// marks the ring as multi-producer (which would keep a single producer
    /// elsewhere from taking it).
    producer: OnceLock<MpProducer<Arc<SharedRing>>>,
}

impl evq_shared {
    fn producer(&self) -> Result<&MpProducer<Arc<SharedRing>>, evq_core::Error> {
        if let Some(p) = self.producer.get() {
            return Ok(p);
        }
        let p = self.ring.mp_producer_owned()?;
        Ok(self.producer.get_or_init(|| p))
    }
}

/// The shared ring behind a handle.
///
/// # Safety
/// `s` is a live handle from `evq_shared_create` or `evq_shared_open`.
unsafe fn shared<'a>(s: *const evq_shared) -> &'a evq_shared {
    // SAFETY: the caller guarantees `s` is live (checked non-NULL by the
    // boundary before this is called).
    unsafe { &*s }
}

/// The path argument: `len` bytes at `ptr` (not NUL-terminated), 1 to
/// 4095 bytes, no NUL byte. Any other bytes are accepted (Linux paths need
/// not be UTF-8). A name without a `/` goes under `/dev/shm`.
///
/// # Safety
/// `ptr` points to `len` readable bytes (or is NULL).
unsafe fn path_arg<'a>(ptr: *const c_char, len: usize) -> Result<&'a Path, evq_status> {
    if ptr.is_null() {
        return Err(fail_with(
            evq_status::EVQ_NULL_POINTER,
            "argument `path` is NULL",
        ));
    }
    if len == 0 || len > MAX_PATH_LEN {
        return Err(fail_with(
            evq_status::EVQ_INVALID_ARGUMENT,
            &format!("path of {len} bytes: it must be 1 to {MAX_PATH_LEN} bytes"),
        ));
    }
    // SAFETY: `len` readable bytes (caller's contract), bounded above.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(fail_with(
            evq_status::EVQ_INVALID_ARGUMENT,
            &format!("path has a NUL byte at offset {at}"),
        ));
    }
    Ok(Path::new(OsStr::from_bytes(bytes)))
}

/// Stores a new handle for `ring` in `*out`.
///
/// # Safety
/// `out` is writable.
unsafe fn hand_out(ring: SharedRing, out: *mut *mut evq_shared) -> evq_status {
    let handle = Box::into_raw(Box::new(evq_shared {
        ring: Arc::new(ring),
        producer: OnceLock::new(),
    }));
    // SAFETY: writable (caller's contract).
    unsafe { out.write(handle) };
    evq_status::EVQ_OK
}

/// Creates a shared ring in a new file `path` (`path_len` bytes, not
/// NUL-terminated; a bare name such as "game-events" goes under `/dev/shm`)
/// with mode 0600, failing if the file exists, and stores a handle to it in
/// `*out`. `capacity` slots (a power of two) of `slot_bytes` bytes (a
/// multiple of 8, as `evq_config`); `overflow` is `EVQ_OVERFLOW_OVERWRITE`
/// or `EVQ_OVERFLOW_REJECT`. Linux only.
///
/// Ownership: the caller owns `*out` and releases it with `evq_shared_free`;
/// the file stays until `evq_shared_remove`. On failure `*out` is NULL, no
/// file is left behind, and the status says why: `EVQ_NULL_POINTER`,
/// `EVQ_INVALID_ARGUMENT` (path empty, too long or with a NUL byte; an
/// unknown overflow), `EVQ_INVALID_CONFIG` (capacity, slot size),
/// `EVQ_SHM_IO` (the file exists, the directory is missing or not
/// writable, no room). Any thread.
///
/// # Safety
/// `path` points to `path_len` readable bytes; `out` points to a writable
/// `evq_shared*`.
#[no_mangle]
pub unsafe extern "C" fn evq_shared_create(
    path: *const c_char,
    path_len: usize,
    capacity: usize,
    slot_bytes: usize,
    overflow: u32,
    out: *mut *mut evq_shared,
) -> evq_status {
    ffi_boundary!(out; {
        // SAFETY: `out` is not NULL (checked) and writable (caller's contract).
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: `path_len` readable bytes (caller's contract).
        let path = match unsafe { path_arg(path, path_len) } {
            Ok(p) => p,
            Err(status) => return status,
        };
        let overflow = match overflow {
            EVQ_OVERFLOW_OVERWRITE => Overflow::Overwrite,
            EVQ_OVERFLOW_REJECT => Overflow::Reject,
            other => {
                return fail_with(
                    evq_status::EVQ_INVALID_ARGUMENT,
                    &format!(
                        "overflow {other} is invalid: it must be EVQ_OVERFLOW_OVERWRITE (0) or EVQ_OVERFLOW_REJECT (1)"
                    ),
                )
            }
        };
        match SharedRing::create(path, capacity, slot_bytes, overflow) {
            // SAFETY: writable (as above).
            Ok(ring) => unsafe { hand_out(ring, out) },
            Err(e) => fail(e),
        }
    })
}

/// Opens the shared ring in the file `path` (as `evq_shared_create`) and
/// stores a handle to it in `*out`. The header, the file's length, the
/// ring state and every slot stamp are validated before the file is
/// mapped: a file that is not a ring, truncated, corrupted or hostile is
/// refused, never a crash. Refuses a file owned by another user.
/// Linux only.
///
/// Ownership: as `evq_shared_create`. On failure `*out` is NULL and the
/// status says why: `EVQ_NULL_POINTER`, `EVQ_INVALID_ARGUMENT` (the path),
/// `EVQ_SHM_IO` (missing, no permission), `EVQ_SHM_INVALID` (the file does
/// not validate; `evq_last_error` names the field). Any thread.
///
/// # Safety
/// `path` points to `path_len` readable bytes; `out` points to a writable
/// `evq_shared*`.
#[no_mangle]
pub unsafe extern "C" fn evq_shared_open(
    path: *const c_char,
    path_len: usize,
    out: *mut *mut evq_shared,
) -> evq_status {
    ffi_boundary!(out; {
        // SAFETY: `out` is not NULL (checked) and writable (caller's contract).
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: `path_len` readable bytes (caller's contract).
        let path = match unsafe { path_arg(path, path_len) } {
            Ok(p) => p,
            Err(status) => return status,
        };
        match SharedRing::open(path) {
            // SAFETY: writable (as above).
            Ok(ring) => unsafe { hand_out(ring, out) },
            Err(e) => fail(e),
        }
    })
}

/// Releases a handle: unmaps the ring in this process. The file and what
/// it holds stay (other processes keep using it; `evq_shared_remove`
/// deletes it). NULL does nothing. Call it once, when no other thread uses
/// the handle.
///
/// # Safety
/// `s` is NULL or a live handle, not used after this call.
#[no_mangle]
pub unsafe extern "C" fn evq_shared_free(s: *mut evq_shared) {
    ffi_boundary!(; {
        if !s.is_null() {
            // SAFETY: a live handle from Box::into_raw, released once
            // (caller's contract).
            drop(unsafe { Box::from_raw(s) });
        }
    })
}

/// Deletes the file `path` (as `evq_shared_create`). Processes that have
/// the ring open keep using it; its memory is freed when the last one
/// releases it. Errors: `EVQ_NULL_POINTER`, `EVQ_INVALID_ARGUMENT` (the
/// path), `EVQ_SHM_IO` (no such file, no permission). Any thread.
///
/// # Safety
/// `path` points to `path_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn evq_shared_remove(path: *const c_char, path_len: usize) -> evq_status {
    ffi_boundary!(; {
        // SAFETY: `path_len` readable bytes (caller's contract).
        let path = match unsafe { path_arg(path, path_len) } {
            Ok(p) => p,
            Err(status) => return status,
        };
        match SharedRing::remove(path) {
            Ok(()) => evq_status::EVQ_OK,
            Err(e) => fail(e),
        }
    })
}

/// Pushes an event into the shared ring, as `evq_push` does (same
/// `evq_event`, same checks, timestamp 0 stamped now), through the
/// handle's multi-producer: any thread, any number at once, any number of
/// processes. Never blocks. Then wakes the processes sleeping in
/// `evq_shared_wait` (no system call when none sleeps). Stores the
/// sequence number in `*seq_out` when not NULL.
///
/// Fails, pushing nothing, with the errors of `evq_push`, and
/// `EVQ_PRODUCER_TAKEN` (a single producer holds the ring, or all 128 of
/// its process entries are held by other processes).
///
/// # Safety
/// `s` is a live handle; `event` points to a readable `evq_event` whose
/// pointers are readable for their lengths; `seq_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn evq_shared_push(
    s: *const evq_shared,
    event: *const evq_event,
    seq_out: *mut u64,
) -> evq_status {
    ffi_boundary!(s, event; {
        // SAFETY: live handle, readable event (caller's contract; non-NULL checked).
        let (shared, e) = unsafe { (shared(s), &*event) };
        if e.name.is_null() {
            return fail_with(evq_status::EVQ_NULL_POINTER, "event name pointer is NULL");
        }
        let producer = match shared.producer() {
            Ok(p) => p,
            Err(err) => return fail(err),
        };
        let emit = |name: &str, pairs: &[(&str, &str)]| {
            let event = Event::new(name)
                .properties(pairs)
                .timestamp(e.timestamp)
                .external(e.external);
            match producer.push_event(&event) {
                Ok(seq) => {
                    shared.ring.wake();
                    // SAFETY: NULL or writable (caller's contract).
                    unsafe { store(seq_out, seq) };
                    evq_status::EVQ_OK
                }
                Err(err) => fail(err),
            }
        };
        let mut storage = [MaybeUninit::uninit(); INLINE_PROPERTIES];
        // SAFETY: the event's texts and properties are readable (caller's contract).
        if let Some((name, pairs)) = unsafe { ascii_event(e, &mut storage) } {
            return emit(name, pairs);
        }
        // Non-ASCII text or a bad argument: each checked in order.
        // SAFETY: the name is readable for `name_len` bytes (caller's contract).
        let name = match unsafe { text(e.name, e.name_len, Text::Name) } {
            Ok(name) => name,
            Err(status) => return status,
        };
        // SAFETY: the properties are readable (caller's contract).
        unsafe { with_pairs(e.properties, e.property_count, |pairs| emit(name, pairs)) }
    })
}

/// Pushes a raw payload into the shared ring: the `len` bytes at `data`
/// (a struct of your own), copied as they are behind the event header, as
/// `evq_push_raw` frames them (timestamp: now), so raw payloads and events
/// may share a ring. At most `slot_bytes - 12` bytes. Through the handle's
/// multi-producer and wake, as `evq_shared_push`: any thread, any number at
/// once, any number of processes; never blocks. Stores the sequence number
/// in `*seq_out` when not NULL. Consumers get it with
/// `evq_shared_try_claim_raw`, or as `EVQ_PAYLOAD_RAW` from
/// `evq_shared_try_claim` and subscribers.
///
/// Fails, pushing nothing, with `EVQ_NULL_POINTER` (`s` NULL, or `data`
/// NULL with `len` > 0), `EVQ_TOO_LARGE`, `EVQ_FULL` (reject policy),
/// `EVQ_CLOSED` or `EVQ_PRODUCER_TAKEN` (a single producer holds the ring,
/// or all 128 of its process entries are held by other processes).
///
/// # Safety
/// `s` is a live handle; `data` points to `len` readable bytes (or is NULL
/// with `len` 0); `seq_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn evq_shared_push_raw(
    s: *const evq_shared,
    data: *const u8,
    len: usize,
    seq_out: *mut u64,
) -> evq_status {
    ffi_boundary!(s; {
        // SAFETY: live handle (caller's contract; non-NULL checked).
        let shared = unsafe { shared(s) };
        // Checked before the producer is taken: a refused push leaves this
        // process's handle as it was.
        let max = shared.ring.slot_bytes().saturating_sub(EVENT_HEADER_BYTES);
        if len > max {
            return fail(evq_core::Error::TooLarge { size: len, max });
        }
        let payload: &[u8] = if len == 0 {
            &[]
        } else if data.is_null() {
            return fail_with(
                evq_status::EVQ_NULL_POINTER,
                &format!("raw payload pointer is NULL with a length of {len}"),
            );
        } else {
            // SAFETY: `len` readable bytes (caller's contract), bounded by
            // the slot size.
            unsafe { std::slice::from_raw_parts(data, len) }
        };
        let pushed = shared
            .producer()
            .and_then(|p| p.push_framed_raw(payload, 0));
        match pushed {
            Ok(seq) => {
                shared.ring.wake();
                // SAFETY: NULL or writable (caller's contract).
                unsafe { store(seq_out, seq) };
                evq_status::EVQ_OK
            }
            Err(err) => fail(err),
        }
    })
}

/// Bytes a buffer for `evq_shared_try_claim` must have on this ring (as
/// `evq_pop_buffer_size`). 0 when `s` is NULL. Any thread.
///
/// # Safety
/// `s` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn evq_shared_buffer_size(s: *const evq_shared) -> usize {
    ffi_boundary!(s; {
        // SAFETY: live handle.
        pop_buffer_size(unsafe { shared(s) }.ring.slot_bytes())
    })
}

/// Claims the next event for the worker group, without waiting, into the
/// caller's `buf` (`buf_len` >= `evq_shared_buffer_size(s)`) and fills
/// `*out` with a view into `buf`, as `evq_try_pop` does. The worker group
/// is shared by every process on the ring: each event goes to exactly one
/// claim, in push order. Events lost before it (overwritten) are passed
/// over and counted; `*lost_out` (when not NULL) gets how many this call
/// passed over, on `EVQ_OK` and `EVQ_EMPTY`. Any thread, any number at
/// once (each with its own buffer).
///
/// Returns `EVQ_OK`, `EVQ_EMPTY` (nothing now: `evq_shared_wait`),
/// `EVQ_CLOSED` (closed and drained), `EVQ_BUFFER_TOO_SMALL` (nothing
/// taken) or `EVQ_MALFORMED` (the slot held bytes that are not an event;
/// they were consumed).
///
/// # Safety
/// `s` is a live handle; `buf` points to `buf_len` writable bytes not used
/// by anyone else during the call; `out` is writable; `lost_out` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn evq_shared_try_claim(
    s: *const evq_shared,
    buf: *mut u8,
    buf_len: usize,
    out: *mut evq_payload,
    lost_out: *mut u64,
) -> evq_status {
    ffi_boundary!(s, buf, out; {
        // SAFETY: live handle; `buf` and `lost_out` as the caller's contract
        // says. The slice ends before `write_view` reads the rest of `buf`.
        let (claim, slot) = match unsafe { claim_into(s, buf, buf_len, lost_out) } {
            Ok((claim, data)) => (claim, data.len()),
            Err(status) => return status,
        };
        // SAFETY: `buf` has `buf_len >= pop_buffer_size(slot)` writable
        // bytes, the claim's bytes in the first `slot`; `out` is writable.
        unsafe { write_view(buf, slot, &claim, out) }
    })
}

/// The claim both `evq_shared_try_claim` and `evq_shared_try_claim_raw`
/// make: checks `buf_len`, claims the next event for the worker group into
/// the first slot's worth of `buf` (passing over lost ones and storing
/// their count in `*lost_out`), and returns the claim and that slice, or
/// the status to return (`EVQ_EMPTY`, or the error).
///
/// # Safety
/// `s` is a live handle; `buf` points to `buf_len` writable bytes not used
/// by anyone else while the slice lives; `lost_out` is NULL or writable.
unsafe fn claim_into<'b>(
    s: *const evq_shared,
    buf: *mut u8,
    buf_len: usize,
    lost_out: *mut u64,
) -> Result<(Claim, &'b mut [u8]), evq_status> {
    // SAFETY: live handle (caller's contract).
    let ring = &unsafe { shared(s) }.ring;
    let slot = ring.slot_bytes();
    let needed = pop_buffer_size(slot);
    if buf_len < needed {
        return Err(fail(RecvError::BufferTooSmall {
            needed,
            got: buf_len,
        }));
    }
    // SAFETY: `buf` has `buf_len >= needed > slot` writable bytes used by
    // no one else (caller's contract).
    let data = unsafe { std::slice::from_raw_parts_mut(buf, slot) };
    let mut lost = 0u64;
    let claim = loop {
        match ring.try_claim(data) {
            Ok(claim) => break claim,
            // Lost events were passed over: count them, look again.
            Err(RecvError::Lagged(n)) => lost += n,
            Err(RecvError::Empty) => {
                // SAFETY: NULL or writable (caller's contract).
                unsafe { store(lost_out, lost) };
                return Err(evq_status::EVQ_EMPTY);
            }
            Err(e) => return Err(fail(e)),
        }
    };
    // SAFETY: NULL or writable (caller's contract).
    unsafe { store(lost_out, lost + claim.lost) };
    Ok((claim, data))
}

/// Claims the next raw payload (pushed with `evq_shared_push_raw`, or a
/// Rust `push_framed_raw`) for the worker group, without waiting, into the
/// caller's `buf` (`buf_len` >= `evq_shared_buffer_size(s)`): its bytes are
/// moved to the start of `buf`, `*len_out` gets their count, `*seq_out`
/// (when not NULL) its sequence number. The worker group and the lost
/// events passed over (`*lost_out`, when not NULL, on `EVQ_OK` and
/// `EVQ_EMPTY`) are those of `evq_shared_try_claim`. Any thread, any number
/// at once (each with its own buffer).
///
/// Returns `EVQ_OK`, `EVQ_EMPTY` (nothing now: `evq_shared_wait`),
/// `EVQ_CLOSED` (closed and drained), `EVQ_BUFFER_TOO_SMALL` (nothing
/// taken) or `EVQ_MALFORMED` (the slot held an event or bytes that are not
/// a framed raw payload; they were consumed, and `evq_last_error` names the
/// sequence number). A ring that carries events and raw payloads both is
/// read with `evq_shared_try_claim`, whose `evq_payload` says which.
///
/// # Safety
/// `s` is a live handle; `buf` points to `buf_len` writable bytes not used
/// by anyone else during the call; `len_out` is writable; `seq_out` and
/// `lost_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn evq_shared_try_claim_raw(
    s: *const evq_shared,
    buf: *mut u8,
    buf_len: usize,
    len_out: *mut usize,
    seq_out: *mut u64,
    lost_out: *mut u64,
) -> evq_status {
    ffi_boundary!(s, buf, len_out; {
        // SAFETY: live handle; `buf` and `lost_out` as the caller's contract says.
        let (claim, data) = match unsafe { claim_into(s, buf, buf_len, lost_out) } {
            Ok(claimed) => claimed,
            Err(status) => return status,
        };
        let range = match claim.payload(data) {
            // The bytes follow the header (`Payload::decode`).
            Ok(Payload::Raw(raw)) => EVENT_HEADER_BYTES..EVENT_HEADER_BYTES + raw.bytes.len(),
            Ok(Payload::Event(_)) => {
                return fail_with(
                    evq_status::EVQ_MALFORMED,
                    &format!(
                        "claim {} holds an event, not a raw payload (it was consumed; evq_shared_try_claim reads both)",
                        claim.seq
                    ),
                )
            }
            Err(_) => {
                return fail_with(
                    evq_status::EVQ_MALFORMED,
                    &format!(
                        "claim {} holds {} bytes that are not a framed raw payload (they were consumed)",
                        claim.seq, claim.len
                    ),
                )
            }
        };
        let len = range.len();
        data.copy_within(range, 0);
        // SAFETY: writable; NULL or writable (caller's contract).
        unsafe {
            len_out.write(len);
            store(seq_out, claim.seq);
        }
        evq_status::EVQ_OK
    })
}

/// Sleeps until the worker group has something at its cursor (an event,
/// or a lost one to pass over), the ring is closed, or `timeout_ms`
/// milliseconds passed (`UINT64_MAX`: no limit). Returns `EVQ_OK` (claim
/// now) or `EVQ_TIMEOUT`. Sleeps on a futex in the file: no polling, and a
/// push from any process (`evq_shared_push`) or `evq_shared_wake` ends it.
/// Any thread.
///
/// # Safety
/// `s` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn evq_shared_wait(s: *const evq_shared, timeout_ms: u64) -> evq_status {
    ffi_boundary!(s; {
        // SAFETY: live handle.
        let ring = &unsafe { shared(s) }.ring;
        if ring.wait(Duration::from_millis(timeout_ms)) {
            evq_status::EVQ_OK
        } else {
            evq_status::EVQ_TIMEOUT
        }
    })
}

/// Wakes every process sleeping in `evq_shared_wait` on this ring (they
/// look again and sleep on if there is nothing). `evq_shared_push` already
/// does this; it is for pushes made by other means. No system call when
/// nobody sleeps. Any thread.
///
/// # Safety
/// `s` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn evq_shared_wake(s: *const evq_shared) -> evq_status {
    ffi_boundary!(s; {
        // SAFETY: live handle.
        unsafe { shared(s) }.ring.wake();
        evq_status::EVQ_OK
    })
}

/// Fills `*out` with a snapshot of the shared ring's counters: those of
/// every process on it, kept in the file. Any thread.
///
/// # Safety
/// `s` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn evq_shared_stats(
    s: *const evq_shared,
    out: *mut evq_shared_counters,
) -> evq_status {
    ffi_boundary!(s, out; {
        // SAFETY: live handle.
        let ring = &unsafe { shared(s) }.ring;
        let r = ring.stats();
        let stats = evq_shared_counters {
            pushed: r.pushed,
            delivered: r.delivered,
            overwritten: r.overwritten,
            rejected: r.rejected,
            depth: r.depth,
            high_water: r.high_water,
            lost: r.lost(),
            capacity: ring.capacity() as u64,
            slot_bytes: ring.slot_bytes() as u64,
        };
        // SAFETY: writable (caller's contract).
        unsafe { out.write(stats) };
        evq_status::EVQ_OK
    })
}

/// A broadcast subscriber on a shared ring: a private cursor that sees
/// every event pushed by any process, independently of the worker group
/// (it takes nothing from `evq_shared_try_claim`). Created by
/// `evq_shared_subscribe`, destroyed by `evq_shared_subscriber_free`. It
/// keeps its own mapping of the ring, so it may outlive the `evq_shared` it
/// came from. Used by one thread at a time (it may move between threads).
pub struct evq_shared_subscriber {
    /// The ring the subscriber reads (its slot size, its futex).
    ring: Arc<SharedRing>,
    sub: Subscriber<Arc<SharedRing>>,
}

/// Creates a broadcast subscriber on the shared ring: it sees every event
/// pushed from now on (`start` = `EVQ_START_NOW`) or every one the ring
/// still holds (`EVQ_START_OLDEST`), as `evq_subscribe`; a subscriber that
/// falls a whole ring behind is told how many it missed (`EVQ_LAGGED`).
/// Workers claiming on the ring are not affected, and a slow subscriber
/// slows no producer. Linux only.
///
/// Ownership: the caller owns `*out` and frees it with
/// `evq_shared_subscriber_free`; it shares the mapping, so `evq_shared_free`
/// of `s` may come first. Errors: `EVQ_NULL_POINTER`,
/// `EVQ_INVALID_ARGUMENT` for an unknown `start` (`*out` is then NULL).
/// Any thread.
///
/// # Safety
/// `s` is a live handle; `out` points to a writable `evq_shared_subscriber*`.
#[no_mangle]
pub unsafe extern "C" fn evq_shared_subscribe(
    s: *const evq_shared,
    start: u32,
    out: *mut *mut evq_shared_subscriber,
) -> evq_status {
    ffi_boundary!(s, out; {
        // SAFETY: `out` is not NULL (checked) and writable (caller's contract).
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
        // SAFETY: live handle.
        let ring = &unsafe { shared(s) }.ring;
        let sub = evq_shared_subscriber {
            ring: ring.clone(),
            sub: ring.subscribe_owned(start),
        };
        // SAFETY: writable (as above).
        unsafe { out.write(Box::into_raw(Box::new(sub))) };
        evq_status::EVQ_OK
    })
}

/// Receives the subscriber's next event, without waiting, into the
/// caller's `buf` (`buf_len` >= `evq_shared_buffer_size` of its ring) and
/// fills `*out` with a view into `buf`, as `evq_shared_try_claim` does:
/// valid until the caller reuses or frees `buf`.
///
/// Returns `EVQ_OK`, `EVQ_EMPTY` (nothing yet: `evq_shared_subscriber_wait`),
/// `EVQ_LAGGED` (lapped: `*lagged_out`, when not NULL, is set to how many
/// events it lost; `*out` is untouched and the next call continues a little
/// past the oldest retained event, as `evq_subscriber_try_recv`),
/// `EVQ_CLOSED` (closed and everything read), `EVQ_BUFFER_TOO_SMALL`
/// (nothing read) or `EVQ_MALFORMED` (the slot held bytes that are not an
/// event; they were passed over). One thread at a time per subscriber.
///
/// # Safety
/// `sub` is a live subscriber used by no other thread; `buf` points to
/// `buf_len` writable bytes not used by anyone else during the call; `out`
/// is writable; `lagged_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn evq_shared_subscriber_try_recv(
    sub: *mut evq_shared_subscriber,
    buf: *mut u8,
    buf_len: usize,
    out: *mut evq_payload,
    lagged_out: *mut u64,
) -> evq_status {
    ffi_boundary!(sub, buf, out; {
        // SAFETY: live subscriber, exclusive (caller's contract).
        let s = unsafe { &mut *sub };
        let slot = s.ring.slot_bytes();
        let needed = pop_buffer_size(slot);
        if buf_len < needed {
            return fail(RecvError::BufferTooSmall { needed, got: buf_len });
        }
        // SAFETY: `buf` has `buf_len >= needed > slot` writable bytes used by
        // no one else (caller's contract); the slice ends before
        // `write_view` reads them.
        let data = unsafe { std::slice::from_raw_parts_mut(buf, slot) };
        match s.sub.try_recv(data) {
            // SAFETY: `buf` has `buf_len >= pop_buffer_size(slot)` writable
            // bytes, the event's bytes in the first `slot`; `out` is writable.
            Ok(claim) => unsafe { write_view(buf, slot, &claim, out) },
            Err(RecvError::Empty) => evq_status::EVQ_EMPTY,
            Err(RecvError::Lagged(n)) => {
                // SAFETY: NULL or writable (caller's contract).
                unsafe { store(lagged_out, n) };
                evq_status::EVQ_LAGGED
            }
            Err(e) => fail(e),
        }
    })
}

/// Sleeps until this subscriber has something to receive (an event, a lap
/// to report), the ring is closed, or `timeout_ms` milliseconds passed
/// (`UINT64_MAX`: no limit). Returns `EVQ_OK` (receive now) or
/// `EVQ_TIMEOUT`. Sleeps on the ring's futex, as `evq_shared_wait`: a push
/// from any process (`evq_shared_push`) or `evq_shared_wake` ends it. One
/// thread at a time per subscriber.
///
/// # Safety
/// `sub` is a live subscriber used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn evq_shared_subscriber_wait(
    sub: *const evq_shared_subscriber,
    timeout_ms: u64,
) -> evq_status {
    ffi_boundary!(sub; {
        // SAFETY: live subscriber (caller's contract).
        let s = unsafe { &*sub };
        if s.ring.wait_for(s.sub.next_seq(), Duration::from_millis(timeout_ms)) {
            evq_status::EVQ_OK
        } else {
            evq_status::EVQ_TIMEOUT
        }
    })
}

/// How many events this subscriber lost to lapping so far (the sum of its
/// `EVQ_LAGGED` counts) in `*missed`. One thread at a time per subscriber.
///
/// # Safety
/// `sub` is a live subscriber; `missed` is writable.
#[no_mangle]
pub unsafe extern "C" fn evq_shared_subscriber_missed(
    sub: *const evq_shared_subscriber,
    missed: *mut u64,
) -> evq_status {
    ffi_boundary!(sub, missed; {
        // SAFETY: live subscriber; writable (caller's contract).
        unsafe { missed.write((*sub).sub.missed()) };
        evq_status::EVQ_OK
    })
}

/// Destroys a subscriber and its share of the mapping. NULL does nothing.
/// Call once, when no other thread uses it; before or after
/// `evq_shared_free` of its ring.
///
/// # Safety
/// `sub` is NULL or a live subscriber used by no other thread, not used
/// after this call.
#[no_mangle]
pub unsafe extern "C" fn evq_shared_subscriber_free(sub: *mut evq_shared_subscriber) {
    ffi_boundary!(; {
        if !sub.is_null() {
            // SAFETY: from Box::into_raw in evq_shared_subscribe, freed once
            // (caller's contract).
            drop(unsafe { Box::from_raw(sub) });
        }
    })
}
