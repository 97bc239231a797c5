//! The core ring on a realistic load: a game loop emits Nakama-style events
//! from one thread, two workers drain and "forward" them (slow purchases
//! included), and a live-ops dashboard subscribes to everything. Prints the
//! counters twice a second and a final accounting table, then exits.
//!
//! ```text
//! cargo run --release -p evqueue --example ring_demo [-- SECONDS]
//! ```

use evqueue::{Event, HeapRing, Overflow, Producer, RecvError, Start};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CAPACITY: usize = 65536;
const SLOT_BYTES: usize = 256;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: f64 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| format!("SECONDS must be a number, got {arg:?}"))?,
        None => 3.0,
    };
    let ring = Arc::new(HeapRing::with_capacity(
        CAPACITY,
        SLOT_BYTES,
        Overflow::Overwrite,
    )?);
    let mut producer = Producer::new(ring.clone())?;
    let dashboard_seen = Arc::new(AtomicU64::new(0));
    let dashboard_lagged = Arc::new(AtomicU64::new(0));
    let stop_reporting = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    let handled: u64 = std::thread::scope(|s| {
        // Workers: the worker group shares one cursor; each event goes to one.
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let ring = &ring;
                s.spawn(move || {
                    let mut buf = [0u8; SLOT_BYTES];
                    let mut handled = 0u64;
                    loop {
                        match ring.try_claim(&mut buf) {
                            Ok(claim) => {
                                let event = claim.event(&buf).expect("the demo pushes only events");
                                if event.name == "purchase" {
                                    // A slow third-party call: the reason the queue exists.
                                    let until = Instant::now() + Duration::from_micros(2);
                                    while Instant::now() < until {
                                        std::hint::spin_loop();
                                    }
                                }
                                handled += 1;
                            }
                            Err(RecvError::Closed) => return handled,
                            Err(_) => std::thread::sleep(Duration::from_micros(50)),
                        }
                    }
                })
            })
            .collect();

        // Dashboard: a broadcast subscriber sees every event it is not lapped on.
        {
            let ring = &ring;
            let (seen, lagged) = (&dashboard_seen, &dashboard_lagged);
            s.spawn(move || {
                let mut sub = ring.subscribe(Start::Now);
                let mut buf = [0u8; SLOT_BYTES];
                loop {
                    match sub.try_recv(&mut buf) {
                        Ok(_) => {
                            seen.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(RecvError::Lagged(n)) => {
                            lagged.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(RecvError::Closed) => return,
                        Err(_) => std::thread::sleep(Duration::from_micros(50)),
                    }
                }
            });
        }

        // Progress line twice a second.
        {
            let (ring, stop) = (&ring, &stop_reporting);
            s.spawn(move || {
                let mut last = (Instant::now(), 0u64);
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(500));
                    let st = ring.stats();
                    let rate = (st.pushed - last.1) as f64 / last.0.elapsed().as_secs_f64();
                    last = (Instant::now(), st.pushed);
                    println!(
                        "{:>5.1}s  pushed {:>10}  {:>6.2} M events/s  delivered {:>10}  depth {:>6}  lost {:>9}",
                        started.elapsed().as_secs_f64(),
                        st.pushed,
                        rate / 1e6,
                        st.delivered,
                        st.depth,
                        st.overwritten
                    );
                }
            });
        }

        // The game loop: one thread emitting what a match server emits.
        let names = [
            "session_start",
            "match_start",
            "player_kill",
            "purchase",
            "match_end",
            "session_end",
        ];
        let deadline = started + Duration::from_secs_f64(seconds);
        let mut i = 0u64;
        let mut user = String::new();
        while Instant::now() < deadline {
            for _ in 0..1024 {
                use std::fmt::Write;
                user.clear();
                let _ = write!(user, "user-{}", i % 10_000);
                let name = names[(i % names.len() as u64) as usize];
                let props = [
                    ("user_id", user.as_str()),
                    ("region", "eu-west"),
                    ("build", "1.42.0"),
                ];
                producer.push_event(&Event::new(name).properties(&props))?;
                i += 1;
            }
        }
        ring.close();
        drop(producer); // the single producer seals the ring for the consumers
        let handled = workers
            .into_iter()
            .map(|w| w.join().expect("worker panicked"))
            .sum();
        stop_reporting.store(true, Ordering::Relaxed);
        Ok::<u64, evqueue::Error>(handled)
    })?;

    let st = ring.stats();
    let elapsed = started.elapsed().as_secs_f64();
    println!();
    println!("{:<28}{:>14}", "events pushed", st.pushed);
    println!("{:<28}{:>14}", "handled by workers", handled);
    println!("{:<28}{:>14}", "overwritten (lost)", st.overwritten);
    println!(
        "{:<28}{:>14}",
        "seen by dashboard",
        dashboard_seen.load(Ordering::Relaxed)
    );
    println!(
        "{:<28}{:>14}",
        "dashboard lagged",
        dashboard_lagged.load(Ordering::Relaxed)
    );
    println!("{:<28}{:>14}", "high-water mark", st.high_water);
    println!(
        "{:<28}{:>11.2} M/s",
        "push rate",
        st.pushed as f64 / elapsed / 1e6
    );
    let balanced = st.pushed == st.delivered + st.overwritten && st.delivered == handled;
    println!(
        "{:<28}{:>14}",
        "pushed = handled + lost",
        if balanced { "exact" } else { "MISMATCH" }
    );
    if !balanced {
        return Err("accounting mismatch".into());
    }
    Ok(())
}
