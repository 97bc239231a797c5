//! Where async waits wait (feature `async`): a list of [`Waker`]s and a
//! count that a push (or a worker's progress) reads with one relaxed load
//! when nobody awaits.
//!
//! The protocol is the thread parking of `park.rs` with a waker for a
//! thread. A future that finds nothing registers its waker (the count goes
//! up, under the lock), issues a `SeqCst` fence, then re-checks its
//! condition and returns `Pending` only if it is still false
//! ([`Waiters::poll_with`]); a waker makes the condition true, issues a
//! `SeqCst` fence (for a push, the one in `Wake::pushed`), then reads the
//! count ([`Waiters::wake_all`]). Either the waker sees the registration and
//! wakes the task, or the re-check sees the change: no lost wake-up.
//!
//! A wake takes every waker off the list and wakes it outside the lock; a
//! woken task that still finds nothing registers again. A future that
//! completes or is dropped takes its own entry off ([`Waiters::cancel`],
//! [`Wait`]'s `Drop`), so nothing stale stays behind. The check itself
//! consumes nothing unless it returns `Ready`: a future dropped while
//! pending leaves every event where it was.

use crate::sync::park::{lock, AtomicUsize, Mutex};
use crate::sync::{fence, Ordering::*};
use core::task::{Context, Poll, Waker};

/// Async waiters on one condition (events pushed; a worker's progress).
#[derive(Default)]
pub(crate) struct Waiters {
    /// Wakers on the list. Changed under the lock, read without it.
    waiting: AtomicUsize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Each waker with the key its future holds.
    wakers: Vec<(u64, Waker)>,
    /// The key the next registration gets (never reused: a future whose
    /// entry a wake took off cannot take someone else's).
    next_key: u64,
}

impl Waiters {
    /// Puts `waker` on the list for the future that holds `key` (replacing
    /// its earlier waker if that entry is still there). The caller then
    /// issues a `SeqCst` fence and re-checks; [`poll_with`](Self::poll_with)
    /// does all three.
    pub(crate) fn register(&self, key: &mut Option<u64>, waker: &Waker) {
        let mut state = lock(&self.state);
        if let Some(k) = *key {
            if let Some((_, w)) = state.wakers.iter_mut().find(|(at, _)| *at == k) {
                if !w.will_wake(waker) {
                    w.clone_from(waker);
                }
                return;
            }
        }
        let k = state.next_key;
        state.next_key += 1;
        state.wakers.push((k, waker.clone()));
        *key = Some(k);
        self.waiting.store(state.wakers.len(), Relaxed);
    }

    /// Takes the entry of the future that holds `key` off the list, if a
    /// wake did not take it first. No lock when the list is empty.
    pub(crate) fn cancel(&self, key: &mut Option<u64>) {
        let Some(k) = key.take() else { return };
        // Zero means our entry is gone: our registration's store (or a later
        // one, which counts our entry while it is there) happened before.
        if self.waiting.load(Relaxed) == 0 {
            return;
        }
        let mut state = lock(&self.state);
        if let Some(at) = state.wakers.iter().position(|(at, _)| *at == k) {
            state.wakers.swap_remove(at);
            self.waiting.store(state.wakers.len(), Relaxed);
        }
    }

    /// One poll of a wait: `check`, and if it is pending, register, fence,
    /// and `check` again, so that a change made before a waker's fence is
    /// never missed. `check` must consume nothing unless it returns `Ready`.
    /// The entry is taken off when the result is `Ready`.
    pub(crate) fn poll_with<T>(
        &self,
        key: &mut Option<u64>,
        cx: &Context<'_>,
        mut check: impl FnMut() -> Poll<T>,
    ) -> Poll<T> {
        if let Poll::Ready(v) = check() {
            self.cancel(key);
            return Poll::Ready(v);
        }
        self.register(key, cx.waker());
        // Pairs with the fence a waker issues between making the condition
        // true and reading `waiting`: either it sees this registration, or
        // the re-check sees its change.
        fence(SeqCst);
        let again = check();
        if again.is_ready() {
            self.cancel(key);
        }
        again
    }

    /// Wakes every registered task, if any. Costs one relaxed load when
    /// none awaits. The caller has made its change visible and issued a
    /// `SeqCst` fence.
    #[inline]
    pub(crate) fn wake_all(&self) {
        if self.waiting.load(Relaxed) == 0 {
            return;
        }
        self.wake_all_locked();
    }

