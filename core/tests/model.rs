//! Property tests.
//!
//! 1. Single-threaded operation of a small ring (1 to 8 slots of 16 or 32
//!    bytes, both overflow policies, either producer kind) against a plain
//!    reference model: after every operation the result (sequence numbers,
//!    bytes, errors), the subscribers' cursors, the close/seal state and the
//!    counters of `Ring::stats` must match the model exactly. The sampled
//!    high-water mark is checked against bounds that hold for any sampling:
//!    at least the depth, at most the true peak, never going down.
//! 2. The event codec: random events round-trip through a ring;
//!    hand-assembled encodings (valid, or broken in one known way) decode
//!    exactly as predicted; random or mutated bytes decode to `Ok` or
//!    `Err(Malformed)`, never a panic, and what decodes re-encodes to the
//!    same bytes.
//!
//! 256 cases per property (about a second in a debug build);
//! `PROPTEST_CASES=n` asks for more.

use evqueue::{
    encode_into, encoded_len, Claim, Error, Event, EventView, HeapRing, MpProducer, Overflow,
    Producer, RecvError, Start, Stats, Subscriber,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::collections::VecDeque;

// ---- the reference model ----

/// The ring as a plain data structure.
#[derive(Debug)]
struct Model {
    capacity: u64,
    slot_bytes: usize,
    overflow: Overflow,
    /// Next sequence number.
    head: u64,
    /// Payloads of the newest `capacity` events: `head - retained.len()..head`.
    retained: VecDeque<Vec<u8>>,
    /// The worker group's cursor, and how many sequence numbers it skipped.
    worker: u64,
    skipped: u64,
    rejected: u64,
    /// Subscribers: `(cursor, missed)`.
    subs: [Option<(u64, u64)>; 2],
    single_live: bool,
    multi: bool,
    close_requested: bool,
    /// Consumers see `Closed` once they reach `head`.
    sealed: bool,
    /// Highest true depth so far, and the last `high_water` reported.
    peak_depth: u64,
    last_high_water: u64,
}

impl Model {
    fn new(capacity: usize, slot_bytes: usize, overflow: Overflow) -> Self {
        Model {
            capacity: capacity as u64,
            slot_bytes,
            overflow,
            head: 0,
            retained: VecDeque::new(),
            worker: 0,
            skipped: 0,
            rejected: 0,
            subs: [None, None],
            single_live: false,
            multi: false,
            close_requested: false,
            sealed: false,
            peak_depth: 0,
            last_high_water: 0,
        }
    }

    fn oldest(&self) -> u64 {
        self.head.saturating_sub(self.capacity)
    }

    /// Where a lapped reader continues under the default `Lag::Headroom`:
    /// an eighth of the ring (at least one) past the oldest, at most `head`.
    fn resume(&self) -> u64 {
        (self.oldest() + (self.capacity / 8).max(1)).min(self.head)
    }

    fn payload(&self, seq: u64) -> Vec<u8> {
        let first = self.head - self.retained.len() as u64;
        assert!(
            seq >= first && seq < self.head,
            "model: seq {seq} not retained"
        );
        self.retained[(seq - first) as usize].clone()
    }

    fn depth(&self) -> u64 {
        (self.head - self.worker).min(self.capacity)
    }

    /// A push of `bytes` through the single producer (`single`) or a
    /// multi-producer handle, as documented on `Producer::push`.
    fn push(&mut self, bytes: &[u8], single: bool) -> Result<u64, Error> {
        if bytes.len() > self.slot_bytes {
            return Err(Error::TooLarge {
                size: bytes.len(),
                max: self.slot_bytes,
            });
        }
        if single && self.close_requested {
            // The single producer owns head: it seals the ring itself.
            self.sealed = true;
            return Err(Error::Closed);
        }
        if !single && self.sealed {
            return Err(Error::Closed);
        }
        if self.overflow == Overflow::Reject && self.head - self.worker >= self.capacity {
            self.rejected += 1;
            return Err(Error::Full);
        }
        let seq = self.head;
        self.retained.push_back(bytes.to_vec());
        if self.retained.len() as u64 > self.capacity {
            self.retained.pop_front();
        }
        self.head += 1;
        self.peak_depth = self.peak_depth.max(self.depth());
        Ok(seq)
    }

    fn empty_or_closed(&self, cursor: u64) -> RecvError {
        if self.sealed && cursor >= self.head {
            RecvError::Closed
        } else {
            RecvError::Empty
        }
    }

    /// The worker group passes what was overwritten; returns how many.
    fn skip_lapped(&mut self) -> u64 {
        if self.worker >= self.oldest() {
            return 0;
        }
        let to = self.resume();
        let lost = to - self.worker;
        self.skipped += lost;
        self.worker = to;
        lost
    }

    fn claim(&mut self, buf_len: usize) -> Result<(Claim, Vec<u8>), RecvError> {
        if buf_len < self.slot_bytes {
            return Err(RecvError::BufferTooSmall {
                needed: self.slot_bytes,
                got: buf_len,
            });
        }
        let lost = self.skip_lapped();
        if self.worker == self.head && lost > 0 {
            return Err(RecvError::Lagged(lost));
        }
        if self.worker == self.head {
            return Err(self.empty_or_closed(self.worker));
        }
        let seq = self.worker;
        self.worker += 1;
        let bytes = self.payload(seq);
        Ok((
            Claim {
                seq,
                len: bytes.len(),
                lost,
            },
            bytes,
        ))
    }

    fn claim_batch(
        &mut self,
        buf_len: usize,
        k: usize,
    ) -> Result<Vec<(Claim, Vec<u8>)>, RecvError> {
        if k == 0 {
            return Ok(Vec::new()); // no room asked for: nothing happens
        }
        let max = k.min(buf_len / self.slot_bytes);
        if max == 0 {
            return Err(RecvError::BufferTooSmall {
                needed: self.slot_bytes,
                got: buf_len,
            });
        }
        let lost = self.skip_lapped();
        let n = max.min((self.head - self.worker) as usize);
        if n == 0 && lost > 0 {
            return Err(RecvError::Lagged(lost));
        }
        if n == 0 {
            return Err(self.empty_or_closed(self.worker));
        }
        let first = self.worker;
        let out = (first..first + n as u64)
            .map(|seq| {
                let bytes = self.payload(seq);
                (
                    Claim {
                        seq,
                        len: bytes.len(),
                        lost: if seq == first { lost } else { 0 },
                    },
                    bytes,
                )
            })
            .collect();
        self.worker += n as u64;
        Ok(out)
    }

    fn recv(&mut self, i: usize, buf_len: usize) -> Result<(Claim, Vec<u8>), RecvError> {
        if buf_len < self.slot_bytes {
            return Err(RecvError::BufferTooSmall {
                needed: self.slot_bytes,
                got: buf_len,
            });
        }
        let (cursor, missed) = self.subs[i].expect("model: no such subscriber");
        if cursor < self.oldest() {
            let to = self.resume();
            let lost = to - cursor;
            self.subs[i] = Some((to, missed + lost));
            return Err(RecvError::Lagged(lost));
        }
        if cursor == self.head {
            return Err(self.empty_or_closed(cursor));
        }
        self.subs[i] = Some((cursor + 1, missed));
        let bytes = self.payload(cursor);
        Ok((
            Claim {
                seq: cursor,
                len: bytes.len(),
                lost: 0,
            },
            bytes,
        ))
    }

    fn subscribe(&mut self, i: usize, start: Start) {
        let cursor = match start {
            Start::Now => self.head,
            Start::Oldest => self.oldest(),
        };
        self.subs[i] = Some((cursor, 0));
    }

    /// `Ring::close`: returns whether this call closed it.
    fn close(&mut self) -> bool {
        let first = !self.close_requested;
        self.close_requested = true;
        if !self.single_live {
            self.sealed = true;
        }
        first
    }

    fn new_single(&mut self) -> Result<(), Error> {
        if self.close_requested {
            Err(Error::Closed)
        } else if self.single_live || self.multi {
            Err(Error::ProducerTaken)
        } else {
            self.single_live = true;
            Ok(())
        }
    }

    fn new_multi(&mut self) -> Result<(), Error> {
        if self.multi {
            Ok(())
        } else if self.single_live {
            Err(Error::ProducerTaken)
        } else {
            self.multi = true;
            Ok(())
        }
    }

    fn drop_single(&mut self) {
        self.single_live = false;
        if self.close_requested {
            self.sealed = true;
        }
    }

    /// The counters `Ring::stats` reports (`high_water` is checked apart).
    fn stats(&self) -> Stats {
        let overwritten_unskipped = self.oldest().saturating_sub(self.worker);
        Stats {
            pushed: self.head + self.rejected,
            delivered: self.worker - self.skipped,
            overwritten: self.skipped + overwritten_unskipped,
            rejected: self.rejected,
            depth: self.depth(),
            high_water: 0,
        }
    }
}

// ---- operations ----

#[derive(Clone, Copy, Debug)]
enum Buf {
    /// One byte short of a slot.
    Short,
    Exact,
    /// A slot and a bit.
    Long,
}

#[derive(Clone, Debug)]
struct GenEvent {
    name: String,
    properties: Vec<(String, String)>,
    timestamp: u64,
    external: bool,
}

impl GenEvent {
    fn with<T>(&self, f: impl FnOnce(&Event<'_>) -> T) -> T {
        let props: Vec<(&str, &str)> = self
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let event = Event {
            name: &self.name,
            properties: &props,
            timestamp: self.timestamp,
            external: self.external,
        };
        f(&event)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Push(Vec<u8>),
    PushEvent(GenEvent),
    Claim(Buf),
    ClaimBatch { k: usize, buf_slots: usize },
    Recv { sub: usize, buf: Buf },
    Subscribe { sub: usize, start: Start },
    Close,
    DropProducer,
    NewProducer,
    NewMpProducer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Single,
    Multi,
}

#[derive(Clone, Debug)]
struct Case {
    capacity: usize,
    slot_bytes: usize,
    overflow: Overflow,
    kind: Kind,
    starts: Vec<Start>,
    ops: Vec<Op>,
    /// At the end: close before dropping the producer (the single
    /// producer's drop must then seal the ring), or after.
    close_first: bool,
}

fn start() -> impl Strategy<Value = Start> {
    prop_oneof![Just(Start::Now), Just(Start::Oldest)]
}

fn buf() -> impl Strategy<Value = Buf> {
    prop_oneof![1 => Just(Buf::Short), 8 => Just(Buf::Exact), 2 => Just(Buf::Long)]
}

/// Small events around the slot sizes: some fit, some are too large, a few
/// are invalid (empty name or key). Timestamps are nonzero so the encoded
/// bytes are known in advance.
fn small_event() -> impl Strategy<Value = GenEvent> {
    (
        "[a-z_]{0,12}",
        proptest::collection::vec(("[a-z]{0,3}", "[a-z0-9]{0,4}"), 0..=2),
        1..=u64::MAX,
        any::<bool>(),
    )
        .prop_map(|(name, properties, timestamp, external)| GenEvent {
            name,
            properties,
            timestamp,
            external,
        })
}

fn op(slot: usize) -> impl Strategy<Value = Op> {
    let payload = prop_oneof![
        12 => proptest::collection::vec(any::<u8>(), 0..=slot),
        1 => proptest::collection::vec(any::<u8>(), slot + 1..=slot + 16),
    ];
    prop_oneof![
        30 => payload.prop_map(Op::Push),
        4 => small_event().prop_map(Op::PushEvent),
        12 => buf().prop_map(Op::Claim),
        8 => (0..=9usize, 0..=9usize).prop_map(|(k, buf_slots)| Op::ClaimBatch { k, buf_slots }),
        16 => (0..2usize, buf()).prop_map(|(sub, buf)| Op::Recv { sub, buf }),
        2 => (0..2usize, start()).prop_map(|(sub, start)| Op::Subscribe { sub, start }),
        1 => Just(Op::Close),
        1 => Just(Op::DropProducer),
        1 => Just(Op::NewProducer),
        1 => Just(Op::NewMpProducer),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just(1usize), Just(2), Just(4), Just(8)],
        prop_oneof![Just(16usize), Just(32)],
        prop_oneof![Just(Overflow::Overwrite), Just(Overflow::Reject)],
        prop_oneof![Just(Kind::Single), Just(Kind::Multi)],
        proptest::collection::vec(start(), 1..=2),
        any::<bool>(),
    )
        .prop_flat_map(
            |(capacity, slot_bytes, overflow, kind, starts, close_first)| {
                proptest::collection::vec(op(slot_bytes), 1..=120).prop_map(move |ops| Case {
                    capacity,
                    slot_bytes,
                    overflow,
                    kind,
                    starts: starts.clone(),
                    ops,
                    close_first,
                })
            },
        )
}

// ---- running a case ----

fn buf_len(buf: Buf, slot: usize) -> usize {
    match buf {
        Buf::Short => slot - 1,
        Buf::Exact => slot,
        Buf::Long => slot + 8,
    }
}

/// The real result with its payload bytes, to compare with the model's.
fn with_bytes(result: Result<Claim, RecvError>, buf: &[u8]) -> Result<(Claim, Vec<u8>), RecvError> {
    result.map(|c| (c, buf[..c.len.min(buf.len())].to_vec()))
}

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    let slot = case.slot_bytes;
    let ring = HeapRing::with_capacity(case.capacity, slot, case.overflow).unwrap();
    prop_assert_eq!(ring.capacity(), case.capacity);
    prop_assert_eq!(ring.slot_bytes(), slot);
    prop_assert_eq!(ring.overflow(), case.overflow);
    let mut model = Model::new(case.capacity, slot, case.overflow);

    let mut single: Option<Producer<&HeapRing>> = None;
    let mut multi: Option<MpProducer<&HeapRing>> = None;
    match case.kind {
        Kind::Single => {
            single = Some(ring.producer().unwrap());
            model.new_single().unwrap();
        }
        Kind::Multi => {
            multi = Some(ring.mp_producer().unwrap());
            model.new_multi().unwrap();
        }
    }
    let mut subs: [Option<Subscriber<&HeapRing>>; 2] = [None, None];
    for (i, &start) in case.starts.iter().enumerate() {
        subs[i] = Some(ring.subscribe(start));
        model.subscribe(i, start);
    }

    for (step, op) in case.ops.iter().enumerate() {
        let at = format!("step {step}: {op:?}");
        match op {
            Op::Push(bytes) => {
                let real = match (&mut single, &multi) {
                    (Some(p), _) => p.push(bytes),
                    (None, Some(p)) => p.push(bytes),
                    (None, None) => continue,
                };
                let expected = model.push(bytes, single.is_some());
                prop_assert_eq!(real, expected, "{}", at);
            }
            Op::PushEvent(event) => {
                let real = match (&mut single, &multi) {
                    (Some(p), _) => event.with(|e| p.push_event(e)),
                    (None, Some(p)) => event.with(|e| p.push_event(e)),
                    (None, None) => continue,
                };
                let encoded = event.with(|e| -> Result<Vec<u8>, Error> {
                    let mut out = vec![0u8; encoded_len(e)?];
                    encode_into(e, &mut out)?;
                    Ok(out)
                });
                let expected = encoded.and_then(|bytes| model.push(&bytes, single.is_some()));
                prop_assert_eq!(real, expected, "{}", at);
            }
            Op::Claim(b) => {
                let mut buf = vec![0u8; buf_len(*b, slot)];
                let real = with_bytes(ring.try_claim(&mut buf), &buf);
                prop_assert_eq!(real, model.claim(buf.len()), "{}", at);
            }
            Op::ClaimBatch { k, buf_slots } => {
                let mut buf = vec![0u8; buf_slots * slot];
                let mut claims = vec![Claim::default(); *k];
                let real = ring.try_claim_batch(&mut buf, &mut claims).map(|n| {
                    (0..n)
                        .map(|i| {
                            let c = claims[i];
                            let bytes = buf[i * slot..][..c.len.min(slot)].to_vec();
                            (c, bytes)
                        })
                        .collect::<Vec<_>>()
                });
                prop_assert_eq!(real, model.claim_batch(buf.len(), *k), "{}", at);
            }
            Op::Recv { sub, buf: b } => {
                let Some(s) = subs[*sub].as_mut() else {
                    continue;
                };
                let mut buf = vec![0u8; buf_len(*b, slot)];
                let real = with_bytes(s.try_recv(&mut buf), &buf);
                prop_assert_eq!(real, model.recv(*sub, buf.len()), "{}", at);
            }
            Op::Subscribe { sub, start } => {
                subs[*sub] = Some(ring.subscribe(*start));
                model.subscribe(*sub, *start);
            }
            Op::Close => {
                prop_assert_eq!(ring.close(), model.close(), "{}", at);
            }
            Op::DropProducer => {
                if single.take().is_some() {
                    model.drop_single();
                } else if multi.take().is_none() {
                    continue;
                }
                // Dropping a multi-producer handle changes nothing.
            }
            Op::NewProducer => {
                let real = ring.producer();
                let expected = model.new_single();
                prop_assert_eq!(real.as_ref().err().copied(), expected.err(), "{}", at);
                if let Ok(p) = real {
                    prop_assert!(
                        single.is_none() && multi.is_none(),
                        "{}: two producers at once",
                        at
                    );
                    single = Some(p);
                }
            }
            Op::NewMpProducer => {
                let real = ring.mp_producer();
                let expected = model.new_multi();
                prop_assert_eq!(real.as_ref().err().copied(), expected.err(), "{}", at);
                if let Ok(p) = real {
                    prop_assert!(
                        single.is_none(),
                        "{}: multi-producer beside a live single producer",
                        at
                    );
                    multi = Some(p);
                }
            }
        }
        check_state(&ring, &mut model, &subs, &at)?;
    }

    // Close and drop the producer (in either order) and drain: the close
    // takes effect, every consumer ends in Closed, and the counters add up.
    if case.close_first {
        prop_assert_eq!(ring.close(), model.close());
        check_state(&ring, &mut model, &subs, "final close")?;
    }
    if single.take().is_some() {
        model.drop_single();
    }
    check_state(&ring, &mut model, &subs, "producer dropped")?;
    prop_assert_eq!(ring.close(), model.close());
    check_state(&ring, &mut model, &subs, "closed")?;
    prop_assert!(ring.is_sealed(), "closed, no single producer: sealed");
    let mut buf = vec![0u8; slot];
    loop {
        let real = with_bytes(ring.try_claim(&mut buf), &buf);
        let expected = model.claim(slot);
        prop_assert_eq!(&real, &expected, "draining the worker group");
        if expected.is_err() {
            break;
        }
    }
    prop_assert_eq!(ring.try_claim(&mut buf), Err(RecvError::Closed));
    for (i, sub) in subs.iter_mut().enumerate() {
        let Some(s) = sub.as_mut() else { continue };
        loop {
            let real = with_bytes(s.try_recv(&mut buf), &buf);
            let expected = model.recv(i, slot);
            prop_assert_eq!(&real, &expected, "draining subscriber {}", i);
            if expected == Err(RecvError::Closed) {
                break;
            }
        }
    }
    check_state(&ring, &mut model, &subs, "after draining")?;
    let stats = ring.stats();
    prop_assert_eq!(stats.depth, 0);
    prop_assert_eq!(
        stats.pushed,
        stats.delivered + stats.overwritten + stats.rejected,
        "{:?}",
        stats
    );
    if case.overflow == Overflow::Reject {
        prop_assert_eq!(stats.overwritten, 0, "Reject never overwrites: {:?}", stats);
    }
    Ok(())
}

/// Counters, close flag and subscriber cursors against the model.
fn check_state(
    ring: &HeapRing,
    model: &mut Model,
    subs: &[Option<Subscriber<&HeapRing>>; 2],
    at: &str,
) -> Result<(), TestCaseError> {
    let stats = ring.stats();
    let expected = Stats {
        high_water: stats.high_water,
        ..model.stats()
    };
    prop_assert_eq!(stats, expected, "{}: stats", at);
    // The high-water mark is sampled: check what holds for any sampling.
    prop_assert!(
        stats.high_water >= stats.depth && stats.high_water <= model.peak_depth,
        "{}: high_water {} outside depth {}..=peak {}",
        at,
        stats.high_water,
        stats.depth,
        model.peak_depth
    );
    prop_assert!(
        stats.high_water >= model.last_high_water,
        "{}: high_water went down from {} to {}: it is the highest depth seen",
        at,
        model.last_high_water,
        stats.high_water
    );
    model.last_high_water = stats.high_water;
    prop_assert_eq!(ring.is_closed(), model.close_requested, "{}: is_closed", at);
    prop_assert_eq!(ring.is_sealed(), model.sealed, "{}: is_sealed", at);
    prop_assert_eq!(ring.next_seq(), model.head, "{}: next_seq", at);
    prop_assert_eq!(
        ring.worker_position(),
        model.worker,
        "{}: worker_position",
        at
    );
    for (i, sub) in subs.iter().enumerate() {
        if let (Some(s), Some((cursor, missed))) = (sub, model.subs[i]) {
            prop_assert_eq!(s.next_seq(), cursor, "{}: subscriber {} next_seq", at, i);
            prop_assert_eq!(s.missed(), missed, "{}: subscriber {} missed", at, i);
            prop_assert_eq!(
                s.lag(),
                (model.head - cursor).min(model.capacity),
                "{}: subscriber {} lag",
                at,
                i
            );
        }
    }
    Ok(())
}

// ---- the codec ----

/// A string of arbitrary Unicode of 1..=`max_bytes` bytes.
fn text(max_chars: usize, max_bytes: usize, min_chars: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), min_chars..=max_chars).prop_map(move |chars| {
        let mut s = String::new();
        for c in chars {
            if s.len() + c.len_utf8() > max_bytes {
                break;
            }
            s.push(c);
        }
        s
    })
}

