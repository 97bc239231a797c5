//! A game server's event pipeline on the dispatcher, on defaults (65536
//! slots of 256 bytes, 8 workers, overwrite when full).
//!
//! Four game-shard threads emit what a live game emits: sessions starting
//! and ending, matches, kills, purchases. The workers forward everything to
//! a deliberately slow analytics sink (batches of 256 events, each POST
//! taking 2 ms) and validate purchases against a slow store (1 ms each, and
//! the store sometimes refuses a receipt: a handler error). A live-ops
//! dashboard subscribes with a long-poll and a heartbeat. Halfway through, a
//! tournament starts and the shards emit ten times faster for a while: the
//! workers fall behind the slow sink, the ring fills up, the oldest events
//! are overwritten, and the loss is counted exactly.
//!
//! A one-line progress display refreshes in place; at the end, the queue is
//! shut down, a summary table is printed, and the program exits non-zero if
//! the books do not balance (`pushed = handled + overwritten + rejected +
//! left`, and every side's own counts agree).
//!
//! ```text
//! cargo run --release -p evqueue --example game_server [-- --seconds N]
//! ```
//! On defaults it runs 8 s of load and ends within about 10 s.

use evqueue::{Event, EventQueue, EventView, RecvTimeoutError, Start};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SHARDS: usize = 4;
/// Events per shard per millisecond in normal play (about 100k/s in all).
const EVENTS_PER_MS: usize = 25;
/// The tournament multiplies the rate by this.
const TOURNAMENT_FACTOR: usize = 10;
const SINK_BATCH: usize = 256;
const SINK_POST: Duration = Duration::from_millis(2);
const STORE_CALL: Duration = Duration::from_millis(1);
const NAMES: [&str; 7] = [
    "session_start",
    "session_end",
    "match_start",
    "match_end",
    "player_kill",
    "purchase",
    "chat",
];

/// Per event name: how many the shards emitted and the handlers saw.
struct Tally([AtomicU64; NAMES.len()]);

impl Tally {
    fn new() -> Self {
        Tally(std::array::from_fn(|_| AtomicU64::new(0)))
    }
    fn add(&self, name: &str) {
        if let Some(i) = NAMES.iter().position(|n| *n == name) {
            self.0[i].fetch_add(1, Relaxed);
        }
    }
    fn get(&self, i: usize) -> u64 {
        self.0[i].load(Relaxed)
    }
    fn total(&self) -> u64 {
        (0..NAMES.len()).map(|i| self.get(i)).sum()
    }
}

/// The slow analytics backend: each worker batches events and POSTs a full
/// batch, which blocks the worker for `SINK_POST`.
struct Sink {
    posted_events: AtomicU64,
    posts: AtomicU64,
}

