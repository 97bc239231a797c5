//! The worker loop: claim a batch (one event by default), dispatch it,
//! repeat; when the ring is empty spin for a while, then park.
//!
//! Flush protocol: before each claim a worker stores the worker cursor it
//! read (a lower bound of the seq it may claim) into its `handling` slot,
//! then the first claimed seq, and [`IDLE`] when the claim finds nothing. So
//! while a worker may still be handling event `s`, its slot holds a value
//! `<= s`.
//!
//! Keyed events live in lanes (`lanes.rs`, protocol in `crate::lane`): a
//! worker alternates between looking at the main ring first and at the lanes
//! first, holds at most one lane at a time, handles a lane batch one event
//! after another, and lets the lane go before it looks for more. Every look
//! for work (also the re-check before parking) covers the lanes, so a lane
//! let go with events in it is always looked at again. A lane's flush bound
//! lives in the lane itself (its `owner`); the worker's slot is [`IDLE`]
//! while it handles a lane batch.

use super::handlers::{self, Registry};
use super::lanes::Held;
use super::park::Sleeper;
use super::shared::{Shared, IDLE};
use crate::sync::{fence, Ordering::*};
use crate::{Claim, Payload, RecvError};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

/// Claim attempts between two reads of the clock while spinning.
const SPIN_HINTS: u32 = 16;

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
        // Pairs with the fence of a shutdown waiting for the count to drop.
        fence(SeqCst);
        self.0.exited.wake_all();
        // The same fence serves `flush_async` and `shutdown_async`.
        #[cfg(feature = "async")]
        self.0.progress.wake_all();
        // A worker exits when the ring is closed and drained (or at the
        // deadline), and then every other worker must exit too. But the
        // shutdown's wake-up may have come before the last push in flight
        // committed: the workers it woke found the ring empty and parked
        // again, and that push woke only one of them (this one). Wake the
        // rest: each re-checks and sees the ring closed and drained.
        self.0.wake.workers.wake_all_locked();
    }
}

pub(crate) fn run(shared: &Shared, index: usize) {
    WORKER_OF.with(|w| w.set(shared.id));
    let _exit = ExitGuard(shared, index);
    lower_priority(shared.worker_nice);
    if let Some(start) = &shared.on_worker_start {
        if catch_unwind(AssertUnwindSafe(|| (start.0)(index))).is_err() {
            shared.panics.fetch_add(1, Relaxed);
        }
    }
    let slot_bytes = shared.ring.slot_bytes();
    let mut buf = vec![0u8; shared.claim_batch * slot_bytes];
    let mut claims = vec![Claim::default(); shared.claim_batch];
    let me = Sleeper::current();
    let mut look = Look {
        lane: index * shared.lanes.len() / shared.slots.len(),
        lanes_first: index % 2 == 1,
        parked_long: false,
    };
    // How many to claim next: this worker's share of the backlog it saw
    // after its last batch (1 after an idle spell).
    let mut share = 1;
    while let Some(work) = next_batch(shared, index, &me, &mut look, share, &mut buf, &mut claims) {
        let n = match work {
            Work::Main(n) => n,
            Work::Lane(held, n) => {
                // Other lanes waiting for a worker: wake a helper if one is
                // parked (as for a backlog in the main ring).
                if shared.lanes.waiting() {
                    shared.wake.workers.wake_one_helper();
                }
                handle_batch(shared, index, &buf, &claims[..n]);
                // Let go before looking for more (the next look covers this
                // lane again).
                drop(held);
                shared.progressed();
                continue;
            }
        };
        // More waiting behind this batch: wake a helper if one is parked (an
        // atomic load when nobody is). No fence needed: this only adds
        // parallelism; every push already notifies with a fence, and this
        // worker drains the ring itself before it parks.
        let backlog = shared.ring.next_seq().saturating_sub(claims[n - 1].seq + 1);
        if backlog > 0 {
            shared.wake.workers.wake_one_helper();
        }
        let workers = shared.slots.len() as u64;
        share = (backlog / workers).clamp(1, shared.claim_batch as u64) as usize;
        handle_batch(shared, index, &buf, &claims[..n]);
    }
}

/// What a look for work found.
enum Work<'a> {
    /// A batch of this many events from the main ring.
    Main(usize),
    /// A batch from a lane, held until the batch is handled.
    Lane(Held<'a>, usize),
}

/// Where a worker looks for work next.
struct Look {
    /// The lane its next look starts at (it goes round them).
    lane: usize,
    /// Whether the next look tries the lanes before the main ring; flips
    /// every look, so neither starves the other.
    lanes_first: bool,
    /// Whether this worker's last park outlasted the spin.
    parked_long: bool,
}

