//! Std subscribers: owned events, short-poll and long-poll receives.

use super::park::{Sleeper, Wake};
use super::RecvTimeoutError;
use crate::blocking;
use crate::{Claim, EventView, HeapRing, Lag, Payload, RecvError, Start, Subscriber};
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

/// [`EventSubscriber::poll`] on the subscriber's parts, so that an async
/// poll can borrow its wait list at the same time. The cursor moves only
/// past what it returns (and past malformed or skipped raw slots).
fn poll_ring(
    inner: &mut Subscriber<Arc<HeapRing>>,
    buf: &mut [u8],
    state: &SubscriberState,
    skip_raw: bool,
) -> Result<Claim, RecvError> {
    loop {
        let result = inner.try_recv(buf);
        state.cursor.store(inner.next_seq(), Relaxed);
        state.missed.store(inner.missed(), Relaxed);
        let claim = result?;
        match claim.payload(buf) {
            Ok(Payload::Event(_)) => return Ok(claim),
            Ok(Payload::Raw(_)) if !skip_raw => return Ok(claim),
            _ => continue,
        }
    }
}

fn timeout_error(e: RecvError) -> RecvTimeoutError {
    match e {
        RecvError::Lagged(n) => RecvTimeoutError::Lagged(n),
        RecvError::Empty => RecvTimeoutError::Timeout,
        _ => RecvTimeoutError::Closed,
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
/// on with some headroom past the oldest retained event (see [`Lag`](crate::Lag)).
/// With the `async` feature it is also a `futures_core::Stream` of events
/// and has `recv_async`, for tasks on any runtime.
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
    /// This subscriber's entry on `wake.async_subscribers` while a
    /// `poll_next` or `recv_async` is pending.
    #[cfg(feature = "async")]
    wait_key: Option<u64>,
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
                #[cfg(feature = "async")]
                wait_key: None,
            },
            state,
        )
    }

    /// Receives the next payload into the buffer, skipping raw ones when
    /// `skip_raw`; malformed slots (raw pushes through
    /// [`EventQueue::ring`](super::EventQueue::ring)) are always skipped.
    fn poll(&mut self, skip_raw: bool) -> Result<Claim, RecvError> {
        poll_ring(&mut self.inner, &mut self.buf, &self.state, skip_raw)
    }

    /// [`poll`](Self::poll), waiting until `deadline` (forever for `None`)
    /// while nothing is there; `Empty` means the deadline passed.
    fn wait(&mut self, skip_raw: bool, deadline: Option<Instant>) -> Result<Claim, RecvError> {
        // Our own handle on the wake lists: `poll` borrows `self` mutably.
        let wake = Arc::clone(&self.wake);
        let sleepers = &wake.subscribers;
        // Made per wait: a subscriber may move between threads.
        let mut me = None;
        loop {
            match self.poll(skip_raw) {
                Err(RecvError::Empty) => {}
                other => return other,
            }
            let me = me.get_or_insert_with(Sleeper::current);
            sleepers.register(me);
            // Pairs with the fence in `Wake::pushed` (see park.rs): a push
            // either sees this sleeper or is visible to the re-poll.
            fence(SeqCst);
            match self.poll(skip_raw) {
                Err(RecvError::Empty) => {}
                other => {
                    sleepers.cancel(me);
                    return other;
                }
            }
            match deadline {
                None => sleepers.sleep(me),
                Some(deadline) => {
                    if !sleepers.sleep_until(me, deadline) {
                        // Timed out. One last look: an event may have raced it.
                        return self.poll(skip_raw);
                    }
                }
            }
        }
    }

    /// Receives the next event without waiting (short-poll), as a zero-copy
    /// view into this subscriber's buffer, valid until the next receive.
    /// Raw payloads are skipped (see [`try_recv_payload`](Self::try_recv_payload)).
    ///
    /// Errors: [`RecvError::Empty`] (nothing yet), [`RecvError::Lagged`]`(n)`
    /// (once per lap; the next call continues a little past the oldest
    /// retained event), [`RecvError::Closed`] (shut down and everything read).
    pub fn try_recv_view(&mut self) -> Result<EventView<'_>, RecvError> {
        let claim = self.poll(true)?;
        Ok(claim.event(&self.buf).expect("validated by poll"))
    }

    /// Receives the next event or raw payload without waiting, as a
    /// zero-copy view valid until the next receive. Errors as
    /// [`try_recv_view`](Self::try_recv_view).
    pub fn try_recv_payload(&mut self) -> Result<Payload<'_>, RecvError> {
        let claim = self.poll(false)?;
        Ok(claim.payload(&self.buf).expect("validated by poll"))
    }

    /// Waits at most `timeout` for the next event or raw payload; errors as
    /// [`recv_timeout`](Self::recv_timeout).
    pub fn recv_payload_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Payload<'_>, RecvTimeoutError> {
        let deadline = blocking::deadline(timeout);
        let claim = self.wait(false, deadline).map_err(timeout_error)?;
        Ok(claim.payload(&self.buf).expect("validated by poll"))
    }

    /// Receives the next event without waiting (short-poll). Errors as
    /// [`try_recv_view`](Self::try_recv_view).
    pub fn try_recv(&mut self) -> Result<OwnedEvent, RecvError> {
        self.try_recv_view().map(|view| OwnedEvent::from(&view))
    }

    /// Waits for the next event (long-poll). Errors: [`RecvError::Lagged`]
    /// and [`RecvError::Closed`] as [`try_recv`](Self::try_recv).
    pub fn recv(&mut self) -> Result<OwnedEvent, RecvError> {
        let claim = self.wait(true, None)?;
        Ok(OwnedEvent::from(
            &claim.event(&self.buf).expect("validated by poll"),
        ))
    }

    /// Waits at most `timeout` for the next event (long-poll with a
    /// heartbeat): [`RecvTimeoutError::Timeout`] when nothing arrived, so a
    /// server can send a keep-alive and call again.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<OwnedEvent, RecvTimeoutError> {
        let deadline = blocking::deadline(timeout);
        let claim = self.wait(true, deadline).map_err(timeout_error)?;
        Ok(OwnedEvent::from(
            &claim.event(&self.buf).expect("validated by poll"),
        ))
    }

    /// The same subscriber, continuing as `lag` says when it is lapped
    /// (default [`Lag::Headroom`]; see [`Lag`]).
    ///
    /// ```
    /// use evqueue::{EventQueue, Lag, Start};
    /// let queue = EventQueue::builder().capacity(64).workers(1).build_paused()?;
    /// let audit = queue.subscribe(Start::Oldest).with_lag(Lag::Oldest);
    /// # drop(audit);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_lag(mut self, lag: Lag) -> Self {
        self.set_lag(lag);
        self
    }

    /// Changes where this subscriber continues when it is lapped, from its
    /// next receive on.
    pub fn set_lag(&mut self, lag: Lag) {
        self.inner.lag = lag;
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

/// Async receiving (feature `async`): the wait registers a waker on the
/// queue's list instead of parking the thread (see `waiter.rs`).
#[cfg(feature = "async")]
impl EventSubscriber {
    /// One poll of an async receive: the next event, or `Pending` with this
    /// subscriber's waker registered. Consumes nothing unless `Ready`.
    fn poll_recv(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<OwnedEvent, RecvError>> {
        use std::task::Poll;
        let EventSubscriber {
            inner,
            buf,
            wake,
            state,
            wait_key,
        } = self;
        wake.async_subscribers.poll_with(wait_key, cx, || {
            match poll_ring(inner, buf, state, true) {
                Err(RecvError::Empty) => Poll::Pending,
                other => {
                    Poll::Ready(other.map(|claim| {
                        OwnedEvent::from(&claim.event(buf).expect("validated by poll"))
                    }))
                }
            }
        })
    }

    /// Awaits the next event: [`recv`](Self::recv) without blocking the
    /// thread, on any runtime. Errors as `recv`: [`RecvError::Lagged`]
    /// (once per lap) and [`RecvError::Closed`] (shut down and everything
    /// read).
    ///
    /// Cancel-safe: an event is taken only when the future returns it, so
    /// a future dropped while pending (a `select!` that took another
    /// branch, a timeout) loses nothing; the next receive gets the event.
    ///
    /// ```
    /// use evqueue::{Event, EventQueue, Start};
    /// let queue = EventQueue::builder().capacity(64).workers(1).build()?;
    /// let mut feed = queue.subscribe(Start::Now);
    /// let emitter = queue.emitter();
    /// let producer = std::thread::spawn(move || emitter.emit(&Event::new("kill_feed")));
    /// let event = futures::executor::block_on(feed.recv_async())?;
    /// assert_eq!(event.name, "kill_feed");
    /// producer.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_async(
        &mut self,
    ) -> impl std::future::Future<Output = Result<OwnedEvent, RecvError>> + Send + '_ {
        RecvAsync { sub: self }
    }
}

