//! Unit tests of the ring through its public API, plus the hole protocol
//! driven step by step. Small counts under Miri, which runs all of these.

use crate::*;
use std::sync::Arc;
use std::vec::Vec;

const THREADED_EVENTS: u64 = if cfg!(miri) { 60 } else { 100_000 };

fn ring(capacity: usize, slot_bytes: usize, overflow: Overflow) -> HeapRing {
    HeapRing::with_capacity(capacity, slot_bytes, overflow).unwrap()
}

fn claim_all(ring: &HeapRing) -> Vec<(u64, Vec<u8>)> {
    let mut buf = std::vec![0u8; ring.slot_bytes()];
    let mut out = Vec::new();
    while let Ok(c) = ring.try_claim(&mut buf) {
        out.push((c.seq, buf[..c.len].to_vec()));
    }
    out
}

#[test]
fn bad_configuration_is_refused() {
    let o = Overflow::Overwrite;
    assert_eq!(
        HeapRing::with_capacity(0, 64, o).err(),
        Some(Error::InvalidCapacity { capacity: 0 })
    );
    assert_eq!(
        HeapRing::with_capacity(3, 64, o).err(),
        Some(Error::InvalidCapacity { capacity: 3 })
    );
    assert_eq!(
        HeapRing::with_capacity(4, 8, o).err(),
        Some(Error::InvalidSlotSize { slot_bytes: 8 })
    );
    assert_eq!(
        HeapRing::with_capacity(4, 60, o).err(),
        Some(Error::InvalidSlotSize { slot_bytes: 60 })
    );
    assert_eq!(
        HeapRing::with_capacity(4, MAX_SLOT_BYTES + 8, o).err(),
        Some(Error::InvalidSlotSize {
            slot_bytes: MAX_SLOT_BYTES + 8
        })
    );
    assert_eq!(
        HeapRing::with_capacity(MAX_CAPACITY * 2, 64, o).err(),
        Some(Error::InvalidCapacity {
            capacity: MAX_CAPACITY * 2
        })
    );
    // Messages name the numbers.
    let msg = std::format!(
        "{}",
        Error::TooLarge {
            size: 300,
            max: 256
        }
    );
    assert!(msg.contains("300") && msg.contains("256"), "{msg}");
}

// A `static` needs the const constructor, which loom's atomics do not have.
#[cfg(not(evqueue_loom))]
#[test]
fn static_ring_round_trip() {
    static RING: StaticRing<8, 2> = StaticRing::new(Overflow::Overwrite);
    let mut p = RING.producer().unwrap();
    assert_eq!(p.push(b"0123456789abcdef"), Ok(0));
    assert_eq!(p.push(b"x"), Ok(1));
    let mut buf = [0u8; 16];
    let c = RING.try_claim(&mut buf).unwrap();
    assert_eq!((c.seq, &buf[..c.len]), (0, &b"0123456789abcdef"[..]));
    let c = RING.try_claim(&mut buf).unwrap();
    assert_eq!((c.seq, &buf[..c.len]), (1, &b"x"[..]));
    assert_eq!(RING.try_claim(&mut buf), Err(RecvError::Empty));
}

#[test]
fn too_large_payload_changes_nothing() {
    let r = ring(4, 16, Overflow::Overwrite);
    let mut p = r.producer().unwrap();
    let before = r.stats();
    assert_eq!(p.push(&[1; 17]), Err(Error::TooLarge { size: 17, max: 16 }));
    assert_eq!(r.stats(), before);
    assert_eq!(
        p.push(&[1; 16]),
        Ok(0),
        "the failed push took no sequence number"
    );
    let big = [("k", "a fairly long property value that cannot fit")];
    assert!(matches!(
        p.push_event(&Event::new("e").properties(&big)),
        Err(Error::TooLarge { max: 16, .. })
    ));
    assert_eq!(p.push_event(&Event::new("")), Err(Error::EmptyName));
    assert_eq!(r.stats().pushed, 1);
}

