//! The ring's shared state: every atomic the algorithm keeps besides the
//! slots (the producer cursor, the worker group's cursor, its cached copy,
//! the counters and the control byte), in one `#[repr(C)]` struct with a
//! fixed layout. A storage owns it: inline for [`StaticSlots`] and
//! [`HeapSlots`], inside the mapped file for a shared ring, so the same
//! struct serves both and the algorithm reaches it through `Ring::state()`.
//!
//! Layout (every field on its own 128-byte block, the size two adjacent
//! cache lines prefetch together on x86_64 and Apple silicon, as
//! `crossbeam_utils::CachePadded` does there):
//!
//! | offset | field | written by |
//! | --- | --- | --- |
//! | 0 | `head: u64` | every push (bit 63: closed) |
//! | 128 | `worker: u64` | every worker-group claim or skip |
//! | 256 | `worker_seen: u64` | `Reject` room checks that found the ring full |
//! | 384 | `skipped, rejected, high_water: u64` | skips, refusals, depth samples |
//! | 512 | `control: u8` | producer handles coming and going, `close` |
//!
//! 640 bytes in all, aligned to 128. The layout is asserted at compile time
//! where it is a file format (targets with native 64-bit atomics, not under
//! loom).
//!
//! [`StaticSlots`]: crate::StaticSlots
//! [`HeapSlots`]: crate::HeapSlots

use crate::sync::{const_fn, AtomicU64, AtomicU8};

/// `T` alone on a 128-byte block: no other field shares its cache lines
/// (nor the adjacent line the spatial prefetcher pulls in with it).
#[repr(C, align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> core::ops::Deref for Padded<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// The state a ring keeps besides its slots; see the [module docs](self)
/// for the layout. Every field is an atomic: processes that map the same
/// file share it, so it holds no pointer and no process-local value.
#[doc(hidden)]
#[repr(C)]
pub struct RingState {
    /// Next sequence number to hand out; bit 63: closed. Written by the single
    /// producer (plain stores) or by multi-producers (CAS).
    pub(crate) head: Padded<AtomicU64>,
    /// The worker group's cursor: the next sequence number to claim.
    pub(crate) worker: Padded<AtomicU64>,
    /// `worker` as last read by a multi-producer room check (`Reject`), so
    /// pushes do not pull the line every claim writes. Never ahead of `worker`.
    pub(crate) worker_seen: Padded<AtomicU64>,
    pub(crate) counters: Padded<Counters>,
    /// Producer mode and close request: `SINGLE_LIVE | MULTI | CLOSE_REQUESTED`
    /// (`ring.rs`). Alone on its block: every push reads it, and only
    /// producer handles coming and going and `close` write it.
    pub(crate) control: Padded<AtomicU8>,
}

/// Counters written off the hot paths.
#[repr(C)]
pub(crate) struct Counters {
    /// Sequence numbers the worker group passed without delivering them:
    /// overwritten events, holes included.
    pub(crate) skipped: AtomicU64,
    /// Pushes refused by the `Reject` policy.
    pub(crate) rejected: AtomicU64,
    /// Largest depth sampled.
    pub(crate) high_water: AtomicU64,
}

impl RingState {
    const_fn! {
        /// A fresh ring's state: everything zero. (All-zero bytes are the
        /// same state, which is how a mapped file starts.)
        pub(crate) fn new() -> Self {
            RingState {
                head: Padded(AtomicU64::new(0)),
                worker: Padded(AtomicU64::new(0)),
                worker_seen: Padded(AtomicU64::new(0)),
                counters: Padded(Counters {
                    skipped: AtomicU64::new(0),
                    rejected: AtomicU64::new(0),
                    high_water: AtomicU64::new(0),
                }),
                control: Padded(AtomicU8::new(0)),
            }
        }
    }
}

/// Byte offsets of the fields, part of the shared-memory file format.
#[cfg(all(not(evqueue_loom), target_has_atomic = "64"))]
pub(crate) mod layout {
    use super::{Counters, RingState};
    use core::mem::{align_of, offset_of, size_of};

    pub(crate) const HEAD: usize = 0;
    pub(crate) const WORKER: usize = 128;
    pub(crate) const WORKER_SEEN: usize = 256;
    pub(crate) const SKIPPED: usize = 384;
    pub(crate) const REJECTED: usize = 392;
    pub(crate) const HIGH_WATER: usize = 400;
    pub(crate) const CONTROL: usize = 512;
    /// `size_of::<RingState>()`.
    pub(crate) const BYTES: usize = 640;
    /// `align_of::<RingState>()`.
    pub(crate) const ALIGN: usize = 128;

    const _: () = {
        assert!(offset_of!(RingState, head) == HEAD);
        assert!(offset_of!(RingState, worker) == WORKER);
        assert!(offset_of!(RingState, worker_seen) == WORKER_SEEN);
        assert!(offset_of!(RingState, counters) + offset_of!(Counters, skipped) == SKIPPED);
        assert!(offset_of!(RingState, counters) + offset_of!(Counters, rejected) == REJECTED);
        assert!(offset_of!(RingState, counters) + offset_of!(Counters, high_water) == HIGH_WATER);
        assert!(offset_of!(RingState, control) == CONTROL);
        assert!(size_of::<RingState>() == BYTES);
        assert!(align_of::<RingState>() == ALIGN);
    };
}
