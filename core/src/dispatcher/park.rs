//! Where idle workers, blocked subscribers and a waiting shutdown sleep: a
//! list of parked threads and a count that a push reads with one load when
//! nobody sleeps.
//!
//! Sleeping is `std::thread::park`, a bare futex on Linux. (This replaced
//! event-listener: its notify on every push cost 20-25 ns more than a bare
//! multi-producer push, against about 8 ns now, and its parker is a mutex and
//! a condition variable.)
//!
//! No lost wake-up: a sleeper registers (the count goes up), issues a
//! `SeqCst` fence, then re-checks its condition before it parks; a waker
//! makes the condition true, issues a `SeqCst` fence (for a push, in
//! `Wake::pushed`), then reads the count. Either the waker sees the sleeper
//! registered and wakes it, or the sleeper's re-check sees the change.

use crate::sync::park::{self as thread, lock, AtomicBool, AtomicUsize, Mutex, Thread};
use crate::sync::{fence, Ordering::*};
use std::sync::Arc;
use std::time::Instant;

/// Where pushes announce themselves. Shared by the queue and every
/// [`Emitter`](super::Emitter) (which must not keep the workers' state alive).
#[derive(Default)]
pub(crate) struct Wake {
    /// Parked workers sleep here; a push wakes one.
    pub(crate) workers: Sleepers,
    /// Blocked subscribers sleep here; a push wakes them all.
    pub(crate) subscribers: Sleepers,
    /// Awaiting subscribers (`Stream`, `recv_async`) wait here; a push
    /// wakes them all. Not there at all without the feature.
    #[cfg(feature = "async")]
    pub(crate) async_subscribers: super::waiter::Waiters,
}

impl Wake {
    /// After a push: one `SeqCst` fence, then an atomic load per notifier
    /// when nobody listens (no lock, no syscall); with the `async` feature
    /// one relaxed load more.
    #[inline]
    pub(crate) fn pushed(&self) {
        // Pairs with the fence a sleeper (or an awaiting task) issues
        // between registering as a listener and re-checking the ring: either
        // we see its registration, or it sees our push.
        fence(SeqCst);
        self.workers.wake_one();
        self.subscribers.wake_all();
        #[cfg(feature = "async")]
        self.async_subscribers.wake_all();
    }

    pub(crate) fn all(&self) {
        self.workers.wake_all();
        self.subscribers.wake_all();
        // Rare (shutdown): the lock, rather than reasoning about a fence.
        #[cfg(feature = "async")]
        self.async_subscribers.wake_all_locked();
    }
}

/// One thread's parking spot (a worker makes one for its life; a blocking
/// receive makes one per wait, since a subscriber may move between threads).
pub(crate) struct Sleeper {
    thread: Thread,
    /// Set (under the list's lock) by whoever takes this sleeper off the
    /// list to wake it; a park that returns without it was spurious.
    woken: AtomicBool,
    /// The CPU of the thread that woke this sleeper with
    /// [`Sleepers::wake_one`] ([`NO_CPU`] if unknown). Written before `woken`.
    waker_cpu: AtomicUsize,
}

/// "Not known": woken by `wake_one_helper` or `wake_all`, or not on Linux.
const NO_CPU: usize = usize::MAX;

impl Sleeper {
    /// A spot for the calling thread.
    pub(crate) fn current() -> Arc<Sleeper> {
        Arc::new(Sleeper {
            thread: thread::current(),
            woken: AtomicBool::new(false),
            waker_cpu: AtomicUsize::new(NO_CPU),
        })
    }

    /// Whether the last [`Sleepers::wake_one`] that woke this thread ran on
    /// the CPU this thread runs on now. Then the waker, an emitting thread
    /// most likely, wants this CPU back: a worker spinning here only holds
    /// it off (for the whole spin: the waker got its CPU back 54 µs after
    /// the handler started, with the 50 µs spin, on the 2-core VM) and
    /// cannot see a next event the waker has no CPU to emit. So such a
    /// worker spins by yielding (back after 2 µs), or, after a long park,
    /// not at all (see `worker::Spin`).
    pub(crate) fn woken_on_wakers_cpu(&self) -> bool {
        let waker = self.waker_cpu.load(Relaxed);
        waker != NO_CPU && waker == current_cpu()
    }
}

