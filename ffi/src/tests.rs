//! Unit tests of the boundary itself: the panic and NULL paths, that every
//! export goes through `ffi_boundary!`, the header's version macros, and a
//! Rust-driven round trip through the C entry points. The full behaviour is
//! tested from C and C++ in tests/c/.

use super::*;
use crate::args::{or_bytes, HIGH_BITS};
use crate::boundary::{ffi_boundary, last_error_string};
use evq_core::max_properties;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::mem::MaybeUninit;
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

/// An export-shaped function whose body panics.
unsafe extern "C" fn panics_with_status(p: *const u8) -> evq_status {
    ffi_boundary!(p; {
        if !p.is_null() {
            panic!("boom from the body");
        }
        evq_status::EVQ_OK
    })
}

unsafe extern "C" fn panics_with_string() -> *const c_char {
    ffi_boundary!(; {
        let v: Vec<u8> = Vec::new();
        let _ = v[3]; // index out of bounds: a panic with a String payload
        c"unreachable".as_ptr()
    })
}

extern "C" fn panics_with_unit() {
    ffi_boundary!(; { panic!("unit") })
}

#[test]
fn a_panic_becomes_a_status_and_a_message() {
    let byte = 1u8;
    // SAFETY: a readable byte.
    assert_eq!(unsafe { panics_with_status(&byte) }, evq_status::EVQ_PANIC);
    let msg = last_error_string();
    assert!(
        msg.contains("panic caught") && msg.contains("boom from the body"),
        "{msg}"
    );
    // SAFETY: no arguments.
    let s = unsafe { CStr::from_ptr(panics_with_string()) };
    assert_eq!(s.to_bytes(), b"");
    assert!(last_error_string().contains("index out of bounds"));
    panics_with_unit(); // returns normally
    assert!(last_error_string().contains("unit"));
}

#[test]
fn a_null_argument_is_refused_before_the_body_runs() {
    // SAFETY: NULL is what is being tested.
    let status = unsafe { panics_with_status(null()) };
    assert_eq!(status, evq_status::EVQ_NULL_POINTER);
    assert_eq!(last_error_string(), "argument `p` is NULL");
    // SAFETY: as above, for the real exports.
    unsafe {
        assert_eq!(evq_new(null(), null_mut()), evq_status::EVQ_NULL_POINTER);
        assert_eq!(evq_start(null()), evq_status::EVQ_NULL_POINTER);
        assert_eq!(
            evq_push(null(), null(), null_mut()),
            evq_status::EVQ_NULL_POINTER
        );
        assert_eq!(evq_flush(null(), 0), evq_status::EVQ_NULL_POINTER);
        assert_eq!(evq_pop_buffer_size(null()), 0);
        evq_free(null_mut());
        evq_subscriber_free(null_mut());
    }
}

