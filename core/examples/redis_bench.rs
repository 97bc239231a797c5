//! Events per second through the Redis forwarder into a redis-server: emit
//! into a queue with a [`RedisForwarder`] attached, time until the stream
//! has them all. scripts/bench_redis.sh runs it beside `redis-benchmark`.
//!
//! ```text
//! cargo run --release -p evqueue --features redis --example redis_bench -- redis://127.0.0.1:6379/ 200000 256
//! ```
//! Arguments: URL, events (default 200000), batch (default 256). With
//! `EVQUEUE_BENCH_DIRECT=1` the events are built first and written to the
//! forwarder in chunks of 256, without a queue (the sink alone).

use evqueue::forward::redis::{RedisConfig, RedisForwarder};
use evqueue::{Event, EventQueue};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .or_else(|| std::env::var("EVQUEUE_REDIS_URL").ok())
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".into());
    let n: u64 = args.get(2).map_or(Ok(200_000), |s| s.parse())?;
    let batch: usize = args.get(3).map_or(Ok(256), |s| s.parse())?;
    let stream = format!("evqueue-bench-{}", std::process::id());
    let queue = EventQueue::builder().capacity(1 << 18).workers(2).build()?;
    let fwd = RedisForwarder::attach(
        &queue,
        RedisConfig::new(&url, &stream).batch(batch).buffer(1 << 20),
    )?;
    // Same entry shape as the redis-benchmark command in bench_redis.sh:
    // name, ts, ext and one property.
    let direct = std::env::var("EVQUEUE_BENCH_DIRECT").is_ok();
    let prebuilt: Vec<evqueue::OwnedEvent> = if direct {
        (0..n)
            .map(|i| evqueue::OwnedEvent {
                name: "tick".into(),
                properties: vec![("i".into(), (i % 100_000).to_string())],
                timestamp: 1_700_000_000_000_000_000,
                ..Default::default()
            })
            .collect()
    } else {
        Vec::new()
    };
    let start = Instant::now();
    for chunk in prebuilt.chunks(256) {
        evqueue::forward::Sink::write(&fwd, chunk)?;
    }
    for i in 0..if direct { 0 } else { n } {
        let i = (i % 100_000).to_string();
        queue.emit(
            &Event::new("tick")
                .properties(&[("i", &i)])
                .timestamp(1_700_000_000_000_000_000),
        )?;
    }
    queue.flush(Duration::from_secs(120))?;
    fwd.flush(Duration::from_secs(120))?;
    let secs = start.elapsed().as_secs_f64();
    queue.shutdown(Duration::from_secs(10))?;
    fwd.close(Duration::from_secs(10))?;
    let s = fwd.stats();
    let client = redis::Client::open(url.as_str())?;
    let mut con = client.get_connection_with_timeout(Duration::from_secs(2))?;
    let len: u64 = redis::cmd("XLEN").arg(&stream).query(&mut con)?;
    redis::cmd("DEL").arg(&stream).query::<()>(&mut con)?;
    if len != n || s.written != n {
        return Err(format!(
            "stream has {len} entries, forwarder wrote {}, expected {n}",
            s.written
        )
        .into());
    }
    println!(
        "evqueue forwarder: {n} events in {secs:.3} s = {:.0} events/s (batch {batch}, {} pipelines, mean {:.0} events each, dropped {})",
        n as f64 / secs,
        s.batches,
        n as f64 / s.batches as f64,
        s.dropped
    );
    Ok(())
}
