//! [`EventQueue`]: building, starting, handlers, pull mode, flush, shutdown
//! and stats.

use super::builder::EventQueueBuilder;
use super::emitter::Emitter;
use super::handlers::{self, Handler, Registry};
use super::lanes::Lanes;
use super::park::{Sleeper, Sleepers, Wake};
use super::shared::{Shared, WorkerSlot, IDLE};
use super::stats::{QueueStats, SubscriberStats};
use super::subscriber::{EventSubscriber, OwnedEvent};
#[cfg(feature = "async")]
use super::waiter::Wait;
use super::worker;
use super::{DispatchError, Failure, HandlerResult, SESSION_END, SESSION_START};
use crate::blocking::{self, lock};
use crate::{
    check_name, Claim, Error, Event, EventView, HeapRing, MpProducer, Payload, RawView, RecvError,
    Start,
};
use arc_swap::ArcSwap;
use crossbeam_utils::CachePadded;
use std::collections::BTreeMap;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
#[cfg(feature = "async")]
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::Duration;

static NEXT_QUEUE_ID: AtomicU64 = AtomicU64::new(1);

/// Fewest slots in a lane: a small queue's lanes still hold a burst.
const MIN_LANE_CAPACITY: usize = 16;

/// What [`EventQueue::shutdown`] reports. Once the workers are joined,
/// `pushed = handled + popped + lost() + left`, where
/// `lost() = overwritten + rejected` (see [`QueueStats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Events pushed while the queue was open (accepted or rejected).
    pub pushed: u64,
    /// Events the workers dispatched to their handlers (including those whose
    /// handlers failed).
    pub handled: u64,
    /// Events taken by [`EventQueue::try_pop`] (pull mode).
    pub popped: u64,
    /// Events lost because they were overwritten before a worker claimed them.
    pub overwritten: u64,
    /// Pushes refused under [`Overflow::Reject`](crate::Overflow::Reject).
    pub rejected: u64,
    /// Handler errors returned.
    pub errors: u64,
    /// Handler panics caught.
    pub panics: u64,
    /// Events left unhandled when the deadline passed: still in the ring,
    /// or claimed by a worker in a batch it then stopped handling.
    pub left: u64,
    /// Whether the deadline passed before the workers drained the ring.
    pub timed_out: bool,
}

impl ShutdownReport {
    /// Events lost: `overwritten + rejected`.
    pub const fn lost(&self) -> u64 {
        self.overwritten.saturating_add(self.rejected)
    }
}

struct Lifecycle {
    handles: Vec<JoinHandle<()>>,
    report: Option<ShutdownReport>,
    thread_name: String,
}

/// The lifecycle lock, held. Letting it go tells `shutdown_async`, which
/// never blocks on it (it tries, and awaits [`Shared::progressed`]).
struct LifeGuard<'a> {
    guard: Option<MutexGuard<'a, Lifecycle>>,
    shared: &'a Shared,
}

impl std::ops::Deref for LifeGuard<'_> {
    type Target = Lifecycle;
    fn deref(&self) -> &Lifecycle {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for LifeGuard<'_> {
    fn deref_mut(&mut self) -> &mut Lifecycle {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl Drop for LifeGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.shared.progressed();
    }
}

/// What a flush waits for: the next sequence number of the main ring and
/// of each lane when it was called.
struct FlushTarget {
    main: u64,
    lanes: Vec<u64>,
}

/// What a look at the lifecycle found, for [`EventQueue::shutdown_async`].
#[cfg(feature = "async")]
enum Begin {
    /// Shut down before: the first report.
    Done(ShutdownReport),
    /// Closed now (or by a shutdown still under way): wait for the workers.
    Closed,
}

/// The event queue: a ring, a pool of worker threads and the handlers they
/// run; built by [`EventQueue::builder`].
///
/// Producers [`emit`](Self::emit) from any thread (never blocking, also from
/// handlers); workers claim each event once, in push order, and run the
/// handlers registered for its name, then the catch-alls. Idle workers spin
/// briefly and then park; a push wakes one without a syscall when none
/// sleeps. [`flush`](Self::flush) waits for what was pushed before it;
/// [`shutdown`](Self::shutdown) drains and reports.
///
/// ```
/// use evqueue::{Event, EventQueue};
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let queue = EventQueue::builder().capacity(1024).workers(2).build()?;
/// let gems = Arc::new(AtomicU64::new(0));
/// let g = gems.clone();
/// queue.on("purchase", move |event| {
///     let n: u64 = event.properties().get("gems").unwrap_or("0").parse()?;
///     g.fetch_add(n, Ordering::Relaxed);
///     Ok(())
/// })?;
/// queue.on_session_end(|event| {
///     assert_eq!(event.properties().get("reason"), Some("logout"));
///     Ok(())
/// });
/// queue.emit(&Event::new("purchase").properties(&[("gems", "50")]))?;
/// queue.emit_session_end("logout", &[("user", "ada")])?;
/// queue.flush(Duration::from_secs(5))?;
/// assert_eq!(gems.load(Ordering::Relaxed), 50);
/// let report = queue.shutdown(Duration::from_secs(5))?;
/// assert_eq!((report.handled, report.errors, report.left), (2, 0, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// `EventQueue` is `Send + Sync`: share it (`Arc`) or hand out
/// [`Emitter`]s. Dropping it shuts it down (see [`EventQueueBuilder::drop_deadline`]).
pub struct EventQueue {
    pub(super) shared: Arc<Shared>,
    pub(super) emitter: Emitter,
    lifecycle: Mutex<Lifecycle>,
    drop_deadline: Duration,
}