#[test]
fn overwrite_counts_the_oldest_events_lost() {
    let r = ring(4, 16, Overflow::Overwrite).with_lag(Lag::Oldest);
    let mut p = r.producer().unwrap();
    for i in 0..7u8 {
        assert_eq!(p.push(&[i]), Ok(i as u64));
    }
    let s = r.stats();
    assert_eq!(
        (s.pushed, s.overwritten, s.depth, s.delivered),
        (7, 3, 4, 0)
    );
    let got = claim_all(&r);
    assert_eq!(
        got.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [3, 4, 5, 6]
    );
    assert_eq!(got[0].1, [3]);
    let s = r.stats();
    assert_eq!(
        (s.pushed, s.delivered, s.overwritten, s.depth),
        (7, 4, 3, 0)
    );
    assert_eq!(s.high_water, 4);
}

/// Each lag policy moves a lapped worker group to its own place, and the
/// claim that follows reports what the call passed over.
#[test]
fn lapped_worker_group_continues_as_its_lag_policy_says() {
    // 16 slots, 40 pushes: 24..40 retained; the headroom is 16 / 8 = 2.
    for (lag, first) in [(Lag::Oldest, 24), (Lag::Headroom, 26), (Lag::Newest, 39)] {
        let r = ring(16, 16, Overflow::Overwrite).with_lag(lag);
        assert_eq!(r.lag(), lag);
        let mut p = r.producer().unwrap();
        for i in 0..40u8 {
            p.push(&[i]).unwrap();
        }
        let mut buf = [0u8; 16];
        let claim = r.try_claim(&mut buf).unwrap();
        assert_eq!((claim.seq, claim.lost, buf[0]), (first, first, first as u8));
        let next = r.try_claim(&mut buf).map(|c| (c.seq, c.lost));
        if first < 39 {
            assert_eq!(next, Ok((first + 1, 0)), "{lag:?}");
        }
        let s = r.stats();
        assert_eq!(s.overwritten, first, "{lag:?}");
        // A batch claim reports the skip on its first claim only.
        let r = ring(16, 16, Overflow::Overwrite).with_lag(lag);
        let p = r.mp_producer().unwrap();
        for i in 0..40u8 {
            p.push(&[i]).unwrap();
        }
        let (mut buf, mut claims) = ([0u8; 4 * 16], [Claim::default(); 4]);
        let n = r.try_claim_batch(&mut buf, &mut claims).unwrap();
        assert_eq!(claims[0].seq, first);
        assert_eq!(claims[0].lost, first);
        assert!(claims[1..n].iter().all(|c| c.lost == 0));
    }
}

/// A call that skipped lost events and then found nothing reports them as
/// `Lagged`, so no skip goes unreported; the next call finds `Empty`.
#[test]
fn a_skip_followed_by_nothing_is_reported_as_lagged() {
    // One slot: the headroom reaches the head, so nothing follows the skip.
    let r = ring(1, 16, Overflow::Overwrite);
    let mut p = r.producer().unwrap();
    for i in 0..3u8 {
        p.push(&[i]).unwrap();
    }
    let mut buf = [0u8; 16];
    assert_eq!(r.try_claim(&mut buf), Err(RecvError::Lagged(3)));
    assert_eq!(r.try_claim(&mut buf), Err(RecvError::Empty));
    let s = r.stats();
    assert_eq!(
        (s.pushed, s.overwritten, s.delivered, s.depth),
        (3, 3, 0, 0)
    );
    p.push(&[3]).unwrap();
    assert_eq!(r.try_claim(&mut buf).map(|c| (c.seq, c.lost)), Ok((3, 0)));
}

