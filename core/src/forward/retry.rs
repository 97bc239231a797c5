//! Retry with exponential backoff, full jitter, an attempt limit with a
//! dead-letter hook, and a circuit breaker.
//!
//! Attempt `n` that fails is followed by a sleep drawn uniformly from
//! `[0, min(max_delay, base_delay * 2^(n-1))]` ("full jitter": retries of
//! many clients spread out instead of arriving in waves). The breaker counts
//! consecutive failures across all writes: once they reach the threshold,
//! every further attempt waits until `cooldown` has passed since the last
//! failure (a success closes it again). So a dead service costs one attempt
//! per cool-down, not a storm of them.

use super::clock::{Cancel, Clock, SystemClock};
use super::{ForwardError, Sink, SinkError};
use crate::blocking::{deadline, deadline_at, lock, time_left};
use crate::OwnedEvent;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Called with a batch that ran out of attempts, and the last error.
pub type DeadLetter = Box<dyn Fn(&[OwnedEvent], &SinkError) + Send + Sync + 'static>;

/// How [`Retry`] retries. Defaults: 5 attempts, 50 ms base delay, 5 s
/// maximum delay, breaker after 5 consecutive failures with a 2 s cool-down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: Option<u32>,
    base_delay: Duration,
    max_delay: Duration,
    breaker_threshold: u32,
    breaker_cooldown: Duration,
    seed: Option<u64>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: Some(5),
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(5),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(2),
            seed: None,
        }
    }
}

impl RetryPolicy {
    /// At most `n` attempts per batch (`n >= 1`), then the dead-letter hook.
    pub fn attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }
    /// Retry until the write succeeds or the sink is closed (what a
    /// forwarder that must not lose what it took wants).
    pub fn unlimited_attempts(mut self) -> Self {
        self.max_attempts = None;
        self
    }
    /// The first retry's delay bound; it doubles with every attempt.
    pub fn base_delay(mut self, d: Duration) -> Self {
        self.base_delay = d;
        self
    }
    /// The largest delay bound (`>= base_delay`).
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }
    /// Open the breaker after `n` consecutive failures (`n >= 1`).
    pub fn breaker_threshold(mut self, n: u32) -> Self {
        self.breaker_threshold = n;
        self
    }
    /// How long an open breaker waits before the next attempt.
    pub fn breaker_cooldown(mut self, d: Duration) -> Self {
        self.breaker_cooldown = d;
        self
    }
    /// Seeds the jitter (for reproducible tests); by default it is seeded
    /// from the time.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), ForwardError> {
        if self.max_attempts == Some(0) {
            return Err(ForwardError::Config("attempts must be at least 1".into()));
        }
        if self.breaker_threshold == 0 {
            return Err(ForwardError::Config(
                "breaker_threshold must be at least 1".into(),
            ));
        }
        if self.max_delay < self.base_delay {
            return Err(ForwardError::Config(format!(
                "max_delay ({:?}) is below base_delay ({:?})",
                self.max_delay, self.base_delay
            )));
        }
        Ok(())
    }

    /// The delay bound after failed attempt `attempt` (1-based).
    fn cap(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(31);
        self.base_delay
            .checked_mul(1u32 << shift)
            .map_or(self.max_delay, |d| d.min(self.max_delay))
    }
}

/// Counters of a [`Retry`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryStats {
    /// Calls to the inner sink.
    pub attempts: u64,
    /// Failed calls to the inner sink.
    pub failures: u64,
    /// Attempts after a failure (backoff sleeps).
    pub retries: u64,
    /// Times the breaker opened: a failure with the consecutive count at or
    /// over the threshold while the breaker was closed or its cool-down over
    /// (so a failed trial after a cool-down counts again; writers failing
    /// together in one open window count once).
    pub breaker_opened: u64,
    /// Waits for an open breaker before an attempt.
    pub breaker_waits: u64,
    /// Events that ran out of attempts (passed to the dead-letter hook).
    pub dead_lettered: u64,
    /// Events given up because the sink was closed while retrying.
    pub abandoned: u64,
    /// Current consecutive failures.
    pub consecutive_failures: u32,
}

