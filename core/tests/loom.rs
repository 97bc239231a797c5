//! Loom models of the ring, run against the real code through its sync facade:
//!
//! ```text
//! RUSTFLAGS="--cfg evqueue_loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test -p evqueue --release --test loom
//! ```
//!
//! Rings are tiny (2 to 4 slots of 2 words) so every interleaving within the
//! preemption bound is explored. Every payload is two equal words: a reader
//! that got a torn copy would see them differ.
#![cfg(evqueue_loom)]

use evqueue::{Error, HeapRing, MpProducer, Overflow, Producer, RecvError, Start};
use loom::thread;
use std::sync::Arc;

const SLOT: usize = 16;

fn new_ring(capacity: usize, overflow: Overflow) -> Arc<HeapRing> {
    Arc::new(HeapRing::with_capacity(capacity, SLOT, overflow).unwrap())
}

fn payload(v: u64) -> [u8; SLOT] {
    let mut b = [0u8; SLOT];
    b[..8].copy_from_slice(&v.to_le_bytes());
    b[8..].copy_from_slice(&v.to_le_bytes());
    b
}

/// The payload's value; panics on a torn copy.
fn value(buf: &[u8], len: usize) -> u64 {
    assert_eq!(len, SLOT, "length word torn");
    let (a, b) = (&buf[..8], &buf[8..16]);
    assert_eq!(a, b, "torn event delivered");
    u64::from_le_bytes(a.try_into().unwrap())
}

/// Worker-group claims until the ring reports `Empty` (producers done).
fn drain(ring: &HeapRing, seen: &mut Vec<(u64, u64)>) {
    let mut buf = [0u8; SLOT];
    while let Ok(c) = ring.try_claim(&mut buf) {
        seen.push((c.seq, value(&buf, c.len)));
    }
}

fn assert_exactly_once_in_order(seen: &[(u64, u64)]) {
    for w in seen.windows(2) {
        assert!(
            w[0].0 < w[1].0,
            "worker group out of order or duplicated: {seen:?}"
        );
    }
}

/// A single producer laps a worker that is copying: the overwritten copy must
/// be discarded, never delivered, and the accounting must balance.
#[test]
fn sp_push_races_claim_across_a_lap() {
    loom::model(|| {
        let ring = new_ring(2, Overflow::Overwrite);
        let mut producer = Producer::new(ring.clone()).unwrap();
        let t = thread::spawn(move || {
            for seq in 0..3 {
                assert_eq!(producer.push(&payload(seq)), Ok(seq));
            }
        });
        let mut seen = Vec::new();
        let mut buf = [0u8; SLOT];
        for _ in 0..2 {
            if let Ok(c) = ring.try_claim(&mut buf) {
                seen.push((c.seq, value(&buf, c.len)));
            }
        }
        t.join().unwrap();
        drain(&ring, &mut seen);
        assert_exactly_once_in_order(&seen);
        for (seq, v) in &seen {
            assert_eq!(seq, v, "payload of another event");
        }
        let s = ring.stats();
        assert_eq!(s.pushed, 3);
        assert_eq!(s.delivered, seen.len() as u64);
        assert_eq!(s.pushed, s.delivered + s.overwritten, "{s:?}");
        assert!(
            seen.last().map(|l| l.0) == Some(2),
            "the newest event survives"
        );
    });
}

/// Two producers take tickets that land on the same slots (4 pushes into 2
/// slots), while a worker claims. Lock-free: neither producer waits for the
/// other; stalled tickets become holes, never torn or duplicated events.
#[test]
fn two_producers_race_for_the_same_slot() {
    loom::model(|| {
        let ring = new_ring(2, Overflow::Overwrite);
        let producer = MpProducer::new(ring.clone()).unwrap();
        let threads: Vec<_> = (0..2u64)
            .map(|id| {
                let p = producer.clone();
                thread::spawn(move || {
                    for k in 0..2u64 {
                        p.push(&payload(id * 10 + k)).unwrap();
                    }
                })
            })
            .collect();
        let mut seen = Vec::new();
        let mut buf = [0u8; SLOT];
        if let Ok(c) = ring.try_claim(&mut buf) {
            seen.push((c.seq, value(&buf, c.len)));
        }
        for t in threads {
            t.join().unwrap();
        }
        drain(&ring, &mut seen);
        assert_exactly_once_in_order(&seen);
        let mut values: Vec<u64> = seen.iter().map(|s| s.1).collect();
        values.sort_unstable();
        values.dedup();
        assert_eq!(
            values.len(),
            seen.len(),
            "an event delivered twice: {seen:?}"
        );
        let s = ring.stats();
        assert_eq!(s.pushed, 4);
        assert_eq!(s.pushed, s.delivered + s.overwritten, "{s:?}");
    });
}

