//! The dispatcher under the load it exists for: what an emit costs the
//! player's request thread while the workers run, and what happens to that
//! thread when handlers fall behind. Not criterion: rounds interleave the
//! configurations so each ratio compares runs on the same machine.
//!
//! - `emit/<state>`: ns per `emit` of the same event (`match_end`, two
//!   properties, a timestamp), in bursts of [`BURST`] emits timed as a
//!   whole:
//!   - `never_started`: a queue built paused, its workers never started
//!     (the push alone);
//!   - `busy`: 8 workers with a no-op handler, draining as the bursts come;
//!   - `parked`: 8 workers parked (2 ms idle before each burst, well past
//!     the 50 µs spin), so the burst's first emit wakes one;
//!   - `parked_single`: one emit after 2 ms idle, timed alone: the wake
//!     (a futex syscall) on the emitting thread.
//! - `overload/<producers>p`: 8 workers whose handler spins 2 µs, producers
//!   emitting as fast as they can for [`OVERLOAD_SECS`]; every emit of the
//!   first producer is timed: p50, p99, p99.9 and the maximum, and events
//!   handled per second.
//! - `overload/0p` (`floor`): the same timing loop with no queue and nothing
//!   else running: its maximum is what the machine alone does to a thread.
//!
//! Each row runs for three configurations: `default` (workers 5 nice levels
//! below the emitting thread, claim batches of up to 32), `nice0` (the same
//! at the emitting thread's priority) and `flat` (nice 0, one event per
//! claim: the dispatcher as it was configured before).
//! Output: lines on stdout and `bench-extra/emit_load.csv`. `cargo test -p
//! benches --bench emit_load` runs every row once, briefly.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::{bench_mode, by_mode, env_count, match_end, merge_extra, quantile};
use evqueue::{EventQueue, EventQueueBuilder};

/// Emits per timed burst.
const BURST: usize = 1000;
/// Seconds each overload run lasts (bench mode).
const OVERLOAD_SECS: f64 = 2.0;

#[derive(Clone, Copy, Debug)]
enum Config {
    Default,
    Nice0,
    Flat,
}

const CONFIGS: [Config; 3] = [Config::Default, Config::Nice0, Config::Flat];

impl Config {
    fn name(self) -> &'static str {
        match self {
            Config::Default => "default",
            Config::Nice0 => "nice0",
            Config::Flat => "flat",
        }
    }

    fn builder(self) -> EventQueueBuilder {
        let b = EventQueue::builder().workers(8);
        match self {
            Config::Default => b,
            Config::Nice0 => b.worker_nice(0),
            Config::Flat => b.worker_nice(0).claim_batch(1),
        }
    }
}

/// Mean ns per emit over `bursts` bursts, with `idle` before each burst.
fn emit_bursts(queue: &EventQueue, bursts: usize, idle: Duration) -> f64 {
    let e = match_end();
    let mut total = Duration::ZERO;
    for _ in 0..bursts {
        if !idle.is_zero() {
            std::thread::sleep(idle);
        }
        let start = Instant::now();
        for _ in 0..BURST {
            black_box(queue.emit(black_box(&e)).expect("emit"));
        }
        total += start.elapsed();
    }
    total.as_nanos() as f64 / (bursts * BURST) as f64
}

/// Median ns of single emits, each after `idle`.
fn emit_singles(queue: &EventQueue, n: usize, idle: Duration) -> f64 {
    let e = match_end();
    let mut samples: Vec<u64> = (0..n)
        .map(|_| {
            std::thread::sleep(idle);
            let start = Instant::now();
            black_box(queue.emit(black_box(&e)).expect("emit"));
            start.elapsed().as_nanos() as u64
        })
        .collect();
    samples.sort_unstable();
    quantile(&samples, 0.5) as f64
}

fn started(config: Config) -> EventQueue {
    let q = config.builder().build().expect("queue");
    q.on_any(|_| Ok(()));
    q
}

/// `(state, ns per emit)` rows for one configuration.
fn emit_rows(config: Config) -> Vec<(String, f64)> {
    let (bursts, singles) = by_mode((200, 200), (10, 4));
    let mut rows = Vec::new();
    let paused = config.builder().build_paused().expect("queue");
    rows.push((
        "never_started".into(),
        emit_bursts(&paused, bursts, Duration::ZERO),
    ));
    drop(paused);
    let q = started(config);
    rows.push(("busy".into(), emit_bursts(&q, bursts, Duration::ZERO)));
    let idle = Duration::from_millis(2);
    rows.push(("parked".into(), emit_bursts(&q, bursts / 10, idle)));
    rows.push(("parked_single".into(), emit_singles(&q, singles / 4, idle)));
    q.shutdown(Duration::from_secs(30)).expect("shutdown");
    rows
}

