//! The dispatcher: wake latency and no-op dispatch throughput.
//!
//! - `wake/parked`: one event emitted while every worker is parked (the
//!   bench sleeps 2 ms between events, well past the 50 µs spin); timed from
//!   just before `emit` to the first instruction of the handler.
//! - `wake/spinning`: the same, emitted right after the previous event was
//!   handled, while the workers are still in their spin phase.
//! - `wake/park_unpark_floor`: what `parked` cannot beat on this machine: a
//!   plain thread woken with `std::thread::park`/`unpark`, timed the same
//!   way.
//!   Criterion times the whole round (emit, wait for the handler); the wake
//!   latency itself is sampled per event and printed as median and p99.
//! - `wake/interleaved/gap_*/...` (printed, not criterion rows): `parked`
//!   and the floor sampled alternately in one loop, so both see the same
//!   machine, after idle gaps of 0.2, 2 and 10 ms (about 11 s in all); split
//!   by the CPU the woken thread ran on, with how often it started before
//!   the waker's call returned.
//! - `dispatch/N`: events per second through a no-op handler with N
//!   workers (1, 2, 8): `Reject` policy so no event is lost (the producer
//!   retries on `Full`), timed from the first emit to the flush that sees
//!   the last one handled.
//!
//! Defaults otherwise (65536 slots of 256 bytes). `cargo bench -p benches
//! --bench dispatcher` takes about a minute and a half; `cargo test -p benches
//! --bench dispatcher` runs each row once.

use benches::{current_cpu, quantile, Backoff};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use evqueue::{Error, Event, EventQueue, Overflow};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// One emit-to-handler-start latency, in nanoseconds.
fn wake_once(queue: &EventQueue, base: Instant, started: &AtomicU64) -> u64 {
    started.store(0, SeqCst);
    let t0 = base.elapsed().as_nanos() as u64;
    queue.emit(&Event::new("ping")).expect("emit");
    wait_started(started, t0)
}

/// Waits until `started` holds the woken side's timestamp; returns its
/// distance from `t0`.
fn wait_started(started: &AtomicU64, t0: u64) -> u64 {
    let deadline = Instant::now() + WAIT_LIMIT;
    // Spin a little, then yield: on a 2-core machine a waiter that only
    // spins can hold the very CPU the woken thread was queued on until the
    // next scheduler tick, and we would time the tick.
    let mut backoff = Backoff::new(199);
    loop {
        let t1 = started.load(Acquire);
        if t1 != 0 {
            return t1.saturating_sub(t0);
        }
        assert!(Instant::now() < deadline, "the woken thread never ran");
        backoff.snooze();
    }
}

/// Prints the median, p99 and max of the latency samples.
fn report(name: &str, mut samples: Vec<u64>) {
    if samples.is_empty() {
        println!("wake/{name}: 0 samples"); // filtered out, or none on that CPU
        return;
    }
    samples.sort_unstable();
    println!(
        "wake/{name}: {} samples, p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        samples.len(),
        quantile(&samples, 0.5) as f64 / 1e3,
        quantile(&samples, 0.99) as f64 / 1e3,
        *samples.last().unwrap() as f64 / 1e3,
    );
}

fn wake(c: &mut Criterion) {
    let mut g = c.benchmark_group("wake");
    for parked in [true, false] {
        let queue = EventQueue::builder().build().expect("queue");
        let base = Instant::now();
        let started = Arc::new(AtomicU64::new(0));
        let s = started.clone();
        queue.on_any(move |_| {
            s.store(base.elapsed().as_nanos() as u64, Release);
            Ok(())
        });
        let samples = Mutex::new(Vec::new());
        let name = if parked { "parked" } else { "spinning" };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    if parked {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    let round = Instant::now();
                    let ns = wake_once(&queue, base, &started);
                    total += round.elapsed();
                    samples.lock().unwrap().push(ns);
                }
                total
            })
        });
        report(name, samples.into_inner().unwrap());
        queue.shutdown(WAIT_LIMIT).expect("shutdown");
    }
    g.finish();
}

/// The floor's sleeper: a plain thread that parks until told to go, then
/// stores the time (and its CPU) into `started`/`woken_cpu`, and parks again.
struct FloorThread {
    go: Arc<AtomicBool>,
    quit: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FloorThread {
    fn spawn(base: Instant, started: Arc<AtomicU64>, woken_cpu: Arc<AtomicU64>) -> Self {
        let go = Arc::new(AtomicBool::new(false));
        let quit = Arc::new(AtomicBool::new(false));
        let (g, q) = (go.clone(), quit.clone());
        let thread = std::thread::spawn(move || loop {
            while !g.swap(false, Acquire) {
                if q.load(Acquire) {
                    return;
                }
                std::thread::park();
            }
            started.store(base.elapsed().as_nanos() as u64, Release);
            woken_cpu.store(current_cpu(), Release);
        });
        FloorThread {
            go,
            quit,
            thread: Some(thread),
        }
    }

    /// Wakes it once (the timed part: a store and an unpark).
    fn wake(&self) {
        self.go.store(true, Release);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }
}

impl Drop for FloorThread {
    fn drop(&mut self) {
        self.quit.store(true, Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            t.join().expect("floor thread");
        }
    }
}

/// The floor for `wake/parked`: a plain thread parked with
/// `std::thread::park` and unparked, timed the same way (2 ms of sleep, then
/// from just before the unpark to the thread's first instruction after it).
fn wake_floor(c: &mut Criterion) {
    let mut g = c.benchmark_group("wake");
    let base = Instant::now();
    let started = Arc::new(AtomicU64::new(0));
    let floor = FloorThread::spawn(base, started.clone(), Arc::new(AtomicU64::new(0)));
    let samples = Mutex::new(Vec::new());
    g.bench_function("park_unpark_floor", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                std::thread::sleep(Duration::from_millis(2));
                started.store(0, SeqCst);
                let round = Instant::now();
                let t0 = base.elapsed().as_nanos() as u64;
                floor.wake();
                let ns = wait_started(&started, t0);
                total += round.elapsed();
                samples.lock().unwrap().push(ns);
            }
            total
        })
    });
    drop(floor);
    report("park_unpark_floor", samples.into_inner().unwrap());
    g.finish();
}

