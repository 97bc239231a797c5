//! Errors. [`Error`] covers every refused operation (bad configuration, bad
//! event, a full or closed ring); [`RecvError`] is what a receive reports
//! instead of an event. Both are `Copy` and allocation-free.

use core::fmt;

/// Why an operation was refused. A refused operation changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `Reject` policy: the worker group is a whole ring behind.
    Full,
    /// The ring was closed: no more events are accepted.
    Closed,
    /// A single producer already exists, or multi-producer handles do (the two
    /// modes exclude each other); or, for a multi-producer handle on a
    /// shared ring (`SharedRing`), all of its process entries are held.
    ProducerTaken,
    /// Capacity must be a nonzero power of two, at most [`MAX_CAPACITY`](crate::MAX_CAPACITY).
    InvalidCapacity {
        /// The capacity asked for.
        capacity: usize,
    },
    /// Slot size must be a multiple of 8 bytes between
    /// [`MIN_SLOT_BYTES`](crate::MIN_SLOT_BYTES) and [`MAX_SLOT_BYTES`](crate::MAX_SLOT_BYTES).
    InvalidSlotSize {
        /// The slot size asked for, in bytes.
        slot_bytes: usize,
    },
    /// The ring's memory could not be allocated.
    AllocationFailed {
        /// Bytes asked for.
        bytes: usize,
    },
    /// The payload or encoded event does not fit in one slot.
    TooLarge {
        /// Size of the payload or encoded event, in bytes.
        size: usize,
        /// Bytes a slot holds.
        max: usize,
    },
    /// An event name must not be empty.
    EmptyName,
    /// An event name is longer than [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) bytes.
    NameTooLong {
        /// Length of the name, in bytes.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A property key must not be empty.
    EmptyKey,
    /// A property key is longer than [`MAX_KEY_LEN`](crate::MAX_KEY_LEN) bytes.
    KeyTooLong {
        /// Length of the key, in bytes.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A property value is longer than [`MAX_VALUE_LEN`](crate::MAX_VALUE_LEN) bytes.
    ValueTooLong {
        /// Length of the value, in bytes.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// More than [`MAX_PROPERTIES`](crate::MAX_PROPERTIES) properties.
    TooManyProperties {
        /// Number of properties given.
        count: usize,
        /// The bound.
        max: usize,
    },
    /// Bytes that were decoded as an event are not a valid encoded event.
    Malformed,
    /// A property key that the call sets from an argument of its own: the
    /// `reason` of [`EventQueue::emit_session_end`](crate::EventQueue::emit_session_end).
    ReservedKey {
        /// The key.
        key: &'static str,
    },
    /// An ordering key is longer than
    /// [`MAX_ORDERING_KEY_LEN`](crate::lane::MAX_ORDERING_KEY_LEN) bytes.
    OrderingKeyTooLong {
        /// Length of the key, in bytes.
        len: usize,
        /// The bound.
        max: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Full => f.write_str("queue is full: the worker group is a whole ring behind"),
            Error::Closed => f.write_str("queue is closed"),
            Error::ProducerTaken => f.write_str(
                "producer already taken: a ring has either one single producer or multi-producer \
                 handles (and a shared ring room for 128 processes with multi-producer handles)",
            ),
            Error::InvalidCapacity { capacity } => write!(
                f,
                "capacity {capacity} is invalid: it must be a nonzero power of two, at most {}",
                crate::MAX_CAPACITY
            ),
            Error::InvalidSlotSize { slot_bytes } => write!(
                f,
                "slot size {slot_bytes} bytes is invalid: it must be a multiple of 8 between {} and {}",
                crate::MIN_SLOT_BYTES,
                crate::MAX_SLOT_BYTES
            ),
            Error::AllocationFailed { bytes } => {
                write!(f, "could not allocate {bytes} bytes for the ring")
            }
            Error::TooLarge { size, max } => {
                write!(f, "event of {size} bytes does not fit in a slot of {max} bytes")
            }
            Error::EmptyName => f.write_str("event name is empty"),
            Error::NameTooLong { len, max } => {
                write!(f, "event name of {len} bytes is longer than the limit of {max}")
            }
            Error::EmptyKey => f.write_str("property key is empty"),
            Error::KeyTooLong { len, max } => {
                write!(f, "property key of {len} bytes is longer than the limit of {max}")
            }
            Error::ValueTooLong { len, max } => {
                write!(f, "property value of {len} bytes is longer than the limit of {max}")
            }
            Error::TooManyProperties { count, max } => {
                write!(f, "{count} properties are more than the limit of {max}")
            }
            Error::Malformed => f.write_str("bytes are not a valid encoded event"),
            Error::ReservedKey { key } => write!(
                f,
                "property key {key:?} is reserved here: it is set from its own argument"
            ),
            Error::OrderingKeyTooLong { len, max } => {
                write!(f, "ordering key of {len} bytes is longer than the limit of {max}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// What a receive returns instead of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecvError {
    /// Nothing to receive right now.
    Empty,
    /// The ring is closed and everything in it was received.
    Closed,
    /// This many events were lost before the reader got to them
    /// (overwritten, or skipped by the reader's [`Lag`](crate::Lag) policy
    /// because they were about to be); it continues after them. Subscribers
    /// get it when they were lapped; the worker group when a claim passed
    /// over lost events and then found nothing (see
    /// [`Claim::lost`](crate::Claim::lost)).
    Lagged(u64),
    /// The buffer given is smaller than a slot.
    BufferTooSmall {
        /// Bytes needed: the ring's slot size.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RecvError::Empty => f.write_str("no event available"),
            RecvError::Closed => f.write_str("queue is closed and drained"),
            RecvError::Lagged(n) => lagged(f, n),
            RecvError::BufferTooSmall { needed, got } => {
                write!(
                    f,
                    "receive buffer of {got} bytes is smaller than a slot of {needed} bytes"
                )
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for RecvError {}

/// The one wording of a lap, for [`RecvError::Lagged`] and the dispatcher's
/// `RecvTimeoutError::Lagged`.
pub(crate) fn lagged(f: &mut fmt::Formatter<'_>, n: u64) -> fmt::Result {
    write!(
        f,
        "lagged: {n} events were lost before they were read (overwritten)"
    )
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::RecvError;

    /// The message says what was lost, for subscribers and workers alike.
    #[test]
    fn lagged_counts_lost_events() {
        assert_eq!(
            RecvError::Lagged(3).to_string(),
            "lagged: 3 events were lost before they were read (overwritten)"
        );
    }
}
