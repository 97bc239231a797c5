//! An HTTP front door for evqueue: game clients `POST /v2/event` with
//! Nakama's body, Prometheus scrapes `GET /metrics`. An example to copy
//! from, not a product: its handler only counts events by name and prints a
//! summary every few seconds; put your forwarding there (see
//! docs/FORWARDING.md). There is no authentication: run it behind whatever
//! checks your clients' session tokens.
//!
//! ```text
//! cargo run --release -p evqueue-gateway --bin http_gateway -- [options]
//! curl -i -d '{"name": "level_up", "properties": {"level": "7"}}' http://127.0.0.1:7350/v2/event
//! curl http://127.0.0.1:7350/metrics
//! ```
//!
//! Options (each also read from the environment variable in brackets):
//!
//! ```text
//! --listen ADDR       [EVQUEUE_LISTEN]     default 127.0.0.1:7350 (Nakama's port); port 0 picks one
//! --capacity N        [EVQUEUE_CAPACITY]   ring slots, a power of two; default 65536
//! --workers N         [EVQUEUE_WORKERS]    handler threads; default 8
//! --overflow POLICY   [EVQUEUE_OVERFLOW]   reject (default: 503 when full) or overwrite
//! --drain-secs N      [EVQUEUE_DRAIN_SECS] on SIGTERM, how long to drain the queue; default 10
//! --summary-secs N                         summary interval, 0 for none; default 5
//! --handle-ms N                            each event's handler sleeps N ms (a slow downstream); default 0
//! --floor                                  answer 202 without parsing or emitting (load tests)
//! ```
//!
//! On SIGTERM or Ctrl-C it stops accepting connections, finishes the
//! requests in flight (5 s at most), drains the queue, prints what the
//! queue reports and the totals by name, and exits 0 — or 1 if the drain
//! deadline passed with events left in the queue.
//!
//! The first line on standard output is `listening on http://ADDR`.

use evqueue::{EventQueue, Overflow};
use evqueue_gateway::{Gateway, Mode};
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const USAGE: &str = "usage: http_gateway [--listen ADDR] [--capacity N] [--workers N] \
[--overflow reject|overwrite] [--drain-secs N] [--summary-secs N] [--handle-ms N] [--floor]";

struct Options {
    listen: String,
    capacity: usize,
    workers: usize,
    overflow: Overflow,
    drain: Duration,
    summary: Duration,
    handle: Duration,
    mode: Mode,
}

fn parse_args() -> Result<Options, String> {
    let env = |name: &str| std::env::var(name).ok();
    let mut o = Options {
        listen: env("EVQUEUE_LISTEN").unwrap_or_else(|| "127.0.0.1:7350".into()),
        capacity: 65536,
        workers: 8,
        overflow: Overflow::Reject,
        drain: Duration::from_secs(10),
        summary: Duration::from_secs(5),
        handle: Duration::ZERO,
        mode: Mode::Emit,
    };
    let mut pairs: Vec<(String, String)> = [
        ("--capacity", "EVQUEUE_CAPACITY"),
        ("--workers", "EVQUEUE_WORKERS"),
        ("--overflow", "EVQUEUE_OVERFLOW"),
        ("--drain-secs", "EVQUEUE_DRAIN_SECS"),
    ]
    .iter()
    .filter_map(|(flag, var)| env(var).map(|v| (flag.to_string(), v)))
    .collect();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--floor" => o.mode = Mode::Floor,
            "-h" | "--help" => return Err(String::new()),
            _ => {
                let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
                pairs.push((flag, value));
            }
        }
    }
    for (flag, value) in pairs {
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {value}"))
        };
        match flag.as_str() {
            "--listen" => o.listen = value.clone(),
            "--capacity" => o.capacity = number()? as usize,
            "--workers" => o.workers = number()? as usize,
            "--overflow" => {
                o.overflow = match value.as_str() {
                    "reject" => Overflow::Reject,
                    "overwrite" => Overflow::Overwrite,
                    _ => return Err(format!("--overflow: reject or overwrite, not {value}")),
                }
            }
            "--drain-secs" => o.drain = Duration::from_secs(number()?),
            "--summary-secs" => o.summary = Duration::from_secs(number()?),
            "--handle-ms" => o.handle = Duration::from_millis(number()?),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(o)
}

