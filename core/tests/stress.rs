//! Multi-threaded stress tests of the ring under real contention: no torn
//! event reaches anyone, the worker group never delivers an event twice,
//! order is kept, subscribers account for every gap with `Lagged(n)`, and
//! the counters add up exactly once everything has drained.
//!
//! Meant for `cargo test -p evqueue --release --test stress` (10 million
//! events in scenario A); debug builds and Miri run far fewer.
//!
//! Every payload is self-checking: `[tag: u64 = producer id << 56 | counter]`,
//! filler derived from the tag, then a checksum of everything before it. Its
//! length (16..=64 bytes) is derived from the tag too, so a torn length word
//! is caught as well as torn data. Checkers regenerate the whole payload from
//! the tag and compare every byte.
//!
//! No wait loop can hang: every thread gives up at a shared deadline, and the
//! test then fails naming who was still waiting.

use evqueue::{
    Claim, Error, HeapRing, MpProducer, Overflow, Producer, RecvError, Start, Subscriber,
};
use std::fmt::Write as _;
use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// Scenario A: events from the single producer.
const EVENTS_A: u64 = if cfg!(miri) {
    300
} else if cfg!(debug_assertions) {
    200_000
} else {
    10_000_000
};
/// Scenario B: events from each of the two multi-producer threads.
const EVENTS_B: u64 = if cfg!(miri) {
    150
} else if cfg!(debug_assertions) {
    100_000
} else {
    5_000_000
};
/// Scenario D: events each of the two multi-producer threads gets accepted
/// under `Reject`.
const EVENTS_D: u64 = if cfg!(miri) {
    150
} else if cfg!(debug_assertions) {
    50_000
} else {
    1_000_000
};
/// Scenario C: events the single producer gets accepted under `Reject`.
const EVENTS_C: u64 = if cfg!(miri) {
    300
} else if cfg!(debug_assertions) {
    100_000
} else {
    2_000_000
};

/// `EVQUEUE_STRESS_SCALE=n` multiplies every event count by `n`, for soak runs.
fn scale() -> u64 {
    match std::env::var("EVQUEUE_STRESS_SCALE") {
        Ok(n) => n
            .parse()
            .expect("EVQUEUE_STRESS_SCALE must be a positive integer"),
        Err(_) => 1,
    }
}

/// Small enough that the producers lap the consumers often.
const CAPACITY: usize = if cfg!(miri) { 8 } else { 1024 };
/// Scenario C: small, so the producer runs into `Full` often.
const CAPACITY_C: usize = if cfg!(miri) { 8 } else { 256 };
const SLOT_BYTES: usize = 64;
/// Largest batch the batching worker asks for.
const BATCH: usize = 8;
/// Producers alternate phases of this many events: flat out (consumers are
/// lapped over and over), then yielding every `YIELD_EVERY` events so that
/// consumers on the same core interleave with the writes closely.
const PHASE: u64 = if cfg!(miri) { 64 } else { 1 << 20 };
const YIELD_EVERY: u64 = 256;
/// Every wait loop gives up this long after the scenario started (times the
/// scale) and fails the test.
const DEADLINE: Duration = Duration::from_secs(120);

const MIN_LEN: usize = 16;
const MAX_LEN: usize = SLOT_BYTES;
const COUNTER_MASK: u64 = (1 << 56) - 1;

// ---- self-checking payloads ----

fn mix(mut z: u64) -> u64 {
    // splitmix64's finalizer
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn checksum(bytes: &[u8]) -> u64 {
    let mut h = mix(bytes.len() as u64 ^ 0x00C0_FFEE);
    for chunk in bytes.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = mix(h ^ u64::from_le_bytes(w));
    }
    h
}

fn tag(pid: u8, counter: u64) -> u64 {
    (u64::from(pid) << 56) | counter
}

/// Writes event `counter` of producer `pid` into `out`; returns its length.
fn make_payload(pid: u8, counter: u64, out: &mut [u8; MAX_LEN]) -> usize {
    let tag = tag(pid, counter);
    let len = MIN_LEN + (mix(tag) % (MAX_LEN - MIN_LEN + 1) as u64) as usize;
    let body_end = len - 8;
    out[..8].copy_from_slice(&tag.to_le_bytes());
    for (i, chunk) in out[8..body_end].chunks_mut(8).enumerate() {
        let word = mix(tag ^ (i as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93)).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    let sum = checksum(&out[..body_end]);
    out[body_end..len].copy_from_slice(&sum.to_le_bytes());
    len
}

/// Validates a received payload; returns `(producer id, counter)`.
fn check_payload(bytes: &[u8]) -> Result<(u8, u64), String> {
    let len = bytes.len();
    if !(MIN_LEN..=MAX_LEN).contains(&len) {
        return Err(format!("length {len} outside {MIN_LEN}..={MAX_LEN}"));
    }
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&bytes[len - 8..]);
    if u64::from_le_bytes(sum) != checksum(&bytes[..len - 8]) {
        return Err(format!("checksum mismatch, bytes {bytes:02x?}"));
    }
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&bytes[..8]);
    let tag = u64::from_le_bytes(tag);
    let (pid, counter) = ((tag >> 56) as u8, tag & COUNTER_MASK);
    let mut expected = [0u8; MAX_LEN];
    let n = make_payload(pid, counter, &mut expected);
    if bytes != &expected[..n] {
        return Err(format!(
            "checksum fine but payload differs from event ({pid}, {counter}): got {bytes:02x?}"
        ));
    }
    Ok((pid, counter))
}

// ---- test plumbing ----

/// Shared deadline and stop flag: every wait loop checks in here.
struct Watchdog {
    scenario: &'static str,
    limit: Duration,
    deadline: Instant,
    stop: AtomicBool,
    expired: Mutex<Vec<String>>,
}

