//! The worker dispatcher: routing, failures, re-entrant emit, flush,
//! shutdown, parking, live registration, subscribers, stats and bad input.
//!
//! Every wait is bounded (`wait_for`, timeouts on flush and shutdown), so a
//! bug fails a test with a message instead of hanging it. No assertion is on
//! speed; the idle test bounds CPU time used, not time taken.

use evqueue::{
    DispatchError, Error, Event, EventQueue, Failure, Overflow, Payload, RecvError,
    RecvTimeoutError, ShutdownReport, Start, SESSION_END_REASON,
};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous bound for anything that should take milliseconds.
const PATIENCE: Duration = Duration::from_secs(20);

fn small(workers: usize) -> evqueue::EventQueueBuilder {
    EventQueue::builder().capacity(1024).workers(workers)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn counter() -> Arc<AtomicU64> {
    Arc::new(AtomicU64::new(0))
}

fn balanced(r: &ShutdownReport) -> bool {
    r.pushed == r.handled + r.popped + r.overwritten + r.rejected + r.left
}

#[test]
fn routes_by_name_to_catch_all_and_session_handlers() {
    let q = small(2).build().unwrap();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let push = |tag: &'static str| {
        let log = log.clone();
        move |e: &evqueue::EventView<'_>| {
            log.lock().unwrap().push(format!("{tag}:{}", e.name));
            Ok(())
        }
    };
    q.on("purchase", push("buy")).unwrap();
    q.on("match_end", push("match")).unwrap();
    q.on_any(push("any"));
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let r = reasons.clone();
    q.on_session_start(push("start"));
    q.on_session_end(move |e| {
        r.lock()
            .unwrap()
            .push(e.properties().get("reason").unwrap_or("?").to_owned());
        Ok(())
    });

    q.emit(&Event::new("purchase")).unwrap();
    q.emit(&Event::new("match_end")).unwrap();
    q.emit(&Event::new("unrouted")).unwrap();
    q.emit_session_start(&[("user", "ada")]).unwrap();
    q.emit_session_end("timeout", &[("user", "ada")]).unwrap();
    // A second reason among the properties is refused; nothing is emitted.
    assert_eq!(
        q.emit_session_end("timeout", &[("reason", "other")]),
        Err(Error::ReservedKey {
            key: SESSION_END_REASON
        })
    );
    q.flush(PATIENCE).unwrap();

    let mut got = log.lock().unwrap().clone();
    got.sort();
    let mut want = vec![
        "buy:purchase",
        "any:purchase",
        "match:match_end",
        "any:match_end",
        "any:unrouted",
        "start:session_start",
        "any:session_start",
        "any:session_end",
    ];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(*reasons.lock().unwrap(), ["timeout"]);
    assert_eq!(q.stats().handled, 5);
}

#[test]
fn handlers_of_one_name_run_in_registration_order() {
    let q = small(1).build().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    for i in 0..4 {
        let log = log.clone();
        q.on("tick", move |e| {
            log.lock().unwrap().push((e.seq, i));
            Ok(())
        })
        .unwrap();
    }
    let l = log.clone();
    q.on_any(move |e| {
        l.lock().unwrap().push((e.seq, 99));
        Ok(())
    });
    assert_eq!(q.handler_count("tick"), 4);
    q.emit(&Event::new("tick")).unwrap();
    q.emit(&Event::new("tick")).unwrap();
    q.flush(PATIENCE).unwrap();
    let want: Vec<_> = (0..2)
        .flat_map(|s| [(s, 0), (s, 1), (s, 2), (s, 3), (s, 99)])
        .collect();
    assert_eq!(*log.lock().unwrap(), want);
}

#[test]
fn errors_and_panics_are_counted_and_workers_survive() {
    let q = small(2).build().unwrap();
    let hooked = Arc::new(Mutex::new(Vec::new()));
    let h = hooked.clone();
    q.on_error(move |e, f| {
        let what = match f {
            Failure::Error(err) => format!("error:{err}"),
            Failure::Panic(msg) => format!("panic:{msg}"),
            _ => "other".into(),
        };
        h.lock().unwrap().push(format!("{}/{what}", e.name));
    });
    q.on("ads", |_| Err("ad network down".into())).unwrap();
    q.on("crash", |e| panic!("boom {}", e.seq)).unwrap();
    q.on("crash", |_| Ok(())).unwrap(); // later handlers still run
    let ok = counter();
    let o = ok.clone();
    q.on("fine", move |_| {
        o.fetch_add(1, Relaxed);
        Ok(())
    })
    .unwrap();

    for _ in 0..10 {
        q.emit(&Event::new("ads")).unwrap();
        q.emit(&Event::new("crash")).unwrap();
    }
    q.flush(PATIENCE).unwrap();
    // Both workers are alive: more events are handled after the failures.
    for _ in 0..100 {
        q.emit(&Event::new("fine")).unwrap();
    }
    q.flush(PATIENCE).unwrap();
    assert_eq!(ok.load(Relaxed), 100);

    let stats = q.stats();
    assert_eq!((stats.handler_errors, stats.panics), (10, 10));
    assert_eq!(stats.failures_by_name["ads"].errors, 10);
    assert_eq!(stats.failures_by_name["crash"].panics, 10);
    assert!(!stats.failures_by_name.contains_key("fine"));
    let hooked = hooked.lock().unwrap();
    assert_eq!(hooked.len(), 20);
    assert!(hooked.contains(&"ads/error:ad network down".to_string()));
    assert!(hooked.iter().any(|s| s.starts_with("crash/panic:boom ")));

    let report = q.shutdown(PATIENCE).unwrap();
    assert_eq!(
        (report.errors, report.panics, report.handled),
        (10, 10, 120)
    );
}

#[test]
fn a_panicking_error_hook_is_caught_too() {
    let q = small(1).build().unwrap();
    q.on_error(|_, _| panic!("hook panics"));
    q.on("bad", |_| Err("nope".into())).unwrap();
    for _ in 0..5 {
        q.emit(&Event::new("bad")).unwrap();
    }
    q.flush(PATIENCE).unwrap();
    assert_eq!(q.stats().handler_errors, 5);
}

