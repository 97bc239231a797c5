//! The `evqueue` binary end to end: create a ring, push into it from this
//! (another) process, read its stats, tail it as JSON lines, push with the
//! tool itself, remove it; and a clear error for a ring that is not there.
#![cfg(target_os = "linux")]

use evqueue::{Event, SharedRing};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

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
        "evqueue {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[test]
fn create_push_stats_tail_remove() {
    let path: PathBuf = std::env::temp_dir().join(format!("evq-cli-{}", std::process::id()));
    let p = path.to_str().unwrap();
    let _ = std::fs::remove_file(&path);

    let created = ok(&["create", p, "--capacity", "64", "--slot-bytes", "128"]);
    assert_eq!(created.trim(), p);
    // O_EXCL: a second create fails and says why.
    let again = evqueue(&["create", p]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("File exists"));

    // Another process (this test) pushes.
    {
        let ring = SharedRing::open(&path).unwrap();
        let producer = ring.mp_producer().unwrap();
        for winner in ["blue", "red", "blue"] {
            producer
                .push_event(&Event::new("match_end").properties(&[("winner", winner)]))
                .unwrap();
        }
        producer.push_framed_raw(&[1, 2, 255], 7).unwrap();
        ring.wake();
    }

    let stats = ok(&["stats", p]);
    assert!(stats
        .contains("# TYPE evqueue_events_pushed_total counter\nevqueue_events_pushed_total 4\n"));
    assert!(stats.contains("evqueue_queue_depth 4\n"));
    assert!(stats.contains("evqueue_queue_capacity 64\n"));

    let lines = json_lines(&ok(&["tail", p, "--from", "oldest", "--count", "4"]));
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["seq"], 0);
    assert_eq!(lines[0]["name"], "match_end");
    assert_eq!(lines[0]["properties"]["winner"], "blue");
    assert_eq!(lines[1]["properties"]["winner"], "red");
    assert_eq!(lines[0]["external"], false);
    assert_eq!(lines[3]["raw"], "0102ff");
    assert_eq!(lines[3]["timestamp"], 7);
    // Tailing took nothing from the worker group.
    assert!(ok(&["stats", p]).contains("evqueue_events_delivered_total 0\n"));

    // The tool pushes too; a tail from now with an idle exit sees nothing old.
    assert_eq!(
        ok(&["push", p, "purchase", "sku=gem_pack", "price=499"]).trim(),
        "4"
    );
    assert_eq!(ok(&["tail", p, "--idle-exit", "50"]), "");
    let lines = json_lines(&ok(&["tail", p, "--from", "oldest", "--idle-exit", "100"]));
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[4]["name"], "purchase");
    assert_eq!(lines[4]["properties"]["price"], "499");
    let bad = evqueue(&["push", p, "purchase", "novalue"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not KEY=VALUE"));

    // A tail ends when the ring is closed.
    SharedRing::open(&path).unwrap().close();
    assert_eq!(json_lines(&ok(&["tail", p])).len(), 0);

    ok(&["remove", p]);
    assert!(!path.exists());
    let missing = evqueue(&["stats", p]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("open failed") && err.contains(p), "{err}");
}

/// `tail` in its own process sleeps in `wait_for` and is woken by pushes
/// from this one: every event arrives, in order, as it is pushed.
#[test]
fn tail_follows_a_live_producer() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let path: PathBuf = std::env::temp_dir().join(format!("evq-cli-live-{}", std::process::id()));
    let p = path.to_str().unwrap();
    let _ = std::fs::remove_file(&path);
    ok(&["create", p, "--capacity", "1024", "--slot-bytes", "64"]);
    let ring = SharedRing::open(&path).unwrap();
    let mut tail = Command::new(env!("CARGO_BIN_EXE_evqueue"))
        .args(["tail", p, "--count", "200"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // `tail` subscribes from now: wait until it sleeps on the ring.
    let start = std::time::Instant::now();
    while ring.waiters() == 0 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "tail never waited"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let producer = ring.mp_producer().unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    for i in 0..200u32 {
        let n = i.to_string();
        producer
            .push_event(&Event::new("tick").properties(&[("n", &n)]))
            .unwrap();
        ring.wake();
        if i % 50 == 49 {
            // Let it catch up and sleep again now and then.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    for i in 0..200u32 {
        let line = lines.next().expect("a line per event").unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["properties"]["n"], i.to_string(), "{line}");
    }
    assert!(tail.wait().unwrap().success());
    SharedRing::remove(&path).unwrap();
}
