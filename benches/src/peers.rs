//! One adapter per queue, so every scenario in `benches/peers.rs` runs the
//! same loop over evqueue and each peer: a [`Tx`] pushes `[u8; N]` payloads,
//! an [`Rx`] hands each delivered payload to a closure by reference.
//!
//! Every constructor builds its queue with [`CAPACITY`] slots of exactly `N`
//! payload bytes (evqueue: `HeapRing::with_capacity(CAPACITY, N, ..)`; the
//! peers: a queue of `[u8; N]`), so the geometry is the same for all rows.

use std::hint::spin_loop;
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use evqueue::{Claim, Error, HeapRing, MpProducer, Overflow, Producer, RecvError, Start};

use crate::CAPACITY;

/// Events a batch consumer takes per call, and a batch producer pushes.
pub const BATCH: usize = 32;

/// What one [`Rx::poll`] call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// This many events were handed to the closure.
    Got(u64),
    /// Nothing to take right now.
    Empty,
    /// The queue reported this many events lost (overwritten) to this
    /// consumer; nothing was delivered by this call.
    Lagged(u64),
}

/// The sending half.
pub trait Tx<const N: usize>: Send {
    /// Pushes one payload; `false` if a lossless queue is full (retry).
    fn send(&mut self, payload: &[u8; N]) -> bool;

    /// Pushes every payload of `batch`, waiting while the queue is full, with
    /// the queue's batch call where it has one (the default loops [`send`]).
    ///
    /// [`send`]: Tx::send
    fn send_all(&mut self, batch: &[[u8; N]]) {
        for payload in batch {
            while !self.send(payload) {
                spin_loop();
            }
        }
    }
}

/// The receiving half.
pub trait Rx<const N: usize>: Send {
    /// Takes what is there (one event, or a batch for batch consumers) and
    /// passes each payload to `f`.
    fn poll(&mut self, f: &mut impl FnMut(&[u8])) -> Poll;
}

// ---- evqueue ----

/// An evqueue heap ring of [`CAPACITY`] slots of `N` bytes.
pub fn evqueue_ring<const N: usize>(overflow: Overflow) -> Arc<HeapRing> {
    Arc::new(HeapRing::with_capacity(CAPACITY, N, overflow).expect("evqueue ring"))
}

#[inline(always)]
fn ev_pushed(result: Result<u64, Error>) -> bool {
    match result {
        Ok(_) => true,
        Err(Error::Full) => false,
        Err(e) => panic!("evqueue push: {e}"),
    }
}

/// The single producer ([`Producer::push`]).
pub struct EvTx(pub Producer<Arc<HeapRing>>);

impl EvTx {
    /// The ring's single producer.
    pub fn new(ring: &Arc<HeapRing>) -> Self {
        EvTx(Producer::new(Arc::clone(ring)).expect("single producer"))
    }
}

impl<const N: usize> Tx<N> for EvTx {
    #[inline]
    fn send(&mut self, payload: &[u8; N]) -> bool {
        ev_pushed(self.0.push(payload))
    }
}

/// One multi-producer handle ([`MpProducer::push`]).
pub struct EvMpTx(pub MpProducer<Arc<HeapRing>>);

impl EvMpTx {
    /// A new multi-producer handle on the ring.
    pub fn new(ring: &Arc<HeapRing>) -> Self {
        EvMpTx(MpProducer::new(Arc::clone(ring)).expect("multi producer"))
    }
}

impl<const N: usize> Tx<N> for EvMpTx {
    #[inline]
    fn send(&mut self, payload: &[u8; N]) -> bool {
        ev_pushed(self.0.push(payload))
    }
}

/// A worker of the ring's worker group, one event per call
/// ([`HeapRing::try_claim`]).
pub struct EvClaim {
    ring: Arc<HeapRing>,
    buf: Vec<u8>,
}

impl EvClaim {
    /// A worker on `ring`.
    pub fn new(ring: &Arc<HeapRing>) -> Self {
        EvClaim {
            ring: Arc::clone(ring),
            buf: vec![0; ring.slot_bytes()],
        }
    }
}

#[inline(always)]
fn ev_blocked(e: RecvError) -> Poll {
    match e {
        RecvError::Empty => Poll::Empty,
        RecvError::Lagged(n) => Poll::Lagged(n),
        e => panic!("evqueue receive: {e:?}"),
    }
}