struct State {
    consecutive: u32,
    breaker: Breaker,
    rng: u64,
}

/// The circuit breaker's state.
#[derive(Clone, Copy)]
enum Breaker {
    Closed,
    /// Open until this instant of the clock; `None`: a cool-down too long to
    /// represent, so open until the sink is closed.
    Open(Option<Instant>),
}

/// Retries a sink's writes.
///
/// Retry with exponential backoff, full jitter, an attempt limit with a
/// dead-letter hook, and a circuit breaker.
///
/// Attempt `n` that fails is followed by a sleep drawn uniformly from
/// `[0, min(max_delay, base_delay * 2^(n-1))]` ("full jitter": retries of
/// many clients spread out instead of arriving in waves). The breaker counts
/// consecutive failures across all writes: once they reach the threshold,
/// every further attempt waits until `cooldown` has passed since the last
/// failure (a success closes it again). So a dead service costs one attempt
/// per cool-down, not a storm of them.
///
/// ```
/// use evqueue::forward::{FakeClock, FnSink, Retry, RetryPolicy, Sink};
/// use evqueue::OwnedEvent;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// let calls = Arc::new(AtomicU32::new(0));
/// let c = calls.clone();
/// let flaky = FnSink::new(move |_: &[OwnedEvent]| {
///     if c.fetch_add(1, Ordering::Relaxed) < 2 { Err("503".into()) } else { Ok(()) }
/// });
/// let clock = Arc::new(FakeClock::new());
/// let sink = Retry::with_clock(flaky, RetryPolicy::default().attempts(3), clock.clone())?;
/// sink.write(&[OwnedEvent::default()])?;
/// assert_eq!(calls.load(Ordering::Relaxed), 3);
/// assert_eq!(clock.sleeps().len(), 2); // two backoffs, no real time spent
/// # Ok::<(), evqueue::forward::SinkError>(())
/// ```
pub struct Retry<S> {
    inner: S,
    policy: RetryPolicy,
    clock: Arc<dyn Clock>,
    dead_letter: Option<DeadLetter>,
    state: Mutex<State>,
    cancel: Cancel,
    closed: AtomicBool,
    in_flight: AtomicUsize,
    attempts: AtomicU64,
    failures: AtomicU64,
    retries: AtomicU64,
    breaker_opened: AtomicU64,
    breaker_waits: AtomicU64,
    dead_lettered: AtomicU64,
    abandoned: AtomicU64,
}

impl<S: Sink> Retry<S> {
    /// Retries `inner` with `policy` on the real clock.
    pub fn new(inner: S, policy: RetryPolicy) -> Result<Self, ForwardError> {
        Self::with_clock(inner, policy, Arc::new(SystemClock))
    }