fn any_event() -> impl Strategy<Value = GenEvent> {
    (
        text(255, 255, 1),
        proptest::collection::vec((text(64, 255, 1), text(100, 300, 0)), 0..8),
        prop_oneof![1 => Just(0u64), 4 => any::<u64>()],
        any::<bool>(),
    )
        .prop_map(|(name, properties, timestamp, external)| GenEvent {
            name,
            properties,
            timestamp,
            external,
        })
}

const BIG_SLOT: usize = 8192;

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn check_round_trip(event: &GenEvent, single: bool) -> Result<(), TestCaseError> {
    let ring = HeapRing::with_capacity(4, BIG_SLOT, Overflow::Overwrite).unwrap();
    let mut sub = ring.subscribe(Start::Oldest);
    let before = now_ns();
    let seq = if single {
        let mut p = ring.producer().unwrap();
        event.with(|e| p.push_event(e))
    } else {
        let p = ring.mp_producer().unwrap();
        event.with(|e| p.push_event(e))
    };
    let after = now_ns();
    prop_assert_eq!(seq, Ok(0));
    let len = event.with(encoded_len).unwrap();

    let mut buf = vec![0u8; BIG_SLOT];
    let claim = ring.try_claim(&mut buf).unwrap();
    prop_assert_eq!(
        claim,
        Claim {
            seq: 0,
            len,
            lost: 0
        }
    );
    let mut sub_buf = vec![0u8; BIG_SLOT];
    let sub_claim = sub.try_recv(&mut sub_buf).unwrap();
    prop_assert_eq!(sub_claim, claim);
    prop_assert_eq!(
        &sub_buf[..len],
        &buf[..len],
        "subscriber and worker got different bytes"
    );

    let view = claim.event(&buf).unwrap();
    prop_assert_eq!(view.seq, 0);
    prop_assert_eq!(view.name, event.name.as_str());
    prop_assert_eq!(view.external, event.external);
    if event.timestamp == 0 {
        prop_assert!(
            (before..=after).contains(&view.timestamp),
            "timestamp 0 is stamped at push: {} not in {}..={}",
            view.timestamp,
            before,
            after
        );
    } else {
        prop_assert_eq!(view.timestamp, event.timestamp);
        let mut encoded = vec![0u8; len];
        prop_assert_eq!(event.with(|e| encode_into(e, &mut encoded)), Ok(len));
        prop_assert_eq!(
            &encoded[..],
            &buf[..len],
            "push_event and encode_into differ"
        );
    }
    let props = view.properties();
    prop_assert_eq!(props.len(), event.properties.len());
    prop_assert_eq!(props.is_empty(), event.properties.is_empty());
    let got: Vec<(&str, &str)> = props.iter().collect();
    let want: Vec<(&str, &str)> = event
        .properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    prop_assert_eq!(&got, &want);
    for (k, _) in &want {
        let first = want.iter().find(|(k2, _)| k2 == k).map(|(_, v)| *v);
        prop_assert_eq!(props.get(k), first);
    }
    prop_assert_eq!(EventView::decode(&buf[..len], 9).map(|v| v.seq), Ok(9));

    // Into a small slot: it fits or is refused with both sizes, changing nothing.
    let small = HeapRing::with_capacity(2, 64, Overflow::Overwrite).unwrap();
    let p = small.mp_producer().unwrap();
    let pushed = event.with(|e| p.push_event(e));
    if len <= 64 {
        prop_assert_eq!(pushed, Ok(0));
    } else {
        prop_assert_eq!(pushed, Err(Error::TooLarge { size: len, max: 64 }));
        prop_assert_eq!(small.stats(), Stats::default());
        prop_assert_eq!(small.try_claim(&mut buf), Err(RecvError::Empty));
    }
    Ok(())
}