fn dispatch(c: &mut Criterion) {
    let mut g = c.benchmark_group("dispatch");
    g.throughput(Throughput::Elements(1));
    for workers in [1, 2, 8] {
        let queue = EventQueue::builder()
            .workers(workers)
            .overflow(Overflow::Reject)
            .build()
            .expect("queue");
        queue.on_any(|_| Ok(()));
        let event = Event::new("noop");
        g.bench_with_input(BenchmarkId::from_parameter(workers), &workers, |b, _| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    loop {
                        match queue.emit(&event) {
                            Ok(_) => break,
                            Err(Error::Full) => std::thread::yield_now(),
                            Err(e) => panic!("emit: {e}"),
                        }
                    }
                }
                queue.flush(WAIT_LIMIT).expect("flush");
                start.elapsed()
            })
        });
        let report = queue.shutdown(WAIT_LIMIT).expect("shutdown");
        assert_eq!(
            report.handled + report.left,
            report.pushed - report.rejected
        );
    }
    g.finish();
}

/// `wake/parked` and its floor, sampled alternately in one loop so both see
/// the same machine (the two criterion rows run a minute apart, and on a
/// shared VM the floor alone moves 2x between minutes). Each sample: sleep
/// for the idle gap, then one wake timed as above. Three gaps, all well past
/// the workers' 50 µs spin: the longer the machine idles, the colder the
/// wake path (on this VM the host reuses an idle virtual CPU's caches).
///
/// Printed per gap, split by where the woken thread ran: on the waker's CPU
/// it runs when the scheduler preempts the waker, or else when the waker
/// yields; on the other CPU it first waits for that (idle, halted) virtual
/// CPU to be woken by the host. Also counted: how often the woken thread
/// started before the waker's `emit` or `unpark` returned (on the waker's
/// CPU, that is a preemption at once).
fn wake_interleaved(_: &mut Criterion) {
    let full = benches::bench_mode();
    // (gap, rounds): about 1, 4 and 6 s of sampling.
    let gaps = [(200, 1000), (2_000, 1000), (10_000, 300)]
        .map(|(us, rounds)| (Duration::from_micros(us), if full { rounds } else { 5 }));
    let base = Instant::now();
    let started = Arc::new(AtomicU64::new(0));
    let woken_cpu = Arc::new(AtomicU64::new(0));
    let queue = EventQueue::builder().build().expect("queue");
    let (s, wc) = (started.clone(), woken_cpu.clone());
    queue.on_any(move |_| {
        s.store(base.elapsed().as_nanos() as u64, Release);
        wc.store(current_cpu(), Release);
        Ok(())
    });
    let floor = FloorThread::spawn(base, started.clone(), woken_cpu.clone());
    for (gap, rounds) in gaps {
        // [evqueue, floor] x [same CPU, other CPU]
        let mut samples: [[Vec<u64>; 2]; 2] = Default::default();
        let mut started_early = [0usize; 2];
        for _ in 0..rounds {
            for (row, by_cpu) in samples.iter_mut().enumerate() {
                std::thread::sleep(gap);
                started.store(0, SeqCst);
                let waker_cpu = current_cpu();
                let t0 = base.elapsed().as_nanos() as u64;
                if row == 0 {
                    queue.emit(&Event::new("ping")).expect("emit");
                } else {
                    floor.wake();
                }
                if started.load(Acquire) != 0 {
                    started_early[row] += 1;
                }
                let ns = wait_started(&started, t0);
                let other = woken_cpu.load(Acquire) != waker_cpu;
                by_cpu[usize::from(other)].push(ns);
            }
        }
        let gap_name = format!("gap_{}us", gap.as_micros());
        for ((name, by_cpu), started_early) in ["parked", "park_unpark_floor"]
            .iter()
            .zip(samples)
            .zip(started_early)
        {
            let all: Vec<u64> = by_cpu.concat();
            println!(
                "wake/interleaved/{gap_name}/{name}: started before the waker's call returned in {started_early} of {}",
                all.len()
            );
            report(&format!("interleaved/{gap_name}/{name}"), all);
            for (place, s) in ["waker's CPU", "other CPU"].iter().zip(by_cpu) {
                report(
                    &format!("interleaved/{gap_name}/{name}, woken on the {place}"),
                    s,
                );
            }
        }
    }
    drop(floor);
    queue.shutdown(WAIT_LIMIT).expect("shutdown");
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = dispatcher_benches;
    config = config();
    targets = wake, wake_floor, wake_interleaved, dispatch
}
criterion_main!(dispatcher_benches);
