//! The forwarding combinators' semantics, without Redis: retry counts and
//! jitter bounds, breaker timing on a fake clock, batch triggers, fan-out
//! isolation, filters, and the handler adapter.

use evqueue::forward::{
    event_bytes, handler, Batch, BatchConfig, Buffered, FakeClock, FanOut, Filter, FnSink,
    ForwardError, Retry, RetryPolicy, Sink, SinkError,
};
use evqueue::{Event, EventQueue, OwnedEvent};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn ev(name: &str, i: usize) -> OwnedEvent {
    OwnedEvent {
        seq: i as u64,
        name: name.into(),
        properties: vec![("i".into(), i.to_string())],
        timestamp: 1,
        external: false,
    }
}

fn forward_error(e: &SinkError) -> &ForwardError {
    e.downcast_ref::<ForwardError>()
        .unwrap_or_else(|| panic!("not a ForwardError: {e}"))
}

/// A sink that records batch sizes and the names it saw.
#[derive(Clone, Default)]
struct Recorder {
    batches: Arc<Mutex<Vec<Vec<OwnedEvent>>>>,
}

impl Recorder {
    fn sizes(&self) -> Vec<usize> {
        self.batches.lock().unwrap().iter().map(Vec::len).collect()
    }
    fn events(&self) -> Vec<OwnedEvent> {
        self.batches.lock().unwrap().concat()
    }
}

impl Sink for Recorder {
    fn write(&self, batch: &[OwnedEvent]) -> Result<(), SinkError> {
        self.batches.lock().unwrap().push(batch.to_vec());
        Ok(())
    }
}

/// Fails its first `fail` calls; records the clock at every call.
struct Flaky {
    fail: usize,
    calls: AtomicUsize,
    clock: Arc<FakeClock>,
    at: Mutex<Vec<Instant>>,
}

impl Flaky {
    fn new(fail: usize, clock: Arc<FakeClock>) -> Self {
        Flaky {
            fail,
            calls: AtomicUsize::new(0),
            clock,
            at: Mutex::new(Vec::new()),
        }
    }
}

impl Sink for Flaky {
    fn write(&self, _batch: &[OwnedEvent]) -> Result<(), SinkError> {
        use evqueue::forward::Clock;
        self.at.lock().unwrap().push(self.clock.now());
        if self.calls.fetch_add(1, SeqCst) < self.fail {
            Err("service unavailable".into())
        } else {
            Ok(())
        }
    }
}

fn gaps(at: &[Instant]) -> Vec<Duration> {
    at.windows(2).map(|w| w[1] - w[0]).collect()
}

#[test]
fn retry_counts_attempts_then_dead_letters() {
    let clock = Arc::new(FakeClock::new());
    let dead = Arc::new(Mutex::new(Vec::new()));
    let d = dead.clone();
    let policy = RetryPolicy::default()
        .attempts(4)
        .base_delay(Duration::from_millis(10))
        .max_delay(Duration::from_millis(25))
        .breaker_threshold(100)
        .seed(7);
    let sink = Retry::with_clock(Flaky::new(usize::MAX, clock.clone()), policy, clock.clone())
        .unwrap()
        .dead_letter(move |batch, err| {
            d.lock().unwrap().push((batch.len(), err.to_string()));
        });
    let err = sink.write(&[ev("a", 0), ev("a", 1)]).unwrap_err();
    assert!(matches!(
        forward_error(&err),
        ForwardError::Exhausted { attempts: 4, .. }
    ));
    assert_eq!(sink.inner().calls.load(SeqCst), 4);
    assert_eq!(
        *dead.lock().unwrap(),
        [(2, "service unavailable".to_string())]
    );
    let s = sink.stats();
    assert_eq!(
        (
            s.attempts,
            s.failures,
            s.retries,
            s.dead_lettered,
            s.breaker_opened
        ),
        (4, 4, 3, 2, 0)
    );
    // Full jitter: each backoff within [0, min(max, base * 2^(n-1))].
    let caps = [10, 20, 25].map(Duration::from_millis);
    let sleeps = clock.sleeps();
    assert!(sleeps.len() <= 3, "{sleeps:?}"); // a zero draw is not slept
    assert_eq!(gaps(&sink.inner().at.lock().unwrap()).len(), 3);
    for (gap, cap) in gaps(&sink.inner().at.lock().unwrap()).iter().zip(caps) {
        assert!(*gap <= cap, "{gap:?} > {cap:?}");
    }
}

