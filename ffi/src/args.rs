//! Argument decoding: C texts, properties and ordering keys checked and
//! borrowed as Rust values (the ASCII fast path of `evq_push` among them),
//! and optional out-pointers written.

use crate::status::{fail, fail_with};
use crate::{evq_event, evq_property, evq_status, EVQ_MAX_ORDERING_KEY_LEN};
use evq_core::{MAX_KEY_LEN, MAX_NAME_LEN, MAX_PROPERTIES, MAX_VALUE_LEN};
use std::ffi::{c_char, c_void};
use std::mem::MaybeUninit;

/// Properties up to this count are converted on the stack, in `evq_push`
/// and before each handler call; beyond it, a `Vec` is allocated.
pub(crate) const INLINE_PROPERTIES: usize = 16;

/// Which text an argument is, for its bound and its error message.
#[derive(Clone, Copy)]
pub(crate) enum Text {
    Name,
    Key,
    Value,
    Reason,
}

impl Text {
    fn what(self) -> &'static str {
        match self {
            Text::Name => "event name",
            Text::Key => "property key",
            Text::Value => "property value",
            Text::Reason => "session end reason",
        }
    }

    /// The bound on this text's length, in bytes.
    fn max_len(self) -> usize {
        match self {
            Text::Name => MAX_NAME_LEN,
            Text::Key => MAX_KEY_LEN,
            Text::Value | Text::Reason => MAX_VALUE_LEN,
        }
    }

    /// The error for a length over the bound (the error path only).
    #[cold]
    fn too_long(self, len: usize) -> evq_status {
        let max = self.max_len();
        fail(match self {
            Text::Name => evq_core::Error::NameTooLong { len, max },
            Text::Key => evq_core::Error::KeyTooLong { len, max },
            Text::Value => evq_core::Error::ValueTooLong { len, max },
            // The reason is stored as a property value: same status, but
            // the message names it.
            Text::Reason => {
                return fail_with(
                    evq_status::EVQ_VALUE_TOO_LONG,
                    &format!("session end reason of {len} bytes is longer than the limit of {max}"),
                )
            }
        })
    }

    #[cold]
    fn null(self, len: usize) -> evq_status {
        fail_with(
            evq_status::EVQ_NULL_POINTER,
            &format!("{} pointer is NULL with a length of {len}", self.what()),
        )
    }

    #[cold]
    fn invalid_utf8(self, valid_up_to: usize) -> evq_status {
        fail_with(
            evq_status::EVQ_INVALID_UTF8,
            &format!(
                "{} is not valid UTF-8 (invalid byte at offset {valid_up_to})",
                self.what()
            ),
        )
    }
}

/// Borrows `len` bytes at `ptr` as UTF-8 text. A NULL `ptr` is accepted only
/// with a zero length. The length bound is checked before the bytes are
/// read, so an absurd length is refused without touching memory.
///
/// # Safety
/// When `len > 0` and `ptr` is not NULL, `ptr` must point to `len` readable
/// bytes that stay unchanged for `'a`.
#[inline(always)]
pub(crate) unsafe fn text<'a>(
    ptr: *const c_char,
    len: usize,
    kind: Text,
) -> Result<&'a str, evq_status> {
    if len > kind.max_len() {
        return Err(kind.too_long(len));
    }
    if len == 0 {
        return Ok("");
    }
    if ptr.is_null() {
        return Err(kind.null(len));
    }
    // SAFETY: the caller guarantees `len` readable bytes at `ptr`; `len` is
    // bounded above (at most 65535), far below isize::MAX.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    // Game event names, keys and most values are ASCII: a word-at-a-time
    // check, inlined, then the full validation only for the rest.
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).map_err(|e| kind.invalid_utf8(e.valid_up_to()))
}

/// The bytes of a text argument when its length is within `max` and its
/// pointer may be read: what [`text`] checks before it looks at the bytes.
/// `None` when it would fail; it then reports why.
///
/// # Safety
/// As [`text`].
#[inline(always)]
pub(crate) unsafe fn text_bytes<'a>(
    ptr: *const c_char,
    len: usize,
    max: usize,
) -> Option<&'a [u8]> {
    if len > max {
        return None;
    }
    if len == 0 {
        return Some(&[]);
    }
    if ptr.is_null() {
        return None;
    }
    // SAFETY: as in `text`: `len` readable bytes, at most `max` (65535).
    Some(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) })
}