#[test]
fn handlers_can_emit_without_deadlock() {
    for workers in [1, 2] {
        // A chain: each "hop" emits the next until 1000, on a small ring.
        let q = EventQueue::builder()
            .capacity(64)
            .workers(workers)
            .build()
            .unwrap();
        let emitter = q.emitter();
        let last = counter();
        let l = last.clone();
        q.on("hop", move |e| {
            let n: u64 = e.properties().get("n").unwrap().parse()?;
            l.fetch_max(n, Relaxed);
            if n < 1000 {
                emitter.emit(&Event::new("hop").properties(&[("n", &(n + 1).to_string())]))?;
            }
            Ok(())
        })
        .unwrap();
        q.emit(&Event::new("hop").properties(&[("n", "1")]))
            .unwrap();
        wait_for("the emit chain", || last.load(Relaxed) == 1000);
        let report = q.shutdown(PATIENCE).unwrap();
        assert_eq!((report.handled, report.errors, report.left), (1000, 0, 0));
    }
}

#[test]
fn emit_from_a_handler_into_a_full_reject_queue_fails_fast() {
    let q = EventQueue::builder()
        .capacity(16)
        .workers(1)
        .overflow(Overflow::Reject)
        .build()
        .unwrap();
    let emitter = q.emitter();
    let full = counter();
    let f = full.clone();
    q.on("fan_out", move |_| {
        for _ in 0..100 {
            if emitter.emit(&Event::new("child")) == Err(Error::Full) {
                f.fetch_add(1, Relaxed);
            }
        }
        Ok(())
    })
    .unwrap();
    q.emit(&Event::new("fan_out")).unwrap();
    wait_for("the fan-out handler", || q.stats().handled >= 1);
    let report = q.shutdown(PATIENCE).unwrap();
    assert!(full.load(Relaxed) >= 100 - 16, "rejections were returned");
    assert_eq!(report.rejected, full.load(Relaxed));
    assert!(balanced(&report), "{report:?}");
}

#[test]
fn flush_waits_for_everything_pushed_before_it() {
    let q = small(2).build().unwrap();
    let done = counter();
    let d = done.clone();
    q.on("slow", move |_| {
        std::thread::sleep(Duration::from_millis(5));
        d.fetch_add(1, Relaxed);
        Ok(())
    })
    .unwrap();
    for _ in 0..40 {
        q.emit(&Event::new("slow")).unwrap();
    }
    q.flush(PATIENCE).unwrap();
    // Every handler *returned* before flush did: none is still running.
    assert_eq!(done.load(Relaxed), 40);
    // Flushing an idle queue returns at once.
    q.flush(Duration::ZERO).unwrap();
}