    /// [`wake_all`](Self::wake_all) without the unlocked look at the count:
    /// for a waker whose change is not followed by a `SeqCst` fence (both
    /// sides take the lock, so a registration after it sees the change).
    pub(crate) fn wake_all_locked(&self) {
        let all = {
            let mut state = lock(&self.state);
            self.waiting.store(0, Relaxed);
            core::mem::take(&mut state.wakers)
        };
        for (_, waker) in all {
            waker.wake();
        }
    }

    /// Entries on the list (tests).
    #[cfg(all(test, not(evqueue_loom)))]
    fn len(&self) -> usize {
        lock(&self.state).wakers.len()
    }
}

/// A wait on a [`Waiters`] list held by one future: its entry is taken off
/// when the future is dropped, whether it completed or not.
pub(crate) struct Wait<'a> {
    list: &'a Waiters,
    key: Option<u64>,
}

impl<'a> Wait<'a> {
    pub(crate) fn new(list: &'a Waiters) -> Self {
        Wait { list, key: None }
    }

    /// [`Waiters::poll_with`] for this wait.
    pub(crate) fn poll<T>(&mut self, cx: &Context<'_>, check: impl FnMut() -> Poll<T>) -> Poll<T> {
        self.list.poll_with(&mut self.key, cx, check)
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        self.list.cancel(&mut self.key);
    }
}

