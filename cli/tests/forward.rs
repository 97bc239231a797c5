//! `evqueue forward` against a real redis-server: events pushed into a
//! shared ring by this process reach the stream, in order and field for
//! field; SIGTERM stops it cleanly; events overwritten in the ring are
//! counted. Without a server: a bad URL is refused, and with Redis
//! unreachable the events stay in the ring.
//!
//! Needs `EVQUEUE_REDIS_URL` (scripts/test.sh starts a server and sets it,
//! as for core/tests/redis.rs); without it the tests that need a server say
//! so and return.
#![cfg(target_os = "linux")]

use evqueue::forward::redis::decode_fields;
use evqueue::{Event, OwnedEvent, SharedRing};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
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

/// A ring path and a stream name unique to this test run.
fn unique(what: &str) -> (PathBuf, String) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("evq-cli-forward-{what}-{}-{nanos}", std::process::id());
    (std::env::temp_dir().join(&name), name)
}

fn evqueue(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_evqueue"))
        .args(args)
        .output()
        .expect("run evqueue")
}

fn ok(args: &[&str]) -> String {
    let out = evqueue(args);
    assert!(
        out.status.success(),
        "evqueue {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The summary line's `key=value` fields.
fn summary(stdout: &str) -> BTreeMap<String, u64> {
    let line = stdout.lines().last().expect("a summary line");
    line.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("{line:?}"));
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

fn con(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap()
}

fn xlen(url: &str, stream: &str) -> u64 {
    redis::cmd("XLEN").arg(stream).query(&mut con(url)).unwrap()
}

/// Every entry of `stream`, decoded, in stream order (fields in entry
/// order: read as a flat list, not a map).
fn read_all(url: &str, stream: &str) -> Vec<OwnedEvent> {
    let reply: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(&mut con(url))
        .unwrap();
    reply
        .into_iter()
        .map(|(id, flat)| {
            assert_eq!(flat.len() % 2, 0, "entry {id}");
            let fields: Vec<(&[u8], &[u8])> = flat
                .chunks_exact(2)
                .map(|kv| (&kv[0][..], &kv[1][..]))
                .collect();
            decode_fields(&fields).unwrap_or_else(|e| panic!("entry {id}: {e}"))
        })
        .collect()
}

fn del(url: &str, stream: &str) {
    let _: () = redis::cmd("DEL").arg(stream).query(&mut con(url)).unwrap();
}

const T0: u64 = 1_700_000_000_000_000_000;

/// Event `i` of a test: properties and flags that vary with `i`.
fn push_events(ring: &SharedRing, from: u64, n: u64) {
    let producer = ring.mp_producer().unwrap();
    for i in from..from + n {
        let index = i.to_string();
        let winner = if i % 3 == 0 { "blue" } else { "red" };
        producer
            .push_event(
                &Event::new(if i % 2 == 0 { "match_end" } else { "purchase" })
                    .properties(&[("i", &index), ("winner", winner)])
                    .timestamp(T0 + i)
                    .external(i % 5 == 0),
            )
            .unwrap();
    }
    ring.wake();
}

fn check_events(events: &[OwnedEvent], from: u64) {
    for (k, e) in events.iter().enumerate() {
        let i = from + k as u64;
        assert_eq!(e.name, if i % 2 == 0 { "match_end" } else { "purchase" });
        assert_eq!(e.timestamp, T0 + i);
        assert_eq!(e.external, i % 5 == 0);
        let winner = if i % 3 == 0 { "blue" } else { "red" };
        assert_eq!(
            e.properties,
            [
                ("i".to_owned(), i.to_string()),
                ("winner".to_owned(), winner.to_owned())
            ],
            "entry {k}"
        );
    }
}

/// 1000 events pushed before the tool starts: `--count 1000` forwards
/// exactly them, in order, every field intact.
#[test]
fn forwards_a_thousand_events_in_order() {
    let Some(url) = redis_url("forwards_a_thousand_events_in_order") else {
        return;
    };
    let (path, stream) = unique("count");
    let p = path.to_str().unwrap();
    ok(&["create", p, "--capacity", "4096", "--slot-bytes", "128"]);
    let ring = SharedRing::open(&path).unwrap();
    push_events(&ring, 0, 1000);

    let out = ok(&[
        "forward", p, "--redis", &url, "--stream", &stream, "--count", "1000", "--batch", "64",
    ]);
    let s = summary(&out);
    assert_eq!(
        (s["claimed"], s["written"], s["lost"]),
        (1000, 1000, 0),
        "{out}"
    );
    assert_eq!(xlen(&url, &stream), 1000);
    let events = read_all(&url, &stream);
    assert_eq!(events.len(), 1000);
    check_events(&events, 0);
    // The tool took them from the worker group.
    let stats = ring.stats();
    assert_eq!((stats.delivered, stats.depth), (1000, 0));

    del(&url, &stream);
    SharedRing::remove(&path).unwrap();
}

/// Running until signalled: it sleeps while the ring is empty, forwards
/// what is pushed while it runs, and on SIGTERM flushes and reports.
#[test]
fn sigterm_flushes_and_reports() {
    let Some(url) = redis_url("sigterm_flushes_and_reports") else {
        return;
    };
    let (path, stream) = unique("term");
    let p = path.to_str().unwrap();
    ok(&["create", p, "--capacity", "1024", "--slot-bytes", "128"]);
    let ring = SharedRing::open(&path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_evqueue"))
        .args(["forward", p, "--redis", &url, "--stream", &stream])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let wait_until = |what: &str, done: &dyn Fn() -> bool| {
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_until("forward to sleep on the ring", &|| ring.waiters() > 0);
    push_events(&ring, 0, 300);
    wait_until("300 entries in the stream", &|| xlen(&url, &stream) == 300);
    // Asleep again, then stopped.
    wait_until("forward to sleep again", &|| ring.waiters() > 0);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(child.wait().unwrap().success());
    let s = summary(&line);
    assert_eq!(
        (s["claimed"], s["written"], s["lost"]),
        (300, 300, 0),
        "{line}"
    );
    check_events(&read_all(&url, &stream), 0);

    del(&url, &stream);
    SharedRing::remove(&path).unwrap();
}

/// Events overwritten in the ring before the tool claimed them are
/// counted, not forwarded; the rest are written.
#[test]
fn overwritten_events_are_counted() {
    let Some(url) = redis_url("overwritten_events_are_counted") else {
        return;
    };
    let (path, stream) = unique("lagged");
    let p = path.to_str().unwrap();
    ok(&["create", p, "--capacity", "64", "--slot-bytes", "128"]);
    let ring = SharedRing::open(&path).unwrap();
    push_events(&ring, 0, 200);
    let out = ok(&[
        "forward",
        p,
        "--redis",
        &url,
        "--stream",
        &stream,
        "--idle-exit",
        "200",
    ]);
    let s = summary(&out);
    assert_eq!(s["claimed"] + s["overwritten"], 200, "{out}");
    assert!(s["overwritten"] >= 200 - 64, "{out}");
    assert_eq!(s["written"], s["claimed"], "{out}");
    assert_eq!(s["lost"], s["overwritten"], "{out}");
    let events = read_all(&url, &stream);
    assert_eq!(events.len() as u64, s["claimed"]);
    // The newest survive, in order.
    check_events(&events, 200 - s["claimed"]);

    del(&url, &stream);
    SharedRing::remove(&path).unwrap();
}

/// No server needed: a bad URL is refused before anything is claimed.
#[test]
fn a_bad_url_is_refused() {
    let (path, _) = unique("badurl");
    let p = path.to_str().unwrap();
    ok(&["create", p, "--capacity", "64", "--slot-bytes", "128"]);
    let out = evqueue(&["forward", p, "--redis", "not a url", "--stream", "s"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad redis url"), "{err}");
    assert_eq!(SharedRing::open(&path).unwrap().stats().delivered, 0);
    SharedRing::remove(&path).unwrap();
}

/// No server needed: with Redis unreachable, `forward` claims no more than
/// the forwarder's buffer (4 batches) and leaves the rest in the ring;
/// SIGTERM gives up on what it holds after `--close-timeout`, counts it
/// lost, and exits nonzero.
#[test]
fn with_redis_down_events_stay_in_the_ring() {
    let (path, _) = unique("down");
    let p = path.to_str().unwrap();
    ok(&["create", p, "--capacity", "4096", "--slot-bytes", "128"]);
    let ring = SharedRing::open(&path).unwrap();
    push_events(&ring, 0, 2000);
    // Port 1 on loopback: nothing listens, every connect is refused.
    let child = Command::new(env!("CARGO_BIN_EXE_evqueue"))
        .args([
            "forward",
            p,
            "--redis",
            "redis://127.0.0.1:1/",
            "--stream",
            "s",
        ])
        .args(["--batch", "64", "--close-timeout", "300"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ring.stats().delivered < 4 * 64 {
        assert!(Instant::now() < deadline, "forward claimed nothing");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ring.stats().delivered, 4 * 64, "claimed past its buffer");
    assert_eq!(ring.stats().depth, 2000 - 4 * 64);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("did not finish"), "{stderr}");
    let s = summary(&stdout);
    assert_eq!(
        (s["claimed"], s["written"], s["lost"]),
        (256, 0, 256),
        "{stdout}"
    );
    assert_eq!(s["failed"] + s["abandoned"], 256, "{stdout}");
    SharedRing::remove(&path).unwrap();
}