#[test]
fn flush_counts_overwritten_events_as_done() {
    let q = EventQueue::builder()
        .capacity(16)
        .workers(1)
        .build()
        .unwrap();
    let gate = Arc::new(AtomicBool::new(false));
    let g = gate.clone();
    q.on("slow", move |_| {
        while !g.load(Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    })
    .unwrap();
    for _ in 0..200 {
        q.emit(&Event::new("slow")).unwrap();
    }
    gate.store(true, Release);
    q.flush(PATIENCE).unwrap();
    let s = q.stats();
    assert!(s.ring.overwritten > 0);
    assert_eq!(s.ring.pushed, s.handled + s.ring.overwritten);
}

#[test]
fn flush_times_out_with_work_left() {
    let q = small(1).build().unwrap();
    let gate = Arc::new(AtomicBool::new(false));
    let g = gate.clone();
    q.on("blocked", move |_| {
        while !g.load(Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    })
    .unwrap();
    for _ in 0..5 {
        q.emit(&Event::new("blocked")).unwrap();
    }
    match q.flush(Duration::from_millis(50)) {
        Err(DispatchError::Timeout { left }) => assert!((1..=5).contains(&left), "left {left}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    gate.store(true, Release);
    q.flush(PATIENCE).unwrap();
}

#[test]
fn flush_or_shutdown_inside_a_handler_is_an_error() {
    let q = Arc::new(small(1).build().unwrap());
    let results = Arc::new(Mutex::new(Vec::new()));
    let (weak, r) = (Arc::downgrade(&q), results.clone());
    q.on("inner", move |_| {
        let q = weak.upgrade().ok_or("queue gone")?;
        assert!(q.is_worker_thread());
        r.lock().unwrap().push(q.flush(Duration::from_secs(1)));
        r.lock()
            .unwrap()
            .push(q.shutdown(Duration::from_secs(1)).map(|_| ()));
        Ok(())
    })
    .unwrap();
    q.emit(&Event::new("inner")).unwrap();
    q.flush(PATIENCE).unwrap();
    assert_eq!(
        *results.lock().unwrap(),
        [Err(DispatchError::InHandler), Err(DispatchError::InHandler)]
    );
    assert!(!q.is_shut_down());
    assert!(!q.is_worker_thread());
    assert!(DispatchError::InHandler
        .to_string()
        .contains("wait on itself"));
}

#[test]
fn shutdown_drains_reports_and_refuses_new_events() {
    let q = small(4).build().unwrap();
    q.on("work", |_| {
        std::thread::sleep(Duration::from_micros(200));
        Ok(())
    })
    .unwrap();
    for _ in 0..500 {
        q.emit(&Event::new("work")).unwrap();
    }
    let report = q.shutdown(PATIENCE).unwrap();
    assert_eq!(
        report,
        ShutdownReport {
            pushed: 500,
            handled: 500,
            ..ShutdownReport::default()
        }
    );
    assert_eq!(q.emit(&Event::new("late")), Err(Error::Closed));
    assert_eq!(q.emit_session_start(&[]), Err(Error::Closed));
    assert_eq!(q.emitter().emit(&Event::new("late")), Err(Error::Closed));
    assert!(q.is_shut_down());
    // Idempotent, and flush has nothing left to wait for.
    assert_eq!(q.shutdown(Duration::ZERO).unwrap(), report);
    q.flush(Duration::ZERO).unwrap();
}

#[test]
fn shutdown_deadline_expires_with_work_left() {
    let q = small(1).build().unwrap();
    q.on("slow", |_| {
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    })
    .unwrap();
    for _ in 0..200 {
        q.emit(&Event::new("slow")).unwrap();
    }
    let started = Instant::now();
    let report = q.shutdown(Duration::from_millis(100)).unwrap();
    assert!(started.elapsed() < PATIENCE);
    assert!(report.timed_out, "{report:?}");
    assert!(report.left > 0 && report.handled < 200, "{report:?}");
    assert!(balanced(&report), "{report:?}");
    assert_eq!(report.pushed, 200);
    // The events left behind will never be handled: flush says so.
    assert_eq!(
        q.flush(Duration::from_millis(10)),
        Err(DispatchError::ShutDown { left: report.left })
    );
}

#[test]
fn dropping_a_busy_queue_shuts_it_down() {
    let handled = counter();
    let h = handled.clone();
    let q = small(2)
        .drop_deadline(Duration::from_millis(100))
        .build()
        .unwrap();
    let emitter = q.emitter();
    q.on("slow", move |_| {
        std::thread::sleep(Duration::from_millis(10));
        h.fetch_add(1, Relaxed);
        Ok(())
    })
    .unwrap();
    for _ in 0..500 {
        q.emit(&Event::new("slow")).unwrap();
    }
    let started = Instant::now();
    drop(q);
    assert!(started.elapsed() < PATIENCE);
    let after_drop = handled.load(Relaxed);
    assert!(after_drop < 500, "the deadline cut the drain short");
    // The workers are joined: nothing runs after drop returned.
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(handled.load(Relaxed), after_drop);
    // An emitter that outlived the queue gets a clear error.
    assert_eq!(emitter.emit(&Event::new("late")), Err(Error::Closed));
}

#[test]
fn a_handler_holding_the_queue_does_not_leak_it() {
    let q = Arc::new(small(1).build().unwrap());
    let held = q.clone();
    q.on("self", move |_| {
        let _ = held.capacity();
        Ok(())
    })
    .unwrap();
    q.emit(&Event::new("self")).unwrap();
    q.shutdown(PATIENCE).unwrap();
    // Shutdown dropped the handlers, and with them the handler's Arc.
    assert_eq!(Arc::strong_count(&q), 1);
}

#[test]
fn parked_workers_wake_on_every_push() {
    // No spinning: every wait parks, so a lost wake-up would hang a round.
    let q = small(2).spin_for(Duration::ZERO).build().unwrap();
    let handled = counter();
    let h = handled.clone();
    q.on_any(move |_| {
        h.fetch_add(1, Relaxed);
        Ok(())
    });
    for round in 0..300u64 {
        q.emit(&Event::new("ping")).unwrap();
        wait_for("a parked worker to wake", || handled.load(Relaxed) > round);
        if round % 50 == 0 {
            std::thread::sleep(Duration::from_millis(5)); // let everyone park
        }
    }
    // And from several producers at once.
    std::thread::scope(|s| {
        for _ in 0..4 {
            let q = &q;
            s.spawn(move || {
                for _ in 0..250 {
                    q.emit(&Event::new("ping")).unwrap();
                }
            });
        }
    });
    q.flush(PATIENCE).unwrap();
    assert_eq!(handled.load(Relaxed), 1300);
}

/// CPU time (ns) of this process's threads whose name starts with `prefix`,
/// from `/proc/self/task/*/schedstat` (or `stat`, in 10 ms ticks).
fn thread_cpu_ns(prefix: &str) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").expect("procfs") {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        if let Ok(s) = std::fs::read_to_string(dir.join("schedstat")) {
            total += s.split_whitespace().next().unwrap().parse::<u64>().unwrap();
        } else {
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            let f: Vec<u64> = after
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            total += (f[11] + f[12]) * 10_000_000; // utime + stime at 100 Hz
        }
    }
    total
}

#[test]
fn eight_idle_workers_cost_no_cpu() {
    if !std::path::Path::new("/proc/self/task").exists() {
        eprintln!("no procfs: skipped");
        return;
    }
    let q = EventQueue::builder()
        .capacity(1024)
        .thread_name("idlecpu")
        .build()
        .unwrap();
    assert_eq!(q.workers(), 8);
    q.emit(&Event::new("warm_up")).unwrap();
    q.flush(PATIENCE).unwrap();
    std::thread::sleep(Duration::from_millis(50)); // past the spin phase
    let before = thread_cpu_ns("idlecpu");
    std::thread::sleep(Duration::from_millis(500));
    let used = thread_cpu_ns("idlecpu") - before;
    assert!(
        used < 50_000_000,
        "8 idle workers used {} ms of CPU in 0.5 s",
        used / 1_000_000
    );
    // Still awake to work.
    q.emit(&Event::new("after")).unwrap();
    q.flush(PATIENCE).unwrap();
    assert_eq!(q.stats().handled, 2);
}

/// Scheduler state letters (`R` runnable, `S` sleeping, ...) of this
/// process's threads whose name starts with `prefix`.
#[cfg(target_os = "linux")]
fn thread_states(prefix: &str) -> Vec<char> {
    let mut states = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("procfs") {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if let (true, Ok(stat)) = (
            comm.starts_with(prefix),
            std::fs::read_to_string(dir.join("stat")),
        ) {
            states.extend(stat[stat.rfind(')').unwrap() + 2..].chars().next());
        }
    }
    states
}

/// Everything pinned to one CPU, so every wake lands on its waker's CPU. A
/// worker woken there after a park longer than its spin parks again as soon
/// as the ring is empty (events come rarely: spinning would catch nothing);
/// woken again soon after, it spins (by yielding) as usual.
#[cfg(target_os = "linux")]
#[test]
fn a_worker_woken_on_its_wakers_cpu_spins_only_when_events_come_often() {
    // SAFETY: `set` is a plain bit set; sched_setaffinity only reads it.
    let pinned = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(usize::try_from(libc::sched_getcpu()).unwrap(), &mut set);
        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) == 0
    };
    assert!(pinned, "sched_setaffinity");
    let spin = Duration::from_millis(400);
    // Its worker inherits this thread's CPU.
    let q = small(1)
        .spin_for(spin)
        .thread_name("spinpin")
        .build()
        .unwrap();
    // The worker spins its first 400 ms away and parks for longer than that.
    std::thread::sleep(2 * spin + Duration::from_millis(100));
    q.emit(&Event::new("rare")).unwrap();
    q.flush(PATIENCE).unwrap();
    let deadline = Instant::now() + spin / 2;
    while thread_states("spinpin") != ['S'] {
        assert!(
            Instant::now() < deadline,
            "the worker is still spinning after a rare event: {:?}",
            thread_states("spinpin")
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Parked for less than its spin this time: it spins after this event.
    q.emit(&Event::new("soon_after")).unwrap();
    q.flush(PATIENCE).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(thread_states("spinpin"), ['R'], "spinning worker");
    assert_eq!(q.stats().handled, 2);
}

#[test]
fn handlers_added_and_removed_while_events_flow() {
    let q = small(4).build().unwrap();
    let stop = AtomicBool::new(false);
    let calls = counter();
    let emitted = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Relaxed) {
                    for name in ["a", "b", "c"] {
                        q.emit(&Event::new(name)).unwrap();
                        emitted.fetch_add(1, Relaxed);
                    }
                    std::thread::yield_now();
                }
            });
        }
        let deadline = Instant::now() + Duration::from_millis(300);
        let mut rounds = 0;
        while Instant::now() < deadline {
            for name in ["a", "b"] {
                let c = calls.clone();
                q.on(name, move |_| {
                    c.fetch_add(1, Relaxed);
                    Ok(())
                })
                .unwrap();
            }
            if rounds % 3 == 0 {
                let c = calls.clone();
                q.on_any(move |_| {
                    c.fetch_add(1, Relaxed);
                    Ok(())
                });
            }
            std::thread::sleep(Duration::from_millis(1));
            assert_eq!(q.remove_handlers("a"), 1);
            if rounds % 3 == 0 {
                assert_eq!(q.remove_catch_all(), 1);
            }
            assert_eq!(q.remove_handlers("b"), 1);
            rounds += 1;
        }
        stop.store(true, Relaxed);
    });
    assert_eq!(q.remove_handlers("a"), 0);
    assert_eq!(q.handler_count("b"), 0);
    let report = q.shutdown(PATIENCE).unwrap();
    assert!(calls.load(Relaxed) > 0, "handlers ran while registered");
    assert_eq!(report.errors + report.panics, 0);
    assert!(balanced(&report), "{report:?}");
    assert_eq!(report.pushed, emitted.load(Relaxed) as u64);
}

