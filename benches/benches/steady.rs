//! The steady state evqueue exists for: the producer running flat out, the
//! ring full, the reader behind. One producer thread and one consumer
//! thread, pinned to two CPUs, started on a barrier and timed from the first
//! start to the last stop (`time_two_threads`). Every sample pushes
//! [`STEADY_LAPS`] times the capacity (65536 slots), so the first fill is
//! noise; every payload carries its sequence number in every word and the
//! consumer checks every word (a torn or reordered event fails the run).
//!
//! A producer that finds a lossless queue full and a consumer that finds
//! nothing both back off the same way for every queue: 128 pause hints, then
//! `yield_now`. Lossy queues never wait: what a row lost is `pushed -
//! delivered`, reported beside the rate.
//!
//! Rows, each at 64 and 256 bytes, every queue in every round, rounds
//! interleaved (`STEADY_ROUNDS`, default 5):
//! - `reject_*`: lossless. evqueue `Overflow::Reject` with a single producer
//!   and a worker claiming one event (`claim`) or 32 (`batch`); crossbeam
//!   `ArrayQueue`, ringbuf, photon-ring `channel_bounded`, the disruptor's
//!   batch poller.
//! - `lossy_*`: evqueue `Overflow::Overwrite` with a worker (single, batch)
//!   or a subscriber (single, batch); photon-ring's lossy subscriber; tokio
//!   broadcast.
//! - `slow_*`: the reader does [`WORK`] rounds of arithmetic per event (about
//!   30 ns), so it cannot keep up and the ring stays full. `alone` is the
//!   same reader draining a pre-filled ring with no producer running (a
//!   whole ring per fill, many fills): what it delivers when nothing
//!   overtakes it. The goal: a lapped reader delivers at least 0.8 of that.
//!
//! Output: one line per row and round, and `bench-extra/steady.csv`
//! (`row,bytes,round,events_per_sec,lost_fraction`). `cargo test -p benches
//! --bench steady` runs every row once on 3 laps.

use std::hint::black_box;

use benches::peers::*;
use benches::steady::{check_payload, payload_of, run, work, Outcome};
use benches::{bench_mode, env_count, merge_extra, CAPACITY};
use std::sync::Arc;

use evqueue::{HeapRing, Lag, Overflow, Producer};

/// Multiply-add rounds a `slow_*` reader does per event.
const WORK: u32 = 24;

/// The `alone` rows: one thread fills the ring (untimed) and drains it
/// (timed), `fills` times; the rate of the draining.
fn alone<const N: usize>(fills: u64, batch: bool, subscriber: bool) -> Outcome {
    let ring = evqueue_ring::<N>(Overflow::Overwrite);
    let mut tx = Producer::new(ring.clone()).expect("producer");
    let mut secs = 0.0;
    let mut delivered = 0;
    let mut seq = 0u64;
    let mut poller: DynRx = match (batch, subscriber) {
        (false, false) => poll_dyn::<N>(EvClaim::new(&ring)),
        (true, false) => poll_dyn::<N>(EvBatch::new(&ring)),
        (false, true) => poll_dyn::<N>(EvSub::new(&ring)),
        (true, true) => poll_dyn::<N>(EvSubBatch::new(&ring)),
    };
    for _ in 0..fills {
        for _ in 0..CAPACITY {
            tx.push(&payload_of::<N>(seq)).expect("fill");
            seq += 1;
        }
        let start = std::time::Instant::now();
        let (mut last, mut sink) = (None, 0u64);
        let mut f = |bytes: &[u8]| {
            let s = check_payload::<N>(bytes, last);
            last = Some(s);
            sink = sink.wrapping_add(work(s, WORK));
        };
        loop {
            match poller(&mut f) {
                Poll::Got(n) => delivered += n,
                Poll::Empty => break,
                Poll::Lagged(n) => panic!("lost {n} from a ring that was not lapped"),
            }
        }
        black_box(sink);
        secs += start.elapsed().as_secs_f64();
    }
    Outcome {
        secs,
        pushed: fills * CAPACITY as u64,
        delivered,
    }
}

