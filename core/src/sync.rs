//! The one synchronization facade: every atomic, fence and spin hint the
//! algorithm uses comes from here, so `--cfg evqueue_loom` swaps all of them
//! for loom's model-checked versions at once. Algorithm code never imports
//! `core::sync::atomic` directly.

pub(crate) use core::sync::atomic::Ordering;

#[cfg(evqueue_loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64, AtomicU8};

/// The shared ring's futex word and waiter count (feature `shm`, not loom-modelled).
#[cfg(all(feature = "shm", target_os = "linux", not(evqueue_loom)))]
pub(crate) use core::sync::atomic::AtomicU32;
#[cfg(not(evqueue_loom))]
pub(crate) use core::sync::atomic::{fence, AtomicU8};

// Targets without native 64-bit atomics (thumbv7em, ...) get portable-atomic's
// lock-based fallback: correct everywhere, lock-free only where the hardware is.
#[cfg(all(not(evqueue_loom), target_has_atomic = "64"))]
pub(crate) use core::sync::atomic::AtomicU64;
#[cfg(all(not(evqueue_loom), not(target_has_atomic = "64")))]
pub(crate) use portable_atomic::AtomicU64;

/// Called in every retry loop: a CPU hint normally, a yield point under loom
/// so the model checker can schedule the thread we are waiting for.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(evqueue_loom)]
    loom::thread::yield_now();
    #[cfg(not(evqueue_loom))]
    core::hint::spin_loop();
}

/// Declares a `const fn` normally and a plain `fn` under loom, whose atomics
/// cannot be built in const context.
macro_rules! const_fn {
    ($(#[$attr:meta])* $vis:vis fn $($rest:tt)*) => {
        #[cfg(not(evqueue_loom))]
        $(#[$attr])* $vis const fn $($rest)*
        #[cfg(evqueue_loom)]
        $(#[$attr])* $vis fn $($rest)*
    };
}
pub(crate) use const_fn;

/// The dispatcher's parking (`dispatcher/park.rs`): its lock, flags, counts
/// and thread parking, swapped for loom's like the ring's atomics, so the
/// no-lost-wake-up protocol is model-checked through the same code. The
/// async waiters (`dispatcher/waiter.rs`, feature `async`) use the same
/// lock and counts; their wakers are `core::task::Waker`s, which loom's
/// `block_on` drives as they are.
#[cfg(feature = "std")]
pub(crate) mod park {
    #[cfg(not(evqueue_loom))]
    pub(crate) use crate::blocking::lock;
    #[cfg(not(evqueue_loom))]
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize};
    #[cfg(not(evqueue_loom))]
    pub(crate) use std::sync::Mutex;
    #[cfg(not(evqueue_loom))]
    pub(crate) use std::thread::{current, park, park_timeout, Thread};

    #[cfg(evqueue_loom)]
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize};
    #[cfg(evqueue_loom)]
    pub(crate) use loom::sync::Mutex;
    #[cfg(evqueue_loom)]
    pub(crate) use loom::thread::{current, park, Thread};

    /// `crate::blocking::lock` for loom's mutex.
    #[cfg(evqueue_loom)]
    pub(crate) fn lock<T>(m: &Mutex<T>) -> loom::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Loom has no timed park and no clock: a timed park returns at once,
    /// as a timeout may. (The models never wait with a deadline.)
    #[cfg(evqueue_loom)]
    pub(crate) fn park_timeout(_: std::time::Duration) {
        loom::thread::yield_now();
    }
}
