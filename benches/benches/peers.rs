//! evqueue side by side with the queues a game-server engineer would pick
//! instead, in seven scenarios, at 64- and 256-byte payloads, capacity
//! 65536 for every queue (evqueue rings have slots of exactly the payload
//! size, so every queue stores the same bytes). Peers: `crossbeam-queue`
//! `ArrayQueue`, `crossbeam-channel` bounded, `photon-ring` (its sound
//! `atomic-slots` mode), `disruptor` (event pollers, busy-spin), `tokio`
//! broadcast, `ringbuf`, `heapless::spsc`; adapters in `benches/src/peers.rs`.
//!
//! The machine this was written for has 2 cores, so no figure presented as
//! parallel runs more than 2 busy threads:
//!
//! - `s1_push/<queue>/<N>`: push only, one thread, no consumer (the
//!   overwrite path once the ring has wrapped). `floor` stores the same
//!   bytes with relaxed atomic stores into memory of the ring's size.
//! - `s2_one_to_one`: one producer thread, one consumer thread, both started
//!   on a barrier, timed from the first start to the last stop; events
//!   delivered per second. Lossy queues never wait; what they lost is written
//!   to `bench-extra/loss.csv` (pushed, delivered, reported lost).
//!   `evqueue_dispatcher`: the same through an `EventQueue` (`emit_raw` on
//!   this thread, one worker thread of the queue running a raw handler),
//!   timed from the first emit to the `flush` that sees the last one handled.
//! - `s3_two_workers`: one producer and two workers would be 3 threads on 2
//!   cores, so the producer pre-fills 65536 events (untimed) and the two
//!   workers drain them in parallel (timed): work-sharing throughput.
//!   `evqueue_dispatcher`: a paused `EventQueue` pre-filled, timed from
//!   `start` of its two workers to the `flush` that sees the last handled.
//! - `s4_broadcast4`: four subscribers would be 5 threads; the producer
//!   pre-fills 32768 events (untimed) with four subscribers attached, then two
//!   threads each drain two of the subscribers (timed). The figure is events
//!   per second *per subscriber* (each of the four received every event).
//! - `s5_round_trip`: two threads ping-pong one event through two queues;
//!   criterion times the mean round trip; then 20000 round trips are timed
//!   one by one into `bench-extra/rtt_samples.csv` (median, p99, p99.9).
//!   `cacheline` is the physical floor: one atomic bouncing between the two
//!   threads.
//! - `s6_batch`: `s2` again with single operations (`_single`) against
//!   batches of 32 (`_batch32`: the queue's batch push where it has one, and
//!   its batch receive).
//! - `s7_two_producers`: two threads pushing at once, no consumer; events per
//!   second for both together.
//!
//! - `goals` (not criterion rows): each performance goal timed as 15 rounds
//!   that alternate evqueue and its peer, so both sides of each ratio see
//!   the same machine, into `bench-extra/goals.csv` (operations per second
//!   of each side per round).
//!
//! `cargo bench -p benches --bench peers` takes about 5 minutes;
//! `cargo test -p benches --bench peers` runs each row once.

use std::hint::{black_box, spin_loop};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use benches::peers::*;
use benches::{bench_mode, by_mode, merge_extra, payload, time_two_threads, StoreFloor, CAPACITY};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode,
    Throughput,
};
use evqueue::{EventQueue, Overflow};

type Group<'a> = BenchmarkGroup<'a, WallTime>;

/// Events per broadcast round (half the ring: every peer holds it with four
/// idle subscribers attached).
const BROADCAST_ROUND: u64 = CAPACITY as u64 / 2;
/// Round trips timed one by one for the latency distribution.
const RTT_SAMPLES: usize = 20_000;

/// `scenario,queue,bytes,pushed,delivered,reported_lost` rows.
static LOSS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// `queue,bytes,ns` rows.
static RTT: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// What a consumer does with each payload: it reads every byte (as 8-byte
/// words, summed) and its length, so a queue that hands out a reference
/// (the disruptor) reads the same bytes as one that copies them out.
#[inline(always)]
fn digest(b: &[u8]) -> u64 {
    b.chunks_exact(8)
        .map(|w| u64::from_ne_bytes(w.try_into().unwrap()))
        .fold(b.len() as u64, u64::wrapping_add)
}

/// The digest of one payload of `N` bytes.
fn per_event<const N: usize>() -> u64 {
    digest(&payload::<N>())
}

fn check(sum: &mut u64) -> impl FnMut(&[u8]) + '_ {
    move |b: &[u8]| *sum = sum.wrapping_add(digest(b))
}

/// Pushes `n` payloads (`batch` at a time through `send_all` when > 1),
/// waiting while a lossless queue is full; then raises `done`.
fn pump<const N: usize>(tx: &mut impl Tx<N>, n: u64, batch: usize, done: &AtomicBool) {
    let bytes = payload::<N>();
    if batch <= 1 {
        for _ in 0..n {
            while !tx.send(black_box(&bytes)) {
                spin_loop();
            }
        }
    } else {
        let chunk = vec![bytes; batch];
        let mut left = n;
        while left > 0 {
            let k = left.min(batch as u64) as usize;
            tx.send_all(black_box(&chunk[..k]));
            left -= k as u64;
        }
    }
    done.store(true, Release);
}

