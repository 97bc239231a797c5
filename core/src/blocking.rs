//! Helpers for the `std` code that blocks: a lock that tolerates poisoning.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, taking the guard even if a thread panicked while holding it.
/// Nothing evqueue guards is left half-updated by a panic (a poisoned
/// counter map is still a valid counter map), so poisoning is not an error.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