/// Runs the handlers of a claimed batch, one event after another, inside
/// the `around_batch` wrapper if there is one.
fn handle_batch(shared: &Shared, index: usize, buf: &[u8], claims: &[Claim]) {
    let slot = &shared.slots[index];
    let slot_bytes = shared.ring.slot_bytes();
    let registry = shared.registry.load();
    let mut done = false;
    let mut run = || {
        if std::mem::replace(&mut done, true) {
            return;
        }
        for (i, claim) in claims.iter().enumerate() {
            // The shutdown deadline passed: the rest of the batch stays
            // unhandled and is reported as left, so the deadline is not
            // overrun by a whole batch of handler calls.
            if shared.stop.load(Acquire) {
                let rest = (claims.len() - i) as u64;
                shared.left_in_hand.fetch_add(rest, Relaxed);
                return;
            }
            handle(shared, &registry, claim, &buf[i * slot_bytes..]);
            slot.handled.store(slot.handled.load(Relaxed) + 1, Release);
        }
    };
    if let Some(around) = &shared.around_batch {
        // The wrapper is user code: survive its panic, and run the batch
        // ourselves if it did not, so no claimed event goes unhandled.
        let _ = catch_unwind(AssertUnwindSafe(|| (around.0)(&mut run)));
    }
    run();
}

/// One look for work: the main ring (a batch of up to `share`) and the
/// lanes (a batch of up to the full buffer), in the order `look` says.
/// `Err` is the main ring's: `Empty`, or `Closed` once it is drained.
fn try_work<'a>(
    shared: &'a Shared,
    index: usize,
    look: &mut Look,
    share: usize,
    buf: &mut [u8],
    claims: &mut [Claim],
) -> Result<Work<'a>, RecvError> {
    let lanes_first = look.lanes_first;
    look.lanes_first = !lanes_first;
    // `used` is read after the caller's fence when it is about to park.
    let lanes = shared.lanes.used();
    if lanes && lanes_first {
        if let Some(w) = claim_lane(shared, index, look, buf, claims) {
            return Ok(w);
        }
    }
    let slot_bytes = shared.ring.slot_bytes();
    let ring = &shared.ring;
    let main = if lanes && ring.next_seq() <= ring.worker_position() {
        // Keyed traffic: the main ring is visibly empty (two loads, also a
        // valid look after the park fence), so skip the claim and its
        // `SeqCst` store; but publish that no main event is handled here.
        let slot = &shared.slots[index];
        if slot.handling.load(Relaxed) != IDLE {
            slot.handling.store(IDLE, Release);
            shared.progressed();
        }
        Err(if ring.is_sealed() {
            RecvError::Closed
        } else {
            RecvError::Empty
        })
    } else {
        claim(
            shared,
            index,
            &mut buf[..share * slot_bytes],
            &mut claims[..share],
        )
    };
    if let Ok(n) = main {
        return Ok(Work::Main(n));
    }
    if lanes && !lanes_first {
        if let Some(w) = claim_lane(shared, index, look, buf, claims) {
            return Ok(w);
        }
    }
    main.map(Work::Main)
}

fn claim_lane<'a>(
    shared: &'a Shared,
    index: usize,
    look: &mut Look,
    buf: &mut [u8],
    claims: &mut [Claim],
) -> Option<Work<'a>> {
    let (held, n) = shared.lanes.claim(&mut look.lane, buf, claims)?;
    // Not handling a main-ring event: do not hold flushes of the main ring.
    shared.slots[index].handling.store(IDLE, Release);
    shared.progressed();
    Some(Work::Lane(held, n))
}

/// Moves the calling thread `levels` nice levels below where it is (at most
/// to 19, the lowest), on Linux. Best effort: lowering one's own priority
/// needs no privilege, and a failure leaves the thread as it was.
fn lower_priority(levels: u8) {
    #[cfg(all(target_os = "linux", not(miri)))]
    if levels > 0 {
        // SAFETY: gettid, getpriority and setpriority take plain integers and
        // touch no memory of ours. `who` 0 with PRIO_PROCESS is the calling
        // thread on Linux, whose nice values are per thread.
        unsafe {
            *libc::__errno_location() = 0;
            let now = libc::getpriority(libc::PRIO_PROCESS, 0);
            if now == -1 && *libc::__errno_location() != 0 {
                return;
            }
            let target = (now + i32::from(levels)).min(19);
            libc::setpriority(libc::PRIO_PROCESS, 0, target);
        }
    }
    #[cfg(not(all(target_os = "linux", not(miri))))]
    let _ = levels;
}

/// Dispatches one claimed payload to its handlers and counts failures.
fn handle(shared: &Shared, registry: &Registry, claim: &Claim, buf: &[u8]) {
    let (outcome, name) = match claim.payload(buf) {
        Ok(Payload::Event(event)) => (handlers::dispatch(registry, &event), event.name),
        Ok(Payload::Raw(raw)) => (handlers::dispatch_raw(registry, &raw), handlers::RAW_NAME),
        // Only this queue's emitters push, and they push encoded events,
        // so this is a raw push through `ring()`: count it as an error.
        Err(_) => (
            handlers::Outcome {
                errors: 1,
                panics: 0,
            },
            "<malformed>",
        ),
    };
    if outcome.errors + outcome.panics > 0 {
        shared.record_failures(name, outcome.errors, outcome.panics);
    }
}

