//! Ordered keys: what a key costs the dispatcher and the emitting thread,
//! and what one slow key does to the others. Not criterion: rounds
//! interleave keyed and unkeyed runs so each ratio compares runs on the
//! same machine moments apart; ratios are reported as median [min, max]
//! over the rounds.
//!
//! - `dispatch`: 8 workers with a no-op handler; one thread emits
//!   [`events`] events, then flushes; events handled per second, keyed
//!   (1000 keys, cycling) against unkeyed. Goal: keyed >= 0.8x unkeyed.
//! - `emit`: ns per emit into a queue whose workers never started (the push
//!   alone, the lanes overwriting like the main ring), bursts of [`BURST`]:
//!   `emit_keyed` against `emit`. Goal: keyed <= 1.1x.
//! - `slow_key`: 8 workers; 1000 fast keys (no-op) and one slow key whose
//!   handler sleeps 10 ms, [`SLOW_EVENTS`] of them spread through the run.
//!   Reported: throughput of the fast keys in other lanes against a run
//!   without the slow key, and how long the fast keys that share the slow
//!   key's lane took to finish (they wait behind it: head-of-line blocking).
//!
//! Output: lines on stdout and `bench-extra/keyed.csv`. `cargo test -p
//! benches --bench keyed` runs every row once, briefly.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::{by_mode, env_count, match_end, median_range, merge_extra};
use evqueue::lane::lane_of;
use evqueue::{Event, EventQueue};

/// Emits per timed burst (`emit`).
const BURST: usize = 1000;
/// Fast keys.
const KEYS: usize = 1000;
/// Slow events per `slow_key` run (10 ms each).
const SLOW_EVENTS: usize = 20;

fn events() -> usize {
    by_mode(400_000, 2_000)
}

fn keys() -> Vec<String> {
    (0..KEYS).map(|k| format!("player-{k}")).collect()
}

/// Events per second: one thread emits `n` events, then flushes.
fn dispatch(keyed: bool, keys: &[String]) -> f64 {
    let queue = EventQueue::builder()
        .capacity(1 << 20)
        .workers(8)
        .build()
        .unwrap();
    queue.on("match_end", |_| Ok(())).unwrap();
    let n = events();
    let e = match_end();
    // Warm-up: wake the workers, fault the pages in.
    for i in 0..1000 {
        if keyed {
            queue.emit_keyed(&e, &keys[i % KEYS]).unwrap();
        } else {
            queue.emit(&e).unwrap();
        }
    }
    queue.flush(Duration::from_secs(60)).unwrap();
    let start = Instant::now();
    for i in 0..n {
        if keyed {
            queue.emit_keyed(&e, &keys[i % KEYS]).unwrap();
        } else {
            queue.emit(&e).unwrap();
        }
    }
    queue.flush(Duration::from_secs(120)).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let s = queue.stats();
    assert_eq!(
        s.lost(),
        0,
        "dispatch lost events: the rates would be wrong"
    );
    n as f64 / secs
}

/// ns per emit, workers never started.
fn emit_ns(keyed: bool, keys: &[String]) -> f64 {
    let queue = EventQueue::builder()
        .capacity(1 << 16)
        .workers(8)
        .build_paused()
        .unwrap();
    let e = match_end();
    let bursts = by_mode(200, 2);
    let mut best = f64::MAX;
    let mut k = 0;
    for _ in 0..bursts {
        let start = Instant::now();
        for _ in 0..BURST {
            let r = if keyed {
                k = (k + 1) % KEYS;
                queue.emit_keyed(&e, &keys[k])
            } else {
                queue.emit(&e)
            };
            black_box(r.unwrap());
        }
        // Median-free: the best burst is the cost without preemption.
        best = best.min(start.elapsed().as_nanos() as f64 / BURST as f64);
    }
    best
}

struct SlowRun {
    /// Fast events in other lanes than the slow key's, per second.
    other_lanes_rate: f64,
    /// Seconds until the fast keys sharing the slow key's lane were done.
    same_lane_secs: f64,
}

