//! The one synchronization facade: every atomic, fence and spin hint the
//! algorithm uses comes from here, so `--cfg evqueue_loom` swaps all of them
//! for loom's model-checked versions at once. Algorithm code never imports
//! `core::sync::atomic` directly.

pub(crate) use core::sync::atomic::Ordering;

#[cfg(evqueue_loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64, AtomicU8};

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
