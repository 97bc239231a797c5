//! Slot memory. A slot is a stamp word, a length word and `slot_words` data
//! words, all atomics: readers may race writers (that is the seqlock), so slot
//! memory is never touched through plain loads or stores.
//!
//! Slots start on a cache line and take whole lines: a reader close behind
//! (or just ahead of) the producer then shares no line with the slot being
//! written next to it. That costs at most one line per slot (a 64-byte
//! payload takes 128 bytes instead of 80; a 256-byte one 320 instead of 272).

use crate::state::RingState;
use crate::sync::{const_fn, AtomicU64};

/// Bytes in one data word.
pub const WORD_BYTES: usize = 8;

/// Bytes in the cache line a slot starts on and is rounded up to.
pub const LINE_BYTES: usize = 64;

/// Bytes a slot of `slot_bytes` payload bytes occupies in memory: the stamp
/// and length words plus the payload, rounded up to whole cache lines.
///
/// ```
/// assert_eq!(evqueue::slot_footprint(64), 128);
/// assert_eq!(evqueue::slot_footprint(256), 320);
/// ```
pub const fn slot_footprint(slot_bytes: usize) -> usize {
    (slot_bytes + 2 * WORD_BYTES).div_ceil(LINE_BYTES) * LINE_BYTES
}

/// Where a ring keeps its slots and its shared state: [`StaticSlots`] (const
/// generics, no allocation) or [`HeapSlots`] (sizes chosen at run time), both
/// holding the state inline. Sealed: the ring's safety rests on the accessors
/// below returning the same slot for an index and the same state every time.
pub trait Storage: sealed::Sealed + Sync {
    /// Number of slots, a power of two.
    fn capacity(&self) -> usize;
    /// Data words per slot.
    fn slot_words(&self) -> usize;
    /// The slot at `index`, which is already reduced modulo the capacity.
    #[doc(hidden)]
    fn slot(&self, index: usize) -> SlotRef<'_>;
    /// The ring's cursors, counters and control byte.
    #[doc(hidden)]
    fn state(&self) -> &RingState;
    /// Before the single-producer role is taken: `false` when it is known
    /// to be held (in another process, for a shared ring). In-process
    /// storages hold no lock: the control byte alone decides.
    #[doc(hidden)]
    #[inline(always)]
    fn lock_single(&self) -> bool {
        true
    }
    /// The role's bit is set, and (after `lock_single` succeeded) the
    /// storage knows its holder is dead. Never for in-process storages.
    #[doc(hidden)]
    #[inline(always)]
    fn single_holder_dead(&self) -> bool {
        false
    }
    /// The single-producer role was given up (or not taken after all).
    #[doc(hidden)]
    #[inline(always)]
    fn unlock_single(&self) {}

    /// Whether multi-producer pushes are counted in flight per process
    /// ([`writing_begin`](Self::writing_begin)), so that a slot a dead
    /// process left half-written can be recovered. Only shared rings: in
    /// one process, a writer cannot die while others go on.
    #[doc(hidden)]
    const COUNTS_WRITERS: bool = false;
    /// Before a multi-producer handle of this process pushes: registers the
    /// process as a writer. `false` if it cannot be (no entry left).
    #[doc(hidden)]
    #[inline(always)]
    fn attach_writer(&self) -> bool {
        true
    }
    /// A multi-producer push of this process begins (before its ticket).
    #[doc(hidden)]
    #[inline(always)]
    fn writing_begin(&self) {}
    /// That push is done with its slot.
    #[doc(hidden)]
    #[inline(always)]
    fn writing_end(&self) {}
    /// Whether no multi-producer push may still write a slot, beyond `own`
    /// pushes of this process: every other writing process is idle or dead.
    /// Never for in-process storages.
    #[doc(hidden)]
    #[inline(always)]
    fn writers_gone(&self, own: u64) -> bool {
        let _ = own;
        false
    }
}

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// Borrowed view of one slot's atomics.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct SlotRef<'a> {
    pub(crate) stamp: &'a AtomicU64,
    pub(crate) len: &'a AtomicU64,
    pub(crate) data: &'a [AtomicU64],
}