#[test]
fn reject_refuses_when_a_ring_behind() {
    for mp in [false, true] {
        let r = ring(2, 16, Overflow::Reject);
        let mut sp = if mp {
            None
        } else {
            Some(r.producer().unwrap())
        };
        let mpp = if mp {
            Some(r.mp_producer().unwrap())
        } else {
            None
        };
        let mut push = |b: &[u8]| match (&mut sp, &mpp) {
            (Some(p), _) => p.push(b),
            (_, Some(p)) => p.push(b),
            _ => unreachable!(),
        };
        assert_eq!(push(b"a"), Ok(0));
        assert_eq!(push(b"b"), Ok(1));
        assert_eq!(push(b"c"), Err(Error::Full));
        let mut buf = [0u8; 16];
        assert_eq!(r.try_claim(&mut buf).unwrap().seq, 0);
        assert_eq!(push(b"d"), Ok(2));
        let s = r.stats();
        assert_eq!(
            (s.pushed, s.rejected, s.overwritten, s.delivered),
            (4, 1, 0, 1)
        );
        let rest = claim_all(&r);
        assert_eq!(rest, [(1, b"b".to_vec()), (2, b"d".to_vec())]);
        let s = r.stats();
        assert_eq!(s.pushed, s.delivered + s.overwritten + s.rejected);
    }
}

/// The single producer keeps the refusal count itself and publishes it with
/// a store: the count carries over to the next single producer, and a
/// multi-producer after it adds to the same total.
#[test]
fn refusals_are_counted_across_producer_handles() {
    let r = ring(2, 16, Overflow::Reject);
    for round in 1..=3u64 {
        let mut p = r.producer().unwrap();
        while p.push(b"x").is_ok() {}
        assert_eq!(p.push(b"x"), Err(Error::Full));
        assert_eq!(r.stats().rejected, 2 * round);
        drop(p);
        claim_all(&r);
    }
    let p = r.mp_producer().unwrap();
    while p.push(b"x").is_ok() {}
    assert_eq!(r.stats().rejected, 7);
    let s = r.stats();
    assert_eq!(s.pushed, s.delivered + s.depth + s.rejected);
}

#[test]
fn producer_modes_exclude_each_other() {
    let r = ring(4, 16, Overflow::Overwrite);
    let p = r.producer().unwrap();
    assert_eq!(r.producer().err(), Some(Error::ProducerTaken));
    assert_eq!(r.mp_producer().err(), Some(Error::ProducerTaken));
    drop(p);
    let mut p = r.producer().unwrap();
    assert_eq!(p.push(b"a"), Ok(0));
    drop(p);
    let m = r.mp_producer().unwrap();
    let _m2 = m.clone();
    assert_eq!(r.producer().err(), Some(Error::ProducerTaken));
    assert_eq!(m.push(b"b"), Ok(1), "a new producer continues the sequence");
}

#[test]
fn close_with_multi_producers_drains_then_reports_closed() {
    let r = ring(4, 16, Overflow::Overwrite);
    let p = r.mp_producer().unwrap();
    let mut sub = r.subscribe(Start::Now);
    p.push(b"a").unwrap();
    assert!(r.close());
    assert!(!r.close(), "second close reports it was closed already");
    assert!(r.is_closed());
    assert_eq!(p.push(b"b"), Err(Error::Closed));
    let mut buf = [0u8; 16];
    assert_eq!(r.try_claim(&mut buf).map(|c| c.seq), Ok(0));
    assert_eq!(r.try_claim(&mut buf), Err(RecvError::Closed));
    assert_eq!(sub.try_recv(&mut buf).map(|c| c.seq), Ok(0));
    assert_eq!(sub.try_recv(&mut buf), Err(RecvError::Closed));
    assert_eq!(r.producer().err(), Some(Error::Closed));
    assert_eq!(r.stats().pushed, 1, "pushes after close are not counted");
}

