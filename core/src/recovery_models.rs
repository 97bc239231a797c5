//! Loom models of recovering a dead multi-producer's ticket (`loom` runs
//! these with `--lib -- recovery_models`): `Ring::recover_ticket` and the takeover
//! in `MpProducer::claim_slot`, over a stand-in for the shared ring's
//! storage whose "processes" are groups of threads with a count of pushes
//! in flight and a liveness flag (the file lock the kernel drops at death).
//!
//! A process dies by stopping in the middle of a push and clearing its
//! flag. The models check the two promises: a reader gets past a dead
//! writer's ticket (counting it lost), and no live writer's event is ever
//! taken from it or torn.

use crate::producer::MpProducer;
use crate::ring::{Lag, Overflow, Ring};
use crate::state::RingState;
use crate::storage::{sealed, HeapSlots, SlotRef, Storage};
use crate::sync::{AtomicU64, Ordering::*};
use crate::{Claim, RecvError};
use loom::sync::atomic::AtomicBool;
use loom::sync::Arc;
use loom::thread;
use std::cell::Cell;

/// Processes in a model.
const PROCESSES: usize = 2;
/// Not a writing process (a reader).
const READER: usize = usize::MAX;

loom::thread_local! {
    /// The model process the current thread belongs to.
    static PROCESS: Cell<usize> = Cell::new(READER);
}

/// Heap slots plus per-process counts of pushes in flight and liveness:
/// what `MappedSlots` keeps in its writer table and file locks.
struct ModelSlots {
    slots: HeapSlots,
    in_flight: [AtomicU64; PROCESSES],
    alive: [AtomicBool; PROCESSES],
}

impl sealed::Sealed for ModelSlots {}

impl Storage for ModelSlots {
    fn capacity(&self) -> usize {
        self.slots.capacity()
    }
    fn slot_words(&self) -> usize {
        self.slots.slot_words()
    }
    fn slot(&self, index: usize) -> SlotRef<'_> {
        self.slots.slot(index)
    }
    fn state(&self) -> &RingState {
        self.slots.state()
    }

    const COUNTS_WRITERS: bool = true;

    fn writing_begin(&self) {
        self.in_flight[PROCESS.with(Cell::get)].fetch_add(1, Relaxed);
    }
    fn writing_end(&self) {
        self.in_flight[PROCESS.with(Cell::get)].fetch_sub(1, Release);
    }
    fn writers_gone(&self, own: u64) -> bool {
        let mine = PROCESS.with(Cell::get);
        (0..PROCESSES).all(|p| {
            let n = self.in_flight[p].load(Acquire);
            if p == mine {
                n <= own
            } else {
                // Acquire: the kernel releases a lock only after the dead
                // process's last store.
                n == 0 || !self.alive[p].load(Acquire)
            }
        })
    }
}

type ModelRing = Ring<ModelSlots>;

/// A ring of `capacity` 16-byte slots whose worker group continues at the
/// oldest event when lapped (with one slot, the default headroom would
/// skip the newest event too).
fn ring(capacity: usize, overflow: Overflow) -> Arc<ModelRing> {
    let slots = ModelSlots {
        slots: HeapSlots::new(capacity, 16).unwrap(),
        in_flight: [AtomicU64::new(0), AtomicU64::new(0)],
        alive: [AtomicBool::new(true), AtomicBool::new(true)],
    };
    let mut ring = Ring::from_storage(slots, overflow);
    ring.lag = Lag::Oldest;
    Arc::new(ring)
}

/// Payload of process `p`: both words say who wrote them, so a torn copy
/// (words of two writers) shows.
fn payload(p: usize) -> [u8; 16] {
    let word = (0x1111_1111_1111_1111u64 * (p as u64 + 1)).to_le_bytes();
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&word);
    b[8..].copy_from_slice(&word);
    b
}

/// The writer of a claimed, whole event.
fn writer_of(buf: &[u8], claim: &Claim) -> usize {
    assert_eq!(claim.len, 16);
    assert_eq!(buf[..8], buf[8..16], "torn event");
    (0..PROCESSES)
        .find(|&p| payload(p)[..] == buf[..16])
        .expect("a payload some writer pushed")
}

/// How far a dying writer gets before its process dies.
#[derive(Clone, Copy)]
enum DiesAfter {
    /// Took a ticket; its slot still shows the previous lap.
    Ticket,
    /// Claimed its slot (`WRITING`) and wrote half the payload.
    HalfWrite,
}

/// Process 0 pushes part of an event and dies, as in `stage`.
fn die_mid_push(r: &ModelRing, stage: DiesAfter) {
    PROCESS.with(|p| p.set(0));
    let p = MpProducer::new(r).unwrap();
    r.slots.writing_begin();
    if let Ok(ticket) = p.take_ticket() {
        if let DiesAfter::HalfWrite = stage {
            if let Some(slot) = p.claim_slot(ticket) {
                crate::sync::fence(Release);
                slot.data[0].store(0xdead, Relaxed);
            }
        }
    }
    r.slots.alive[0].store(false, Release);
}

