//! The worker dispatcher (`std`): a pool of worker threads that drains the
//! ring's worker group and runs handlers, Nakama style.
//!
//! - [`EventQueue`] owns an `Arc<HeapRing>`, one [`MpProducer`](crate::MpProducer)
//!   (wrapped in an [`Emitter`]) and the workers. `emit` never blocks, so a
//!   handler may emit without deadlock.
//! - Handlers ([`EventQueue::on`], [`EventQueue::on_any`], the session
//!   helpers) live in a copy-on-write registry that workers read without
//!   locks; errors and panics are counted per event name, passed to the error
//!   hook, and never kill a worker.
//! - Idle workers spin for [`EventQueueBuilder::spin_for`], then park
//!   (`std::thread::park`) on the queue's own sleeper list (`park.rs`). A
//!   push notifies with one `SeqCst` fence and an atomic load when nobody
//!   sleeps (no syscall); a worker registers as a sleeper, fences, and
//!   *re-tries the claim* before it sleeps, so a push that raced with it is
//!   never missed (the two fences make the classic store-buffer race
//!   impossible: either the push sees the sleeper, or the re-try sees the
//!   push).
//! - [`EventQueue::flush`] waits for everything pushed before it; each worker
//!   publishes a lower bound of the sequence number it is handling (stored
//!   *before* it claims), so `worker_position() >= target` and every worker's
//!   published seq `>= target` together prove that every event below
//!   `target` was handled or counted lost.
//! - Keyed events ([`EventQueue::emit_keyed`]) go to lanes: one ring per
//!   hash bucket of the key, each handled by at most one worker at a time,
//!   so one key's events run in order and never at once (see
//!   [`crate::lane`] and docs/ARCHITECTURE.md, "Ordered keys"). Flush,
//!   shutdown and the stats cover every lane.
//! - [`EventQueue::shutdown`] closes the ring, lets workers drain until the
//!   deadline, joins them and returns a [`ShutdownReport`]. Dropping the
//!   queue shuts it down with [`EventQueueBuilder::drop_deadline`].
//! - Feature `async`: [`EventSubscriber`] is a `futures_core::Stream` and
//!   has `recv_async`; `EventQueue::flush_async` and `shutdown_async` wait
//!   without blocking a thread. Tasks wait on waker lists (`waiter.rs`)
//!   with the protocol of `park.rs`: register, fence, re-check; a push
//!   pays one relaxed load more when none awaits.
//! - Feature `shm` (Linux): [`EventQueue::drain_shared`] feeds the queue
//!   from a [`SharedRing`](crate::SharedRing) other processes push into
//!   ([`SharedDrain`], `drain.rs`): claims only what the queue has room
//!   for, re-pushes the encoded bytes, and stops when the queue closes.

mod builder;
#[cfg(all(feature = "shm", target_os = "linux", not(evqueue_loom)))]
mod drain;
mod emitter;
mod error;
mod handlers;
mod lanes;
mod park;
mod queue;
mod shared;
mod stats;
mod subscriber;
#[cfg(feature = "async")]
mod waiter;
mod worker;

pub use builder::EventQueueBuilder;
#[cfg(all(feature = "shm", target_os = "linux", not(evqueue_loom)))]
pub use drain::{DrainStats, SharedDrain};
pub use emitter::Emitter;
pub use error::{DispatchError, RecvTimeoutError};
pub use handlers::{
    Failure, HandlerError, HandlerResult, SESSION_END, SESSION_END_REASON, SESSION_START,
};
pub use lanes::SESSION_ID;
pub use queue::{EventQueue, ShutdownReport};
pub use shared::{MAX_FAILURE_NAMES, OTHER_FAILURE_NAMES};
pub use stats::{NameFailures, QueueStats, SubscriberStats};
pub use subscriber::{EventSubscriber, OwnedEvent};