impl Watchdog {
    fn new(scenario: &'static str) -> Self {
        let limit = DEADLINE * u32::try_from(scale()).expect("scale fits u32");
        Watchdog {
            scenario,
            limit,
            deadline: Instant::now() + limit,
            stop: AtomicBool::new(false),
            expired: Mutex::new(Vec::new()),
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Stops everyone (a thread failed or the deadline passed).
    fn abort(&self, who: &str, why: &str) {
        self.stop.store(true, Ordering::Relaxed);
        self.expired.lock().unwrap().push(format!("{who}: {why}"));
    }

    /// Backs off once in a wait loop; `false` means give up.
    fn snooze(&self, backoff: &mut u32, who: &str, waiting_for: &str) -> bool {
        if *backoff < 16 {
            spin_loop();
        } else {
            thread::yield_now();
        }
        *backoff += 1;
        if self.stopped() {
            return false;
        }
        if *backoff % 16 == 0 && Instant::now() > self.deadline {
            self.abort(
                who,
                &format!("still waiting for {waiting_for} after {:?}", self.limit),
            );
            return false;
        }
        true
    }

    /// Producers call this now and then: `false` means stop pushing.
    fn keep_going(&self, who: &str) -> bool {
        if self.stopped() {
            return false;
        }
        if Instant::now() > self.deadline {
            self.abort(who, &format!("still pushing after {:?}", self.limit));
            return false;
        }
        true
    }

    fn assert_not_expired(&self) {
        let expired = self.expired.lock().unwrap();
        assert!(
            expired.is_empty(),
            "scenario {}: gave up at the {:?} deadline (or after a failure): {expired:#?}",
            self.scenario,
            self.limit
        );
    }
}

/// Failures seen by one thread: a count and the first few messages.
#[derive(Default)]
struct Failures {
    count: u64,
    first: Vec<String>,
}

impl Failures {
    fn push(&mut self, message: impl FnOnce() -> String) {
        self.count += 1;
        if self.first.len() < 10 {
            self.first.push(message());
        }
    }
}

fn assert_no_failures<'a>(scenario: &str, all: impl IntoIterator<Item = (&'a str, &'a Failures)>) {
    let mut report = String::new();
    for (who, failures) in all {
        if failures.count > 0 {
            let _ = writeln!(
                report,
                "{who}: {} failures, first: {:#?}",
                failures.count, failures.first
            );
        }
    }
    assert!(report.is_empty(), "scenario {scenario}:\n{report}");
}

/// A set of counters `0..len`.
struct Bitmap(Vec<u64>);

impl Bitmap {
    fn new(len: u64) -> Self {
        Bitmap(vec![0; len.div_ceil(64) as usize])
    }
    /// Sets bit `i`; returns whether it was set already.
    fn set(&mut self, i: u64) -> bool {
        let (word, bit) = ((i / 64) as usize, 1u64 << (i % 64));
        let was = self.0[word] & bit != 0;
        self.0[word] |= bit;
        was
    }
    fn count(&self) -> u64 {
        self.0.iter().map(|w| u64::from(w.count_ones())).sum()
    }
    fn overlap(&self, other: &Bitmap) -> u64 {
        self.0
            .iter()
            .zip(&other.0)
            .map(|(a, b)| u64::from((a & b).count_ones()))
            .sum()
    }
    fn union_count(&self, other: &Bitmap) -> u64 {
        self.0
            .iter()
            .zip(&other.0)
            .map(|(a, b)| u64::from((a | b).count_ones()))
            .sum()
    }
    /// First counter in both sets, for the failure message.
    fn first_common(&self, other: &Bitmap) -> Option<u64> {
        self.0
            .iter()
            .zip(&other.0)
            .enumerate()
            .find(|(_, (a, b))| *a & *b != 0)
            .map(|(i, (a, b))| i as u64 * 64 + u64::from((a & b).trailing_zeros()))
    }
}

/// How the events of a scenario relate to the ring's sequence numbers.
#[derive(Clone, Copy)]
struct Shape {
    producers: usize,
    per_producer: u64,
    /// One single producer: the counter in the payload is the sequence number.
    counter_is_seq: bool,
}

// ---- workers ----

struct WorkerReport {
    name: &'static str,
    /// Events claimed (valid or not): what the ring counts as delivered.
    claimed: u64,
    /// Sequence numbers this worker's calls passed over as lost
    /// (`Claim::lost` and `Lagged`).
    lost: u64,
    batch_calls: u64,
    batch_events: u64,
    largest_batch: usize,
    torn: u64,
    empties: u64,
    /// Per producer: the counters this worker claimed.
    seen: Vec<Bitmap>,
    failures: Failures,
}

/// Drains the worker group until `Closed`; `batching` alternates
/// `try_claim_batch` (sizes 1..=BATCH) with `try_claim`.
fn run_worker(
    ring: &HeapRing,
    name: &'static str,
    batching: bool,
    shape: Shape,
    wd: &Watchdog,
) -> WorkerReport {
    let mut report = WorkerReport {
        name,
        claimed: 0,
        lost: 0,
        batch_calls: 0,
        batch_events: 0,
        largest_batch: 0,
        torn: 0,
        empties: 0,
        seen: (0..shape.producers)
            .map(|_| Bitmap::new(shape.per_producer))
            .collect(),
        failures: Failures::default(),
    };
    let mut buf = vec![0u8; SLOT_BYTES * BATCH];
    let mut claims = [Claim::default(); BATCH];
    let mut last_seq: Option<u64> = None;
    let mut last_counter: Vec<Option<u64>> = vec![None; shape.producers];
    let mut backoff = 0;
    let mut round = 0u64;
    loop {
        round += 1;
        let batch = batching && round % 2 == 0;
        let result = if batch {
            let k = 1 + (round / 2) as usize % BATCH;
            ring.try_claim_batch(&mut buf, &mut claims[..k])
        } else {
            ring.try_claim(&mut buf[..SLOT_BYTES]).map(|c| {
                claims[0] = c;
                1
            })
        };
        let n = match result {
            Ok(n) => n,
            Err(RecvError::Empty) => {
                report.empties += 1;
                if !wd.snooze(&mut backoff, name, "RecvError::Closed") {
                    return report;
                }
                continue;
            }
            Err(RecvError::Closed) => return report,
            Err(RecvError::Lagged(n)) => {
                report.lost += n;
                continue;
            }
            Err(e) => {
                report
                    .failures
                    .push(|| format!("unexpected {e:?} from the worker group"));
                wd.abort(name, "unexpected receive error");
                return report;
            }
        };
        backoff = 0;
        // Let the other worker in now and then: otherwise whichever worker
        // shares no core with the producer claims nearly everything, and the
        // two never race for the cursor.
        if round % 128 == 0 {
            thread::yield_now();
        }
        if batch {
            report.batch_calls += 1;
            report.batch_events += n as u64;
            report.largest_batch = report.largest_batch.max(n);
        }
        if n == 0 || n > BATCH {
            report
                .failures
                .push(|| format!("try_claim_batch returned Ok({n})"));
            wd.abort(name, "try_claim_batch returned a bad count");
            return report;
        }
        for (i, claim) in claims[..n].iter().enumerate() {
            report.claimed += 1;
            report.lost += claim.lost;
            if claim.seq != claims[0].seq + i as u64 {
                report
                    .failures
                    .push(|| format!("batch not consecutive: {:?}", &claims[..n]));
            }
            if let Some(last) = last_seq {
                if claim.seq <= last {
                    report.failures.push(|| {
                        format!("seq {} claimed after seq {last}: not increasing", claim.seq)
                    });
                }
            }
            last_seq = Some(claim.seq);
            if claim.len > SLOT_BYTES {
                report.torn += 1;
                report
                    .failures
                    .push(|| format!("seq {}: length {} > slot", claim.seq, claim.len));
                continue;
            }
            let bytes = &buf[i * SLOT_BYTES..i * SLOT_BYTES + claim.len];
            let (pid, counter) = match check_payload(bytes) {
                Ok(ok) => ok,
                Err(why) => {
                    report.torn += 1;
                    report
                        .failures
                        .push(|| format!("torn event, seq {}: {why}", claim.seq));
                    continue;
                }
            };
            if usize::from(pid) >= shape.producers || counter >= shape.per_producer {
                report.failures.push(|| {
                    format!(
                        "seq {}: event ({pid}, {counter}) was never pushed",
                        claim.seq
                    )
                });
                continue;
            }
            if shape.counter_is_seq && counter != claim.seq {
                report.failures.push(|| {
                    format!(
                        "claim seq {} carries the payload of seq {counter}",
                        claim.seq
                    )
                });
            }
            let last = &mut last_counter[usize::from(pid)];
            if let Some(prev) = *last {
                if counter <= prev {
                    report.failures.push(|| {
                        format!(
                            "producer {pid}: counter {counter} after {prev} (seq {})",
                            claim.seq
                        )
                    });
                }
            }
            *last = Some(counter);
            if report.seen[usize::from(pid)].set(counter) {
                report
                    .failures
                    .push(|| format!("event ({pid}, {counter}) claimed twice by this worker"));
            }
        }
    }
}

/// The workers together claimed no event twice; returns the claim total.
fn check_disjoint(scenario: &str, w0: &WorkerReport, w1: &WorkerReport) -> u64 {
    for (pid, (a, b)) in w0.seen.iter().zip(&w1.seen).enumerate() {
        let overlap = a.overlap(b);
        assert_eq!(
            overlap,
            0,
            "scenario {scenario}: {overlap} events of producer {pid} were claimed by both {} and {} \
             (first: counter {:?})",
            w0.name,
            w1.name,
            a.first_common(b)
        );
    }
    w0.claimed + w1.claimed
}

// ---- subscribers ----

struct SubscriberReport {
    name: &'static str,
    start: u64,
    /// `next_seq()` after `Closed`: the final head.
    end: u64,
    received: u64,
    lagged: u64,
    lag_reports: u64,
    /// Sequence numbers skipped without a `Lagged` (must stay 0).
    silent: u64,
    missed: u64,
    torn: u64,
    failures: Failures,
}

/// Batched or single subscriber reads behind one `next`.
struct SubscriberBatch {
    batched: bool,
    buf: Vec<u8>,
    claims: [Claim; 16],
    have: usize,
    next: usize,
}

impl SubscriberBatch {
    fn new(batched: bool) -> Self {
        SubscriberBatch {
            batched,
            buf: vec![0u8; 16 * SLOT_BYTES],
            claims: [Claim::default(); 16],
            have: 0,
            next: 0,
        }
    }