impl<const N: usize> Rx<N> for EvClaim {
    #[inline]
    fn poll(&mut self, f: &mut impl FnMut(&[u8])) -> Poll {
        match self.ring.try_claim(&mut self.buf) {
            Ok(claim) => {
                f(&self.buf[..claim.len]);
                Poll::Got(1)
            }
            Err(e) => ev_blocked(e),
        }
    }
}

/// A worker claiming up to [`BATCH`] events per call
/// ([`HeapRing::try_claim_batch`]).
pub struct EvBatch {
    ring: Arc<HeapRing>,
    buf: Vec<u8>,
    claims: [Claim; BATCH],
}

impl EvBatch {
    /// A batch worker on `ring`.
    pub fn new(ring: &Arc<HeapRing>) -> Self {
        EvBatch {
            ring: Arc::clone(ring),
            buf: vec![0; BATCH * ring.slot_bytes()],
            claims: [Claim::default(); BATCH],
        }
    }
}

impl<const N: usize> Rx<N> for EvBatch {
    #[inline]
    fn poll(&mut self, f: &mut impl FnMut(&[u8])) -> Poll {
        match self.ring.try_claim_batch(&mut self.buf, &mut self.claims) {
            Ok(n) => {
                let slot = self.ring.slot_bytes();
                for (i, claim) in self.claims[..n].iter().enumerate() {
                    f(&self.buf[i * slot..i * slot + claim.len]);
                }
                Poll::Got(n as u64)
            }
            Err(e) => ev_blocked(e),
        }
    }
}

/// A broadcast subscriber ([`evqueue::Subscriber::try_recv`]), from now on.
pub struct EvSub {
    sub: evqueue::Subscriber<Arc<HeapRing>>,
    buf: Vec<u8>,
}

impl EvSub {
    /// A subscriber on `ring` that starts at the next event pushed.
    pub fn new(ring: &Arc<HeapRing>) -> Self {
        EvSub {
            sub: evqueue::Subscriber::new(Arc::clone(ring), Start::Now),
            buf: vec![0; ring.slot_bytes()],
        }
    }

    /// The same subscriber with another lag policy.
    pub fn with_lag(self, lag: evqueue::Lag) -> Self {
        EvSub {
            sub: self.sub.with_lag(lag),
            buf: self.buf,
        }
    }
}

impl<const N: usize> Rx<N> for EvSub {
    #[inline]
    fn poll(&mut self, f: &mut impl FnMut(&[u8])) -> Poll {
        match self.sub.try_recv(&mut self.buf) {
            Ok(claim) => {
                f(&self.buf[..claim.len]);
                Poll::Got(1)
            }
            Err(e) => ev_blocked(e),
        }
    }
}

/// A broadcast subscriber reading up to [`BATCH`] events per call
/// ([`evqueue::Subscriber::try_recv_batch`]), from now on.
pub struct EvSubBatch {
    sub: evqueue::Subscriber<Arc<HeapRing>>,
    slot: usize,
    buf: Vec<u8>,
    claims: [Claim; BATCH],
}

impl EvSubBatch {
    /// A batch subscriber on `ring` that starts at the next event pushed.
    pub fn new(ring: &Arc<HeapRing>) -> Self {
        EvSubBatch {
            sub: evqueue::Subscriber::new(Arc::clone(ring), Start::Now),
            slot: ring.slot_bytes(),
            buf: vec![0; BATCH * ring.slot_bytes()],
            claims: [Claim::default(); BATCH],
        }
    }
}

impl<const N: usize> Rx<N> for EvSubBatch {
    #[inline]
    fn poll(&mut self, f: &mut impl FnMut(&[u8])) -> Poll {
        match self.sub.try_recv_batch(&mut self.buf, &mut self.claims) {
            Ok(n) => {
                for (i, claim) in self.claims[..n].iter().enumerate() {
                    f(&self.buf[i * self.slot..i * self.slot + claim.len]);
                }
                Poll::Got(n as u64)
            }
            Err(e) => ev_blocked(e),
        }
    }
}

// ---- crossbeam ----

/// `ArrayQueue::push` (lossless; `false` when full).
pub struct AqTx<const N: usize>(pub Arc<ArrayQueue<[u8; N]>>);

