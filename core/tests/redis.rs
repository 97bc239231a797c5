//! The Redis Streams bridge against a real redis-server.
//!
//! Needs `EVQUEUE_REDIS_URL` (scripts/test.sh starts a server and sets it);
//! without it every test that needs a server says so and returns. The
//! restart test starts its own `redis-server` (from PATH) on a free port, so
//! it can kill and restart it.

use evqueue::forward::redis::{
    decode_fields, encode_fields, RedisConfig, RedisForwarder, RedisSource, SourceConfig,
};
use evqueue::forward::{ForwardError, RetryPolicy};
use evqueue::{Event, EventQueue, OwnedEvent};
use redis::streams::StreamRangeReply;
use redis::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn redis_url(test: &str) -> Option<String> {
    match std::env::var("EVQUEUE_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "SKIPPED {test}: EVQUEUE_REDIS_URL is not set (scripts/test.sh starts a redis-server and sets it)"
            );
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("evq-test-{prefix}-{}-{nanos}", std::process::id())
}

fn con(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap()
}

/// Every entry of `stream` as (id, decoded event).
fn read_all(url: &str, stream: &str) -> Vec<(String, OwnedEvent)> {
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(&mut con(url))
        .unwrap();
    reply
        .ids
        .into_iter()
        .map(|entry| {
            let fields: Vec<(Vec<u8>, Vec<u8>)> = entry
                .map
                .into_iter()
                .map(|(k, v)| match v {
                    Value::BulkString(b) => (k.into_bytes(), b),
                    other => panic!("field {k}: {other:?}"),
                })
                .collect();
            (entry.id, decode_fields(&fields).unwrap())
        })
        .collect()
}

/// Counts of each `i` property.
fn counts(events: impl IntoIterator<Item = OwnedEvent>) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for e in events {
        *m.entry(e.property("i").unwrap().parse().unwrap())
            .or_default() += 1;
    }
    m
}

fn del(url: &str, stream: &str) {
    let _: () = redis::cmd("DEL").arg(stream).query(&mut con(url)).unwrap();
}

#[test]
fn every_event_arrives_exactly_once() {
    let Some(url) = redis_url("every_event_arrives_exactly_once") else {
        return;
    };
    const N: u64 = 20_000;
    let stream = unique("once");
    let queue = EventQueue::builder()
        .capacity(1 << 15)
        .workers(4)
        .build()
        .unwrap();
    let fwd = RedisForwarder::attach(&queue, RedisConfig::new(&url, &stream).batch(128)).unwrap();
    for i in 0..N {
        let i = i.to_string();
        queue
            .emit(&Event::new("match_end").properties(&[("i", &i), ("winner", "blue")]))
            .unwrap();
    }
    let report = queue.shutdown(Duration::from_secs(30)).unwrap();
    assert_eq!(report.handled, N, "{report:?}");
    fwd.close(Duration::from_secs(30)).unwrap();
    let stats = fwd.stats();
    assert_eq!(
        (stats.accepted, stats.written, stats.dropped),
        (N, N, 0),
        "{stats:?}"
    );
    assert_eq!(stats.pending, 0);
    assert!(stats.batches < N, "pipelined: {stats:?}");
    let entries = read_all(&url, &stream);
    assert_eq!(entries.len() as u64, N);
    let c = counts(entries.iter().map(|(_, e)| e.clone()));
    assert_eq!(c.len() as u64, N);
    assert!(c.values().all(|&n| n == 1));
    let (_, first) = &entries[0];
    assert_eq!(first.name, "match_end");
    assert_eq!(first.property("winner"), Some("blue"));
    assert!(first.timestamp > 0 && !first.external);
    del(&url, &stream);
}