#[test]
fn close_with_a_single_producer_takes_effect_when_it_sees_it() {
    let r = ring(4, 16, Overflow::Overwrite);
    let mut p = r.producer().unwrap();
    p.push(b"a").unwrap();
    r.close();
    let mut buf = [0u8; 16];
    assert_eq!(r.try_claim(&mut buf).map(|c| c.seq), Ok(0));
    assert_eq!(
        r.try_claim(&mut buf),
        Err(RecvError::Empty),
        "producer has not seen the close yet"
    );
    assert_eq!(p.push(b"b"), Err(Error::Closed));
    assert_eq!(r.try_claim(&mut buf), Err(RecvError::Closed));

    let r = ring(4, 16, Overflow::Overwrite);
    let p = r.producer().unwrap();
    r.close();
    drop(p);
    assert_eq!(
        r.try_claim(&mut buf),
        Err(RecvError::Closed),
        "dropping the producer seals the ring"
    );
}

#[test]
fn subscribers_see_everything_and_report_lag() {
    let r = ring(4, 16, Overflow::Overwrite);
    let p = r.mp_producer().unwrap();
    p.push(&[0]).unwrap();
    let mut now = r.subscribe(Start::Now);
    let mut oldest = r.subscribe(Start::Oldest);
    let mut buf = [0u8; 16];
    assert_eq!(oldest.try_recv(&mut buf).map(|c| c.seq), Ok(0));
    assert_eq!(now.try_recv(&mut buf), Err(RecvError::Empty));
    for i in 1..=6u8 {
        p.push(&[i]).unwrap();
    }
    assert_eq!(now.lag(), 4, "lag saturates at the capacity");
    // 3..=6 retained; the default headroom (one slot of four) continues at 4.
    assert_eq!(now.try_recv(&mut buf), Err(RecvError::Lagged(3)));
    assert_eq!(now.missed(), 3);
    let seqs: Vec<u64> =
        core::iter::from_fn(|| now.try_recv(&mut buf).ok().map(|c| c.seq)).collect();
    assert_eq!(seqs, [4, 5, 6]);
    assert_eq!(buf[0], 6);
    assert_eq!(oldest.try_recv(&mut buf), Err(RecvError::Lagged(3)));
    assert_eq!(oldest.next_seq(), 4);
    // `Lag::Oldest` continues at the oldest retained event, `Newest` at the newest.
    let mut at_oldest = r.subscribe(Start::Oldest).with_lag(Lag::Oldest);
    let mut at_newest = r.subscribe(Start::Oldest).with_lag(Lag::Newest);
    for i in 7..=10u8 {
        p.push(&[i]).unwrap();
    }
    assert_eq!(at_oldest.try_recv(&mut buf), Err(RecvError::Lagged(4)));
    assert_eq!(at_oldest.next_seq(), 7);
    assert_eq!(at_newest.try_recv(&mut buf), Err(RecvError::Lagged(7)));
    assert_eq!(at_newest.try_recv(&mut buf).map(|c| c.seq), Ok(10));
    // Subscribers do not move the worker group.
    assert_eq!(claim_all(&r).len(), 3);
}

#[test]
fn subscriber_batches_match_single_reads_and_report_laps() {
    let r = ring(4, 16, Overflow::Overwrite);
    let p = r.mp_producer().unwrap();
    let mut sub = r.subscribe(Start::Now);
    let (mut buf, mut claims) = ([0u8; 3 * 16], [Claim::default(); 3]);
    assert_eq!(
        sub.try_recv_batch(&mut buf, &mut claims),
        Err(RecvError::Empty)
    );
    assert_eq!(
        sub.try_recv_batch(&mut [0u8; 8], &mut claims),
        Err(RecvError::BufferTooSmall { needed: 16, got: 8 })
    );
    assert_eq!(sub.try_recv_batch(&mut buf, &mut []), Ok(0));
    for i in 0..2u8 {
        p.push(&[i]).unwrap();
    }
    assert_eq!(sub.try_recv_batch(&mut buf, &mut claims), Ok(2));
    assert_eq!((claims[1].seq, buf[16]), (1, 1));
    for i in 2..9u8 {
        p.push(&[i]).unwrap(); // laps the subscriber (cursor 2, oldest 5, headroom 1)
    }
    assert_eq!(
        sub.try_recv_batch(&mut buf, &mut claims),
        Err(RecvError::Lagged(4))
    );
    assert_eq!(
        sub.try_recv_batch(&mut buf, &mut claims),
        Ok(3),
        "at most 3 a batch"
    );
    assert_eq!((claims[0].seq, claims[2].seq, buf[32]), (6, 8, 8));
    assert_eq!(sub.missed(), 4);
    r.close();
    assert_eq!(
        sub.try_recv_batch(&mut buf, &mut claims),
        Err(RecvError::Closed)
    );
}

