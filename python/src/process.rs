//! The process around the queues: `os.fork()` (which objects are the
//! parent's) and the interpreter's exit (closing every queue still open
//! while Python still runs).

use crate::errors::EvqueueError;
use evqueue::blocking::lock;
use pyo3::prelude::*;
use std::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{Relaxed, Release},
};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// What `drop` (and the interpreter's exit) gives a queue to drain.
pub(crate) const DROP_DEADLINE: Duration = Duration::from_secs(5);

/// Every live queue with the fork generation it was made in, so the
/// interpreter's exit can close them while Python still runs (worker threads
/// must not try to take the GIL of a finalizing interpreter).
static LIVE: Mutex<Vec<(u64, Weak<evqueue::EventQueue>)>> = Mutex::new(Vec::new());

/// Adds a queue made in fork generation `generation` to the ones the
/// interpreter's exit closes.
pub(crate) fn register_live(generation: u64, queue: &Arc<evqueue::EventQueue>) {
    let mut live = lock(&LIVE);
    live.retain(|(_, w)| w.strong_count() > 0);
    live.push((generation, Arc::downgrade(queue)));
}

/// How many times this process is a child of `os.fork()` (the package
/// registers [`_after_fork_in_child`] with `os.register_at_fork`). A queue or
/// forwarder made in an earlier generation has no threads here: its worker
/// and writer threads stayed in the parent.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Called in the child after `os.fork()`.
#[pyfunction]
pub(crate) fn _after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Relaxed);
}

/// This process's fork generation, to stamp a new queue or forwarder with.
pub(crate) fn fork_generation() -> u64 {
    FORK_GENERATION.load(Relaxed)
}

/// Refuses an object made before `os.fork()` (its threads are in the
/// parent: waiting on them would hang, joining them would panic).
pub(crate) fn check_same_process(generation: u64, what: &str) -> PyResult<()> {
    if generation == fork_generation() {
        return Ok(());
    }
    Err(EvqueueError::new_err(format!(
        "this {what} was made before os.fork(): its threads stayed in the parent \
         process, so it cannot be used in the child; make a new one here"
    )))
}

/// Set by `_close_all` (at interpreter exit): from then on a worker thread
/// that ends leaves its thread state to the interpreter's own cleanup.
pub(crate) static EXITING: AtomicBool = AtomicBool::new(false);

/// Closes every queue still open; `evqueue` registers it with `atexit`, so
/// no worker thread wants the GIL while the interpreter finalizes.
#[pyfunction]
pub(crate) fn _close_all(py: Python<'_>) {
    EXITING.store(true, Release);
    let generation = fork_generation();
    let live: Vec<Arc<evqueue::EventQueue>> = lock(&LIVE)
        .iter()
        .filter(|(g, _)| *g == generation)
        .filter_map(|(_, w)| w.upgrade())
        .collect();
    py.detach(|| {
        for queue in &live {
            let _ = queue.shutdown(DROP_DEADLINE);
        }
    });
    drop(live);
}
