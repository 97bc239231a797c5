//! `EventQueue::drain_shared` (feature `shm`): an event queue running its
//! handlers on the events pushed into a shared ring, from this process and
//! from another one; back-pressure into the shared ring; malformed and
//! oversized payloads skipped and counted; stop, drop and queue shutdown
//! ending promptly.
//!
//! The other process is this test binary run again with `EVQ_DRAIN_CHILD`
//! set, filtered to the `child` test, which does nothing otherwise.
#![cfg(all(target_os = "linux", not(evqueue_loom)))]

use evqueue::{
    Error, Event, EventQueue, Overflow, SharedRing, SESSION_END, SESSION_ID, SESSION_START,
};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(20);

/// A fresh path, removed on drop.
struct TempRing(PathBuf);

impl TempRing {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let name = format!("evq-drain-{tag}-{}-{n}", std::process::id());
        TempRing(std::env::temp_dir().join(name))
    }

    fn create(&self, capacity: usize, slot_bytes: usize, overflow: Overflow) -> Arc<SharedRing> {
        Arc::new(SharedRing::create(&self.0, capacity, slot_bytes, overflow).unwrap())
    }
}

impl Drop for TempRing {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Waits (bounded) until `done` holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < LONG, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A property's value parsed as a number.
fn num(e: &evqueue::EventView<'_>, key: &str) -> u64 {
    e.properties().get(key).unwrap().parse().unwrap()
}

/// The other process. Role (`EVQ_DRAIN_CHILD`):
/// `produce <path> <n> <bad_every>`: push `n` encoded events named `tick`
/// with property `i` (retrying `Full`), and after every `bad_every`-th a
/// malformed payload; print `RESULT events=<n> bad=<b> full=<refusals>`.
#[test]
fn child() {
    let Ok(role) = std::env::var("EVQ_DRAIN_CHILD") else {
        return;
    };
    let args: Vec<&str> = role.split(' ').collect();
    if args[0] == "drain" {
        return drain_until_killed(args[1]);
    }
    assert_eq!(args[0], "produce", "unknown role {role}");
    let ring = SharedRing::open(args[1]).expect("child open");
    let n: u64 = args[2].parse().unwrap();
    let bad_every: u64 = args[3].parse().unwrap();
    let producer = ring.mp_producer().unwrap();
    let (mut bad, mut full) = (0u64, 0u64);
    let mut push = |payload: &dyn Fn(&evqueue::MpProducer<&SharedRing>) -> Result<u64, Error>| {
        let since = Instant::now();
        loop {
            match payload(&producer) {
                Ok(_) => break,
                Err(Error::Full) => {
                    full += 1;
                    assert!(since.elapsed() < LONG, "ring stalled");
                    std::thread::yield_now();
                }
                Err(e) => panic!("push: {e}"),
            }
        }
        ring.wake();
    };
    for i in 0..n {
        let value = i.to_string();
        let props = [("i", value.as_str())];
        push(&|p| p.push_event(&Event::new("tick").properties(&props)));
        if bad_every > 0 && i % bad_every == bad_every - 1 {
            push(&|p| p.push(b"\xffnot an event"));
            bad += 1;
        }
    }
    println!("RESULT events={n} bad={bad} full={full}");
}

fn spawn_child(role: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("EVQ_DRAIN_CHILD", role)
        .stdout(Stdio::piped())
        .spawn()
        .expect("re-run the test binary")
}

/// The `key=` field of the line the child printed after `RESULT`.
fn child_result(child: Child) -> impl Fn(&str) -> u64 {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "child failed: {text}");
    let (_, after) = text
        .split_once("RESULT")
        .unwrap_or_else(|| panic!("no RESULT in child output: {text}"));
    let line = after.lines().next().unwrap_or("").to_owned();
    move |key| {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key} in {line}"))
            .parse()
            .unwrap()
    }
}

