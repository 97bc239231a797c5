//! `evqueue.SharedQueue` (Linux): the core's `SharedRing`, a ring in a
//! memory-mapped file that processes in any language push into and claim
//! from. No worker threads: the caller claims (`try_claim`, or `claim`,
//! which sleeps on the ring's futex with the GIL released and takes
//! Ctrl-C every [`SIGNAL_CHECK`]); raw payloads (`emit_raw`,
//! `try_claim_raw`, `claim_raw`) share the ring with events, framed as the
//! C API's `evq_shared_push_raw` frames them. `SharedQueue.subscribe` gives a
//! `SharedSubscriber`: a broadcast reader that sees every event and takes
//! none from the worker group.

use crate::args::{self, count_arg, parse_overflow, Props};
use crate::errors::{py_err, EvqueueError, QueueClosed};
use crate::event::Event;
use crate::gil::SIGNAL_CHECK;
use evqueue::blocking::{deadline, time_left};
use evqueue::{
    Claim, MpProducer, Overflow, Payload, RecvError, SharedRing, ShmError, Start, Subscriber,
    EVENT_HEADER_BYTES,
};
use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyTuple};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, TryLockError};

/// What a handle holds while open.
struct Inner {
    ring: Arc<SharedRing>,
    /// Taken at the first emit, so that a process that only claims never
    /// marks the ring as multi-producer.
    producer: OnceLock<MpProducer<Arc<SharedRing>>>,
}

impl Inner {
    fn producer(&self) -> Result<&MpProducer<Arc<SharedRing>>, evqueue::Error> {
        if let Some(p) = self.producer.get() {
            return Ok(p);
        }
        let p = self.ring.mp_producer_owned()?;
        Ok(self.producer.get_or_init(|| p))
    }

    /// Claims the next slot's bytes, passing over lost ones.
    fn try_claim_bytes(&self) -> PyResult<Option<(Claim, Vec<u8>)>> {
        let mut buf = vec![0u8; self.ring.slot_bytes()];
        loop {
            match self.ring.try_claim(&mut buf) {
                Ok(claim) => return Ok(Some((claim, buf))),
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Empty) => return Ok(None),
                Err(RecvError::Closed) => {
                    return Err(QueueClosed::new_err(
                        "the shared ring is closed and its worker group has read everything",
                    ))
                }
                Err(e) => return Err(py_err(e)),
            }
        }
    }

    /// Claims the next event, passing over lost ones.
    fn try_claim(&self) -> PyResult<Option<Event>> {
        match self.try_claim_bytes()? {
            Some((claim, buf)) => decode(&claim, &buf, "claimed").map(Some),
            None => Ok(None),
        }
    }

    /// Claims the next raw payload, passing over lost ones: its sequence
    /// number and bytes.
    fn try_claim_raw(&self, py: Python<'_>) -> PyResult<Option<(u64, Py<PyBytes>)>> {
        let Some((claim, buf)) = self.try_claim_bytes()? else {
            return Ok(None);
        };
        match claim.payload(&buf) {
            Ok(Payload::Raw(raw)) => Ok(Some((raw.seq, PyBytes::new(py, raw.bytes).unbind()))),
            Ok(Payload::Event(view)) => Err(EvqueueError::new_err(format!(
                "event {} ({:?}) is an event, not a raw payload (it was claimed; try_claim reads events)",
                claim.seq, view.name
            ))),
            Err(e) => Err(EvqueueError::new_err(format!(
                "event {} could not be decoded ({e}); it was claimed",
                claim.seq
            ))),
        }
    }

    /// Runs `attempt` until it finds something or `timeout` passes, sleeping
    /// on the ring's futex with the GIL released between attempts (the wait
    /// also recovers tickets of dead producers) and taking Ctrl-C.
    fn claim_with<T>(
        &self,
        py: Python<'_>,
        timeout: Option<&Bound<'_, PyAny>>,
        attempt: impl Fn(&Self) -> PyResult<Option<T>>,
    ) -> PyResult<Option<T>> {
        let deadline = args::timeout(timeout)?.and_then(deadline);
        loop {
            if let Some(found) = attempt(self)? {
                return Ok(Some(found));
            }
            let left = time_left(deadline);
            if left.is_zero() {
                return Ok(None);
            }
            let slice = left.min(SIGNAL_CHECK);
            py.detach(|| self.ring.wait(slice));
            py.check_signals()?;
        }
    }
}