/// Decoding arbitrary bytes: `Ok` or `Err(Malformed)`. What decodes is
/// canonical: encoding the view again gives back the same bytes. Through a
/// ring, `Claim::event` agrees with `EventView::decode`.
fn check_decode(bytes: &[u8]) -> Result<(), TestCaseError> {
    let decoded = EventView::decode(bytes, 5);
    match &decoded {
        Err(e) => prop_assert_eq!(*e, Error::Malformed),
        Ok(view) => {
            let props: Vec<(&str, &str)> = view.properties().iter().collect();
            prop_assert_eq!(props.len(), view.properties().len());
            let event = Event {
                name: view.name,
                properties: &props,
                timestamp: view.timestamp,
                external: view.external,
            };
            let mut out = vec![0u8; bytes.len()];
            prop_assert_eq!(encode_into(&event, &mut out), Ok(bytes.len()));
            prop_assert_eq!(
                &out[..],
                bytes,
                "decoded event does not re-encode to the same bytes"
            );
        }
    }
    if bytes.len() <= 512 {
        let ring = HeapRing::with_capacity(2, 512, Overflow::Overwrite).unwrap();
        prop_assert_eq!(ring.mp_producer().unwrap().push(bytes), Ok(0));
        let mut buf = vec![0u8; 512];
        let claim = ring.try_claim(&mut buf).unwrap();
        prop_assert_eq!(claim.len, bytes.len());
        let via_claim = claim
            .event(&buf)
            .map(|v| (v.name, v.timestamp, v.external, v.properties().len()));
        let direct = EventView::decode(bytes, 0)
            .map(|v| (v.name, v.timestamp, v.external, v.properties().len()));
        prop_assert_eq!(via_claim, direct);
        // A claim longer than the buffer it is read from is malformed, not a panic.
        let too_long = Claim {
            lost: 0,
            seq: 0,
            len: buf.len() + 1,
        };
        prop_assert_eq!(too_long.event(&buf).err(), Some(Error::Malformed));
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, u8),
    Truncate(usize),
    Append(u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => any::<u8>().prop_map(Mutation::Append),
    ]
}

