//! JSON ingestion: the cost per byte of the most expensive bodies a hostile
//! client can send, against benign bodies of the same size. Figures are per
//! body byte (`Throughput::Bytes`); every body is close to [`MAX_JSON_BYTES`]
//! (64 KiB), the largest accepted. Three groups, same shapes:
//! `json_parse/*` is [`parse_event`] (owned strings out), `json_emit/*` is
//! `EventQueue::emit_json` into a paused queue with slots big enough for
//! any accepted body (parse, check, push), and `json_floor/*` is serde_json
//! walking the body into `IgnoredAny`: the tokenizer alone.
//!
//! Shapes:
//!
//! - `benign/one_value`: one property whose value fills the body.
//! - `benign/16_props`: 16 properties, values of about 4 KiB.
//! - `keys/short_distinct`: as many distinct 3-byte keys as fit (about 7,300),
//!   accepted. The old duplicate-key check compared every pair of keys.
//! - `keys/short_then_duplicate`: the same, then the first key again: refused.
//! - `keys/same_repeated`: one key repeated to fill the body: refused.
//! - `keys/long_8`, `keys/long_64`: 8 or 64 keys of equal length, the last
//!   one a duplicate of the first, differing only in their last bytes (the
//!   longest common prefix a comparison must read); 8 is the most the
//!   pairwise scan handles (above that, a hash set). Refused.
//! - `keys/escaped`: short keys written as `\u` escapes, so the parser
//!   unescapes every key. Accepted.
//! - `nesting/array`, `nesting/in_properties`: `[` repeated to fill the
//!   body, at the top and where a property value belongs: refused at the
//!   first `[`.
//!
//! `cargo bench -p benches --bench json` takes about 80 s;
//! `cargo test -p benches --bench json` checks every row's outcome once.
//!
//! Instructions per body byte (callgrind, release build, a scratch program
//! running each shape 2 and 12 times, the difference divided by 10; not
//! timed, so independent of a busy machine):
//!
//! | shape | `parse_event` | `emit_json` | serde_json alone | before the fix |
//! | --- | --- | --- | --- | --- |
//! | benign/one_value | 3.7 | 3.5 | 2.3 | 3.9 |
//! | benign/16_props | 3.3 | 3.8 | 2.3 | 3.4 |
//! | keys/short_distinct | 126 | 93 | 26 | quadratic |
//! | keys/short_then_duplicate | 80 | 80 | 26 | 13,088 |
//! | keys/same_repeated | 64 | 64 | 34 | |
//! | keys/long_8, long_64 | 5.2, 6.3 | 5.2, 6.3 | 2.3, 2.5 | 5.6, 9.7 |
//! | keys/escaped | 69 | 73 | 23 | |
//! | nesting/* | 0.1 | 0.1 | 53 | |
//!
//! So the worst body costs about 25 times a benign one of the same size per
//! byte, and about 3 times what serde_json alone spends walking it: the rest
//! is per-token work (a key, a value, UTF-8 checks, one hash per key) that a
//! body of thousands of tiny properties has and a body of a few long values
//! has not.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use evqueue::json::{parse_event, JsonError, MAX_JSON_BYTES};
use evqueue::EventQueue;
use serde::de::IgnoredAny;

/// What a body must parse to; checked once per row before timing.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    Accepted,
    Shape,
}

/// `{"name":"bench","properties":{` + entries + `}}`, where `entry(i)` is
/// the i-th `"key":"value"` text; as many entries as fit in 64 KiB (at most
/// `limit`), then `last` if given.
fn properties_body(limit: usize, entry: impl Fn(usize) -> String, last: Option<&str>) -> String {
    let head = r#"{"name":"bench","properties":{"#;
    let tail = "}}";
    let room = MAX_JSON_BYTES - tail.len() - last.map_or(0, |l| l.len() + 1);
    let mut body = String::from(head);
    for i in 0..limit {
        let e = entry(i);
        if body.len() + e.len() + 1 > room {
            break;
        }
        if i > 0 {
            body.push(',');
        }
        body.push_str(&e);
    }
    if let Some(l) = last {
        body.push(',');
        body.push_str(l);
    }
    body.push_str(tail);
    assert!(body.len() <= MAX_JSON_BYTES);
    body
}

/// A 3-byte key from a 52-letter alphabet: 140,608 distinct keys.
fn short_key(i: usize) -> String {
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let n = A.len();
    let bytes = [A[i / (n * n) % n], A[i / n % n], A[i % n]];
    String::from_utf8(bytes.to_vec()).expect("ASCII")
}