/// The bytes of a raw payload argument: bytes or bytearray.
fn raw_arg(data: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = data.cast::<PyBytes>() {
        Ok(b.as_bytes().to_vec())
    } else if let Ok(b) = data.cast::<PyByteArray>() {
        Ok(b.to_vec())
    } else {
        Err(PyTypeError::new_err(format!(
            "data must be bytes or bytearray, not {}",
            args::type_name(data)
        )))
    }
}

/// The event in `buf` described by `claim`; `EvqueueError` for a raw
/// payload or bytes that are not an event (`what` says what became of it).
fn decode(claim: &Claim, buf: &[u8], what: &str) -> PyResult<Event> {
    match claim.payload(buf) {
        Ok(Payload::Event(view)) => Ok(Event::from(&view)),
        Ok(Payload::Raw(raw)) => Err(EvqueueError::new_err(format!(
            "event {} is a raw payload of {} bytes, not an event (it was {what})",
            raw.seq,
            raw.bytes.len()
        ))),
        Err(e) => Err(EvqueueError::new_err(format!(
            "event {} could not be decoded ({e}); it was {what}",
            claim.seq
        ))),
    }
}

/// The Python exception for a shared-ring error: `OSError` (its subclass
/// for the errno, e.g. `FileExistsError`) when a system call failed,
/// `ValueError` for a capacity or slot size out of range, `EvqueueError`
/// for a file that does not validate.
fn shm_err(e: ShmError) -> PyErr {
    let message = e.to_string();
    match e {
        ShmError::Io { source, path, .. } => match source.raw_os_error() {
            Some(errno) => PyOSError::new_err((errno, message, path)),
            None => PyOSError::new_err(message),
        },
        ShmError::Config(_) => PyValueError::new_err(message),
        _ => EvqueueError::new_err(message),
    }
}

/// A path argument: str, bytes or os.PathLike; not empty, no NUL byte.
fn path_arg(path: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    let path: PathBuf = match path.extract::<PathBuf>() {
        Ok(p) => p,
        Err(_) => match path.extract::<Vec<u8>>() {
            Ok(bytes) if path.is_instance_of::<pyo3::types::PyBytes>() => {
                PathBuf::from(OsString::from(std::ffi::OsStr::from_bytes(&bytes)))
            }
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "path must be str, bytes or os.PathLike, not {}",
                    args::type_name(path)
                )))
            }
        },
    };
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Err(PyValueError::new_err("path is empty"));
    }
    if bytes.contains(&0) {
        return Err(PyValueError::new_err("path contains a NUL byte"));
    }
    Ok(path)
}

/// A queue in shared memory (Linux): a ring in a memory-mapped file (a bare
/// name goes under `/dev/shm`) that several processes, written in Python, C
/// or Rust, emit into and claim from.
///
/// `SharedQueue.create(path, ...)` makes the file (mode 0600; fails if it
/// exists), `SharedQueue.open(path)` attaches to an existing one (validated
/// first: a file that is not a ring raises `EvqueueError`),
/// `SharedQueue.remove(path)` deletes it. `emit` never blocks; `try_claim`
/// and `claim` take events for the worker group that all processes share:
/// each event goes to exactly one claim. `close()` (or the end of a `with`
/// block) releases this process's handle; the ring and its events stay in
/// the file.
#[pyclass(module = "evqueue", frozen)]
pub(crate) struct SharedQueue {
    inner: Mutex<Option<Arc<Inner>>>,
    path: PathBuf,
}

impl SharedQueue {
    fn new(ring: SharedRing) -> Self {
        let path = ring.slots().path().to_owned();
        SharedQueue {
            inner: Mutex::new(Some(Arc::new(Inner {
                ring: Arc::new(ring),
                producer: OnceLock::new(),
            }))),
            path,
        }
    }