/// Holes (tickets whose events were lost) end a subscriber batch and are
/// reported as `Lagged(1)` each, like any lost event.
#[test]
fn subscribers_report_holes_as_lost_events() {
    let r = ring(8, 16, Overflow::Overwrite);
    let p = r.mp_producer().unwrap();
    let hole = |p: &crate::MpProducer<&HeapRing>| {
        let ticket = p.take_ticket().unwrap();
        let slot = p.claim_slot(ticket).expect("free slot");
        assert!(crate::producer::finish(
            slot,
            ticket,
            crate::stamp::hole(ticket)
        ));
    };
    let mut sub = r.subscribe(Start::Now);
    let mut one = r.subscribe(Start::Now);
    p.push(b"a").unwrap(); // 0
    hole(&p); // 1
    p.push(b"c").unwrap(); // 2
    hole(&p); // 3
    hole(&p); // 4
    p.push(b"f").unwrap(); // 5
    let (mut buf, mut claims) = ([0u8; 4 * 16], [Claim::default(); 4]);
    let mut got = Vec::new();
    loop {
        match sub.try_recv_batch(&mut buf, &mut claims) {
            Ok(n) => got.extend(claims[..n].iter().map(|c| c.seq)),
            Err(RecvError::Lagged(n)) => got.push(100 + n),
            Err(RecvError::Empty) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(got, [0, 101, 2, 101, 101, 5]);
    assert_eq!((sub.next_seq(), sub.missed()), (6, 3));
    let mut single = [0u8; 16];
    let seqs: Vec<_> = core::iter::from_fn(|| match one.try_recv(&mut single) {
        Ok(c) => Some(Ok(c.seq)),
        Err(RecvError::Empty) => None,
        Err(e) => Some(Err(e)),
    })
    .collect();
    use RecvError::Lagged;
    assert_eq!(
        seqs,
        [
            Ok(0),
            Err(Lagged(1)),
            Ok(2),
            Err(Lagged(1)),
            Err(Lagged(1)),
            Ok(5)
        ]
    );
    assert_eq!(one.missed(), 3);
    // The worker group counts the holes as lost too.
    let s = r.stats();
    assert_eq!((s.pushed, s.overwritten, s.depth), (6, 0, 6));
    let claimed = claim_all(&r);
    assert_eq!(claimed.iter().map(|c| c.0).collect::<Vec<_>>(), [0, 2, 5]);
    let s = r.stats();
    assert_eq!(
        (s.pushed, s.delivered, s.overwritten, s.depth),
        (6, 3, 3, 0)
    );
}

#[test]
fn batch_claims_are_consecutive_and_exclusive() {
    let r = ring(8, 16, Overflow::Overwrite);
    let p = r.mp_producer().unwrap();
    for i in 0..5u8 {
        p.push(&[i; 3]).unwrap();
    }
    let mut buf = [0u8; 3 * 16];
    let mut claims = [Claim::default(); 3];
    assert_eq!(r.try_claim_batch(&mut buf, &mut claims), Ok(3));
    assert_eq!(claims.map(|c| (c.seq, c.len)), [(0, 3), (1, 3), (2, 3)]);
    assert_eq!(&buf[32..35], &[2, 2, 2]);
    assert_eq!(r.try_claim_batch(&mut buf, &mut claims), Ok(2));
    assert_eq!(
        r.try_claim_batch(&mut buf, &mut claims),
        Err(RecvError::Empty)
    );
    assert_eq!(
        r.try_claim_batch(&mut buf[..8], &mut claims),
        Err(RecvError::BufferTooSmall { needed: 16, got: 8 })
    );
    assert_eq!(r.try_claim_batch(&mut buf, &mut []), Ok(0));
}

#[test]
fn short_buffers_are_refused() {
    let r = ring(4, 32, Overflow::Overwrite);
    r.mp_producer().unwrap().push(b"abc").unwrap();
    let mut small = [0u8; 31];
    assert_eq!(
        r.try_claim(&mut small),
        Err(RecvError::BufferTooSmall {
            needed: 32,
            got: 31
        })
    );
    assert_eq!(
        r.subscribe(Start::Oldest).try_recv(&mut small),
        Err(RecvError::BufferTooSmall {
            needed: 32,
            got: 31
        })
    );
    assert_eq!(r.stats().delivered, 0, "the refused claim took nothing");
}

#[test]
fn events_round_trip_with_a_clock() {
    let r = ring(4, 128, Overflow::Overwrite);
    let p = r.mp_producer().unwrap();
    p.push_event(&Event::new("session_start").properties(&[("user", "u1")]))
        .unwrap();
    p.push_event(&Event::new("purchase").timestamp(5).external(true))
        .unwrap();
    let mut buf = [0u8; 128];
    let c = r.try_claim(&mut buf).unwrap();
    let e = c.event(&buf).unwrap();
    assert_eq!(
        (e.seq, e.name, e.properties().get("user")),
        (0, "session_start", Some("u1"))
    );
    assert!(
        e.timestamp > 1_600_000_000_000_000_000,
        "timestamp 0 is stamped at push time"
    );
    let c = r.try_claim(&mut buf).unwrap();
    let e = c.event(&buf).unwrap();
    assert_eq!(
        (e.seq, e.name, e.timestamp, e.external, e.properties().len()),
        (1, "purchase", 5, true, 0)
    );
}

/// Drives the hole protocol by hand: a producer stalls mid-write, the ring
/// laps it, the lapping producer must not wait, and nothing torn or lost
/// reaches a reader.
#[test]
fn stalled_producer_is_skipped_not_waited_for() {
    let r = ring(2, 16, Overflow::Overwrite);
    let stalled = r.mp_producer().unwrap();
    let p = stalled.clone();
    let ticket = stalled.take_ticket().unwrap();
    assert_eq!(ticket, 0);
    let slot = stalled.claim_slot(ticket).expect("free slot");
    assert_eq!(p.push(b"one"), Ok(1));
    // Ticket 2 maps to the stalled slot: it becomes a hole instead of
    // waiting. The push was accepted and its event lost, as an overwritten
    // one is: no retry, so it is counted once.
    assert_eq!(p.push(b"two"), Ok(2));
    let mut buf = [0u8; 16];
    // The reader passes the stalled ticket 0 (lapped), "one" (about to be
    // overwritten: the default headroom) and the hole 2, and says so.
    assert_eq!(r.try_claim(&mut buf), Err(RecvError::Lagged(3)));
    // The stalled producer finishes: its commit fails and it hands the slot
    // back (its push returns `Ok(0)`: accepted, then lost).
    crate::words::write_payload(slot, b"stale");
    assert!(!crate::producer::finish(
        slot,
        ticket,
        crate::stamp::committed(ticket)
    ));
    assert_eq!(p.push(b"four"), Ok(3), "the slot is usable again");
    let c = r.try_claim(&mut buf).unwrap();
    assert_eq!((c.seq, c.lost, &buf[..c.len]), (3, 0, &b"four"[..]));
    let s = r.stats();
    // Four pushes accepted: "four" delivered, the other three lost.
    assert_eq!(
        (s.pushed, s.delivered, s.overwritten, s.depth),
        (4, 1, 3, 0)
    );
}

#[test]
fn single_producer_and_worker_across_threads() {
    let r = Arc::new(ring(16, 16, Overflow::Overwrite));
    let mut p = Producer::new(r.clone()).unwrap();
    let consumer = {
        let r = r.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            let (mut last, mut got) = (None, 0u64);
            loop {
                match r.try_claim(&mut buf) {
                    Ok(c) => {
                        let v = u64::from_le_bytes(buf[..8].try_into().unwrap());
                        assert_eq!(v, c.seq, "payload matches its sequence number");
                        assert_eq!(&buf[8..16], &v.to_le_bytes(), "untorn");
                        assert!(last.is_none_or(|l| c.seq > l), "in order, no duplicates");
                        last = Some(c.seq);
                        got += 1;
                    }
                    Err(RecvError::Closed) => return got,
                    Err(_) => std::thread::yield_now(),
                }
            }
        })
    };
    for i in 0..THREADED_EVENTS {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&i.to_le_bytes());
        b[8..].copy_from_slice(&i.to_le_bytes());
        p.push(&b).unwrap();
    }
    r.close();
    drop(p);
    let got = consumer.join().unwrap();
    let s = r.stats();
    assert_eq!(s.delivered, got);
    assert_eq!(s.pushed, s.delivered + s.overwritten);
}