/// One slot of [`StaticSlots`], on whole cache lines.
#[repr(C, align(64))]
pub struct Slot<const WORDS: usize> {
    stamp: AtomicU64,
    len: AtomicU64,
    data: [AtomicU64; WORDS],
}

impl<const WORDS: usize> Slot<WORDS> {
    const_fn! {
        fn new() -> Self {
            #[cfg(not(evqueue_loom))]
            let data = [const { AtomicU64::new(0) }; WORDS];
            #[cfg(evqueue_loom)]
            let data = core::array::from_fn(|_| AtomicU64::new(0));
            Slot { stamp: AtomicU64::new(0), len: AtomicU64::new(0), data }
        }
    }
}

/// `SLOTS` slots of `WORDS` 8-byte words each, inline: a ring over this
/// storage can live in a `static` and never allocates.
pub struct StaticSlots<const SLOTS: usize, const WORDS: usize> {
    state: RingState,
    slots: [Slot<WORDS>; SLOTS],
}

impl<const SLOTS: usize, const WORDS: usize> StaticSlots<SLOTS, WORDS> {
    const_fn! {
        pub(crate) fn new() -> Self {
            const {
                assert!(SLOTS.is_power_of_two(), "evqueue: SLOTS must be a nonzero power of two");
                assert!(
                    WORDS * WORD_BYTES >= crate::MIN_SLOT_BYTES,
                    "evqueue: a slot needs at least MIN_SLOT_BYTES (2 words)"
                );
                assert!(WORDS * WORD_BYTES <= crate::MAX_SLOT_BYTES, "evqueue: slot too large");
            }
            #[cfg(not(evqueue_loom))]
            let slots = [const { Slot::new() }; SLOTS];
            #[cfg(evqueue_loom)]
            let slots = core::array::from_fn(|_| Slot::new());
            StaticSlots { state: RingState::new(), slots }
        }
    }
}

impl<const SLOTS: usize, const WORDS: usize> sealed::Sealed for StaticSlots<SLOTS, WORDS> {}

impl<const SLOTS: usize, const WORDS: usize> Storage for StaticSlots<SLOTS, WORDS> {
    #[inline]
    fn capacity(&self) -> usize {
        SLOTS
    }
    #[inline]
    fn slot_words(&self) -> usize {
        WORDS
    }
    #[inline]
    fn slot(&self, index: usize) -> SlotRef<'_> {
        // SLOTS is a power of two, so the mask keeps the index in bounds and
        // the compiler drops the bounds check.
        let slot = &self.slots[index & (SLOTS - 1)];
        SlotRef {
            stamp: &slot.stamp,
            len: &slot.len,
            data: &slot.data,
        }
    }
    #[inline(always)]
    fn state(&self) -> &RingState {
        &self.state
    }
}

/// Words in one cache line.
#[cfg(feature = "alloc")]
const LINE_WORDS: usize = LINE_BYTES / WORD_BYTES;

/// One cache line of words: the unit [`HeapSlots`] allocates, so its memory
/// starts on a line.
#[cfg(feature = "alloc")]
#[repr(C, align(64))]
struct Line([AtomicU64; LINE_WORDS]);

// `HeapSlots::words` views the lines as one array of words: a line must be
// exactly its words, with no padding. (Also under loom and portable-atomic,
// whose atomics have other sizes.)
#[cfg(feature = "alloc")]
const _: () = assert!(
    core::mem::size_of::<Line>() == LINE_WORDS * core::mem::size_of::<AtomicU64>()
        && core::mem::align_of::<Line>() >= core::mem::align_of::<AtomicU64>()
);