    /// The open handle, or `ValueError` after `close()`.
    fn inner(&self) -> PyResult<Arc<Inner>> {
        evqueue::blocking::lock(&self.inner)
            .clone()
            .ok_or_else(|| PyValueError::new_err("the SharedQueue is closed"))
    }
}

#[pymethods]
impl SharedQueue {
    /// Creates the shared ring `path` (a bare name goes under `/dev/shm`)
    /// with mode 0600 and opens it. `capacity`: slots, a power of two.
    /// `slot_size`: bytes per slot, the largest encoded event (a multiple of
    /// 8). `overflow`: `"overwrite"` (the oldest unclaimed event is lost and
    /// counted) or `"reject"` (`emit` raises `QueueFull`). Raises
    /// `FileExistsError` if the file exists, `ValueError` for sizes out of
    /// range, `TypeError` for wrong types; nothing is left behind.
    #[staticmethod]
    #[pyo3(
        signature = (path, capacity = None, slot_size = None, overflow = None),
        text_signature = "(path, capacity=65536, slot_size=256, overflow='overwrite')"
    )]
    fn create(
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        capacity: Option<&Bound<'_, PyAny>>,
        slot_size: Option<&Bound<'_, PyAny>>,
        overflow: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<SharedQueue> {
        let path = path_arg(path)?;
        let capacity = match capacity {
            Some(c) => count_arg(c, "capacity")?,
            None => 65536,
        };
        let slot_bytes = match slot_size {
            Some(s) => count_arg(s, "slot_size")?,
            None => 256,
        };
        let overflow = match overflow {
            Some(o) => parse_overflow(o)?,
            None => Overflow::Overwrite,
        };
        let ring = py
            .detach(|| SharedRing::create(&path, capacity, slot_bytes, overflow))
            .map_err(shm_err)?;
        Ok(SharedQueue::new(ring))
    }

    /// Opens the existing shared ring `path`. Its header, length, state and
    /// slot stamps are validated first: a file that is not a ring (or is
    /// truncated, corrupted, of another layout version, or owned by another
    /// user) raises `EvqueueError` saying why; a missing file
    /// `FileNotFoundError`.
    #[staticmethod]
    fn open(py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<SharedQueue> {
        let path = path_arg(path)?;
        let ring = py.detach(|| SharedRing::open(&path)).map_err(shm_err)?;
        Ok(SharedQueue::new(ring))
    }

    /// Deletes the file `path`. Processes that have the ring open keep
    /// using it until they close it. Raises `FileNotFoundError` if there is
    /// no such file.
    #[staticmethod]
    fn remove(path: &Bound<'_, PyAny>) -> PyResult<()> {
        let path = path_arg(path)?;
        SharedRing::remove(&path).map_err(shm_err)
    }

    /// Emits an event (never blocks) and wakes the processes waiting in
    /// `claim`; returns its sequence number. `props`: a dict of str to
    /// str or None; `timestamp`: ns since the Unix epoch, 0 or None for now.
    /// Raises `InvalidEvent`, `EventTooLarge`, `QueueFull` (overflow
    /// "reject"), `TypeError`; nothing is emitted then.
    #[pyo3(
        signature = (name, props = None, timestamp = None, external = None),
        text_signature = "($self, name, props=None, timestamp=None, external=False)"
    )]
    fn emit(
        &self,
        name: &Bound<'_, PyAny>,
        props: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
        external: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let inner = self.inner()?;
        let name = args::str_arg(name, "the event name")?.to_str()?;
        let timestamp = args::timestamp_arg(timestamp)?;
        let external = args::external_arg(external, false)?;
        let props = Props::from_arg(props)?;
        let pairs = props.pairs()?;
        let event = evqueue::Event::new(name)
            .properties(&pairs)
            .timestamp(timestamp)
            .external(external);
        let seq = inner
            .producer()
            .and_then(|p| p.push_event(&event))
            .map_err(py_err)?;
        inner.ring.wake();
        Ok(seq)
    }

    /// The next event for the worker group if one is there, else None
    /// (never blocks). Events lost before it are passed over (counted in
    /// `stats().overwritten`). Raises `QueueClosed` once the ring is closed
    /// and drained, `EvqueueError` for a slot that does not hold an event
    /// (it is consumed).
    fn try_claim(&self) -> PyResult<Option<Event>> {
        self.inner()?.try_claim()
    }

    /// `try_claim`, waiting up to `timeout` seconds (None: no limit) for an
    /// event; None on timeout. Sleeps on the ring's futex with the GIL
    /// released (a push from any process wakes it); Ctrl-C interrupts it.
    #[pyo3(signature = (timeout = None))]
    fn claim(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Event>> {
        self.inner()?.claim_with(py, timeout, Inner::try_claim)
    }

    /// Emits a raw payload (never blocks): the bytes of `data` (bytes or
    /// bytearray, e.g. from `struct.pack`) as they are, at most
    /// `slot_size - 12`, framed as the C `evq_shared_push_raw` frames them
    /// (stamped now). Wakes the processes waiting in `claim`; returns its
    /// sequence number. Raises `TypeError`, `EventTooLarge`, `QueueFull`
    /// (overflow "reject"), `ValueError` after `close()`; nothing is
    /// emitted then.
    fn emit_raw(&self, data: &Bound<'_, PyAny>) -> PyResult<u64> {
        let inner = self.inner()?;
        let data = raw_arg(data)?;
        // Checked before the producer is taken: a refused emit leaves this
        // process's handle as it was.
        let max = inner.ring.slot_bytes().saturating_sub(EVENT_HEADER_BYTES);
        if data.len() > max {
            return Err(py_err(evqueue::Error::TooLarge {
                size: data.len(),
                max,
            }));
        }
        let seq = inner
            .producer()
            .and_then(|p| p.push_framed_raw(&data, 0))
            .map_err(py_err)?;
        inner.ring.wake();
        Ok(seq)
    }

    /// The next raw payload for the worker group as `(seq, bytes)` if one is
    /// there, else None (never blocks). Lost ones are passed over, as in
    /// `try_claim`. Raises `EvqueueError` when the next one is an event (it
    /// is consumed: read a ring that carries both with `try_claim`, which
    /// raises for a raw payload), `QueueClosed` once the ring is closed and
    /// drained.
    fn try_claim_raw(&self, py: Python<'_>) -> PyResult<Option<(u64, Py<PyBytes>)>> {
        self.inner()?.try_claim_raw(py)
    }

    /// `try_claim_raw`, waiting up to `timeout` seconds (None: no limit), as
    /// `claim` waits; None on timeout.
    #[pyo3(signature = (timeout = None))]
    fn claim_raw(
        &self,
        py: Python<'_>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<(u64, Py<PyBytes>)>> {
        self.inner()?
            .claim_with(py, timeout, |inner| inner.try_claim_raw(py))
    }

    /// A broadcast subscriber: it sees every event emitted from now on (or,
    /// with `from_oldest=True`, every one the ring still holds), from any
    /// process, without taking any from the worker group. It keeps its own
    /// share of the mapping, so it outlives `close()`.
    #[pyo3(signature = (from_oldest = false))]
    fn subscribe(&self, from_oldest: bool) -> PyResult<SharedSubscriber> {
        let inner = self.inner()?;
        let start = if from_oldest {
            Start::Oldest
        } else {
            Start::Now
        };
        let ring = inner.ring.clone();
        Ok(SharedSubscriber {
            state: Mutex::new(SubState {
                sub: ring.subscribe_owned(start),
                buf: vec![0u8; ring.slot_bytes()],
                ring,
            }),
            lagged: AtomicU64::new(0),
        })
    }

    /// Wakes every process waiting in `claim` on this ring (`emit` already
    /// does).
    fn wake(&self) -> PyResult<()> {
        self.inner()?.ring.wake();
        Ok(())
    }

    /// A snapshot of the ring's counters, common to every process on it.
    fn stats(&self) -> PyResult<SharedStats> {
        let inner = self.inner()?;
        Ok(SharedStats {
            ring: inner.ring.stats(),
            capacity: inner.ring.capacity(),
        })
    }

    /// Releases this process's handle (the file and its events stay; see
    /// `remove`). Further calls raise ValueError; closing again does
    /// nothing.
    fn close(&self) {
        evqueue::blocking::lock(&self.inner).take();
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        evqueue::blocking::lock(&self.inner).is_none()
    }

    /// The file's path (a bare name given to `create`/`open` resolved under
    /// `/dev/shm`).
    #[getter]
    fn path(&self) -> String {
        self.path.display().to_string()
    }

    /// Slots in the ring.
    #[getter]
    fn capacity(&self) -> PyResult<usize> {
        Ok(self.inner()?.ring.capacity())
    }

    /// Bytes per slot.
    #[getter]
    fn slot_size(&self) -> PyResult<usize> {
        Ok(self.inner()?.ring.slot_bytes())
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().inner()?;
        Ok(slf)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        match evqueue::blocking::lock(&self.inner).as_ref() {
            Some(inner) => format!(
                "SharedQueue(path={:?}, capacity={}, slot_size={})",
                self.path.display().to_string(),
                inner.ring.capacity(),
                inner.ring.slot_bytes()
            ),
            None => format!(
                "SharedQueue(path={:?}, closed)",
                self.path.display().to_string()
            ),
        }
    }
}