/// Receives until `done` was raised before a poll that found nothing.
/// Returns (delivered, reported lost, check sum).
fn drain_until<const N: usize>(rx: &mut impl Rx<N>, done: &AtomicBool) -> (u64, u64, u64) {
    let (mut got, mut lagged, mut sum) = (0, 0, 0);
    let mut f = check(&mut sum);
    loop {
        let finished = done.load(Acquire);
        match rx.poll(&mut f) {
            Poll::Got(n) => got += n,
            Poll::Lagged(n) => lagged += n,
            Poll::Empty if finished => break,
            Poll::Empty => spin_loop(),
        }
    }
    drop(f);
    (got, lagged, sum)
}

/// Receives until the queue is empty (it was filled before). Returns
/// (delivered, check sum).
fn drain_all<const N: usize>(rx: &mut impl Rx<N>) -> (u64, u64) {
    let (mut got, mut sum) = (0, 0);
    let mut f = check(&mut sum);
    loop {
        match rx.poll(&mut f) {
            Poll::Got(n) => got += n,
            Poll::Empty => break,
            Poll::Lagged(n) => panic!("lost {n} events from a queue that was not full"),
        }
    }
    drop(f);
    (got, sum)
}

fn fill<const N: usize>(tx: &mut impl Tx<N>, n: u64) {
    let bytes = payload::<N>();
    for i in 0..n {
        assert!(tx.send(&bytes), "pre-fill: full after {i} of {n}");
    }
}

fn record_loss(scenario: &str, queue: &str, bytes: usize, pushed: u64, got: u64, lagged: u64) {
    LOSS.lock().unwrap().push(format!(
        "{scenario},{queue},{bytes},{pushed},{got},{lagged}"
    ));
}

// ---- scenario 1: push only ----

fn s1_floor<const N: usize>(g: &mut Group<'_>) {
    let mut floor = StoreFloor::new(CAPACITY, N / 8);
    let bytes = payload::<N>();
    g.bench_function(BenchmarkId::new("floor", N), |b| {
        b.iter(|| floor.store(black_box(&bytes)));
        assert_ne!(floor.word(0), 0, "the floor stored nothing");
    });
}

fn s1_push<const N: usize>(g: &mut Group<'_>, queue: &str, mut tx: impl Tx<N>) {
    let bytes = payload::<N>();
    g.bench_function(BenchmarkId::new(queue, N), |b| {
        b.iter(|| tx.send(black_box(&bytes)));
        assert!(tx.send(&bytes), "{queue}: a push-only send failed");
    });
}

fn s1<const N: usize>(c: &mut Criterion) {
    let mut g = group(c, "s1_push", 1);
    s1_floor::<N>(&mut g);
    let ring = evqueue_ring::<N>(Overflow::Overwrite);
    s1_push::<N>(&mut g, "evqueue", EvTx::new(&ring));
    let ring = evqueue_ring::<N>(Overflow::Overwrite);
    s1_push::<N>(&mut g, "evqueue_mp", EvMpTx::new(&ring));
    s1_push::<N>(
        &mut g,
        "arrayqueue_force_push",
        AqForceTx(array_queue::<N>()),
    );
    let (tx, _subs) = photon_ring::channel::<[u8; N]>(CAPACITY);
    s1_push::<N>(&mut g, "photon_ring", PhTx(tx));
    // One receiver that never reads: without one, `send` refuses.
    let (tx, _rx) = tokio_broadcast::<N>(1);
    s1_push::<N>(&mut g, "tokio_broadcast", tx);
    s1_push::<N>(
        &mut g,
        "ringbuf_push_overwrite",
        RbOverwriteTx(ringbuf::HeapRb::new(CAPACITY)),
    );
    g.finish();
}

// ---- scenarios 2 and 6: one producer, one consumer ----

fn one_to_one<const N: usize>(
    g: &mut Group<'_>,
    scenario: &str,
    queue: &str,
    lossy: bool,
    batch: usize,
    mut tx: impl Tx<N>,
    mut rx: impl Rx<N>,
) {
    let (mut pushed, mut delivered, mut reported) = (0, 0, 0);
    g.bench_function(BenchmarkId::new(queue, N), |b| {
        b.iter_custom(|iters| {
            let done = AtomicBool::new(false);
            let (time, (), (got, lagged, sum)) = time_two_threads(
                || pump(&mut tx, iters, batch, &done),
                || drain_until(&mut rx, &done),
            );
            assert_eq!(
                sum,
                got.wrapping_mul(per_event::<N>()),
                "{queue}: a payload came out wrong"
            );
            if lossy {
                assert!(got <= iters, "{queue}: delivered {got} of {iters}");
            } else {
                assert_eq!(
                    (got, lagged),
                    (iters, 0),
                    "{queue}: a lossless queue lost events"
                );
            }
            pushed += iters;
            delivered += got;
            reported += lagged;
            time
        })
    });
    if pushed > 0 {
        record_loss(scenario, queue, N, pushed, delivered, reported);
    }
}