struct Overload {
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
    handled_per_sec: f64,
}

/// 8 workers with a 2 µs handler, `producers` threads emitting flat out
/// for `secs`; the first producer times every emit.
fn overload(config: Config, producers: usize, secs: f64) -> Overload {
    let q = Arc::new(config.builder().build().expect("queue"));
    q.on_any(|_| {
        let until = Instant::now() + Duration::from_micros(2);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        Ok(())
    });
    let stop = AtomicBool::new(false);
    let before = q.stats().handled;
    let start = Instant::now();
    let mut samples = std::thread::scope(|s| {
        for _ in 1..producers {
            let q = &q;
            let stop = &stop;
            s.spawn(move || {
                let e = match_end();
                while !stop.load(Relaxed) {
                    black_box(q.emit(&e).expect("emit"));
                }
            });
        }
        let e = match_end();
        let mut samples = Vec::with_capacity(1 << 22);
        while start.elapsed().as_secs_f64() < secs {
            for _ in 0..256 {
                let t = Instant::now();
                black_box(q.emit(black_box(&e)).expect("emit"));
                samples.push(t.elapsed().as_nanos() as u64);
            }
        }
        stop.store(true, Relaxed);
        samples
    });
    let elapsed = start.elapsed().as_secs_f64();
    let handled = q.stats().handled - before;
    q.shutdown(Duration::from_secs(30)).expect("shutdown");
    samples.sort_unstable();
    Overload {
        p50: quantile(&samples, 0.5),
        p99: quantile(&samples, 0.99),
        p999: quantile(&samples, 0.999),
        max: *samples.last().expect("samples"),
        handled_per_sec: handled as f64 / elapsed,
    }
}

/// The worst the machine itself does to a thread: the overload row's timing
/// loop with no queue and nothing else running, for `secs`. Its maximum is
/// the floor under the overload rows' maximum (the hypervisor and the
/// kernel's own work stall a lone thread too).
fn floor_max_ns(secs: f64) -> u64 {
    let start = Instant::now();
    let mut max = 0;
    while start.elapsed().as_secs_f64() < secs {
        for _ in 0..256 {
            let t = Instant::now();
            black_box(());
            max = max.max(t.elapsed().as_nanos() as u64);
        }
    }
    max
}

fn main() {
    let secs = by_mode(OVERLOAD_SECS, 0.05);
    let mut csv = Vec::new();
    for round in 0..env_count("EMIT_ROUNDS", 5, 1) {
        for config in CONFIGS {
            for (state, ns) in emit_rows(config) {
                println!(
                    "round {round} {:<8} emit/{state:<14} {ns:>9.1} ns",
                    config.name()
                );
                csv.push(format!("emit/{state},{},{round},{ns:.1}", config.name()));
            }
        }
        let floor = floor_max_ns(secs);
        println!(
            "round {round} floor    overload/0p  max {:.2} ms (the timing loop alone)",
            floor as f64 / 1e6
        );
        csv.push(format!("overload/floor/max_ns,none,{round},{floor}"));
        for producers in [1, 2] {
            for config in CONFIGS {
                let o = overload(config, producers, secs);
                println!(
                    "round {round} {:<8} overload/{producers}p  emit p50 {} ns, p99 {} ns, p99.9 {} ns, max {:.2} ms; handled {:.2} M/s",
                    config.name(),
                    o.p50,
                    o.p99,
                    o.p999,
                    o.max as f64 / 1e6,
                    o.handled_per_sec / 1e6
                );
                let row = format!("overload/{producers}p");
                for (what, v) in [
                    ("p50_ns", o.p50 as f64),
                    ("p99_ns", o.p99 as f64),
                    ("p999_ns", o.p999 as f64),
                    ("max_ns", o.max as f64),
                    ("handled_per_sec", o.handled_per_sec),
                ] {
                    csv.push(format!("{row}/{what},{},{round},{v:.1}", config.name()));
                }
            }
        }
    }
    if bench_mode() {
        merge_extra("emit_load.csv", "row,config,round,value", 3, &csv);
    }
}