/// The CPU the calling thread runs on, or [`NO_CPU`].
fn current_cpu() -> usize {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        // SAFETY: `sched_getcpu` takes no arguments and only reads the
        // calling thread's state; it returns -1 on failure.
        let cpu = unsafe { libc::sched_getcpu() };
        usize::try_from(cpu).unwrap_or(NO_CPU)
    }
    #[cfg(any(not(target_os = "linux"), miri))]
    {
        NO_CPU
    }
}

#[derive(Default)]
pub(crate) struct Sleepers {
    /// Threads on the list. Changed under the lock, read without it.
    waiting: AtomicUsize,
    /// A sleeper taken off by [`Sleepers::wake_one`] has not resumed yet.
    /// Set under the lock, read without it. When the sleeper resumes it
    /// clears this, issues a `SeqCst` fence and then looks for work, so it
    /// sees everything pushed before a `wake_one` that found this set (that
    /// push also fenced before its look): such a `wake_one` wakes nobody
    /// else and takes no lock. (Waking a herd, with more workers than cores,
    /// costs far more than it adds.)
    waking: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Most recently parked last: it is woken first (its cache is warmest).
    parked: Vec<Arc<Sleeper>>,
}

impl Sleepers {
    /// Puts `me` on the list. The caller then issues a `SeqCst` fence,
    /// re-checks for work, and either [`cancel`](Self::cancel)s or
    /// [`sleep`](Self::sleep)s.
    pub(crate) fn register(&self, me: &Arc<Sleeper>) {
        let mut state = lock(&self.state);
        me.woken.store(false, Relaxed);
        me.waker_cpu.store(NO_CPU, Relaxed);
        state.parked.push(me.clone());
        self.waiting.store(state.parked.len(), Relaxed);
    }

    /// Takes `me` off the list after a re-check found work. If a wake took
    /// it off first, that wake-up is simply spent on this thread.
    pub(crate) fn cancel(&self, me: &Arc<Sleeper>) {
        let mut state = lock(&self.state);
        if let Some(at) = state.parked.iter().position(|s| Arc::ptr_eq(s, me)) {
            state.parked.swap_remove(at);
            self.waiting.store(state.parked.len(), Relaxed);
        } else {
            // It was woken: it has resumed (and re-checked just before).
            self.waking.store(false, Relaxed);
        }
    }

    /// Parks until another thread wakes `me`.
    pub(crate) fn sleep(&self, me: &Sleeper) {
        while !me.woken.load(Acquire) {
            thread::park();
        }
        self.resumed();
    }

    /// Parks until another thread wakes `me` (true) or `deadline` passes
    /// (false; `me` is then taken off the list).
    pub(crate) fn sleep_until(&self, me: &Arc<Sleeper>, deadline: Instant) -> bool {
        while !me.woken.load(Acquire) {
            let now = Instant::now();
            if now >= deadline {
                self.cancel(me);
                // A wake may have taken it off the list just before.
                return me.woken.load(Acquire);
            }
            thread::park_timeout(deadline - now);
        }
        self.resumed();
        true
    }

    /// A woken sleeper is back: the next `wake_one` may wake another. The
    /// fence pairs with the one a push issues before it reads `waking`:
    /// either that push saw `waking` cleared (and wakes someone if needed),
    /// or the caller's next look for work sees the push.
    fn resumed(&self) {
        {
            let _state = lock(&self.state);
            self.waking.store(false, Relaxed);
        }
        fence(SeqCst);
    }

    /// Wakes one parked thread, if any and if none woken earlier is still on
    /// its way. Costs one load when none sleeps. The caller has made its
    /// push visible and issued a `SeqCst` fence (or only wants more
    /// parallelism, see the worker loop).
    #[inline]
    pub(crate) fn wake_one(&self) {
        self.wake_one_noting(current_cpu);
    }