fn s2<const N: usize>(c: &mut Criterion) {
    let s = "s2_one_to_one";
    let mut g = group(c, s, 1);
    let ring = evqueue_ring::<N>(Overflow::Reject);
    one_to_one::<N>(
        &mut g,
        s,
        "evqueue",
        false,
        1,
        EvTx::new(&ring),
        EvClaim::new(&ring),
    );
    let ring = evqueue_ring::<N>(Overflow::Reject);
    one_to_one::<N>(
        &mut g,
        s,
        "evqueue_batch32",
        false,
        1,
        EvTx::new(&ring),
        EvBatch::new(&ring),
    );
    let ring = evqueue_ring::<N>(Overflow::Overwrite);
    one_to_one::<N>(
        &mut g,
        s,
        "evqueue_overwrite",
        true,
        1,
        EvTx::new(&ring),
        EvClaim::new(&ring),
    );
    let ring = evqueue_ring::<N>(Overflow::Overwrite);
    let sub = EvSub::new(&ring);
    one_to_one::<N>(
        &mut g,
        s,
        "evqueue_subscriber",
        true,
        1,
        EvTx::new(&ring),
        sub,
    );
    let q = array_queue::<N>();
    one_to_one::<N>(&mut g, s, "arrayqueue", false, 1, AqTx(q.clone()), AqRx(q));
    let q = array_queue::<N>();
    one_to_one::<N>(
        &mut g,
        s,
        "arrayqueue_force_push",
        true,
        1,
        AqForceTx(q.clone()),
        AqRx(q),
    );
    let (tx, rx) = crossbeam_channel::<N>();
    one_to_one::<N>(&mut g, s, "crossbeam_channel", false, 1, tx, rx);
    let (tx, subs) = photon_ring::channel::<[u8; N]>(CAPACITY);
    let rx = PhRx(subs.subscribe());
    one_to_one::<N>(&mut g, s, "photon_ring", true, 1, PhTx(tx), rx);
    let (tx, mut rx) = disruptor::<N>(1);
    one_to_one::<N>(&mut g, s, "disruptor", false, 1, tx, rx.pop().unwrap());
    let (tx, mut rx) = tokio_broadcast::<N>(1);
    one_to_one::<N>(&mut g, s, "tokio_broadcast", true, 1, tx, rx.pop().unwrap());
    let (tx, rx) = ringbuf::<N>();
    one_to_one::<N>(&mut g, s, "ringbuf", false, 1, tx, rx);
    let (tx, rx) = heapless::<N>();
    one_to_one::<N>(&mut g, s, "heapless_spsc", false, 1, tx, rx);
    s2_dispatcher::<N>(&mut g);
    g.finish();
}

// ---- the dispatcher (EventQueue), in scenarios 2 and 3 ----

const WAIT: Duration = Duration::from_secs(30);

/// An `EventQueue` of [`CAPACITY`] slots just large enough for a raw payload
/// of `N` bytes (plus its 12-byte frame), `workers` workers, `Reject`, whose
/// raw handler adds each payload's digest to `sum` (one relaxed add on the
/// worker's own cache line).
fn dispatcher<const N: usize>(workers: usize, batch: usize, sum: &Arc<AtomicU64>) -> EventQueue {
    let queue = EventQueue::builder()
        .capacity(CAPACITY)
        .slot_bytes((N + 12).div_ceil(8) * 8)
        .workers(workers)
        .claim_batch(batch)
        .overflow(Overflow::Reject)
        .build_paused()
        .expect("event queue");
    let sum = Arc::clone(sum);
    queue.on_raw(move |raw| {
        sum.fetch_add(digest(raw.bytes), Relaxed);
        Ok(())
    });
    queue
}

/// The timestamp every raw emit passes: non-zero, so no clock is read.
const TIMESTAMP: u64 = 1;

fn emit_n<const N: usize>(queue: &EventQueue, n: u64) {
    let bytes = payload::<N>();
    for _ in 0..n {
        loop {
            match queue.emit_raw(black_box(&bytes), TIMESTAMP) {
                Ok(_) => break,
                Err(evqueue::Error::Full) => spin_loop(),
                Err(e) => panic!("emit_raw: {e}"),
            }
        }
    }
}

/// Scenario 2 through the dispatcher: this thread emits (`emit_raw`), one
/// worker thread of the queue handles; timed from the first emit to the
/// `flush` that sees the last event handled.
fn s2_dispatcher<const N: usize>(g: &mut Group<'_>) {
    let sum = Arc::new(AtomicU64::new(0));
    let queue = dispatcher::<N>(1, 1, &sum);
    queue.start().expect("start");
    let mut emitted = 0u64;
    g.bench_function(BenchmarkId::new("evqueue_dispatcher", N), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            emit_n::<N>(&queue, iters);
            queue.flush(WAIT).expect("flush");
            let time = start.elapsed();
            emitted += iters;
            time
        })
    });
    let report = queue.shutdown(WAIT).expect("shutdown");
    // `rejected` counts the `Full` answers the emit loop retried: no loss.
    assert_eq!(report.handled, emitted);
    assert_eq!(sum.load(Relaxed), emitted.wrapping_mul(per_event::<N>()));
}

/// Scenario 3 through the dispatcher: a paused queue is pre-filled
/// (untimed), then timed from `start` of its two workers to the `flush` that
/// sees the last event handled. `start` works once per queue, so each round
/// builds a new one (untimed).
fn s3_dispatcher<const N: usize>(g: &mut Group<'_>, name: &str, batch: usize) {
    g.bench_function(BenchmarkId::new(name, N), |b| {
        b.iter_custom(|iters| {
            let (mut total, mut left) = (Duration::ZERO, iters);
            while left > 0 {
                let n = left.min(CAPACITY as u64);
                let sum = Arc::new(AtomicU64::new(0));
                let queue = dispatcher::<N>(2, batch, &sum);
                emit_n::<N>(&queue, n);
                let start = Instant::now();
                queue.start().expect("start");
                queue.flush(WAIT).expect("flush");
                total += start.elapsed();
                let report = queue.shutdown(WAIT).expect("shutdown");
                assert_eq!(
                    report.handled, n,
                    "{name}: handled {} of {n}",
                    report.handled
                );
                assert_eq!(sum.load(Relaxed), n.wrapping_mul(per_event::<N>()));
                left -= n;
            }
            total
        })
    });
}