/// Every `extern "C" fn` in the crate's sources (all of `src/`, so a new
/// file is covered without being listed here) is `#[no_mangle]` and its
/// body is one `ffi_boundary!` invocation: none can be forgotten.
#[test]
fn every_export_is_behind_the_boundary() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("ffi/src")
        .map(|e| e.expect("a directory entry").path())
        // Every source file but this one (which only names the attribute).
        .filter(|p| p.extension().is_some_and(|x| x == "rs") && !p.ends_with("tests.rs"))
        .collect();
    files.sort();
    let header = include_str!("../../include/evqueue.h");
    let mut exports = 0;
    for path in &files {
        let src = std::fs::read_to_string(path).expect("a source file");
        let file = path.file_name().unwrap().to_string_lossy();
        let mut in_file = 0;
        for (at, _) in src.match_indices("extern \"C\" fn evq_") {
            in_file += 1;
            let before = &src[..at];
            let attr = before.rfind("#[no_mangle]").expect("a #[no_mangle]");
            assert!(
                !before[attr..].contains('}'),
                "{file}: export at byte {at} is not directly under #[no_mangle]"
            );
            let rest = &src[at..];
            let name: String = rest["extern \"C\" fn ".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let body = &rest[rest.find("{\n").expect("a body") + 2..];
            assert!(
                body.trim_start().starts_with("ffi_boundary!("),
                "{file}: {name} does not start with ffi_boundary!"
            );
            assert!(
                header.contains(&format!("{name}(")),
                "{file}: {name} is not in the header"
            );
        }
        assert_eq!(
            in_file,
            src.matches("#[no_mangle]").count(),
            "{file}: a #[no_mangle] item is not an evq_ export"
        );
        exports += in_file;
    }
    assert!(exports >= 30, "only {exports} exports found");
    // And the sources read hold every function the header declares (a
    // declaration line, not a comment, with `evq_name(` on it).
    let declared = header
        .lines()
        .filter(|l| !(l.starts_with(" *") || l.starts_with("/*") || l.starts_with('#')))
        .filter(|l| {
            l.match_indices("evq_").any(|(at, _)| {
                let name = &l[at..];
                let end = name
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(name.len());
                name[end..].starts_with('(')
            })
        })
        .count();
    assert_eq!(
        declared, exports,
        "the header declares functions not found in src/"
    );
}