    /// Retries `inner` with `policy`, reading time from `clock`.
    pub fn with_clock(
        inner: S,
        policy: RetryPolicy,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ForwardError> {
        policy.validate()?;
        let seed = policy.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
        });
        Ok(Retry {
            inner,
            policy,
            clock,
            dead_letter: None,
            state: Mutex::new(State {
                consecutive: 0,
                breaker: Breaker::Closed,
                rng: seed,
            }),
            cancel: Cancel::new(),
            closed: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            attempts: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            breaker_opened: AtomicU64::new(0),
            breaker_waits: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
        })
    }

    /// Sets the hook that gets batches which ran out of attempts.
    pub fn dead_letter<F>(mut self, hook: F) -> Self
    where
        F: Fn(&[OwnedEvent], &SinkError) + Send + Sync + 'static,
    {
        self.dead_letter = Some(Box::new(hook));
        self
    }

    /// The wrapped sink.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> RetryStats {
        RetryStats {
            attempts: self.attempts.load(Relaxed),
            failures: self.failures.load(Relaxed),
            retries: self.retries.load(Relaxed),
            breaker_opened: self.breaker_opened.load(Relaxed),
            breaker_waits: self.breaker_waits.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            abandoned: self.abandoned.load(Relaxed),
            consecutive_failures: lock(&self.state).consecutive,
        }
    }

    fn write_inner(&self, batch: &[OwnedEvent]) -> Result<(), SinkError> {
        let mut attempt: u32 = 0;
        loop {
            let wait = match lock(&self.state).breaker {
                Breaker::Closed => Duration::ZERO,
                Breaker::Open(Some(until)) => until.saturating_duration_since(self.clock.now()),
                Breaker::Open(None) => Duration::MAX,
            };
            if !wait.is_zero() {
                self.breaker_waits.fetch_add(1, Relaxed);
                self.clock.sleep(wait, &self.cancel);
            }
            if self.cancel.is_cancelled() {
                self.abandoned.fetch_add(batch.len() as u64, Relaxed);
                return Err(Box::new(ForwardError::Abandoned {
                    events: batch.len(),
                }));
            }
            attempt = attempt.saturating_add(1);
            self.attempts.fetch_add(1, Relaxed);
            let error = match self.inner.write(batch) {
                Ok(()) => {
                    let mut st = lock(&self.state);
                    st.consecutive = 0;
                    st.breaker = Breaker::Closed;
                    return Ok(());
                }
                Err(e) => e,
            };
            self.failures.fetch_add(1, Relaxed);
            let delay = {
                let mut st = lock(&self.state);
                st.consecutive = st.consecutive.saturating_add(1);
                if st.consecutive >= self.policy.breaker_threshold {
                    let now = self.clock.now();
                    // Concurrent writers failing in one open window open it once.
                    let open = match st.breaker {
                        Breaker::Closed => false,
                        Breaker::Open(until) => until.map_or(true, |until| until > now),
                    };
                    if !open {
                        self.breaker_opened.fetch_add(1, Relaxed);
                    }
                    st.breaker = Breaker::Open(deadline_at(now, self.policy.breaker_cooldown));
                }
                let cap = self.policy.cap(attempt);
                let r = splitmix(&mut st.rng);
                // Uniform in [0, cap] (inclusive), in nanoseconds.
                let cap_ns = cap.as_nanos().min(u64::MAX as u128 - 1) as u64;
                Duration::from_nanos(r % (cap_ns + 1))
            };
            if self.policy.max_attempts.is_some_and(|max| attempt >= max) {
                if let Some(hook) = &self.dead_letter {
                    hook(batch, &error);
                }
                self.dead_lettered.fetch_add(batch.len() as u64, Relaxed);
                return Err(Box::new(ForwardError::Exhausted {
                    attempts: attempt,
                    last: error,
                }));
            }
            self.retries.fetch_add(1, Relaxed);
            if !delay.is_zero() {
                self.clock.sleep(delay, &self.cancel);
            }
        }
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl<S: Sink> Sink for Retry<S> {
    /// Writes with retries. Returns [`ForwardError::Exhausted`] after the
    /// attempt limit (the batch went to the dead-letter hook),
    /// [`ForwardError::Abandoned`] when closed while retrying,
    /// [`ForwardError::Closed`] after close.
    fn write(&self, batch: &[OwnedEvent]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.in_flight.fetch_add(1, SeqCst);
        let result = if self.closed.load(SeqCst) {
            Err(Box::new(ForwardError::Closed) as SinkError)
        } else {
            self.write_inner(batch)
        };
        self.in_flight.fetch_sub(1, SeqCst);
        result
    }

    fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        self.inner.flush(timeout)
    }

    /// Refuses new writes, lets writes in progress retry until `timeout`,
    /// then cancels them (their batches are counted as abandoned) and
    /// closes the inner sink.
    fn close(&self, timeout: Duration) -> Result<(), SinkError> {
        let deadline = deadline(timeout);
        self.closed.store(true, SeqCst);
        while self.in_flight.load(SeqCst) > 0 && !time_left(deadline).is_zero() {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.cancel.cancel();
        while self.in_flight.load(SeqCst) > 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.inner.close(time_left(deadline))
    }
}
