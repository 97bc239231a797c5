//! What the library says about itself: its version, the description of a
//! status, and the message of the last failure.

use crate::boundary::{self, ffi_boundary, static_cstr};
use crate::evq_status;
use std::ffi::{c_char, c_int};

/// The crate version, NUL-terminated (checked at compile time).
pub(crate) const VERSION: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
) {
    Ok(s) => s,
    Err(_) => panic!("the crate version contains a NUL byte"),
};

/// The library version, e.g. "0.1.0": a static NUL-terminated string (never
/// freed). Matches EVQ_VERSION_MAJOR/MINOR/PATCH of the header it was built
/// with. Any thread.
#[no_mangle]
pub extern "C" fn evq_version() -> *const c_char {
    ffi_boundary!(; { static_cstr(VERSION) })
}

/// A static NUL-terminated description of `status` (an `evq_status` value;
/// an unknown value gives "unknown status"). Never freed. Any thread.
#[no_mangle]
pub extern "C" fn evq_status_str(status: c_int) -> *const c_char {
    ffi_boundary!(; {
        match evq_status::from_i32(status) {
            Some(s) => static_cstr(s.describe()),
            None => static_cstr(c"unknown status"),
        }
    })
}

/// The detailed message of the last call that failed on the calling thread
/// (NUL-terminated, e.g. "event of 300 bytes does not fit in a slot of 256
/// bytes"); "" if none failed yet. Owned by evqueue, valid until the next
/// failing call on this thread; do not free it. Successful calls leave it
/// unchanged, and so do `EVQ_FULL` (a producer may retry it in a tight
/// loop) and `EVQ_EMPTY` / `EVQ_TIMEOUT` from pops and receives.
/// Any thread (each has its own).
#[no_mangle]
pub extern "C" fn evq_last_error() -> *const c_char {
    ffi_boundary!(; { boundary::last_error() })
}
