//! The gateway over real loopback connections: in process (a server on port
//! 0 in a runtime of its own) and, for SIGTERM, the example as a process.

use evqueue::{EventQueue, Overflow};
use evqueue_gateway::client::{Client, Reply};
use evqueue_gateway::{Gateway, Mode, ServeReport, DEFAULT_BODY_LIMIT};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const GOOD: &[u8] =
    br#"{"name": "level_up", "properties": {"level": "7"}, "timestamp": "2026-11-23T05:00:00Z"}"#;

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<ServeReport>>,
}

impl Server {
    fn start(gateway: Gateway) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let stopped = async move {
                    let _ = stopped.await;
                };
                Arc::new(gateway)
                    .serve(listener, stopped, Duration::from_secs(10))
                    .await
            })
        });
        Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn client(&self) -> Client {
        Client::connect(self.addr).unwrap()
    }

    fn stop(mut self) -> ServeReport {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A started queue whose catch-all counts events by name and records
/// whether each came from a client.
fn counting_queue(
    builder: evqueue::EventQueueBuilder,
) -> (Arc<EventQueue>, Arc<Mutex<HashMap<String, u64>>>) {
    let queue = Arc::new(builder.build().unwrap());
    let counts: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let c = counts.clone();
    queue.on_any(move |event| {
        let key = if event.external {
            event.name.to_owned()
        } else {
            format!("internal:{}", event.name)
        };
        *c.lock().unwrap().entry(key).or_default() += 1;
        Ok(())
    });
    (queue, counts)
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn a_valid_event_is_202_and_handled_as_external() {
    let (queue, counts) = counting_queue(EventQueue::builder().capacity(64).workers(2));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    queue
        .on("level_up", move |e| {
            s.lock()
                .unwrap()
                .push((e.properties().get("level").map(str::to_owned), e.timestamp));
            Ok(())
        })
        .unwrap();
    let server = Server::start(Gateway::new(queue.clone()));
    let mut client = server.client();
    for _ in 0..3 {
        let reply = client.post("/v2/event", GOOD).unwrap();
        assert_eq!(reply.status, 202, "{}", reply.text());
        assert!(reply.body.is_empty());
    }
    queue.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(counts.lock().unwrap().get("level_up"), Some(&3));
    assert_eq!(counts.lock().unwrap().len(), 1, "every event external");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(seen
        .iter()
        .all(|(level, ts)| level.as_deref() == Some("7") && *ts == 1_795_410_000_000_000_000));
    drop(client);
    assert_eq!(server.stop().connections, 1);
}

#[test]
fn bad_bodies_are_400_with_the_error_text_and_push_nothing() {
    let (queue, _) = counting_queue(EventQueue::builder().capacity(64).workers(1));
    let server = Server::start(Gateway::new(queue.clone()));
    // One keep-alive connection: a 400 does not close it.
    let mut client = server.client();
    let cases: [(&[u8], &str); 8] = [
        (b"", "malformed JSON"),
        (br#"{"name": "level_up""#, "malformed JSON"),
        (br#"[{"name": "level_up"}]"#, "JSON is not an event"),
        (br#""level_up""#, "JSON is not an event"),
        (
            br#"{"name": "x", "properties": {"level": 7}}"#,
            "JSON is not an event",
        ),
        (
            br#"{"name": "x", "external": true}"#,
            "JSON is not an event",
        ),
        (
            br#"{"name": "x", "timestamp": "yesterday"}"#,
            "invalid event timestamp",
        ),
        (br#"{"name": ""}"#, "invalid event"),
    ];
    for (body, expected) in cases {
        let reply = client.post("/v2/event", body).unwrap();
        let shown = String::from_utf8_lossy(body);
        assert_eq!(reply.status, 400, "{shown}: {}", reply.text());
        assert!(
            reply.text().starts_with(expected),
            "{shown}: {}",
            reply.text()
        );
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
    }
    // Invalid UTF-8 inside a string.
    let reply = client.post("/v2/event", b"{\"name\": \"\xff\"}").unwrap();
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(queue.stats().ring.pushed, 0);
    // The same connection still serves a good event.
    assert_eq!(client.post("/v2/event", GOOD).unwrap().status, 202);
    assert_eq!(queue.stats().ring.pushed, 1);
}

#[test]
fn bodies_over_the_limit_are_413_and_the_limit_itself_is_not() {
    let (queue, counts) = counting_queue(EventQueue::builder().capacity(64).workers(1));
    let server = Server::start(Gateway::new(queue.clone()));
    let limit = DEFAULT_BODY_LIMIT;

    // Exactly at the limit (a valid event padded with spaces): accepted.
    let mut at_limit = GOOD.to_vec();
    at_limit.resize(limit, b' ');
    let mut client = server.client();
    let reply = client.post("/v2/event", &at_limit).unwrap();
    assert_eq!(reply.status, 202, "{}", reply.text());

    // One byte more, declared in Content-Length: refused from the headers,
    // before any of the body is sent, and the connection is closed.
    let mut client = server.client();
    let head = format!(
        "POST /v2/event HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        limit + 1
    );
    client.send_raw(head.as_bytes()).unwrap();
    let reply = client.read_reply().unwrap();
    assert_eq!(reply.status, 413);
    assert_eq!(
        reply.text(),
        format!(
            "body is {} bytes, more than the limit of {limit}\n",
            limit + 1
        )
    );
    assert_eq!(reply.header("connection"), Some("close"));
    assert!(client.is_closed_by_server());

    // A declared size far beyond any buffer: the same, instantly.
    let mut client = server.client();
    client
        .send_raw(b"POST /v2/event HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n")
        .unwrap();
    assert_eq!(client.read_reply().unwrap().status, 413);

    // Chunked, with no length up front: refused once the limit is passed.
    // The chunks go out one by one while the server reads, so the refusal
    // arrives while the client is still sending; the rest is never read.
    let mut client = server.client();
    client
        .send_raw(b"POST /v2/event HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let chunk = format!("1000\r\n{}\r\n", " ".repeat(0x1000));
    let mut sent = 0;
    while sent <= limit {
        client.send_raw(chunk.as_bytes()).unwrap();
        sent += 0x1000;
    }
    let reply = client.read_reply().unwrap();
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert_eq!(
        reply.text(),
        format!("body is more than the limit of {limit} bytes\n")
    );

    queue.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(queue.stats().ring.pushed, 1);
    assert_eq!(counts.lock().unwrap().get("level_up"), Some(&1));
    let metrics = server.client().get("/metrics").unwrap().text();
    assert_eq!(
        metric(&metrics, "evqueue_gateway_responses_total{code=\"413\"}"),
        3
    );
}

#[test]
fn a_smaller_configured_limit_is_enforced() {
    let (queue, _) = counting_queue(EventQueue::builder().capacity(64).workers(1));
    let server = Server::start(Gateway::new(queue.clone()).body_limit(GOOD.len() - 1));
    let reply = server.client().post("/v2/event", GOOD).unwrap();
    assert_eq!(reply.status, 413);
    assert_eq!(queue.stats().ring.pushed, 0);
}

#[test]
fn concurrent_clients_each_get_every_event_through() {
    const CLIENTS: usize = 8;
    const EACH: usize = 250;
    let (queue, counts) = counting_queue(
        EventQueue::builder()
            .capacity(1024)
            .workers(2)
            .overflow(Overflow::Reject),
    );
    let server = Server::start(Gateway::new(queue.clone()));
    let addr = server.addr;
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            std::thread::spawn(move || {
                let mut client = Client::connect(addr).unwrap();
                let body = format!(r#"{{"name": "client_{i}", "properties": {{"n": "1"}}}}"#);
                let mut statuses = HashMap::<u16, usize>::new();
                for _ in 0..EACH {
                    *statuses
                        .entry(client.post("/v2/event", body.as_bytes()).unwrap().status)
                        .or_default() += 1;
                }
                statuses
            })
        })
        .collect();
    for t in threads {
        // A 503 here would mean the 1024-slot queue filled up: possible in
        // principle with Reject, so count it rather than forbid it.
        let statuses = t.join().unwrap();
        assert_eq!(statuses.values().sum::<usize>(), EACH);
        assert!(
            statuses.keys().all(|s| *s == 202 || *s == 503),
            "{statuses:?}"
        );
    }
    queue.flush(Duration::from_secs(10)).unwrap();
    let stats = queue.stats();
    let counts = counts.lock().unwrap();
    assert_eq!(stats.ring.pushed, (CLIENTS * EACH) as u64);
    assert_eq!(
        counts.values().sum::<u64>() + stats.ring.rejected,
        (CLIENTS * EACH) as u64
    );
    let metrics = server.client().get("/metrics").unwrap().text();
    assert_eq!(
        metric(&metrics, "evqueue_gateway_responses_total{code=\"202\"}"),
        counts.values().sum::<u64>()
    );
    assert_eq!(
        metric(&metrics, "evqueue_gateway_responses_total{code=\"503\"}"),
        stats.ring.rejected
    );
    assert_eq!(server.stop().connections, CLIENTS as u64 + 1);
}

#[test]
fn a_full_reject_queue_is_503_and_a_closed_one_too() {
    // Paused: no worker drains, so the fifth event finds the ring full.
    let queue = Arc::new(
        EventQueue::builder()
            .capacity(4)
            .workers(1)
            .overflow(Overflow::Reject)
            .build_paused()
            .unwrap(),
    );
    let server = Server::start(Gateway::new(queue.clone()));
    let mut client = server.client();
    for _ in 0..4 {
        assert_eq!(client.post("/v2/event", GOOD).unwrap().status, 202);
    }
    let reply = client.post("/v2/event", GOOD).unwrap();
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert!(reply.text().contains("queue full"));
    let metrics = client.get("/metrics").unwrap().text();
    assert_eq!(metric(&metrics, "evqueue_events_rejected_total"), 1);
    assert_eq!(
        metric(&metrics, "evqueue_gateway_responses_total{code=\"503\"}"),
        1
    );
    // A bad body is still a 400, full queue or not.
    assert_eq!(client.post("/v2/event", b"{}").unwrap().status, 400);

    queue.start().unwrap();
    let report = queue.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!((report.handled, report.rejected, report.left), (4, 1, 0));
    let reply = client.post("/v2/event", GOOD).unwrap();
    assert_eq!(reply.status, 503);
    assert_eq!(reply.text(), "shutting down\n");
    assert_eq!(reply.header("connection"), Some("close"));
}

#[test]
fn metrics_floor_and_routing() {
    let (queue, _) = counting_queue(EventQueue::builder().capacity(64).workers(1));
    let server = Server::start(Gateway::new(queue.clone()));
    let mut client = server.client();
    client.post("/v2/event", GOOD).unwrap();
    client.post("/v2/event", GOOD).unwrap();
    client.post("/v2/event", b"nope").unwrap();
    queue.flush(Duration::from_secs(10)).unwrap();
    let reply = client.get("/metrics").unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = reply.text();
    assert!(
        text.contains("# TYPE evqueue_events_pushed_total counter\n"),
        "{text}"
    );
    assert_eq!(metric(&text, "evqueue_events_pushed_total"), 2);
    assert_eq!(metric(&text, "evqueue_events_handled_total"), 2);
    assert_eq!(
        metric(&text, "evqueue_gateway_responses_total{code=\"202\"}"),
        2
    );
    assert_eq!(
        metric(&text, "evqueue_gateway_responses_total{code=\"400\"}"),
        1
    );
    // The scrape itself is counted after it is rendered.
    assert_eq!(
        metric(&text, "evqueue_gateway_responses_total{code=\"200\"}"),
        0
    );

    let reply = client.get("/v2/event").unwrap();
    assert_eq!((reply.status, reply.header("allow")), (405, Some("POST")));
    let reply = client.post("/metrics", b"").unwrap();
    assert_eq!((reply.status, reply.header("allow")), (405, Some("GET")));
    assert_eq!(client.get("/").unwrap().status, 404);
    assert_eq!(client.post("/v2/events", GOOD).unwrap().status, 404);

    // The floor answers 202 without parsing or emitting.
    let (queue, _) = counting_queue(EventQueue::builder().capacity(64).workers(1));
    let floor = Server::start(Gateway::new(queue.clone()).mode(Mode::Floor));
    assert_eq!(
        floor
            .client()
            .post("/v2/event", b"not json")
            .unwrap()
            .status,
        202
    );
    assert_eq!(queue.stats().ring.pushed, 0);
}

#[test]
fn stopping_closes_idle_keep_alive_connections_and_refuses_new_ones() {
    let (queue, _) = counting_queue(EventQueue::builder().capacity(64).workers(1));
    let server = Server::start(Gateway::new(queue));
    let addr = server.addr;
    let mut idle = server.client();
    assert_eq!(idle.post("/v2/event", GOOD).unwrap().status, 202);
    let report = server.stop();
    assert_eq!(
        report,
        ServeReport {
            connections: 1,
            cut_off: 0,
            accept_errors: 0
        }
    );
    assert!(idle.is_closed_by_server());
    assert!(std::net::TcpStream::connect(addr).is_err());
}

fn post_reply(addr: SocketAddr, body: &[u8]) -> Reply {
    Client::connect(addr)
        .unwrap()
        .post("/v2/event", body)
        .unwrap()
}

/// The example as a process: events accepted before SIGTERM are all
/// handled (one worker, 5 ms each, so most are still queued when the signal
/// arrives), then it exits 0.
#[cfg(unix)]
#[test]
fn sigterm_drains_the_queue_and_exits_0() {
    const EVENTS: usize = 60;
    let mut child = Command::new(env!("CARGO_BIN_EXE_http_gateway"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--handle-ms",
            "5",
            "--summary-secs",
            "0",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr: SocketAddr = first
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .parse()
        .unwrap();
    let mut client = Client::connect(addr).unwrap();
    for i in 0..EVENTS {
        let name = if i % 3 == 0 { "match_end" } else { "level_up" };
        let body = format!(r#"{{"name": "{name}"}}"#);
        assert_eq!(
            client.post("/v2/event", body.as_bytes()).unwrap().status,
            202
        );
    }
    assert_eq!(post_reply(addr, b"[]").status, 400);
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{status}\n{rest}");
    assert!(rest.starts_with("SIGTERM\n"), "{rest}");
    let expected = format!("shutdown: pushed={EVENTS} handled={EVENTS} lost=0 errors=0 panics=0 left=0 timed_out=false\n");
    assert!(rest.contains(&expected), "{rest}");
    assert!(
        rest.contains(&format!(
            "total level_up {}\ntotal match_end {}\n",
            EVENTS - EVENTS / 3,
            EVENTS / 3
        )),
        "{rest}"
    );
    // The idle keep-alive connection was closed, not left hanging.
    assert!(client.is_closed_by_server());
}
