//! [`SharedDrain`] (feature `shm`, Linux): a thread that feeds an
//! [`EventQueue`] from the worker group of a [`SharedRing`] that other
//! processes push into, so that the queue's handlers run on their events.
//!
//! The loop: compute the queue's room (its capacity minus the events its
//! main ring and lanes hold unclaimed, and the fullest lane's room); claim
//! at most that many (and [`MAX_BATCH`], fewer for large slots) from the
//! shared ring with [`try_claim_batch`](crate::Ring::try_claim_batch);
//! decode each payload only to validate and route it, and push its bytes
//! as they are into the queue (`Emitter::emit_encoded`: the main ring, or
//! a session's lane).
//! An empty shared ring puts the thread to sleep in
//! [`SharedRing::wait`] (futex, slices of [`WAIT_SLICE`]); a full queue in
//! short sleeps until its workers make room.
//!
//! Invariants:
//! - Every event the drain claims is handed over once, or counted
//!   `malformed`, `too_large` or `dropped`; every sequence number the
//!   shared ring's worker group passes over as lost and reports to this
//!   drain is counted `lost`. After [`SharedDrain::stop`]:
//!   `claimed = handed_over + malformed + too_large + dropped`.
//! - Back-pressure: the drain alone never makes the queue overwrite (or
//!   refuse) an event: it claims only what fits, so a backlog waits in the
//!   shared ring (durable across a crash of this process), not here.
//! - The claim and the hand-over of a batch happen under the queue's
//!   `intake` lock (shared), which the queue's close takes exclusively: a
//!   drain claims nothing once the queue is closed, and nothing it claimed
//!   is refused as closed.

use super::emitter::Emitter;
use super::queue::{backoff, EventQueue};
use super::stats::metric;
use super::DispatchError;
use crate::blocking;
use crate::{Claim, Error, Payload, RecvError, SharedRing};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Most events claimed from the shared ring at once.
pub(crate) const MAX_BATCH: usize = 64;

/// Most bytes of claim buffer (for rings of large slots, fewer events a
/// batch).
const MAX_BATCH_BYTES: usize = 256 << 10;

/// Longest sleep in [`SharedRing::wait`] before the drain looks whether it
/// was told to stop (a stop takes at most this long, plus one batch).
pub(crate) const WAIT_SLICE: Duration = Duration::from_millis(50);

/// Longest sleep while the queue is full (or a push was refused as full),
/// before the drain looks again.
const FULL_PAUSE: Duration = Duration::from_millis(2);

/// What a [`SharedDrain`] did, counted since it started.
///
/// Once it stopped: `claimed = handed_over + malformed + too_large + dropped`.
/// On the shared ring's side, every event it claimed counts as
/// `delivered`, and `lost` is this drain's share of the ring's
/// `overwritten` (the lost events passed over by its claims).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainStats {
    /// Events claimed from the shared ring's worker group.
    pub claimed: u64,
    /// Events pushed into the queue, for its handlers.
    pub handed_over: u64,
    /// Claimed payloads that are neither an encoded event nor a framed raw
    /// payload: skipped.
    pub malformed: u64,
    /// Claimed events longer than the queue's slots: skipped (give the
    /// queue slots at least as large as the shared ring's).
    pub too_large: u64,
    /// Claimed events the queue refused and the drain gave up on: only
    /// under [`Overflow::Reject`](crate::Overflow::Reject) when other
    /// producers filled the queue first and then it closed or the drain
    /// was stopped, or when the queue's ring was closed directly (through
    /// [`EventQueue::ring`], not by a shutdown). 0 otherwise.
    pub dropped: u64,
    /// Sequence numbers the shared ring reported lost to this drain's
    /// claims: overwritten before anyone claimed them, or tickets of
    /// producers that died mid-push.
    pub lost: u64,
}

impl DrainStats {
    /// The counts in the Prometheus text format, as
    /// `evqueue_drain_<count>_total` counters (append it to
    /// [`QueueStats::to_prometheus`](super::QueueStats::to_prometheus)'s).
    ///
    /// ```
    /// let text = evqueue::DrainStats { claimed: 3, handed_over: 2, malformed: 1, ..Default::default() }.to_prometheus();
    /// assert!(text.contains("# TYPE evqueue_drain_claimed_total counter\nevqueue_drain_claimed_total 3\n"));
    /// assert!(text.contains("evqueue_drain_malformed_total 1\n"));
    /// ```
    pub fn to_prometheus(&self) -> String {
        use std::fmt::Write;
        let counters: [(&str, &str, u64); 6] = [
            (
                "drain_claimed_total",
                "Events the drain claimed from the shared ring.",
                self.claimed,
            ),
            (
                "drain_handed_over_total",
                "Events the drain pushed into the queue.",
                self.handed_over,
            ),
            (
                "drain_malformed_total",
                "Claimed payloads that were neither an event nor a raw payload.",
                self.malformed,
            ),
            (
                "drain_too_large_total",
                "Claimed events larger than the queue's slots.",
                self.too_large,
            ),
            (
                "drain_dropped_total",
                "Claimed events the queue refused and the drain gave up on.",
                self.dropped,
            ),
            (
                "drain_lost_total",
                "Events the shared ring reported lost to the drain's claims.",
                self.lost,
            ),
        ];
        let mut out = String::with_capacity(1024);
        for (name, help, value) in counters {
            metric(&mut out, name, help, "counter");
            let _ = writeln!(out, "evqueue_{name} {value}");
        }
        out
    }
}