#[test]
fn two_multi_producers_and_two_workers() {
    let r = Arc::new(ring(8, 16, Overflow::Overwrite));
    let p = MpProducer::new(r.clone()).unwrap();
    let per_producer = THREADED_EVENTS / 2;
    let claimed: Vec<Vec<u64>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let r = &r;
                s.spawn(move || {
                    let mut buf = [0u8; 16];
                    let mut seqs = Vec::new();
                    loop {
                        match r.try_claim(&mut buf) {
                            Ok(c) => {
                                assert_eq!(buf[..8], buf[8..16], "untorn");
                                seqs.push(c.seq);
                            }
                            Err(RecvError::Closed) => return seqs,
                            Err(_) => std::thread::yield_now(),
                        }
                    }
                })
            })
            .collect();
        let producers: Vec<_> = (0..2u64)
            .map(|id| {
                let p = p.clone();
                s.spawn(move || {
                    for i in 0..per_producer {
                        let v = (id << 32) | i;
                        let mut b = [0u8; 16];
                        b[..8].copy_from_slice(&v.to_le_bytes());
                        b[8..].copy_from_slice(&v.to_le_bytes());
                        p.push(&b).unwrap();
                    }
                })
            })
            .collect();
        for t in producers {
            t.join().unwrap();
        }
        r.close();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut all: Vec<u64> = claimed.concat();
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "no sequence number claimed twice");
    let s = r.stats();
    assert_eq!(s.delivered as usize, n);
    assert_eq!(s.pushed, THREADED_EVENTS);
    assert_eq!(s.pushed, s.delivered + s.overwritten);
}