#[test]
fn retry_succeeds_after_transient_failures() {
    let clock = Arc::new(FakeClock::new());
    let policy = RetryPolicy::default().attempts(3);
    let sink = Retry::with_clock(Flaky::new(2, clock.clone()), policy, clock).unwrap();
    sink.write(&[ev("a", 0)]).unwrap();
    let s = sink.stats();
    assert_eq!(
        (s.attempts, s.failures, s.retries, s.dead_lettered),
        (3, 2, 2, 0)
    );
    assert_eq!(s.consecutive_failures, 0);
}

#[test]
fn full_jitter_is_spread_and_seeded() {
    let draws = |seed| {
        let clock = Arc::new(FakeClock::new());
        let policy = RetryPolicy::default()
            .attempts(12)
            .base_delay(Duration::from_millis(100))
            .max_delay(Duration::from_millis(100))
            .breaker_threshold(100)
            .seed(seed);
        let sink = Retry::with_clock(Flaky::new(usize::MAX, clock.clone()), policy, clock.clone())
            .unwrap();
        let _ = sink.write(&[ev("a", 0)]);
        let at = sink.inner().at.lock().unwrap().clone();
        gaps(&at)
    };
    let a = draws(1);
    assert_eq!(a.len(), 11);
    assert!(a.iter().all(|d| *d <= Duration::from_millis(100)));
    // Uniform over [0, 100 ms]: eleven draws are not all in one half.
    assert!(a.iter().any(|d| *d < Duration::from_millis(50)), "{a:?}");
    assert!(a.iter().any(|d| *d >= Duration::from_millis(50)), "{a:?}");
    assert_eq!(a, draws(1));
    assert_ne!(a, draws(2));
}

/// Two writers whose attempts are in flight together both fail: the breaker
/// opens once, not once per writer.
#[test]
fn concurrent_failures_open_the_breaker_once() {
    struct FailTogether(std::sync::Barrier);
    impl Sink for FailTogether {
        fn write(&self, _: &[OwnedEvent]) -> Result<(), SinkError> {
            self.0.wait();
            Err("down".into())
        }
    }
    let clock = Arc::new(FakeClock::new());
    let policy = RetryPolicy::default().attempts(1).breaker_threshold(1);
    let sink = Retry::with_clock(FailTogether(std::sync::Barrier::new(2)), policy, clock).unwrap();
    std::thread::scope(|s| {
        for i in 0..2 {
            let sink = &sink;
            s.spawn(move || assert!(sink.write(&[ev("a", i)]).is_err()));
        }
    });
    let s = sink.stats();
    assert_eq!((s.failures, s.breaker_opened), (2, 1));
}

#[test]
fn breaker_waits_the_cooldown_after_consecutive_failures() {
    let clock = Arc::new(FakeClock::new());
    let policy = RetryPolicy::default()
        .unlimited_attempts()
        .base_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(1))
        .breaker_threshold(3)
        .breaker_cooldown(Duration::from_secs(10));
    let sink = Retry::with_clock(Flaky::new(5, clock.clone()), policy, clock.clone()).unwrap();
    sink.write(&[ev("a", 0)]).unwrap();
    let g = gaps(&sink.inner().at.lock().unwrap());
    assert_eq!(g.len(), 5);
    // Two ordinary backoffs, then a full cool-down before each attempt
    // while the breaker is open (failures 3, 4 and 5).
    assert!(
        g[0] <= Duration::from_millis(1) && g[1] <= Duration::from_millis(1),
        "{g:?}"
    );
    assert_eq!(&g[2..], [Duration::from_secs(10); 3], "{g:?}");
    let s = sink.stats();
    assert_eq!((s.breaker_opened, s.consecutive_failures), (3, 0));
    // Closed again: the next write goes at once.
    let before = clock.elapsed();
    sink.write(&[ev("a", 1)]).unwrap();
    assert_eq!(clock.elapsed(), before);
}

