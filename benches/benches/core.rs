//! The core ring, one thread at a time, against the physical floor and a peer.
//!
//! Every row uses the same geometry: 65536 slots of 256 bytes
//! (`HeapRing::with_capacity(65536, 256, Overflow::Overwrite)`), payloads of
//! 64 and 256 bytes. Figures are per event (`Throughput::Elements`).
//!
//! - `floor/store_N`: the payload's words stored with relaxed atomic stores
//!   into memory of the ring's size, nothing else: what a push cannot beat.
//!   The single producer should stay within 1.5x of it.
//! - `push_sp/N`, `push_mp/N`: [`Producer::push`] and [`MpProducer::push`]
//!   from one thread with no consumer (the overwrite path once the ring has
//!   wrapped).
//! - `claim/N`, `claim_batch/N`, `subscriber/N`:
//!   [`evqueue::Ring::try_claim`], [`evqueue::Ring::try_claim_batch`] (32 at
//!   a time) and [`evqueue::Subscriber::try_recv`] on a ring refilled,
//!   untimed, in runs of [`REFILL`] events, so every timed receive finds an
//!   event and its slot is still in this core's cache, as for a consumer that
//!   keeps up.
//! - `arrayqueue_force_push/N`: `crossbeam_queue::ArrayQueue<[u8; N]>` of the
//!   same capacity, `force_push` with no consumer: the peer reference.
//!
//! `cargo bench -p benches --bench core` takes about a minute;
//! `cargo test -p benches --benches` runs each row once.

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::{payload, StoreFloor, CAPACITY, SLOT_BYTES, SLOT_WORDS};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use crossbeam_queue::ArrayQueue;
use evqueue::{Claim, HeapRing, MpProducer, Overflow, Producer, RecvError, Start};

/// Events pushed, untimed, before each timed run of receives: 1024 slots of
/// 272 bytes (stamp, length, 256 data bytes) fit in L2.
const REFILL: u64 = 1024;
/// Events per `try_claim_batch` call.
const BATCH: usize = 32;

type Group<'a> = BenchmarkGroup<'a, WallTime>;

fn ring() -> HeapRing {
    HeapRing::with_capacity(CAPACITY, SLOT_BYTES, Overflow::Overwrite).expect("bench ring")
}

/// Runs `events` receives, `REFILL` at a time: `fill(n)` pushes `n` events
/// untimed, then `recv` is timed `n` times. Returns the timed total and how
/// many receives delivered an event.
fn refill_and_time(
    events: u64,
    mut fill: impl FnMut(u64),
    mut recv: impl FnMut() -> bool,
) -> (Duration, u64) {
    let (mut total, mut delivered, mut left) = (Duration::ZERO, 0, events);
    while left > 0 {
        let n = left.min(REFILL);
        fill(n);
        let start = Instant::now();
        for _ in 0..n {
            delivered += recv() as u64;
        }
        total += start.elapsed();
        left -= n;
    }
    (total, delivered)
}

fn push_n<const N: usize>(producer: &mut Producer<&HeapRing>, n: u64) {
    let bytes = payload::<N>();
    for _ in 0..n {
        producer.push(&bytes).expect("fill push");
    }
}

// ---- rows, one payload size each ----
//
// Each row checks its work inside the bench closure, after the timed part:
// criterion calls the closure only for rows a filter selects.

fn floor_store<const N: usize>(g: &mut Group<'_>) {
    let mut floor = StoreFloor::new(CAPACITY, SLOT_WORDS);
    let bytes = payload::<N>();
    g.bench_function(format!("store_{N}"), |b| {
        b.iter(|| floor.store(black_box(&bytes)));
        assert_ne!(floor.word(0), 0, "the floor stored nothing");
    });
}

fn push_sp<const N: usize>(g: &mut Group<'_>) {
    let ring = ring();
    let mut producer = ring.producer().expect("single producer");
    let bytes = payload::<N>();
    g.bench_function(BenchmarkId::from_parameter(N), |b| {
        b.iter(|| producer.push(black_box(&bytes)));
        assert_eq!(producer.push(&bytes).map(|seq| seq > 0), Ok(true));
    });
}

fn push_mp<const N: usize>(g: &mut Group<'_>) {
    let ring = ring();
    let producer = MpProducer::new(&ring).expect("multi producer");
    let bytes = payload::<N>();
    g.bench_function(BenchmarkId::from_parameter(N), |b| {
        b.iter(|| producer.push(black_box(&bytes)));
        assert_eq!(producer.push(&bytes).map(|seq| seq > 0), Ok(true));
    });
}

fn claim<const N: usize>(g: &mut Group<'_>) {
    let ring = ring();
    let mut producer = ring.producer().expect("single producer");
    let mut buf = [0u8; SLOT_BYTES];
    g.bench_function(BenchmarkId::from_parameter(N), |b| {
        b.iter_custom(|iters| {
            let (time, delivered) = refill_and_time(
                iters,
                |n| push_n::<N>(&mut producer, n),
                || black_box(ring.try_claim(black_box(&mut buf))).is_ok(),
            );
            assert_eq!(delivered, iters, "a timed claim found no event");
            assert_eq!(ring.try_claim(&mut buf), Err(RecvError::Empty));
            time
        })
    });
}

