//! Ordered keys: events with one key are handled in the order they were
//! emitted and never by two handlers at once, with exact accounting, also
//! when lanes overwrite; flush and shutdown wait for keyed events; session
//! events are keyed by their `session_id`; bad keys change nothing.
//!
//! ```text
//! cargo test -p evqueue --release --test keyed -- --nocapture   # 1M events, a few seconds
//! ```
//!
//! Debug builds run a tenth of the events. No assertion is on speed.

use evqueue::lane::MAX_ORDERING_KEY_LEN;
use evqueue::{Error, Event, EventQueue, ShutdownReport, Start, SESSION_ID};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(60);

fn balanced(r: &ShutdownReport) -> bool {
    r.pushed == r.handled + r.popped + r.overwritten + r.rejected + r.left
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Per-key checks made inside the handler.
struct Checker {
    producers: usize,
    /// Whether a handler holds the key now.
    in_handler: Vec<AtomicBool>,
    /// Per (key, producer): the last `n` handled, plus one (0: none yet).
    last: Vec<AtomicU64>,
    /// Two handlers held one key at once.
    overlaps: AtomicU64,
    /// An event of a (key, producer) handled after a later one.
    out_of_order: AtomicU64,
    /// Keyed events handled with a gap before them (lost ones).
    gaps: AtomicU64,
    keyed_calls: AtomicU64,
    unkeyed_calls: AtomicU64,
}

impl Checker {
    fn new(keys: usize, producers: usize) -> Checker {
        Checker {
            producers,
            in_handler: (0..keys).map(|_| AtomicBool::new(false)).collect(),
            last: (0..keys * producers).map(|_| AtomicU64::new(0)).collect(),
            overlaps: AtomicU64::new(0),
            out_of_order: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            keyed_calls: AtomicU64::new(0),
            unkeyed_calls: AtomicU64::new(0),
        }
    }

    fn handle(&self, e: &evqueue::EventView<'_>) {
        let props = e.properties();
        let num = |k: &str| -> u64 { props.get(k).unwrap().parse().unwrap() };
        let (n, p) = (num("n"), num("p") as usize);
        let Some(key) = props.get("k") else {
            self.unkeyed_calls.fetch_add(1, Relaxed);
            delay(mix(n ^ (p as u64) << 40));
            return;
        };
        let key: usize = key.parse().unwrap();
        self.keyed_calls.fetch_add(1, Relaxed);
        if self.in_handler[key].swap(true, AcqRel) {
            self.overlaps.fetch_add(1, Relaxed);
        }
        // Only this handler touches `last` of its key while it holds it;
        // Relaxed is enough for a correct queue, and a broken one shows up
        // as an overlap or an order violation.
        let last = &self.last[key * self.producers + p];
        let prev = last.load(Relaxed);
        if n < prev {
            self.out_of_order.fetch_add(1, Relaxed);
        } else if n != prev {
            self.gaps.fetch_add(1, Relaxed);
        }
        last.store(n + 1, Relaxed);
        delay(mix((key as u64) << 32 ^ n));
        self.in_handler[key].store(false, Release);
    }
}

/// A random handler delay: mostly none, some spins, a few sleeps.
fn delay(r: u64) {
    match r % 1000 {
        0 => std::thread::sleep(Duration::from_micros(100)),
        1..=30 => {
            let until = Instant::now() + Duration::from_micros(3);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        }
        _ => {}
    }
}

struct Run {
    report: ShutdownReport,
    checker: Arc<Checker>,
    keyed: u64,
    unkeyed: u64,
}

/// `events` keyed events over `keys` keys from `producers` threads (each
/// cycles through every key, so keys are shared between threads), plus one
/// unkeyed event per 10 keyed; 8 workers; shutdown drains.
fn run(events: u64, keys: usize, producers: usize, capacity: usize, lanes: usize) -> Run {
    let queue = Arc::new(
        EventQueue::builder()
            .capacity(capacity)
            .workers(8)
            .lanes(lanes)
            .spin_for(Duration::from_micros(20))
            .build()
            .unwrap(),
    );
    let checker = Arc::new(Checker::new(keys, producers));
    let c = checker.clone();
    queue
        .on("tick", move |e| {
            c.handle(e);
            Ok(())
        })
        .unwrap();
    let per_producer = events / producers as u64;
    std::thread::scope(|s| {
        for p in 0..producers {
            let queue = queue.clone();
            s.spawn(move || {
                let mut counters = vec![0u64; keys];
                let mut unkeyed = 0u64;
                let pid = p.to_string();
                for i in 0..per_producer {
                    // Each producer walks the keys in its own order.
                    let key = (mix(i ^ (p as u64) << 48) % keys as u64) as usize;
                    let n = counters[key];
                    counters[key] += 1;
                    let (ks, ns) = (key.to_string(), n.to_string());
                    let props = [("k", ks.as_str()), ("n", &ns), ("p", &pid)];
                    let event = Event::new("tick").properties(&props);
                    queue.emit_keyed(&event, format!("key-{key}")).unwrap();
                    if i % 10 == 0 {
                        let ns = unkeyed.to_string();
                        unkeyed += 1;
                        queue
                            .emit(&Event::new("tick").properties(&[("n", &ns), ("p", &pid)]))
                            .unwrap();
                    }
                }
            });
        }
    });
    let report = queue.shutdown(PATIENCE).unwrap();
    let unkeyed = producers as u64 * per_producer.div_ceil(10);
    Run {
        report,
        checker,
        keyed: producers as u64 * per_producer,
        unkeyed,
    }
}

fn scale() -> u64 {
    if cfg!(debug_assertions) {
        100_000
    } else {
        1_000_000
    }
}

#[test]
fn one_million_events_over_100k_keys_in_order_one_at_a_time() {
    let events = scale();
    let keys = (events / 10) as usize;
    let started = Instant::now();
    // Room for everything: nothing may be lost.
    let r = run(events, keys, 4, 1 << 21, 0);
    let c = &r.checker;
    println!(
        "{events} keyed + {} unkeyed events, {keys} keys, 4 producers, 8 workers: {:?}; {:?}",
        r.unkeyed,
        started.elapsed(),
        r.report
    );
    assert_eq!(c.overlaps.load(Relaxed), 0, "two handlers held one key");
    assert_eq!(c.out_of_order.load(Relaxed), 0, "order violations");
    assert_eq!(c.gaps.load(Relaxed), 0, "events skipped without loss");
    assert!(!r.report.timed_out);
    assert_eq!(r.report.pushed, r.keyed + r.unkeyed);
    assert_eq!(r.report.handled, r.keyed + r.unkeyed);
    assert_eq!(c.keyed_calls.load(Relaxed), r.keyed);
    assert_eq!(c.unkeyed_calls.load(Relaxed), r.unkeyed);
    assert_eq!((r.report.lost(), r.report.left), (0, 0));
}

#[test]
fn lanes_that_overwrite_keep_order_and_count_every_loss() {
    let events = scale() / 2;
    let keys = (events / 10) as usize;
    // 16 lanes of 64 slots: producers lap the workers again and again.
    let r = run(events, keys, 4, 1024, 16);
    let c = &r.checker;
    println!("overwrite: {:?}", r.report);
    assert_eq!(c.overlaps.load(Relaxed), 0, "two handlers held one key");
    assert_eq!(c.out_of_order.load(Relaxed), 0, "order violations");
    assert!(balanced(&r.report), "{:?}", r.report);
    assert_eq!(r.report.left, 0);
    assert_eq!(r.report.pushed, r.keyed + r.unkeyed);
    // Every handled event ran its handler exactly once.
    assert_eq!(
        c.keyed_calls.load(Relaxed) + c.unkeyed_calls.load(Relaxed),
        r.report.handled
    );
    // Not a timing assertion: a handler with delays cannot keep up with
    // four producers on 64-slot lanes, and if it did the test still holds.
    if r.report.overwritten == 0 {
        println!("note: nothing was overwritten this run");
    }
}

#[test]
fn sessions_are_keyed_by_their_session_id() {
    let queue = EventQueue::builder()
        .capacity(1 << 16)
        .workers(8)
        .build()
        .unwrap();
    let sessions = if cfg!(debug_assertions) {
        2_000
    } else {
        20_000
    };
    // Per session: 0 none, 1 started, 2 ended; and whether a handler holds it.
    let state: Arc<Vec<AtomicU64>> = Arc::new((0..sessions).map(|_| AtomicU64::new(0)).collect());
    let busy: Arc<Vec<AtomicBool>> =
        Arc::new((0..sessions).map(|_| AtomicBool::new(false)).collect());
    let bad = Arc::new(Mutex::new(Vec::<String>::new()));
    let handler = |expect: u64, to: u64| {
        let (state, busy, bad) = (state.clone(), busy.clone(), bad.clone());
        move |e: &evqueue::EventView<'_>| {
            let id: usize = e.properties().get(SESSION_ID).unwrap().parse().unwrap();
            if busy[id].swap(true, AcqRel) {
                bad.lock().unwrap().push(format!("{id}: overlap"));
            }
            let now = state[id].load(Relaxed);
            if now != expect {
                bad.lock()
                    .unwrap()
                    .push(format!("{id}: {} in state {now}", e.name));
            }
            if id % 97 == 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
            state[id].store(to, Relaxed);
            busy[id].store(false, Release);
            Ok(())
        }
    };
    queue.on_session_start(handler(0, 1));
    queue.on("play", handler(1, 1)).unwrap();
    queue.on_session_end(handler(1, 2));
    std::thread::scope(|s| {
        for t in 0..2 {
            let queue = &queue;
            s.spawn(move || {
                for id in (t..sessions).step_by(2) {
                    let sid = id.to_string();
                    queue.emit_session_start(&[(SESSION_ID, &sid)]).unwrap();
                    // A custom event keyed by the same session id.
                    queue
                        .emit_keyed(&Event::new("play").properties(&[(SESSION_ID, &sid)]), &sid)
                        .unwrap();
                    queue
                        .emit_session_end("logout", &[(SESSION_ID, &sid)])
                        .unwrap();
                }
            });
        }
    });
    let report = queue.shutdown(PATIENCE).unwrap();
    let bad = bad.lock().unwrap();
    assert!(
        bad.is_empty(),
        "{} violations, first: {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    assert!(state.iter().all(|s| s.load(Relaxed) == 2));
    assert_eq!(
        (report.handled, report.lost(), report.left),
        (3 * sessions as u64, 0, 0)
    );
}

#[test]
fn flush_waits_for_keyed_events_of_every_lane() {
    let queue = EventQueue::builder()
        .capacity(4096)
        .workers(4)
        .build()
        .unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let d = done.clone();
    queue
        .on("slow", move |_| {
            std::thread::sleep(Duration::from_micros(200));
            d.fetch_add(1, Relaxed);
            Ok(())
        })
        .unwrap();
    for round in 0..5 {
        for i in 0..200u64 {
            queue
                .emit_keyed(&Event::new("slow"), (i % 7).to_le_bytes())
                .unwrap();
        }
        queue.flush(PATIENCE).unwrap();
        assert_eq!(done.load(Relaxed), 200 * (round + 1));
        assert_eq!(queue.stats().ring.depth, 0);
    }
}

#[test]
fn shutdown_drains_keyed_events_and_refuses_new_ones() {
    // 16 lanes of 4096 slots: room for all.
    let queue = EventQueue::builder()
        .capacity(1 << 16)
        .workers(3)
        .build()
        .unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let d = done.clone();
    queue
        .on("slow", move |_| {
            std::thread::sleep(Duration::from_micros(100));
            d.fetch_add(1, Relaxed);
            Ok(())
        })
        .unwrap();
    for i in 0..1000u64 {
        queue
            .emit_keyed(&Event::new("slow"), (i % 3).to_le_bytes())
            .unwrap();
    }
    let report = queue.shutdown(PATIENCE).unwrap();
    assert_eq!(
        (report.pushed, report.handled, report.left),
        (1000, 1000, 0)
    );
    assert_eq!(done.load(Relaxed), 1000);
    assert_eq!(
        queue.emit_keyed(&Event::new("late"), "k"),
        Err(Error::Closed)
    );
}

#[test]
fn a_bad_key_is_refused_and_changes_nothing() {
    let queue = EventQueue::builder()
        .capacity(64)
        .workers(1)
        .build_paused()
        .unwrap();
    let long = vec![b'k'; MAX_ORDERING_KEY_LEN + 1];
    assert_eq!(
        queue.emit_keyed(&Event::new("x"), &long),
        Err(Error::OrderingKeyTooLong {
            len: MAX_ORDERING_KEY_LEN + 1,
            max: MAX_ORDERING_KEY_LEN
        })
    );
    assert_eq!(
        queue.emit_keyed(&Event::new(""), "k"),
        Err(Error::EmptyName)
    );
    assert_eq!(queue.stats().ring.pushed, 0);
    // The longest key is fine, and so is the empty key.
    queue.emit_keyed(&Event::new("x"), &long[1..]).unwrap();
    queue.emit_keyed(&Event::new("x"), "").unwrap();
    assert_eq!(queue.stats().ring.pushed, 2);
    assert!(EventQueue::builder().lanes(3).build_paused().is_err());
    // A session id longer than the key bound still keys its session events
    // (it was a valid property value before keys existed): they go to a
    // lane, which subscribers do not read.
    let queue = EventQueue::builder()
        .capacity(64)
        .slot_bytes(1024)
        .workers(1)
        .build_paused()
        .unwrap();
    let mut sub = queue.subscribe(Start::Oldest);
    let id = "s".repeat(MAX_ORDERING_KEY_LEN + 50);
    queue.emit_session_start(&[(SESSION_ID, &id)]).unwrap();
    queue
        .emit_session_start(&[("user", "no session id")])
        .unwrap();
    assert_eq!(queue.stats().ring.pushed, 2);
    assert_eq!(
        sub.try_recv().unwrap().property("user"),
        Some("no session id")
    );
    assert!(
        sub.try_recv().is_err(),
        "the keyed session_start reached a subscriber"
    );
}

#[test]
fn pull_mode_pops_keyed_events_in_key_order_and_subscribers_see_only_unkeyed() {
    let queue = EventQueue::builder()
        .capacity(64)
        .workers(1)
        .build_paused()
        .unwrap();
    let mut sub = queue.subscribe(Start::Oldest);
    for n in ["1", "2", "3"] {
        queue
            .emit_keyed(&Event::new("k").properties(&[("n", n)]), "one key")
            .unwrap();
    }
    queue.emit(&Event::new("unkeyed")).unwrap();
    let popped: Vec<String> = (0..4)
        .map(|_| {
            let e = queue.try_pop().unwrap();
            format!("{}{}", e.name, e.property("n").unwrap_or(""))
        })
        .collect();
    assert_eq!(popped, ["unkeyed", "k1", "k2", "k3"]);
    assert!(queue.try_pop().is_err());
    let s = queue.stats();
    assert_eq!((s.ring.pushed, s.popped, s.ring.depth), (4, 4, 0));
    assert_eq!(sub.try_recv().unwrap().name, "unkeyed");
    assert!(sub.try_recv().is_err());
}
