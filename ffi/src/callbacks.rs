//! C callbacks as core handlers: a C view of an event for the duration of a
//! call, the `Send + Sync` wrapper around a function pointer and its
//! `user_data`, and the error a nonzero return becomes.

use crate::args::INLINE_PROPERTIES;
use crate::{evq_event, evq_failure, evq_property, evq_raw};
use evq_core::EventView;
use std::ffi::{c_int, c_void};
use std::mem::MaybeUninit;

/// Calls `f` with a C view of `view`: its properties converted on the stack
/// (up to [`INLINE_PROPERTIES`]) or in a `Vec`.
pub(crate) fn with_c_event<R>(view: &EventView<'_>, f: impl FnOnce(&evq_event) -> R) -> R {
    let n = view.properties().len();
    if n <= INLINE_PROPERTIES {
        let mut props = [MaybeUninit::<evq_property>::uninit(); INLINE_PROPERTIES];
        let mut written = 0;
        for (slot, pair) in props.iter_mut().zip(view.properties()) {
            *slot = MaybeUninit::new(evq_property::from_pair(pair));
            written += 1;
        }
        // SAFETY: the first `written` elements were just initialized, and
        // `MaybeUninit<T>` has the layout of `T`.
        let props =
            unsafe { std::slice::from_raw_parts(props.as_ptr().cast::<evq_property>(), written) };
        f(&evq_event::from_view(view, props))
    } else {
        let props: Vec<evq_property> = view
            .properties()
            .iter()
            .map(evq_property::from_pair)
            .collect();
        f(&evq_event::from_view(view, &props))
    }
}

/// A C callback and its `user_data`, callable from any worker thread.
pub(crate) struct Callback<F> {
    pub(crate) f: F,
    pub(crate) user_data: *mut c_void,
}

impl<F: Copy> Callback<F> {
    /// The function and the user data (a method, so closures capture the
    /// whole `Callback`, which is `Send + Sync`, not its raw-pointer field).
    pub(crate) fn parts(&self) -> (F, *mut c_void) {
        (self.f, self.user_data)
    }
}

// SAFETY: `user_data` is an opaque pointer the C caller registered for use
// from the worker threads; the header documents that it is shared across
// them and that the caller makes what it points to thread-safe. The
// function pointers themselves are plain code addresses.
unsafe impl<F> Send for Callback<F> {}
// SAFETY: as above: the callback is only called, never mutated.
unsafe impl<F> Sync for Callback<F> {}

/// The error a C handler's nonzero return becomes.
#[derive(Debug)]
pub(crate) struct HandlerFailed(pub(crate) c_int);

impl std::fmt::Display for HandlerFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "handler returned {}", self.0)
    }
}

impl std::error::Error for HandlerFailed {}

pub(crate) type CHandler = unsafe extern "C" fn(*const evq_event, *mut c_void) -> c_int;
pub(crate) type CRawHandler = unsafe extern "C" fn(*const evq_raw, *mut c_void) -> c_int;
pub(crate) type CErrorHook =
    unsafe extern "C" fn(*const evq_event, *const evq_failure, *mut c_void);

/// Wraps a C handler as a core handler.
pub(crate) fn event_handler(
    f: CHandler,
    user_data: *mut c_void,
) -> impl Fn(&EventView<'_>) -> evq_core::HandlerResult + Send + Sync + 'static {
    let cb = Callback { f, user_data };
    move |view| {
        let (f, user_data) = cb.parts();
        let code = with_c_event(view, |event| {
            // SAFETY: `event` and everything it points to live for this call;
            // the C handler's contract is in the header.
            unsafe { f(event, user_data) }
        });
        if code == 0 {
            Ok(())
        } else {
            Err(Box::new(HandlerFailed(code)))
        }
    }
}