/// A snapshot of a shared ring's counters, from `SharedQueue.stats()`:
/// those of every process on the ring. Once it is quiet,
/// `pushed == delivered + lost + depth`, where
/// `lost == overwritten + rejected`.
#[pyclass(module = "evqueue", frozen)]
pub(crate) struct SharedStats {
    ring: evqueue::Stats,
    capacity: usize,
}

#[pymethods]
impl SharedStats {
    /// Events pushed while the ring was open (accepted or rejected).
    #[getter]
    fn pushed(&self) -> u64 {
        self.ring.pushed
    }
    /// Events claimed by the worker group (in any process).
    #[getter]
    fn delivered(&self) -> u64 {
        self.ring.delivered
    }
    /// Events lost because newer ones overwrote them before anyone claimed them.
    #[getter]
    fn overwritten(&self) -> u64 {
        self.ring.overwritten
    }
    /// Emits refused with QueueFull (overflow="reject").
    #[getter]
    fn rejected(&self) -> u64 {
        self.ring.rejected
    }
    /// Events lost: `overwritten + rejected`.
    #[getter]
    fn lost(&self) -> u64 {
        self.ring.lost()
    }
    /// Events waiting to be claimed.
    #[getter]
    fn depth(&self) -> u64 {
        self.ring.depth
    }
    /// Highest depth sampled.
    #[getter]
    fn high_water(&self) -> u64 {
        self.ring.high_water
    }
    /// Slots in the ring.
    #[getter]
    fn capacity(&self) -> usize {
        self.capacity
    }
    fn __repr__(&self) -> String {
        let s = &self.ring;
        format!(
            "SharedStats(pushed={}, delivered={}, overwritten={}, rejected={}, lost={}, depth={}, high_water={})",
            s.pushed, s.delivered, s.overwritten, s.rejected, s.lost(), s.depth, s.high_water
        )
    }
}