/// A hand-assembled encoding, valid or broken in one known way, so the
/// decoder's verdict can be predicted exactly.
#[derive(Clone, Debug)]
struct Assembled {
    timestamp: u64,
    flags: u8,
    name: Vec<u8>,
    /// `(key, value, error added to the key length byte)`.
    properties: Vec<(Vec<u8>, Vec<u8>, i8)>,
    /// Error added to the property count.
    count_error: i8,
    trailing: Vec<u8>,
}

impl Assembled {
    fn bytes(&self) -> Vec<u8> {
        let mut out = self.timestamp.to_le_bytes().to_vec();
        out.push(self.flags);
        out.push(self.name.len() as u8);
        let count = (self.properties.len() as i32 + i32::from(self.count_error)).max(0) as u16;
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&self.name);
        for (key, value, key_error) in &self.properties {
            out.push((key.len() as i32 + i32::from(*key_error)).clamp(0, 255) as u8);
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(value);
        }
        out.extend_from_slice(&self.trailing);
        out
    }

    /// `Some(valid)` when the layout is intact, `None` when a length field
    /// or trailing bytes were disturbed (then anything may parse).
    fn verdict(&self) -> Option<bool> {
        let intact = self.count_error == 0
            && self.trailing.is_empty()
            && self.properties.iter().all(|(_, _, e)| *e == 0);
        intact.then(|| {
            self.flags <= 1
                && !self.name.is_empty()
                && std::str::from_utf8(&self.name).is_ok()
                && self.properties.iter().all(|(k, v, _)| {
                    !k.is_empty()
                        && std::str::from_utf8(k).is_ok()
                        && std::str::from_utf8(v).is_ok()
                })
        })
    }
}