/// One batch claim attempt, publishing the flush lower bound first.
fn claim(
    shared: &Shared,
    index: usize,
    buf: &mut [u8],
    claims: &mut [Claim],
) -> Result<usize, RecvError> {
    let slot = &shared.slots[index];
    slot.handling.store(shared.ring.worker_position(), SeqCst);
    let claimed = loop {
        match shared.ring.try_claim_batch(buf, claims) {
            // This call skipped lost events and then found nothing: the
            // loss is in the ring's stats; look again.
            Err(RecvError::Lagged(_)) => continue,
            other => break other,
        }
    };
    let result = match claimed {
        Ok(n) => {
            slot.handling.store(claims[0].seq, Release);
            Ok(n)
        }
        Err(e) => {
            slot.handling.store(IDLE, Release);
            Err(e)
        }
    };
    // The batch before is done (and this slot moved on past it): a flush
    // may be waiting for exactly that.
    shared.progressed();
    result
}

/// How a worker that found the ring empty waits before it parks.
#[derive(Clone, Copy)]
enum Spin {
    /// Spin with CPU hints, for `Shared::spin`.
    Hints,
    /// Spin by yielding, for `Shared::spin`: the worker was woken on its
    /// waker's CPU, and the waker (an emitting thread most likely) gets that
    /// CPU back at once and can emit what the worker waits for.
    Yield,
    /// Park at once: woken on the waker's CPU after a park longer than the
    /// spin. Events come further apart than a spin lasts, so spinning would
    /// catch nothing; and each yield would forfeit the rest of the worker's
    /// scheduler slice (Linux EEVDF), so that its next wake would wait for
    /// the waker to yield instead of preempting it (median wake 12-15 µs
    /// against 8-9 µs on the 2-core VM).
    None,
}

impl Spin {
    /// Chosen once per idle spell, when the ring is first found empty.
    fn choose(me: &Sleeper, parked_long: bool) -> Spin {
        match (me.woken_on_wakers_cpu(), parked_long) {
            (false, _) => Spin::Hints,
            (true, false) => Spin::Yield,
            (true, true) => Spin::None,
        }
    }
}

/// The next batch to handle (how many events were claimed), waiting (spin,
/// then park) while the ring is empty; `None` when the worker should exit.
/// `parked_long`: whether this worker's last park outlasted the spin.
#[allow(clippy::too_many_arguments)]
fn next_batch<'a>(
    shared: &'a Shared,
    index: usize,
    me: &Arc<Sleeper>,
    look: &mut Look,
    share: usize,
    buf: &mut [u8],
    claims: &mut [Claim],
) -> Option<Work<'a>> {
    let mut spins = 0u32;
    let mut idle_since: Option<Instant> = None;
    let mut spin: Option<Spin> = None;
    loop {
        if shared.stop.load(Acquire) {
            return None;
        }
        match try_work(shared, index, look, share, buf, claims) {
            Ok(w) => return Some(w),
            Err(RecvError::Empty) => {}
            // The main ring is closed and drained: exit once every lane is
            // drained too, or held by a worker that drains it.
            Err(_) if shared.lanes.finished() => return None,
            Err(_) => {
                std::thread::yield_now();
                continue;
            }
        }
        spins = spins.wrapping_add(1);
        let spin_left = match *spin.get_or_insert_with(|| Spin::choose(me, look.parked_long)) {
            Spin::Hints if spins % SPIN_HINTS != 0 => {
                // Spin with CPU hints only, re-reading the clock every few
                // rounds. No `yield_now` here: on a busy machine a yield can
                // hand the CPU away for a whole scheduler slice (milliseconds).
                std::hint::spin_loop();
                continue;
            }
            Spin::Hints => true,
            Spin::Yield => {
                std::thread::yield_now();
                true
            }
            Spin::None => false,
        };
        if spin_left && idle_since.get_or_insert_with(Instant::now).elapsed() < shared.spin {
            continue;
        }
        // Park: register, fence, re-try, then sleep. The fence pairs with
        // the one in `Wake::pushed`: a push either sees this worker
        // registered and wakes it, or is visible to the re-try.
        let sleepers = &shared.wake.workers;
        sleepers.register(me);
        fence(SeqCst);
        let retry = if shared.stop.load(Acquire) {
            None
        } else {
            // Both places, whichever order this look takes.
            Some(try_work(shared, index, look, share, buf, claims))
        };
        match retry {
            Some(Err(RecvError::Empty)) => {
                let parked_at = Instant::now();
                sleepers.sleep(me);
                look.parked_long = parked_at.elapsed() > shared.spin;
            }
            Some(Ok(w)) => {
                sleepers.cancel(me);
                return Some(w);
            }
            // Closed: the top of the loop decides (lanes may be left).
            Some(Err(_)) => sleepers.cancel(me),
            None => {
                sleepers.cancel(me);
                return None;
            }
        }
        spins = 0;
        idle_since = None;
        spin = None;
    }
}