#[test]
fn overwrite_accounting_balances_under_overload() {
    let q = EventQueue::builder()
        .capacity(64)
        .workers(2)
        .build()
        .unwrap();
    q.on_any(|_| {
        std::thread::sleep(Duration::from_micros(100));
        Ok(())
    });
    std::thread::scope(|s| {
        for t in 0..3 {
            let q = &q;
            s.spawn(move || {
                let id = t.to_string();
                for _ in 0..3000 {
                    q.emit(&Event::new("spam").properties(&[("t", &id)]))
                        .unwrap();
                }
            });
        }
    });
    let report = q.shutdown(PATIENCE).unwrap();
    assert_eq!(report.pushed, 9000);
    assert!(report.overwritten > 0, "{report:?}");
    assert!(balanced(&report), "{report:?}");
}

#[test]
fn subscribers_short_and_long_poll_with_heartbeat_and_lag() {
    let q = EventQueue::builder()
        .capacity(8)
        .workers(1)
        .build()
        .unwrap();
    let mut sub = q.subscribe(Start::Now);
    assert_eq!(sub.try_recv(), Err(RecvError::Empty));
    assert_eq!(
        sub.recv_timeout(Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    );

    // Long-poll: a blocked subscriber is woken by a push from another thread.
    let emitter = q.emitter();
    let pusher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        emitter
            .emit(
                &Event::new("chat")
                    .properties(&[("text", "gg")])
                    .timestamp(7)
                    .external(true),
            )
            .unwrap();
    });
    let e = sub.recv_timeout(PATIENCE).unwrap();
    pusher.join().unwrap();
    assert_eq!(
        (
            e.name.as_str(),
            e.property("text"),
            e.timestamp,
            e.external,
            e.seq
        ),
        ("chat", Some("gg"), 7, true, 0)
    );

    // Lapped: 20 pushes (seqs 1..=20) into 8 slots keep seqs 13..=20; the
    // default headroom (an eighth of the ring) continues at 14.
    for i in 0..20 {
        q.emit(&Event::new("spam").properties(&[("i", &i.to_string())]))
            .unwrap();
    }
    assert_eq!(q.stats().subscribers[0].lag, 20);
    assert_eq!(
        sub.recv_timeout(PATIENCE),
        Err(RecvTimeoutError::Lagged(13))
    );
    assert_eq!(sub.try_recv().unwrap().property("i"), Some("13"));
    assert_eq!(
        sub.try_recv_view().unwrap().properties().get("i"),
        Some("14")
    );
    assert_eq!(sub.missed(), 13);
    let stats = q.stats();
    assert_eq!(
        (stats.subscribers[0].lag, stats.subscribers[0].missed),
        (5, 13)
    );

    // A blocking recv returns the rest, then Closed after shutdown.
    let other = q.subscribe(Start::Oldest);
    for _ in 0..5 {
        sub.recv().unwrap();
    }
    q.shutdown(PATIENCE).unwrap();
    assert_eq!(sub.recv(), Err(RecvError::Closed));
    assert_eq!(
        sub.recv_timeout(Duration::from_millis(1)),
        Err(RecvTimeoutError::Closed)
    );
    drop(other);
    assert_eq!(q.stats().subscribers.len(), 1);
}

#[test]
fn stats_render_as_prometheus_text() {
    let q = small(1).build().unwrap();
    q.on("purchase", |_| Err("declined".into())).unwrap();
    q.on("weird\"name", |_| panic!("oops")).unwrap();
    let _sub = q.subscribe(Start::Now);
    q.emit(&Event::new("purchase")).unwrap();
    q.emit(&Event::new("weird\"name")).unwrap();
    q.flush(PATIENCE).unwrap();
    let text = q.stats().to_prometheus();
    for line in [
        "# TYPE evqueue_events_pushed_total counter",
        "evqueue_events_pushed_total 2",
        "evqueue_events_handled_total 2",
        "evqueue_events_overwritten_total 0",
        "# TYPE evqueue_queue_depth gauge",
        "evqueue_queue_depth 0",
        "evqueue_queue_capacity 1024",
        "evqueue_workers 1",
        "evqueue_handler_errors_total{event=\"purchase\"} 1",
        "evqueue_handler_panics_total{event=\"weird\\\"name\"} 1",
        "evqueue_subscriber_lag{subscriber=\"0\"} 2",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let name = l.split(['{', ' ']).next().unwrap();
        assert!(name.starts_with("evqueue_"), "{l}");
        assert!(
            text.contains(&format!("# HELP {name} ")) && text.contains(&format!("# TYPE {name} ")),
            "{name} lacks HELP/TYPE"
        );
    }
}