fn slow_key(with_slow: bool, keys: &[String]) -> SlowRun {
    let queue = EventQueue::builder()
        .capacity(1 << 20)
        .workers(8)
        .build()
        .unwrap();
    let lanes = queue.lanes();
    let slow_lane = lane_of(b"slow-key", lanes);
    let same_lane: Vec<bool> = keys
        .iter()
        .map(|k| lane_of(k.as_bytes(), lanes) == slow_lane)
        .collect();
    let other_done = Arc::new(AtomicU64::new(0));
    let same_done = Arc::new(AtomicU64::new(0));
    let (o, s) = (other_done.clone(), same_done.clone());
    queue
        .on("fast", move |e| {
            if e.properties().get("same") == Some("1") {
                s.fetch_add(1, Relaxed);
            } else {
                o.fetch_add(1, Relaxed);
            }
            Ok(())
        })
        .unwrap();
    queue
        .on("slow", |_| {
            std::thread::sleep(Duration::from_millis(10));
            Ok(())
        })
        .unwrap();
    let n = events() / 2;
    let slow_every = n / SLOW_EVENTS;
    let (mut want_other, mut want_same) = (0u64, 0u64);
    let yes = [("same", "1")];
    let no = [("same", "0")];
    let start = Instant::now();
    for i in 0..n {
        if with_slow && i % slow_every == 0 {
            queue.emit_keyed(&Event::new("slow"), "slow-key").unwrap();
        }
        let k = i % KEYS;
        let props: &[(&str, &str)] = if same_lane[k] { &yes } else { &no };
        if same_lane[k] {
            want_same += 1;
        } else {
            want_other += 1;
        }
        queue
            .emit_keyed(&Event::new("fast").properties(props), &keys[k])
            .unwrap();
    }
    let mut other_secs = None;
    let mut same_secs = None;
    let deadline = start + Duration::from_secs(120);
    while other_secs.is_none() || same_secs.is_none() {
        assert!(Instant::now() < deadline, "slow_key run did not finish");
        if other_secs.is_none() && other_done.load(Relaxed) >= want_other {
            other_secs = Some(start.elapsed().as_secs_f64());
        }
        if same_secs.is_none() && same_done.load(Relaxed) >= want_same {
            same_secs = Some(start.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(queue.stats().lost(), 0);
    SlowRun {
        other_lanes_rate: want_other as f64 / other_secs.unwrap(),
        same_lane_secs: same_secs.unwrap(),
    }
}

fn main() {
    let keys = keys();
    let rounds = env_count("KEYED_ROUNDS", 7, 1);
    let mut dispatch_ratio = Vec::new();
    let mut emit_ratio = Vec::new();
    let mut slow_ratio = Vec::new();
    let mut same_lane_secs = Vec::new();
    let mut csv = Vec::new();
    for round in 0..rounds {
        // Alternate which goes first, so neither always runs on a warmer machine.
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        let mut rate = [0.0; 2];
        let mut ns = [0.0; 2];
        for keyed in order {
            rate[keyed as usize] = dispatch(keyed, &keys);
            ns[keyed as usize] = emit_ns(keyed, &keys);
        }
        let mut slow = [None, None];
        for with_slow in order {
            slow[with_slow as usize] = Some(slow_key(with_slow, &keys));
        }
        let [base, with] = slow.map(Option::unwrap);
        println!(
            "round {round}: dispatch unkeyed {:.2} M/s keyed {:.2} M/s ({:.2}x); emit unkeyed {:.1} ns keyed {:.1} ns ({:.2}x); \
             slow key: other lanes {:.2} M/s vs {:.2} M/s without ({:.2}x), its lane's fast keys done after {:.3} s (vs {:.3} s)",
            rate[0] / 1e6,
            rate[1] / 1e6,
            rate[1] / rate[0],
            ns[0],
            ns[1],
            ns[1] / ns[0],
            with.other_lanes_rate / 1e6,
            base.other_lanes_rate / 1e6,
            with.other_lanes_rate / base.other_lanes_rate,
            with.same_lane_secs,
            base.same_lane_secs,
        );
        csv.push(format!(
            "{round},{:.0},{:.0},{:.2},{:.2},{:.0},{:.0},{:.4},{:.4}",
            rate[0],
            rate[1],
            ns[0],
            ns[1],
            base.other_lanes_rate,
            with.other_lanes_rate,
            base.same_lane_secs,
            with.same_lane_secs
        ));
        dispatch_ratio.push(rate[1] / rate[0]);
        emit_ratio.push(ns[1] / ns[0]);
        slow_ratio.push(with.other_lanes_rate / base.other_lanes_rate);
        same_lane_secs.push(with.same_lane_secs);
    }
    let (m, lo, hi) = median_range(&mut dispatch_ratio);
    println!("dispatch keyed/unkeyed: {m:.2}x [{lo:.2}, {hi:.2}] (goal >= 0.8)");
    let (m, lo, hi) = median_range(&mut emit_ratio);
    println!("emit keyed/unkeyed: {m:.2}x [{lo:.2}, {hi:.2}] (goal <= 1.1)");
    let (m, lo, hi) = median_range(&mut slow_ratio);
    println!("slow key: other lanes' throughput {m:.2}x [{lo:.2}, {hi:.2}] of a run without it");
    let (m, lo, hi) = median_range(&mut same_lane_secs);
    println!(
        "slow key: fast keys sharing its lane done after {m:.3} s [{lo:.3}, {hi:.3}] ({SLOW_EVENTS} x 10 ms slow events)"
    );
    merge_extra(
        "keyed.csv",
        "round,dispatch_unkeyed_per_s,dispatch_keyed_per_s,emit_unkeyed_ns,emit_keyed_ns,\
         slow_absent_other_per_s,slow_present_other_per_s,slow_absent_same_lane_s,slow_present_same_lane_s",
        1,
        &csv,
    );
}