/// A subscriber's cursor and the buffer it reads into, behind a mutex that
/// `recv` takes only with the GIL released and only to read, not while it
/// sleeps (and `try_recv` only with `try_lock`).
struct SubState {
    ring: Arc<SharedRing>,
    sub: Subscriber<Arc<SharedRing>>,
    buf: Vec<u8>,
}

/// What one receive attempt found.
enum Got {
    Event(Event),
    Nothing,
    Closed,
    Failed(PyErr),
}

impl SubState {
    /// The next event, passing over lost ones (counted in `lagged`).
    fn try_recv(&mut self, lagged: &AtomicU64) -> Got {
        loop {
            let got = self.sub.try_recv(&mut self.buf);
            lagged.store(self.sub.missed(), Relaxed);
            return match got {
                Ok(claim) => match decode(&claim, &self.buf, "passed over") {
                    Ok(event) => Got::Event(event),
                    Err(e) => Got::Failed(e),
                },
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Empty) => Got::Nothing,
                Err(RecvError::Closed) => Got::Closed,
                Err(e) => Got::Failed(py_err(e)),
            };
        }
    }
}

fn sub_closed() -> PyErr {
    QueueClosed::new_err("the shared ring is closed and this subscriber has read everything")
}

/// A broadcast subscriber on a shared ring, from `SharedQueue.subscribe()`:
/// it sees every event emitted by any process, independently of the worker
/// group and of other subscribers. No producer waits for it: when it falls
/// a whole ring behind, the events it missed are counted in `lagged` and it
/// goes on a little past the oldest one kept.
///
/// `try_recv()` returns an `Event` or None; `recv(timeout)` sleeps on the
/// ring's futex with the GIL released (Ctrl-C interrupts it); `for event in
/// sub` runs until the ring is closed and everything was read.
#[pyclass(module = "evqueue", frozen)]
pub(crate) struct SharedSubscriber {
    state: Mutex<SubState>,
    lagged: AtomicU64,
}

