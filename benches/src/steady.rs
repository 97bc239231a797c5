//! The steady-state loop of `benches/steady.rs`, shared with the benches
//! that compare against its rows (`benches/shm.rs` reuses the ringbuf row):
//! one producer and one consumer thread, [`SPINS`] pause hints then
//! `yield_now` when a lossless queue is full or a reader finds nothing,
//! every payload carrying its sequence number in every word and checked
//! word by word by the reader.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering::*};

use crate::peers::{Poll, Rx, Tx};
use crate::{time_two_threads, Backoff};

/// Spins before a waiting producer or consumer yields (the same for all).
pub const SPINS: u32 = 128;

/// Payload `seq`: every 8-byte word holds `seq`.
#[inline(always)]
pub fn payload_of<const N: usize>(seq: u64) -> [u8; N] {
    let mut p = [0u8; N];
    for w in p.chunks_exact_mut(8) {
        w.copy_from_slice(&seq.to_ne_bytes());
    }
    p
}

/// Checks a delivered payload (every word the same, later than the last
/// one) and returns its sequence number.
#[inline(always)]
pub fn check_payload<const N: usize>(bytes: &[u8], last: Option<u64>) -> u64 {
    assert_eq!(bytes.len(), N, "payload length");
    let mut words = bytes
        .chunks_exact(8)
        .map(|w| u64::from_ne_bytes(w.try_into().unwrap()));
    let seq = words.next().unwrap();
    assert!(words.all(|w| w == seq), "torn payload at {seq}");
    assert!(last.is_none_or(|l| seq > l), "{seq} after {last:?}");
    seq
}

/// `rounds` multiply-adds on `seq`: a reader's stand-in work per event.
#[inline(always)]
pub fn work(seq: u64, rounds: u32) -> u64 {
    let mut x = seq;
    for _ in 0..rounds {
        x = black_box(
            x.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        );
    }
    x
}

/// What one [`run`] measured.
pub struct Outcome {
    /// From the first thread's start to the last one's stop.
    pub secs: f64,
    /// Payloads pushed.
    pub pushed: u64,
    /// Payloads delivered.
    pub delivered: u64,
}

/// Pushes `total` payloads (spinning while full), and receives on the other
/// thread until every payload arrived (lossless) or the producer finished
/// and the queue is empty (lossy).
pub fn run<const N: usize>(
    mut tx: impl Tx<N>,
    mut rx: impl Rx<N>,
    total: u64,
    lossy: bool,
    work_rounds: u32,
) -> Outcome {
    let done = AtomicBool::new(false);
    let (elapsed, (), (delivered, _)) = time_two_threads(
        || {
            for seq in 0..total {
                let p = payload_of::<N>(seq);
                let mut backoff = Backoff::new(SPINS);
                while !tx.send(&p) {
                    assert!(!lossy, "a lossy queue refused a push");
                    backoff.snooze();
                }
            }
            done.store(true, Release);
        },
        || {
            let (mut got, mut last, mut sink) = (0u64, None, 0u64);
            let mut f = |bytes: &[u8]| {
                let seq = check_payload::<N>(bytes, last);
                last = Some(seq);
                sink = sink.wrapping_add(work(seq, work_rounds));
            };
            let mut backoff = Backoff::new(SPINS);
            loop {
                let finished = done.load(Acquire);
                match rx.poll(&mut f) {
                    Poll::Got(n) => {
                        got += n;
                        backoff = Backoff::new(SPINS);
                        if !lossy && got == total {
                            break;
                        }
                    }
                    Poll::Lagged(_) => {}
                    Poll::Empty if finished && lossy => break,
                    Poll::Empty => backoff.snooze(),
                }
            }
            (got, black_box(sink))
        },
    );
    assert!(lossy || delivered == total, "a lossless queue lost events");
    Outcome {
        secs: elapsed.as_secs_f64(),
        pushed: total,
        delivered,
    }
}