/// `keys` keys of the same length, sharing all but their last 4 bytes; the
/// last repeats the first.
fn long_keys(keys: usize) -> String {
    let len = MAX_JSON_BYTES / keys - 8;
    let key = |i: usize| format!("{}{i:04}", "k".repeat(len - 4));
    let last = format!(r#""{}":"""#, key(0));
    properties_body(keys - 1, |i| format!(r#""{}":"""#, key(i)), Some(&last))
}

fn shapes() -> Vec<(&'static str, String, Outcome)> {
    let value = |len: usize| "v".repeat(len);
    let one_value = {
        let shell = r#"{"name":"bench","properties":{"k":""}}"#.len();
        format!(
            r#"{{"name":"bench","properties":{{"k":"{}"}}}}"#,
            value(MAX_JSON_BYTES - shell)
        )
    };
    let sixteen = properties_body(
        16,
        |i| format!(r#""key{i:02}":"{}""#, value(MAX_JSON_BYTES / 16 - 16)),
        None,
    );
    let short = |i: usize| format!(r#""{}":"""#, short_key(i));
    let escaped = |i: usize| {
        let k = short_key(i);
        let esc: String = k.bytes().map(|b| format!("\\u{b:04x}")).collect();
        format!(r#""{esc}":"""#)
    };
    let nested = |prefix: &str, suffix: &str| {
        let fill = MAX_JSON_BYTES - prefix.len() - suffix.len();
        format!("{prefix}{}{suffix}", "[".repeat(fill))
    };
    vec![
        ("benign/one_value", one_value, Outcome::Accepted),
        ("benign/16_props", sixteen, Outcome::Accepted),
        (
            "keys/short_distinct",
            properties_body(usize::MAX, short, None),
            Outcome::Accepted,
        ),
        (
            "keys/short_then_duplicate",
            properties_body(usize::MAX, short, Some(r#""aaa":"""#)),
            Outcome::Shape,
        ),
        (
            "keys/same_repeated",
            properties_body(usize::MAX, |_| r#""k":"""#.to_owned(), None),
            Outcome::Shape,
        ),
        ("keys/long_8", long_keys(8), Outcome::Shape),
        ("keys/long_64", long_keys(64), Outcome::Shape),
        (
            "keys/escaped",
            properties_body(usize::MAX, escaped, None),
            Outcome::Accepted,
        ),
        ("nesting/array", nested("", ""), Outcome::Shape),
        (
            "nesting/in_properties",
            nested(r#"{"name":"bench","properties":{"k":"#, ""),
            Outcome::Shape,
        ),
    ]
}

fn check(name: &str, body: &str, want: Outcome) {
    let got = parse_event(body.as_bytes());
    let ok = match want {
        Outcome::Accepted => got.is_ok(),
        Outcome::Shape => matches!(got, Err(JsonError::Shape(_))),
    };
    assert!(
        ok,
        "{name} ({} bytes): want {want:?}, got {got:?}",
        body.len()
    );
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("json_parse");
    for (name, body, want) in shapes() {
        check(name, &body, want);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let _ = black_box(parse_event(black_box(body.as_bytes())));
            })
        });
    }
    g.finish();
}

/// `emit_json` into a paused queue whose slots hold any accepted body: the
/// whole ingestion path (parse, check, encode, push) for each shape.
fn emit(c: &mut Criterion) {
    let queue = EventQueue::builder()
        .capacity(4)
        .slot_bytes(2 * MAX_JSON_BYTES)
        .workers(1)
        .build_paused()
        .expect("bench queue");
    let mut g = c.benchmark_group("json_emit");
    for (name, body, want) in shapes() {
        let got = queue.emit_json(body.as_bytes(), true);
        assert_eq!(
            got.is_ok(),
            matches!(want, Outcome::Accepted),
            "{name}: {got:?}"
        );
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let _ = black_box(queue.emit_json(black_box(body.as_bytes()), true));
            })
        });
    }
    g.finish();
}

/// serde_json alone walking each body without keeping anything
/// (`IgnoredAny`): the tokenizer's own cost per byte, which no parser built
/// on it can beat.
fn floor(c: &mut Criterion) {
    let mut g = c.benchmark_group("json_floor");
    for (name, body, _) in shapes() {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let _ = black_box(serde_json::from_slice::<IgnoredAny>(black_box(
                    body.as_bytes(),
                )));
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = json_benches;
    config = config();
    targets = parse, emit, floor
}
criterion_main!(json_benches);