/// Framed raw payloads of every length a slot takes (the header leaves them
/// unaligned to the slot's words) come back byte for byte, with their
/// timestamp, from both producers and under both policies.
#[test]
fn framed_raw_payloads_of_every_length_round_trip() {
    const SLOT: usize = 64;
    let max = SLOT - EVENT_HEADER_BYTES;
    let data: Vec<u8> = (0..max as u8).map(|b| b.wrapping_mul(37) ^ 0xA5).collect();
    for (mp, overflow) in [
        (false, Overflow::Overwrite),
        (true, Overflow::Overwrite),
        (true, Overflow::Reject),
    ] {
        let r = ring(64, SLOT, overflow);
        let mut buf = [0u8; SLOT];
        let mut sp = (!mp).then(|| r.producer().unwrap());
        let mpp = mp.then(|| r.mp_producer().unwrap());
        for len in 0..=max {
            let payload = &data[..len];
            let ts = 1_000 + len as u64;
            let seq = match (&mut sp, &mpp) {
                (Some(p), _) => p.push_framed_raw(payload, ts),
                (_, Some(p)) => p.push_framed_raw(payload, ts),
                _ => unreachable!(),
            }
            .unwrap();
            let claim = r.try_claim(&mut buf).unwrap();
            assert_eq!((claim.seq, claim.len), (seq, EVENT_HEADER_BYTES + len));
            let Ok(Payload::Raw(raw)) = claim.payload(&buf) else {
                panic!("length {len}: not a raw payload");
            };
            assert_eq!((raw.timestamp, raw.bytes), (ts, payload), "length {len}");
        }
        let too_long = std::vec![0u8; max + 1];
        let refused = match (&mut sp, &mpp) {
            (Some(p), _) => p.push_framed_raw(&too_long, 1),
            (_, Some(p)) => p.push_framed_raw(&too_long, 1),
            _ => unreachable!(),
        };
        assert_eq!(refused, Err(Error::TooLarge { size: max + 1, max }));
    }
}