/// High bits of ASCII bytes: a text is ASCII when the [`or_bytes`] of it
/// has none of these.
pub(crate) const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Bytes of `b` ORed together, each at a byte position of the result (the
/// caller masks with [`HIGH_BITS`] once for all its texts). Short texts, the
/// usual game names, keys and values, take two overlapping loads and no loop.
#[inline(always)]
pub(crate) fn or_bytes(b: &[u8]) -> u64 {
    let word = |w: Option<&[u8; 8]>| w.map_or(0, |w| u64::from_ne_bytes(*w));
    let half = |h: Option<&[u8; 4]>| h.map_or(0, |h| u64::from(u32::from_ne_bytes(*h)));
    match b.len() {
        0 => 0,
        1..=3 => {
            let byte = |i: usize| b.get(i).map_or(0, |&x| u64::from(x));
            byte(0) | byte(b.len() / 2) | byte(b.len() - 1)
        }
        4..=7 => half(b.first_chunk()) | half(b.last_chunk()),
        8..=16 => word(b.first_chunk()) | word(b.last_chunk()),
        _ if b.is_ascii() => 0,
        _ => HIGH_BITS,
    }
}

/// The fast path of `evq_push`: the name and the properties as Rust texts
/// when the name and every key and value are within their bounds, readable
/// and ASCII (one combined test, no branch per text on its content), and
/// there are at most [`INLINE_PROPERTIES`] (stored in `pairs`). `None` when
/// anything is not so: the caller then checks each argument in order and
/// reports the first error, or accepts non-ASCII UTF-8, exactly as if this
/// had not run.
///
/// # Safety
/// As `evq_push`'s `event`: `e` points to texts and properties readable for
/// their lengths and count, unchanged for `'a`.
#[inline(always)]
pub(crate) unsafe fn ascii_event<'a>(
    e: &evq_event,
    pairs: &'a mut [MaybeUninit<(&'a str, &'a str)>; INLINE_PROPERTIES],
) -> Option<(&'a str, &'a [(&'a str, &'a str)])> {
    let count = e.property_count;
    if count > INLINE_PROPERTIES || (count > 0 && e.properties.is_null()) {
        return None;
    }
    // SAFETY: the event's texts are readable for their lengths (caller's contract).
    let name = unsafe { text_bytes(e.name, e.name_len, MAX_NAME_LEN) }?;
    let props: &[evq_property] = if count == 0 {
        &[]
    } else {
        // SAFETY: `count` readable properties (caller's contract), not NULL (checked).
        unsafe { std::slice::from_raw_parts(e.properties, count) }
    };
    // SAFETY: each property's texts are readable for their lengths (caller's contract).
    let texts = |p: &evq_property| unsafe {
        Some((
            text_bytes(p.key, p.key_len, MAX_KEY_LEN)?,
            text_bytes(p.value, p.value_len, MAX_VALUE_LEN)?,
        ))
    };
    let mut bytes = or_bytes(name);
    for p in props {
        let (key, value) = texts(p)?;
        bytes |= or_bytes(key) | or_bytes(value);
    }
    if bytes & HIGH_BITS != 0 {
        return None;
    }
    /// A text the loop above accepted: readable for `len` bytes (or
    /// empty), and ASCII.
    ///
    /// # Safety
    /// As said: only for those texts.
    #[inline(always)]
    unsafe fn ascii<'a>(ptr: *const c_char, len: usize) -> &'a str {
        if len == 0 {
            return "";
        }
        // SAFETY: readable (checked above, caller's contract); ASCII is UTF-8.
        unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(ptr.cast(), len)) }
    }
    for (slot, p) in pairs.iter_mut().zip(props) {
        // SAFETY: both were accepted by the loop above.
        let pair = unsafe { (ascii(p.key, p.key_len), ascii(p.value, p.value_len)) };
        *slot = MaybeUninit::new(pair);
    }
    // SAFETY: the loop wrote the first `count` elements (`count <=
    // INLINE_PROPERTIES`), and `MaybeUninit<T>` has the layout of `T`.
    let pairs = unsafe { std::slice::from_raw_parts(pairs.as_ptr().cast::<(&str, &str)>(), count) };
    // SAFETY: the name was accepted above too.
    Some((unsafe { ascii(e.name, e.name_len) }, pairs))
}