/// Counters and flags the drain thread shares with its handle.
#[derive(Default)]
struct DrainState {
    claimed: AtomicU64,
    handed_over: AtomicU64,
    malformed: AtomicU64,
    too_large: AtomicU64,
    dropped: AtomicU64,
    lost: AtomicU64,
    /// Claim attempts begun (incremented before the claim) and done (after
    /// the hand-over): [`SharedDrain::catch_up`] waits for `done` to reach
    /// a `started` it read.
    started: AtomicU64,
    done: AtomicU64,
    /// Set by the handle: stop at the next look.
    stop: AtomicBool,
    /// Cleared by the thread as it exits.
    running: AtomicBool,
}

impl DrainState {
    fn stats(&self) -> DrainStats {
        DrainStats {
            claimed: self.claimed.load(Acquire),
            handed_over: self.handed_over.load(Acquire),
            malformed: self.malformed.load(Acquire),
            too_large: self.too_large.load(Acquire),
            dropped: self.dropped.load(Acquire),
            lost: self.lost.load(Acquire),
        }
    }
}

/// A thread feeding an [`EventQueue`] from a [`SharedRing`]'s worker group;
/// made by [`EventQueue::drain_shared`]. Stops on [`stop`](Self::stop) or
/// drop, by itself once the queue shuts down or the shared ring is closed
/// and drained.
///
/// It holds the shared ring and an [`Emitter`] of the queue (the queue's
/// rings, not its workers or handlers): dropping the queue shuts it down
/// as usual, and the drain then stops by itself within 50 ms.
pub struct SharedDrain {
    state: Arc<DrainState>,
    ring: Arc<SharedRing>,
    thread: Option<JoinHandle<()>>,
}

impl SharedDrain {
    /// What the drain did so far.
    pub fn stats(&self) -> DrainStats {
        self.state.stats()
    }

    /// The shared ring it drains.
    pub fn ring(&self) -> &Arc<SharedRing> {
        &self.ring
    }

    /// Whether the thread still runs: not stopped, and neither the queue
    /// shut down nor the shared ring closed and drained.
    pub fn is_running(&self) -> bool {
        self.state.running.load(Acquire)
    }

    /// Waits until every event pushed into the shared ring before this call
    /// has been handed over to the queue (or counted lost, malformed, too
    /// large or dropped, or claimed by another consumer of the ring's worker
    /// group), for at most `timeout`. Then [`EventQueue::flush`] waits for
    /// their handlers.
    ///
    /// Fails with [`DispatchError::Timeout`] when the time runs out (with
    /// the queue full, the drain waits for its workers) and
    /// [`DispatchError::ShutDown`] when the drain stopped first; `left` is
    /// the number of those events not yet claimed.
    pub fn catch_up(&self, timeout: Duration) -> Result<(), DispatchError> {
        let target = self.ring.next_seq();
        let deadline = blocking::deadline(timeout);
        let state = &self.state;
        // `started` as read once the cursor passed `target`: the attempt
        // that claimed the last of them is among these (it counted itself
        // before its claim moved the cursor, which we acquired).
        let mut attempts = None;
        let mut round = 0u32;
        loop {
            let left = target.saturating_sub(self.ring.worker_position());
            if left == 0 {
                let started = *attempts.get_or_insert_with(|| state.started.load(SeqCst));
                if state.done.load(Acquire) >= started {
                    return Ok(());
                }
            }
            // At least 1: an attempt still handing over.
            let left = left.max(1);
            if !self.is_running() {
                // Exited: its last attempt is done; look once more.
                if target <= self.ring.worker_position()
                    && state.done.load(Acquire) >= state.started.load(SeqCst)
                {
                    return Ok(());
                }
                return Err(DispatchError::ShutDown { left });
            }
            let remaining = blocking::time_left(deadline);
            if remaining.is_zero() {
                return Err(DispatchError::Timeout { left });
            }
            backoff(&mut round, remaining);
        }
    }

    /// Stops the thread (at its next look: within 50 ms and one batch),
    /// joins it and returns its counts. What it
    /// claimed was handed over first; what it did not claim stays in the
    /// shared ring for the next consumer.
    pub fn stop(mut self) -> DrainStats {
        self.halt()
    }