#[test]
fn open_breaker_delays_the_next_write() {
    let clock = Arc::new(FakeClock::new());
    let policy = RetryPolicy::default()
        .attempts(1)
        .breaker_threshold(2)
        .breaker_cooldown(Duration::from_secs(5));
    let sink = Retry::with_clock(Flaky::new(2, clock.clone()), policy, clock.clone()).unwrap();
    assert!(sink.write(&[ev("a", 0)]).is_err());
    assert!(sink.write(&[ev("a", 1)]).is_err()); // second failure opens it
    clock.advance(Duration::from_secs(2));
    sink.write(&[ev("a", 2)]).unwrap(); // waits the 3 s left, then succeeds
    let g = gaps(&sink.inner().at.lock().unwrap());
    assert_eq!(g[1], Duration::from_secs(5), "{g:?}");
    let s = sink.stats();
    assert_eq!((s.breaker_waits, s.dead_lettered), (1, 2));
}

#[test]
fn retry_policy_rejects_bad_values() {
    let bad = [
        RetryPolicy::default().attempts(0),
        RetryPolicy::default().breaker_threshold(0),
        RetryPolicy::default()
            .base_delay(Duration::from_secs(2))
            .max_delay(Duration::from_secs(1)),
    ];
    for p in bad {
        let e = Retry::new(Recorder::default(), p).err().expect("refused");
        assert!(matches!(e, ForwardError::Config(_)), "{e}");
    }
}

#[test]
fn close_cancels_a_retrying_write() {
    let failing = FnSink::new(|_: &[OwnedEvent]| Err("down".into()));
    let policy = RetryPolicy::default()
        .unlimited_attempts()
        .base_delay(Duration::from_millis(50))
        .max_delay(Duration::from_millis(200))
        .breaker_cooldown(Duration::from_secs(60));
    let sink = Arc::new(Retry::new(failing, policy).unwrap());
    let s = sink.clone();
    let writer = std::thread::spawn(move || s.write(&[ev("a", 0), ev("a", 1)]));
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    sink.close(Duration::from_millis(100)).unwrap();
    let err = writer.join().unwrap().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(
        forward_error(&err),
        ForwardError::Abandoned { events: 2 }
    ));
    assert_eq!(sink.stats().abandoned, 2);
    let err = sink.write(&[ev("a", 2)]).unwrap_err();
    assert!(matches!(forward_error(&err), ForwardError::Closed));
}

#[test]
fn batch_by_count() {
    let rec = Recorder::default();
    let config = BatchConfig::default()
        .max_events(3)
        .interval(Duration::from_secs(3600));
    let sink = Batch::new(rec.clone(), config).unwrap();
    for i in 0..7 {
        sink.write(&[ev("a", i)]).unwrap();
    }
    assert_eq!(rec.sizes(), [3, 3]);
    assert_eq!((sink.stats().by_count, sink.stats().buffered), (2, 1));
    sink.flush(Duration::from_secs(1)).unwrap();
    assert_eq!(rec.sizes(), [3, 3, 1]);
    let seqs: Vec<u64> = rec.events().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (0..7).collect::<Vec<_>>());
    assert_eq!((sink.stats().by_flush, sink.stats().written), (1, 7));
}

#[test]
fn batch_by_bytes() {
    let rec = Recorder::default();
    let size = event_bytes(&ev("a", 0)); // 12 + 1 + (3 + 1 + 1)
    assert_eq!(size, 18);
    let config = BatchConfig::default()
        .max_events(1000)
        .max_bytes(3 * size + 5)
        .interval(Duration::from_secs(3600));
    let sink = Batch::new(rec.clone(), config).unwrap();
    for i in 0..7 {
        sink.write(&[ev("a", i)]).unwrap();
    }
    // A 4th event would pass the limit: the first three go first.
    assert_eq!(rec.sizes(), [3, 3]);
    assert_eq!(sink.stats().by_bytes, 2);
    // An event as large as the limit goes out on its own.
    let config = BatchConfig::default()
        .max_bytes(size)
        .interval(Duration::from_secs(3600));
    let rec = Recorder::default();
    let sink = Batch::new(rec.clone(), config).unwrap();
    sink.write(&[ev("a", 0), ev("a", 1)]).unwrap();
    assert_eq!(rec.sizes(), [1, 1]);
}

