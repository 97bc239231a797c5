//! Errors of the dispatcher layer. Event and ring errors stay
//! [`crate::Error`]; these cover the pool itself.

use std::fmt;

/// Why a dispatcher operation (build, flush, shutdown) was refused or did not
/// complete.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DispatchError {
    /// The ring could not be built: bad capacity or slot size, or no memory
    /// (the wrapped [`crate::Error`] says which).
    Config(crate::Error),
    /// The worker count must be between 1 and [`EventQueueBuilder::MAX_WORKERS`](super::EventQueueBuilder::MAX_WORKERS).
    InvalidWorkers {
        /// The count asked for.
        workers: usize,
    },
    /// The claim batch must be between 1 and [`EventQueueBuilder::MAX_CLAIM_BATCH`](super::EventQueueBuilder::MAX_CLAIM_BATCH).
    InvalidBatch {
        /// The batch size asked for.
        batch: usize,
    },
    /// The worker nice must be at most
    /// [`EventQueueBuilder::MAX_WORKER_NICE`](super::EventQueueBuilder::MAX_WORKER_NICE).
    InvalidNice {
        /// The nice levels asked for.
        levels: u8,
    },
    /// The worker thread name prefix contains a NUL byte, which thread
    /// names cannot hold.
    InvalidThreadName {
        /// The prefix asked for.
        prefix: String,
    },
    /// The lane count must be 0 (automatic) or a power of two, at most
    /// [`EventQueueBuilder::MAX_LANES`](super::EventQueueBuilder::MAX_LANES).
    InvalidLanes {
        /// The count asked for.
        lanes: usize,
    },
    /// The operating system refused to start a worker thread.
    Spawn(String),
    /// [`EventQueue::start`](super::EventQueue::start) was called on a queue
    /// whose workers were already started.
    AlreadyStarted,
    /// [`EventQueue::start`](super::EventQueue::start) was called after shutdown.
    Closed,
    /// `flush` or `shutdown` was called from inside a handler (or the error
    /// hook) of this queue: it would wait on its own worker.
    InHandler,
    /// `flush` timed out with events still unhandled.
    Timeout {
        /// Events pushed before the flush and not yet handled or lost.
        left: u64,
    },
    /// `flush` after shutdown, with events that no worker will handle any more.
    ShutDown {
        /// Events pushed before the flush and left unhandled.
        left: u64,
    },
}

impl fmt::Display for DispatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Running out of memory is not a configuration mistake.
            DispatchError::Config(e @ crate::Error::AllocationFailed { .. }) => write!(f, "{e}"),
            DispatchError::Config(e) => write!(f, "invalid queue configuration: {e}"),
            DispatchError::InvalidWorkers { workers } => write!(
                f,
                "worker count {workers} is invalid: it must be between 1 and {}",
                super::EventQueueBuilder::MAX_WORKERS
            ),
            DispatchError::InvalidBatch { batch } => write!(
                f,
                "claim batch {batch} is invalid: it must be between 1 and {}",
                super::EventQueueBuilder::MAX_CLAIM_BATCH
            ),
            DispatchError::InvalidNice { levels } => write!(
                f,
                "worker nice {levels} is invalid: it must be at most {}",
                super::EventQueueBuilder::MAX_WORKER_NICE
            ),
            DispatchError::InvalidThreadName { prefix } => write!(
                f,
                "worker thread name prefix {prefix:?} is invalid: it contains a NUL byte"
            ),
            DispatchError::InvalidLanes { lanes } => write!(
                f,
                "lane count {lanes} is invalid: it must be 0 (automatic) or a power of two, at most {}",
                super::EventQueueBuilder::MAX_LANES
            ),
            DispatchError::Spawn(e) => write!(f, "could not start a worker thread: {e}"),
            DispatchError::AlreadyStarted => f.write_str("the queue's workers are already started"),
            DispatchError::Closed => f.write_str("the queue is shut down"),
            DispatchError::InHandler => f.write_str(
                "flush or shutdown called from inside a handler of the same queue: it would wait on itself",
            ),
            DispatchError::Timeout { left } => {
                write!(f, "flush timed out with {left} events still unhandled")
            }
            DispatchError::ShutDown { left } => {
                write!(f, "queue is shut down with {left} events left unhandled")
            }
        }
    }
}

impl std::error::Error for DispatchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DispatchError::Config(e) => Some(e),
            _ => None,
        }
    }
}

impl From<crate::Error> for DispatchError {
    fn from(e: crate::Error) -> Self {
        DispatchError::Config(e)
    }
}

/// What [`EventSubscriber::recv_timeout`](super::EventSubscriber::recv_timeout)
/// returns instead of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecvTimeoutError {
    /// Nothing arrived in time: the heartbeat, time to send a keep-alive.
    Timeout,
    /// The subscriber was lapped: this many events were lost before it read
    /// them (see [`RecvError::Lagged`](crate::RecvError::Lagged)); it
    /// continues where its [`Lag`](crate::Lag) policy says.
    Lagged(u64),
    /// The queue is shut down and the subscriber has read everything.
    Closed,
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("no event before the timeout"),
            RecvTimeoutError::Lagged(n) => crate::error::lagged(f, *n),
            RecvTimeoutError::Closed => f.write_str("queue is closed and drained"),
        }
    }
}

impl std::error::Error for RecvTimeoutError {}
