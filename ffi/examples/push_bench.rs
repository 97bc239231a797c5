//! The Rust side of benches/c: the same pushes as benches/c/bench.c, made
//! from Rust on the core crate, so the script can report the FFI overhead
//! (C `evq_push` time / Rust `emit` time). Run by `bash benches/c/run.sh`.
//!
//! Same queue (65536 slots of 256 bytes, never started, overwrite), same
//! event, same method: best of 30 rounds, each timing 65535 pushes into an
//! empty ring and then draining it untimed with `try_pop_into`.

use evq_core::{Event, EventQueue};
use std::hint::black_box;
use std::time::Instant;

const CAPACITY: usize = 65536;
const ROUNDS: usize = 30;
const PER_ROUND: usize = CAPACITY - 1;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let queue = EventQueue::builder().capacity(CAPACITY).build_paused()?;
    let mut buf = vec![0u8; queue.slot_bytes()];
    let props = [("winner", "blue"), ("map", "dust2")];
    let event = Event::new("match_end")
        .properties(&props)
        .timestamp(1_700_000_000_000_000_000);
    let payload = [7u8; 48];

    let mut best_event = f64::MAX;
    let mut best_raw = f64::MAX;
    for _ in 0..ROUNDS {
        let t0 = Instant::now();
        for _ in 0..PER_ROUND {
            black_box(queue.emit(black_box(&event))?);
        }
        best_event = best_event.min(t0.elapsed().as_nanos() as f64 / PER_ROUND as f64);
        while queue.try_pop_into(&mut buf).is_ok() {}

        let t0 = Instant::now();
        for _ in 0..PER_ROUND {
            black_box(queue.emit_raw(black_box(&payload), 1)?);
        }
        best_raw = best_raw.min(t0.elapsed().as_nanos() as f64 / PER_ROUND as f64);
        while queue.try_pop_into(&mut buf).is_ok() {}
    }
    println!("rust_push_event {best_event:.2} ns");
    println!("rust_push_raw {best_raw:.2} ns");
    Ok(())
}