#[test]
fn bad_input_gets_clear_errors() {
    assert_eq!(
        EventQueue::builder().workers(0).build().err(),
        Some(DispatchError::InvalidWorkers { workers: 0 })
    );
    assert_eq!(
        EventQueue::builder().workers(100_000).build().err(),
        Some(DispatchError::InvalidWorkers { workers: 100_000 })
    );
    assert_eq!(
        EventQueue::builder().capacity(0).build().err(),
        Some(DispatchError::Config(Error::InvalidCapacity {
            capacity: 0
        }))
    );
    assert_eq!(
        EventQueue::builder().slot_bytes(100).build().err(),
        Some(DispatchError::Config(Error::InvalidSlotSize {
            slot_bytes: 100
        }))
    );
    let msg = DispatchError::InvalidWorkers { workers: 0 }.to_string();
    assert!(msg.contains("worker count 0"), "{msg}");
    // Out of memory is said as such, not as a bad configuration.
    let msg = DispatchError::Config(Error::AllocationFailed { bytes: 1 << 50 }).to_string();
    assert!(msg.starts_with("could not allocate"), "{msg}");
    // std's thread spawn would panic on this name; the builder refuses it.
    let named = EventQueue::builder()
        .thread_name("bad\0name")
        .build_paused();
    assert_eq!(
        named.as_ref().err(),
        Some(&DispatchError::InvalidThreadName {
            prefix: "bad\0name".into()
        })
    );
    let msg = named.err().unwrap().to_string();
    assert!(msg.contains("NUL byte"), "{msg}");
    assert!(EventQueue::builder()
        .thread_name("bad\0name")
        .workers(1)
        .build()
        .is_err());

    let q = EventQueue::builder()
        .capacity(16)
        .slot_bytes(64)
        .workers(1)
        .build()
        .unwrap();
    assert_eq!(q.on("", |_| Ok(())), Err(Error::EmptyName));
    let long = "n".repeat(300);
    assert_eq!(
        q.on(&long, |_| Ok(())),
        Err(Error::NameTooLong { len: 300, max: 255 })
    );
    assert_eq!(q.handler_count(""), 0);
    assert_eq!(q.emit(&Event::new("")), Err(Error::EmptyName));
    let big = "v".repeat(100);
    assert!(matches!(
        q.emit(&Event::new("big").properties(&[("k", &big)])),
        Err(Error::TooLarge { max: 64, .. })
    ));
    assert_eq!(q.stats().ring.pushed, 0, "refused emits change nothing");
}

#[test]
fn dropping_the_last_handle_inside_a_handler_does_not_hang() {
    let q = Arc::new(small(2).build().unwrap());
    let emitter = q.emitter();
    let slot = Arc::new(Mutex::new(Some(q.clone())));
    let dropped = Arc::new(AtomicBool::new(false));
    let (s, d) = (slot.clone(), dropped.clone());
    q.on("last_call", move |_| {
        // Drops what may be the last handle to the queue, on its own worker:
        // the queue must not try to join the thread it runs on.
        drop(s.lock().unwrap().take());
        d.store(true, Release);
        Ok(())
    })
    .unwrap();
    drop(q);
    emitter.emit(&Event::new("last_call")).unwrap();
    wait_for("the handler to drop the queue", || dropped.load(Acquire));
    wait_for("the queue to close", || {
        emitter.emit(&Event::new("after")) == Err(Error::Closed)
    });
}

#[test]
fn pull_mode_pops_then_start_hands_the_rest_to_workers() {
    let queue = small(2).build_paused().unwrap();
    assert!(!queue.is_started());
    let handled = counter();
    let h = handled.clone();
    queue.on_any(move |_| {
        h.fetch_add(1, Relaxed);
        Ok(())
    });
    for i in 0..10u32 {
        queue
            .emit(&Event::new("tick").properties(&[("i", &i.to_string())]))
            .unwrap();
    }
    // Nothing is handled before start: the game loop drains it itself.
    let first = queue.try_pop().unwrap();
    assert_eq!(
        (first.name.as_str(), first.property("i")),
        ("tick", Some("0"))
    );
    let mut buf = vec![0u8; queue.slot_bytes()];
    let claim = queue.try_pop_into(&mut buf).unwrap();
    assert!(
        matches!(claim.payload(&buf), Ok(Payload::Event(e)) if e.properties().get("i") == Some("1"))
    );
    assert_eq!(
        queue.try_pop_into(&mut [0u8; 8]).err(),
        Some(RecvError::BufferTooSmall {
            needed: queue.slot_bytes(),
            got: 8
        })
    );
    assert_eq!(handled.load(Relaxed), 0);
    // A flush before start only waits for pops: it times out here.
    assert!(matches!(
        queue.flush(Duration::from_millis(20)),
        Err(DispatchError::Timeout { left: 8 })
    ));
    queue.start().unwrap();
    assert_eq!(queue.start(), Err(DispatchError::AlreadyStarted));
    queue.flush(PATIENCE).unwrap();
    assert_eq!(handled.load(Relaxed), 8);
    assert_eq!(queue.try_pop().err(), Some(RecvError::Empty));
    let report = queue.shutdown(PATIENCE).unwrap();
    assert_eq!((report.pushed, report.handled, report.popped), (10, 8, 2));
    assert!(balanced(&report), "{report:?}");
    assert_eq!(queue.start(), Err(DispatchError::Closed));
    assert_eq!(queue.try_pop().err(), Some(RecvError::Closed));
}

