//! `SharedRing::open` over arbitrary file contents must return an error or
//! a ring, never panic or touch memory outside the mapping; a ring it
//! accepts must take pushes, claims and subscriber reads (and stats and a
//! wake) without panicking either. Seeds: `fuzz/corpus/shm_open/` (valid
//! files of 1 and 4 slots), so mutations start past the magic.
#![no_main]

use evqueue::{RecvError, SharedRing, Start};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("evq-fuzz-shm-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, data).expect("write the input file");
    let opened = SharedRing::open(&path);
    // The mapping outlives the name.
    let _ = std::fs::remove_file(&path);
    let Ok(ring) = opened else {
        return;
    };
    let mut buf = vec![0u8; ring.slot_bytes()];
    let mut sub = ring.subscribe(Start::Oldest);
    let payload = [0xa5u8; 24];
    let len = payload.len().min(ring.slot_bytes());
    if let Ok(p) = ring.mp_producer() {
        for _ in 0..4 {
            let _ = p.push(&payload[..len]);
        }
    } else if let Ok(mut p) = ring.producer() {
        for _ in 0..4 {
            let _ = p.push(&payload[..len]);
        }
    }
    ring.wake();
    // Bounded: validation keeps every stamp and cursor within a lap of
    // `head`, so the reads end; the bound turns a hang into a finding.
    let rounds = 2 * ring.capacity() + 16;
    for _ in 0..rounds {
        match ring.try_claim(&mut buf) {
            Err(RecvError::Empty | RecvError::Closed) => break,
            _ => {}
        }
    }
    for _ in 0..rounds {
        match sub.try_recv(&mut buf) {
            Err(RecvError::Empty | RecvError::Closed) => break,
            _ => {}
        }
    }
    let s = ring.stats();
    assert!(s.depth <= ring.capacity() as u64);
});