impl EventQueue {
    /// An [`EventQueueBuilder`] with Nakama's defaults: 65536 slots of 256 bytes, 8
    /// workers, [`Overflow::Overwrite`](crate::Overflow::Overwrite).
    pub fn builder() -> EventQueueBuilder {
        EventQueueBuilder::default()
    }

    /// Builds the queue without starting the workers.
    pub(crate) fn new_paused(config: EventQueueBuilder) -> Result<EventQueue, DispatchError> {
        if config.workers == 0 || config.workers > EventQueueBuilder::MAX_WORKERS {
            return Err(DispatchError::InvalidWorkers {
                workers: config.workers,
            });
        }
        if config.claim_batch == 0 || config.claim_batch > EventQueueBuilder::MAX_CLAIM_BATCH {
            return Err(DispatchError::InvalidBatch {
                batch: config.claim_batch,
            });
        }
        if config.worker_nice > EventQueueBuilder::MAX_WORKER_NICE {
            return Err(DispatchError::InvalidNice {
                levels: config.worker_nice,
            });
        }
        if config.lanes != 0
            && (!config.lanes.is_power_of_two() || config.lanes > EventQueueBuilder::MAX_LANES)
        {
            return Err(DispatchError::InvalidLanes {
                lanes: config.lanes,
            });
        }
        // `std::thread::Builder::spawn` panics on such a name; refuse it here.
        if config.thread_name.contains('\0') {
            return Err(DispatchError::InvalidThreadName {
                prefix: config.thread_name,
            });
        }
        let ring = Arc::new(
            HeapRing::with_capacity(config.capacity, config.slot_bytes, config.overflow)?
                .with_lag(config.lag),
        );
        let producer = MpProducer::new(ring.clone())?;
        let lane_count = config.lane_count();
        let lanes = Arc::new(Lanes::new(
            lane_count,
            (config.capacity / lane_count).max(MIN_LANE_CAPACITY),
            config.slot_bytes,
            config.overflow,
            config.lag,
        )?);
        let wake = Arc::new(Wake::default());
        let shared = Arc::new(Shared {
            id: NEXT_QUEUE_ID.fetch_add(1, Relaxed),
            ring,
            lanes: lanes.clone(),
            wake: wake.clone(),
            registry: ArcSwap::from_pointee(Registry::default()),
            slots: (0..config.workers)
                .map(|_| CachePadded::new(WorkerSlot::default()))
                .collect(),
            spin: config.spin,
            claim_batch: config.claim_batch,
            around_batch: config.around_batch,
            worker_nice: config.worker_nice,
            on_worker_start: config.on_worker_start,
            started: AtomicBool::new(false),
            popped: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            left_in_hand: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            failures: Mutex::new(BTreeMap::new()),
            live_workers: AtomicUsize::new(0),
            exited: Sleepers::default(),
            subscribers: Mutex::new(Vec::new()),
            intake: Arc::default(),
            next_subscriber: AtomicU64::new(0),
            #[cfg(feature = "async")]
            progress: Default::default(),
        });
        Ok(EventQueue {
            shared,
            emitter: Emitter {
                producer,
                lanes,
                wake,
            },
            lifecycle: Mutex::new(Lifecycle {
                handles: Vec::with_capacity(config.workers),
                report: None,
                thread_name: config.thread_name,
            }),
            drop_deadline: config.drop_deadline,
        })
    }

    /// Starts the workers of a queue built with
    /// [`build_paused`](EventQueueBuilder::build_paused) (`build` calls it).
    ///
    /// Fails with [`DispatchError::AlreadyStarted`] the second time,
    /// [`DispatchError::Closed`] after shutdown, and
    /// [`DispatchError::Spawn`] if a thread cannot start (then the queue is
    /// shut down: the workers already started are stopped and joined).
    pub fn start(&self) -> Result<(), DispatchError> {
        let mut life = self.lock_life();
        if life.report.is_some() || self.shared.ring.is_closed() {
            return Err(DispatchError::Closed);
        }
        if self.shared.started.swap(true, AcqRel) {
            return Err(DispatchError::AlreadyStarted);
        }
        let workers = self.shared.slots.len();
        // Counted live before they run, so flush and shutdown wait for them.
        self.shared.live_workers.store(workers, Release);
        for index in 0..workers {
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{index}", life.thread_name))
                .spawn(move || worker::run(&shared, index));
            match spawned {
                Ok(handle) => life.handles.push(handle),
                Err(e) => {
                    // Workers never started still count as live: account for them.
                    self.shared.live_workers.fetch_sub(workers - index, AcqRel);
                    drop(life);
                    let _ = self.shutdown(self.drop_deadline);
                    return Err(DispatchError::Spawn(e.to_string()));
                }
            }
        }
        Ok(())
    }