#[test]
fn a_never_started_queue_shuts_down_with_its_events_left() {
    let queue = small(1).build_paused().unwrap();
    for _ in 0..5 {
        queue.emit(&Event::new("tick")).unwrap();
    }
    queue.try_pop().unwrap();
    let report = queue.shutdown(Duration::from_millis(10)).unwrap();
    assert_eq!((report.handled, report.popped, report.left), (0, 1, 4));
    assert!(balanced(&report), "{report:?}");
    // What is left can still be drained by hand.
    assert_eq!(queue.try_pop().unwrap().name, "tick");
}

#[test]
fn batch_claims_wrap_each_batch_and_keep_the_books() {
    let batches = counter();
    let handled = counter();
    let b = batches.clone();
    let queue = small(2)
        .claim_batch(64)
        .around_batch(move |run| {
            b.fetch_add(1, Relaxed);
            run();
            run(); // a second call does nothing
        })
        .build_paused()
        .unwrap();
    let h = handled.clone();
    queue
        .on("tick", move |_| {
            h.fetch_add(1, Relaxed);
            Ok(())
        })
        .unwrap();
    for _ in 0..1000 {
        queue.emit(&Event::new("tick")).unwrap();
    }
    queue.start().unwrap();
    queue.flush(PATIENCE).unwrap();
    assert_eq!(handled.load(Relaxed), 1000);
    let n = batches.load(Relaxed);
    assert!(
        (16..1000).contains(&n),
        "1000 events in {n} batches of at most 64"
    );
    let report = queue.shutdown(PATIENCE).unwrap();
    assert!(balanced(&report) && report.handled == 1000, "{report:?}");
}

#[test]
fn a_batch_wrapper_that_skips_or_panics_still_gets_its_batch_handled() {
    let calls = counter();
    let handled = counter();
    let c = calls.clone();
    let queue = small(1)
        .claim_batch(8)
        .around_batch(move |run| {
            match c.fetch_add(1, Relaxed) % 3 {
                0 => run(),
                1 => {}                          // forgets to run
                _ => panic!("wrapper panicked"), // before running
            }
        })
        .build()
        .unwrap();
    let h = handled.clone();
    queue.on_any(move |_| {
        h.fetch_add(1, Relaxed);
        Ok(())
    });
    for _ in 0..50 {
        queue.emit(&Event::new("tick")).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    queue.flush(PATIENCE).unwrap();
    assert_eq!(handled.load(Relaxed), 50);
    assert!(
        calls.load(Relaxed) >= 3,
        "every path of the wrapper was taken"
    );
}

#[test]
fn raw_payloads_go_to_raw_handlers_and_subscribers_that_ask_for_them() {
    let queue = small(1).slot_bytes(64).build().unwrap();
    let mut stream = queue.subscribe(Start::Now);
    let sum = counter();
    let s = sum.clone();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let f = failures.clone();
    queue.on_error(move |event, _| f.lock().unwrap().push((event.name.to_owned(), event.seq)));
    queue.on_raw(move |raw| {
        let v = u64::from_le_bytes(raw.bytes.try_into()?);
        s.fetch_add(v, Relaxed);
        Ok(())
    });
    let named = counter();
    let n = named.clone();
    queue.on_any(move |_| {
        n.fetch_add(1, Relaxed);
        Ok(())
    });
    queue.emit_raw(&7u64.to_le_bytes(), 99).unwrap();
    queue.emit(&Event::new("tick")).unwrap();
    let bad = queue.emit_raw(&[1, 2, 3], 0).unwrap(); // not 8 bytes: the handler fails
    assert_eq!(
        queue.emit_raw(&[0u8; 53], 0),
        Err(Error::TooLarge { size: 53, max: 52 })
    );
    queue.flush(PATIENCE).unwrap();
    assert_eq!((sum.load(Relaxed), named.load(Relaxed)), (7, 1));
    assert_eq!(*failures.lock().unwrap(), [("<raw>".to_owned(), bad)]);
    assert_eq!(queue.stats().failures_by_name["<raw>"].errors, 1);

    // Subscribers: the payload API sees raw payloads, the event API skips them.
    match stream.try_recv_payload().unwrap() {
        Payload::Raw(raw) => assert_eq!((raw.timestamp, raw.bytes), (99, &7u64.to_le_bytes()[..])),
        other => panic!("expected a raw payload, got {other:?}"),
    }
    assert_eq!(stream.try_recv().unwrap().name, "tick");
    assert_eq!(
        stream.try_recv().err(),
        Some(RecvError::Empty),
        "the last raw payload is skipped"
    );
    queue.emit_raw(&[9], 0).unwrap();
    assert!(matches!(
        stream.recv_payload_timeout(PATIENCE),
        Ok(Payload::Raw(raw)) if raw.bytes == [9]
    ));
    assert_eq!(
        stream.recv_payload_timeout(Duration::from_millis(5)).err(),
        Some(RecvTimeoutError::Timeout)
    );
    assert_eq!(queue.remove_raw_handlers(), 1);
}

#[test]
fn claim_batch_out_of_range_is_refused() {
    for batch in [0, evqueue::EventQueueBuilder::MAX_CLAIM_BATCH + 1] {
        assert_eq!(
            small(1).claim_batch(batch).build().err(),
            Some(DispatchError::InvalidBatch { batch })
        );
    }
}

#[test]
fn unbounded_timeouts_wait_instead_of_overflowing() {
    let queue = small(1).build().unwrap();
    let mut stream = queue.subscribe(Start::Now);
    queue.emit(&Event::new("tick")).unwrap();
    queue.flush(Duration::MAX).unwrap();
    assert_eq!(stream.recv_timeout(Duration::MAX).unwrap().name, "tick");
    let report = queue.shutdown(Duration::MAX).unwrap();
    assert_eq!((report.handled, report.timed_out), (1, false));
}

/// Shutdown racing pushes in flight: the shutdown's wake-up can come before
/// the last push commits, and that push wakes only one parked worker. The
/// others must still see the ring closed and exit, well before the deadline
/// (a lost wake-up here left a worker parked until the deadline: about one
/// round in seven hit it before the fix).
#[test]
fn shutdown_racing_pushes_wakes_every_worker() {
    for round in 0..40u64 {
        let q = Arc::new(
            EventQueue::builder()
                .capacity(64)
                .slot_bytes(64)
                .workers(2)
                .build()
                .unwrap(),
        );
        q.on_any(|_| Ok(()));
        let pushers: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                std::thread::spawn(move || while q.emit(&Event::new("e")) != Err(Error::Closed) {})
            })
            .collect();
        std::thread::sleep(Duration::from_micros(500 + 500 * (round % 8)));
        let report = q.shutdown(Duration::from_secs(3)).unwrap();
        for p in pushers {
            p.join().unwrap();
        }
        assert!(!report.timed_out, "round {round}: {report:?}");
        assert_eq!(report.left, 0, "round {round}: {report:?}");
    }
}