    /// [`wake_one`](Self::wake_one) for a worker asking for help with a
    /// backlog: its CPU is not noted, so the helper spins as usual (two
    /// workers sharing a CPU still drain the backlog between them).
    #[inline]
    pub(crate) fn wake_one_helper(&self) {
        self.wake_one_noting(|| NO_CPU);
    }

    #[inline]
    fn wake_one_noting(&self, waker_cpu: impl FnOnce() -> usize) {
        // Two loads and no lock when nobody sleeps or a wake is under way.
        if self.waiting.load(Relaxed) == 0 || self.waking.load(Relaxed) {
            return;
        }
        let sleeper = {
            let mut state = lock(&self.state);
            if self.waking.load(Relaxed) {
                return;
            }
            let sleeper = state.parked.pop();
            self.waiting.store(state.parked.len(), Relaxed);
            if let Some(s) = &sleeper {
                s.waker_cpu.store(waker_cpu(), Relaxed);
                s.woken.store(true, Release);
                self.waking.store(true, Relaxed);
            }
            sleeper
        };
        if let Some(s) = sleeper {
            s.thread.unpark();
        }
    }

    /// Wakes every sleeper, if any. Costs one load when none sleeps.
    pub(crate) fn wake_all(&self) {
        if self.waiting.load(Relaxed) == 0 {
            return;
        }
        self.wake_all_locked();
    }

    /// [`wake_all`](Self::wake_all) without the unlocked look at the count:
    /// for a waker whose condition is not a push followed by a `SeqCst`
    /// fence. Whatever the waker saw before this call happens before the
    /// re-check of a sleeper that registers after it (both take the lock).
    pub(crate) fn wake_all_locked(&self) {
        let all = {
            let mut state = lock(&self.state);
            self.waiting.store(0, Relaxed);
            for s in state.parked.iter() {
                s.woken.store(true, Release);
            }
            std::mem::take(&mut state.parked)
        };
        for s in all {
            s.thread.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// With nobody parked, a wake is one load: it does not even take the
    /// lock (so it makes no syscall). Held here, the lock would block it.
    #[test]
    fn waking_nobody_takes_no_lock() {
        let sleepers = Arc::new(Sleepers::default());
        let held = lock(&sleepers.state);
        let (done, finished) = std::sync::mpsc::channel();
        let s = sleepers.clone();
        std::thread::spawn(move || {
            for _ in 0..1000 {
                s.wake_one();
            }
            done.send(()).unwrap();
        });
        let result = finished.recv_timeout(Duration::from_secs(10));
        drop(held);
        assert!(
            result.is_ok(),
            "wake_one blocked on the lock with nobody parked"
        );
    }

    /// Both threads pinned to one CPU: a `wake_one` notes the waker's CPU,
    /// a `wake_one_helper` does not.
    #[cfg(all(target_os = "linux", not(miri)))]
    #[test]
    fn a_wake_notes_the_wakers_cpu_and_a_helper_wake_does_not() {
        fn pin_to(cpu: usize) {
            // SAFETY: `set` is a plain bit set; sched_setaffinity reads it.
            let ok = unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set)
            };
            assert_eq!(ok, 0, "sched_setaffinity");
        }
        let cpu = current_cpu();
        assert_ne!(cpu, NO_CPU);
        pin_to(cpu);
        let sleepers = Arc::new(Sleepers::default());
        for helper in [false, true] {
            let s = sleepers.clone();
            let sleeper = std::thread::spawn(move || {
                pin_to(cpu);
                let me = Sleeper::current();
                s.register(&me);
                s.sleep(&me);
                me.woken_on_wakers_cpu()
            });
            while sleepers.waiting.load(Acquire) == 0 {
                std::thread::yield_now();
            }
            if helper {
                sleepers.wake_one_helper();
            } else {
                sleepers.wake_one();
            }
            assert_eq!(sleeper.join().unwrap(), !helper, "helper wake: {helper}");
        }
    }