impl<const N: usize> Tx<N> for AqTx<N> {
    #[inline]
    fn send(&mut self, payload: &[u8; N]) -> bool {
        self.0.push(*payload).is_ok()
    }
}

/// `ArrayQueue::force_push` (overwrites the oldest when full).
pub struct AqForceTx<const N: usize>(pub Arc<ArrayQueue<[u8; N]>>);

impl<const N: usize> Tx<N> for AqForceTx<N> {
    #[inline]
    fn send(&mut self, payload: &[u8; N]) -> bool {
        let _ = self.0.force_push(*payload);
        true
    }
}

/// `ArrayQueue::pop`.
pub struct AqRx<const N: usize>(pub Arc<ArrayQueue<[u8; N]>>);

impl<const N: usize> Rx<N> for AqRx<N> {
    #[inline]
    fn poll(&mut self, f: &mut impl FnMut(&[u8])) -> Poll {
        match self.0.pop() {
            Some(v) => {
                f(&v);
                Poll::Got(1)
            }
            None => Poll::Empty,
        }
    }
}

/// An `ArrayQueue` of [`CAPACITY`] payloads.
pub fn array_queue<const N: usize>() -> Arc<ArrayQueue<[u8; N]>> {
    Arc::new(ArrayQueue::new(CAPACITY))
}

/// `crossbeam_channel::Sender::try_send` on a bounded channel.
pub struct CbTx<const N: usize>(pub crossbeam_channel::Sender<[u8; N]>);

impl<const N: usize> Tx<N> for CbTx<N> {
    #[inline]
    fn send(&mut self, payload: &[u8; N]) -> bool {
        match self.0.try_send(*payload) {
            Ok(()) => true,
            Err(crossbeam_channel::TrySendError::Full(_)) => false,
            Err(e) => panic!("crossbeam-channel send: {e}"),
        }
    }
}

/// `crossbeam_channel::Receiver::try_recv`.
#[derive(Clone)]
pub struct CbRx<const N: usize>(pub crossbeam_channel::Receiver<[u8; N]>);

impl<const N: usize> Rx<N> for CbRx<N> {
    #[inline]
    fn poll(&mut self, f: &mut impl FnMut(&[u8])) -> Poll {
        match self.0.try_recv() {
            Ok(v) => {
                f(&v);
                Poll::Got(1)
            }
            Err(crossbeam_channel::TryRecvError::Empty) => Poll::Empty,
            Err(e) => panic!("crossbeam-channel receive: {e}"),
        }
    }
}

/// A bounded crossbeam channel of [`CAPACITY`] payloads.
pub fn crossbeam_channel<const N: usize>() -> (CbTx<N>, CbRx<N>) {
    let (tx, rx) = crossbeam_channel::bounded(CAPACITY);
    (CbTx(tx), CbRx(rx))
}

// ---- photon-ring (default `atomic-slots` mode: AtomicU64 stripes) ----

/// `photon_ring::Publisher::publish` on a lossy `channel`.
pub struct PhTx<const N: usize>(pub photon_ring::Publisher<[u8; N]>);

impl<const N: usize> Tx<N> for PhTx<N> {
    #[inline]
    fn send(&mut self, payload: &[u8; N]) -> bool {
        self.0.publish(*payload);
        true
    }

    fn send_all(&mut self, batch: &[[u8; N]]) {
        self.0.publish_batch(batch);
    }
}

/// `photon_ring::Publisher::try_publish` on a `channel_bounded` (lossless:
/// `false` when the slowest subscriber is a whole ring behind).
pub struct PhBoundedTx<const N: usize>(pub photon_ring::Publisher<[u8; N]>);

impl<const N: usize> Tx<N> for PhBoundedTx<N> {
    #[inline]
    fn send(&mut self, payload: &[u8; N]) -> bool {
        self.0.try_publish(*payload).is_ok()
    }
}

/// `photon_ring::MpPublisher::publish` on a `channel_mpmc`.
pub struct PhMpTx<const N: usize>(pub photon_ring::MpPublisher<[u8; N]>);

impl<const N: usize> Tx<N> for PhMpTx<N> {
    #[inline]
    fn send(&mut self, payload: &[u8; N]) -> bool {
        self.0.publish(*payload);
        true
    }
}