#[cfg(all(test, not(evqueue_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize as StdUsize, Ordering};
    use std::sync::Arc;

    /// Counts its wakes.
    struct Counter(StdUsize);

    impl std::task::Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counter() -> (Arc<Counter>, Waker) {
        let c = Arc::new(Counter(StdUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    #[test]
    fn a_re_poll_keeps_one_entry_and_a_wake_empties_the_list() {
        let list = Waiters::default();
        let (count, waker) = counter();
        let cx = Context::from_waker(&waker);
        let mut key = None;
        for _ in 0..3 {
            assert!(list
                .poll_with(&mut key, &cx, || Poll::<()>::Pending)
                .is_pending());
        }
        assert_eq!(list.len(), 1);
        list.wake_all();
        assert_eq!((list.len(), count.0.load(Ordering::Relaxed)), (0, 1));
        assert_eq!(list.waiting.load(Relaxed), 0);
        // Woken and still nothing: registers again under a new key.
        assert!(list
            .poll_with(&mut key, &cx, || Poll::<()>::Pending)
            .is_pending());
        assert_eq!(list.len(), 1);
        // Ready: off the list, no wake needed.
        assert_eq!(
            list.poll_with(&mut key, &cx, || Poll::Ready(7)),
            Poll::Ready(7)
        );
        assert_eq!((list.len(), key), (0, None));
    }

    #[test]
    fn a_new_waker_replaces_the_old_one() {
        let list = Waiters::default();
        let (first, w1) = counter();
        let (second, w2) = counter();
        let mut key = None;
        list.register(&mut key, &w1);
        list.register(&mut key, &w2);
        assert_eq!(list.len(), 1);
        list.wake_all();
        assert_eq!(first.0.load(Ordering::Relaxed), 0);
        assert_eq!(second.0.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_dropped_wait_leaves_no_entry_and_others_stay() {
        let list = Waiters::default();
        let (other, w_other) = counter();
        let mut other_key = None;
        list.register(&mut other_key, &w_other);
        {
            let (_, waker) = counter();
            let cx = Context::from_waker(&waker);
            let mut wait = Wait::new(&list);
            assert!(wait.poll(&cx, || Poll::<()>::Pending).is_pending());
            assert_eq!(list.len(), 2);
        }
        assert_eq!(list.len(), 1);
        list.wake_all();
        assert_eq!(other.0.load(Ordering::Relaxed), 1);
        // A key whose entry a wake took off cancels nothing.
        list.cancel(&mut other_key);
        assert_eq!(list.len(), 0);
    }
}

/// The waker protocol under loom (`--cfg evqueue_loom`; scripts/test.sh
/// runs these with `--features async --lib -- waiter::loom_models`): the
/// real [`Waiters::poll_with`] in a task driven by `loom::future::block_on`,
/// against pushes that notify through the real `Wake::pushed` and workers
/// that report progress as `Shared::progressed` does. A lost wake-up leaves
/// the task pending with its condition true and every other thread done:
/// loom reports a deadlock.
#[cfg(all(test, evqueue_loom))]
mod loom_models {
    use super::super::park::Wake;
    use super::*;
    use crate::sync::park::AtomicUsize;
    use core::future::poll_fn;
    use loom::future::block_on;
    use loom::thread;
    use std::sync::Arc;

    /// Waits (as a subscriber's `poll_next` does) until `count >= n`.
    fn wait_for(list: &Waiters, count: &AtomicUsize, n: usize) {
        let mut wait = Wait::new(list);
        block_on(poll_fn(|cx| {
            wait.poll(cx, || {
                if count.load(Acquire) >= n {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
        }));
    }

    /// One producer pushes (and notifies through `Wake::pushed`), one task
    /// awaits the event: the push either sees the waker or the re-check
    /// sees the push.
    #[test]
    fn a_push_wakes_an_awaiting_subscriber() {
        loom::model(|| {
            let wake = Arc::new(Wake::default());
            let pushed = Arc::new(AtomicUsize::new(0));
            let producer = {
                let (wake, pushed) = (wake.clone(), pushed.clone());
                thread::spawn(move || {
                    pushed.fetch_add(1, Release);
                    wake.pushed();
                })
            };
            wait_for(&wake.async_subscribers, &pushed, 1);
            producer.join().unwrap();
        });
    }

    /// Two tasks on two threads await the same push: one `wake_all`
    /// reaches both (or their re-checks see the push).
    #[test]
    fn one_push_wakes_two_awaiting_subscribers() {
        loom::model(|| {
            let wake = Arc::new(Wake::default());
            let pushed = Arc::new(AtomicUsize::new(0));
            let other = {
                let (wake, pushed) = (wake.clone(), pushed.clone());
                thread::spawn(move || wait_for(&wake.async_subscribers, &pushed, 1))
            };
            let producer = {
                let (wake, pushed) = (wake.clone(), pushed.clone());
                thread::spawn(move || {
                    pushed.fetch_add(1, Release);
                    wake.pushed();
                })
            };
            wait_for(&wake.async_subscribers, &pushed, 1);
            other.join().unwrap();
            producer.join().unwrap();
        });
    }

    /// End to end through the real code: a subscriber on a real two-slot
    /// ring awaits (`recv_async`) while a producer pushes an event with a
    /// real `MpProducer` and notifies through `Wake::pushed`.
    #[test]
    fn a_real_subscriber_awaits_a_real_push() {
        use super::super::subscriber::EventSubscriber;
        use crate::{Event, HeapRing, MpProducer, Overflow, Start};
        loom::model(|| {
            // 16 bytes: the smallest slot that holds an event named "e".
            let ring = Arc::new(HeapRing::with_capacity(2, 16, Overflow::Overwrite).unwrap());
            let wake = Arc::new(Wake::default());
            let (mut sub, _) = EventSubscriber::new(ring.clone(), wake.clone(), Start::Now, 0);
            let producer = thread::spawn(move || {
                let producer = MpProducer::new(ring).unwrap();
                producer.push_event(&Event::new("e").timestamp(1)).unwrap();
                wake.pushed();
            });
            let event = block_on(sub.recv_async()).unwrap();
            assert_eq!((event.name.as_str(), event.timestamp), ("e", 1));
            producer.join().unwrap();
        });
    }

    /// A flush awaits two workers' progress; each worker makes its change,
    /// fences and wakes (as `Shared::progressed`). The task is woken by
    /// the first, finds one missing and registers again: the second wake
    /// must not be lost in between.
    #[test]
    fn worker_progress_wakes_an_awaiting_flush() {
        loom::model(|| {
            let list = Arc::new(Waiters::default());
            let done = Arc::new(AtomicUsize::new(0));
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    let (list, done) = (list.clone(), done.clone());
                    thread::spawn(move || {
                        done.fetch_add(1, Release);
                        fence(SeqCst);
                        list.wake_all();
                    })
                })
                .collect();
            wait_for(&list, &done, 2);
            for w in workers {
                w.join().unwrap();
            }
        });
    }
}