#[test]
fn batch_by_interval_fires_with_no_new_events() {
    let rec = Recorder::default();
    let config = BatchConfig::default()
        .max_events(100)
        .interval(Duration::from_millis(50));
    let sink = Batch::new(rec.clone(), config).unwrap();
    let start = Instant::now();
    sink.write(&[ev("a", 0), ev("a", 1)]).unwrap();
    while rec.sizes().is_empty() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        start.elapsed() >= Duration::from_millis(50),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(rec.sizes(), [2]);
    assert_eq!(sink.stats().by_interval, 1);
    // And again for a later event.
    sink.write(&[ev("a", 2)]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rec.sizes(), [2, 1]);
}

#[test]
fn batch_close_writes_the_rest_and_refuses_more() {
    let rec = Recorder::default();
    let sink = Batch::new(rec.clone(), BatchConfig::default()).unwrap();
    sink.write(&[ev("a", 0)]).unwrap();
    sink.close(Duration::from_secs(1)).unwrap();
    assert_eq!(rec.sizes(), [1]);
    let err = sink.write(&[ev("a", 1)]).unwrap_err();
    assert!(matches!(forward_error(&err), ForwardError::Closed));
    assert!(Batch::new(rec.clone(), BatchConfig::default().max_events(0)).is_err());
    assert!(Batch::new(rec.clone(), BatchConfig::default().max_bytes(0)).is_err());
    assert!(Batch::new(rec, BatchConfig::default().interval(Duration::ZERO)).is_err());
}

#[test]
fn batch_counts_refused_batches() {
    let sink = Batch::new(
        FnSink::new(|_: &[OwnedEvent]| Err("nope".into())),
        BatchConfig::default().max_events(2),
    )
    .unwrap();
    sink.write(&[ev("a", 0)]).unwrap();
    assert!(sink.write(&[ev("a", 1)]).is_err());
    let s = sink.stats();
    assert_eq!((s.failed_batches, s.failed_events, s.written), (1, 2, 0));
}

/// Blocks every write until released.
#[derive(Clone, Default)]
struct Gate {
    open: Arc<AtomicBool>,
    written: Arc<AtomicUsize>,
}

impl Sink for Gate {
    fn write(&self, batch: &[OwnedEvent]) -> Result<(), SinkError> {
        while !self.open.load(SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.written.fetch_add(batch.len(), SeqCst);
        Ok(())
    }
}

#[test]
fn buffered_refuses_and_counts_overflow() {
    let gate = Gate::default();
    let sink = Buffered::new(gate.clone(), 5, 2).unwrap();
    let err = sink
        .write(&(0..8).map(|i| ev("a", i)).collect::<Vec<_>>())
        .unwrap_err();
    assert!(matches!(
        forward_error(&err),
        ForwardError::Overflow {
            dropped: 3,
            capacity: 5
        }
    ));
    let s = sink.stats();
    assert_eq!((s.accepted, s.dropped, s.pending), (5, 3, 5));
    let err = sink.flush(Duration::from_millis(20)).unwrap_err();
    assert!(matches!(
        forward_error(&err),
        ForwardError::Timeout { pending: 5 }
    ));
    gate.open.store(true, SeqCst);
    sink.close(Duration::from_secs(5)).unwrap();
    assert_eq!(gate.written.load(SeqCst), 5);
    assert_eq!(sink.stats().written, 5);
    assert!(Buffered::new(Gate::default(), 0, 1).is_err());
    assert!(Buffered::new(Gate::default(), 1, 0).is_err());
}

#[test]
fn buffered_close_abandons_what_a_stuck_sink_cannot_take() {
    let gate = Gate::default();
    let sink = Buffered::new(gate.clone(), 100, 10).unwrap();
    sink.write(&(0..30).map(|i| ev("a", i)).collect::<Vec<_>>())
        .unwrap();
    // The stuck write finishes only when released; release it from the
    // side after close gave up waiting.
    let g = gate.clone();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        g.open.store(true, SeqCst);
    });
    let err = sink.close(Duration::from_millis(50)).unwrap_err();
    release.join().unwrap();
    assert!(matches!(
        forward_error(&err),
        ForwardError::Abandoned { events: 20 }
    ));
    let s = sink.stats();
    assert_eq!((s.written, s.abandoned, s.pending), (10, 20, 0));
}