thread_local! {
    static BATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    static BATCHED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Sink {
    fn forward(&self, event: &EventView<'_>) {
        BATCH.with(|b| {
            let mut b = b.borrow_mut();
            // Serialize as a line of JSON-ish text, as an HTTP client would.
            let _ = write!(b, "{{\"seq\":{},\"name\":\"{}\"", event.seq, event.name);
            for (k, v) in event.properties() {
                let _ = write!(b, ",\"{k}\":\"{v}\"");
            }
            b.extend_from_slice(b"}\n");
            let n = BATCHED.with(|c| {
                c.set(c.get() + 1);
                c.get()
            });
            if n >= SINK_BATCH {
                std::thread::sleep(SINK_POST); // the slow third-party call
                self.posted_events.fetch_add(n as u64, Relaxed);
                self.posts.fetch_add(1, Relaxed);
                BATCHED.with(|c| c.set(0));
                b.clear();
            }
        });
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One shard's game loop: players log in and out, play matches, buy things.
fn shard(
    id: usize,
    queue: &EventQueue,
    stop: &AtomicBool,
    tournament: &AtomicBool,
    emitted: &Tally,
    refused: &AtomicU64,
) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((id as u64 + 1) * 0x1234_5678));
    let mut online: Vec<u64> = Vec::new();
    let mut next_user = id as u64 * 1_000_000_000;
    let mut next_match = id as u64 * 1_000_000_000;
    let skus = ["gem_pack_s", "gem_pack_l", "battle_pass", "skin_dragon"];
    let reasons = ["logout", "timeout", "kicked", "disconnect"];
    let mut tick = Instant::now();
    let mut buf = String::new();
    while !stop.load(Relaxed) {
        let factor = if tournament.load(Relaxed) {
            TOURNAMENT_FACTOR
        } else {
            1
        };
        for _ in 0..EVENTS_PER_MS * factor {
            let roll = rng.below(1000);
            let user = if online.is_empty() || roll < 20 {
                next_user += 1;
                online.push(next_user);
                buf.clear();
                buf.push_str(&next_user.to_string());
                let platform = ["ios", "android", "pc"][rng.below(3) as usize];
                match queue.emit_session_start(&[("user", &buf), ("platform", platform)]) {
                    Ok(_) => emitted.add("session_start"),
                    Err(_) => {
                        refused.fetch_add(1, Relaxed);
                    }
                }
                continue;
            } else {
                online[rng.below(online.len() as u64) as usize]
            };
            let user_s = user.to_string();
            let event_name = match roll {
                20..=37 => {
                    let i = online.iter().position(|u| *u == user).unwrap();
                    online.swap_remove(i);
                    let reason = reasons[rng.below(4) as usize];
                    if queue.emit_session_end(reason, &[("user", &user_s)]).is_ok() {
                        emitted.add("session_end");
                    } else {
                        refused.fetch_add(1, Relaxed);
                    }
                    continue;
                }
                38..=99 => "match_start",
                100..=159 => "match_end",
                160..=179 => "purchase",
                180..=299 => "chat",
                _ => "player_kill",
            };
            next_match += (event_name == "match_start") as u64;
            let match_s = next_match.to_string();
            match event_name {
                "purchase" => {
                    let sku = skus[rng.below(4) as usize];
                    let price = (rng.below(20) * 100 + 99).to_string();
                    emit(
                        queue,
                        emitted,
                        refused,
                        &Event::new("purchase").properties(&[
                            ("user", &user_s),
                            ("sku", sku),
                            ("price_cents", &price),
                        ]),
                    );
                }
                "player_kill" => {
                    let victim = online[rng.below(online.len() as u64) as usize].to_string();
                    let weapon = ["rifle", "bow", "sword", "fireball"][rng.below(4) as usize];
                    emit(
                        queue,
                        emitted,
                        refused,
                        &Event::new("player_kill").properties(&[
                            ("match", &match_s),
                            ("killer", &user_s),
                            ("victim", &victim),
                            ("weapon", weapon),
                        ]),
                    );
                }
                "chat" => {
                    emit(
                        queue,
                        emitted,
                        refused,
                        &Event::new("chat")
                            .properties(&[("user", &user_s), ("text", "gg wp")])
                            .external(true),
                    );
                }
                name => {
                    emit(
                        queue,
                        emitted,
                        refused,
                        &Event::new(name).properties(&[
                            ("match", &match_s),
                            ("user", &user_s),
                            ("mode", "ranked"),
                        ]),
                    );
                }
            }
        }
        // Paced: one batch per millisecond of wall time.
        tick += Duration::from_millis(1);
        let now = Instant::now();
        if tick > now {
            std::thread::sleep(tick - now);
        } else if now - tick > Duration::from_millis(50) {
            tick = now; // fell behind: do not burst to catch up
        }
    }
}

fn emit(queue: &EventQueue, emitted: &Tally, refused: &AtomicU64, event: &Event<'_>) {
    match queue.emit(event) {
        Ok(_) => emitted.add(event.name),
        Err(_) => {
            refused.fetch_add(1, Relaxed);
        }
    }
}

fn parse_seconds() -> Result<f64, String> {
    let mut args = std::env::args().skip(1);
    let mut seconds = 8.0;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let v = args.next().ok_or("--seconds needs a value")?;
                seconds = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0 && s.is_finite())
                    .ok_or(format!("--seconds must be a positive number, got {v:?}"))?;
            }
            "-h" | "--help" => {
                println!("usage: game_server [--seconds N]   (N seconds of load, default 8)");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(seconds)
}