/// Two workers claim from one producer: each event goes to exactly one.
#[test]
fn two_workers_claim_each_event_once() {
    loom::model(|| {
        let ring = new_ring(4, Overflow::Overwrite);
        let mut producer = Producer::new(ring.clone()).unwrap();
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let ring = ring.clone();
                thread::spawn(move || {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; SLOT];
                    for _ in 0..2 {
                        if let Ok(c) = ring.try_claim(&mut buf) {
                            seen.push((c.seq, value(&buf, c.len)));
                        }
                    }
                    seen
                })
            })
            .collect();
        for seq in 0..3 {
            producer.push(&payload(seq)).unwrap();
        }
        let mut all = Vec::new();
        for w in workers {
            let seen = w.join().unwrap();
            assert_exactly_once_in_order(&seen);
            all.extend(seen);
        }
        drain(&ring, &mut all);
        all.sort_unstable();
        assert_eq!(all, [(0, 0), (1, 1), (2, 2)], "each event exactly once");
        let s = ring.stats();
        assert_eq!(
            (s.pushed, s.delivered, s.overwritten, s.depth),
            (3, 3, 0, 0)
        );
    });
}

/// A subscriber lapped by the producer learns exactly how much it missed
/// and continues in order, never reading a torn event.
#[test]
fn lapped_subscriber_reports_lag_and_continues() {
    loom::model(|| {
        let ring = new_ring(2, Overflow::Overwrite);
        let mut sub = ring.subscribe(Start::Now);
        let mut producer = Producer::new(ring.clone()).unwrap();
        let r = ring.clone();
        let t = thread::spawn(move || {
            for seq in 0..4 {
                producer.push(&payload(seq)).unwrap();
            }
            r.close();
            drop(producer); // seals the ring
        });
        let mut buf = [0u8; SLOT];
        let (mut received, mut lagged, mut last) = (0u64, 0u64, None);
        loop {
            match sub.try_recv(&mut buf) {
                Ok(c) => {
                    assert_eq!(value(&buf, c.len), c.seq);
                    assert!(last.is_none_or(|l| c.seq > l), "subscriber went backwards");
                    last = Some(c.seq);
                    received += 1;
                }
                Err(RecvError::Lagged(n)) => {
                    assert!(n > 0);
                    lagged += n;
                }
                Err(RecvError::Closed) => break,
                Err(_) => thread::yield_now(),
            }
        }
        t.join().unwrap();
        assert_eq!(
            received + lagged,
            4,
            "every event received or counted as missed"
        );
        assert_eq!(last, Some(3), "the newest event is received");
        assert_eq!(sub.missed(), lagged);
    });
}

/// Two workers lapped by a producer (2 slots, so the default headroom is
/// one slot): every sequence number is claimed by one worker or reported
/// lost to exactly one caller, in `Claim::lost` or `Lagged`, and the ring's
/// counters agree. (About a minute with `LOOM_MAX_PREEMPTIONS=2`.)
#[test]
fn lapped_workers_report_every_skip_once() {
    /// Up to `tries` claims (all of them when `tries` is `None`, until
    /// `Empty`): what was claimed, and what was reported lost.
    fn claim(ring: &HeapRing, tries: Option<usize>) -> (Vec<(u64, u64)>, u64) {
        let mut buf = [0u8; SLOT];
        let (mut seen, mut lost) = (Vec::new(), 0u64);
        for _ in 0..tries.unwrap_or(usize::MAX) {
            match ring.try_claim(&mut buf) {
                Ok(c) => {
                    seen.push((c.seq, value(&buf, c.len)));
                    lost += c.lost;
                }
                Err(RecvError::Lagged(n)) => {
                    assert!(n > 0);
                    lost += n;
                }
                Err(_) if tries.is_none() => break,
                Err(_) => {}
            }
        }
        (seen, lost)
    }
    loom::model(|| {
        let ring = new_ring(2, Overflow::Overwrite);
        let mut producer = Producer::new(ring.clone()).unwrap();
        let t = thread::spawn(move || {
            for seq in 0..3 {
                producer.push(&payload(seq)).unwrap();
            }
        });
        let r = ring.clone();
        let other = thread::spawn(move || claim(&r, Some(2)));
        let (mut seen, mut lost) = claim(&ring, Some(2));
        let (seen_other, lost_other) = other.join().unwrap();
        t.join().unwrap();
        let (rest, lost_rest) = claim(&ring, None);
        for part in [&seen, &seen_other, &rest] {
            assert_exactly_once_in_order(part);
            assert!(part.iter().all(|(seq, v)| seq == v), "wrong payload");
        }
        seen.extend(seen_other);
        seen.extend(rest);
        lost += lost_other + lost_rest;
        seen.sort_unstable();
        let received = seen.len() as u64;
        seen.dedup();
        assert_eq!(seen.len() as u64, received, "an event claimed twice");
        assert_eq!(
            received + lost,
            3,
            "every seq claimed or reported lost once"
        );
        let s = ring.stats();
        assert_eq!((s.pushed, s.delivered, s.overwritten), (3, received, lost));
    });
}

