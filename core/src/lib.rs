//! evqueue: the event queue a game server embeds to take slow work off the
//! player's request path.
//!
//! The core is a lock-free, overwriting ring of fixed-size slots
//! ([`Ring`]), `no_std` and allocation-free with default features off:
//!
//! - **Producers** never block. [`Producer`] is the single producer (plain
//!   stores on the hot path); [`MpProducer`] is lock-free for any number of
//!   threads. Under [`Overflow::Overwrite`] the oldest unconsumed events are
//!   overwritten and counted; under [`Overflow::Reject`] a push fails with
//!   [`Error::Full`] when the worker group is a whole ring behind.
//! - **The worker group** shares one cursor: [`Ring::try_claim`] and
//!   [`Ring::try_claim_batch`] hand each event to exactly one caller, in push
//!   order.
//! - **Subscribers** ([`Subscriber`]) each keep a private cursor and see every
//!   event; one that was lapped gets [`RecvError::Lagged`] and continues
//!   where its [`Lag`] policy says: by default with some headroom past the
//!   oldest retained event, so a reader slower than the producer still gets
//!   runs of events instead of being lapped again at once.
//! - **Events** ([`Event`], [`EventView`]): the Nakama event encoded into one
//!   slot and decoded as a borrowed view. Raw byte payloads work too.
//!
//! Accounting is exact: at quiescence, once the worker group has drained the
//! ring, `pushed = delivered + overwritten + rejected` ([`Stats`]), and no
//! event is delivered twice to the worker group or torn to anyone.
//!
//! ```
//! use evqueue::{Event, Overflow, RecvError, StaticRing};
//!
//! // 1024 slots of 32 words (256 bytes), in a static: no allocator needed.
//! static EVENTS: StaticRing<1024, 32> = StaticRing::new(Overflow::Overwrite);
//!
//! let producer = EVENTS.mp_producer().unwrap();
//! producer.push_event(&Event::new("match_end").properties(&[("winner", "blue")]))?;
//!
//! let mut buf = [0u8; 256];
//! let claim = EVENTS.try_claim(&mut buf).unwrap();
//! let event = claim.event(&buf)?;
//! assert_eq!((event.name, event.properties().get("winner")), ("match_end", Some("blue")));
//! assert_eq!(EVENTS.try_claim(&mut buf), Err(RecvError::Empty));
//! # Ok::<(), evqueue::Error>(())
//! ```
//!
//! With the `async` feature, a subscriber is a `Stream` and the queue's
//! waits have async forms, on any runtime (here `futures::executor`; no
//! thread blocks while a task waits):
//!
//! ```
//! # #[cfg(feature = "async")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use evqueue::{Event, EventQueue, Start};
//! use futures::StreamExt;
//! let queue = EventQueue::builder().capacity(64).workers(2).build()?;
//! let mut feed = queue.subscribe(Start::Now);
//! queue.emit(&Event::new("match_end").properties(&[("winner", "blue")]))?;
//! futures::executor::block_on(async {
//!     let event = feed.next().await.expect("open")?; // or feed.recv_async()
//!     assert_eq!(event.property("winner"), Some("blue"));
//!     queue.flush_async().await?; // the handlers are done with it
//!     let report = queue.shutdown_async(std::future::pending::<()>()).await?;
//!     assert!(feed.next().await.is_none() && report.left == 0);
//!     Ok(())
//! })
//! # }
//! # #[cfg(not(feature = "async"))]
//! # fn main() {}
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "alloc")]
extern crate alloc;

#[cfg(feature = "std")]
#[doc(hidden)]
pub mod blocking;
mod codec;
#[cfg(feature = "std")]
mod dispatcher;
mod error;
mod events;
#[cfg(feature = "std")]
pub mod forward;
#[cfg(feature = "json")]
pub mod json;
pub mod lane;
mod producer;
mod ring;
#[cfg(all(feature = "shm", target_os = "linux", not(evqueue_loom)))]
mod shm;
mod stamp;
mod state;
mod storage;
mod subscriber;
mod sync;
mod words;

#[doc(hidden)]
pub use codec::max_properties;
#[cfg(feature = "std")]
pub use codec::now_nanos;
pub use codec::{
    check_name, encode_into, encoded_len, Event, EventView, Payload, Properties, PropertyIter,
    RawView, EVENT_HEADER_BYTES, MAX_KEY_LEN, MAX_NAME_LEN, MAX_PROPERTIES, MAX_VALUE_LEN,
};
#[cfg(feature = "std")]
pub use dispatcher::{
    DispatchError, Emitter, EventQueue, EventQueueBuilder, EventSubscriber, Failure, HandlerError,
    HandlerResult, NameFailures, OwnedEvent, QueueStats, RecvTimeoutError, ShutdownReport,
    SubscriberStats, MAX_FAILURE_NAMES, OTHER_FAILURE_NAMES, SESSION_END, SESSION_END_REASON,
    SESSION_ID, SESSION_START,
};
#[cfg(all(feature = "shm", target_os = "linux", not(evqueue_loom)))]
pub use dispatcher::{DrainStats, SharedDrain};
pub use error::{Error, RecvError};
pub use producer::{MpProducer, Producer};
#[cfg(feature = "alloc")]
pub use ring::HeapRing;
pub use ring::{Claim, Lag, Overflow, Ring, RingRef, StaticRing, Stats};
#[cfg(all(feature = "shm", target_os = "linux", not(evqueue_loom)))]
pub use shm::{MappedSlots, SharedRing, ShmError, ShmOptions, DEFAULT_DIR, LAYOUT_VERSION, MAGIC};
#[cfg(feature = "alloc")]
pub use storage::HeapSlots;
pub use storage::{slot_footprint, StaticSlots, Storage, LINE_BYTES, WORD_BYTES};
pub use subscriber::{Start, Subscriber};

/// Smallest slot: room for an event header and a short name.
pub const MIN_SLOT_BYTES: usize = 16;
/// Largest slot.
pub const MAX_SLOT_BYTES: usize = 1 << 20;
/// Largest capacity, in slots.
pub const MAX_CAPACITY: usize = 1 << 30;

#[cfg(test)]
mod tests;

#[cfg(all(test, evqueue_loom, feature = "alloc"))]
mod recovery_models;

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