fn main() -> ExitCode {
    let seconds = match parse_seconds() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("game_server: {e}");
            return ExitCode::from(2);
        }
    };
    // The simulated panics below are expected: keep them off the display.
    std::panic::set_hook(Box::new(|_| {}));

    let queue = match EventQueue::builder().build() {
        Ok(q) => q,
        Err(e) => {
            eprintln!("game_server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let emitted = Tally::new();
    let seen = Arc::new(Tally::new());
    let refused = AtomicU64::new(0);
    let sink = Arc::new(Sink {
        posted_events: AtomicU64::new(0),
        posts: AtomicU64::new(0),
    });
    let receipts_refused = Arc::new(AtomicU64::new(0));
    let hooked = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));

    // Every event goes to analytics; purchases also to the store.
    {
        let (seen, sink) = (seen.clone(), sink.clone());
        queue.on_any(move |event| {
            seen.add(event.name);
            sink.forward(event);
            Ok(())
        });
    }
    {
        let refused = receipts_refused.clone();
        let calls = AtomicU64::new(0);
        queue
            .on("purchase", move |event| {
                std::thread::sleep(STORE_CALL); // receipt validation
                let price: u64 = event
                    .properties()
                    .get("price_cents")
                    .unwrap_or("0")
                    .parse()?;
                if price == 1999 && event.seq % 3 == 0 {
                    refused.fetch_add(1, Relaxed);
                    return Err(format!(
                        "store refused receipt for {}",
                        event.properties().get("sku").unwrap_or("?")
                    )
                    .into());
                }
                if calls.fetch_add(1, Relaxed) % 5_000 == 4_999 {
                    panic!("store client bug on seq {}", event.seq); // caught and counted
                }
                Ok(())
            })
            .expect("valid name");
    }
    queue.on_session_end(|event| match event.properties().get("reason") {
        Some(_) => Ok(()),
        None => Err("session_end without a reason".into()),
    });
    {
        let hooked = hooked.clone();
        queue.on_error(move |event, _failure| {
            *hooked
                .lock()
                .unwrap()
                .entry(event.name.to_owned())
                .or_default() += 1;
        });
    }

    let stop = AtomicBool::new(false);
    let tournament = AtomicBool::new(false);
    let dashboard = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)); // seen, lagged, heartbeats
    let started = Instant::now();
    let run_for = Duration::from_secs_f64(seconds);
    let tty = std::io::stdout().is_terminal();
    println!(
        "game_server: {} shards -> EventQueue ({} slots x {} B, {} workers), {:.0} s of load",
        SHARDS,
        queue.capacity(),
        queue.slot_bytes(),
        queue.workers(),
        seconds
    );

    let report = std::thread::scope(|s| {
        let shards: Vec<_> = (0..SHARDS)
            .map(|id| {
                let (queue, stop, tournament, emitted, refused) =
                    (&queue, &stop, &tournament, &emitted, &refused);
                s.spawn(move || shard(id, queue, stop, tournament, emitted, refused))
            })
            .collect();
        // The live-ops dashboard: a long-poll subscriber with a heartbeat.
        let mut sub = queue.subscribe(Start::Now);
        let dash = &dashboard;
        s.spawn(move || loop {
            match sub.recv_timeout(Duration::from_millis(100)) {
                Ok(_) => {
                    dash.0.fetch_add(1, Relaxed);
                }
                Err(RecvTimeoutError::Lagged(n)) => {
                    dash.1.fetch_add(n, Relaxed);
                }
                Err(RecvTimeoutError::Timeout) => {
                    dash.2.fetch_add(1, Relaxed);
                }
                Err(_) => return, // closed: the queue shut down
            }
        });

        // The progress display.
        let mut last = (Instant::now(), 0u64);
        let mut printed = Instant::now();
        while started.elapsed() < run_for {
            std::thread::sleep(Duration::from_millis(250));
            let t = started.elapsed().as_secs_f64();
            let in_tournament = t > seconds * 0.4 && t < seconds * 0.55;
            tournament.store(in_tournament, Relaxed);
            let st = queue.stats();
            let rate = (st.ring.pushed - last.1) as f64 / last.0.elapsed().as_secs_f64();
            last = (Instant::now(), st.ring.pushed);
            let line = format!(
                "t={t:5.1}s {:10} events/s {:>10}  depth {:>6}  handled {:>10}  lost {:>9}  errors {:>5}  panics {}",
                if in_tournament { "TOURNAMENT" } else { "" },
                group(rate as u64),
                group(st.ring.depth),
                group(st.handled),
                group(st.ring.overwritten),
                st.handler_errors,
                st.panics,
            );
            if tty {
                print!("\r{line}\x1b[K");
                let _ = std::io::stdout().flush();
            } else if printed.elapsed() >= Duration::from_secs(1) {
                println!("{line}");
                printed = Instant::now();
            }
        }
        stop.store(true, Relaxed);
        tournament.store(false, Relaxed);
        if tty {
            println!();
        }
        for shard in shards {
            shard.join().expect("a shard panicked");
        }
        // Refuse new events, drain what is queued (2 s at most), join the
        // workers. The dashboard sees Closed and ends.
        queue
            .shutdown(Duration::from_secs(2))
            .expect("not called from a handler")
    });
    let elapsed = started.elapsed();
    let stats = queue.stats();

    // The summary table.
    println!("\n{:<14} {:>12} {:>12}", "event", "emitted", "handled");
    for (i, name) in NAMES.iter().enumerate() {
        println!(
            "{:<14} {:>12} {:>12}",
            name,
            group(emitted.get(i)),
            group(seen.get(i))
        );
    }
    let rows: Vec<(&str, String)> = vec![
        ("pushed", group(report.pushed)),
        ("handled", group(report.handled)),
        ("overwritten (lost)", group(report.overwritten)),
        ("rejected", group(report.rejected)),
        ("left at deadline", group(report.left)),
        ("handler errors", group(report.errors)),
        ("handler panics", group(report.panics)),
        ("high-water depth", group(stats.ring.high_water)),
        ("sink batches posted", group(sink.posts.load(Relaxed))),
        ("dashboard seen", group(dashboard.0.load(Relaxed))),
        ("dashboard lagged", group(dashboard.1.load(Relaxed))),
        ("dashboard heartbeats", group(dashboard.2.load(Relaxed))),
        ("elapsed", format!("{:.1} s", elapsed.as_secs_f64())),
        (
            "mean rate",
            format!(
                "{} events/s",
                group((report.pushed as f64 / seconds) as u64)
            ),
        ),
        ("shutdown timed out", report.timed_out.to_string()),
    ];
    println!();
    for (k, v) in &rows {
        println!("{k:<22} {v:>16}");
    }
    for (name, f) in &stats.failures_by_name {
        println!(
            "  failures {name:<12} errors {:>6}  panics {:>3}",
            f.errors, f.panics
        );
    }

    // The books.
    let hooked_total: u64 = hooked.lock().unwrap().values().sum();
    let checks = [
        (
            "pushed = handled + overwritten + rejected + left",
            report.pushed == report.handled + report.overwritten + report.rejected + report.left,
        ),
        ("shards' emits = pushed", emitted.total() == report.pushed),
        ("handlers' count = handled", seen.total() == report.handled),
        (
            "error hook calls = errors + panics",
            hooked_total == report.errors + report.panics,
        ),
        (
            "store refusals <= errors",
            receipts_refused.load(Relaxed) <= report.errors,
        ),
        (
            "emits refused = 0 (overwrite never refuses)",
            refused.load(Relaxed) == 0,
        ),
        // Lagged(n) counts sequence numbers (abandoned multi-producer
        // tickets too), so the bound is the next sequence number.
        (
            "dashboard seen + lagged <= sequence numbers",
            dashboard.0.load(Relaxed) + dashboard.1.load(Relaxed) <= queue.ring().next_seq(),
        ),
    ];
    println!();
    let mut ok = true;
    for (what, good) in checks {
        println!("{} {what}", if good { "ok  " } else { "FAIL" });
        ok &= good;
    }
    if ok {
        println!("\nthe books balance");
        ExitCode::SUCCESS
    } else {
        println!("\nthe books DO NOT balance");
        ExitCode::FAILURE
    }
}

/// 1234567 -> "1,234,567".
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