/// Claims until one event is delivered, recovering the cursor's ticket
/// when there is none; returns the event's writer and the losses seen.
fn claim_one(r: &ModelRing) -> (usize, u64) {
    let mut buf = [0u8; 16];
    let mut lost = 0;
    loop {
        match r.try_claim(&mut buf) {
            Ok(claim) => return (writer_of(&buf, &claim), lost + claim.lost),
            Err(RecvError::Lagged(n)) => lost += n,
            Err(RecvError::Empty) => {
                r.recover_ticket(r.worker_position());
                thread::yield_now();
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// `Reject`: process 0 dies holding a ticket; process 1 pushes an event.
/// The reader gets process 1's event whole, whatever the order of the
/// tickets, and counts the dead ticket lost exactly when it came first.
fn reader_passes_a_dead_ticket(stage: DiesAfter) {
    loom::model(move || {
        let r = ring(2, Overflow::Reject);
        let dying = {
            let r = r.clone();
            thread::spawn(move || die_mid_push(&r, stage))
        };
        let live = {
            let r = r.clone();
            thread::spawn(move || {
                PROCESS.with(|p| p.set(1));
                MpProducer::new(&*r).unwrap().push(&payload(1)).unwrap()
            })
        };
        let (writer, lost) = claim_one(&r);
        let live_seq = live.join().unwrap();
        dying.join().unwrap();
        assert_eq!(writer, 1);
        assert_eq!(
            lost, live_seq,
            "the dead ticket is lost only if it came first"
        );
        let s = r.stats();
        assert_eq!((s.pushed, s.delivered), (2, 1));
    });
}

#[test]
fn reader_passes_a_ticket_dead_before_its_slot() {
    reader_passes_a_dead_ticket(DiesAfter::Ticket);
}

#[test]
fn reader_passes_a_ticket_dead_mid_write() {
    reader_passes_a_dead_ticket(DiesAfter::HalfWrite);
}

/// A live writer slower than a reader that keeps trying to recover its
/// ticket: the event is never taken from it, and arrives whole.
#[test]
fn a_live_writers_ticket_is_never_recovered() {
    loom::model(|| {
        let r = ring(2, Overflow::Reject);
        let writer = {
            let r = r.clone();
            thread::spawn(move || {
                PROCESS.with(|p| p.set(0));
                MpProducer::new(&*r).unwrap().push(&payload(0)).unwrap();
            })
        };
        assert_eq!(claim_one(&r), (0, 0));
        writer.join().unwrap();
        assert_eq!(r.stats().overwritten, 0);
    });
}

/// `Overwrite`, one slot: process 0 dies mid-write of ticket 0, process 1
/// pushes ticket 1 into the same slot. It takes the slot over if it sees
/// process 0 dead, else gives its event up as a hole; either way a reader
/// never gets a torn event, and if it gets one it is process 1's.
#[test]
fn the_next_lap_takes_over_a_dead_writers_slot() {
    loom::model(|| {
        let r = ring(1, Overflow::Overwrite);
        die_mid_push(&r, DiesAfter::HalfWrite);
        let live = {
            let r = r.clone();
            thread::spawn(move || {
                PROCESS.with(|p| p.set(1));
                MpProducer::new(&*r).unwrap().push(&payload(1)).unwrap()
            })
        };
        let mut buf = [0u8; 16];
        if let Ok(claim) = r.try_claim(&mut buf) {
            assert_eq!(writer_of(&buf, &claim), 1);
        }
        assert_eq!(live.join().unwrap(), 1);
        // Process 0 is dead, so the push took the slot over.
        match r.try_claim(&mut buf) {
            Ok(claim) => assert_eq!((writer_of(&buf, &claim), claim.seq), (1, 1)),
            Err(e) => assert_eq!(e, RecvError::Empty, "delivered before"),
        }
        assert_eq!(r.stats().overwritten, 1);
    });
}

/// The same with process 0 alive and still writing: the next lap must not
/// take its slot (that would tear), so it gives its own event up.
#[test]
fn the_next_lap_leaves_a_live_writers_slot() {
    loom::model(|| {
        let r = ring(1, Overflow::Overwrite);
        // Process 0 holds ticket 0's slot, mid-write, and lives on.
        PROCESS.with(|p| p.set(0));
        let p0 = MpProducer::new(&*r).unwrap();
        r.slots.writing_begin();
        let ticket = p0.take_ticket().unwrap();
        let slot = p0.claim_slot(ticket).unwrap();
        PROCESS.with(|p| p.set(READER));
        let live = {
            let r = r.clone();
            thread::spawn(move || {
                PROCESS.with(|p| p.set(1));
                MpProducer::new(&*r).unwrap().push(&payload(1)).unwrap()
            })
        };
        // Process 0 finishes its write while process 1 pushes.
        crate::sync::fence(Release);
        crate::words::write_payload(slot, &payload(0));
        PROCESS.with(|p| p.set(0));
        crate::producer::finish(slot, ticket, crate::stamp::committed(ticket));
        r.slots.writing_end();
        assert_eq!(live.join().unwrap(), 1);
        let mut buf = [0u8; 16];
        let mut got = Vec::new();
        loop {
            match r.try_claim(&mut buf) {
                Ok(claim) => got.push(writer_of(&buf, &claim)),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Empty) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        // Event 0 was lapped by ticket 1, which found the slot busy (a
        // hole) or, after process 0 finished, wrote event 1.
        assert!(got.is_empty() || got == [1], "{got:?}");
        assert_eq!(r.stats().overwritten, 2 - got.len() as u64);
    });
}
