//! The hot paths alone, for counting instructions with callgrind (no timing
//! noise, so it works on a busy machine): 100000 events of 64 bytes through
//! one queue, pushed in runs of 1000 and, for the `*_recv` modes, read back
//! after each run on the same thread. Every read is summed like the peers
//! bench's consumers do (all 8-byte words and the length). `evqueue_*` modes
//! hide the payload length from the compiler (`&[u8]` through `black_box`);
//! `evqueue_*_const` modes push a `&[u8; 64]`, as the peers bench does;
//! `evqueue_recv_batch` pushes like them and reads with `try_recv_batch`.
//!
//! ```sh
//! cargo build --release -p benches --example hot_path_ops
//! for m in evqueue_push evqueue_recv evqueue_push_const evqueue_recv_const \
//!          evqueue_recv_batch photon_push photon_recv; do
//!   valgrind --tool=callgrind --callgrind-out-file=/tmp/$m.cg \
//!     target/release/examples/hot_path_ops $m 2>&1 | grep refs
//! done
//! ```
//!
//! Instructions per event = (`*_recv*` - `*_push*`) / 100000 for a read
//! (`evqueue_recv_batch` - `evqueue_push_const` for a batch read), and
//! the inclusive cost under `main` minus the ring's allocation for a push
//! (`callgrind_annotate --inclusive=yes`).

use std::hint::black_box;
use std::process::ExitCode;

use evqueue::{Claim, HeapRing, Overflow, Start};

const EVENTS: u64 = 100_000;
const RUN: u64 = 1000;
const CAPACITY: usize = 65536;

fn digest(b: &[u8]) -> u64 {
    b.chunks_exact(8)
        .map(|w| u64::from_ne_bytes(w.try_into().unwrap()))
        .fold(b.len() as u64, u64::wrapping_add)
}

/// How the `evqueue` modes read back each run.
#[derive(Clone, Copy, PartialEq)]
enum Read {
    None,
    /// `Subscriber::try_recv`, one event per call.
    One,
    /// `Subscriber::try_recv_batch`, up to `BATCH` events per call.
    Batch,
}

const BATCH: usize = 32;

/// `const_len`: push a `&[u8; 64]` (the compiler sees the length, as with a
/// user's fixed-size struct and in the peers bench's `Tx::send`); otherwise
/// the length is hidden from it (a run-time length, as for encoded events).
fn evqueue(read: Read, const_len: bool) -> (u64, u64) {
    let ring = HeapRing::with_capacity(CAPACITY, 64, Overflow::Overwrite).expect("ring");
    let mut sub = ring.subscribe(Start::Now);
    let mut producer = ring.producer().expect("producer");
    let (bytes, mut buf) = ([7u8; 64], [0u8; 64]);
    let (mut batch, mut claims) = (vec![0u8; 64 * BATCH], [Claim::default(); BATCH]);
    let (mut got, mut sum) = (0, 0);
    for _ in 0..EVENTS / RUN {
        for _ in 0..RUN {
            if const_len {
                producer.push(black_box::<&[u8; 64]>(&bytes)).expect("push");
            } else {
                producer.push(black_box::<&[u8]>(&bytes)).expect("push");
            }
        }
        match read {
            Read::None => {}
            Read::One => {
                for _ in 0..RUN {
                    if let Ok(claim) = sub.try_recv(black_box(&mut buf)) {
                        sum += digest(&buf[..claim.len]);
                        got += 1;
                    }
                }
            }
            Read::Batch => {
                while let Ok(n) = sub.try_recv_batch(black_box(&mut batch), &mut claims) {
                    for (i, claim) in claims[..n].iter().enumerate() {
                        sum += digest(&batch[i * 64..i * 64 + claim.len]);
                    }
                    got += n as u64;
                }
            }
        }
    }
    (got, sum)
}

fn photon(recv: bool) -> (u64, u64) {
    let (mut publisher, subs) = photon_ring::channel::<[u8; 64]>(CAPACITY);
    let mut sub = subs.subscribe();
    let (mut got, mut sum) = (0, 0);
    for _ in 0..EVENTS / RUN {
        for _ in 0..RUN {
            publisher.publish(black_box([7u8; 64]));
        }
        if recv {
            for _ in 0..RUN {
                if let Ok(v) = sub.try_recv() {
                    sum += digest(&v);
                    got += 1;
                }
            }
        }
    }
    (got, sum)
}

fn main() -> ExitCode {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let (got, sum) = match mode.as_str() {
        "evqueue_push" => evqueue(Read::None, false),
        "evqueue_recv" => evqueue(Read::One, false),
        "evqueue_push_const" => evqueue(Read::None, true),
        "evqueue_recv_const" => evqueue(Read::One, true),
        "evqueue_recv_batch" => evqueue(Read::Batch, true),
        "photon_push" => photon(false),
        "photon_recv" => photon(true),
        _ => {
            eprintln!(
                "usage: hot_path_ops evqueue_push|evqueue_recv|evqueue_push_const|\
                 evqueue_recv_const|evqueue_recv_batch|photon_push|photon_recv"
            );
            return ExitCode::FAILURE;
        }
    };
    let want = if mode.contains("_recv") { EVENTS } else { 0 };
    if got != want || sum != got * digest(&[7u8; 64]) {
        eprintln!("{mode}: read {got} events (sum {sum}), expected {want}");
        return ExitCode::FAILURE;
    }
    println!("{mode}: {EVENTS} pushed, {got} read");
    ExitCode::SUCCESS
}