    /// A cloneable handle to emit from any thread, including from handlers.
    pub fn emitter(&self) -> Emitter {
        self.emitter.clone()
    }

    /// Emits an event; see [`Emitter::emit`].
    #[inline]
    pub fn emit(&self, event: &Event<'_>) -> Result<u64, Error> {
        self.emitter.emit(event)
    }

    /// Emits a client's JSON event body; see [`Emitter::emit_json`].
    #[cfg(feature = "json")]
    pub fn emit_json(&self, body: &[u8], external: bool) -> Result<u64, crate::json::JsonError> {
        self.emitter.emit_json(body, external)
    }

    /// Emits an event with an ordering key; see [`Emitter::emit_keyed`].
    #[inline]
    pub fn emit_keyed(&self, event: &Event<'_>, key: impl AsRef<[u8]>) -> Result<u64, Error> {
        self.emitter.emit_keyed(event, key)
    }

    /// Emits a client's JSON event body with an ordering key; see
    /// [`Emitter::emit_json_keyed`].
    #[cfg(feature = "json")]
    pub fn emit_json_keyed(
        &self,
        body: &[u8],
        external: bool,
        key: impl AsRef<[u8]>,
    ) -> Result<u64, crate::json::JsonError> {
        self.emitter.emit_json_keyed(body, external, key)
    }

    /// Emits a framed raw payload with an ordering key; see
    /// [`Emitter::emit_raw_keyed`].
    pub fn emit_raw_keyed(
        &self,
        payload: &[u8],
        timestamp: u64,
        key: impl AsRef<[u8]>,
    ) -> Result<u64, Error> {
        self.emitter.emit_raw_keyed(payload, timestamp, key)
    }

    /// Emits a framed raw payload; see [`Emitter::emit_raw`].
    pub fn emit_raw(&self, payload: &[u8], timestamp: u64) -> Result<u64, Error> {
        self.emitter.emit_raw(payload, timestamp)
    }

    /// Emits `session_start`; see [`Emitter::emit_session_start`].
    pub fn emit_session_start(&self, properties: &[(&str, &str)]) -> Result<u64, Error> {
        self.emitter.emit_session_start(properties)
    }

    /// Emits `session_end` with a `reason`; see [`Emitter::emit_session_end`].
    pub fn emit_session_end(
        &self,
        reason: &str,
        properties: &[(&str, &str)],
    ) -> Result<u64, Error> {
        self.emitter.emit_session_end(reason, properties)
    }

