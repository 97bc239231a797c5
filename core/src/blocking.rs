//! Helpers for the `std` code that blocks: a lock and condition-variable
//! waits that tolerate poisoning, and the one way a timeout becomes a
//! deadline.
//!
//! Public only so that evqueue's own bindings (the Python module) share
//! them; not part of the API.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Locks `m`, taking the guard even if a thread panicked while holding it.
/// Every critical section in evqueue leaves its state consistent (a
/// poisoned counter map is still a valid counter map), and a panicking
/// handler or sink must not take the rest down with it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// [`Condvar::wait`], tolerating poison as [`lock`] does.
pub fn wait<'a, T>(cond: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cond.wait(guard).unwrap_or_else(PoisonError::into_inner)
}

/// [`Condvar::wait_timeout`], tolerating poison as [`lock`] does. Any
/// `timeout` works: `Duration::MAX` waits until notified.
pub fn wait_timeout<'a, T>(
    cond: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
) -> MutexGuard<'a, T> {
    cond.wait_timeout(guard, timeout)
        .unwrap_or_else(PoisonError::into_inner)
        .0
}

/// The deadline `timeout` from now; `None` means no deadline: a timeout too
/// long to add to an [`Instant`] (`Duration::MAX` is a caller's "no limit")
/// waits forever, where `Instant + Duration` would panic.
pub fn deadline(timeout: Duration) -> Option<Instant> {
    deadline_at(Instant::now(), timeout)
}

/// [`deadline`] counted from `start` (an instant of another clock, such as
/// a fake one in tests).
pub fn deadline_at(start: Instant, timeout: Duration) -> Option<Instant> {
    start.checked_add(timeout)
}

/// Time left until `deadline`: zero once it has passed, `Duration::MAX`
/// when there is none (see [`deadline`]).
pub fn time_left(deadline: Option<Instant>) -> Duration {
    deadline.map_or(Duration::MAX, |d| {
        d.saturating_duration_since(Instant::now())
    })
}