/// Slots on the heap, with capacity and slot size chosen at run time. Laid
/// out as one array of words, `[stamp, len, data..., padding]` per slot, each
/// slot starting on a cache line, so a slot's stamp shares a line with its
/// first bytes and no line with another slot.
#[cfg(feature = "alloc")]
pub struct HeapSlots {
    /// The ring's state, inline (not on the heap with the lines).
    state: RingState,
    /// `capacity * stride / LINE_WORDS` lines; never resized.
    lines: alloc::boxed::Box<[Line]>,
    /// `capacity - 1`: reduces an index to a slot number.
    mask: usize,
    /// Words per slot: `slot_words + 2` rounded up to whole lines;
    /// precomputed, as every push and read multiplies by it.
    stride: usize,
    /// Data words per slot.
    slot_words: usize,
}

#[cfg(feature = "alloc")]
impl HeapSlots {
    pub(crate) fn new(capacity: usize, slot_bytes: usize) -> Result<Self, crate::Error> {
        use crate::Error;
        if !capacity.is_power_of_two() || capacity > crate::MAX_CAPACITY {
            return Err(Error::InvalidCapacity { capacity });
        }
        let bounds = crate::MIN_SLOT_BYTES..=crate::MAX_SLOT_BYTES;
        if !bounds.contains(&slot_bytes) || slot_bytes % WORD_BYTES != 0 {
            return Err(Error::InvalidSlotSize { slot_bytes });
        }
        let stride = slot_footprint(slot_bytes) / WORD_BYTES;
        let total = (stride / LINE_WORDS)
            .checked_mul(capacity)
            .ok_or(Error::AllocationFailed { bytes: usize::MAX })?;
        let mut lines = alloc::vec::Vec::new();
        lines
            .try_reserve_exact(total)
            .map_err(|_| Error::AllocationFailed {
                bytes: total.saturating_mul(LINE_BYTES),
            })?;
        lines.extend((0..total).map(|_| Line(core::array::from_fn(|_| AtomicU64::new(0)))));
        Ok(HeapSlots {
            state: RingState::new(),
            lines: lines.into_boxed_slice(),
            mask: capacity - 1,
            stride,
            slot_words: slot_bytes / WORD_BYTES,
        })
    }

    /// All lines as one array of words.
    #[inline(always)]
    fn words(&self) -> &[AtomicU64] {
        // SAFETY: `lines` is one allocation of `lines.len()` lines, each
        // exactly `LINE_WORDS` atomics with no padding (asserted above), so
        // it is also `lines.len() * LINE_WORDS` contiguous, aligned atomics,
        // borrowed for as long as `self`.
        unsafe {
            core::slice::from_raw_parts(
                self.lines.as_ptr().cast::<AtomicU64>(),
                self.lines.len() * LINE_WORDS,
            )
        }
    }
}

#[cfg(feature = "alloc")]
impl sealed::Sealed for HeapSlots {}

#[cfg(feature = "alloc")]
impl Storage for HeapSlots {
    #[inline]
    fn capacity(&self) -> usize {
        self.mask + 1
    }
    #[inline]
    fn slot_words(&self) -> usize {
        self.slot_words
    }
    #[inline]
    fn slot(&self, index: usize) -> SlotRef<'_> {
        let start = (index & self.mask) * self.stride;
        let words = self.words();
        // SAFETY: `words` holds `(mask + 1) * stride` words and is never
        // resized, `index & mask <= mask`, and `stride >= slot_words + 2`:
        // the stamp, the length and the data words are all in bounds. (This
        // is every push's and every read's slot lookup; a checked slice cost
        // 6 to 8 more instructions per push or read.)
        unsafe {
            SlotRef {
                stamp: words.get_unchecked(start),
                len: words.get_unchecked(start + 1),
                data: words.get_unchecked(start + 2..start + 2 + self.slot_words),
            }
        }
    }
    #[inline(always)]
    fn state(&self) -> &RingState {
        &self.state
    }
}