impl SharedSubscriber {
    fn recv_inner(
        &self,
        py: Python<'_>,
        timeout: Option<std::time::Duration>,
    ) -> PyResult<Option<Event>> {
        // No timeout, or one too long to add: no deadline.
        let deadline = timeout.and_then(deadline);
        loop {
            let slice = time_left(deadline).min(SIGNAL_CHECK);
            let got = py.detach(|| {
                // The lock is held for reads only, never across the sleep:
                // a `try_recv` meanwhile is not refused, and a fork while
                // this thread sleeps leaves the child an unlocked cursor.
                let (ring, seq) = {
                    let mut state = evqueue::blocking::lock(&self.state);
                    match state.try_recv(&self.lagged) {
                        Got::Nothing => (state.ring.clone(), state.sub.next_seq()),
                        got => return got,
                    }
                };
                ring.wait_for(seq, slice);
                evqueue::blocking::lock(&self.state).try_recv(&self.lagged)
            });
            match got {
                Got::Event(event) => return Ok(Some(event)),
                Got::Closed => return Err(sub_closed()),
                Got::Failed(e) => return Err(e),
                Got::Nothing => {}
            }
            if time_left(deadline).is_zero() {
                return Ok(None);
            }
            py.check_signals()?;
        }
    }
}

#[pymethods]
impl SharedSubscriber {
    /// The next event if one is there, else None (never blocks: also None
    /// while another thread is reading from this subscriber at that very
    /// moment). Raises
    /// `QueueClosed` once the ring is closed and everything was read,
    /// `EvqueueError` for a slot that does not hold an event (it is passed
    /// over).
    fn try_recv(&self) -> PyResult<Option<Event>> {
        let mut state = match self.state.try_lock() {
            Ok(state) => state,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(None),
        };
        match state.try_recv(&self.lagged) {
            Got::Event(event) => Ok(Some(event)),
            Got::Nothing => Ok(None),
            Got::Closed => Err(sub_closed()),
            Got::Failed(e) => Err(e),
        }
    }

    /// Waits for the next event, at most `timeout` seconds (None: no
    /// limit), sleeping on the ring's futex with the GIL released (a push
    /// from any process wakes it); returns None on timeout. Ctrl-C
    /// interrupts it. Raises as `try_recv`.
    #[pyo3(signature = (timeout = None))]
    fn recv(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Event>> {
        let timeout = args::timeout(timeout)?;
        self.recv_inner(py, timeout)
    }

    /// Events this subscriber missed so far because the ring overwrote
    /// them before it read them.
    #[getter]
    fn lagged(&self) -> u64 {
        self.lagged.load(Relaxed)
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Event>> {
        match self.recv_inner(py, None) {
            Err(e) if e.is_instance_of::<QueueClosed>(py) => Ok(None),
            other => other,
        }
    }

    fn __repr__(&self) -> String {
        format!("SharedSubscriber(lagged={})", self.lagged.load(Relaxed))
    }
}