    /// The next event, copied into `out` as `try_recv` would.
    fn next(
        &mut self,
        sub: &mut Subscriber<&HeapRing>,
        out: &mut [u8; SLOT_BYTES],
    ) -> Result<Claim, RecvError> {
        if !self.batched {
            return sub.try_recv(out);
        }
        if self.next == self.have {
            self.have = sub.try_recv_batch(&mut self.buf, &mut self.claims)?;
            self.next = 0;
        }
        let claim = self.claims[self.next];
        let at = self.next * SLOT_BYTES;
        out.copy_from_slice(&self.buf[at..at + SLOT_BYTES]);
        self.next += 1;
        Ok(claim)
    }
}

/// Receives until `Closed`; `slow` yields now and then to fall behind.
fn run_subscriber(
    mut sub: Subscriber<&HeapRing>,
    name: &'static str,
    slow: bool,
    shape: Shape,
    wd: &Watchdog,
) -> SubscriberReport {
    let start = sub.next_seq();
    let mut report = SubscriberReport {
        name,
        start,
        end: start,
        received: 0,
        lagged: 0,
        lag_reports: 0,
        silent: 0,
        missed: 0,
        torn: 0,
        failures: Failures::default(),
    };
    let mut buf = [0u8; SLOT_BYTES];
    let mut expected = start;
    let mut last_counter: Vec<Option<u64>> = vec![None; shape.producers];
    let mut backoff = 0;
    // The fast subscriber reads in batches of up to 16 (`try_recv_batch`),
    // handed out one at a time below; the slow one reads one by one.
    let mut batch = SubscriberBatch::new(!slow);
    loop {
        match batch.next(&mut sub, &mut buf) {
            Ok(claim) => {
                backoff = 0;
                report.received += 1;
                if claim.seq < expected {
                    report.failures.push(|| {
                        format!("seq {} received, expected {expected} or later", claim.seq)
                    });
                } else if claim.seq > expected {
                    if shape.counter_is_seq {
                        report.failures.push(|| {
                            format!(
                                "seq {} received after {}: gap without Lagged",
                                claim.seq,
                                expected - 1
                            )
                        });
                    }
                    report.silent += claim.seq - expected;
                }
                expected = claim.seq + 1;
                if claim.len > SLOT_BYTES {
                    report.torn += 1;
                    report
                        .failures
                        .push(|| format!("seq {}: length {} > slot", claim.seq, claim.len));
                    continue;
                }
                match check_payload(&buf[..claim.len]) {
                    Err(why) => {
                        report.torn += 1;
                        report
                            .failures
                            .push(|| format!("torn event, seq {}: {why}", claim.seq));
                    }
                    Ok((pid, counter)) => {
                        if usize::from(pid) >= shape.producers || counter >= shape.per_producer {
                            report.failures.push(|| {
                                format!("seq {}: event ({pid}, {counter}) never pushed", claim.seq)
                            });
                            continue;
                        }
                        if shape.counter_is_seq && counter != claim.seq {
                            report.failures.push(|| {
                                format!("seq {} carries the payload of seq {counter}", claim.seq)
                            });
                        }
                        let last = &mut last_counter[usize::from(pid)];
                        if let Some(prev) = *last {
                            if counter <= prev {
                                report.failures.push(|| {
                                    format!("producer {pid}: counter {counter} after {prev}")
                                });
                            }
                        }
                        *last = Some(counter);
                    }
                }
                if slow && report.received % 256 == 0 {
                    thread::yield_now();
                }
            }
            Err(RecvError::Lagged(n)) => {
                backoff = 0;
                if n == 0 {
                    report.failures.push(|| "Lagged(0)".to_string());
                }
                report.lagged += n;
                report.lag_reports += 1;
                // Where the lapped cursor stood: holes skipped in the same
                // call (multi-producer only) come before it, unreported.
                let lapped_at = sub.next_seq().wrapping_sub(n);
                if lapped_at < expected || (shape.counter_is_seq && lapped_at != expected) {
                    report.failures.push(|| {
                        format!(
                            "Lagged({n}) leaves next_seq() at {}, expected {}",
                            sub.next_seq(),
                            expected + n
                        )
                    });
                } else {
                    report.silent += lapped_at - expected;
                }
                expected = sub.next_seq();
            }
            Err(RecvError::Empty) => {
                if !wd.snooze(&mut backoff, name, "RecvError::Closed") {
                    break;
                }
            }
            Err(RecvError::Closed) => break,
            Err(e) => {
                report.failures.push(|| format!("unexpected {e:?}"));
                wd.abort(name, "unexpected receive error");
                break;
            }
        }
    }
    report.end = sub.next_seq();
    report.missed = sub.missed();
    report
}

/// Exact accounting of one subscriber against the final head: every
/// sequence number received or reported in a `Lagged`.
fn check_subscriber(scenario: &str, sub: &SubscriberReport, final_head: u64) {
    let who = format!("scenario {scenario}, {}", sub.name);
    assert_eq!(sub.torn, 0, "{who}: torn events");
    assert_eq!(
        sub.end, final_head,
        "{who}: Closed before reaching the final head"
    );
    assert_eq!(
        sub.received + sub.lagged + sub.silent,
        sub.end - sub.start,
        "{who}: received {} + lagged {} + holes {} != end {} - start {}",
        sub.received,
        sub.lagged,
        sub.silent,
        sub.end,
        sub.start
    );
    assert_eq!(
        sub.missed, sub.lagged,
        "{who}: missed() differs from the sum of Lagged(n)"
    );
    assert_eq!(
        sub.silent, 0,
        "{who}: sequence numbers skipped without a Lagged"
    );
}

/// After the drain: the ring is closed and sealed at `final_head`, and the
/// worker group's cursor reached it.
fn check_sealed(scenario: &str, ring: &HeapRing, final_head: u64) {
    assert!(
        ring.is_closed() && ring.is_sealed(),
        "scenario {scenario}: not sealed after close"
    );
    assert_eq!(ring.next_seq(), final_head, "scenario {scenario}: next_seq");
    assert_eq!(
        ring.worker_position(),
        final_head,
        "scenario {scenario}: worker cursor short of the final head"
    );
}

fn sub_summary(subs: &[&SubscriberReport]) -> String {
    subs.iter()
        .map(|s| {
            format!(
                "{}: received {} lagged {} in {} reports{}",
                s.name,
                s.received,
                s.lagged,
                s.lag_reports,
                if s.silent > 0 {
                    format!(" holes {}", s.silent)
                } else {
                    String::new()
                }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn worker_summary(workers: &[&WorkerReport]) -> String {
    workers
        .iter()
        .map(|w| {
            if w.batch_calls > 0 {
                format!(
                    "{} {} ({} in {} batches, largest {}) empties {}",
                    w.name, w.claimed, w.batch_events, w.batch_calls, w.largest_batch, w.empties
                )
            } else {
                format!("{} {} empties {}", w.name, w.claimed, w.empties)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// ---- a stats monitor ----

struct MonitorReport {
    snapshots: u64,
    failures: Failures,
}

/// Takes `Ring::stats` snapshots while everything runs, until `done`. Each
/// counter is read atomically but not all at once, so only what holds for
/// any such snapshot is checked: depth and high-water mark within the
/// capacity, a high-water mark that never goes down, monotone `rejected`;
/// and with a single producer (no holes) a monotone `pushed` and the
/// identity `pushed = delivered + overwritten + rejected + depth`, give or
/// take the one event a worker may claim between its commit and the
/// producer publishing `head` (so the sum may exceed `pushed` by one).
fn run_monitor(
    ring: &HeapRing,
    single_producer: bool,
    done: &AtomicBool,
    wd: &Watchdog,
) -> MonitorReport {
    let mut report = MonitorReport {
        snapshots: 0,
        failures: Failures::default(),
    };
    let capacity = ring.capacity() as u64;
    let mut last = ring.stats();
    while !done.load(Ordering::Acquire) && !wd.stopped() {
        let stats = ring.stats();
        report.snapshots += 1;
        if stats.depth > capacity || stats.high_water > capacity {
            report
                .failures
                .push(|| format!("depth or high_water beyond the capacity: {stats:?}"));
        }
        if stats.high_water < last.high_water || stats.rejected < last.rejected {
            report
                .failures
                .push(|| format!("high_water or rejected went down: {last:?} then {stats:?}"));
        }
        if single_producer {
            let sum = stats.delivered + stats.overwritten + stats.rejected + stats.depth;
            if sum < stats.pushed || sum > stats.pushed + 1 {
                report.failures.push(|| {
                    format!("pushed != delivered + overwritten + rejected + depth: {stats:?}")
                });
            }
            if stats.pushed < last.pushed {
                report
                    .failures
                    .push(|| format!("pushed went down: {last:?} then {stats:?}"));
            }
        }
        last = stats;
        for _ in 0..64 {
            spin_loop();
        }
        thread::yield_now();
    }
    report
}

// ---- producers ----

/// Called after each push: yields now and then in the gentle phases.
fn pace(counter: u64) {
    if (counter / PHASE) % 2 == 1 && counter % YIELD_EVERY == 0 {
        thread::yield_now();
    }
}

struct ProducerReport {
    pushed: u64,
    full: u64,
    failures: Failures,
}

/// Scenario A's single producer: pushes everything, closes the ring while
/// still alive, then drops the handle so the close takes effect.
fn run_single_producer(
    mut producer: Producer<&HeapRing>,
    ring: &HeapRing,
    events: u64,
    wd: &Watchdog,
) -> ProducerReport {
    let mut report = ProducerReport {
        pushed: 0,
        full: 0,
        failures: Failures::default(),
    };
    let mut payload = [0u8; MAX_LEN];
    for counter in 0..events {
        if counter % 65_536 == 0 && !wd.keep_going("producer") {
            break;
        }
        pace(counter);
        let len = make_payload(0, counter, &mut payload);
        match producer.push(&payload[..len]) {
            Ok(seq) if seq == counter => report.pushed += 1,
            Ok(seq) => {
                report.pushed += 1;
                report
                    .failures
                    .push(|| format!("push {counter} got seq {seq}"));
            }
            Err(e) => {
                report
                    .failures
                    .push(|| format!("push {counter} failed: {e:?}"));
                wd.abort("producer", "push failed");
                break;
            }
        }
    }
    ring.close();
    drop(producer);
    report
}

/// Scenario B: one of the multi-producer threads.
fn run_mp_producer(
    producer: MpProducer<&HeapRing>,
    pid: u8,
    events: u64,
    wd: &Watchdog,
) -> ProducerReport {
    let who = if pid == 0 { "producer0" } else { "producer1" };
    let mut report = ProducerReport {
        pushed: 0,
        full: 0,
        failures: Failures::default(),
    };
    let mut payload = [0u8; MAX_LEN];
    let mut last_seq = None;
    for counter in 0..events {
        if counter % 65_536 == 0 && !wd.keep_going(who) {
            break;
        }
        pace(counter);
        let len = make_payload(pid, counter, &mut payload);
        match producer.push(&payload[..len]) {
            Ok(seq) => {
                report.pushed += 1;
                if last_seq.is_some_and(|last| seq <= last) {
                    report
                        .failures
                        .push(|| format!("push {counter} got seq {seq} after {last_seq:?}"));
                }
                last_seq = Some(seq);
            }
            Err(e) => {
                report
                    .failures
                    .push(|| format!("push {counter} failed: {e:?}"));
                wd.abort(who, "push failed");
                break;
            }
        }
    }
    report
}

/// Scenario D: one of the multi-producer threads under `Reject`: retries
/// on `Full` until every event is accepted.
fn run_mp_reject_producer(
    producer: MpProducer<&HeapRing>,
    pid: u8,
    events: u64,
    wd: &Watchdog,
) -> ProducerReport {
    let who = if pid == 0 { "producer0" } else { "producer1" };
    let mut report = ProducerReport {
        pushed: 0,
        full: 0,
        failures: Failures::default(),
    };
    let mut payload = [0u8; MAX_LEN];
    let (mut counter, mut backoff, mut last_seq) = (0, 0, None);
    while counter < events {
        if counter % 65_536 == 0 && backoff == 0 && !wd.keep_going(who) {
            break;
        }
        let len = make_payload(pid, counter, &mut payload);
        match producer.push(&payload[..len]) {
            Ok(seq) => {
                if last_seq.is_some_and(|last| seq <= last) {
                    report
                        .failures
                        .push(|| format!("push {counter} got seq {seq} after {last_seq:?}"));
                }
                last_seq = Some(seq);
                report.pushed += 1;
                counter += 1;
                backoff = 0;
                pace(counter);
            }
            Err(Error::Full) => {
                report.full += 1;
                if !wd.snooze(&mut backoff, who, "room after Error::Full") {
                    break;
                }
            }
            Err(e) => {
                report
                    .failures
                    .push(|| format!("push {counter} failed: {e:?}"));
                wd.abort(who, "push failed");
                break;
            }
        }
    }
    report
}

/// Scenario C's producer: retries on `Full` until every event is accepted,
/// closes the ring, sees its next push refused with `Closed`, and drops.
fn run_reject_producer(
    mut producer: Producer<&HeapRing>,
    ring: &HeapRing,
    events: u64,
    wd: &Watchdog,
) -> ProducerReport {
    let mut report = ProducerReport {
        pushed: 0,
        full: 0,
        failures: Failures::default(),
    };
    let mut payload = [0u8; MAX_LEN];
    let mut counter = 0;
    let mut backoff = 0;
    while counter < events {
        if counter % 65_536 == 0 && backoff == 0 && !wd.keep_going("producer") {
            break;
        }
        let len = make_payload(0, counter, &mut payload);
        match producer.push(&payload[..len]) {
            Ok(seq) => {
                if seq != counter {
                    report
                        .failures
                        .push(|| format!("push {counter} got seq {seq}"));
                }
                report.pushed += 1;
                counter += 1;
                backoff = 0;
            }
            Err(Error::Full) => {
                report.full += 1;
                if !wd.snooze(&mut backoff, "producer", "room after Error::Full") {
                    break;
                }
            }
            Err(e) => {
                report
                    .failures
                    .push(|| format!("push {counter} failed: {e:?}"));
                wd.abort("producer", "push failed");
                break;
            }
        }
    }
    ring.close();
    let len = make_payload(0, counter, &mut payload);
    let after = producer.push(&payload[..len]);
    if after != Err(Error::Closed) {
        report
            .failures
            .push(|| format!("push after close returned {after:?}, expected Err(Closed)"));
    }
    drop(producer);
    report
}

// ---- scenarios ----

/// A: one single producer, two workers (one batching), two subscribers,
/// 10 million events through a 1024-slot ring.
/// The scenarios run one at a time: each brings its own threads to the two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn scenario_a_single_producer_overwrite() {
    let _serial = one_at_a_time();
    let events = EVENTS_A * scale();
    let ring = HeapRing::with_capacity(CAPACITY, SLOT_BYTES, Overflow::Overwrite).unwrap();
    let shape = Shape {
        producers: 1,
        per_producer: events,
        counter_is_seq: true,
    };
    let wd = Watchdog::new("A");
    let started = Instant::now();
    let oldest = ring.subscribe(Start::Oldest);
    let done = AtomicBool::new(false);
    let ((producer, w0, w1, s0, s1), monitor) = thread::scope(|s| {
        let (ring, wd, done) = (&ring, &wd, &done);
        let producer = ring.producer().unwrap();
        let p = s.spawn(move || run_single_producer(producer, ring, events, wd));
        let w0 = s.spawn(move || run_worker(ring, "worker0", false, shape, wd));
        let w1 = s.spawn(move || run_worker(ring, "worker1", true, shape, wd));
        let s0 = s.spawn(move || run_subscriber(oldest, "sub0", false, shape, wd));
        let s1 =
            s.spawn(move || run_subscriber(ring.subscribe(Start::Now), "sub1", true, shape, wd));
        let m = s.spawn(move || run_monitor(ring, true, done, wd));
        let joined = (p.join(), w0.join(), w1.join(), s0.join(), s1.join());
        done.store(true, Ordering::Release);
        (joined, m.join())
    });
    let elapsed = started.elapsed();
    let monitor = monitor.unwrap();
    let (producer, w0, w1, s0, s1) = (
        producer.unwrap(),
        w0.unwrap(),
        w1.unwrap(),
        s0.unwrap(),
        s1.unwrap(),
    );
    let stats = ring.stats();
    eprintln!(
        "stress A (1 producer, 2 workers, 2 subscribers, {CAPACITY} slots): events {} delivered {} \
         overwritten {} [{}] [{}] high_water {} stats snapshots {} elapsed {elapsed:.2?}",
        producer.pushed,
        stats.delivered,
        stats.overwritten,
        worker_summary(&[&w0, &w1]),
        sub_summary(&[&s0, &s1]),
        stats.high_water,
        monitor.snapshots,
    );
    wd.assert_not_expired();
    assert_no_failures(
        "A",
        [
            ("producer", &producer.failures),
            ("worker0", &w0.failures),
            ("worker1", &w1.failures),
            ("sub0", &s0.failures),
            ("sub1", &s1.failures),
            ("monitor", &monitor.failures),
        ],
    );
    assert_eq!(producer.pushed, events);
    assert_eq!(
        (w0.torn, w1.torn),
        (0, 0),
        "torn events in the worker group"
    );
    let claimed = check_disjoint("A", &w0, &w1);
    assert_eq!(
        claimed + w0.lost + w1.lost,
        ring.next_seq(),
        "every sequence number is claimed or reported lost to one worker"
    );
    assert_eq!(stats.pushed, events, "{stats:?}");
    assert_eq!(
        stats.delivered, claimed,
        "delivered vs events the workers claimed: {stats:?}"
    );
    assert_eq!(
        stats.pushed,
        stats.delivered + stats.overwritten,
        "{stats:?}"
    );
    assert_eq!((stats.depth, stats.rejected), (0, 0), "{stats:?}");
    assert!(stats.high_water <= CAPACITY as u64, "{stats:?}");
    if !cfg!(miri) {
        assert!(
            stats.overwritten > 0,
            "the scenario never overwrote: it tests nothing: {stats:?}"
        );
    }
    assert_eq!(s0.start, 0);
    check_sealed("A", &ring, events);
    check_subscriber("A", &s0, events);
    check_subscriber("A", &s1, events);
}

/// B: two threads share an `MpProducer`, two workers (one batching), two
/// subscribers. A push whose ticket was lapped before it wrote (a hole) is
/// accepted and lost like an overwritten event: every reader reports it.
#[test]
fn scenario_b_two_mp_producers_overwrite() {
    let _serial = one_at_a_time();
    let events = EVENTS_B * scale();
    let ring = HeapRing::with_capacity(CAPACITY, SLOT_BYTES, Overflow::Overwrite).unwrap();
    let shape = Shape {
        producers: 2,
        per_producer: events,
        counter_is_seq: false,
    };
    let wd = Watchdog::new("B");
    let started = Instant::now();
    let oldest = ring.subscribe(Start::Oldest);
    let spare = ring.mp_producer().unwrap();
    let done = AtomicBool::new(false);
    let ((p0, p1, w0, w1, s0, s1), monitor) = thread::scope(|s| {
        let (ring, wd, done) = (&ring, &wd, &done);
        let producer = ring.mp_producer().unwrap();
        let clone = producer.clone();
        let p0 = s.spawn(move || run_mp_producer(producer, 0, events, wd));
        let p1 = s.spawn(move || run_mp_producer(clone, 1, events, wd));
        let w0 = s.spawn(move || run_worker(ring, "worker0", false, shape, wd));
        let w1 = s.spawn(move || run_worker(ring, "worker1", true, shape, wd));
        let s0 = s.spawn(move || run_subscriber(oldest, "sub0", false, shape, wd));
        let s1 =
            s.spawn(move || run_subscriber(ring.subscribe(Start::Now), "sub1", true, shape, wd));
        let m = s.spawn(move || run_monitor(ring, false, done, wd));
        let (p0, p1) = (p0.join(), p1.join());
        // Multi-producer handles do not own head: close seals it at once.
        ring.close();
        let joined = (p0, p1, w0.join(), w1.join(), s0.join(), s1.join());
        done.store(true, Ordering::Release);
        (joined, m.join())
    });
    let elapsed = started.elapsed();
    let monitor = monitor.unwrap();
    let (p0, p1) = (p0.unwrap(), p1.unwrap());
    let (w0, w1, s0, s1) = (w0.unwrap(), w1.unwrap(), s0.unwrap(), s1.unwrap());
    let stats = ring.stats();
    let final_head = ring.next_seq();
    eprintln!(
        "stress B (2 mp producers, 2 workers, 2 subscribers, {CAPACITY} slots): events {} delivered {} \
         overwritten {} [{}] [{}] high_water {} stats snapshots {} elapsed {elapsed:.2?}",
        p0.pushed + p1.pushed,
        stats.delivered,
        stats.overwritten,
        worker_summary(&[&w0, &w1]),
        sub_summary(&[&s0, &s1]),
        stats.high_water,
        monitor.snapshots,
    );
    wd.assert_not_expired();
    assert_no_failures(
        "B",
        [
            ("producer0", &p0.failures),
            ("producer1", &p1.failures),
            ("worker0", &w0.failures),
            ("worker1", &w1.failures),
            ("sub0", &s0.failures),
            ("sub1", &s1.failures),
            ("monitor", &monitor.failures),
        ],
    );
    assert_eq!((p0.pushed, p1.pushed), (events, events));
    assert_eq!(spare.push(b"late"), Err(Error::Closed), "push after close");
    assert_eq!(
        (w0.torn, w1.torn),
        (0, 0),
        "torn events in the worker group"
    );
    let claimed = check_disjoint("B", &w0, &w1);
    assert_eq!(
        claimed + w0.lost + w1.lost,
        ring.next_seq(),
        "every sequence number is claimed or reported lost to one worker"
    );
    assert_eq!(ring.stats(), stats, "a refused push changed the counters");
    assert_eq!(stats.pushed, 2 * events, "{stats:?}");
    assert_eq!(
        stats.delivered, claimed,
        "delivered vs events the workers claimed: {stats:?}"
    );
    assert_eq!(
        stats.pushed,
        stats.delivered + stats.overwritten,
        "{stats:?}"
    );
    assert_eq!((stats.depth, stats.rejected), (0, 0), "{stats:?}");
    assert!(stats.high_water <= CAPACITY as u64, "{stats:?}");
    if !cfg!(miri) {
        assert!(
            stats.overwritten > 0,
            "the scenario never overwrote: it tests nothing: {stats:?}"
        );
    }
    assert_eq!(
        final_head, stats.pushed,
        "every ticket is an accepted push: {stats:?}"
    );
    check_sealed("B", &ring, final_head);
    check_subscriber("B", &s0, final_head);
    check_subscriber("B", &s1, final_head);
}

/// C: `Reject` with one producer retrying on `Full` and two workers (and a
/// subscriber): nothing is lost, every event is delivered exactly once, and
/// every `Full` is counted as rejected.
/// What scenarios C and D (`Reject`) assert once their threads are joined:
/// each producer pushed `per_producer` events, the two workers claimed every
/// one of them exactly once and untorn, nothing was overwritten or lost,
/// every `Full` a producer saw is counted as rejected, no ticket was
/// abandoned, and the subscriber saw a sealed ring with no silent loss.
fn check_reject_run(
    scenario: &str,
    ring: &HeapRing,
    producers: &[&ProducerReport],
    [w0, w1]: [&WorkerReport; 2],
    s0: &SubscriberReport,
    monitor: &MonitorReport,
    per_producer: u64,
) {
    let names = ["producer0", "producer1"];
    let mut failures: Vec<(&str, &Failures)> = producers
        .iter()
        .zip(names)
        .map(|(p, name)| (name, &p.failures))
        .collect();
    failures.extend([
        ("worker0", &w0.failures),
        ("worker1", &w1.failures),
        ("sub0", &s0.failures),
        ("monitor", &monitor.failures),
    ]);
    assert_no_failures(scenario, failures);
    for (pid, p) in producers.iter().enumerate() {
        assert_eq!(p.pushed, per_producer, "{scenario}: producer {pid} pushed");
    }
    let events = per_producer * producers.len() as u64;
    let full: u64 = producers.iter().map(|p| p.full).sum();
    assert_eq!(
        (w0.torn, w1.torn),
        (0, 0),
        "{scenario}: torn events in the worker group"
    );
    let claimed = check_disjoint(scenario, w0, w1);
    assert_eq!(claimed, events, "{scenario}: events claimed by the workers");
    for pid in 0..producers.len() {
        let union = w0.seen[pid].union_count(&w1.seen[pid]);
        assert_eq!(
            union, per_producer,
            "{scenario}: producer {pid}: distinct events claimed: some were lost"
        );
        let counted = w0.seen[pid].count() + w1.seen[pid].count();
        assert_eq!(
            counted, per_producer,
            "{scenario}: producer {pid}: an event was claimed twice"
        );
    }
    let stats = ring.stats();
    assert_eq!(
        (
            stats.delivered,
            stats.overwritten,
            stats.rejected,
            stats.depth
        ),
        (events, 0, full, 0),
        "{scenario}: delivered, overwritten, rejected (= Full seen), depth: {stats:?}"
    );
    assert_eq!(stats.pushed, events + full, "{scenario}: {stats:?}");
    assert!(
        stats.high_water <= ring.capacity() as u64,
        "{scenario}: {stats:?}"
    );
    if !cfg!(miri) {
        assert!(
            full > 0,
            "{scenario}: the producers never saw Full: the scenario tests nothing: {stats:?}"
        );
    }
    let final_head = ring.next_seq();
    assert_eq!(
        final_head, events,
        "{scenario}: no ticket abandoned under Reject"
    );
    check_sealed(scenario, ring, final_head);
    check_subscriber(scenario, s0, final_head);
}

#[test]
fn scenario_c_reject_loses_nothing() {
    let _serial = one_at_a_time();
    let events = EVENTS_C * scale();
    let ring = HeapRing::with_capacity(CAPACITY_C, SLOT_BYTES, Overflow::Reject).unwrap();
    let shape = Shape {
        producers: 1,
        per_producer: events,
        counter_is_seq: true,
    };
    let wd = Watchdog::new("C");
    let started = Instant::now();
    let done = AtomicBool::new(false);
    let ((producer, w0, w1, s0), monitor) = thread::scope(|s| {
        let (ring, wd, done) = (&ring, &wd, &done);
        let producer = ring.producer().unwrap();
        let p = s.spawn(move || run_reject_producer(producer, ring, events, wd));
        let w0 = s.spawn(move || run_worker(ring, "worker0", false, shape, wd));
        let w1 = s.spawn(move || run_worker(ring, "worker1", true, shape, wd));
        let s0 =
            s.spawn(move || run_subscriber(ring.subscribe(Start::Oldest), "sub0", true, shape, wd));
        let m = s.spawn(move || run_monitor(ring, true, done, wd));
        let joined = (p.join(), w0.join(), w1.join(), s0.join());
        done.store(true, Ordering::Release);
        (joined, m.join())
    });
    let elapsed = started.elapsed();
    let monitor = monitor.unwrap();
    let (producer, w0, w1, s0) = (producer.unwrap(), w0.unwrap(), w1.unwrap(), s0.unwrap());
    let stats = ring.stats();
    eprintln!(
        "stress C (reject, 1 producer, 2 workers, 1 subscriber, {CAPACITY_C} slots): events {} full {} \
         delivered {} overwritten {} rejected {} [{}] [{}] high_water {} stats snapshots {} elapsed {elapsed:.2?}",
        producer.pushed,
        producer.full,
        stats.delivered,
        stats.overwritten,
        stats.rejected,
        worker_summary(&[&w0, &w1]),
        sub_summary(&[&s0]),
        stats.high_water,
        monitor.snapshots,
    );
    wd.assert_not_expired();
    check_reject_run("C", &ring, &[&producer], [&w0, &w1], &s0, &monitor, events);
}

/// D: `Reject` with two multi-producer threads retrying on `Full`, two
/// workers and a subscriber: the multi-producer push under `Reject` (one
/// ticket CAS, then plain stores, room checked through the cached worker
/// cursor) never overwrites an event before the worker group claimed it,
/// and every accepted event is delivered exactly once.
#[test]
fn scenario_d_mp_reject_loses_nothing() {
    let _serial = one_at_a_time();
    let events = EVENTS_D * scale();
    let ring = HeapRing::with_capacity(CAPACITY_C, SLOT_BYTES, Overflow::Reject).unwrap();
    let shape = Shape {
        producers: 2,
        per_producer: events,
        counter_is_seq: false,
    };
    let wd = Watchdog::new("D");
    let started = Instant::now();
    let done = AtomicBool::new(false);
    let ((p0, p1, w0, w1, s0), monitor) = thread::scope(|s| {
        let (ring, wd, done) = (&ring, &wd, &done);
        let producer = ring.mp_producer().unwrap();
        let clone = producer.clone();
        let p0 = s.spawn(move || run_mp_reject_producer(producer, 0, events, wd));
        let p1 = s.spawn(move || run_mp_reject_producer(clone, 1, events, wd));
        let w0 = s.spawn(move || run_worker(ring, "worker0", false, shape, wd));
        let w1 = s.spawn(move || run_worker(ring, "worker1", true, shape, wd));
        let s0 =
            s.spawn(move || run_subscriber(ring.subscribe(Start::Oldest), "sub0", true, shape, wd));
        // No holes under `Reject`: the single-producer identities hold too.
        let m = s.spawn(move || run_monitor(ring, true, done, wd));
        let (p0, p1) = (p0.join(), p1.join());
        ring.close();
        let joined = (p0, p1, w0.join(), w1.join(), s0.join());
        done.store(true, Ordering::Release);
        (joined, m.join())
    });
    let elapsed = started.elapsed();
    let monitor = monitor.unwrap();
    let (p0, p1) = (p0.unwrap(), p1.unwrap());
    let (w0, w1, s0) = (w0.unwrap(), w1.unwrap(), s0.unwrap());
    let stats = ring.stats();
    eprintln!(
        "stress D (reject, 2 mp producers, 2 workers, 1 subscriber, {CAPACITY_C} slots): events {} \
         full {} delivered {} overwritten {} rejected {} [{}] [{}] high_water {} stats snapshots {} \
         elapsed {elapsed:.2?}",
        p0.pushed + p1.pushed,
        p0.full + p1.full,
        stats.delivered,
        stats.overwritten,
        stats.rejected,
        worker_summary(&[&w0, &w1]),
        sub_summary(&[&s0]),
        stats.high_water,
        monitor.snapshots,
    );
    wd.assert_not_expired();
    check_reject_run("D", &ring, &[&p0, &p1], [&w0, &w1], &s0, &monitor, events);
}
