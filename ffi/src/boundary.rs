//! The panic boundary and the NULL checks every export goes through, and the
//! thread-local message of the last failure.
//!
//! Every `extern "C"` function's body is one `ffi_boundary!` invocation: it
//! lists the pointer arguments that must not be NULL (each is checked before
//! the body runs) and runs the body under `catch_unwind`. A NULL gives the
//! return type's "NULL" value (`EVQ_NULL_POINTER` for a status), a panic its
//! "panic" value (`EVQ_PANIC`), and a message for `evq_last_error`. The macro
//! sits inside the function body (as rustls-ffi's `ffi_panic_boundary!`
//! does) rather than around the item, so cbindgen sees ordinary
//! `extern "C" fn` items. A unit test (`every_export_is_behind_the_boundary`)
//! reads the sources and fails if an export is not.

use crate::evq_status;
use std::cell::RefCell;
use std::ffi::{c_char, CStr};

/// What an export returns when a required pointer is NULL or when its body
/// panicked.
pub(crate) trait Fallback {
    /// The value for a NULL required pointer.
    fn null() -> Self;
    /// The value for a caught panic.
    fn panicked() -> Self;
}

impl Fallback for evq_status {
    fn null() -> Self {
        evq_status::EVQ_NULL_POINTER
    }
    fn panicked() -> Self {
        evq_status::EVQ_PANIC
    }
}

impl Fallback for () {
    fn null() -> Self {}
    fn panicked() -> Self {}
}

impl Fallback for usize {
    fn null() -> Self {
        0
    }
    fn panicked() -> Self {
        0
    }
}

/// `evq_now`: 0, as for a clock before the epoch.
impl Fallback for u64 {
    fn null() -> Self {
        0
    }
    fn panicked() -> Self {
        0
    }
}

impl Fallback for *const c_char {
    fn null() -> Self {
        c"".as_ptr()
    }
    fn panicked() -> Self {
        c"".as_ptr()
    }
}

/// Runs an export's body behind the panic boundary, after checking that each
/// listed pointer argument is not NULL:
///
/// ```text
/// ffi_boundary!(q, event; {
///     /* body: may `return` early; its value is the export's */
/// })
/// ```
macro_rules! ffi_boundary {
    ($($ptr:ident),* ; $body:block) => {{
        $(
            if $ptr.is_null() {
                $crate::boundary::set_last_error(concat!(
                    "argument `", stringify!($ptr), "` is NULL"
                ));
                return $crate::boundary::Fallback::null();
            }
        )*
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(move || $body)) {
            Ok(value) => value,
            Err(payload) => {
                $crate::boundary::set_last_error(&format!(
                    "internal error: panic caught at the C boundary: {}",
                    $crate::boundary::panic_message(&*payload)
                ));
                $crate::boundary::Fallback::panicked()
            }
        }
    }};
}
pub(crate) use ffi_boundary;

/// The message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<non-string panic>")
}

thread_local! {
    /// The message of the last failed call on this thread, NUL-terminated.
    static LAST_ERROR: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Records `message` as this thread's last error (only on failure paths).
pub(crate) fn set_last_error(message: &str) {
    LAST_ERROR.with(|cell| {
        if let Ok(mut buf) = cell.try_borrow_mut() {
            buf.clear();
            // An interior NUL would cut the C string short: drop it.
            buf.extend(message.bytes().filter(|&b| b != 0));
            buf.push(0);
        }
    });
}

/// This thread's last error message; valid until the next failing call on
/// this thread.
pub(crate) fn last_error() -> *const c_char {
    LAST_ERROR.with(|cell| match cell.try_borrow() {
        Ok(buf) if !buf.is_empty() => {
            // The Vec's heap buffer stays put until the next set_last_error
            // on this thread: that is the documented lifetime.
            buf.as_ptr().cast()
        }
        _ => c"".as_ptr(),
    })
}

/// Copies a NUL-terminated message out of `last_error` (for tests).
#[cfg(test)]
pub(crate) fn last_error_string() -> String {
    // SAFETY: last_error returns a NUL-terminated string owned by this
    // thread's buffer, which nothing changes during this call.
    unsafe { CStr::from_ptr(last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// A static NUL-terminated string.
pub(crate) fn static_cstr(s: &'static CStr) -> *const c_char {
    s.as_ptr()
}

impl Fallback for crate::evq_config {
    fn null() -> Self {
        crate::lifecycle::DEFAULT_CONFIG
    }
    fn panicked() -> Self {
        crate::lifecycle::DEFAULT_CONFIG
    }
}
