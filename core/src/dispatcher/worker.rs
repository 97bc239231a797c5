//! The worker loop: claim one event, dispatch it, repeat; when the ring is
//! empty spin for a while, then park.
//!
//! Flush protocol: before each claim a worker stores the worker cursor it
//! read (a lower bound of the seq it may claim) into its `handling` slot,
//! then the claimed seq, and [`IDLE`] when the claim finds nothing. So while
//! a worker may still be handling event `s`, its slot holds a value `<= s`.

use super::handlers;
use super::queue::Shared;
use crate::{Claim, RecvError};
use event_listener::{IntoNotification, Listener};
use std::cell::Cell;
use std::sync::atomic::{fence, AtomicU64, Ordering::*};
use std::time::Instant;

/// `handling` of a worker that holds no event.
pub(crate) const IDLE: u64 = u64::MAX;

/// Claim attempts between two reads of the clock while spinning.
const SPIN_HINTS: u32 = 16;

/// One worker's published state, on its own cache line.
pub(crate) struct WorkerSlot {
    /// A lower bound of the seq this worker is handling; [`IDLE`] when none.
    pub(crate) handling: AtomicU64,
    /// Events this worker dispatched (written by this worker only).
    pub(crate) handled: AtomicU64,
}

impl Default for WorkerSlot {
    fn default() -> Self {
        WorkerSlot {
            handling: AtomicU64::new(IDLE),
            handled: AtomicU64::new(0),
        }
    }
}

thread_local! {
    /// Id of the queue this thread is a worker of; 0 on other threads.
    static WORKER_OF: Cell<u64> = const { Cell::new(0) };
}

/// Whether the calling thread is a worker of queue `id`.
pub(crate) fn in_worker_of(id: u64) -> bool {
    WORKER_OF.with(Cell::get) == id
}

/// Decrements the live count and announces the exit, even on unwind.
struct ExitGuard<'a>(&'a Shared, usize);

impl Drop for ExitGuard<'_> {
    fn drop(&mut self) {
        self.0.slots[self.1].handling.store(IDLE, SeqCst);
        self.0.live_workers.fetch_sub(1, AcqRel);
        self.0.exited.notify(usize::MAX);
    }
}

pub(crate) fn run(shared: &Shared, index: usize) {
    WORKER_OF.with(|w| w.set(shared.id));
    let _exit = ExitGuard(shared, index);
    let slot = &shared.slots[index];
    let mut buf = vec![0u8; shared.ring.slot_bytes()];
    while let Some(claim) = next_event(shared, index, &mut buf) {
        // More waiting behind this one: wake a helper if one is parked (an
        // atomic load when nobody is). No fence needed: this only adds
        // parallelism; every push already notifies with a fence, and this
        // worker drains the ring itself before it parks.
        if shared.ring.next_seq() > claim.seq + 1 {
            shared.wake.workers.notify(1.relaxed());
        }
        match claim.event(&buf) {
            Ok(event) => {
                let outcome = handlers::dispatch(&shared.registry.load(), &event);
                if outcome.errors + outcome.panics > 0 {
                    shared.record_failures(event.name, outcome.errors, outcome.panics);
                }
            }
            // Only this queue's emitters push, and they push encoded events,
            // so this is a raw push through `ring()`: count it as an error.
            Err(_) => shared.record_failures("<malformed>", 1, 0),
        }
        slot.handled.store(slot.handled.load(Relaxed) + 1, Release);
    }
}

/// One claim attempt, publishing the flush lower bound first.
fn claim(shared: &Shared, index: usize, buf: &mut [u8]) -> Result<Claim, RecvError> {
    let slot = &shared.slots[index];
    slot.handling.store(shared.ring.worker_position(), SeqCst);
    match shared.ring.try_claim(buf) {
        Ok(claim) => {
            slot.handling.store(claim.seq, Release);
            Ok(claim)
        }
        Err(e) => {
            slot.handling.store(IDLE, Release);
            Err(e)
        }
    }
}

/// The next event to handle, waiting (spin, then park) while the ring is
/// empty; `None` when the worker should exit.
fn next_event(shared: &Shared, index: usize, buf: &mut [u8]) -> Option<Claim> {
    let mut spins = 0u32;
    let mut idle_since: Option<Instant> = None;
    loop {
        if shared.stop.load(Acquire) {
            return None;
        }
        match claim(shared, index, buf) {
            Ok(claim) => return Some(claim),
            Err(RecvError::Empty) => {}
            Err(_) => return None, // Closed and drained
        }
        // Spin with CPU hints only, re-reading the clock every few rounds.
        // No `yield_now`: on a busy machine a yield can hand the CPU away for
        // a whole scheduler slice (milliseconds), which is worse than parking.
        spins = spins.wrapping_add(1);
        if spins % SPIN_HINTS != 0 {
            std::hint::spin_loop();
            continue;
        }
        let since = *idle_since.get_or_insert_with(Instant::now);
        if since.elapsed() < shared.spin {
            continue;
        }
        // Park: register, fence, re-try, then sleep. The fence pairs with
        // the one in `Wake::pushed`: a push either sees this listener and
        // notifies it, or is visible to the re-try.
        let listener = shared.wake.workers.listen();
        fence(SeqCst);
        if shared.stop.load(Acquire) {
            return None;
        }
        match claim(shared, index, buf) {
            Ok(claim) => return Some(claim),
            Err(RecvError::Empty) => listener.wait(),
            Err(_) => return None,
        }
        spins = 0;
        idle_since = None;
    }
}