    #[test]
    fn a_wake_reaches_a_registered_sleeper_and_cancel_is_clean() {
        let sleepers = Arc::new(Sleepers::default());
        let me = Sleeper::current();
        sleepers.register(&me);
        sleepers.cancel(&me);
        assert_eq!(sleepers.waiting.load(Relaxed), 0);
        let s = sleepers.clone();
        let sleeper = std::thread::spawn(move || {
            let me = Sleeper::current();
            s.register(&me);
            s.sleep(&me);
        });
        while sleepers.waiting.load(Acquire) == 0 {
            std::thread::yield_now();
        }
        sleepers.wake_one();
        sleeper.join().unwrap();
        assert_eq!(sleepers.waiting.load(Relaxed), 0);
    }
}

/// The parking protocol under loom (`--cfg evqueue_loom`; scripts/test.sh
/// runs these with `--lib -- park::loom_models`): the real `Sleepers`, with
/// workers and producers following the steps of `worker.rs` and
/// `Wake::pushed`. A lost wake-up leaves a worker asleep with work pending
/// and every other thread blocked or done: loom reports it as a deadlock.
#[cfg(all(test, evqueue_loom))]
mod loom_models {
    use super::*;
    use loom::thread;

    /// Events pushed and taken: the stand-in for the ring.
    struct Work {
        pushed: AtomicUsize,
        taken: AtomicUsize,
        /// How many events the model pushes in all.
        total: usize,
        wake: Wake,
    }

    impl Work {
        fn new(total: usize) -> Arc<Work> {
            Arc::new(Work {
                pushed: AtomicUsize::new(0),
                taken: AtomicUsize::new(0),
                total,
                wake: Wake::default(),
            })
        }

        /// A push and its notification, as `Emitter::emit` does them.
        fn push(&self) {
            self.pushed.fetch_add(1, Release);
            self.wake.pushed();
        }

        /// Takes one event if one is there (a claim).
        fn try_take(&self) -> bool {
            let mut taken = self.taken.load(Acquire);
            while taken < self.pushed.load(Acquire) {
                match self
                    .taken
                    .compare_exchange(taken, taken + 1, AcqRel, Acquire)
                {
                    Ok(_) => return true,
                    Err(now) => taken = now,
                }
            }
            false
        }

        fn all_taken(&self) -> bool {
            self.taken.load(Acquire) == self.total
        }
    }

    /// A worker: take while there is work; otherwise register, fence,
    /// re-check, then cancel or sleep. The worker that takes the last event
    /// wakes the others so they can stop (as a shutdown would).
    fn worker(work: &Work) {
        let me = Sleeper::current();
        loop {
            if work.try_take() {
                if work.all_taken() {
                    work.wake.workers.wake_all_locked();
                    return;
                }
                continue;
            }
            if work.all_taken() {
                return;
            }
            work.wake.workers.register(&me);
            fence(SeqCst);
            if work.try_take() {
                work.wake.workers.cancel(&me);
                if work.all_taken() {
                    work.wake.workers.wake_all_locked();
                    return;
                }
                continue;
            }
            if work.all_taken() {
                work.wake.workers.cancel(&me);
                return;
            }
            work.wake.workers.sleep(&me);
        }
    }

    /// Two pushes, two workers: the second push may find the first one's
    /// wake still under way (`waking`) and wake nobody; the woken worker
    /// must then see it.
    #[test]
    fn no_wake_up_is_lost_when_a_wake_is_under_way() {
        loom::model(|| {
            let work = Work::new(2);
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    let work = work.clone();
                    thread::spawn(move || worker(&work))
                })
                .collect();
            work.push();
            work.push();
            for w in workers {
                w.join().unwrap();
            }
            assert_eq!(work.taken.load(Relaxed), 2);
        });
    }

    /// Two producers racing, one worker: each push's wake either reaches
    /// the sleeper or its re-check sees the push.
    #[test]
    fn racing_producers_wake_a_sleeping_worker() {
        loom::model(|| {
            let work = Work::new(2);
            let producers: Vec<_> = (0..2)
                .map(|_| {
                    let work = work.clone();
                    thread::spawn(move || work.push())
                })
                .collect();
            worker(&work);
            for p in producers {
                p.join().unwrap();
            }
            assert_eq!(work.taken.load(Relaxed), 2);
        });
    }
}