fn s6<const N: usize>(c: &mut Criterion) {
    let s = "s6_batch";
    let mut g = group(c, s, 1);
    let b = BATCH;
    let ring = evqueue_ring::<N>(Overflow::Reject);
    one_to_one::<N>(
        &mut g,
        s,
        "evqueue_single",
        false,
        1,
        EvTx::new(&ring),
        EvClaim::new(&ring),
    );
    // evqueue has no batch push: single pushes, batch claims.
    let ring = evqueue_ring::<N>(Overflow::Reject);
    one_to_one::<N>(
        &mut g,
        s,
        "evqueue_batch32",
        false,
        b,
        EvTx::new(&ring),
        EvBatch::new(&ring),
    );
    let (tx, mut rx) = disruptor::<N>(1);
    one_to_one::<N>(
        &mut g,
        s,
        "disruptor_single",
        false,
        1,
        tx,
        rx.pop().unwrap().limit(1),
    );
    let (tx, mut rx) = disruptor::<N>(1);
    let rx = rx.pop().unwrap().limit(b as u64);
    one_to_one::<N>(&mut g, s, "disruptor_batch32", false, b, tx, rx);
    let (tx, subs) = photon_ring::channel::<[u8; N]>(CAPACITY);
    let rx = PhRx(subs.subscribe());
    one_to_one::<N>(&mut g, s, "photon_ring_single", true, 1, PhTx(tx), rx);
    let (tx, subs) = photon_ring::channel::<[u8; N]>(CAPACITY);
    let rx = PhBatchRx::new(subs.subscribe());
    one_to_one::<N>(&mut g, s, "photon_ring_batch32", true, b, PhTx(tx), rx);
    let (tx, rx) = ringbuf::<N>();
    one_to_one::<N>(&mut g, s, "ringbuf_single", false, 1, tx, rx);
    let (tx, rx) = ringbuf::<N>();
    one_to_one::<N>(&mut g, s, "ringbuf_batch32", false, b, tx, rx.batch());
    g.finish();
}

// ---- scenario 3: two workers sharing a pre-filled queue ----

fn two_workers<const N: usize>(
    g: &mut Group<'_>,
    queue: &str,
    mut tx: impl Tx<N>,
    mut rx1: impl Rx<N>,
    mut rx2: impl Rx<N>,
) {
    g.bench_function(BenchmarkId::new(queue, N), |b| {
        b.iter_custom(|iters| {
            let (mut total, mut left) = (Duration::ZERO, iters);
            while left > 0 {
                let n = left.min(CAPACITY as u64);
                fill(&mut tx, n);
                let (time, (a, sa), (b, sb)) =
                    time_two_threads(|| drain_all(&mut rx1), || drain_all(&mut rx2));
                assert_eq!(a + b, n, "{queue}: the workers took {a} + {b} of {n}");
                assert_eq!(sa.wrapping_add(sb), n.wrapping_mul(per_event::<N>()));
                total += time;
                left -= n;
            }
            total
        })
    });
}

fn s3<const N: usize>(c: &mut Criterion) {
    let mut g = group(c, "s3_two_workers", 1);
    let ring = evqueue_ring::<N>(Overflow::Reject);
    let (w1, w2) = (EvClaim::new(&ring), EvClaim::new(&ring));
    two_workers::<N>(&mut g, "evqueue", EvTx::new(&ring), w1, w2);
    let ring = evqueue_ring::<N>(Overflow::Reject);
    let (w1, w2) = (EvBatch::new(&ring), EvBatch::new(&ring));
    two_workers::<N>(&mut g, "evqueue_batch32", EvTx::new(&ring), w1, w2);
    let q = array_queue::<N>();
    two_workers::<N>(
        &mut g,
        "arrayqueue",
        AqTx(q.clone()),
        AqRx(q.clone()),
        AqRx(q),
    );
    let (tx, rx) = crossbeam_channel::<N>();
    two_workers::<N>(&mut g, "crossbeam_channel", tx, rx.clone(), rx);
    s3_dispatcher::<N>(&mut g, "evqueue_dispatcher", 1);
    s3_dispatcher::<N>(&mut g, "evqueue_dispatcher_batch32", BATCH);
    g.finish();
}

// ---- scenario 4: four broadcast subscribers ----

fn broadcast4<const N: usize, R: Rx<N>>(
    g: &mut Group<'_>,
    queue: &str,
    mut tx: impl Tx<N>,
    rx: Vec<R>,
) {
    let mut rx: [R; 4] = four(rx);
    g.bench_function(BenchmarkId::new(queue, N), |b| {
        b.iter_custom(|iters| {
            let (mut total, mut left) = (Duration::ZERO, iters);
            while left > 0 {
                let n = left.min(BROADCAST_ROUND);
                fill(&mut tx, n);
                let [r0, r1, r2, r3] = &mut rx;
                let (time, (a0, a1), (a2, a3)) = time_two_threads(
                    || (drain_all(r0), drain_all(r1)),
                    || (drain_all(r2), drain_all(r3)),
                );
                for (got, sum) in [a0, a1, a2, a3] {
                    assert_eq!(got, n, "{queue}: a subscriber got {got} of {n}");
                    assert_eq!(sum, n.wrapping_mul(per_event::<N>()));
                }
                total += time;
                left -= n;
            }
            total
        })
    });
}