    fn halt(&mut self) -> DrainStats {
        self.state.stop.store(true, Release);
        if let Some(thread) = self.thread.take() {
            // The loop runs no user code; a join error would be a bug in it.
            let _ = thread.join();
        }
        self.state.stats()
    }
}

impl Drop for SharedDrain {
    fn drop(&mut self) {
        self.halt();
    }
}

impl std::fmt::Debug for SharedDrain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedDrain")
            .field("path", &self.ring.slots().path())
            .field("running", &self.is_running())
            .field("stats", &self.stats())
            .finish()
    }
}

impl EventQueue {
    /// Runs this queue's handlers on the events other processes push into
    /// `ring` (feature `shm`, Linux): starts a thread that claims batches
    /// from the shared ring's worker group and hands each event into this
    /// queue, as it was encoded (name, properties, timestamp and the
    /// external flag unchanged; handlers see this queue's `seq`). Events go
    /// where [`emit`](Self::emit) would send them: by name to their
    /// handlers, a session event with a [`SESSION_ID`](super::SESSION_ID)
    /// to its session's lane, a framed raw payload to the
    /// [`on_raw`](Self::on_raw) handlers. A payload that decodes as
    /// neither is counted ([`DrainStats::malformed`]) and skipped.
    ///
    /// Back-pressure: the drain claims only as many events as the queue
    /// has room for (its unclaimed events plus the batch stay within its
    /// capacity, and within each lane's), so when handlers fall behind the
    /// events wait in the shared ring, and a crash of this process loses
    /// at most what it had claimed and not yet handled: the queue's
    /// capacity plus what its workers hold (at most `workers ×
    /// claim_batch`). It sleeps in [`SharedRing::wait`] while the ring is
    /// empty.
    ///
    /// Shutdown: the queue's [`shutdown`](Self::shutdown) (or drop) closes
    /// it as usual; from then on the drain claims nothing more and stops by
    /// itself, and everything it had claimed is in the queue, drained (or
    /// reported `left`) by the shutdown. What it had not claimed stays in
    /// the shared ring for the next consumer.
    ///
    /// Several drains (of one ring or of several) may feed one queue; each
    /// checks the room for itself, so they may overshoot it together by up
    /// to a batch each (under [`Overflow::Overwrite`](crate::Overflow::Overwrite)
    /// the queue then loses its oldest events, counted as overwritten;
    /// under `Reject` a drain refused as full waits for room).
    ///
    /// Fails with [`DispatchError::Closed`] after shutdown and
    /// [`DispatchError::Spawn`] if the thread cannot start.
    ///
    /// ```
    /// use evqueue::{Event, EventQueue, Overflow, SharedRing};
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// // The game server (any process, in Rust, C or Python) pushes here.
    /// let path = std::env::temp_dir().join(format!("evq-doc-drain-{}", std::process::id()));
    /// let ring = Arc::new(SharedRing::create(&path, 1024, 256, Overflow::Reject)?);
    /// let producer = ring.mp_producer()?;
    /// producer.push_event(&Event::new("purchase").properties(&[("gems", "50")]))?;
    /// ring.wake();
    ///
    /// // This process handles them.
    /// let queue = EventQueue::builder().capacity(256).workers(2).build()?;
    /// let gems = Arc::new(AtomicU64::new(0));
    /// let g = gems.clone();
    /// queue.on("purchase", move |e| {
    ///     g.fetch_add(e.properties().get("gems").unwrap_or("0").parse()?, Ordering::Relaxed);
    ///     Ok(())
    /// })?;
    /// let drain = queue.drain_shared(ring.clone())?;
    /// drain.catch_up(Duration::from_secs(5))?; // handed over...
    /// queue.flush(Duration::from_secs(5))?; // ...and handled
    /// assert_eq!(gems.load(Ordering::Relaxed), 50);
    /// let stats = drain.stop();
    /// assert_eq!((stats.claimed, stats.handed_over, stats.malformed), (1, 1, 0));
    /// SharedRing::remove(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn drain_shared(&self, ring: Arc<SharedRing>) -> Result<SharedDrain, DispatchError> {
        if self.is_shut_down() {
            return Err(DispatchError::Closed);
        }
        let state = Arc::new(DrainState::default());
        state.running.store(true, Release);
        let intake = Intake {
            emitter: self.emitter.clone(),
            gate: self.shared.intake.clone(),
        };
        let (s, r) = (state.clone(), ring.clone());
        let thread = std::thread::Builder::new()
            .name("evqueue-drain".into())
            .spawn(move || {
                run(&r, &intake, &s);
                s.running.store(false, Release);
            })
            .map_err(|e| DispatchError::Spawn(e.to_string()))?;
        Ok(SharedDrain {
            state,
            ring,
            thread: Some(thread),
        })
    }
}

