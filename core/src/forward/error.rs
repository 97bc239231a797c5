//! The errors the combinators return (boxed into a [`SinkError`](super::SinkError)).

use super::SinkError;
use std::fmt;

/// Why a combinator did not take or deliver a batch. Every case is counted
/// in the combinator's stats as well.
#[derive(Debug)]
#[non_exhaustive]
pub enum ForwardError {
    /// The sink was closed; the batch was not taken.
    Closed,
    /// A bounded buffer was full: `dropped` events of the batch were refused
    /// (the rest were taken).
    Overflow {
        /// Events refused.
        dropped: usize,
        /// The buffer's bound, in events.
        capacity: usize,
    },
    /// `flush` or `close` ran out of time with `pending` events not yet
    /// written.
    Timeout {
        /// Events still waiting.
        pending: usize,
    },
    /// `close` gave up on `events` events that could not be written in time
    /// (counted as abandoned).
    Abandoned {
        /// Events given up.
        events: usize,
    },
    /// The retry policy's attempt limit was reached; the batch went to the
    /// dead-letter hook (if any) and is counted as dead-lettered.
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        last: SinkError,
    },
    /// Fan-out: these sinks (by name) refused some events; see each one's
    /// stats.
    FanOut {
        /// `(sink name, error)` for every sink that refused.
        failures: Vec<(String, SinkError)>,
    },
    /// A bad configuration value, named.
    Config(String),
}

impl fmt::Display for ForwardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardError::Closed => f.write_str("the sink is closed"),
            ForwardError::Overflow { dropped, capacity } => write!(
                f,
                "buffer full ({capacity} events): {dropped} events refused and counted"
            ),
            ForwardError::Timeout { pending } => {
                write!(f, "timed out with {pending} events not yet written")
            }
            ForwardError::Abandoned { events } => write!(
                f,
                "closed with {events} events that could not be written (counted as abandoned)"
            ),
            ForwardError::Exhausted { attempts, last } => write!(
                f,
                "gave up after {attempts} attempts (batch dead-lettered): {last}"
            ),
            ForwardError::FanOut { failures } => {
                f.write_str("fan-out:")?;
                for (i, (name, e)) in failures.iter().enumerate() {
                    let sep = if i == 0 { " " } else { "; " };
                    write!(f, "{sep}sink {name:?}: {e}")?;
                }
                Ok(())
            }
            ForwardError::Config(what) => write!(f, "invalid configuration: {what}"),
        }
    }
}

impl std::error::Error for ForwardError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ForwardError::Exhausted { last, .. } => Some(&**last),
            _ => None,
        }
    }
}