fn s4<const N: usize>(c: &mut Criterion) {
    let mut g = group(c, "s4_broadcast4", 1);
    let ring = evqueue_ring::<N>(Overflow::Overwrite);
    let subs = (0..4).map(|_| EvSub::new(&ring)).collect();
    broadcast4::<N, EvSub>(&mut g, "evqueue", EvTx::new(&ring), subs);
    let ring = evqueue_ring::<N>(Overflow::Overwrite);
    let subs = (0..4).map(|_| EvSubBatch::new(&ring)).collect();
    broadcast4::<N, EvSubBatch>(&mut g, "evqueue_batch32", EvTx::new(&ring), subs);
    let (tx, subs) = photon_ring::channel::<[u8; N]>(CAPACITY);
    let rx = (0..4).map(|_| PhRx(subs.subscribe())).collect();
    broadcast4::<N, PhRx<N>>(&mut g, "photon_ring", PhTx(tx), rx);
    let (tx, rx) = disruptor::<N>(4);
    broadcast4::<N, DRx<N>>(&mut g, "disruptor", tx, rx);
    let (tx, rx) = tokio_broadcast::<N>(4);
    broadcast4::<N, TkRx<N>>(&mut g, "tokio_broadcast", tx, rx);
    g.finish();
}

// ---- scenario 5: round trip ----

fn wait_one<const N: usize>(rx: &mut impl Rx<N>, f: &mut impl FnMut(&[u8])) {
    loop {
        match rx.poll(f) {
            Poll::Got(1) => return,
            Poll::Empty => spin_loop(),
            other => panic!("round trip: {other:?}"),
        }
    }
}

fn send_one<const N: usize>(tx: &mut impl Tx<N>, p: &[u8; N]) {
    while !tx.send(p) {
        spin_loop();
    }
}

/// `n` round trips: `a` sends on `there` and waits on `back`; `b` echoes.
/// With `samples`, each round trip is timed on `a`'s side.
fn ping_pong<const N: usize>(
    there: (&mut impl Tx<N>, &mut impl Rx<N>),
    back: (&mut impl Tx<N>, &mut impl Rx<N>),
    n: u64,
    samples: Option<&mut Vec<u64>>,
) -> Duration {
    let (tx_a, rx_b) = there;
    let (tx_b, rx_a) = back;
    let bytes = payload::<N>();
    let (time, sum_a, sum_b) = time_two_threads(
        || {
            let mut sum = 0;
            let mut f = check(&mut sum);
            match samples {
                None => {
                    for _ in 0..n {
                        send_one(tx_a, &bytes);
                        wait_one(rx_a, &mut f);
                    }
                }
                Some(samples) => {
                    for _ in 0..n {
                        let t0 = ticks();
                        send_one(tx_a, &bytes);
                        wait_one(rx_a, &mut f);
                        samples.push(ticks().wrapping_sub(t0));
                    }
                }
            }
            drop(f);
            sum
        },
        || {
            let mut sum = 0;
            let mut f = check(&mut sum);
            for _ in 0..n {
                wait_one(rx_b, &mut f);
                send_one(tx_b, &bytes);
            }
            drop(f);
            sum
        },
    );
    assert_eq!(
        (sum_a, sum_b),
        (
            n.wrapping_mul(per_event::<N>()),
            n.wrapping_mul(per_event::<N>())
        )
    );
    time
}

fn samples_wanted() -> usize {
    by_mode(RTT_SAMPLES, 100)
}