/// Every read path copies payloads of every length byte for byte, whatever
/// the slot's word count (odd counts leave the paired copy a last word), and
/// writes nothing past a slot into a longer buffer.
#[test]
fn every_read_path_copies_every_length_exactly() {
    // Under Miri (16 schedules in the test command), the sizes that cover
    // both copies: odd and even word counts, and lengths on both sides of
    // the paired copy's 64-byte limit.
    let slots: &[usize] = if cfg!(miri) {
        &[16, 24, 72]
    } else {
        &[16, 24, 64, 72, 256]
    };
    for &slot in slots {
        let data: Vec<u8> = (0..slot)
            .map(|i| (i as u8).wrapping_mul(29) ^ 0x5C)
            .collect();
        let r = ring(4, slot, Overflow::Overwrite);
        let p = r.mp_producer().unwrap();
        let mut sub = r.subscribe(Start::Now);
        let mut batch_sub = r.subscribe(Start::Now);
        let fresh = || std::vec![0xEEu8; slot + 16];
        for len in 0..=slot {
            let payload = &data[..len];
            p.push(payload).unwrap();
            let (mut one, mut batch, mut sub_one, mut sub_batch) =
                (fresh(), fresh(), fresh(), fresh());
            let mut claims = [Claim::default(); 1];
            let claim = r.try_claim(&mut one).unwrap();
            let mut read = std::vec![(claim.len, &one)];
            assert_eq!(sub.try_recv(&mut sub_one).unwrap().len, len);
            read.push((len, &sub_one));
            assert_eq!(batch_sub.try_recv_batch(&mut sub_batch, &mut claims), Ok(1));
            read.push((claims[0].len, &sub_batch));
            // The worker claimed this one already: push it again for the batch claim.
            p.push(payload).unwrap();
            assert_eq!(sub.try_recv(&mut fresh()).unwrap().len, len);
            assert_eq!(batch_sub.try_recv(&mut fresh()).unwrap().len, len);
            assert_eq!(r.try_claim_batch(&mut batch, &mut claims), Ok(1));
            read.push((claims[0].len, &batch));
            for (i, (got_len, buf)) in read.into_iter().enumerate() {
                assert_eq!(
                    &buf[..got_len],
                    payload,
                    "slot {slot}, length {len}, path {i}"
                );
                assert!(
                    buf[slot..].iter().all(|&b| b == 0xEE),
                    "slot {slot}, path {i}: wrote past the slot"
                );
            }
        }
    }
}

#[test]
fn encoded_sizes_agree() {
    let props = [("sku", "gem_pack"), ("n", "")];
    let event = Event::new("purchase").properties(&props);
    let len = encoded_len(&event).unwrap();
    assert_eq!(crate::codec::unchecked_len(event.name, props), len);
    // `max_properties` of the smallest properties fit a slot; one more does not.
    let slot = 64;
    let n = max_properties(slot);
    let small = vec![("k", ""); n + 1];
    assert!(encoded_len(&Event::new("x").properties(&small[..n])).unwrap() <= slot);
    assert!(encoded_len(&Event::new("x").properties(&small)).unwrap() > slot);
}