fn claim_batch<const N: usize>(g: &mut Group<'_>) {
    let ring = ring();
    let mut producer = ring.producer().expect("single producer");
    let mut buf = vec![0u8; BATCH * SLOT_BYTES];
    let mut claims = [Claim::default(); BATCH];
    g.bench_function(BenchmarkId::from_parameter(N), |b| {
        // One iteration is one call claiming BATCH events.
        b.iter_custom(|iters| {
            let calls_per_refill = REFILL / BATCH as u64;
            let (mut total, mut left, mut delivered) = (Duration::ZERO, iters, 0);
            while left > 0 {
                let calls = left.min(calls_per_refill);
                push_n::<N>(&mut producer, calls * BATCH as u64);
                let start = Instant::now();
                for _ in 0..calls {
                    let got = ring.try_claim_batch(black_box(&mut buf), black_box(&mut claims));
                    delivered += black_box(got).unwrap_or(0) as u64;
                }
                total += start.elapsed();
                left -= calls;
            }
            assert_eq!(
                delivered,
                iters * BATCH as u64,
                "a timed batch came up short"
            );
            assert_eq!(claims[BATCH - 1].len, N);
            assert_eq!(ring.try_claim(&mut buf), Err(RecvError::Empty));
            total
        })
    });
}

fn subscriber<const N: usize>(g: &mut Group<'_>) {
    let ring = ring();
    let mut subscriber = ring.subscribe(Start::Now);
    let mut producer = ring.producer().expect("single producer");
    let mut buf = [0u8; SLOT_BYTES];
    g.bench_function(BenchmarkId::from_parameter(N), |b| {
        b.iter_custom(|iters| {
            let (time, delivered) = refill_and_time(
                iters,
                |n| push_n::<N>(&mut producer, n),
                || black_box(subscriber.try_recv(black_box(&mut buf))).is_ok(),
            );
            assert_eq!(delivered, iters, "a timed receive found no event");
            assert_eq!(subscriber.try_recv(&mut buf), Err(RecvError::Empty));
            assert_eq!(subscriber.missed(), 0);
            time
        })
    });
}

fn arrayqueue_force_push<const N: usize>(g: &mut Group<'_>) {
    let queue = ArrayQueue::<[u8; N]>::new(CAPACITY);
    let bytes = payload::<N>();
    g.bench_function(BenchmarkId::from_parameter(N), |b| {
        b.iter(|| queue.force_push(black_box(bytes)));
        assert!(!queue.is_empty());
    });
}

// ---- groups ----

fn group<'a>(c: &'a mut Criterion, name: &str, elements: u64) -> Group<'a> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(elements));
    g
}

/// A push refused with `Full` (a `Reject` ring that nobody drains): what a
/// producer spinning on a full ring pays per retry.
fn push_full(g: &mut Group<'_>) {
    let ring = HeapRing::with_capacity(64, 64, Overflow::Reject).expect("ring");
    let bytes = payload::<64>();
    {
        let mut producer = ring.producer().expect("single producer");
        while producer.push(&bytes).is_ok() {}
        g.bench_function("sp", |b| {
            b.iter(|| producer.push(black_box(&bytes)));
            assert_eq!(producer.push(&bytes), Err(evqueue::Error::Full));
        });
    }
    let producer = MpProducer::new(&ring).expect("multi producer");
    g.bench_function("mp", |b| {
        b.iter(|| producer.push(black_box(&bytes)));
        assert_eq!(producer.push(&bytes), Err(evqueue::Error::Full));
    });
}

fn benches(c: &mut Criterion) {
    let mut g = group(c, "push_full", 1);
    push_full(&mut g);
    g.finish();

    let mut g = group(c, "floor", 1);
    floor_store::<64>(&mut g);
    floor_store::<256>(&mut g);
    g.finish();

    let mut g = group(c, "push_sp", 1);
    push_sp::<64>(&mut g);
    push_sp::<256>(&mut g);
    g.finish();

    let mut g = group(c, "push_mp", 1);
    push_mp::<64>(&mut g);
    push_mp::<256>(&mut g);
    g.finish();

    let mut g = group(c, "claim", 1);
    claim::<64>(&mut g);
    claim::<256>(&mut g);
    g.finish();

    let mut g = group(c, "claim_batch", BATCH as u64);
    claim_batch::<64>(&mut g);
    claim_batch::<256>(&mut g);
    g.finish();

    let mut g = group(c, "subscriber", 1);
    subscriber::<64>(&mut g);
    subscriber::<256>(&mut g);
    g.finish();

    let mut g = group(c, "arrayqueue_force_push", 1);
    arrayqueue_force_push::<64>(&mut g);
    arrayqueue_force_push::<256>(&mut g);
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = core_benches;
    config = config();
    targets = benches
}
criterion_main!(core_benches);
