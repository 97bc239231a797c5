//! Slot memory. A slot is a stamp word, a length word and `slot_words` data
//! words, all atomics: readers may race writers (that is the seqlock), so slot
//! memory is never touched through plain loads or stores.

use crate::sync::{const_fn, AtomicU64};

/// Bytes in one data word.
pub const WORD_BYTES: usize = 8;

/// Where a ring keeps its slots: [`StaticSlots`] (const generics, no
/// allocation) or [`HeapSlots`] (sizes chosen at run time). Sealed: the ring's
/// safety rests on the accessors below returning the same slot for an index.
pub trait Storage: sealed::Sealed + Sync {
    /// Number of slots, a power of two.
    fn capacity(&self) -> usize;
    /// Data words per slot.
    fn slot_words(&self) -> usize;
    /// The slot at `index`, which is already reduced modulo the capacity.
    #[doc(hidden)]
    fn slot(&self, index: usize) -> SlotRef<'_>;
}

mod sealed {
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

/// One slot of [`StaticSlots`].
#[repr(C)]
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
            StaticSlots { slots }
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
}

/// Slots on the heap, with capacity and slot size chosen at run time. Laid
/// out as one array of words, `[stamp, len, data...]` per slot, so a slot's
/// stamp shares a cache line with its first bytes.
#[cfg(feature = "alloc")]
pub struct HeapSlots {
    /// `capacity * stride` words; never resized.
    words: alloc::boxed::Box<[AtomicU64]>,
    /// `capacity - 1`: reduces an index to a slot number.
    mask: usize,
    /// Words per slot, `slot_words + 2`: precomputed, as every push and read
    /// multiplies by it.
    stride: usize,
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
        let stride = slot_bytes / WORD_BYTES + 2;
        let total = stride
            .checked_mul(capacity)
            .ok_or(Error::AllocationFailed { bytes: usize::MAX })?;
        let mut words = alloc::vec::Vec::new();
        words
            .try_reserve_exact(total)
            .map_err(|_| Error::AllocationFailed {
                bytes: total.saturating_mul(WORD_BYTES),
            })?;
        words.extend((0..total).map(|_| AtomicU64::new(0)));
        Ok(HeapSlots {
            words: words.into_boxed_slice(),
            mask: capacity - 1,
            stride,
        })
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
        self.stride - 2
    }
    #[inline]
    fn slot(&self, index: usize) -> SlotRef<'_> {
        let start = (index & self.mask) * self.stride;
        // SAFETY: `words` holds `(mask + 1) * stride` words and is never
        // resized, `index & mask <= mask`, and `stride >= 2`: the stamp, the
        // length and the data words are all in bounds. (This is every push's
        // and every read's slot lookup; a checked slice cost 6 to 8 more
        // instructions per push or read.)
        unsafe {
            SlotRef {
                stamp: self.words.get_unchecked(start),
                len: self.words.get_unchecked(start + 1),
                data: self.words.get_unchecked(start + 2..start + self.stride),
            }
        }
    }
}