/// Short byte strings: mostly lowercase ASCII (sometimes empty), sometimes
/// arbitrary bytes (often invalid UTF-8), sometimes a multi-byte character.
fn field(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => proptest::collection::vec(b'a'..=b'z', 0..=max),
        2 => proptest::collection::vec(any::<u8>(), 0..=max),
        1 => any::<char>().prop_map(|c| c.to_string().into_bytes()),
    ]
}

fn small_error() -> impl Strategy<Value = i8> {
    prop_oneof![12 => Just(0i8), 1 => Just(1), 1 => Just(-1), 1 => any::<i8>()]
}

fn assembled() -> impl Strategy<Value = Assembled> {
    (
        any::<u64>(),
        prop_oneof![4 => Just(0u8), 4 => Just(1), 1 => any::<u8>()],
        field(6),
        proptest::collection::vec((field(4), field(4), small_error()), 0..=3),
        small_error(),
        prop_oneof![12 => Just(Vec::new()), 1 => proptest::collection::vec(any::<u8>(), 1..4)],
    )
        .prop_map(
            |(timestamp, flags, name, properties, count_error, trailing)| Assembled {
                timestamp,
                flags,
                name,
                properties,
                count_error,
                trailing,
            },
        )
}

/// 256 cases (a few seconds in debug builds) unless `PROPTEST_CASES` asks
/// for another number, e.g. for a soak run.
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_some() {
        default
    } else {
        ProptestConfig {
            cases: 256,
            ..default
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn ring_matches_model(case in case()) {
        run_case(&case)?;
    }

    #[test]
    fn events_round_trip(event in any_event(), single in any::<bool>()) {
        check_round_trip(&event, single)?;
    }

    #[test]
    fn random_bytes_decode_or_malformed(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        check_decode(&bytes)?;
    }

    #[test]
    fn assembled_bytes_decode_exactly(a in assembled()) {
        let bytes = a.bytes();
        let decoded = EventView::decode(&bytes, 3);
        match a.verdict() {
            Some(true) => {
                let view = decoded.map_err(|e| TestCaseError::fail(format!("valid encoding refused: {e:?}")))?;
                prop_assert_eq!(view.timestamp, a.timestamp);
                prop_assert_eq!(view.external, a.flags == 1);
                prop_assert_eq!(view.name.as_bytes(), &a.name[..]);
                let got: Vec<(&[u8], &[u8])> =
                    view.properties().iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect();
                let want: Vec<(&[u8], &[u8])> = a.properties.iter().map(|(k, v, _)| (&k[..], &v[..])).collect();
                prop_assert_eq!(got, want);
            }
            Some(false) => prop_assert_eq!(decoded, Err(Error::Malformed)),
            None => {}
        }
        check_decode(&bytes)?;
    }

    #[test]
    fn mutated_events_decode_or_malformed(
        event in any_event(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let len = event.with(encoded_len).unwrap();
        let mut bytes = vec![0u8; len];
        event.with(|e| encode_into(e, &mut bytes)).unwrap();
        for m in mutations {
            match m {
                Mutation::Set(i, v) => {
                    if !bytes.is_empty() {
                        let i = i % bytes.len();
                        bytes[i] = v;
                    }
                }
                Mutation::Truncate(n) => bytes.truncate(n % (bytes.len() + 1)),
                Mutation::Append(v) => bytes.push(v),
            }
        }
        check_decode(&bytes)?;
    }
}
