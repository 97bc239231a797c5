//! Std subscribers: owned events, short-poll and long-poll receives.

use super::queue::Wake;
use super::RecvTimeoutError;
use crate::{EventView, HeapRing, RecvError, Start, Subscriber};
use event_listener::Listener;
use std::sync::atomic::{fence, AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An event with owned fields, for code that keeps events beyond a receive
/// (handlers get the zero-copy [`EventView`] instead).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct OwnedEvent {
    /// Sequence number the ring assigned.
    pub seq: u64,
    /// Event name.
    pub name: String,
    /// Properties, in the order they were given.
    pub properties: Vec<(String, String)>,
    /// Nanoseconds since the Unix epoch.
    pub timestamp: u64,
    /// True when a client sent it.
    pub external: bool,
}

impl OwnedEvent {
    /// The value of the first property named `key`.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl From<&EventView<'_>> for OwnedEvent {
    fn from(view: &EventView<'_>) -> Self {
        OwnedEvent {
            seq: view.seq,
            name: view.name.to_owned(),
            properties: view
                .properties()
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            timestamp: view.timestamp,
            external: view.external,
        }
    }
}

/// What the queue's stats read of a subscriber.
pub(crate) struct SubscriberState {
    pub(crate) id: u64,
    pub(crate) cursor: AtomicU64,
    pub(crate) missed: AtomicU64,
}

/// A broadcast subscriber of an [`EventQueue`](super::EventQueue): it sees
/// every event pushed after it started (or every retained one, with
/// [`Start::Oldest`]), independently of the workers, the way a server streams
/// events to connected clients. Producers never wait for it: one that falls a
/// whole ring behind learns how many events it missed (`Lagged(n)`) and goes
/// on from the oldest retained event.
///
/// ```
/// use evqueue::{Event, EventQueue, RecvTimeoutError, Start};
/// use std::time::Duration;
/// let queue = EventQueue::builder().capacity(64).workers(1).build()?;
/// let mut stream = queue.subscribe(Start::Now);
/// queue.emit(&Event::new("chat").properties(&[("text", "gg")]))?;
/// let event = stream.recv_timeout(Duration::from_secs(5))?;
/// assert_eq!((event.name.as_str(), event.property("text")), ("chat", Some("gg")));
/// // Nothing more: the heartbeat, time to send the client a keep-alive.
/// assert_eq!(stream.recv_timeout(Duration::from_millis(10)), Err(RecvTimeoutError::Timeout));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EventSubscriber {
    inner: Subscriber<Arc<HeapRing>>,
    buf: Vec<u8>,
    wake: Arc<Wake>,
    state: Arc<SubscriberState>,
}

impl EventSubscriber {
    pub(crate) fn new(
        ring: Arc<HeapRing>,
        wake: Arc<Wake>,
        start: Start,
        id: u64,
    ) -> (Self, Arc<SubscriberState>) {
        let buf = vec![0u8; ring.slot_bytes()];
        let inner = Subscriber::new(ring, start);
        let state = Arc::new(SubscriberState {
            id,
            cursor: AtomicU64::new(inner.next_seq()),
            missed: AtomicU64::new(0),
        });
        (
            EventSubscriber {
                inner,
                buf,
                wake,
                state: state.clone(),
            },
            state,
        )
    }

    /// Receives the next event without waiting (short-poll), as a zero-copy
    /// view into this subscriber's buffer.
    ///
    /// Errors: [`RecvError::Empty`] (nothing yet), [`RecvError::Lagged`]`(n)`
    /// (once per lap; the next call continues from the oldest retained
    /// event), [`RecvError::Closed`] (shut down and everything read).
    pub fn try_recv_view(&mut self) -> Result<EventView<'_>, RecvError> {
        let claim = loop {
            let result = self.inner.try_recv(&mut self.buf);
            self.state.cursor.store(self.inner.next_seq(), Relaxed);
            self.state.missed.store(self.inner.missed(), Relaxed);
            match result {
                // Only the queue's emitters push, always encoded events; skip
                // anything else (a raw push through `EventQueue::ring`).
                Ok(claim) if claim.event(&self.buf).is_err() => continue,
                other => break other?,
            }
        };
        Ok(claim.event(&self.buf).expect("validated above"))
    }

    /// Receives the next event without waiting (short-poll). Errors as
    /// [`try_recv_view`](Self::try_recv_view).
    pub fn try_recv(&mut self) -> Result<OwnedEvent, RecvError> {
        self.try_recv_view().map(|view| OwnedEvent::from(&view))
    }

    /// Waits for the next event (long-poll). Errors: [`RecvError::Lagged`]
    /// and [`RecvError::Closed`] as [`try_recv`](Self::try_recv).
    pub fn recv(&mut self) -> Result<OwnedEvent, RecvError> {
        loop {
            match self.try_recv() {
                Err(RecvError::Empty) => {}
                other => return other,
            }
            let listener = self.wake.subscribers.listen();
            // Pairs with the fence in `Wake::pushed` (see the worker's park).
            fence(SeqCst);
            match self.try_recv() {
                Err(RecvError::Empty) => listener.wait(),
                other => return other,
            }
        }
    }

    /// Waits at most `timeout` for the next event (long-poll with a
    /// heartbeat): [`RecvTimeoutError::Timeout`] when nothing arrived, so a
    /// server can send a keep-alive and call again.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<OwnedEvent, RecvTimeoutError> {
        let deadline = Instant::now() + timeout;
        loop {
            let result = match self.try_recv() {
                Err(RecvError::Empty) => {
                    let listener = self.wake.subscribers.listen();
                    fence(SeqCst);
                    match self.try_recv() {
                        Err(RecvError::Empty) => {
                            if listener.wait_deadline(deadline).is_none()
                                && Instant::now() >= deadline
                            {
                                // One last look: an event may have raced the deadline.
                                self.try_recv()
                            } else {
                                continue;
                            }
                        }
                        other => other,
                    }
                }
                other => other,
            };
            return result.map_err(|e| match e {
                RecvError::Lagged(n) => RecvTimeoutError::Lagged(n),
                RecvError::Empty => RecvTimeoutError::Timeout,
                _ => RecvTimeoutError::Closed,
            });
        }
    }

    /// Events pushed and not yet read by this subscriber.
    pub fn lag(&self) -> u64 {
        self.inner.lag()
    }

    /// Events this subscriber lost to lapping so far.
    pub fn missed(&self) -> u64 {
        self.inner.missed()
    }

    /// This subscriber's id, as in [`SubscriberStats::id`](super::SubscriberStats::id).
    pub fn id(&self) -> u64 {
        self.state.id
    }
}

impl std::fmt::Debug for EventSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSubscriber")
            .field("id", &self.state.id)
            .field("next_seq", &self.inner.next_seq())
            .field("missed", &self.inner.missed())
            .finish()
    }
}