/// Events handled, by name.
type Counts = Arc<Mutex<HashMap<String, u64>>>;

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("{e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let queue = match EventQueue::builder()
        .capacity(o.capacity)
        .workers(o.workers)
        .overflow(o.overflow)
        .build()
    {
        Ok(q) => Arc::new(q),
        Err(e) => {
            eprintln!("cannot build the queue: {e}");
            return ExitCode::from(2);
        }
    };

    // The example's handler: count by name. Replace with your forwarding.
    let counts: Counts = Arc::default();
    let c = counts.clone();
    let handle = o.handle;
    queue.on_any(move |event| {
        if !handle.is_zero() {
            std::thread::sleep(handle);
        }
        let mut counts = c.lock().unwrap_or_else(|p| p.into_inner());
        match counts.get_mut(event.name) {
            Some(n) => *n += 1,
            None => {
                counts.insert(event.name.to_owned(), 1);
            }
        }
        Ok(())
    });
    if !o.summary.is_zero() {
        let (counts, every) = (counts.clone(), o.summary);
        // Not joined: it only prints, and ends with the process.
        std::thread::spawn(move || summaries(&counts, every));
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let gateway = Arc::new(Gateway::new(queue.clone()).mode(o.mode));
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&o.listen).await?;
        println!("listening on http://{}", listener.local_addr()?);
        Ok::<_, std::io::Error>(
            gateway
                .serve(listener, stop_signal(), Duration::from_secs(5))
                .await,
        )
    });
    drop(runtime);
    let served = match served {
        Ok(report) => report,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", o.listen);
            return ExitCode::FAILURE;
        }
    };
    println!(
        "stopped accepting after {} connections ({} cut off); draining the queue",
        served.connections, served.cut_off
    );
    let report = match queue.shutdown(o.drain) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shutdown failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "shutdown: pushed={} handled={} lost={} errors={} panics={} left={} timed_out={}",
        report.pushed,
        report.handled,
        report.lost(),
        report.errors,
        report.panics,
        report.left,
        report.timed_out
    );
    let counts = counts.lock().unwrap_or_else(|p| p.into_inner());
    let mut totals: Vec<_> = counts.iter().collect();
    totals.sort();
    for (name, n) in totals {
        println!("total {name} {n}");
    }
    if report.timed_out {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => println!("SIGTERM"),
                    _ = tokio::signal::ctrl_c() => println!("SIGINT"),
                }
                return;
            }
            Err(e) => eprintln!("no SIGTERM handler ({e}); Ctrl-C only"),
        }
    }
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handling at all: serve until killed.
        std::future::pending::<()>().await;
    }
    println!("SIGINT");
}

/// Every `every`, one line: the events handled since the previous line,
/// the busiest names first.
fn summaries(counts: &Mutex<HashMap<String, u64>>, every: Duration) {
    let mut before: HashMap<String, u64> = HashMap::new();
    loop {
        std::thread::sleep(every);
        let now = counts.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut delta: Vec<(u64, &str)> = now
            .iter()
            .map(|(name, &n)| (n - before.get(name).copied().unwrap_or(0), name.as_str()))
            .filter(|&(d, _)| d > 0)
            .collect();
        delta.sort_by(|a, b| b.cmp(a));
        let total: u64 = delta.iter().map(|&(d, _)| d).sum();
        let top: Vec<String> = delta
            .iter()
            .take(5)
            .map(|(d, n)| format!("{n} {d}"))
            .collect();
        println!(
            "last {}s: {total} events handled{}{}",
            every.as_secs(),
            if top.is_empty() { "" } else { ": " },
            top.join(", ")
        );
        before = now;
    }
}