/// Converts `count` C properties into `(key, value)` pairs and calls `f`
/// with them: on the stack up to [`INLINE_PROPERTIES`], in a `Vec` beyond.
///
/// # Safety
/// `props` must point to `count` readable `evq_property` (or be NULL with a
/// count of 0), each pointing to readable text of its lengths, all
/// unchanged during the call.
pub(crate) unsafe fn with_pairs(
    props: *const evq_property,
    count: usize,
    f: impl FnOnce(&[(&str, &str)]) -> evq_status,
) -> evq_status {
    if count == 0 {
        return f(&[]);
    }
    if count > MAX_PROPERTIES {
        return fail(evq_core::Error::TooManyProperties {
            count,
            max: MAX_PROPERTIES,
        });
    }
    if props.is_null() {
        return fail_with(
            evq_status::EVQ_NULL_POINTER,
            &format!("properties pointer is NULL with a count of {count}"),
        );
    }
    // SAFETY: the caller guarantees `count` readable properties at `props`;
    // `count` is at most 65535.
    let props = unsafe { std::slice::from_raw_parts(props, count) };
    let pair = |p: &evq_property| -> Result<(&str, &str), evq_status> {
        // SAFETY: each property's pointers are readable for their lengths
        // (the caller's guarantee).
        let key = unsafe { text(p.key, p.key_len, Text::Key) }?;
        // SAFETY: as above.
        let value = unsafe { text(p.value, p.value_len, Text::Value) }?;
        Ok((key, value))
    };
    if count <= INLINE_PROPERTIES {
        // Uninitialized: only the `count` pairs used are written (zeroing
        // all 16 would cost more than converting two).
        let mut pairs = [MaybeUninit::<(&str, &str)>::uninit(); INLINE_PROPERTIES];
        for (slot, p) in pairs.iter_mut().zip(props) {
            match pair(p) {
                Ok(kv) => *slot = MaybeUninit::new(kv),
                Err(status) => return status,
            }
        }
        // SAFETY: the loop wrote the first `count` elements (`props` has
        // `count` items and `count <= INLINE_PROPERTIES`), and
        // `MaybeUninit<T>` has the layout of `T`.
        let pairs =
            unsafe { std::slice::from_raw_parts(pairs.as_ptr().cast::<(&str, &str)>(), count) };
        f(pairs)
    } else {
        match props.iter().map(pair).collect::<Result<Vec<_>, _>>() {
            Ok(pairs) => f(&pairs),
            Err(status) => status,
        }
    }
}

/// Stores `seq` in `*out` when `out` is not NULL.
///
/// # Safety
/// `out` is NULL or valid for a write.
pub(crate) unsafe fn store<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: not NULL, and the caller guarantees it is writable.
        unsafe { out.write(value) };
    }
}

/// The ordering key at `key`, checked: length first (so nothing is read
/// past the bound), then the pointer.
///
/// # Safety
/// `key` points to `len` readable bytes, or is NULL with `len` 0.
pub(crate) unsafe fn ordering_key<'a>(
    key: *const c_void,
    len: usize,
) -> Result<&'a [u8], evq_status> {
    if len > EVQ_MAX_ORDERING_KEY_LEN {
        return Err(fail(evq_core::Error::OrderingKeyTooLong {
            len,
            max: EVQ_MAX_ORDERING_KEY_LEN,
        }));
    }
    if len == 0 {
        return Ok(&[]);
    }
    if key.is_null() {
        return Err(fail_with(
            evq_status::EVQ_NULL_POINTER,
            &format!("ordering key pointer is NULL with a length of {len}"),
        ));
    }
    // SAFETY: `len` readable bytes (caller's contract), bounded above.
    Ok(unsafe { std::slice::from_raw_parts(key.cast::<u8>(), len) })
}