/// `photon_ring::Subscriber::try_recv`.
pub struct PhRx<const N: usize>(pub photon_ring::Subscriber<[u8; N]>);

impl<const N: usize> Rx<N> for PhRx<N> {
    #[inline]
    fn poll(&mut self, f: &mut impl FnMut(&[u8])) -> Poll {
        match self.0.try_recv() {
            Ok(v) => {
                f(&v);
                Poll::Got(1)
            }
            Err(photon_ring::TryRecvError::Empty) => Poll::Empty,
            Err(photon_ring::TryRecvError::Lagged { skipped }) => Poll::Lagged(skipped),
        }
    }
}

/// `photon_ring::Subscriber::recv_batch`, [`BATCH`] at most per call.
pub struct PhBatchRx<const N: usize> {
    sub: photon_ring::Subscriber<[u8; N]>,
    buf: Vec<[u8; N]>,
    lagged: u64,
}

impl<const N: usize> PhBatchRx<N> {
    /// Batch reads from `sub`.
    pub fn new(sub: photon_ring::Subscriber<[u8; N]>) -> Self {
        PhBatchRx {
            lagged: sub.total_lagged(),
            sub,
            buf: vec![[0; N]; BATCH],
        }
    }
}

impl<const N: usize> Rx<N> for PhBatchRx<N> {
    #[inline]
    fn poll(&mut self, f: &mut impl FnMut(&[u8])) -> Poll {
        let n = self.sub.recv_batch(&mut self.buf);
        for v in &self.buf[..n] {
            f(v);
        }
        // recv_batch skips lost messages silently; its counter says how many.
        let lagged = self.sub.total_lagged();
        if n == 0 && lagged != self.lagged {
            let lost = lagged - self.lagged;
            self.lagged = lagged;
            return Poll::Lagged(lost);
        }
        if n == 0 {
            Poll::Empty
        } else {
            Poll::Got(n as u64)
        }
    }
}

// ---- disruptor ----

/// The disruptor's event: the payload, written in place by the producer.
pub struct DSlot<const N: usize> {
    /// The payload bytes.
    pub data: [u8; N],
}

/// A disruptor ring of [`CAPACITY`] events built for `pollers` event
/// pollers (all on the first stage: each sees every event, and each gates
/// the producer), with a single producer.
pub fn disruptor<const N: usize>(
    pollers: usize,
) -> (
    DTx<disruptor::SingleProducer<DSlot<N>, disruptor::MultiConsumerBarrier>>,
    Vec<DRx<N>>,
) {
    assert!(pollers >= 1);
    // The multi-consumer builder even for one poller, so every count of
    // pollers gives one producer type.
    let mut builder =
        disruptor::build_single_producer(CAPACITY, || DSlot { data: [0; N] }, disruptor::BusySpin)
            .with_multi_consumer();
    let mut rx = Vec::with_capacity(pollers);
    for _ in 0..pollers {
        let (poller, next) = builder.new_event_poller();
        rx.push(DRx::new(poller));
        builder = next;
    }
    (DTx(builder.build()), rx)
}

/// `disruptor::Producer::try_publish`; `send_all` is `batch_publish`.
pub struct DTx<P>(pub P);

impl<const N: usize, P: disruptor::Producer<DSlot<N>> + Send> Tx<N> for DTx<P> {
    #[inline]
    fn send(&mut self, payload: &[u8; N]) -> bool {
        self.0.try_publish(|e| e.data = *payload).is_ok()
    }

    fn send_all(&mut self, batch: &[[u8; N]]) {
        let mut src = batch.iter();
        self.0.batch_publish(batch.len(), |events| {
            for (e, p) in events.zip(&mut src) {
                e.data = *p;
            }
        });
    }
}

/// `disruptor::EventPoller`: `poll` (everything available) by default,
/// `take(limit)` with [`DRx::limit`].
pub struct DRx<const N: usize> {
    poller: disruptor::EventPoller<DSlot<N>, disruptor::SingleProducerBarrier>,
    limit: u64,
}

impl<const N: usize> DRx<N> {
    fn new(poller: disruptor::EventPoller<DSlot<N>, disruptor::SingleProducerBarrier>) -> Self {
        DRx {
            poller,
            limit: u64::MAX,
        }
    }

