//! evqueue's `EventQueue` against the queue a Nakama server runs today, on
//! the same workload, each in a process of its own, rounds interleaved.
//!
//! The Nakama side is `benches/go/nakama_queue.go` (built here with `go
//! build`): a buffered channel of 65536 events, 8 goroutines, a send that
//! drops the newest event when the channel is full. The evqueue side is this
//! binary re-run as a child (`EVQ_NAKAMA_CHILD=1`): an `EventQueue` on its
//! defaults (65536 slots, `Overwrite`: keeps the newest) with 8 workers.
//! Both build the same event per emit (`match_end`, two properties, the
//! clock read for its timestamp) and time every emit of the first producer.
//!
//! Rows (`secs` each; 2 s in bench mode):
//! - `noop/1p`: a handler that does nothing, one producer flat out;
//! - `overload/1p`, `overload/2p`: a handler that spins 2 µs, one or two
//!   producers flat out (the workers cannot keep up: events are lost).
//!
//! Reported per row and side: emit p50, p99, p99.9 and maximum, events
//! handled per second during the emitting window, the share lost, and the
//! process's peak RSS; then per-round ratios evqueue / Nakama, median [min,
//! max]. Output: stdout and `bench-extra/nakama.csv`. `cargo test -p benches
//! --bench nakama` runs every row once, briefly (it needs `go`; scripts/
//! test.sh installs Debian's golang-go).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

use benches::{bench_mode, by_mode, env_count, median_range, merge_extra, quantile};
use evqueue::{Event, EventQueue};

const WORKERS: usize = 8;
const CAPACITY: usize = 65536;
/// The overload rows' handler: this long a spin per event.
const OVERLOAD_HANDLER_NS: u64 = 2000;

/// `(row, producers, handler ns)`.
const ROWS: [(&str, usize, u64); 3] = [
    ("noop/1p", 1, 0),
    ("overload/1p", 1, OVERLOAD_HANDLER_NS),
    ("overload/2p", 2, OVERLOAD_HANDLER_NS),
];

fn rounds() -> usize {
    env_count("NAKAMA_ROUNDS", 5, 1)
}

/// One side's run: the child's `key=value` line.
type Run = BTreeMap<String, f64>;

fn parse(line: &str) -> Run {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().expect("a number")))
        .collect()
}

fn spin(ns: u64) {
    if ns == 0 {
        return;
    }
    let until = Instant::now() + Duration::from_nanos(ns);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// The evqueue side, in the child process: prints the same line as the Go
/// program.
fn child(secs: f64, producers: usize, handler_ns: u64) {
    let queue = EventQueue::builder()
        .workers(WORKERS)
        .capacity(CAPACITY)
        .build()
        .expect("queue");
    queue.on_any(move |_| {
        spin(handler_ns);
        Ok(())
    });
    let event = || {
        Event::new("match_end")
            .properties(&[("winner", "blue"), ("duration_s", "1260")])
            .timestamp(0)
    };
    let stop = AtomicBool::new(false);
    let emitted = AtomicU64::new(0);
    let before = queue.stats().handled;
    let start = Instant::now();
    let (samples, handled_in_window, elapsed) = std::thread::scope(|s| {
        for _ in 1..producers {
            s.spawn(|| {
                let mut n = 0;
                while !stop.load(Relaxed) {
                    black_box(queue.emit(&event()).expect("emit"));
                    n += 1;
                }
                emitted.fetch_add(n, Relaxed);
            });
        }
        let mut samples = Vec::with_capacity(1 << 22);
        while start.elapsed().as_secs_f64() < secs {
            for _ in 0..256 {
                let t = Instant::now();
                black_box(queue.emit(&event()).expect("emit"));
                samples.push(t.elapsed().as_nanos() as u64);
            }
        }
        stop.store(true, Relaxed);
        let handled = queue.stats().handled - before;
        (samples, handled, start.elapsed().as_secs_f64())
    });
    emitted.fetch_add(samples.len() as u64, Relaxed);
    let report = queue.shutdown(Duration::from_secs(30)).expect("shutdown");
    let mut samples = samples;
    samples.sort_unstable();
    println!(
        "p50_ns={} p99_ns={} p999_ns={} max_ns={} handled_per_sec={:.0} emitted={} dropped={} handled={} maxrss_kb={}",
        quantile(&samples, 0.5),
        quantile(&samples, 0.99),
        quantile(&samples, 0.999),
        samples.last().expect("samples"),
        handled_in_window as f64 / elapsed,
        emitted.load(Relaxed),
        report.lost(),
        report.handled,
        maxrss_kb(),
    );
}

fn maxrss_kb() -> i64 {
    // SAFETY: getrusage fills the struct it is given; zeroed is a valid
    // value for it.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage.ru_maxrss
    }
}

