//! Time for the retry policy: a [`Clock`] reads the time and sleeps, so
//! tests can use a [`FakeClock`] that records sleeps and returns at once.
//! Sleeps are cut short by a [`Cancel`], which is how `close` stops a sink
//! that is backing off.

use crate::blocking::{deadline, lock, time_left, wait_timeout};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// A one-way flag that wakes sleepers when set.
#[derive(Debug, Default)]
pub struct Cancel {
    cancelled: Mutex<bool>,
    cond: Condvar,
}

impl Cancel {
    /// A flag not yet set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flag and wakes every sleeper.
    pub fn cancel(&self) {
        *lock(&self.cancelled) = true;
        self.cond.notify_all();
    }

    /// Whether the flag is set.
    pub fn is_cancelled(&self) -> bool {
        *lock(&self.cancelled)
    }

    /// Sleeps for `d` of real time or until the flag is set; returns whether
    /// it is set.
    pub fn sleep(&self, d: Duration) -> bool {
        let deadline = deadline(d);
        let mut cancelled = lock(&self.cancelled);
        while !*cancelled {
            let left = time_left(deadline);
            if left.is_zero() {
                break;
            }
            cancelled = wait_timeout(&self.cond, cancelled, left);
        }
        *cancelled
    }
}

/// Time as the retry policy sees it.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Instant;
    /// Waits `d` (or less once `cancel` is set).
    fn sleep(&self, d: Duration, cancel: &Cancel);
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, d: Duration, cancel: &Cancel) {
        cancel.sleep(d);
    }
}

/// A clock for tests: `sleep` records the duration, moves the time forward
/// by it and returns at once; [`FakeClock::advance`] moves time by hand.
///
/// ```
/// use evqueue::forward::{Cancel, Clock, FakeClock};
/// use std::time::Duration;
/// let clock = FakeClock::new();
/// let t0 = clock.now();
/// clock.sleep(Duration::from_secs(3), &Cancel::new());
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(clock.now() - t0, Duration::from_secs(4));
/// assert_eq!(clock.sleeps(), [Duration::from_secs(3)]);
/// ```
#[derive(Debug)]
pub struct FakeClock {
    start: Instant,
    state: Mutex<(Duration, Vec<Duration>)>,
}

impl Default for FakeClock {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeClock {
    /// A clock standing at an arbitrary instant.
    pub fn new() -> Self {
        FakeClock {
            start: Instant::now(),
            state: Mutex::new((Duration::ZERO, Vec::new())),
        }
    }

    /// Moves the time forward by `d` (not recorded as a sleep).
    pub fn advance(&self, d: Duration) {
        let mut state = lock(&self.state);
        state.0 = state.0.saturating_add(d);
    }

    /// Every sleep so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        lock(&self.state).1.clone()
    }

    /// Total time elapsed since the clock was made.
    pub fn elapsed(&self) -> Duration {
        lock(&self.state).0
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        // A clock reading, not a deadline: one advanced past what an
        // `Instant` can hold stands still a century on.
        const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
        let elapsed = lock(&self.state).0;
        self.start
            .checked_add(elapsed)
            .or_else(|| self.start.checked_add(FAR))
            .unwrap_or(self.start)
    }
    fn sleep(&self, d: Duration, _cancel: &Cancel) {
        let mut state = lock(&self.state);
        state.0 = state.0.saturating_add(d);
        state.1.push(d);
    }
}