/// A receiver of any type, polled through a closure.
type DynRx = Box<dyn FnMut(&mut dyn FnMut(&[u8])) -> Poll>;

fn poll_dyn<const N: usize>(mut rx: impl Rx<N> + 'static) -> DynRx {
    Box::new(move |f: &mut dyn FnMut(&[u8])| rx.poll(&mut |b: &[u8]| f(b)))
}

fn reject_ring<const N: usize>() -> (EvTx, std::sync::Arc<HeapRing>) {
    let ring = evqueue_ring::<N>(Overflow::Reject);
    (EvTx::new(&ring), ring)
}

fn lossy_ring<const N: usize>() -> (EvTx, std::sync::Arc<HeapRing>) {
    let ring = evqueue_ring::<N>(Overflow::Overwrite);
    (EvTx::new(&ring), ring)
}

/// Every row once, in order; `(row, outcome)`. Only rows whose name
/// contains `$STEADY_ONLY` run, when it is set (for quick looks).
fn one_round<const N: usize>(total: u64) -> Vec<(&'static str, Outcome)> {
    let only = std::env::var("STEADY_ONLY").ok();
    let mut out = Vec::new();
    let mut row = |name: &'static str, f: &mut dyn FnMut() -> Outcome| {
        if only.as_deref().is_none_or(|o| name.contains(o)) {
            out.push((name, f()));
        }
    };
    let fills = (total / CAPACITY as u64).max(1);

    // Lossless: the ring fills and stays full.
    row("reject_evqueue_claim", &mut || {
        let (tx, ring) = reject_ring::<N>();
        run::<N>(tx, EvClaim::new(&ring), total, false, 0)
    });
    row("reject_evqueue_batch", &mut || {
        let (tx, ring) = reject_ring::<N>();
        run::<N>(tx, EvBatch::new(&ring), total, false, 0)
    });
    row("reject_arrayqueue", &mut || {
        let q = array_queue::<N>();
        run::<N>(AqTx(q.clone()), AqRx(q), total, false, 0)
    });
    row("reject_ringbuf", &mut || {
        let (tx, rx) = ringbuf::<N>();
        run::<N>(tx, rx, total, false, 0)
    });
    row("reject_photon_bounded", &mut || {
        let (tx, subs) = photon_ring::channel_bounded::<[u8; N]>(CAPACITY, 0);
        run::<N>(PhBoundedTx(tx), PhRx(subs.subscribe()), total, false, 0)
    });
    row("reject_disruptor_batch", &mut || {
        let (tx, mut rx) = disruptor::<N>(1);
        run::<N>(tx, rx.remove(0), total, false, 0)
    });

    // Lossy: nobody waits; the reader takes what it can.
    row("lossy_evqueue_claim", &mut || {
        let (tx, ring) = lossy_ring::<N>();
        run::<N>(tx, EvClaim::new(&ring), total, true, 0)
    });
    row("lossy_evqueue_batch", &mut || {
        let (tx, ring) = lossy_ring::<N>();
        run::<N>(tx, EvBatch::new(&ring), total, true, 0)
    });
    row("lossy_evqueue_sub", &mut || {
        let (tx, ring) = lossy_ring::<N>();
        run::<N>(tx, EvSub::new(&ring), total, true, 0)
    });
    row("lossy_evqueue_sub_batch", &mut || {
        let (tx, ring) = lossy_ring::<N>();
        run::<N>(tx, EvSubBatch::new(&ring), total, true, 0)
    });
    row("lossy_photon", &mut || {
        let (tx, subs) = photon_ring::channel::<[u8; N]>(CAPACITY);
        run::<N>(PhTx(tx), PhRx(subs.subscribe()), total, true, 0)
    });
    row("lossy_tokio_broadcast", &mut || {
        let (tx, mut rx) = tokio_broadcast::<N>(1);
        run::<N>(tx, rx.remove(0), total, true, 0)
    });

    // A reader that cannot keep up: against the same reader alone, and
    // against the peers' readers doing the same work.
    row("slow_alone_claim", &mut || alone::<N>(fills, false, false));
    row("slow_lossy_claim", &mut || {
        let (tx, ring) = lossy_ring::<N>();
        run::<N>(tx, EvClaim::new(&ring), total, true, WORK)
    });
    row("slow_lossy_claim_oldest", &mut || {
        let ring = HeapRing::with_capacity(CAPACITY, N, Overflow::Overwrite).unwrap();
        let ring = Arc::new(ring.with_lag(Lag::Oldest));
        run::<N>(EvTx::new(&ring), EvClaim::new(&ring), total, true, WORK)
    });
    row("slow_reject_claim", &mut || {
        let (tx, ring) = reject_ring::<N>();
        run::<N>(tx, EvClaim::new(&ring), total, false, WORK)
    });
    row("slow_reject_ringbuf", &mut || {
        let (tx, rx) = ringbuf::<N>();
        run::<N>(tx, rx, total, false, WORK)
    });
    row("slow_reject_photon_bounded", &mut || {
        let (tx, subs) = photon_ring::channel_bounded::<[u8; N]>(CAPACITY, 0);
        run::<N>(PhBoundedTx(tx), PhRx(subs.subscribe()), total, false, WORK)
    });
    row("slow_lossy_photon", &mut || {
        let (tx, subs) = photon_ring::channel::<[u8; N]>(CAPACITY);
        run::<N>(PhTx(tx), PhRx(subs.subscribe()), total, true, WORK)
    });
    row("slow_alone_batch", &mut || alone::<N>(fills, true, false));
    row("slow_lossy_batch", &mut || {
        let (tx, ring) = lossy_ring::<N>();
        run::<N>(tx, EvBatch::new(&ring), total, true, WORK)
    });
    row("slow_reject_batch", &mut || {
        let (tx, ring) = reject_ring::<N>();
        run::<N>(tx, EvBatch::new(&ring), total, false, WORK)
    });
    row("slow_reject_disruptor_batch", &mut || {
        let (tx, mut rx) = disruptor::<N>(1);
        run::<N>(tx, rx.remove(0), total, false, WORK)
    });
    row("slow_alone_sub", &mut || alone::<N>(fills, false, true));
    row("slow_lossy_sub", &mut || {
        let (tx, ring) = lossy_ring::<N>();
        run::<N>(tx, EvSub::new(&ring), total, true, WORK)
    });
    row("slow_lossy_sub_oldest", &mut || {
        let (tx, ring) = lossy_ring::<N>();
        let rx = EvSub::new(&ring).with_lag(Lag::Oldest);
        run::<N>(tx, rx, total, true, WORK)
    });
    row("slow_alone_sub_batch", &mut || {
        alone::<N>(fills, true, true)
    });
    row("slow_lossy_sub_batch", &mut || {
        let (tx, ring) = lossy_ring::<N>();
        run::<N>(tx, EvSubBatch::new(&ring), total, true, WORK)
    });
    out
}

fn main() {
    let total = env_count("STEADY_LAPS", 100, 3) * CAPACITY as u64;
    let mut csv = Vec::new();
    for round in 0..env_count("STEADY_ROUNDS", 5, 1) {
        for (bytes, results) in [(64, one_round::<64>(total)), (256, one_round::<256>(total))] {
            for (name, o) in results {
                let rate = o.delivered as f64 / o.secs;
                let lost = 1.0 - o.delivered as f64 / o.pushed as f64;
                println!(
                    "round {round} {bytes:>3} B {name:<28} {:>7.1} M/s  lost {:>5.1} %",
                    rate / 1e6,
                    lost * 100.0
                );
                csv.push(format!("{name},{bytes},{round},{rate:.0},{lost:.4}"));
            }
        }
    }
    if bench_mode() {
        merge_extra(
            "steady.csv",
            "row,bytes,round,events_per_sec,lost_fraction",
            3,
            &csv,
        );
    }
}