#[test]
fn fan_out_isolates_a_slow_and_a_failing_sink() {
    let fast = Recorder::default();
    let slow = Gate::default();
    let fan = FanOut::new()
        .with("fast", fast.clone(), 10_000)
        .unwrap()
        .with("slow", slow.clone(), 100)
        .unwrap()
        .with(
            "failing",
            FnSink::new(|_: &[OwnedEvent]| Err("down".into())),
            10_000,
        )
        .unwrap();
    let start = Instant::now();
    let mut refused = 0;
    for i in 0..1000 {
        if let Err(e) = fan.write(&[ev("a", i)]) {
            let ForwardError::FanOut { failures } = forward_error(&e) else {
                panic!("{e}")
            };
            assert_eq!(failures.len(), 1);
            assert_eq!(failures[0].0, "slow");
            refused += 1;
        }
    }
    // The stuck sink did not stall the writer.
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    fan.flush(Duration::from_millis(200)).unwrap_err(); // slow is still stuck
    assert_eq!(fast.events().len(), 1000);
    let stats = fan.stats();
    let (fast_s, slow_s, failing_s) = (stats.sinks[0].1, stats.sinks[1].1, stats.sinks[2].1);
    assert_eq!((fast_s.written, fast_s.dropped), (1000, 0));
    assert_eq!(slow_s.accepted, 100);
    assert_eq!(slow_s.dropped, 900);
    assert_eq!(refused, 900);
    assert_eq!((failing_s.failed, failing_s.written), (1000, 0));
    slow.open.store(true, SeqCst);
    fan.close(Duration::from_secs(5)).unwrap();
    assert_eq!(slow.written.load(SeqCst), 100);
}

#[test]
fn filter_by_name_and_predicate() {
    let rec = Recorder::default();
    let sink = Filter::names(rec.clone(), &["purchase", "match_end"]);
    sink.write(&[ev("purchase", 0), ev("chat", 1), ev("match_end", 2)])
        .unwrap();
    sink.write(&[ev("chat", 3)]).unwrap();
    assert_eq!(rec.sizes(), [2]);
    assert_eq!((sink.stats().passed, sink.stats().filtered), (2, 2));
    let rec = Recorder::default();
    let sink = Filter::new(rec.clone(), |e: &OwnedEvent| e.seq % 2 == 0);
    sink.write(&(0..10).map(|i| ev("a", i)).collect::<Vec<_>>())
        .unwrap();
    let seqs: Vec<u64> = rec.events().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [0, 2, 4, 6, 8]);
}

#[test]
fn handler_forwards_owned_events_from_a_queue() {
    let rec = Recorder::default();
    let sink = Arc::new(Batch::new(rec.clone(), BatchConfig::default()).unwrap());
    let queue = EventQueue::builder()
        .capacity(1024)
        .workers(2)
        .build()
        .unwrap();
    queue.on("purchase", handler(sink.clone())).unwrap();
    for i in 0..100 {
        let v = i.to_string();
        queue
            .emit(&Event::new("purchase").properties(&[("i", &v)]))
            .unwrap();
        queue.emit(&Event::new("chat")).unwrap();
    }
    queue.shutdown(Duration::from_secs(5)).unwrap();
    sink.close(Duration::from_secs(5)).unwrap();
    let mut got: Vec<usize> = rec
        .events()
        .iter()
        .map(|e| {
            assert_eq!(e.name, "purchase");
            assert!(e.timestamp > 0);
            e.property("i").unwrap().parse().unwrap()
        })
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}

