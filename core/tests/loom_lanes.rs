//! Loom models of lane ownership (`evqueue::lane`, the protocol behind
//! ordered keys), run against the real `Lane` and ring through the sync
//! facade:
//!
//! ```text
//! RUSTFLAGS="--cfg evqueue_loom" LOOM_MAX_PREEMPTIONS=2 \
//!     CARGO_TARGET_DIR=target/loom cargo test -p evqueue --release --test loom_lanes
//! ```
//!
//! About 10 to 40 s on 2 cores. Workers follow the dispatcher's loop: look
//! (acquire, claim one, handle, let go), and when the look finds nothing,
//! register as a sleeper, fence, look again, and only then "sleep" (here:
//! return). A push fences and then reads the sleeper count, as
//! `Wake::pushed` does; if it saw a sleeper, a real worker would be woken.
#![cfg(evqueue_loom)]

use evqueue::lane::Lane;
use evqueue::{HeapRing, Overflow};
use loom::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use loom::thread;
use std::sync::Arc;

const SLOT: usize = 16;

struct Model {
    lane: Lane<Arc<HeapRing>>,
    /// A handler holds the lane's key now.
    in_handler: AtomicBool,
    /// Values handled, as a bit set; and the last one (+1) for order.
    handled: AtomicU64,
    last: AtomicU64,
    sleepers: AtomicUsize,
    woken: AtomicBool,
}

impl Model {
    fn new(capacity: usize) -> Arc<Model> {
        let ring = HeapRing::with_capacity(capacity, SLOT, Overflow::Overwrite).unwrap();
        Arc::new(Model {
            lane: Lane::new(Arc::new(ring)),
            in_handler: AtomicBool::new(false),
            handled: AtomicU64::new(0),
            last: AtomicU64::new(0),
            sleepers: AtomicUsize::new(0),
            woken: AtomicBool::new(false),
        })
    }

    /// Push then announce, as `Emitter::emit_keyed`.
    fn push(&self, v: u64) -> bool {
        let ok = self
            .lane
            .ring()
            .mp_producer()
            .unwrap()
            .push(&v.to_le_bytes())
            .is_ok();
        fence(SeqCst);
        if self.sleepers.load(Relaxed) > 0 {
            self.woken.store(true, Relaxed);
        }
        ok
    }

    /// One look: hold the lane, claim one event, handle it, let go.
    fn take(&self) -> bool {
        let Some(mut held) = self.lane.try_acquire() else {
            return false;
        };
        let mut buf = [0u8; SLOT];
        let Ok(claim) = held.try_claim(&mut buf) else {
            return false;
        };
        let v = u64::from_le_bytes(buf[..8].try_into().unwrap());
        assert_eq!(claim.len, 8);
        assert!(
            !self.in_handler.swap(true, Acquire),
            "two handlers hold the lane"
        );
        // Plain (Relaxed) state touched only under the lane: a broken
        // hand-over shows up here as lost updates or disorder.
        let last = self.last.load(Relaxed);
        assert!(v + 1 > last, "{v} handled after {}", last - 1);
        self.last.store(v + 1, Relaxed);
        self.handled
            .store(self.handled.load(Relaxed) | 1 << v, Relaxed);
        self.in_handler.store(false, Release);
        drop(held);
        true
    }

    /// A worker until it would sleep.
    fn work(&self) {
        loop {
            if self.take() {
                continue;
            }
            self.sleepers.fetch_add(1, Relaxed);
            fence(SeqCst);
            if self.take() {
                self.sleepers.fetch_sub(1, Relaxed);
                continue;
            }
            return;
        }
    }
}

/// Two workers hand one lane back and forth while a producer pushes two
/// events: never two handlers at once, in push order, and when every worker
/// sleeps, either everything was handled or a push saw a sleeper (and
/// would wake it; the woken worker then finds the rest).
#[test]
fn hand_over_between_two_workers_strands_nothing() {
    loom::model(|| {
        let m = Model::new(2);
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || m.work())
            })
            .collect();
        assert!(m.push(0));
        assert!(m.push(1));
        for w in workers {
            w.join().unwrap();
        }
        if m.handled.load(Relaxed) != 0b11 {
            assert!(
                m.woken.load(Relaxed),
                "events stranded: every worker sleeps and no push woke one"
            );
            m.work();
        }
        assert_eq!(m.handled.load(Relaxed), 0b11);
        assert!(!m.lane.is_held());
    });
}

/// Flush: whenever `done_below(target)` holds, every event pushed before
/// the target was handled and its handler's writes are visible.
#[test]
fn flush_sees_the_handlers_effects() {
    loom::model(|| {
        let m = Model::new(2);
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || {
                    m.take();
                })
            })
            .collect();
        assert!(m.push(0));
        let target = m.lane.ring().next_seq();
        for _ in 0..2 {
            if m.lane.done_below(target) {
                assert_eq!(m.handled.load(Relaxed), 0b1, "flushed before handled");
            }
            thread::yield_now();
        }
        for w in workers {
            w.join().unwrap();
        }
    });
}

/// Shutdown: a push, then the close; two workers exit when the lane is
/// drained or held by the other (who then drains it), as the dispatcher's
/// workers do. A worker that neither finds work nor may exit within three
/// looks gives up (the real one spins on; the bound keeps loom finite);
/// when neither gave up, every accepted push was handled.
#[test]
fn close_drains_every_accepted_event() {
    loom::model(|| {
        let m = Model::new(2);
        let gave_up = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (m, gave_up) = (m.clone(), gave_up.clone());
                thread::spawn(move || {
                    for _ in 0..3 {
                        if m.take() {
                            continue;
                        }
                        if m.lane.is_drained() || m.lane.is_held() {
                            return;
                        }
                        thread::yield_now();
                    }
                    gave_up.store(true, Relaxed);
                })
            })
            .collect();
        assert!(m.push(0));
        m.lane.ring().close();
        assert!(!m.push(1), "a push after the close is refused");
        for w in workers {
            w.join().unwrap();
        }
        if !gave_up.load(Relaxed) {
            assert_eq!(
                m.handled.load(Relaxed),
                0b1,
                "an accepted event was not drained"
            );
        }
        assert_eq!(m.lane.ring().stats().pushed, 1);
    });
}