    /// Registers a handler for events named `name`. Several handlers of one
    /// name run in registration order, before the catch-alls. Takes effect
    /// for events claimed after it returns; callable from any thread, also
    /// while events flow and from inside handlers.
    ///
    /// Fails with [`Error::EmptyName`] or [`Error::NameTooLong`], registering
    /// nothing.
    ///
    /// ```
    /// use evqueue::{Error, Event, EventQueue};
    /// use std::time::Duration;
    /// let queue = EventQueue::builder().capacity(64).workers(1).build()?;
    /// queue.on("purchase", |e| {
    ///     if e.properties().get("sku").is_none() { return Err("purchase without sku".into()); }
    ///     Ok(())
    /// })?;
    /// assert_eq!(queue.on("", |_| Ok(())).err(), Some(Error::EmptyName));
    /// queue.emit(&Event::new("purchase"))?;
    /// queue.flush(Duration::from_secs(5))?;
    /// assert_eq!(queue.stats().handler_errors, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on<F>(&self, name: &str, handler: F) -> Result<(), Error>
    where
        F: Fn(&EventView<'_>) -> HandlerResult + Send + Sync + 'static,
    {
        check_name(name)?;
        let handler: Handler = Arc::new(handler);
        handlers::update(&self.shared.registry, |r| {
            (r.with_handler(name, handler.clone()), ())
        });
        Ok(())
    }

    /// Registers a catch-all handler: it runs for every event, after the
    /// handlers registered for the event's name.
    ///
    /// Registration returns a `Result` only where it takes input that can be
    /// wrong: [`on`](Self::on) checks its name. `on_any`, [`on_raw`](Self::on_raw),
    /// [`on_session_start`](Self::on_session_start),
    /// [`on_session_end`](Self::on_session_end) and [`on_error`](Self::on_error)
    /// cannot fail and return nothing. (C: every `evq_on*` returns a status,
    /// for its NULL checks; Python: every `on*` returns the handler.)
    pub fn on_any<F>(&self, handler: F)
    where
        F: Fn(&EventView<'_>) -> HandlerResult + Send + Sync + 'static,
    {
        let handler: Handler = Arc::new(handler);
        handlers::update(&self.shared.registry, |r| {
            (r.with_catch_all(handler.clone()), ())
        });
    }

    /// Registers a handler for [`SESSION_START`] events (the same as
    /// `on("session_start", ..)`).
    pub fn on_session_start<F>(&self, handler: F)
    where
        F: Fn(&EventView<'_>) -> HandlerResult + Send + Sync + 'static,
    {
        self.on(SESSION_START, handler)
            .expect("session_start is a valid name");
    }

    /// Registers a handler for [`SESSION_END`] events (the same as
    /// `on("session_end", ..)`); the reason is `event.properties().get("reason")`.
    pub fn on_session_end<F>(&self, handler: F)
    where
        F: Fn(&EventView<'_>) -> HandlerResult + Send + Sync + 'static,
    {
        self.on(SESSION_END, handler)
            .expect("session_end is a valid name");
    }

    /// Registers a handler for raw payloads ([`emit_raw`](Self::emit_raw));
    /// several run in registration order. Their failures are counted and
    /// reported to the error hook under the name `<raw>`.
    ///
    /// ```
    /// use evqueue::EventQueue;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// let queue = EventQueue::builder().capacity(64).workers(1).build()?;
    /// let total = Arc::new(AtomicU64::new(0));
    /// let t = total.clone();
    /// queue.on_raw(move |raw| {
    ///     let damage = u32::from_le_bytes(raw.bytes.try_into()?);
    ///     t.fetch_add(damage.into(), Ordering::Relaxed);
    ///     Ok(())
    /// });
    /// queue.emit_raw(&250u32.to_le_bytes(), 0)?;
    /// queue.flush(Duration::from_secs(5))?;
    /// assert_eq!(total.load(Ordering::Relaxed), 250);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_raw<F>(&self, handler: F)
    where
        F: Fn(&RawView<'_>) -> HandlerResult + Send + Sync + 'static,
    {
        let handler: handlers::RawHandler = Arc::new(handler);
        handlers::update(&self.shared.registry, |r| (r.with_raw(handler.clone()), ()));
    }

    /// Removes every raw payload handler and returns how many there were.
    pub fn remove_raw_handlers(&self) -> usize {
        handlers::update(&self.shared.registry, |r| r.without_raw())
    }

    /// Pull mode: takes the next event from the worker group without
    /// waiting, into `buf` (at least [`slot_bytes`](Self::slot_bytes)
    /// long); decode it with [`Claim::payload`]. Shares the workers' cursor:
    /// each event goes to exactly one worker or one pop. Unkeyed events
    /// first, then keyed ones (in order within a lane; the claim's `seq` is
    /// then the lane's). Works whether or
    /// not the workers run, and after shutdown until the ring is drained.
    /// Counted in [`QueueStats::popped`].
    ///
    /// Errors: [`RecvError::Empty`], [`RecvError::Closed`] (shut down and
    /// drained), [`RecvError::BufferTooSmall`].
    pub fn try_pop_into(&self, buf: &mut [u8]) -> Result<Claim, RecvError> {
        let claim = loop {
            match self.shared.ring.try_claim(buf) {
                // Lost events were skipped and nothing followed yet: they
                // are counted in the stats; look again.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Empty) | Err(RecvError::Closed) => {
                    match self.shared.lanes.pop(buf) {
                        Some(claim) => break claim,
                        None if self.shared.ring.is_closed() && self.shared.lanes.finished() => {
                            return Err(RecvError::Closed)
                        }
                        None => return Err(RecvError::Empty),
                    }
                }
                other => break other?,
            }
        };
        self.shared.popped.fetch_add(1, Relaxed);
        // The worker cursor moved: a flush may be waiting for it.
        self.shared.progressed();
        Ok(claim)
    }

    /// Pull mode: takes the next event, owned; see
    /// [`try_pop_into`](Self::try_pop_into). Raw payloads are taken and
    /// skipped (counted as popped): pop them with `try_pop_into`.
    pub fn try_pop(&self) -> Result<OwnedEvent, RecvError> {
        let mut buf = vec![0u8; self.slot_bytes()];
        loop {
            let claim = self.try_pop_into(&mut buf)?;
            if let Ok(Payload::Event(event)) = claim.payload(&buf) {
                return Ok(OwnedEvent::from(&event));
            }
        }
    }

    /// Removes every handler registered for `name` and returns how many there
    /// were. A worker already running one of them finishes that call.
    pub fn remove_handlers(&self, name: &str) -> usize {
        handlers::update(&self.shared.registry, |r| r.without_name(name))
    }

    /// Removes every catch-all handler and returns how many there were.
    pub fn remove_catch_all(&self) -> usize {
        handlers::update(&self.shared.registry, |r| r.without_catch_all())
    }

    /// Number of handlers registered for `name` (catch-alls not counted).
    pub fn handler_count(&self, name: &str) -> usize {
        self.shared.registry.load().count(name)
    }

    /// Sets the hook called, on the worker thread, with every handler error
    /// and panic (after it is counted). A panic in the hook is caught and
    /// ignored. Replaces any previous hook.
    ///
    /// ```
    /// use evqueue::{Event, EventQueue, Failure};
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// let queue = EventQueue::builder().capacity(64).workers(1).build()?;
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let s = seen.clone();
    /// queue.on_error(move |event, failure| {
    ///     let what = match failure { Failure::Error(e) => e.to_string(), Failure::Panic(m) => m.to_string(), _ => String::new() };
    ///     s.lock().unwrap().push(format!("{}: {what}", event.name));
    /// });
    /// queue.on("ad_view", |_| Err("ad network down".into()))?;
    /// queue.emit(&Event::new("ad_view"))?;
    /// queue.flush(Duration::from_secs(5))?;
    /// assert_eq!(*seen.lock().unwrap(), ["ad_view: ad network down"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_error<F>(&self, hook: F)
    where
        F: Fn(&EventView<'_>, &Failure<'_>) + Send + Sync + 'static,
    {
        let hook: handlers::ErrorHook = Arc::new(hook);
        handlers::update(&self.shared.registry, |r| {
            (r.with_error_hook(Some(hook.clone())), ())
        });
    }

    /// A broadcast subscriber that sees every event pushed from `start` on,
    /// independently of the workers. See [`EventSubscriber`].
    pub fn subscribe(&self, start: Start) -> EventSubscriber {
        let id = self.shared.next_subscriber.fetch_add(1, Relaxed);
        let (sub, state) = EventSubscriber::new(
            self.shared.ring.clone(),
            self.shared.wake.clone(),
            start,
            id,
        );
        let mut subs = lock(&self.shared.subscribers);
        subs.retain(|w| w.strong_count() > 0);
        subs.push(Arc::downgrade(&state));
        sub
    }

    /// Number of slots in the ring.
    pub fn capacity(&self) -> usize {
        self.shared.ring.capacity()
    }

    /// Bytes per slot: the largest encoded event.
    pub fn slot_bytes(&self) -> usize {
        self.shared.ring.slot_bytes()
    }

    /// Number of lanes for keyed events; see [`EventQueueBuilder::lanes`].
    pub fn lanes(&self) -> usize {
        self.shared.lanes.len()
    }

    /// Slots in each lane.
    pub fn lane_capacity(&self) -> usize {
        self.shared.lanes.capacity()
    }

    /// Whether the workers were started.
    pub fn is_started(&self) -> bool {
        self.shared.started.load(Acquire)
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.shared.slots.len()
    }

    /// The main ring underneath, for its own statistics or raw consumers.
    /// It holds the unkeyed events; keyed ones ([`emit_keyed`](Self::emit_keyed))
    /// are in the lanes, which [`stats`](Self::stats) adds in.
    pub fn ring(&self) -> &Arc<HeapRing> {
        &self.shared.ring
    }

    /// Whether [`shutdown`](Self::shutdown) has started.
    pub fn is_shut_down(&self) -> bool {
        self.shared.ring.is_closed()
    }

    /// Whether the calling thread is one of this queue's workers, that is,
    /// inside one of its handlers, its error hook or its `around_batch`
    /// wrapper: where [`flush`](Self::flush) and [`shutdown`](Self::shutdown)
    /// fail with [`DispatchError::InHandler`].
    pub fn is_worker_thread(&self) -> bool {
        worker::in_worker_of(self.shared.id)
    }

    /// Waits until every event pushed before this call has been handled (its
    /// handlers returned) or counted lost, for at most `timeout`. Keyed
    /// events too: the flush waits for every lane.
    ///
    /// Events pushed during the flush (also by handlers) are not waited for.
    /// Before [`start`](Self::start), only pops ([`try_pop`](Self::try_pop)
    /// from other threads) make progress. Fails with [`DispatchError::Timeout`] when the time runs out,
    /// [`DispatchError::ShutDown`] when the queue was shut down with those
    /// events left, and [`DispatchError::InHandler`] when called from inside
    /// a handler of this queue (it would wait on itself).
    pub fn flush(&self, timeout: Duration) -> Result<(), DispatchError> {
        if worker::in_worker_of(self.shared.id) {
            return Err(DispatchError::InHandler);
        }
        let target = self.flush_target();
        let deadline = blocking::deadline(timeout);
        let mut round = 0u32;
        loop {
            if let Some(over) = self.flush_state(&target) {
                return over;
            }
            let remaining = blocking::time_left(deadline);
            if remaining.is_zero() {
                let in_hand = self.shared.left_in_hand.load(Acquire);
                return Err(DispatchError::Timeout {
                    left: self.flush_left(&target, in_hand),
                });
            }
            backoff(&mut round, remaining);
        }
    }

    /// Awaits every event pushed before this call: [`flush`](Self::flush)
    /// without a timeout and without blocking the thread, on any runtime
    /// (feature `async`). The events to wait for are fixed when this is
    /// called, not when the future is first polled.
    ///
    /// For a time limit, wrap it in the runtime's timeout (`tokio::time::timeout`);
    /// dropping the future at any point is harmless: it only waits.
    /// Before [`start`](Self::start) only pops make progress, so on a paused
    /// queue nobody pops from this resolves only at shutdown. Fails with
    /// [`DispatchError::ShutDown`] and [`DispatchError::InHandler`] as
    /// `flush` does.
    ///
    /// Workers wake the awaiting task as they move on from each batch (one
    /// `SeqCst` fence and a relaxed load per claim in builds with the
    /// feature; a lock and a wake per batch while a flush awaits).
    ///
    /// ```
    /// use evqueue::{Event, EventQueue};
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// let queue = EventQueue::builder().capacity(64).workers(2).build()?;
    /// let handled = Arc::new(AtomicU64::new(0));
    /// let h = handled.clone();
    /// queue.on_any(move |_| { h.fetch_add(1, Ordering::Relaxed); Ok(()) });
    /// for _ in 0..10 { queue.emit(&Event::new("tick"))?; }
    /// futures::executor::block_on(queue.flush_async())?;
    /// assert_eq!(handled.load(Ordering::Relaxed), 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "async")]
    pub fn flush_async(
        &self,
    ) -> impl std::future::Future<Output = Result<(), DispatchError>> + Send + '_ {
        let target = (!worker::in_worker_of(self.shared.id)).then(|| self.flush_target());
        async move {
            let Some(target) = target else {
                return Err(DispatchError::InHandler);
            };
            let mut wait = Wait::new(&self.shared.progress);
            std::future::poll_fn(|cx| {
                wait.poll(cx, || match self.flush_state(&target) {
                    Some(over) => Poll::Ready(over),
                    None => Poll::Pending,
                })
            })
            .await
        }
    }

    /// What a flush called now waits for.
    fn flush_target(&self) -> FlushTarget {
        FlushTarget {
            main: self.shared.ring.next_seq(),
            lanes: self.shared.lanes.targets(),
        }
    }

    /// `Some` once a flush of `target` is over: done, or never will be
    /// (the workers are gone with events left).
    fn flush_state(&self, target: &FlushTarget) -> Option<Result<(), DispatchError>> {
        // Nonzero only once a shutdown deadline stopped workers mid-batch:
        // those events were claimed and will never be handled.
        let in_hand = self.shared.left_in_hand.load(Acquire);
        if in_hand == 0 && self.flushed(target.main) && self.shared.lanes.done_below(&target.lanes)
        {
            return Some(Ok(()));
        }
        let stopped = self.shared.live_workers.load(Acquire) == 0
            && (self.is_started() || self.is_shut_down());
        if stopped {
            return Some(Err(DispatchError::ShutDown {
                left: self.flush_left(target, in_hand),
            }));
        }
        None
    }

    /// Events below `target` not yet handled (at least 1: the flush is not over).
    fn flush_left(&self, target: &FlushTarget, in_hand: u64) -> u64 {
        (target
            .main
            .saturating_sub(self.shared.ring.worker_position())
            + self.shared.lanes.left_below(&target.lanes)
            + in_hand)
            .max(1)
    }

    /// Every event below `target` was claimed or skipped, and no worker is
    /// still handling one.
    fn flushed(&self, target: u64) -> bool {
        // Acquire on the cursor (every write to it is a CAS, so this
        // synchronizes with the claim of any event below it): a worker's
        // `handling` store, made before its claim, is visible below.
        self.shared.ring.worker_position() >= target
            && self
                .shared
                .slots
                .iter()
                .all(|s| s.handling.load(SeqCst) >= target)
    }

    /// Shuts the queue down: closes the ring (emits fail with
    /// [`Error::Closed`] from now on), lets the workers drain it until it is
    /// empty or `deadline` has passed, joins them and reports.
    ///
    /// After the deadline, workers stop at their next event; a handler
    /// already running is not interrupted, so this returns once it finishes.
    /// Calling it again returns the first report. Fails with
    /// [`DispatchError::InHandler`] from inside a handler of this queue.
    ///
    /// ```
    /// use evqueue::{Error, Event, EventQueue};
    /// use std::time::Duration;
    /// let queue = EventQueue::builder().capacity(64).workers(2).build()?;
    /// for _ in 0..10 { queue.emit(&Event::new("tick"))?; }
    /// let report = queue.shutdown(Duration::from_secs(5))?;
    /// assert_eq!((report.pushed, report.handled, report.left, report.timed_out), (10, 10, 0, false));
    /// assert_eq!(queue.emit(&Event::new("late")), Err(Error::Closed));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown(&self, deadline: Duration) -> Result<ShutdownReport, DispatchError> {
        if worker::in_worker_of(self.shared.id) {
            return Err(DispatchError::InHandler);
        }
        let (report, old_registry) = {
            let mut life = self.lock_life();
            if let Some(report) = life.report {
                return Ok(report);
            }
            self.close();
            let shared = &self.shared;
            // `None`: a deadline too far to represent, so none.
            let end = blocking::deadline(deadline);
            let mut timed_out = false;
            let me = Sleeper::current();
            while shared.live_workers.load(Acquire) > 0 {
                // Register, fence, re-check (pairs with the fence in the
                // worker's exit guard), then sleep.
                shared.exited.register(&me);
                fence(SeqCst);
                if shared.live_workers.load(Acquire) == 0 {
                    shared.exited.cancel(&me);
                    break;
                }
                match end {
                    None => shared.exited.sleep(&me),
                    Some(end) => {
                        if !shared.exited.sleep_until(&me, end) {
                            timed_out = shared.live_workers.load(Acquire) > 0;
                            break;
                        }
                    }
                }
            }
            shared.stop.store(true, SeqCst);
            shared.wake.all();
            self.finish(&mut life, timed_out)
        };
        // Outside the lock: dropping a handler may drop this very queue.
        drop(old_registry);
        Ok(report)
    }

    /// Shuts the queue down as [`shutdown`](Self::shutdown) does, without
    /// blocking the thread, on any runtime (feature `async`): closes the
    /// ring when first polled, lets the workers drain it until it is empty
    /// or `deadline` completes, and reports. The deadline is any future
    /// (`tokio::time::sleep(..)`, `async_io::Timer::after(..)`,
    /// `std::future::pending()` for none), so no timer is needed here.
    ///
    /// After the deadline, workers stop at their next event and this awaits
    /// the ones still running a handler. The workers are joined only once
    /// each has announced its exit (its last instructions, not a handler).
    /// Calling it (or `shutdown`) again returns the first report; while a
    /// blocking `shutdown` runs on another thread, this awaits its report
    /// without blocking.
    ///
    /// Dropped before it completes, it leaves the queue closed (emits fail
    /// with [`Error::Closed`]) with the workers still draining the ring, or,
    /// if the deadline had fired, stopping at their next event; a later
    /// `shutdown`, `shutdown_async` or drop joins them and reports. No
    /// event is lost by the drop itself: the report's `left` counts what
    /// the workers did not handle.
    ///
    /// ```
    /// use evqueue::{Event, EventQueue};
    /// let queue = EventQueue::builder().capacity(64).workers(2).build()?;
    /// for _ in 0..10 { queue.emit(&Event::new("tick"))?; }
    /// let report = futures::executor::block_on(queue.shutdown_async(std::future::pending::<()>()))?;
    /// assert_eq!((report.pushed, report.handled, report.left, report.timed_out), (10, 10, 0, false));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "async")]
    pub async fn shutdown_async<D: std::future::Future>(
        &self,
        deadline: D,
    ) -> Result<ShutdownReport, DispatchError> {
        use std::future::poll_fn;
        if worker::in_worker_of(self.shared.id) {
            return Err(DispatchError::InHandler);
        }
        let shared = &self.shared;
        let mut wait = Wait::new(&shared.progress);
        // Close, unless shut down before. The lifecycle lock is only tried:
        // a blocking shutdown may hold it for as long as its deadline.
        let begin = poll_fn(|cx| {
            wait.poll(cx, || match self.try_lock_life() {
                None => Poll::Pending,
                Some(life) => Poll::Ready(match life.report {
                    Some(report) => Begin::Done(report),
                    None => {
                        self.close();
                        Begin::Closed
                    }
                }),
            })
        })
        .await;
        if let Begin::Done(report) = begin {
            return Ok(report);
        }
        // Drain until every worker exits or the deadline fires.
        let exited = || {
            if shared.live_workers.load(Acquire) == 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        };
        let mut deadline = std::pin::pin!(deadline);
        let timed_out = poll_fn(|cx| {
            if wait.poll(cx, exited).is_ready() {
                return Poll::Ready(false);
            }
            match deadline.as_mut().poll(cx) {
                Poll::Ready(_) => Poll::Ready(shared.live_workers.load(Acquire) > 0),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        // The rest stop at their next event; a handler already running
        // finishes first.
        shared.stop.store(true, SeqCst);
        shared.wake.all();
        poll_fn(|cx| wait.poll(cx, exited)).await;
        // Join and report, unless a shutdown that ran meanwhile did.
        let (report, old_registry) = poll_fn(|cx| {
            wait.poll(cx, || match self.try_lock_life() {
                None => Poll::Pending,
                Some(mut life) => Poll::Ready(match life.report {
                    Some(report) => (report, None),
                    None => {
                        let (report, old) = self.finish(&mut life, timed_out);
                        (report, Some(old))
                    }
                }),
            })
        })
        .await;
        // Outside the lock: dropping a handler may drop this very queue.
        drop(old_registry);
        Ok(report)
    }

    /// Closes the ring and the lanes and wakes everyone waiting, so that
    /// workers drain and exit, and subscribers and flushes see the close.
    fn close(&self) {
        let shared = &self.shared;
        shared.close_rings();
        shared.wake.all();
        #[cfg(feature = "async")]
        shared.progress.wake_all_locked();
    }

    /// Joins the workers (each has exited, or was told to stop) and makes,
    /// stores and returns the report, with the handlers taken out (drop
    /// them outside the lifecycle lock).
    fn finish(&self, life: &mut Lifecycle, timed_out: bool) -> (ShutdownReport, Arc<Registry>) {
        let shared = &self.shared;
        for handle in life.handles.drain(..) {
            // Handler panics are caught inside the worker; a join error
            // would be a bug in the worker loop itself.
            let _ = handle.join();
        }
        let stats = shared.lanes.add_stats(shared.ring.stats());
        let report = ShutdownReport {
            pushed: stats.pushed,
            handled: shared.handled(),
            popped: shared.popped.load(Acquire),
            overwritten: stats.overwritten,
            rejected: stats.rejected,
            errors: shared.errors.load(Acquire),
            panics: shared.panics.load(Acquire),
            // Joined: no worker adds to `left_in_hand` any more.
            left: stats.depth + shared.left_in_hand.load(Acquire),
            timed_out,
        };
        life.report = Some(report);
        // Drop the handlers (and whatever they captured) so a handler
        // that holds the queue cannot keep it alive in a cycle.
        let old = shared.registry.swap(Arc::new(Registry::default()));
        (report, old)
    }

    /// Takes the lifecycle lock.
    fn lock_life(&self) -> LifeGuard<'_> {
        LifeGuard {
            guard: Some(lock(&self.lifecycle)),
            shared: &self.shared,
        }
    }

    /// Takes the lifecycle lock if it is free.
    #[cfg(feature = "async")]
    fn try_lock_life(&self) -> Option<LifeGuard<'_>> {
        let guard = match self.lifecycle.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        Some(LifeGuard {
            guard: Some(guard),
            shared: &self.shared,
        })
    }

    /// A snapshot of the counters: the ring's, the workers' and the
    /// subscribers'. See [`QueueStats::to_prometheus`].
    ///
    /// ```
    /// use evqueue::{Event, EventQueue};
    /// use std::time::Duration;
    /// let queue = EventQueue::builder().capacity(64).workers(1).build()?;
    /// queue.emit(&Event::new("match_start"))?;
    /// queue.flush(Duration::from_secs(5))?;
    /// let stats = queue.stats();
    /// assert_eq!((stats.ring.pushed, stats.handled, stats.ring.depth), (1, 1, 0));
    /// assert!(stats.to_prometheus().contains("evqueue_events_handled_total 1\n"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> QueueStats {
        let shared = &self.shared;
        let ring = shared.lanes.add_stats(shared.ring.stats());
        let head = shared.ring.next_seq();
        let subscribers = {
            let mut subs = lock(&shared.subscribers);
            subs.retain(|w| w.strong_count() > 0);
            subs.iter()
                .filter_map(Weak::upgrade)
                .map(|s| SubscriberStats {
                    id: s.id,
                    lag: head.saturating_sub(s.cursor.load(Relaxed)),
                    missed: s.missed.load(Relaxed),
                })
                .collect()
        };
        QueueStats {
            ring,
            handled: shared.handled(),
            popped: shared.popped.load(Acquire),
            handler_errors: shared.errors.load(Acquire),
            panics: shared.panics.load(Acquire),
            failures_by_name: lock(&shared.failures).clone(),
            subscribers,
            capacity: shared.ring.capacity(),
            workers: shared.slots.len(),
            busy_workers: (shared
                .slots
                .iter()
                .filter(|s| s.handling.load(Relaxed) != IDLE)
                .count()
                + shared.lanes.held())
            .min(shared.slots.len()),
        }
    }
}

impl Drop for EventQueue {
    fn drop(&mut self) {
        if worker::in_worker_of(self.shared.id) {
            // Dropped by one of our own handlers: we cannot join ourselves.
            // Close and tell the workers to stop; they exit on their own.
            self.shared.close_rings();
            self.shared.stop.store(true, SeqCst);
            self.shared.wake.all();
            return;
        }
        let _ = self.shutdown(self.drop_deadline);
    }
}

impl std::fmt::Debug for EventQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventQueue")
            .field("capacity", &self.capacity())
            .field("slot_bytes", &self.slot_bytes())
            .field("workers", &self.workers())
            .field("shut_down", &self.is_shut_down())
            .finish()
    }
}

/// Waits a little, longer each round, never past `left`: a few yields, then
/// sleeps from 50 µs up to 1 ms.
pub(crate) fn backoff(round: &mut u32, left: Duration) {
    *round += 1;
    if *round <= 8 {
        std::thread::yield_now();
    } else {
        let micros = (50u64 << (*round - 8).min(5)).min(1000);
        std::thread::sleep(Duration::from_micros(micros).min(left));
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<EventQueue>();
    is::<Emitter>();
}