/// The drain's side of the queue: where it pushes, and the lock it takes.
struct Intake {
    emitter: Emitter,
    gate: Arc<RwLock<()>>,
}

impl Intake {
    fn is_closed(&self) -> bool {
        self.emitter.producer.ring.is_closed()
    }

    /// Events the queue can take now without overwriting (or refusing) one:
    /// its capacity minus what its main ring and lanes hold unclaimed, and
    /// at most the fullest lane's room (a batch may all go to one lane).
    fn room(&self) -> usize {
        let main = &self.emitter.producer.ring;
        // The cursor first: the depth read is never negative.
        let worker = main.worker_position();
        let depth = main.next_seq().saturating_sub(worker);
        let lanes = &self.emitter.lanes;
        let (in_lanes, fullest) = lanes.depths();
        let room = (main.capacity() as u64)
            .saturating_sub(depth + in_lanes)
            .min((lanes.capacity() as u64).saturating_sub(fullest));
        usize::try_from(room).unwrap_or(usize::MAX)
    }

    fn lock(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// The drain thread's loop; returns when told to stop, when the queue is
/// closed, or when the shared ring is closed and drained.
fn run(ring: &SharedRing, intake: &Intake, state: &DrainState) {
    let slot = ring.slot_bytes();
    let batch = (MAX_BATCH_BYTES / slot).clamp(1, MAX_BATCH);
    let mut buf = vec![0u8; batch * slot];
    let mut claims = vec![Claim::default(); batch];
    let mut round = 0u32;
    loop {
        if state.stop.load(Acquire) || intake.is_closed() {
            return;
        }
        let max = intake.room().min(batch);
        if max == 0 {
            // The queue is full: its workers make room.
            backoff(&mut round, FULL_PAUSE);
            continue;
        }
        round = 0;
        let mut gate = Some(intake.lock());
        // Under the lock: the queue cannot close before the hand-over.
        if intake.is_closed() {
            return;
        }
        // Before the claim moves the cursor (see `catch_up`).
        state.started.fetch_add(1, SeqCst);
        let claimed = ring.try_claim_batch(&mut buf[..max * slot], &mut claims[..max]);
        let go_on = match claimed {
            Ok(n) => {
                state.lost.fetch_add(claims[0].lost, Relaxed);
                state.claimed.fetch_add(n as u64, Relaxed);
                hand_over(intake, state, &mut gate, &buf, &claims[..n], slot)
            }
            Err(RecvError::Lagged(k)) => {
                state.lost.fetch_add(k, Relaxed);
                true
            }
            Err(RecvError::Empty) => {
                drop(gate.take());
                state.done.fetch_add(1, Release);
                ring.wait(WAIT_SLICE);
                continue;
            }
            // Closed and drained: nothing will come any more.
            Err(_) => false,
        };
        drop(gate);
        state.done.fetch_add(1, Release);
        if !go_on {
            return;
        }
    }
}

/// Hands a claimed batch over to the queue, in order. `gate` is held on
/// entry; it is let go only to wait while the queue refuses an event as
/// full. Returns whether the drain goes on.
fn hand_over<'g>(
    intake: &'g Intake,
    state: &DrainState,
    gate: &mut Option<RwLockReadGuard<'g, ()>>,
    buf: &[u8],
    claims: &[Claim],
    slot: usize,
) -> bool {
    for (i, claim) in claims.iter().enumerate() {
        let bytes = &buf[i * slot..i * slot + claim.len];
        let Ok(payload) = Payload::decode(bytes, claim.seq) else {
            state.malformed.fetch_add(1, Relaxed);
            continue;
        };
        let mut round = 0u32;
        loop {
            match intake.emitter.emit_encoded(&payload, bytes) {
                Ok(_) => {
                    state.handed_over.fetch_add(1, Relaxed);
                    break;
                }
                Err(Error::TooLarge { .. }) => {
                    state.too_large.fetch_add(1, Relaxed);
                    break;
                }
                // Other producers filled a `Reject` queue: wait for room
                // without the lock (a close may be waiting for it).
                Err(Error::Full) if !state.stop.load(Acquire) => {
                    drop(gate.take());
                    backoff(&mut round, FULL_PAUSE);
                    *gate = Some(intake.lock());
                    if !intake.is_closed() {
                        continue;
                    }
                    state.dropped.fetch_add((claims.len() - i) as u64, Relaxed);
                    return false;
                }
                // Stopped while the queue was full, or (not under the
                // lock, so never) closed: give the rest up.
                Err(_) => {
                    state.dropped.fetch_add((claims.len() - i) as u64, Relaxed);
                    return false;
                }
            }
        }
    }
    true
}
