//! Copies between byte buffers and a slot's data words. Slot memory is only
//! ever touched through atomics (see the storage module), so bytes go in and
//! out a word at a time, with relaxed loads and stores; the caller's stamp
//! protocol orders them.

use crate::storage::{SlotRef, WORD_BYTES};
use crate::sync::{AtomicU64, Ordering::Relaxed};

/// Single reads up to this many bytes are copied out in 16-byte stores (see
/// [`copy_words`]). Past it the stall is a smaller share of the read and the
/// pairing (two register moves and a shuffle per store) cost as much as it
/// saved.
pub(crate) const PAIRED_COPY_MAX_BYTES: usize = 64;

/// Copies the slot words `data` into `buf` (at least as long), each word
/// loaded with one relaxed atomic load.
///
/// `paired`: store two words at a time with one 16-byte store. A reader that
/// loads the event right after the copy, with the 16-byte loads of any
/// vectorized loop or `memcpy`, then forwards each load from one store; a
/// load spanning two 8-byte stores still in the store buffer cannot be
/// forwarded and stalls until both reach the cache (about a dozen cycles
/// each, on every 16 bytes of a short event). Batch reads are left alone:
/// their events are read after the whole batch was copied.
#[inline(always)]
pub(crate) fn copy_words(data: &[AtomicU64], buf: &mut [u8], paired: bool) {
    if paired {
        let pairs = data.chunks_exact(2);
        let odd = pairs.remainder();
        for (pair, out) in pairs.zip(buf.chunks_exact_mut(2 * WORD_BYTES)) {
            if let (Ok(out), [lo, hi]) = (out.try_into(), pair) {
                store_pair(out, lo.load(Relaxed), hi.load(Relaxed));
            }
        }
        // An odd last word: the buffer holds every word, so it goes right
        // after the pairs.
        let at = (data.len() - odd.len()) * WORD_BYTES;
        if let (Some(word), Some(out)) = (odd.first(), buf.get_mut(at..at + WORD_BYTES)) {
            out.copy_from_slice(&word.load(Relaxed).to_ne_bytes());
        }
        return;
    }
    for (word, out) in data.iter().zip(buf.chunks_exact_mut(WORD_BYTES)) {
        out.copy_from_slice(&word.load(Relaxed).to_ne_bytes());
    }
}

/// Stores `lo` then `hi` into `out` with one 16-byte store.
#[inline(always)]
fn store_pair(out: &mut [u8; 2 * WORD_BYTES], lo: u64, hi: u64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of the x86_64 baseline, so both intrinsics are
    // available; `out` is 16 writable bytes and `storeu` needs no alignment.
    unsafe {
        use core::arch::x86_64::{__m128i, _mm_set_epi64x, _mm_storeu_si128};
        let pair = _mm_set_epi64x(hi as i64, lo as i64);
        _mm_storeu_si128(out.as_mut_ptr().cast::<__m128i>(), pair);
    }
    // Elsewhere two word stores, which the compiler may merge.
    #[cfg(not(target_arch = "x86_64"))]
    {
        let (first, second) = out.split_at_mut(WORD_BYTES);
        first.copy_from_slice(&lo.to_ne_bytes());
        second.copy_from_slice(&hi.to_ne_bytes());
    }
}

/// Stores a raw payload and its length into a slot the caller is writing:
/// whole words in one tight loop, then one zero-padded tail word.
#[inline]
pub(crate) fn write_payload(slot: SlotRef<'_>, payload: &[u8]) {
    slot.len.store(payload.len() as u64, Relaxed);
    store_words(slot.data, payload);
}

/// Stores `bytes` (checked to fit) into `cells`, whole words in one tight
/// loop, then one zero-padded tail word.
#[inline(always)]
pub(crate) fn store_words(cells: &[AtomicU64], bytes: &[u8]) {
    let words = bytes.chunks_exact(WORD_BYTES);
    let tail = words.remainder();
    // The bytes were checked to fit; `split_at_checked` keeps this panic-free
    // and, for a length known at compile time, makes the loop count a
    // constant (the loop is then unrolled).
    let Some((full, rest)) = cells.split_at_checked(bytes.len() / WORD_BYTES) else {
        return;
    };
    for (cell, word) in full.iter().zip(words) {
        let mut w = [0u8; WORD_BYTES];
        w.copy_from_slice(word);
        cell.store(u64::from_ne_bytes(w), Relaxed);
    }
    if let (false, Some(cell)) = (tail.is_empty(), rest.first()) {
        let mut w = [0u8; WORD_BYTES];
        w[..tail.len()].copy_from_slice(tail);
        cell.store(u64::from_ne_bytes(w), Relaxed);
    }
}

/// Stores `len` and streams what `encode` writes (exactly `len` bytes, checked
/// to fit) into the slot's data words.
#[inline(always)]
pub(crate) fn write_encoded(
    slot: SlotRef<'_>,
    len: usize,
    encode: impl FnOnce(&mut SlotWriter<'_>),
) {
    slot.len.store(len as u64, Relaxed);
    let mut writer = SlotWriter {
        cells: slot.data.iter(),
        pending: 0,
        filled: 0,
    };
    encode(&mut writer);
    writer.flush();
}

/// Streams bytes into a slot's data words, one relaxed atomic store per word.
/// The caller has checked that the total fits. All state is plain integers so
/// it stays in registers: whole words go straight to the slot, and a partial
/// word is assembled in `pending` in memory (native) byte order.
pub(crate) struct SlotWriter<'a> {
    cells: core::slice::Iter<'a, AtomicU64>,
    pending: u64,
    filled: usize,
}

impl SlotWriter<'_> {
    #[inline]
    pub(crate) fn write(&mut self, mut bytes: &[u8]) {
        if self.filled != 0 {
            while let Some((&byte, rest)) = bytes.split_first() {
                self.push_byte(byte);
                bytes = rest;
                if self.filled == 0 {
                    break;
                }
            }
            if bytes.is_empty() {
                return;
            }
        }
        let mut words = bytes.chunks_exact(WORD_BYTES);
        for word in &mut words {
            let mut w = [0u8; WORD_BYTES];
            w.copy_from_slice(word);
            self.store(u64::from_ne_bytes(w));
        }
        for &byte in words.remainder() {
            self.push_byte(byte);
        }
    }

    /// Appends one byte to the pending word, storing it when full.
    #[inline]
    fn push_byte(&mut self, byte: u8) {
        let shift = if cfg!(target_endian = "little") {
            8 * self.filled
        } else {
            8 * (WORD_BYTES - 1 - self.filled)
        };
        self.pending |= u64::from(byte) << shift;
        self.filled += 1;
        if self.filled == WORD_BYTES {
            self.store(self.pending);
            self.pending = 0;
            self.filled = 0;
        }
    }

    #[inline]
    fn store(&mut self, word: u64) {
        let cell = self.cells.next();
        debug_assert!(cell.is_some(), "payload length was checked");
        if let Some(cell) = cell {
            cell.store(word, Relaxed);
        }
    }

    #[inline]
    fn flush(&mut self) {
        if self.filled != 0 {
            self.store(self.pending);
            self.filled = 0;
        }
    }
}