/// Queue geometry of the `drain` child: what it may hold claimed and not
/// handled is at most `CRASH_CAPACITY + CRASH_WORKERS * CRASH_BATCH`.
const CRASH_CAPACITY: usize = 16;
const CRASH_WORKERS: usize = 2;
const CRASH_BATCH: usize = 4;

/// The `drain <path>` role: a queue whose handler prints `H <i>` and takes
/// a millisecond, draining the shared ring until the process is killed.
fn drain_until_killed(path: &str) {
    let ring = Arc::new(SharedRing::open(path).expect("child open"));
    let queue = EventQueue::builder()
        .capacity(CRASH_CAPACITY)
        .workers(CRASH_WORKERS)
        .claim_batch(CRASH_BATCH)
        .build()
        .unwrap();
    queue
        .on("tick", |e| {
            // Line-buffered: in the pipe before the handler returns.
            println!("H {}", num(e, "i"));
            std::thread::sleep(Duration::from_millis(1));
            Ok(())
        })
        .unwrap();
    let _drain = queue.drain_shared(ring).unwrap();
    let start = Instant::now();
    while start.elapsed() < LONG {
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("not killed");
}

/// A draining process killed with SIGKILL loses at most what it had
/// claimed and not handled (its queue's capacity plus what its workers
/// held); the rest waits in the shared ring, and a new drain handles
/// exactly those events.
#[test]
fn a_killed_drain_loses_at_most_its_queue() {
    const N: u64 = 2_000;
    let t = TempRing::new("killed");
    let ring = t.create(4096, 64, Overflow::Reject);
    let producer = ring.mp_producer().unwrap();
    for i in 0..N {
        let value = i.to_string();
        producer
            .push_event(&Event::new("tick").properties(&[("i", &value)]))
            .unwrap();
    }
    ring.wake();
    let mut child = spawn_child(&format!("drain {}", t.0.display()));
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut handled = Vec::new();
    let mut lines = std::io::BufRead::lines(out);
    while handled.len() < 200 {
        let line = lines.next().expect("child output").unwrap();
        if let Some(i) = line.strip_prefix("H ") {
            handled.push(i.parse::<u64>().unwrap());
        }
    }
    child.kill().unwrap();
    for line in lines {
        if let Some(i) = line.unwrap().strip_prefix("H ") {
            handled.push(i.parse::<u64>().unwrap());
        }
    }
    assert!(!child.wait().unwrap().success());
    let claimed = ring.stats().delivered;
    handled.sort_unstable();
    handled.dedup();
    let bound = (CRASH_CAPACITY + CRASH_WORKERS * CRASH_BATCH) as u64;
    eprintln!("claimed {claimed}, handled {}", handled.len());
    assert!(handled.iter().all(|&i| i < claimed));
    assert!(
        claimed - handled.len() as u64 <= bound,
        "lost more than {bound}"
    );
    assert_eq!(ring.stats().depth, N - claimed);
    // A new drain takes over where the dead one stopped.
    let queue = EventQueue::builder()
        .capacity(64)
        .workers(2)
        .build()
        .unwrap();
    let seen: Arc<Vec<AtomicU64>> = Arc::new((0..N).map(|_| AtomicU64::new(0)).collect());
    let s = seen.clone();
    queue
        .on("tick", move |e| {
            s[num(e, "i") as usize].fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    let drain = queue.drain_shared(ring.clone()).unwrap();
    drain.catch_up(LONG).unwrap();
    queue.flush(LONG).unwrap();
    for (i, count) in seen.iter().enumerate() {
        let expected = u64::from(i as u64 >= claimed);
        assert_eq!(count.load(Ordering::Relaxed), expected, "event {i}");
    }
    assert_eq!(drain.stop().handed_over, N - claimed);
}

/// One process pushes events of several names, session events and raw
/// payloads; the queue's handlers see each once, as pushed.
#[test]
fn same_process_every_event_handled_once_as_pushed() {
    const N: u64 = 600;
    let t = TempRing::new("same");
    let ring = t.create(1024, 256, Overflow::Reject);
    let producer = ring.mp_producer().unwrap();
    let mut expected = 0u64;
    for i in 0..N {
        let value = i.to_string();
        let session = format!("s{}", i % 3);
        match i % 5 {
            0 => {
                producer
                    .push_framed_raw(&i.to_le_bytes(), 5_000 + i)
                    .unwrap();
            }
            1 => {
                let props = [(SESSION_ID, session.as_str()), ("i", value.as_str())];
                producer
                    .push_event(
                        &Event::new(SESSION_START)
                            .properties(&props)
                            .timestamp(5_000 + i),
                    )
                    .unwrap();
            }
            2 => {
                let props = [
                    ("reason", "logout"),
                    (SESSION_ID, session.as_str()),
                    ("i", value.as_str()),
                ];
                producer
                    .push_event(
                        &Event::new(SESSION_END)
                            .properties(&props)
                            .timestamp(5_000 + i),
                    )
                    .unwrap();
            }
            k => {
                let name = if k == 3 { "purchase" } else { "match_end" };
                let props = [("i", value.as_str()), ("sku", "gem_pack")];
                producer
                    .push_event(
                        &Event::new(name)
                            .properties(&props)
                            .timestamp(5_000 + i)
                            .external(i % 2 == 0),
                    )
                    .unwrap();
            }
        }
        expected += 1;
    }
    ring.wake();

    let queue = EventQueue::builder()
        .capacity(256)
        .workers(4)
        .build()
        .unwrap();
    let seen: Arc<Vec<AtomicU64>> = Arc::new((0..N).map(|_| AtomicU64::new(0)).collect());
    // Per session: the `i` of its session events, in handling order.
    let sessions = Arc::new(Mutex::new(vec![Vec::new(); 3]));
    for name in ["purchase", "match_end"] {
        let s = seen.clone();
        queue
            .on(name, move |e| {
                let i = num(e, "i");
                assert_eq!(i % 5, if e.name == "purchase" { 3 } else { 4 });
                assert_eq!((e.timestamp, e.external), (5_000 + i, i % 2 == 0));
                assert_eq!(e.properties().get("sku"), Some("gem_pack"));
                assert_eq!(e.properties().len(), 2);
                s[i as usize].fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
            .unwrap();
    }
    for name in [SESSION_START, SESSION_END] {
        let (s, order) = (seen.clone(), sessions.clone());
        queue
            .on(name, move |e| {
                let i = num(e, "i");
                assert_eq!(e.timestamp, 5_000 + i);
                let session = e.properties().get(SESSION_ID).unwrap();
                assert_eq!(session, format!("s{}", i % 3));
                if e.name == SESSION_END {
                    assert_eq!(e.properties().get("reason"), Some("logout"));
                }
                order.lock().unwrap()[(i % 3) as usize].push(i);
                s[i as usize].fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
            .unwrap();
    }
    let s = seen.clone();
    queue.on_raw(move |raw| {
        let i = u64::from_le_bytes(raw.bytes.try_into()?);
        assert_eq!((i % 5, raw.timestamp), (0, 5_000 + i));
        s[i as usize].fetch_add(1, Ordering::Relaxed);
        Ok(())
    });

    let drain = queue.drain_shared(ring.clone()).unwrap();
    drain.catch_up(LONG).unwrap();
    queue.flush(LONG).unwrap();
    for (i, count) in seen.iter().enumerate() {
        assert_eq!(count.load(Ordering::Relaxed), 1, "event {i}");
    }
    // A session's events are handled in the order they were pushed.
    for order in sessions.lock().unwrap().iter() {
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    }
    let stats = drain.stop();
    assert_eq!(
        (stats.claimed, stats.handed_over, stats.malformed),
        (expected, expected, 0)
    );
    assert_eq!((stats.too_large, stats.dropped, stats.lost), (0, 0, 0));
    let shared = ring.stats();
    assert_eq!((shared.pushed, shared.delivered, shared.depth), (N, N, 0));
    let q = queue.stats();
    assert_eq!((q.ring.pushed, q.handled, q.handler_errors), (N, N, 0));
    assert_eq!((q.ring.overwritten, q.ring.depth), (0, 0));
}

/// Another process produces while this one drains into handlers: exact
/// accounting on both sides, every event handled at most once (exactly
/// once under `Reject`).
fn cross_process(overflow: Overflow, capacity: usize, n: u64, bad_every: u64) {
    let t = TempRing::new("xproc");
    let ring = t.create(capacity, 64, overflow);
    let queue = EventQueue::builder()
        .capacity(64)
        .workers(3)
        .build()
        .unwrap();
    let seen: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let s = seen.clone();
    queue
        .on("tick", move |e| {
            s[num(e, "i") as usize].fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    let drain = queue.drain_shared(ring.clone()).unwrap();
    let child = spawn_child(&format!("produce {} {n} {bad_every}", t.0.display()));
    let result = child_result(child);
    let (events, bad, full) = (result("events"), result("bad"), result("full"));
    drain.catch_up(LONG).unwrap();
    queue.flush(LONG).unwrap();
    let stats = drain.stop();
    let shared = ring.stats();
    let handled = seen.iter().map(|c| c.load(Ordering::Relaxed)).sum::<u64>();
    eprintln!("{overflow:?}: {stats:?}; shared {shared:?}; full={full}");
    assert!(seen.iter().all(|c| c.load(Ordering::Relaxed) <= 1));
    assert_eq!(events, n);
    assert_eq!(shared.pushed, events + bad + shared.rejected);
    assert_eq!(shared.rejected, full);
    assert_eq!(shared.depth, 0);
    assert_eq!(
        shared.pushed,
        shared.delivered + shared.overwritten + shared.rejected
    );
    assert_eq!(
        (shared.delivered, shared.overwritten),
        (stats.claimed, stats.lost)
    );
    assert_eq!((stats.too_large, stats.dropped), (0, 0));
    assert_eq!(stats.handed_over, stats.claimed - stats.malformed);
    assert_eq!(handled, stats.handed_over);
    let q = queue.stats();
    assert_eq!((q.handled, q.ring.pushed), (handled, handled));
    assert_eq!((q.ring.overwritten, q.ring.rejected), (0, 0));
    if overflow == Overflow::Reject {
        assert_eq!((handled, stats.malformed, stats.lost), (n, bad, 0));
    } else {
        assert!(stats.malformed <= bad);
    }
}

#[test]
fn another_process_produces_reject() {
    cross_process(Overflow::Reject, 256, 20_000, 97);
}

#[test]
fn another_process_produces_overwrite() {
    cross_process(Overflow::Overwrite, 64, 50_000, 101);
}

/// A queue of 16 slots with a handler that blocks: the drain claims what
/// fits and no more; the rest waits in the shared ring, and the queue
/// overwrites nothing. Released, every event is handled once, in order.
/// `session`: the events are one session's, so they all go to one lane
/// (16 slots too), whose room bounds the claims as well.
fn full_queue(session: bool) {
    const N: u64 = 200;
    let t = TempRing::new("pressure");
    let ring = t.create(256, 64, Overflow::Reject);
    let producer = ring.mp_producer().unwrap();
    let name = if session { SESSION_START } else { "slow" };
    for i in 0..N {
        let value = i.to_string();
        producer
            .push_event(&Event::new(name).properties(&[("i", &value), (SESSION_ID, "s")]))
            .unwrap();
    }
    ring.wake();
    let queue = EventQueue::builder()
        .capacity(16)
        .workers(1)
        .claim_batch(1)
        .build()
        .unwrap();
    assert_eq!(queue.lane_capacity(), 16);
    let open = Arc::new(AtomicBool::new(false));
    let order = Arc::new(Mutex::new(Vec::new()));
    let (o, gate) = (order.clone(), open.clone());
    queue
        .on(name, move |e| {
            while !gate.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            o.lock().unwrap().push(num(e, "i"));
            Ok(())
        })
        .unwrap();
    let drain = queue.drain_shared(ring.clone()).unwrap();
    // 16 in the queue (its ring or the lane) and 1 in the worker's hands.
    wait_until("the queue to fill", || drain.stats().claimed == 17);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(drain.stats().claimed, 17, "claimed past the queue's room");
    assert_eq!(ring.stats().depth, N - 17);
    let q = queue.stats();
    assert_eq!(
        (q.ring.depth, q.ring.overwritten, q.ring.rejected),
        (16, 0, 0)
    );
    open.store(true, Ordering::Release);
    drain.catch_up(LONG).unwrap();
    queue.flush(LONG).unwrap();
    assert_eq!(*order.lock().unwrap(), (0..N).collect::<Vec<_>>());
    let stats = drain.stop();
    assert_eq!((stats.claimed, stats.handed_over, stats.dropped), (N, N, 0));
    let q = queue.stats();
    assert_eq!((q.handled, q.ring.overwritten, q.ring.rejected), (N, 0, 0));
}

#[test]
fn a_full_queue_leaves_events_in_the_shared_ring() {
    full_queue(false);
}

#[test]
fn a_full_lane_leaves_events_in_the_shared_ring() {
    full_queue(true);
}

/// Garbage pushed raw and an event larger than the queue's slots are
/// counted and skipped; the events after them are handled.
#[test]
fn malformed_and_oversized_payloads_are_skipped() {
    let t = TempRing::new("malformed");
    let ring = t.create(64, 512, Overflow::Reject);
    let producer = ring.mp_producer().unwrap();
    producer.push(b"\xff\xff garbage, not an event").unwrap();
    producer.push(b"").unwrap();
    producer
        .push_event(&Event::new("ok").properties(&[("n", "1")]))
        .unwrap();
    let big = "x".repeat(200);
    producer
        .push_event(&Event::new("ok").properties(&[("n", &big)]))
        .unwrap();
    producer
        .push_event(&Event::new("ok").properties(&[("n", "2")]))
        .unwrap();
    ring.wake();
    let queue = EventQueue::builder()
        .capacity(64)
        .slot_bytes(64)
        .workers(1)
        .build()
        .unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    queue
        .on("ok", move |e| {
            g.lock().unwrap().push(num(e, "n"));
            Ok(())
        })
        .unwrap();
    let drain = queue.drain_shared(ring.clone()).unwrap();
    drain.catch_up(LONG).unwrap();
    queue.flush(LONG).unwrap();
    assert_eq!(*got.lock().unwrap(), [1, 2]);
    let stats = drain.stop();
    assert_eq!(
        (
            stats.claimed,
            stats.handed_over,
            stats.malformed,
            stats.too_large
        ),
        (5, 2, 2, 1)
    );
    let q = queue.stats();
    assert_eq!((q.handled, q.handler_errors), (2, 0));
}

/// Stop and drop return promptly, idle or not; a drain of a queue that
/// shut down (or a shared ring closed and drained) ends by itself.
#[test]
fn stop_and_drop_end_promptly() {
    let t = TempRing::new("stop");
    let ring = t.create(64, 64, Overflow::Overwrite);
    let queue = EventQueue::builder()
        .capacity(64)
        .workers(1)
        .build()
        .unwrap();
    let drain = queue.drain_shared(ring.clone()).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let start = Instant::now();
    assert_eq!(drain.stop(), Default::default());
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let drain = queue.drain_shared(ring.clone()).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let start = Instant::now();
    drop(drain);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // The shared ring closed and drained: the drain ends by itself.
    let drain = queue.drain_shared(ring.clone()).unwrap();
    ring.mp_producer()
        .unwrap()
        .push_event(&Event::new("last"))
        .unwrap();
    ring.close();
    ring.wake();
    wait_until("the drain to end", || !drain.is_running());
    assert_eq!(drain.stats().handed_over, 1);
    assert!(matches!(
        drain.catch_up(Duration::from_secs(1)),
        Ok(()) | Err(evqueue::DispatchError::ShutDown { .. })
    ));
}

/// The queue shuts down while a producer thread keeps pushing into the
/// shared ring: the shutdown returns promptly, the drain ends by itself,
/// everything it claimed was handed over and handled, and what it did not
/// claim is still in the shared ring.
#[test]
fn queue_shutdown_while_draining_ends_promptly() {
    let t = TempRing::new("shutdown");
    let ring = t.create(1024, 64, Overflow::Overwrite);
    let queue = EventQueue::builder()
        .capacity(64)
        .workers(2)
        .build()
        .unwrap();
    let handled = Arc::new(AtomicU64::new(0));
    let h = handled.clone();
    queue.on_any(move |_| {
        h.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_micros(50));
        Ok(())
    });
    let drain = queue.drain_shared(ring.clone()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (ring, stop) = (ring.clone(), stop.clone());
        std::thread::spawn(move || {
            let p = ring.mp_producer().unwrap();
            while !stop.load(Ordering::Relaxed) {
                p.push_event(&Event::new("tick")).unwrap();
                ring.wake();
                std::thread::sleep(Duration::from_micros(20));
            }
        })
    };
    wait_until("events to flow", || handled.load(Ordering::Relaxed) > 100);
    let start = Instant::now();
    let report = queue.shutdown(Duration::from_secs(5)).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    wait_until("the drain to end", || !drain.is_running());
    stop.store(true, Ordering::Relaxed);
    producer.join().unwrap();
    let stats = drain.stop();
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.handed_over, stats.claimed);
    assert_eq!(report.pushed, stats.handed_over);
    assert_eq!(report.handled + report.left, stats.handed_over);
    assert_eq!(report.handled, handled.load(Ordering::Relaxed));
    assert!(!report.timed_out && report.lost() == 0);
    let shared = ring.stats();
    assert_eq!(shared.delivered, stats.claimed);
    assert_eq!(
        shared.pushed,
        shared.delivered + shared.overwritten + shared.depth
    );
    // A shut-down queue takes no new drain.
    assert!(matches!(
        queue.drain_shared(ring.clone()),
        Err(evqueue::DispatchError::Closed)
    ));
}

/// Dropping a full queue (its handlers behind, the drain waiting for room)
/// while the drain runs: the drop returns promptly, having handled all
/// that the drain handed over; the drain ends by itself, and the rest of
/// the events wait in the shared ring.
#[test]
fn dropping_a_full_queue_while_draining() {
    const N: u64 = 500;
    let t = TempRing::new("drop");
    let ring = t.create(512, 64, Overflow::Reject);
    let producer = ring.mp_producer().unwrap();
    for _ in 0..N {
        producer.push_event(&Event::new("tick")).unwrap();
    }
    ring.wake();
    let queue = EventQueue::builder()
        .capacity(16)
        .workers(1)
        .drop_deadline(Duration::from_secs(10))
        .build()
        .unwrap();
    let handled = Arc::new(AtomicU64::new(0));
    let h = handled.clone();
    queue.on_any(move |_| {
        std::thread::sleep(Duration::from_millis(1));
        h.fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    let drain = queue.drain_shared(ring.clone()).unwrap();
    wait_until("events to flow", || handled.load(Ordering::Relaxed) >= 50);
    let start = Instant::now();
    drop(queue);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    wait_until("the drain to end", || !drain.is_running());
    let stats = drain.stop();
    assert_eq!((stats.handed_over, stats.dropped), (stats.claimed, 0));
    assert_eq!(handled.load(Ordering::Relaxed), stats.handed_over);
    assert!(stats.claimed < N);
    assert_eq!(ring.stats().depth, N - stats.claimed);
}