    /// At most `limit` events per poll.
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = limit;
        self
    }
}

impl<const N: usize> Rx<N> for DRx<N> {
    #[inline]
    fn poll(&mut self, f: &mut impl FnMut(&[u8])) -> Poll {
        match self.poller.take(self.limit) {
            Ok(mut events) => {
                let mut n = 0;
                for e in &mut events {
                    f(&e.data);
                    n += 1;
                }
                Poll::Got(n)
            }
            Err(disruptor::Polling::NoEvents) => Poll::Empty,
            Err(disruptor::Polling::Shutdown) => panic!("disruptor shut down"),
        }
    }
}

// ---- tokio broadcast ----

/// `tokio::sync::broadcast::Sender::send` (overwrites the oldest when full).
#[derive(Clone)]
pub struct TkTx<const N: usize>(pub tokio::sync::broadcast::Sender<[u8; N]>);

impl<const N: usize> Tx<N> for TkTx<N> {
    #[inline]
    fn send(&mut self, payload: &[u8; N]) -> bool {
        self.0.send(*payload).expect("tokio broadcast: no receiver");
        true
    }
}

/// `tokio::sync::broadcast::Receiver::try_recv`.
pub struct TkRx<const N: usize>(pub tokio::sync::broadcast::Receiver<[u8; N]>);

impl<const N: usize> Rx<N> for TkRx<N> {
    #[inline]
    fn poll(&mut self, f: &mut impl FnMut(&[u8])) -> Poll {
        use tokio::sync::broadcast::error::TryRecvError;
        match self.0.try_recv() {
            Ok(v) => {
                f(&v);
                Poll::Got(1)
            }
            Err(TryRecvError::Empty) => Poll::Empty,
            Err(TryRecvError::Lagged(n)) => Poll::Lagged(n),
            Err(TryRecvError::Closed) => panic!("tokio broadcast closed"),
        }
    }
}

/// A tokio broadcast channel of [`CAPACITY`] payloads and `receivers`
/// receivers.
pub fn tokio_broadcast<const N: usize>(receivers: usize) -> (TkTx<N>, Vec<TkRx<N>>) {
    let (tx, rx) = tokio::sync::broadcast::channel(CAPACITY);
    let mut all = vec![TkRx(rx)];
    for _ in 1..receivers {
        all.push(TkRx(tx.subscribe()));
    }
    (TkTx(tx), all)
}

// ---- ringbuf ----

use ringbuf::traits::{Consumer as _, Producer as _, Split as _};

/// `ringbuf` producer: `try_push`; `send_all` is `push_slice`.
pub struct RbTx<const N: usize>(pub ringbuf::HeapProd<[u8; N]>);

impl<const N: usize> Tx<N> for RbTx<N> {
    #[inline]
    fn send(&mut self, payload: &[u8; N]) -> bool {
        self.0.try_push(*payload).is_ok()
    }

    fn send_all(&mut self, batch: &[[u8; N]]) {
        let mut rest = batch;
        while !rest.is_empty() {
            let n = self.0.push_slice(rest);
            rest = &rest[n..];
            if n == 0 {
                spin_loop();
            }
        }
    }
}

/// `ringbuf::HeapRb::push_overwrite` on an unsplit ring (one thread only).
pub struct RbOverwriteTx<const N: usize>(pub ringbuf::HeapRb<[u8; N]>);

impl<const N: usize> Tx<N> for RbOverwriteTx<N> {
    #[inline]
    fn send(&mut self, payload: &[u8; N]) -> bool {
        let _ = self.0.push_overwrite(*payload);
        true
    }
}

/// `ringbuf` consumer: `try_pop`, or `pop_slice` of [`BATCH`] with
/// [`RbRx::batch`].
pub struct RbRx<const N: usize> {
    cons: ringbuf::HeapCons<[u8; N]>,
    buf: Vec<[u8; N]>,
}

impl<const N: usize> RbRx<N> {
    /// Pops up to [`BATCH`] per call instead of one.
    pub fn batch(mut self) -> Self {
        self.buf = vec![[0; N]; BATCH];
        self
    }
}