/// Event names can come from clients (`emit_json`), so the per-name failure
/// counts are bounded: past `MAX_FAILURE_NAMES` names, new ones share one
/// entry, and the totals still count everything.
#[test]
fn failure_counts_per_name_are_bounded() {
    let q = EventQueue::builder()
        .capacity(4096)
        .workers(2)
        .build()
        .unwrap();
    q.on_any(|_| Err("refused".into()));
    let names = evqueue::MAX_FAILURE_NAMES + 10;
    for i in 0..names {
        q.emit(&Event::new(&format!("client_{i}"))).unwrap();
    }
    q.flush(PATIENCE).unwrap();
    let stats = q.stats();
    assert_eq!(stats.handler_errors, names as u64);
    assert_eq!(stats.failures_by_name.len(), evqueue::MAX_FAILURE_NAMES + 1);
    assert_eq!(
        stats.failures_by_name[evqueue::OTHER_FAILURE_NAMES].errors,
        (names - evqueue::MAX_FAILURE_NAMES) as u64
    );
    let counted: u64 = stats.failures_by_name.values().map(|f| f.errors).sum();
    assert_eq!(counted, names as u64);
}

/// The nice value of the calling thread, from `/proc/thread-self/stat`.
#[cfg(target_os = "linux")]
fn thread_nice() -> i64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // Fields after the command name (which may hold spaces): state is the
    // first, nice the 17th.
    let after = &stat[stat.rfind(')').unwrap() + 1..];
    after.split_whitespace().nth(16).unwrap().parse().unwrap()
}

/// Workers run `worker_nice` levels below the thread that started them
/// (default 5), the start hook runs on each worker before any event, and a
/// nice out of range is refused.
#[cfg(target_os = "linux")]
#[test]
fn workers_run_below_the_emitting_threads_priority() {
    let base = thread_nice();
    for (levels, expected) in [(None, (base + 5).min(19)), (Some(0), base), (Some(39), 19)] {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, h) = (seen.clone(), seen.clone());
        let mut builder =
            small(2).on_worker_start(move |i| s.lock().unwrap().push((i, thread_nice())));
        if let Some(levels) = levels {
            builder = builder.worker_nice(levels);
        }
        let q = builder.build().unwrap();
        q.on_any(move |_| {
            h.lock().unwrap().push((99, thread_nice()));
            Ok(())
        });
        q.emit(&Event::new("tick")).unwrap();
        q.flush(PATIENCE).unwrap();
        q.shutdown(PATIENCE).unwrap();
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(
            seen,
            [(0, expected), (1, expected), (99, expected)],
            "{levels:?}"
        );
    }
    assert_eq!(
        thread_nice(),
        base,
        "the emitting thread keeps its priority"
    );
    assert_eq!(
        small(1).worker_nice(40).build().err(),
        Some(DispatchError::InvalidNice { levels: 40 })
    );
}

/// A panicking start hook is counted as a panic and the worker runs on.
#[test]
fn a_panicking_worker_start_hook_is_counted_and_survived() {
    let q = small(1)
        .on_worker_start(|_| panic!("no pinning here"))
        .build()
        .unwrap();
    let handled = Arc::new(AtomicU64::new(0));
    let h = handled.clone();
    q.on_any(move |_| {
        h.fetch_add(1, Relaxed);
        Ok(())
    });
    q.emit(&Event::new("tick")).unwrap();
    q.flush(PATIENCE).unwrap();
    assert_eq!(handled.load(Relaxed), 1);
    assert_eq!(q.stats().panics, 1);
}