#[test]
fn the_header_version_macros_match_the_crate() {
    let header = include_str!("../../include/evqueue.h");
    for (macro_name, value) in [
        ("EVQ_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("EVQ_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("EVQ_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        let line = format!("#define {macro_name} {value}\n");
        assert!(header.contains(&line), "header lacks {line:?}");
    }
    let string = format!(
        "#define EVQ_VERSION_STRING \"{}\"\n",
        env!("CARGO_PKG_VERSION")
    );
    assert!(header.contains(&string), "header lacks {string:?}");
    // SAFETY: a static string.
    let v = unsafe { CStr::from_ptr(evq_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn every_status_has_a_description() {
    for value in 0..=status::LAST_STATUS {
        let s = evq_status::from_i32(value).expect("contiguous values");
        assert_eq!(s as i32, value);
        // SAFETY: static strings.
        let text = unsafe { CStr::from_ptr(evq_status_str(value)) };
        assert!(!text.to_bytes().is_empty());
    }
    for bad in [-1, status::LAST_STATUS + 1, i32::MAX, i32::MIN] {
        // SAFETY: static strings.
        let text = unsafe { CStr::from_ptr(evq_status_str(bad)) };
        assert_eq!(text.to_str().unwrap(), "unknown status");
    }
}

static HANDLED: AtomicU64 = AtomicU64::new(0);
static HOOK_CODE: AtomicI32 = AtomicI32::new(0);

unsafe extern "C" fn count_or_fail(event: *const evq_event, _: *mut c_void) -> c_int {
    // SAFETY: the view is valid during the call.
    let e = unsafe { &*event };
    HANDLED.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the name is valid for name_len bytes during the call.
    let name = unsafe { std::slice::from_raw_parts(e.name.cast::<u8>(), e.name_len) };
    if name == b"bad" {
        42
    } else {
        0
    }
}

unsafe extern "C" fn record_code(_: *const evq_event, f: *const evq_failure, _: *mut c_void) {
    // SAFETY: valid during the call.
    let f = unsafe { &*f };
    // SAFETY: NUL-terminated, valid during the call.
    let msg = unsafe { CStr::from_ptr(f.message) };
    assert_eq!(msg.to_bytes().len(), f.message_len);
    assert!(!f.panicked);
    HOOK_CODE.store(f.code, Ordering::SeqCst);
}

fn event(name: &str) -> evq_event {
    evq_event {
        name: name.as_ptr().cast(),
        name_len: name.len(),
        ..evq_event::EMPTY
    }
}

/// A nonzero return from a C handler is a counted handler error that
/// reaches the error hook with its code; bad text is refused before it
/// reaches the core.
#[test]
fn a_round_trip_through_the_c_entry_points() {
    let mut config = evq_config_default();
    config.capacity = 64;
    config.workers = 1;
    let mut q: *mut evq_queue = null_mut();
    // SAFETY: every pointer below is valid for the call; q is freed once.
    unsafe {
        assert_eq!(evq_new(&config, &mut q), evq_status::EVQ_OK);
        assert_eq!(
            evq_on_any(q, Some(count_or_fail), null_mut()),
            evq_status::EVQ_OK
        );
        assert_eq!(
            evq_on_error(q, Some(record_code), null_mut()),
            evq_status::EVQ_OK
        );
        assert_eq!(
            evq_on_any(q, None, null_mut()),
            evq_status::EVQ_NULL_POINTER
        );
        assert_eq!(evq_start(q), evq_status::EVQ_OK);
        assert_eq!(evq_start(q), evq_status::EVQ_ALREADY_STARTED);
        let mut seq = u64::MAX;
        assert_eq!(evq_push(q, &event("good"), &mut seq), evq_status::EVQ_OK);
        assert_eq!(seq, 0);
        assert_eq!(evq_push(q, &event("bad"), null_mut()), evq_status::EVQ_OK);
        let invalid = [0x66u8, 0xff, 0x6f];
        let mut e = event("x");
        e.name = invalid.as_ptr().cast();
        e.name_len = invalid.len();
        assert_eq!(evq_push(q, &e, null_mut()), evq_status::EVQ_INVALID_UTF8);
        assert!(last_error_string().contains("offset 1"));
        assert_eq!(evq_flush(q, 5000), evq_status::EVQ_OK);
        let mut stats = evq_queue_stats::default();
        assert_eq!(evq_stats(q, &mut stats), evq_status::EVQ_OK);
        assert_eq!(
            (stats.pushed, stats.handled, stats.handler_errors),
            (2, 2, 1)
        );
        assert_eq!(HANDLED.load(Ordering::SeqCst), 2);
        assert_eq!(HOOK_CODE.load(Ordering::SeqCst), 42);
        let mut report = evq_shutdown_report::default();
        assert_eq!(evq_shutdown(q, 5000, &mut report), evq_status::EVQ_OK);
        assert_eq!((report.pushed, report.handled, report.errors), (2, 2, 1));
        assert_eq!(
            evq_push(q, &event("late"), null_mut()),
            evq_status::EVQ_CLOSED
        );
        evq_free(q);
    }
}

/// A NULL buffer is `EVQ_NULL_POINTER` whatever its
/// length (it was `EVQ_BUFFER_TOO_SMALL` for a short one), and writes
/// nothing; NULL with 0 is still the size query.
#[test]
fn prometheus_into_a_null_buffer_is_a_null_pointer_whatever_the_length() {
    let mut config = evq_config_default();
    config.capacity = 64;
    config.workers = 1;
    let mut q: *mut evq_queue = null_mut();
    // SAFETY: every pointer below is valid for the call (or NULL on
    // purpose); q is freed once.
    unsafe {
        assert_eq!(evq_new(&config, &mut q), evq_status::EVQ_OK);
        let mut need = 0usize;
        assert_eq!(
            evq_stats_prometheus(q, null_mut(), 0, &mut need),
            evq_status::EVQ_BUFFER_TOO_SMALL
        );
        assert!(need > 100, "{need}");
        for len in [1, 10, need - 1, need, usize::MAX] {
            let mut untouched = 7usize;
            assert_eq!(
                evq_stats_prometheus(q, null_mut(), len, &mut untouched),
                evq_status::EVQ_NULL_POINTER,
                "length {len}"
            );
            assert_eq!(untouched, 7, "length {len}");
            assert_eq!(last_error_string(), "argument `buf` is NULL");
        }
        evq_free(q);
    }
}

/// `evq_now` is the clock that stamps a push with
/// timestamp 0.
#[test]
fn evq_now_is_the_clock_of_timestamp_zero() {
    let mut config = evq_config_default();
    config.capacity = 64;
    config.workers = 1;
    let mut q: *mut evq_queue = null_mut();
    // SAFETY: every pointer below is valid for the call; q is freed once.
    unsafe {
        assert_eq!(evq_new(&config, &mut q), evq_status::EVQ_OK);
        let before = evq_now();
        assert_eq!(evq_push(q, &event("now"), null_mut()), evq_status::EVQ_OK);
        let after = evq_now();
        assert!(before > 1_600_000_000_000_000_000, "{before}");
        let popped = (*q).queue.try_pop().unwrap();
        assert!(
            before <= popped.timestamp && popped.timestamp <= after,
            "{before} <= {} <= {after}",
            popped.timestamp
        );
        evq_free(q);
    }
}

#[test]
fn the_pop_buffer_holds_the_most_properties_a_slot_can() {
    // 16-byte slots: header 12 + a 1-byte name leaves 3 bytes: no property.
    assert_eq!(max_properties(16), 0);
    assert_eq!(max_properties(256), (256 - 13) / 4);
    assert!(pop_buffer_size(256) >= 256 + 60 * std::mem::size_of::<evq_property>());
}

static PANIC_HOOK_CALLS: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" fn expect_panic(e: *const evq_event, f: *const evq_failure, _: *mut c_void) {
    // SAFETY: valid during the call.
    let (e, f) = unsafe { (&*e, &*f) };
    // SAFETY: NUL-terminated, valid during the call.
    let msg = unsafe { CStr::from_ptr(f.message) }.to_string_lossy();
    // SAFETY: the name is valid for name_len bytes during the call.
    let name = unsafe { std::slice::from_raw_parts(e.name.cast::<u8>(), e.name_len) };
    if f.panicked && f.code == 0 && msg == "handler bug" && name == b"boom" {
        PANIC_HOOK_CALLS.fetch_add(1, Ordering::SeqCst);
    }
}

/// A panic inside a handler (a Rust one here: a C handler cannot unwind)
/// is caught by the worker, counted, and reaches the C error hook as
/// `panicked`; the worker survives and handles the next event.
#[test]
fn a_panicking_handler_reaches_the_c_hook_and_the_worker_survives() {
    let mut config = evq_config_default();
    config.capacity = 64;
    config.workers = 1;
    let mut q: *mut evq_queue = null_mut();
    // SAFETY: every pointer is valid for the call; q is freed once.
    unsafe {
        assert_eq!(evq_new(&config, &mut q), evq_status::EVQ_OK);
        (*q).queue
            .on("boom", |_| panic!("handler bug"))
            .expect("valid name");
        assert_eq!(
            evq_on_error(q, Some(expect_panic), null_mut()),
            evq_status::EVQ_OK
        );
        assert_eq!(evq_start(q), evq_status::EVQ_OK);
        assert_eq!(evq_push(q, &event("boom"), null_mut()), evq_status::EVQ_OK);
        assert_eq!(evq_push(q, &event("after"), null_mut()), evq_status::EVQ_OK);
        assert_eq!(evq_flush(q, 5000), evq_status::EVQ_OK);
        let mut stats = evq_queue_stats::default();
        assert_eq!(evq_stats(q, &mut stats), evq_status::EVQ_OK);
        assert_eq!(
            (stats.handled, stats.panics, stats.handler_errors),
            (2, 1, 0)
        );
        assert_eq!(PANIC_HOOK_CALLS.load(Ordering::SeqCst), 1);
        evq_free(q);
    }
}

/// `or_bytes` sees a non-ASCII byte at any position of any length (each
/// length class reads the text differently).
#[test]
fn or_bytes_sees_every_byte() {
    for len in 0..=40usize {
        let ascii = vec![0x7F; len];
        assert_eq!(or_bytes(&ascii) & HIGH_BITS, 0, "length {len}");
        for at in 0..len {
            let mut text = ascii.clone();
            text[at] = 0x80;
            assert_ne!(or_bytes(&text) & HIGH_BITS, 0, "length {len}, byte {at}");
        }
    }
}

/// `evq_push`'s ASCII fast path and its checked path agree: ASCII, valid
/// non-ASCII UTF-8 and invalid UTF-8 at every position of the name, a key
/// and a value of every short length are pushed intact or refused with
/// `EVQ_INVALID_UTF8`, pushing nothing.
#[test]
fn evq_push_accepts_and_refuses_text_at_every_position() {
    let mut config = evq_config_default();
    config.capacity = 16;
    let mut q: *mut evq_queue = null_mut();
    // SAFETY: valid pointers; q is freed once at the end.
    assert_eq!(unsafe { evq_new(&config, &mut q) }, evq_status::EVQ_OK);
    // SAFETY: q is live.
    let mut buf = vec![0u8; unsafe { evq_pop_buffer_size(q) }];
    let mut pushed = 0u64;
    for len in 1..=20usize {
        for at in 0..len {
            for field in 0..3 {
                for (bytes, ok) in [(&b"\xC3\xA9"[..], true), (&b"\xFF"[..], false)] {
                    // `len` bytes of ASCII with `bytes` placed at `at` (the
                    // text grows by one for the 2-byte character).
                    let mut text = vec![b'k'; len];
                    text.splice(at..at + 1, bytes.iter().copied());
                    let plain = b"plain".as_slice();
                    let (name, key, value) = match field {
                        0 => (&text[..], plain, plain),
                        1 => (plain, &text[..], plain),
                        _ => (plain, plain, &text[..]),
                    };
                    let prop = evq_property {
                        key: key.as_ptr().cast(),
                        key_len: key.len(),
                        value: value.as_ptr().cast(),
                        value_len: value.len(),
                    };
                    let e = evq_event {
                        name: name.as_ptr().cast(),
                        name_len: name.len(),
                        properties: &prop,
                        property_count: 1,
                        timestamp: 7,
                        ..evq_event::EMPTY
                    };
                    let what = format!("length {len}, byte {at}, field {field}, ok {ok}");
                    // SAFETY: every pointer is valid for its length.
                    let status = unsafe { evq_push(q, &e, null_mut()) };
                    let mut stats = evq_queue_stats::default();
                    // SAFETY: q is live.
                    unsafe { evq_stats(q, &mut stats) };
                    if !ok {
                        assert_eq!(status, evq_status::EVQ_INVALID_UTF8, "{what}");
                        assert_eq!(stats.pushed, pushed, "{what}: a refused push counted");
                        continue;
                    }
                    assert_eq!(status, evq_status::EVQ_OK, "{what}");
                    pushed += 1;
                    assert_eq!(stats.pushed, pushed, "{what}");
                    let mut out = MaybeUninit::<evq_payload>::uninit();
                    // SAFETY: the buffer is evq_pop_buffer_size long; out is writable.
                    let popped =
                        unsafe { evq_try_pop(q, buf.as_mut_ptr(), buf.len(), out.as_mut_ptr()) };
                    assert_eq!(popped, evq_status::EVQ_OK, "{what}");
                    // SAFETY: written by the successful pop.
                    let got = unsafe { out.assume_init() }.event;
                    // SAFETY: the view points into `buf`, valid until its reuse.
                    let (got_name, got_prop) = unsafe {
                        (
                            std::slice::from_raw_parts(got.name.cast::<u8>(), got.name_len),
                            *got.properties,
                        )
                    };
                    // SAFETY: as above.
                    let (got_key, got_value) = unsafe {
                        (
                            std::slice::from_raw_parts(got_prop.key.cast::<u8>(), got_prop.key_len),
                            std::slice::from_raw_parts(
                                got_prop.value.cast::<u8>(),
                                got_prop.value_len,
                            ),
                        )
                    };
                    assert_eq!((got_name, got_key, got_value), (name, key, value), "{what}");
                }
            }
        }
    }
    // SAFETY: q is live and used by no one else.
    unsafe { evq_free(q) };
}