/// The future of [`EventSubscriber::recv_async`]: takes the subscriber's
/// entry off the wait list when dropped.
#[cfg(feature = "async")]
struct RecvAsync<'a> {
    sub: &'a mut EventSubscriber,
}

#[cfg(feature = "async")]
impl std::future::Future for RecvAsync<'_> {
    type Output = Result<OwnedEvent, RecvError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.sub.poll_recv(cx)
    }
}

#[cfg(feature = "async")]
impl Drop for RecvAsync<'_> {
    fn drop(&mut self) {
        let sub = &mut *self.sub;
        sub.wake.async_subscribers.cancel(&mut sub.wait_key);
    }
}

/// A subscriber is a stream of events (feature `async`): `Some(Ok(event))`
/// for each event in push order, `Some(Err(RecvError::Lagged(n)))` when it
/// was lapped and lost `n` events (it then continues as its [`Lag`] policy
/// says), and `None` once the queue is shut down and every event read. The
/// error is only ever `Lagged`.
///
/// Waiting registers a waker (no thread blocks); a push wakes every
/// awaiting subscriber. Polling consumes an event only when it returns it,
/// so dropping a pending `next()` loses nothing.
///
/// ```
/// use evqueue::{Event, EventQueue, Start};
/// use futures::StreamExt;
/// use std::time::Duration;
/// let queue = EventQueue::builder().capacity(64).workers(1).build()?;
/// let feed = queue.subscribe(Start::Now);
/// for round in ["1", "2", "3"] {
///     queue.emit(&Event::new("round_end").properties(&[("round", round)]))?;
/// }
/// queue.shutdown(Duration::from_secs(5))?;
/// let rounds: Vec<String> = futures::executor::block_on(
///     feed.map(|e| e.unwrap().property("round").unwrap().to_owned()).collect(),
/// );
/// assert_eq!(rounds, ["1", "2", "3"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "async")]
impl futures_core::Stream for EventSubscriber {
    type Item = Result<OwnedEvent, RecvError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        match self.get_mut().poll_recv(cx) {
            Poll::Ready(Err(RecvError::Closed)) => Poll::Ready(None),
            Poll::Ready(item) => Poll::Ready(Some(item)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(feature = "async")]
impl Drop for EventSubscriber {
    fn drop(&mut self) {
        // A stream dropped while pending: take its waker off the list.
        self.wake.async_subscribers.cancel(&mut self.wait_key);
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