/// Builds the Go program into the bench output directory.
fn build_go() -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("go");
    let dir = benches::extra_dir();
    std::fs::create_dir_all(&dir).expect("creating the bench output directory");
    let out = dir.join("nakama_queue");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(&src)
        .status()
        .expect("running `go build` (the Nakama side needs Go: apt-get install golang-go)");
    assert!(status.success(), "go build failed");
    out
}

fn run_side(go: Option<&PathBuf>, secs: f64, producers: usize, handler_ns: u64) -> Run {
    let output = match go {
        Some(bin) => Command::new(bin)
            .args(["-secs", &secs.to_string()])
            .args(["-producers", &producers.to_string()])
            .args(["-workers", &WORKERS.to_string()])
            .args(["-capacity", &CAPACITY.to_string()])
            .args(["-handler-ns", &handler_ns.to_string()])
            .output(),
        None => Command::new(std::env::current_exe().expect("own path"))
            .env(
                "EVQ_NAKAMA_CHILD",
                format!("{secs} {producers} {handler_ns}"),
            )
            .output(),
    }
    .expect("child process");
    assert!(
        output.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = String::from_utf8(output.stdout).expect("utf-8");
    let run = parse(line.lines().last().expect("a result line"));
    assert!(
        run.contains_key("handled_per_sec"),
        "unexpected output: {line}"
    );
    run
}

fn main() {
    if let Ok(args) = std::env::var("EVQ_NAKAMA_CHILD") {
        let mut it = args.split_whitespace();
        let mut next = || {
            it.next()
                .expect("EVQ_NAKAMA_CHILD: secs producers handler_ns")
        };
        let secs = next().parse().expect("secs");
        let producers = next().parse().expect("producers");
        let handler_ns = next().parse().expect("handler_ns");
        child(secs, producers, handler_ns);
        return;
    }
    let secs = by_mode(2.0, 0.1);
    let go = build_go();
    let mut csv = Vec::new();
    let mut ratios: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
    for round in 0..rounds() {
        for (row, producers, handler_ns) in ROWS {
            // Alternate which side goes first.
            let mut sides = [("nakama", Some(&go)), ("evqueue", None)];
            if round % 2 == 1 {
                sides.reverse();
            }
            let mut runs = BTreeMap::new();
            for (side, bin) in sides {
                let run = run_side(bin, secs, producers, handler_ns);
                let lost = run["dropped"] / run["emitted"].max(1.0);
                println!(
                    "round {round} {row:<12} {side:<8} emit p50 {:>5} ns, p99 {:>6} ns, p99.9 {:>7} ns, max {:>6.2} ms; handled {:>5.2} M/s, lost {:>5.1} %, peak RSS {:>4.0} MB",
                    run["p50_ns"],
                    run["p99_ns"],
                    run["p999_ns"],
                    run["max_ns"] / 1e6,
                    run["handled_per_sec"] / 1e6,
                    lost * 100.0,
                    run["maxrss_kb"] / 1024.0,
                );
                for key in [
                    "p50_ns",
                    "p99_ns",
                    "p999_ns",
                    "max_ns",
                    "handled_per_sec",
                    "maxrss_kb",
                ] {
                    csv.push(format!("{row}/{key},{side},{round},{:.1}", run[key]));
                }
                csv.push(format!("{row}/lost_fraction,{side},{round},{lost:.4}"));
                runs.insert(side, run);
            }
            for key in ["p50_ns", "p99_ns", "max_ns", "handled_per_sec", "maxrss_kb"] {
                let ratio = runs["evqueue"][key] / runs["nakama"][key].max(1.0);
                ratios.entry((row, key)).or_default().push(ratio);
            }
        }
    }
    println!(
        "\nevqueue / nakama, median [min, max] over {} rounds:",
        rounds()
    );
    for ((row, key), mut v) in ratios {
        let (median, min, max) = median_range(&mut v);
        println!("  {row:<12} {key:<16} {median:.2}x [{min:.2}, {max:.2}]");
    }
    if bench_mode() {
        merge_extra("nakama.csv", "row,side,round,value", 3, &csv);
    }
}