/// The final report counts only pushes that were accepted. Four threads
/// emit until they get `Closed` while `shutdown` races them, on a ring
/// small enough that producers lap each other. A ticket lapped before its
/// producer wrote it used to be retried under a new ticket, and the retry
/// could find the ring closed: that push returned `Closed` but the report
/// counted it (in about 80 of 200 rounds). Now a lapped ticket is an
/// accepted push that was overwritten, counted once.
#[test]
fn the_shutdown_report_counts_only_accepted_pushes() {
    let mut wrong = Vec::new();
    for round in 0..200u64 {
        let q = Arc::new(
            EventQueue::builder()
                .capacity(4)
                .slot_bytes(64)
                .workers(1)
                .build()
                .unwrap(),
        );
        q.on_any(|_| Ok(()));
        let start = Arc::new(std::sync::Barrier::new(5));
        let pushers: Vec<_> = (0..4)
            .map(|_| {
                let (q, start) = (q.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let mut ok = 0u64;
                    loop {
                        match q.emit(&Event::new("e")) {
                            Ok(_) => ok += 1,
                            Err(Error::Closed) => return ok,
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        start.wait();
        std::thread::sleep(Duration::from_micros(200 + 100 * (round % 8)));
        let report = q.shutdown(Duration::from_secs(2)).unwrap();
        let ok: u64 = pushers.into_iter().map(|p| p.join().unwrap()).sum();
        assert!(balanced(&report), "round {round}: {report:?}");
        if report.pushed != ok {
            wrong.push((round, ok, report));
        }
        let again = q.shutdown(Duration::from_secs(2)).unwrap();
        assert_eq!(again, report, "round {round}: the report is final");
    }
    assert!(
        wrong.is_empty(),
        "{} of 200 rounds reported pushes that returned Closed: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(3)]
    );
}

/// The snapshot's identity in one place, with `lost()`.
/// Overwrite and Reject queues, pull mode and workers: at quiescence
/// `pushed = handled + popped + lost() + depth`, `lost() = overwritten +
/// rejected`, on the queue's stats, the ring's and the shutdown report.
#[test]
fn stats_keep_their_identity_with_lost() {
    // 20 pushes into 8 slots, one pop. Overwrite: 12 overwritten, and the
    // pop, lapped, skips one more (the default headroom); Reject: 12 refused.
    for (overflow, depth, lost) in [(Overflow::Overwrite, 6, 13), (Overflow::Reject, 7, 12)] {
        let q = EventQueue::builder()
            .capacity(8)
            .workers(1)
            .overflow(overflow)
            .build_paused()
            .unwrap();
        let mut refused = 0;
        for _ in 0..20 {
            if q.emit(&Event::new("tick")) == Err(Error::Full) {
                refused += 1;
            }
        }
        q.try_pop().unwrap();
        let s = q.stats();
        assert_eq!(s.lost(), s.ring.overwritten + s.ring.rejected);
        assert_eq!(s.ring.lost(), s.lost());
        assert_eq!(s.ring.rejected, refused);
        assert_eq!((s.ring.pushed, s.ring.depth, s.popped), (20, depth, 1));
        assert_eq!(s.lost(), lost, "{overflow:?}: {s:?}");
        assert_eq!(
            s.ring.pushed,
            s.handled + s.popped + s.lost() + s.ring.depth
        );
        assert_eq!(
            s.ring.pushed,
            s.ring.delivered + s.ring.lost() + s.ring.depth
        );

        let handled = counter();
        let h = handled.clone();
        q.on_any(move |_| {
            h.fetch_add(1, Relaxed);
            Ok(())
        });
        q.start().unwrap();
        q.flush(PATIENCE).unwrap();
        let s = q.stats();
        assert_eq!((s.handled, s.ring.depth), (depth, 0));
        assert_eq!(
            s.ring.pushed,
            s.handled + s.popped + s.lost() + s.ring.depth
        );
        let r = q.shutdown(PATIENCE).unwrap();
        assert_eq!(r.lost(), r.overwritten + r.rejected);
        assert_eq!((r.pushed, r.lost()), (20, lost));
        assert_eq!(r.pushed, r.handled + r.popped + r.lost() + r.left);
        assert_eq!(handled.load(Relaxed), depth);
    }
}

/// Timestamp 0 means "stamp it at push", with the clock
/// `now_nanos` reads; a given timestamp is kept.
#[test]
fn timestamp_zero_is_stamped_at_push_with_now_nanos() {
    let q = small(1).build_paused().unwrap();
    let before = evqueue::now_nanos();
    q.emit(&Event::new("stamped")).unwrap();
    let after = evqueue::now_nanos();
    q.emit(&Event::new("given").timestamp(7)).unwrap();
    let stamped = q.try_pop().unwrap();
    assert!(
        before <= stamped.timestamp && stamped.timestamp <= after,
        "{before} <= {} <= {after}",
        stamped.timestamp
    );
    assert!(before > 1_600_000_000_000_000_000);
    assert_eq!(q.try_pop().unwrap().timestamp, 7);
}

/// 40 events into 16 slots (24..40 retained, headroom 16 / 8 = 2): where
/// the worker group (pull mode here) and a subscriber continue, for each lag
/// policy, and that every event passed over is counted.
#[test]
fn lag_policy_of_the_workers_and_of_a_subscriber() {
    use evqueue::Lag;
    let number = |e: &evqueue::OwnedEvent| -> u64 { e.property("i").unwrap().parse().unwrap() };
    for (lag, first) in [(Lag::Oldest, 24), (Lag::Headroom, 26), (Lag::Newest, 39)] {
        let queue = EventQueue::builder()
            .capacity(16)
            .workers(1)
            .lanes(1)
            .lag(lag)
            .build_paused()
            .unwrap();
        let mut sub = queue.subscribe(Start::Now).with_lag(lag);
        for i in 0..40u64 {
            let i = i.to_string();
            queue
                .emit(&Event::new("tick").properties(&[("i", i.as_str())]))
                .unwrap();
        }
        assert_eq!(number(&queue.try_pop().unwrap()), first, "{lag:?}");
        assert_eq!(queue.stats().ring.overwritten, first, "{lag:?}");
        assert_eq!(sub.try_recv(), Err(RecvError::Lagged(first)), "{lag:?}");
        assert_eq!(number(&sub.try_recv().unwrap()), first, "{lag:?}");
        // Changing it later takes effect at the next lap.
        sub.set_lag(Lag::Oldest);
        for i in 40..80u64 {
            let i = i.to_string();
            queue
                .emit(&Event::new("tick").properties(&[("i", i.as_str())]))
                .unwrap();
        }
        assert_eq!(
            sub.try_recv(),
            Err(RecvError::Lagged(64 - first - 1)),
            "{lag:?}"
        );
        assert_eq!(number(&sub.try_recv().unwrap()), 64, "{lag:?}");
    }
}

/// A shutdown whose deadline passes while a worker holds a claimed batch of
/// slow events: the worker stops at the next event, and what it claimed but
/// did not handle is reported as left (the books still balance), instead of
/// the deadline being overrun by the whole batch.
#[test]
fn a_shutdown_deadline_stops_a_worker_mid_batch() {
    let handled = counter();
    let queue = small(1).claim_batch(32).build().unwrap();
    let h = handled.clone();
    queue.on_any(move |_| {
        std::thread::sleep(Duration::from_millis(20));
        h.fetch_add(1, SeqCst);
        Ok(())
    });
    // One event first, so that the worker's next claim takes the backlog.
    queue.emit(&Event::new("first")).unwrap();
    wait_for("the first event", || handled.load(SeqCst) == 1);
    for _ in 0..20 {
        queue.emit(&Event::new("slow")).unwrap();
    }
    wait_for("the batch to start", || handled.load(SeqCst) >= 2);
    let report = queue.shutdown(Duration::from_millis(30)).unwrap();
    assert!(report.timed_out, "{report:?}");
    assert!(
        report.left > 0,
        "a batch of 20 ms events finished: {report:?}"
    );
    assert!(balanced(&report), "{report:?}");
    assert_eq!(report.handled, handled.load(SeqCst), "{report:?}");
    // Those events will never be handled: a flush says so, with the count.
    assert_eq!(
        queue.flush(Duration::from_millis(10)),
        Err(DispatchError::ShutDown { left: report.left })
    );
}