#[test]
fn entry_layout_is_name_ts_ext_and_properties() {
    let Some(url) = redis_url("entry_layout_is_name_ts_ext_and_properties") else {
        return;
    };
    let stream = unique("layout");
    let fwd = RedisForwarder::new(RedisConfig::new(&url, &stream)).unwrap();
    let event = OwnedEvent {
        seq: 9,
        name: "purchase".into(),
        properties: vec![("sku".into(), "gem_pack".into()), ("n".into(), "3".into())],
        timestamp: 1_700_000_000_123_456_789,
        external: true,
    };
    evqueue::forward::Sink::write(&fwd, std::slice::from_ref(&event)).unwrap();
    fwd.close(Duration::from_secs(10)).unwrap();
    // The raw reply, in field order.
    let raw: Value = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query(&mut con(&url))
        .unwrap();
    let Value::Array(entries) = raw else { panic!() };
    let Value::Array(entry) = &entries[0] else {
        panic!()
    };
    let Value::Array(fields) = &entry[1] else {
        panic!()
    };
    let fields: Vec<String> = fields
        .iter()
        .map(|v| match v {
            Value::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        fields,
        [
            "name",
            "purchase",
            "ts",
            "1700000000123456789",
            "ext",
            "1",
            "p:sku",
            "gem_pack",
            "p:n",
            "3"
        ]
    );
    let pairs = encode_fields(&event);
    assert_eq!(pairs.len(), 5);
    assert_eq!(
        decode_fields(&pairs).unwrap(),
        OwnedEvent { seq: 0, ..event }
    );
    del(&url, &stream);
}

#[test]
fn maxlen_trims_approximately() {
    let Some(url) = redis_url("maxlen_trims_approximately") else {
        return;
    };
    let stream = unique("maxlen");
    let fwd = RedisForwarder::new(RedisConfig::new(&url, &stream).maxlen(500)).unwrap();
    let events: Vec<OwnedEvent> = (0..5000)
        .map(|i| OwnedEvent {
            name: "tick".into(),
            properties: vec![("i".into(), i.to_string())],
            ..Default::default()
        })
        .collect();
    for chunk in events.chunks(100) {
        evqueue::forward::Sink::write(&fwd, chunk).unwrap();
    }
    fwd.close(Duration::from_secs(10)).unwrap();
    let len: u64 = redis::cmd("XLEN")
        .arg(&stream)
        .query(&mut con(&url))
        .unwrap();
    // `~` trims whole stream nodes (100 entries by default): at least the
    // bound is kept, and not much more.
    assert!((500..=700).contains(&len), "XLEN {len}");
    let kept = read_all(&url, &stream);
    assert_eq!(kept.last().unwrap().1.property("i"), Some("4999"));
    del(&url, &stream);
}

/// A redis-server of our own, to kill and restart. Append-only file with
/// fsync on every write, so what the server acknowledged survives SIGKILL.
struct Server {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl Server {
    fn start(port: u16, dir: std::path::PathBuf) -> Server {
        let mut s = Server {
            port,
            dir,
            child: None,
        };
        s.restart();
        s
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn restart(&mut self) {
        std::fs::create_dir_all(&self.dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be on PATH when EVQUEUE_REDIS_URL is set");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ok = redis::Client::open(self.url())
                .unwrap()
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if ok.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start: {ok:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn redis_killed_mid_run_and_restarted_loses_nothing_taken() {
    if redis_url("redis_killed_mid_run_and_restarted_loses_nothing_taken").is_none() {
        return;
    }
    const N: u64 = 30_000;
    let mut server = Server::start(free_port(), std::env::temp_dir().join(unique("restart")));
    let url = server.url();
    let stream = "events";
    let retry = RetryPolicy::default()
        .unlimited_attempts()
        .base_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(100))
        .breaker_threshold(3)
        .breaker_cooldown(Duration::from_millis(100));
    let config = RedisConfig::new(&url, stream)
        .batch(64)
        .buffer(N as usize)
        .retry(retry)
        .timeouts(Duration::from_millis(500), Duration::from_secs(1));
    let queue = EventQueue::builder()
        .capacity(1 << 16)
        .workers(2)
        .build()
        .unwrap();
    let fwd = RedisForwarder::attach(&queue, config).unwrap();
    let emitter = queue.emitter();
    let producer = std::thread::spawn(move || {
        for i in 0..N {
            let i_s = i.to_string();
            emitter
                .emit(&Event::new("tick").properties(&[("i", &i_s)]))
                .unwrap();
            if i % 30 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    // Let some events reach the stream, then pull the plug.
    let deadline = Instant::now() + Duration::from_secs(20);
    while fwd.stats().written < N / 10 {
        assert!(Instant::now() < deadline, "{:?}", fwd.stats());
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill();
    let at_kill = fwd.stats().written;
    std::thread::sleep(Duration::from_millis(700));
    let while_down = fwd.stats();
    server.restart();
    producer.join().unwrap();
    queue.shutdown(Duration::from_secs(30)).unwrap();
    fwd.close(Duration::from_secs(60)).unwrap();
    let stats = fwd.stats();
    eprintln!("at kill: {at_kill} written; while down: {while_down:?}; end: {stats:?}");
    assert!(at_kill < N, "the server was killed mid-run");
    assert!(while_down.retry.failures > 0, "{while_down:?}");
    assert!(stats.connects >= 2, "{stats:?}");
    assert_eq!(
        (stats.accepted, stats.dropped, stats.abandoned, stats.failed),
        (N, 0, 0, 0)
    );
    let entries = read_all(&url, stream);
    let c = counts(entries.into_iter().map(|(_, e)| e));
    let missing: Vec<u64> = (0..N).filter(|i| !c.contains_key(i)).take(10).collect();
    assert!(missing.is_empty(), "lost events, e.g. {missing:?}");
    let dupes: usize = c.values().map(|n| n - 1).sum();
    eprintln!("{N} events, all present; {dupes} duplicated by retried pipelines");
}

const VICTIM_ENV: &str = "EVQUEUE_TEST_VICTIM_STREAM";
const HOLDING: &str = "EVQUEUE-VICTIM-HOLDING";

#[test]
fn consumer_killed_before_ack_is_redelivered_to_another() {
    let Some(url) = redis_url("consumer_killed_before_ack_is_redelivered_to_another") else {
        return;
    };
    if let Ok(stream) = std::env::var(VICTIM_ENV) {
        // The child: read a batch, then hang in the handler until killed.
        let config = SourceConfig::new(&url, &stream, "workers", "victim").count(50);
        let _source = RedisSource::spawn(config, |_| {
            println!("{HOLDING}");
            std::thread::sleep(Duration::from_secs(3600));
            Ok(())
        })
        .unwrap();
        std::thread::sleep(Duration::from_secs(3600));
        return;
    }
    const N: u64 = 500;
    let stream = unique("kill");
    let fwd = RedisForwarder::new(RedisConfig::new(&url, &stream)).unwrap();
    let events: Vec<OwnedEvent> = (0..N)
        .map(|i| OwnedEvent {
            name: "job".into(),
            properties: vec![("i".into(), i.to_string())],
            ..Default::default()
        })
        .collect();
    evqueue::forward::Sink::write(&fwd, &events).unwrap();
    fwd.close(Duration::from_secs(10)).unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "consumer_killed_before_ack_is_redelivered_to_another",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(VICTIM_ENV, &stream)
        .env("EVQUEUE_REDIS_URL", &url)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut held = false;
    for line in lines.by_ref() {
        if line.unwrap().contains(HOLDING) {
            held = true;
            break;
        }
    }
    assert!(held, "the victim never got an entry");
    child.kill().unwrap(); // SIGKILL, before its XACK
    child.wait().unwrap();

    let pending: Value = redis::cmd("XPENDING")
        .arg(&stream)
        .arg("workers")
        .query(&mut con(&url))
        .unwrap();
    let Value::Array(summary) = pending else {
        panic!("{pending:?}")
    };
    assert_eq!(summary[0], Value::Int(50), "the victim's batch is pending");

    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let config = SourceConfig::new(&url, &stream, "workers", "rescuer")
        .count(100)
        .claim_idle(Duration::from_millis(300));
    let source = RedisSource::spawn(config, move |e| {
        s.lock().unwrap().push(e.clone());
        Ok(())
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (seen.lock().unwrap().len() as u64) < N && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    source.stop();
    let stats = source.stats();
    let c = counts(seen.lock().unwrap().clone());
    assert_eq!(c.len() as u64, N, "{stats:?}");
    assert!(c.values().all(|&n| n == 1), "{stats:?}");
    assert_eq!(stats.claimed, 50, "{stats:?}");
    assert_eq!(stats.handled, N);
    let pending: Value = redis::cmd("XPENDING")
        .arg(&stream)
        .arg("workers")
        .query(&mut con(&url))
        .unwrap();
    let Value::Array(summary) = pending else {
        panic!("{pending:?}")
    };
    assert_eq!(summary[0], Value::Int(0), "everything acknowledged");
    del(&url, &stream);
}

#[test]
fn failed_handler_entries_come_back_and_malformed_ones_are_counted() {
    let Some(url) = redis_url("failed_handler_entries_come_back_and_malformed_ones_are_counted")
    else {
        return;
    };
    const N: u64 = 100;
    let stream = unique("retry");
    let fwd = RedisForwarder::new(RedisConfig::new(&url, &stream)).unwrap();
    let events: Vec<OwnedEvent> = (0..N)
        .map(|i| OwnedEvent {
            name: "job".into(),
            properties: vec![("i".into(), i.to_string())],
            ..Default::default()
        })
        .collect();
    evqueue::forward::Sink::write(&fwd, &events).unwrap();
    fwd.close(Duration::from_secs(10)).unwrap();
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("bogus")
        .arg("1")
        .query(&mut con(&url))
        .unwrap();

    // Every 10th event fails on its first try, then succeeds.
    let tries = Arc::new(Mutex::new(BTreeMap::<u64, usize>::new()));
    let t = tries.clone();
    let config = SourceConfig::new(&url, &stream, "g", "c1").claim_idle(Duration::from_millis(200));
    let source = RedisSource::spawn(config, move |e| {
        let i: u64 = e.property("i").unwrap().parse().unwrap();
        let mut t = t.lock().unwrap();
        let n = t.entry(i).or_default();
        *n += 1;
        if i % 10 == 0 && *n == 1 {
            return Err("transient".into());
        }
        Ok(())
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while source.stats().handled < N && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    source.stop();
    let stats = source.stats();
    assert_eq!(stats.handled, N, "{stats:?}");
    assert_eq!(stats.handler_errors, N / 10);
    assert_eq!(stats.claimed, N / 10);
    assert_eq!(stats.malformed, 1);
    assert!(source
        .last_error()
        .unwrap()
        .contains("unknown field \"bogus\""));
    let tries = tries.lock().unwrap();
    assert!(tries
        .iter()
        .all(|(i, n)| *n == if i % 10 == 0 { 2 } else { 1 }));
    del(&url, &stream);
}

#[test]
fn source_into_queue_keeps_the_event() {
    let Some(url) = redis_url("source_into_queue_keeps_the_event") else {
        return;
    };
    let stream = unique("into");
    let fwd = RedisForwarder::new(RedisConfig::new(&url, &stream)).unwrap();
    let sent = OwnedEvent {
        seq: 0,
        name: "purchase".into(),
        properties: vec![("sku".into(), "gem".into())],
        timestamp: 42,
        external: true,
    };
    evqueue::forward::Sink::write(&fwd, std::slice::from_ref(&sent)).unwrap();
    fwd.close(Duration::from_secs(10)).unwrap();
    let queue = EventQueue::builder()
        .capacity(64)
        .workers(1)
        .build()
        .unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    queue.on_any(move |e| {
        g.lock().unwrap().push(OwnedEvent::from(e));
        Ok(())
    });
    let source =
        RedisSource::into_queue(SourceConfig::new(&url, &stream, "g", "c"), &queue).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.lock().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    source.stop();
    queue.shutdown(Duration::from_secs(5)).unwrap();
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        OwnedEvent {
            seq: 0,
            ..got[0].clone()
        },
        sent
    );
    del(&url, &stream);
}

#[test]
fn bad_configuration_is_refused() {
    let url = "redis://127.0.0.1:1/";
    let refused = |r: Result<RedisForwarder, ForwardError>| {
        assert!(matches!(r, Err(ForwardError::Config(_))));
    };
    refused(RedisForwarder::new(RedisConfig::new("not a url", "s")));
    refused(RedisForwarder::new(RedisConfig::new(url, "")));
    refused(RedisForwarder::new(RedisConfig::new(url, "s").batch(0)));
    refused(RedisForwarder::new(RedisConfig::new(url, "s").buffer(0)));
    refused(RedisForwarder::new(RedisConfig::new(url, "s").maxlen(0)));
    let e = RedisSource::spawn(
        SourceConfig::new(url, "s", "g", "c").max_deliveries(0),
        |_| Ok(()),
    )
    .err();
    assert!(matches!(e, Some(ForwardError::Config(_))));
    let e = RedisSource::spawn(SourceConfig::new(url, "s", "", "c"), |_| Ok(())).err();
    assert!(matches!(e, Some(ForwardError::Config(_))));
    let e = RedisSource::spawn(SourceConfig::new(url, "s", "g", "c").start_id("5"), |_| {
        Ok(())
    })
    .err();
    assert!(matches!(e, Some(ForwardError::Config(_))));
    // Zero timeouts (every connect would fail), and durations too long to
    // compute with (these used to panic on overflow).
    let zero = Duration::ZERO;
    let long = Duration::MAX;
    refused(RedisForwarder::new(
        RedisConfig::new(url, "s").timeouts(zero, Duration::from_secs(1)),
    ));
    refused(RedisForwarder::new(
        RedisConfig::new(url, "s").timeouts(Duration::from_secs(1), zero),
    ));
    let sources = [
        SourceConfig::new(url, "s", "g", "c").timeouts(zero, Duration::from_secs(5)),
        SourceConfig::new(url, "s", "g", "c").block(long),
        SourceConfig::new(url, "s", "g", "c").claim_idle(long),
    ];
    for config in sources {
        let e = RedisSource::spawn(config, |_| Ok(())).err();
        assert!(matches!(e, Some(ForwardError::Config(_))), "{e:?}");
    }
    // Strict decoding.
    let bad: [&[(&str, &str)]; 5] = [
        &[("ts", "1"), ("ext", "0")],
        &[("name", "a"), ("ts", "x"), ("ext", "0")],
        &[("name", "a"), ("ts", "1"), ("ext", "2")],
        &[("name", "a"), ("name", "b"), ("ts", "1"), ("ext", "0")],
        &[("name", "a"), ("ts", "1"), ("ext", "0"), ("p:", "v")],
    ];
    for fields in bad {
        assert!(decode_fields(fields).is_err(), "{fields:?}");
    }
}

#[test]
fn a_server_that_is_down_is_retried_until_close_gives_up() {
    // No server needed: a port nothing listens on.
    let port = free_port();
    let config = RedisConfig::new(&format!("redis://127.0.0.1:{port}/"), "s")
        .timeouts(Duration::from_millis(200), Duration::from_millis(200));
    let fwd = RedisForwarder::new(config).unwrap();
    evqueue::forward::Sink::write(
        &fwd,
        &[OwnedEvent {
            name: "a".into(),
            ..Default::default()
        }],
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let err = fwd.close(Duration::from_millis(100)).unwrap_err();
    assert!(err.to_string().contains("1 events"), "{err}");
    let stats = fwd.stats();
    assert_eq!(
        (
            stats.accepted,
            stats.written,
            stats.abandoned + stats.failed
        ),
        (1, 0, 1)
    );
    assert!(stats.retry.failures >= 1);
}

#[test]
fn poison_entries_go_to_the_dead_letter_hook_after_max_deliveries() {
    let Some(url) = redis_url("poison_entries_go_to_the_dead_letter_hook_after_max_deliveries")
    else {
        return;
    };
    const N: u64 = 20;
    let stream = unique("poison");
    let fwd = RedisForwarder::new(RedisConfig::new(&url, &stream)).unwrap();
    let events: Vec<OwnedEvent> = (0..N)
        .map(|i| OwnedEvent {
            name: "job".into(),
            properties: vec![("i".into(), i.to_string())],
            ..Default::default()
        })
        .collect();
    evqueue::forward::Sink::write(&fwd, &events).unwrap();
    fwd.close(Duration::from_secs(10)).unwrap();
    let runs = Arc::new(Mutex::new(0));
    let dead = Arc::new(Mutex::new(Vec::new()));
    let (r, d) = (runs.clone(), dead.clone());
    let config = SourceConfig::new(&url, &stream, "g", "c")
        .claim_idle(Duration::from_millis(50))
        .max_deliveries(3)
        .dead_letter(move |_id, e| d.lock().unwrap().push(e.clone()));
    let source = RedisSource::spawn(config, move |e| {
        if e.property("i") == Some("7") {
            *r.lock().unwrap() += 1;
            return Err("poison".into());
        }
        Ok(())
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while source.stats().dead_lettered == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    source.stop();
    let stats = source.stats();
    assert_eq!(
        (stats.handled, stats.dead_lettered),
        (N - 1, 1),
        "{stats:?}"
    );
    assert_eq!(
        *runs.lock().unwrap(),
        3,
        "the handler ran max_deliveries times"
    );
    assert_eq!(stats.handler_errors, 3);
    let dead = dead.lock().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].property("i"), Some("7"));
    let pending: Value = redis::cmd("XPENDING")
        .arg(&stream)
        .arg("g")
        .query(&mut con(&url))
        .unwrap();
    let Value::Array(summary) = pending else {
        panic!("{pending:?}")
    };
    assert_eq!(summary[0], Value::Int(0));
    del(&url, &stream);
}
