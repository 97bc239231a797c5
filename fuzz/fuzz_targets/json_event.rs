//! JSON ingestion must never panic, whatever it accepts must be one JSON
//! object (never an array read field by field), and it must encode, push
//! and decode back to the same event.
#![no_main]

use evqueue::{EventQueue, Payload};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn queue() -> &'static EventQueue {
    static QUEUE: OnceLock<EventQueue> = OnceLock::new();
    QUEUE.get_or_init(|| {
        EventQueue::builder()
            .capacity(2)
            .slot_bytes(4096)
            .workers(1)
            .build_paused()
            .expect("queue")
    })
}

fuzz_target!(|body: &[u8]| {
    let Ok(parsed) = evqueue::json::parse_event(body) else {
        return;
    };
    // JSON's whitespace is these four; an accepted body is `{ ... }` inside it.
    let json_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let first = body.iter().position(|b| !json_ws(b));
    let last = body.iter().rposition(|b| !json_ws(b));
    assert!(
        matches!((first, last), (Some(f), Some(l)) if body[f] == b'{' && body[l] == b'}'),
        "accepted a body that is not one object: {:?}",
        String::from_utf8_lossy(body)
    );
    let queue = queue();
    if queue.emit_json(body, true).is_err() {
        return; // valid, but larger than a 4 KiB slot
    }
    let mut buf = vec![0u8; queue.slot_bytes()];
    let claim = queue.try_pop_into(&mut buf).expect("the event just pushed");
    let Ok(Payload::Event(event)) = claim.payload(&buf) else {
        panic!("an accepted body did not decode back");
    };
    assert_eq!(event.name, parsed.name);
    assert!(event.external);
    let props: Vec<(String, String)> = event
        .properties()
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(props, parsed.properties);
    if parsed.timestamp != 0 {
        assert_eq!(event.timestamp, parsed.timestamp);
    }
});