/// Close while a worker claims: every push that succeeded is delivered
/// before the worker sees `Closed`; pushes after the close fail.
#[test]
fn close_while_claiming() {
    loom::model(|| {
        let ring = new_ring(4, Overflow::Overwrite);
        let producer = MpProducer::new(ring.clone()).unwrap();
        let p2 = producer.clone();
        let pusher =
            thread::spawn(move || (0..2u64).filter(|&v| p2.push(&payload(v)).is_ok()).count());
        let r = ring.clone();
        let closer = thread::spawn(move || {
            r.close();
        });
        let mut seen = Vec::new();
        let mut buf = [0u8; SLOT];
        loop {
            match ring.try_claim(&mut buf) {
                Ok(c) => seen.push((c.seq, value(&buf, c.len))),
                Err(RecvError::Closed) => break,
                Err(_) => thread::yield_now(),
            }
        }
        let accepted = pusher.join().unwrap();
        closer.join().unwrap();
        assert_eq!(
            seen.len(),
            accepted,
            "accepted pushes all delivered before Closed: {seen:?}"
        );
        assert_exactly_once_in_order(&seen);
        assert_eq!(producer.push(&payload(9)), Err(Error::Closed));
        let s = ring.stats();
        assert_eq!(
            (s.pushed, s.delivered, s.depth),
            (accepted as u64, accepted as u64, 0)
        );
    });
}

/// `Reject`: the room check against the worker cursor never lets the
/// producer overwrite an unconsumed (or still being copied) event.
#[test]
fn reject_policy_never_overwrites() {
    loom::model(|| {
        let ring = new_ring(2, Overflow::Reject);
        let mut producer = Producer::new(ring.clone()).unwrap();
        let t = thread::spawn(move || {
            let mut accepted = Vec::new();
            let mut full = 0;
            for v in 0..3u64 {
                match producer.push(&payload(v)) {
                    Ok(seq) => accepted.push((seq, v)),
                    Err(Error::Full) => full += 1,
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            (accepted, full)
        });
        let mut seen = Vec::new();
        let mut buf = [0u8; SLOT];
        if let Ok(c) = ring.try_claim(&mut buf) {
            seen.push((c.seq, value(&buf, c.len)));
        }
        let (accepted, full) = t.join().unwrap();
        drain(&ring, &mut seen);
        assert_eq!(seen, accepted, "every accepted event delivered, untouched");
        let s = ring.stats();
        assert_eq!((s.overwritten, s.rejected), (0, full));
        assert_eq!(s.pushed, s.delivered + s.rejected);
    });
}

/// Multi-producer `Reject`: two producers compete for the last free slot.
#[test]
fn reject_policy_with_two_producers() {
    loom::model(|| {
        let ring = new_ring(2, Overflow::Reject);
        let producer = MpProducer::new(ring.clone()).unwrap();
        producer.push(&payload(100)).unwrap();
        let threads: Vec<_> = (0..2u64)
            .map(|id| {
                let p = producer.clone();
                thread::spawn(move || p.push(&payload(id)))
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(
            ok, 1,
            "exactly one producer gets the last slot: {results:?}"
        );
        assert!(results.contains(&Err(Error::Full)));
        let mut seen = Vec::new();
        drain(&ring, &mut seen);
        assert_eq!(seen.len(), 2);
        let s = ring.stats();
        assert_eq!(
            (s.pushed, s.delivered, s.rejected, s.overwritten),
            (3, 2, 1, 0)
        );
    });
}

/// Multi-producer `Reject` while the worker claims: a producer reuses a slot
/// only after the claim of the event it held, and learns that through the
/// worker cursor or through the cursor cached by the other producer (two
/// claims free both slots; the second push may see room in the cache alone).
/// Accepted events are delivered exactly once and untorn, nothing is
/// overwritten, and `pushed = delivered + rejected`.
#[test]
fn reject_policy_producers_race_claims() {
    loom::model(|| {
        let ring = new_ring(2, Overflow::Reject);
        let producer = MpProducer::new(ring.clone()).unwrap();
        for v in 0..2 {
            producer.push(&payload(v)).unwrap();
        }
        let threads: Vec<_> = (0..2u64)
            .map(|id| {
                let p = producer.clone();
                thread::spawn(move || {
                    let v = 10 + id;
                    match p.push(&payload(v)) {
                        Ok(seq) => Some((seq, v)),
                        Err(Error::Full) => None,
                        Err(e) => panic!("unexpected {e}"),
                    }
                })
            })
            .collect();
        let mut seen = Vec::new();
        let mut buf = [0u8; SLOT];
        for _ in 0..2 {
            let c = ring
                .try_claim(&mut buf)
                .expect("two events were pushed first");
            seen.push((c.seq, value(&buf, c.len)));
        }
        let mut accepted: Vec<_> = threads
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .collect();
        accepted.sort_unstable();
        drain(&ring, &mut seen);
        assert_exactly_once_in_order(&seen);
        assert_eq!(&seen[..2], [(0, 0), (1, 1)]);
        assert_eq!(
            &seen[2..],
            accepted,
            "every accepted event delivered, untouched"
        );
        let s = ring.stats();
        let rejected = 2 - accepted.len() as u64;
        assert_eq!(
            (s.pushed, s.delivered, s.overwritten, s.rejected),
            (4, 2 + accepted.len() as u64, 0, rejected)
        );
    });
}
