//! The GIL and thread states: worker threads keep their Python thread state
//! across batches and take the GIL once per batch; waits run with the GIL
//! released and still take Ctrl-C.

use crate::errors::EvqueueError;
use crate::process::EXITING;
use pyo3::ffi;
use pyo3::prelude::*;
use std::sync::atomic::Ordering::Acquire;
use std::time::Duration;

/// How long one wait runs with the GIL released before Python gets a chance
/// to raise KeyboardInterrupt.
pub(crate) const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Runs `work` on a helper thread named `name` and waits for its result
/// with the GIL released, taking signals every [`SIGNAL_CHECK`]: a wait
/// inside native code would otherwise hold off Ctrl-C until it ends. If a
/// signal handler raises (KeyboardInterrupt), that is returned and `work`
/// goes on in the background; its result is dropped.
pub(crate) fn wait_interruptibly<T: Send + 'static>(
    py: Python<'_>,
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> PyResult<T> {
    let (tx, mut rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|e| EvqueueError::new_err(format!("could not start a {name} thread: {e}")))?;
    loop {
        let rx = &mut rx;
        match py.detach(move || rx.recv_timeout(SIGNAL_CHECK)) {
            Ok(result) => return Ok(result),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => py.check_signals()?,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(EvqueueError::new_err(format!(
                    "the {name} thread ended early"
                )));
            }
        }
    }
}

/// A worker thread's Python thread state, kept across batches so that
/// taking the GIL for a batch does not create and destroy one; deleted when
/// the thread ends.
pub(crate) struct KeptThreadState;

impl KeptThreadState {
    fn new() -> Self {
        // SAFETY: called on a worker thread that does not hold the GIL.
        // PyGILState_Ensure creates the thread state and returns with the
        // GIL held and the state's count at 1, where it stays until `drop`;
        // PyEval_SaveThread releases the GIL, keeping the state. Each batch
        // then takes the GIL with a balanced Ensure/Release pair of its own.
        unsafe {
            ffi::PyGILState_Ensure();
            ffi::PyEval_SaveThread();
        }
        KeptThreadState
    }
}

impl Drop for KeptThreadState {
    fn drop(&mut self) {
        if EXITING.load(Acquire) {
            return;
        }
        // SAFETY: the thread does not hold the GIL (it runs this when it
        // ends, outside any batch). Ensure takes the GIL (count 2); the
        // release that pairs with it keeps the GIL (LOCKED); the release that
        // pairs with `new`'s Ensure (which found no GIL: UNLOCKED) brings the
        // count to 0, which deletes the thread state and releases the GIL.
        unsafe {
            ffi::PyGILState_Ensure();
            ffi::PyGILState_Release(ffi::PyGILState_STATE::PyGILState_LOCKED);
            ffi::PyGILState_Release(ffi::PyGILState_STATE::PyGILState_UNLOCKED);
        }
    }
}

thread_local! {
    static KEPT: std::cell::OnceCell<KeptThreadState> = const { std::cell::OnceCell::new() };
}

/// Runs one batch of handlers with the GIL held.
pub(crate) fn with_gil_for_batch(run: &mut dyn FnMut()) {
    KEPT.with(|k| {
        k.get_or_init(KeptThreadState::new);
    });
    Python::attach(|_py| run());
}