#[test]
fn handler_errors_reach_the_queue() {
    let sink = Arc::new(Buffered::new(Gate::default(), 1, 1).unwrap());
    let queue = EventQueue::builder()
        .capacity(64)
        .workers(1)
        .build()
        .unwrap();
    queue.on_any(handler(sink.clone()));
    for _ in 0..5 {
        queue.emit(&Event::new("a")).unwrap();
    }
    queue.flush(Duration::from_secs(5)).unwrap();
    // One in flight or queued, the rest refused: counted on both sides.
    let s = sink.stats();
    assert_eq!(s.accepted + s.dropped, 5);
    assert!(s.dropped >= 3, "{s:?}");
    assert_eq!(queue.stats().handler_errors, s.dropped);
    sink.inner().open.store(true, SeqCst);
    queue.shutdown(Duration::from_secs(5)).unwrap();
    sink.close(Duration::from_secs(5)).unwrap();
}

#[test]
fn dropping_batch_and_buffered_writes_what_they_hold() {
    let rec = Recorder::default();
    let sink = Batch::new(rec.clone(), BatchConfig::default()).unwrap();
    sink.write(&[ev("a", 0), ev("a", 1)]).unwrap();
    drop(sink);
    assert_eq!(rec.sizes(), [2]);
    let rec = Recorder::default();
    let sink = Buffered::new(rec.clone(), 16, 16).unwrap();
    sink.write_owned(vec![ev("a", 0), ev("a", 1), ev("a", 2)])
        .unwrap();
    drop(sink);
    assert_eq!(rec.events().len(), 3);
}

/// `Duration::MAX` as "wait as long as it takes" works everywhere a sink
/// takes a timeout (it used to panic: `Instant + Duration` overflowed).
#[test]
fn the_longest_timeout_waits_instead_of_panicking() {
    // Each sink over its own recorder: one write, then flush and close
    // with the longest timeout; the event must have come through.
    fn waits(make: impl FnOnce(Recorder) -> Box<dyn Sink>) {
        let rec = Recorder::default();
        let sink = make(rec.clone());
        sink.write(&[ev("a", 0)]).unwrap();
        sink.flush(Duration::MAX).unwrap();
        sink.close(Duration::MAX).unwrap();
        assert_eq!(rec.events().len(), 1);
    }
    waits(|rec| Box::new(Buffered::new(rec, 16, 16).unwrap()));
    waits(|rec| Box::new(Batch::new(rec, BatchConfig::default()).unwrap()));
    waits(|rec| Box::new(Retry::new(rec, RetryPolicy::default()).unwrap()));
    waits(|rec| Box::new(FanOut::new().with("rec", rec, 16).unwrap()));

    // A retry whose backoff may be as long as a `Duration` can be.
    let failing = FnSink::new(|_: &[OwnedEvent]| Err("down".into()));
    let policy = RetryPolicy::default().attempts(2).max_delay(Duration::MAX);
    let retry = Arc::new(Retry::new(failing, policy).unwrap());
    let writer = {
        let retry = retry.clone();
        std::thread::spawn(move || retry.write(&[ev("a", 0)]))
    };
    std::thread::sleep(Duration::from_millis(50));
    retry.close(Duration::from_millis(50)).ok();
    assert!(writer.join().expect("no panic").is_err());

    // A breaker whose cool-down is as long as a `Duration` can be (on a
    // fake clock, so the wait passes at once).
    let clock = Arc::new(FakeClock::new());
    let policy = RetryPolicy::default()
        .unlimited_attempts()
        .breaker_threshold(1)
        .breaker_cooldown(Duration::MAX);
    let sink = Retry::with_clock(Flaky::new(1, clock.clone()), policy, clock.clone()).unwrap();
    sink.write(&[ev("a", 0)]).unwrap();
    assert_eq!(sink.stats().breaker_waits, 1);
}
