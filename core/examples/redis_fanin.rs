//! Fan-in through Redis Streams: two producer processes (game servers)
//! forward their events to one stream, one consumer process reads it
//! through a consumer group into its own queue.
//!
//! ```text
//! redis-server --port 6379 --save '' &
//! cargo run -p evqueue --features redis --example redis_fanin -- redis://127.0.0.1:6379/ 50000
//! ```
//!
//! The URL comes from the first argument, else `EVQUEUE_REDIS_URL`, else
//! `redis://127.0.0.1:6379/`; the second argument is the number of events
//! per producer (default 50000). The example runs itself three times with a
//! role argument (`producer` / `consumer`), prints a summary and exits
//! non-zero if the consumer did not get every event.

use evqueue::forward::redis::{RedisConfig, RedisForwarder, RedisSource, SourceConfig};
use evqueue::{Event, EventQueue};
use std::collections::HashSet;
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("producer") => producer(&args[2], &args[3], &args[4], args[5].parse().unwrap_or(0)),
        Some("consumer") => consumer(&args[2], &args[3], args[4].parse().unwrap_or(0)),
        _ => orchestrate(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("redis_fanin: {e}");
            ExitCode::FAILURE
        }
    }
}

fn orchestrate(args: &[String]) -> Result<(), Error> {
    let url = args
        .get(1)
        .cloned()
        .or_else(|| std::env::var("EVQUEUE_REDIS_URL").ok())
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".into());
    let per_producer: u64 = match args.get(2) {
        Some(n) => n.parse().map_err(|_| format!("bad event count {n:?}"))?,
        None => 50_000,
    };
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let stream = format!("evqueue-fanin-{nanos}");
    let exe = std::env::current_exe()?;
    println!("fan-in through {url}, stream {stream}: 2 producers x {per_producer} events");
    let start = Instant::now();
    let mut consumer = Command::new(&exe)
        .args(["consumer", &url, &stream, &(2 * per_producer).to_string()])
        .spawn()?;
    let producers: Vec<_> = ["eu-1", "us-1"]
        .iter()
        .map(|id| {
            Command::new(&exe)
                .args(["producer", &url, &stream, id, &per_producer.to_string()])
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    let mut ok = true;
    for mut p in producers {
        ok &= p.wait()?.success();
    }
    ok &= consumer.wait()?.success();
    let client = redis::Client::open(url.as_str())?;
    let mut con = client.get_connection_with_timeout(Duration::from_secs(2))?;
    let len: u64 = redis::cmd("XLEN").arg(&stream).query(&mut con)?;
    redis::cmd("DEL").arg(&stream).query::<()>(&mut con)?;
    println!(
        "summary: stream held {len} entries; all three processes {} in {:.2} s",
        if ok {
            "succeeded"
        } else {
            "did NOT all succeed"
        },
        start.elapsed().as_secs_f64()
    );
    if ok {
        Ok(())
    } else {
        Err("a process failed".into())
    }
}

/// A game server: emits `n` events into its own queue, which forwards them.
fn producer(url: &str, stream: &str, id: &str, n: u64) -> Result<(), Error> {
    let queue = EventQueue::builder().capacity(1 << 16).workers(2).build()?;
    let fwd = RedisForwarder::attach(&queue, RedisConfig::new(url, stream).batch(256))?;
    let start = Instant::now();
    for i in 0..n {
        let i = i.to_string();
        queue.emit(&Event::new("score").properties(&[("server", id), ("i", &i)]))?;
    }
    queue.shutdown(Duration::from_secs(60))?;
    fwd.close(Duration::from_secs(60))?;
    let s = fwd.stats();
    println!(
        "producer {id}: emitted {n}, written {} in {} pipelines, dropped {}, {:.0} events/s",
        s.written,
        s.batches,
        s.dropped,
        s.written as f64 / start.elapsed().as_secs_f64()
    );
    if s.written == n {
        Ok(())
    } else {
        Err(format!("producer {id}: wrote {} of {n}", s.written).into())
    }
}

/// The consumer: reads the stream into its own queue until it has
/// `expected` distinct events (or 60 s pass).
fn consumer(url: &str, stream: &str, expected: u64) -> Result<(), Error> {
    let queue = EventQueue::builder().capacity(1 << 16).workers(2).build()?;
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let total = Arc::new(Mutex::new(0u64));
    let (s, t) = (seen.clone(), total.clone());
    queue.on("score", move |e| {
        let p = e.properties();
        let key = (
            p.get("server").unwrap_or("?").to_owned(),
            p.get("i").unwrap_or("?").to_owned(),
        );
        s.lock().unwrap().insert(key);
        *t.lock().unwrap() += 1;
        Ok(())
    })?;
    let config = SourceConfig::new(url, stream, "fanin", "consumer-1")
        .count(512)
        .claim_idle(Duration::from_secs(5));
    let source = RedisSource::into_queue(config, &queue)?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(60);
    while (seen.lock().unwrap().len() as u64) < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    source.stop();
    queue.shutdown(Duration::from_secs(10))?;
    let seen = seen.lock().unwrap();
    let distinct = seen.len() as u64;
    let handled = *total.lock().unwrap();
    let per_server = |id: &str| seen.iter().filter(|(s, _)| s == id).count();
    let st = source.stats();
    println!(
        "consumer: {distinct} of {expected} distinct events (eu-1 {}, us-1 {}), {} handled, {} duplicates, {} malformed, {:.0} events/s",
        per_server("eu-1"),
        per_server("us-1"),
        handled,
        handled - distinct,
        st.malformed,
        distinct as f64 / start.elapsed().as_secs_f64()
    );
    if distinct == expected {
        Ok(())
    } else {
        Err(format!("consumer got {distinct} of {expected}").into())
    }
}