impl<const N: usize> Rx<N> for RbRx<N> {
    #[inline]
    fn poll(&mut self, f: &mut impl FnMut(&[u8])) -> Poll {
        if self.buf.is_empty() {
            return match self.cons.try_pop() {
                Some(v) => {
                    f(&v);
                    Poll::Got(1)
                }
                None => Poll::Empty,
            };
        }
        let n = self.cons.pop_slice(&mut self.buf);
        for v in &self.buf[..n] {
            f(v);
        }
        if n == 0 {
            Poll::Empty
        } else {
            Poll::Got(n as u64)
        }
    }
}

/// A split `ringbuf::HeapRb` of [`CAPACITY`] payloads.
pub fn ringbuf<const N: usize>() -> (RbTx<N>, RbRx<N>) {
    let (prod, cons) = ringbuf::HeapRb::new(CAPACITY).split();
    (
        RbTx(prod),
        RbRx {
            cons,
            buf: Vec::new(),
        },
    )
}

// ---- heapless ----

/// `heapless::spsc::Producer::enqueue`.
pub struct HlTx<const N: usize>(pub heapless::spsc::Producer<'static, [u8; N]>);

impl<const N: usize> Tx<N> for HlTx<N> {
    #[inline]
    fn send(&mut self, payload: &[u8; N]) -> bool {
        self.0.enqueue(*payload).is_ok()
    }
}

/// `heapless::spsc::Consumer::dequeue`.
pub struct HlRx<const N: usize>(pub heapless::spsc::Consumer<'static, [u8; N]>);

impl<const N: usize> Rx<N> for HlRx<N> {
    #[inline]
    fn poll(&mut self, f: &mut impl FnMut(&[u8])) -> Poll {
        match self.0.dequeue() {
            Some(v) => {
                f(&v);
                Poll::Got(1)
            }
            None => Poll::Empty,
        }
    }
}

/// A `heapless::spsc::Queue<[u8; N], CAPACITY>` (it holds `CAPACITY - 1`),
/// leaked so its halves are `'static`: a few MiB per call, kept until the
/// bench process exits. Built on a thread with a stack large enough for the
/// by-value queue (unoptimized builds construct it on the stack).
pub fn heapless<const N: usize>() -> (HlTx<N>, HlRx<N>) {
    type Q<const N: usize> = heapless::spsc::Queue<[u8; N], CAPACITY>;
    let queue: &'static mut Q<N> = std::thread::Builder::new()
        .stack_size(4 * std::mem::size_of::<Q<N>>() + (1 << 20))
        .spawn(|| Box::leak(Box::new(Q::<N>::new())))
        .expect("spawn")
        .join()
        .expect("heapless queue");
    let (tx, rx) = queue.split();
    (HlTx(tx), HlRx(rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload;

    /// Sends `k` tagged payloads, then drains: returns (delivered tags in
    /// order, lagged total).
    fn round<const N: usize>(tx: &mut impl Tx<N>, rx: &mut impl Rx<N>, k: u8) -> (Vec<u8>, u64) {
        let mut p = payload::<N>();
        for i in 0..k {
            p[0] = i;
            assert!(tx.send(&p), "send {i}");
        }
        let (mut got, mut lagged) = (Vec::new(), 0);
        loop {
            match rx.poll(&mut |b: &[u8]| {
                assert_eq!(b.len(), N);
                got.push(b[0]);
            }) {
                Poll::Got(_) => {}
                Poll::Lagged(n) => lagged += n,
                Poll::Empty => break,
            }
        }
        (got, lagged)
    }

    fn check<const N: usize>(mut tx: impl Tx<N>, mut rx: impl Rx<N>) {
        let (got, lagged) = round(&mut tx, &mut rx, 5);
        assert_eq!((got, lagged), ((0..5).collect::<Vec<u8>>(), 0));
        // The batch path delivers the same.
        let mut batch = vec![payload::<N>(); 3];
        for (i, p) in batch.iter_mut().enumerate() {
            p[0] = 10 + i as u8;
        }
        tx.send_all(&batch);
        let (got, _) = round(&mut tx, &mut rx, 0);
        assert_eq!(got, vec![10, 11, 12]);
    }

    #[test]
    fn every_adapter_delivers_in_order() {
        let ring = evqueue_ring::<64>(Overflow::Reject);
        check::<64>(EvTx::new(&ring), EvClaim::new(&ring));
        let ring = evqueue_ring::<64>(Overflow::Reject);
        check::<64>(EvTx::new(&ring), EvBatch::new(&ring));
        let ring = evqueue_ring::<64>(Overflow::Overwrite);
        let sub = EvSub::new(&ring);
        check::<64>(EvMpTx::new(&ring), sub);
        let ring = evqueue_ring::<64>(Overflow::Overwrite);
        let sub = EvSubBatch::new(&ring);
        check::<64>(EvTx::new(&ring), sub);
        let q = array_queue::<64>();
        check::<64>(AqTx(q.clone()), AqRx(q));
        let (tx, rx) = crossbeam_channel::<64>();
        check::<64>(tx, rx);
        let (tx, subs) = photon_ring::channel::<[u8; 64]>(CAPACITY);
        let rx = PhRx(subs.subscribe());
        check::<64>(PhTx(tx), rx);
        let (tx, subs) = photon_ring::channel::<[u8; 64]>(CAPACITY);
        let rx = PhBatchRx::new(subs.subscribe());
        check::<64>(PhTx(tx), rx);
        let (tx, mut rx) = disruptor::<64>(1);
        check::<64>(tx, rx.pop().unwrap());
        let (tx, mut rx) = tokio_broadcast::<64>(1);
        check::<64>(tx, rx.pop().unwrap());
        let (tx, rx) = ringbuf::<64>();
        check::<64>(tx, rx);
        let (tx, rx) = ringbuf::<64>();
        check::<64>(tx, rx.batch());
        let (tx, rx) = heapless::<64>();
        check::<64>(tx, rx);
    }

    #[test]
    fn lossy_adapters_report_what_they_lost() {
        // Push CAPACITY + 10 events with nobody reading: a subscriber that
        // then reads reports the overwritten ones as lag.
        fn lap<const N: usize>(tx: &mut impl Tx<N>) {
            for _ in 0..CAPACITY + 10 {
                assert!(tx.send(&payload::<N>()));
            }
        }
        let ring = evqueue_ring::<64>(Overflow::Overwrite);
        let mut rx = EvSub::new(&ring);
        let mut tx = EvTx::new(&ring);
        lap::<64>(&mut tx);
        let (got, lagged) = round::<64>(&mut tx, &mut rx, 0);
        assert_eq!((got.len() as u64 + lagged), CAPACITY as u64 + 10);
        assert!(lagged >= 10);

        let ring = evqueue_ring::<64>(Overflow::Overwrite);
        let mut rx = EvSubBatch::new(&ring);
        let mut tx = EvTx::new(&ring);
        lap::<64>(&mut tx);
        let (got, lagged) = round::<64>(&mut tx, &mut rx, 0);
        assert_eq!((got.len() as u64 + lagged), CAPACITY as u64 + 10);
        assert!(lagged >= 10);

        let (mut tx, mut rx) = tokio_broadcast::<64>(1);
        lap::<64>(&mut tx);
        let (got, lagged) = round::<64>(&mut tx, &mut rx[0], 0);
        assert_eq!((got.len(), lagged), (CAPACITY, 10));

        let (tx, subs) = photon_ring::channel::<[u8; 64]>(CAPACITY);
        let mut rx = PhRx(subs.subscribe());
        let mut tx = PhTx(tx);
        lap::<64>(&mut tx);
        let (got, lagged) = round::<64>(&mut tx, &mut rx, 0);
        assert_eq!(got.len() as u64 + lagged, CAPACITY as u64 + 10);
        assert!(lagged >= 10);
    }

    #[test]
    fn lossless_adapters_refuse_when_full() {
        let q = array_queue::<64>();
        let mut tx = AqTx(q);
        for _ in 0..CAPACITY {
            assert!(tx.send(&payload()));
        }
        assert!(!tx.send(&payload()));
        let (mut tx, _rx) = heapless::<64>();
        for _ in 0..CAPACITY - 1 {
            assert!(tx.send(&payload()));
        }
        assert!(!tx.send(&payload()));
        let (mut tx, _rx) = disruptor::<64>(2);
        for _ in 0..CAPACITY {
            assert!(tx.send(&payload()));
        }
        assert!(!tx.send(&payload()));
    }
}