/// A cycle counter for timing one round trip: the TSC on x86-64 (a few ns
/// to read, sub-ns resolution), else nanoseconds since the first call.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn ticks() -> u64 {
    #[allow(unused_unsafe)]
    // SAFETY: RDTSC has no preconditions on x86-64.
    unsafe {
        std::arch::x86_64::_rdtsc()
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn ticks() -> u64 {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Nanoseconds per [`ticks`] unit, measured once against `Instant` over 50 ms.
fn ns_per_tick() -> f64 {
    static RATE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *RATE.get_or_init(|| {
        let (t0, c0) = (Instant::now(), ticks());
        std::thread::sleep(Duration::from_millis(50));
        let (ns, c) = (t0.elapsed().as_nanos() as f64, ticks().wrapping_sub(c0));
        assert!(c > 0, "the cycle counter did not move");
        ns / c as f64
    })
}

fn record_rtt(queue: &str, bytes: usize, samples: &[u64]) {
    let rate = ns_per_tick();
    let mut rows = RTT.lock().unwrap();
    rows.extend(
        samples
            .iter()
            .map(|&t| format!("{queue},{bytes},{:.1}", t as f64 * rate)),
    );
}

fn round_trip<const N: usize, TA: Tx<N>, RA: Rx<N>, TB: Tx<N>, RB: Rx<N>>(
    g: &mut Group<'_>,
    queue: &str,
    (mut tx_a, mut rx_b): (TA, RB),
    (mut tx_b, mut rx_a): (TB, RA),
) {
    let mut sampled = false;
    g.bench_function(BenchmarkId::new(queue, N), |b| {
        // Once per row (criterion calls this closure more than once), untimed
        // by criterion: the round trips one by one.
        if !sampled {
            let mut samples = Vec::with_capacity(samples_wanted());
            ping_pong::<N>(
                (&mut tx_a, &mut rx_b),
                (&mut tx_b, &mut rx_a),
                samples_wanted() as u64,
                Some(&mut samples),
            );
            record_rtt(queue, N, &samples);
            sampled = true;
        }
        b.iter_custom(|iters| {
            ping_pong::<N>((&mut tx_a, &mut rx_b), (&mut tx_b, &mut rx_a), iters, None)
        })
    });
}

/// One atomic on its own cache line(s), bounced between the two threads.
#[repr(align(128))]
struct Line(AtomicU64);

fn bounce(line: &Line, n: u64, samples: Option<&mut Vec<u64>>) -> Duration {
    line.0.store(0, SeqCst);
    let (time, (), ()) = time_two_threads(
        || {
            let mut samples = samples;
            for i in 0..n {
                let t0 = samples.is_some().then(ticks);
                line.0.store(2 * i + 1, Release);
                while line.0.load(Acquire) != 2 * i + 2 {
                    spin_loop();
                }
                if let (Some(s), Some(t0)) = (samples.as_deref_mut(), t0) {
                    s.push(ticks().wrapping_sub(t0));
                }
            }
        },
        || {
            for i in 0..n {
                while line.0.load(Acquire) != 2 * i + 1 {
                    spin_loop();
                }
                line.0.store(2 * i + 2, Release);
            }
        },
    );
    time
}

fn s5_cacheline<const N: usize>(g: &mut Group<'_>) {
    let line = Line(AtomicU64::new(0));
    let mut sampled = false;
    g.bench_function(BenchmarkId::new("cacheline", N), |b| {
        if !sampled {
            let mut samples = Vec::with_capacity(samples_wanted());
            bounce(&line, samples_wanted() as u64, Some(&mut samples));
            record_rtt("cacheline", N, &samples);
            sampled = true;
        }
        b.iter_custom(|iters| bounce(&line, iters, None))
    });
}

/// The cost of the timing itself (two [`ticks`] reads), sampled
/// like a round trip; the plot script subtracts its median.
fn timer_overhead() {
    let samples: Vec<u64> = (0..samples_wanted())
        .map(|_| {
            let t0 = ticks();
            black_box(ticks().wrapping_sub(t0))
        })
        .collect();
    record_rtt("timer_overhead", 0, &samples);
}

fn s5<const N: usize>(c: &mut Criterion) {
    let mut g = group(c, "s5_round_trip", 0);
    s5_cacheline::<N>(&mut g);
    let (a, b) = (
        evqueue_ring::<N>(Overflow::Overwrite),
        evqueue_ring::<N>(Overflow::Overwrite),
    );
    let (sa, sb) = (EvSub::new(&a), EvSub::new(&b));
    round_trip::<N, _, _, _, _>(
        &mut g,
        "evqueue_subscriber",
        (EvTx::new(&a), sa),
        (EvTx::new(&b), sb),
    );
    let (a, b) = (
        evqueue_ring::<N>(Overflow::Reject),
        evqueue_ring::<N>(Overflow::Reject),
    );
    round_trip::<N, _, _, _, _>(
        &mut g,
        "evqueue",
        (EvTx::new(&a), EvClaim::new(&a)),
        (EvTx::new(&b), EvClaim::new(&b)),
    );
    let (ta, sa) = photon_ring::channel::<[u8; N]>(CAPACITY);
    let (tb, sb) = photon_ring::channel::<[u8; N]>(CAPACITY);
    let (ra, rb) = (PhRx(sa.subscribe()), PhRx(sb.subscribe()));
    round_trip::<N, _, _, _, _>(&mut g, "photon_ring", (PhTx(ta), ra), (PhTx(tb), rb));
    let ((ta, mut ra), (tb, mut rb)) = (disruptor::<N>(1), disruptor::<N>(1));
    let (ra, rb) = (ra.pop().unwrap(), rb.pop().unwrap());
    round_trip::<N, _, _, _, _>(&mut g, "disruptor", (ta, ra), (tb, rb));
    let (qa, qb) = (array_queue::<N>(), array_queue::<N>());
    round_trip::<N, _, _, _, _>(
        &mut g,
        "arrayqueue",
        (AqTx(qa.clone()), AqRx(qa)),
        (AqTx(qb.clone()), AqRx(qb)),
    );
    round_trip::<N, _, _, _, _>(
        &mut g,
        "crossbeam_channel",
        crossbeam_channel::<N>(),
        crossbeam_channel::<N>(),
    );
    let ((ta, mut ra), (tb, mut rb)) = (tokio_broadcast::<N>(1), tokio_broadcast::<N>(1));
    let (ra, rb) = (ra.pop().unwrap(), rb.pop().unwrap());
    round_trip::<N, _, _, _, _>(&mut g, "tokio_broadcast", (ta, ra), (tb, rb));
    round_trip::<N, _, _, _, _>(&mut g, "ringbuf", ringbuf::<N>(), ringbuf::<N>());
    round_trip::<N, _, _, _, _>(&mut g, "heapless_spsc", heapless::<N>(), heapless::<N>());
    g.finish();
}

// ---- scenario 7: two producers ----

fn two_producers<const N: usize>(
    g: &mut Group<'_>,
    queue: &str,
    mut a: impl Tx<N>,
    mut b: impl Tx<N>,
) {
    g.bench_function(BenchmarkId::new(queue, N), |bench| {
        bench.iter_custom(|iters| {
            let (da, db) = (AtomicBool::new(false), AtomicBool::new(false));
            let half = iters / 2;
            let (time, (), ()) = time_two_threads(
                || pump(&mut a, half, 1, &da),
                || pump(&mut b, iters - half, 1, &db),
            );
            time
        })
    });
}

fn s7<const N: usize>(c: &mut Criterion) {
    let mut g = group(c, "s7_two_producers", 1);
    let ring = evqueue_ring::<N>(Overflow::Overwrite);
    two_producers::<N>(&mut g, "evqueue_mp", EvMpTx::new(&ring), EvMpTx::new(&ring));
    let q = array_queue::<N>();
    two_producers::<N>(
        &mut g,
        "arrayqueue_force_push",
        AqForceTx(q.clone()),
        AqForceTx(q),
    );
    let (tx, _subs) = photon_ring::channel_mpmc::<[u8; N]>(CAPACITY);
    two_producers::<N>(&mut g, "photon_ring_mpmc", PhMpTx(tx.clone()), PhMpTx(tx));
    let (tx, _rx) = tokio_broadcast::<N>(1);
    two_producers::<N>(&mut g, "tokio_broadcast", tx.clone(), tx);
    g.finish();
}

// ---- the goals, evqueue and its peer interleaved ----

/// `goal,bytes,round,evqueue,peer` rows: operations per second of each side
/// in one round.
static GOALS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Rounds of each goal pair (one when only checking that it runs).
fn goal_rounds() -> usize {
    by_mode(15, 1)
}

/// Operations per round for the one-thread and one-to-one goals.
fn goal_ops() -> u64 {
    by_mode(1 << 20, 1000)
}

/// Times evqueue (`ours`) and a peer round by round, alternating which goes
/// first, so both sides of each ratio see the same machine: the rows above
/// are minutes apart, and on a shared 2-core VM the machine changes in
/// minutes. Each closure runs one round and returns operations per second.
fn interleave(
    goal: &str,
    bytes: usize,
    mut ours: impl FnMut() -> f64,
    mut peer: impl FnMut() -> f64,
) {
    for round in 0..goal_rounds() {
        let (a, b) = if round % 2 == 0 {
            let a = ours();
            (a, peer())
        } else {
            let b = peer();
            (ours(), b)
        };
        GOALS
            .lock()
            .unwrap()
            .push(format!("{goal},{bytes},{round},{a:.1},{b:.1}"));
    }
}

fn per_second(ops: u64, time: Duration) -> f64 {
    ops as f64 / time.as_secs_f64()
}

/// One round of pushes, one thread.
fn push_rate<const N: usize>(tx: &mut impl Tx<N>) -> f64 {
    let bytes = payload::<N>();
    let t0 = Instant::now();
    for _ in 0..goal_ops() {
        tx.send(black_box(&bytes));
    }
    let rate = per_second(goal_ops(), t0.elapsed());
    // Push-only queues never refuse: a refusal means the round timed nothing.
    assert!(tx.send(&bytes), "a push-only send failed");
    rate
}

fn floor_rate<const N: usize>(floor: &mut StoreFloor) -> f64 {
    let bytes = payload::<N>();
    let t0 = Instant::now();
    for _ in 0..goal_ops() {
        floor.store(black_box(&bytes));
    }
    assert_ne!(floor.word(0), 0, "the floor stored nothing");
    per_second(goal_ops(), t0.elapsed())
}

/// One round of one producer to one lossless consumer: events delivered
/// per second.
fn one_to_one_rate<const N: usize>(tx: &mut impl Tx<N>, rx: &mut impl Rx<N>) -> f64 {
    let n = goal_ops();
    let done = AtomicBool::new(false);
    let (time, (), (got, lagged, sum)) =
        time_two_threads(|| pump(tx, n, 1, &done), || drain_until(rx, &done));
    assert_eq!((got, lagged, sum), (n, 0, n.wrapping_mul(per_event::<N>())));
    per_second(n, time)
}

/// One round of scenario 4: events per second per subscriber.
fn broadcast_rate<const N: usize, R: Rx<N>>(tx: &mut impl Tx<N>, rx: &mut [R; 4]) -> f64 {
    let n = by_mode(BROADCAST_ROUND, 100);
    fill(tx, n);
    let [r0, r1, r2, r3] = rx;
    let (time, (a0, a1), (a2, a3)) = time_two_threads(
        || (drain_all(r0), drain_all(r1)),
        || (drain_all(r2), drain_all(r3)),
    );
    for got in [a0, a1, a2, a3] {
        assert_eq!(got, (n, n.wrapping_mul(per_event::<N>())));
    }
    per_second(n, time)
}

/// The four subscribers of scenario 4, as an array.
fn four<T>(v: Vec<T>) -> [T; 4] {
    v.try_into().unwrap_or_else(|_| panic!("four subscribers"))
}

/// The two broadcast goals of evqueue's subscribers (`reads`: "" for single
/// reads, "_batch32" for batch reads) against the disruptor's and tokio's.
fn broadcast_goals<const N: usize, R: Rx<N>>(
    reads: &str,
    (tx, subs): (&mut impl Tx<N>, &mut [R; 4]),
    (dtx, drx): (&mut impl Tx<N>, &mut [impl Rx<N>; 4]),
    (ttx, trx): (&mut impl Tx<N>, &mut [impl Rx<N>; 4]),
) {
    interleave(
        &format!("broadcast{reads}_vs_disruptor"),
        N,
        || broadcast_rate::<N, _>(tx, subs),
        || broadcast_rate::<N, _>(dtx, drx),
    );
    interleave(
        &format!("broadcast{reads}_vs_tokio"),
        N,
        || broadcast_rate::<N, _>(tx, subs),
        || broadcast_rate::<N, _>(ttx, trx),
    );
}

fn goals<const N: usize>() {
    let ops = goal_ops();
    // Push: against the floor, `ArrayQueue::force_push` and photon-ring.
    let ring = evqueue_ring::<N>(Overflow::Overwrite);
    let mut ev = EvTx::new(&ring);
    let mut floor = StoreFloor::new(CAPACITY, N / 8);
    interleave(
        "push_vs_floor",
        N,
        || push_rate::<N>(&mut ev),
        || floor_rate::<N>(&mut floor),
    );
    let mut aq = AqForceTx(array_queue::<N>());
    interleave(
        "push_vs_force_push",
        N,
        || push_rate::<N>(&mut ev),
        || push_rate::<N>(&mut aq),
    );
    let (tx, _subs) = photon_ring::channel::<[u8; N]>(CAPACITY);
    let mut ph = PhTx(tx);
    interleave(
        "push_vs_photon_ring",
        N,
        || push_rate::<N>(&mut ev),
        || push_rate::<N>(&mut ph),
    );

    // One producer to one worker, single and batch claims, against the
    // disruptor.
    let (mut dtx, mut drx) = disruptor::<N>(1);
    let mut drx = drx.pop().unwrap();
    let ring = evqueue_ring::<N>(Overflow::Reject);
    let (mut tx, mut rx) = (EvTx::new(&ring), EvClaim::new(&ring));
    interleave(
        "one_to_one_vs_disruptor",
        N,
        || one_to_one_rate::<N>(&mut tx, &mut rx),
        || one_to_one_rate::<N>(&mut dtx, &mut drx),
    );
    let ring = evqueue_ring::<N>(Overflow::Reject);
    let (mut tx, mut rx) = (EvTx::new(&ring), EvBatch::new(&ring));
    interleave(
        "one_to_one_batch32_vs_disruptor",
        N,
        || one_to_one_rate::<N>(&mut tx, &mut rx),
        || one_to_one_rate::<N>(&mut dtx, &mut drx),
    );

    // Four subscribers, single and batch reads, against the disruptor and
    // tokio broadcast.
    let (mut dtx, drx) = disruptor::<N>(4);
    let mut drx = four(drx);
    let (mut ttx, trx) = tokio_broadcast::<N>(4);
    let mut trx = four(trx);
    let ring = evqueue_ring::<N>(Overflow::Overwrite);
    let mut subs = four((0..4).map(|_| EvSub::new(&ring)).collect());
    broadcast_goals::<N, _>(
        "",
        (&mut EvTx::new(&ring), &mut subs),
        (&mut dtx, &mut drx),
        (&mut ttx, &mut trx),
    );
    let ring = evqueue_ring::<N>(Overflow::Overwrite);
    let mut subs = four((0..4).map(|_| EvSubBatch::new(&ring)).collect());
    broadcast_goals::<N, _>(
        "_batch32",
        (&mut EvTx::new(&ring), &mut subs),
        (&mut dtx, &mut drx),
        (&mut ttx, &mut trx),
    );

    // Round trip against the bare cache line: round trips per second.
    let (a, b) = (
        evqueue_ring::<N>(Overflow::Overwrite),
        evqueue_ring::<N>(Overflow::Overwrite),
    );
    let (mut ta, mut ra) = (EvTx::new(&a), EvSub::new(&b));
    let (mut tb, mut rb) = (EvTx::new(&b), EvSub::new(&a));
    let line = Line(AtomicU64::new(0));
    let trips = ops / 16;
    interleave(
        "round_trip_vs_cacheline",
        N,
        || {
            let time = ping_pong::<N>((&mut ta, &mut rb), (&mut tb, &mut ra), trips, None);
            per_second(trips, time)
        },
        || per_second(trips, bounce(&line, trips, None)),
    );
}

// ---- driver ----

/// A group of per-event rows. Two-thread groups (every scenario but the
/// first) sample flat: every sample runs the same number of events, so a
/// sample that lost a core to another process is one outlier among equals
/// and the median (what the report uses) stays put.
fn group<'a>(c: &'a mut Criterion, name: &str, elements: u64) -> Group<'a> {
    let mut g = c.benchmark_group(name);
    if elements > 0 {
        g.throughput(Throughput::Elements(elements));
    }
    if name != "s1_push" {
        g.sampling_mode(SamplingMode::Flat);
    }
    g
}

fn benches(c: &mut Criterion) {
    s1::<64>(c);
    s1::<256>(c);
    s2::<64>(c);
    s2::<256>(c);
    s3::<64>(c);
    s3::<256>(c);
    s4::<64>(c);
    s4::<256>(c);
    timer_overhead();
    s5::<64>(c);
    s5::<256>(c);
    s6::<64>(c);
    s6::<256>(c);
    s7::<64>(c);
    s7::<256>(c);
    goals::<64>();
    goals::<256>();
    if bench_mode() {
        let loss = std::mem::take(&mut *LOSS.lock().unwrap());
        let header = "scenario,queue,bytes,pushed,delivered,reported_lost";
        merge_extra("loss.csv", header, 3, &loss);
        let rtt = std::mem::take(&mut *RTT.lock().unwrap());
        merge_extra("rtt_samples.csv", "queue,bytes,ns", 2, &rtt);
        let goals = std::mem::take(&mut *GOALS.lock().unwrap());
        merge_extra("goals.csv", "goal,bytes,round,evqueue,peer", 3, &goals);
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(20)
}

criterion_group! {
    name = peer_benches;
    config = config();
    targets = benches
}
criterion_main!(peer_benches);
