//! Pull mode: popping events into the caller's buffer.

use crate::boundary::ffi_boundary;
use crate::status::fail;
use crate::{evq_payload, evq_property, evq_queue, evq_status, queue};
use evq_core::{max_properties, Claim, Payload};

/// Bytes a buffer for `evq_try_pop` must have on this queue: the slot
/// size plus room for the property array of the largest event a slot can
/// hold (and alignment). 0 when `q` is NULL. Any thread.
///
/// # Safety
/// `q` is NULL or a live queue.
#[no_mangle]
pub unsafe extern "C" fn evq_pop_buffer_size(q: *const evq_queue) -> usize {
    ffi_boundary!(q; {
        // SAFETY: live queue.
        pop_buffer_size(unsafe { queue(q) }.slot_bytes())
    })
}

pub(crate) fn pop_buffer_size(slot_bytes: usize) -> usize {
    slot_bytes
        + std::mem::align_of::<evq_property>()
        + max_properties(slot_bytes) * std::mem::size_of::<evq_property>()
}

/// Pull mode: takes the next event or raw payload, without waiting, into
/// the caller's `buf` (`buf_len` >= `evq_pop_buffer_size(q)`), and fills
/// `*out` with a view into `buf` (the event's name, keys, values and
/// property array all live in `buf`): valid until the caller reuses or
/// frees `buf`. Shares the workers' cursor: each event goes to exactly one
/// worker or one pop. Works whether or not `evq_start` was called, and after
/// shutdown until the ring is drained. Any thread, any number at once (each
/// with its own buffer).
///
/// Returns `EVQ_OK`, `EVQ_EMPTY` (nothing now), `EVQ_CLOSED` (shut down and
/// drained) or `EVQ_BUFFER_TOO_SMALL` (nothing taken).
///
/// # Safety
/// `q` is a live queue; `buf` points to `buf_len` writable bytes not used
/// by anyone else during the call; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn evq_try_pop(
    q: *const evq_queue,
    buf: *mut u8,
    buf_len: usize,
    out: *mut evq_payload,
) -> evq_status {
    ffi_boundary!(q, buf, out; {
        // SAFETY: live queue.
        let queue = unsafe { queue(q) };
        let slot = queue.slot_bytes();
        let needed = pop_buffer_size(slot);
        if buf_len < needed {
            return fail(evq_core::RecvError::BufferTooSmall { needed, got: buf_len });
        }
        // SAFETY: `buf` has `buf_len >= needed > slot` writable bytes used by
        // no one else (caller's contract); the slot part is handed to the
        // core as a slice, which ends before `write_view` reads it.
        let data = unsafe { std::slice::from_raw_parts_mut(buf, slot) };
        let claim = match queue.try_pop_into(data) {
            Ok(claim) => claim,
            Err(evq_core::RecvError::Empty) => return evq_status::EVQ_EMPTY,
            Err(e) => return fail(e),
        };
        // SAFETY: `buf` has `buf_len >= pop_buffer_size(slot)` writable
        // bytes, the claim's bytes in the first `slot`; `out` is writable.
        unsafe { write_view(buf, slot, &claim, out) }
    })
}

/// Decodes the claim whose bytes are the first `slot` bytes of `buf` and
/// writes a view of it into `*out`: texts point into `buf`, the property
/// array goes after the slot, aligned. `EVQ_MALFORMED` when the bytes are
/// neither an event nor a framed raw payload.
///
/// # Safety
/// `buf` points to `pop_buffer_size(slot)` writable bytes used by no one
/// else, holding the claim's bytes; `out` is writable.
pub(crate) unsafe fn write_view(
    buf: *mut u8,
    slot: usize,
    claim: &Claim,
    out: *mut evq_payload,
) -> evq_status {
    // SAFETY: `slot` readable bytes (caller's contract); only the bytes
    // after them are written below, so the two never overlap.
    let data = unsafe { std::slice::from_raw_parts(buf, slot) };
    let payload = match claim.payload(data) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    // The property array goes after the slot, aligned.
    // SAFETY: `slot < pop_buffer_size(slot)`, so this stays inside `buf`.
    let tail = unsafe { buf.add(slot) };
    let pad = tail.align_offset(std::mem::align_of::<evq_property>());
    // SAFETY: `pad < align_of::<evq_property>()`, which the size reserves.
    let props = unsafe { tail.add(pad) }.cast::<evq_property>();
    let cap = max_properties(slot);
    let payload = match payload {
        Payload::Event(view) => {
            let mut n = 0;
            for pair in view.properties().iter().take(cap) {
                // SAFETY: `n < cap`, and the size reserves `cap` aligned
                // properties after the padding.
                unsafe { props.add(n).write(evq_property::from_pair(pair)) };
                n += 1;
            }
            // SAFETY: the first `n` were just written.
            let written = unsafe { std::slice::from_raw_parts(props, n) };
            evq_payload::event(&view, written)
        }
        Payload::Raw(raw) => evq_payload::raw(&raw),
    };
    // SAFETY: writable (caller's contract).
    unsafe { out.write(payload) };
    evq_status::EVQ_OK
}
