//! [`Emitter`]: the handle producers and handlers emit through.

use super::lanes::{Lanes, SESSION_ID};
use super::park::Wake;
use super::{SESSION_END, SESSION_END_REASON, SESSION_START};
use crate::{Error, Event, HeapRing, MpProducer};
use std::sync::Arc;

/// A cloneable, thread-safe handle that emits into a queue. It keeps the ring
/// alive but not the workers or the handlers, so a handler may capture one to
/// emit follow-up events without creating a reference cycle.
///
/// ```
/// use evqueue::{Event, EventQueue};
/// use std::time::Duration;
/// let queue = EventQueue::builder().capacity(64).workers(1).build()?;
/// let emitter = queue.emitter();
/// // A handler that emits: emit never blocks, so this cannot deadlock.
/// queue.on("match_end", move |_| { emitter.emit(&Event::new("leaderboard_update"))?; Ok(()) })?;
/// queue.emit(&Event::new("match_end"))?;
/// queue.flush(Duration::from_secs(5))?; // match_end handled...
/// queue.flush(Duration::from_secs(5))?; // ...and the event it emitted
/// assert_eq!(queue.stats().handled, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Emitter {
    pub(super) producer: MpProducer<Arc<HeapRing>>,
    pub(super) lanes: Arc<Lanes>,
    pub(super) wake: Arc<Wake>,
}

/// The key a session event carries: its [`SESSION_ID`] property, if it is a
/// `session_start` or `session_end` that has one.
#[inline]
fn session_key<'e>(event: &Event<'e>) -> Option<&'e str> {
    let name = event.name;
    // A length test first: most events pay one compare.
    if (name.len() == SESSION_START.len() && name == SESSION_START)
        || (name.len() == SESSION_END.len() && name == SESSION_END)
    {
        event
            .properties
            .iter()
            .find(|&&(key, _)| key == SESSION_ID)
            .map(|&(_, value)| value)
    } else {
        None
    }
}

impl Emitter {
    /// Pushes `bytes`, already an encoded event or a framed raw payload
    /// (`payload` is their decoding, which the caller checked), as they
    /// are: no re-encoding, so name, properties, timestamp and the
    /// external flag stay as they were. Routed as [`emit`](Self::emit)
    /// routes: a session event with a [`SESSION_ID`] goes to its lane,
    /// everything else (raw payloads too) to the main ring. Wakes a worker.
    /// Errors as [`emit`](Self::emit): [`Error::TooLarge`] for bytes longer
    /// than a slot, [`Error::Closed`], [`Error::Full`].
    #[cfg(all(feature = "shm", target_os = "linux", not(evqueue_loom)))]
    pub(crate) fn emit_encoded(
        &self,
        payload: &crate::Payload<'_>,
        bytes: &[u8],
    ) -> Result<u64, Error> {
        let session = match payload {
            crate::Payload::Event(e) if e.name == SESSION_START || e.name == SESSION_END => {
                e.properties().get(SESSION_ID)
            }
            _ => None,
        };
        let seq = match session {
            Some(session) => {
                let lane = self.lanes.index_unbounded(session.as_bytes());
                self.lanes.push_encoded(lane, bytes)?
            }
            None => self.producer.push(bytes)?,
        };
        self.wake.pushed();
        Ok(seq)
    }

    /// Encodes and pushes `event`, wakes a parked worker if one sleeps, and
    /// returns the event's sequence number. Never blocks. An event with
    /// timestamp 0 (as [`Event::new`] makes it) is stamped now
    /// ([`now_nanos`](crate::now_nanos)).
    ///
    /// Fails, changing nothing, with the event errors of [`Event`]
    /// ([`Error::EmptyName`], [`Error::TooLarge`], ...), [`Error::Closed`]
    /// after shutdown, or [`Error::Full`] under [`Overflow::Reject`](crate::Overflow::Reject).
    ///
    /// A `session_start` or `session_end` with a [`SESSION_ID`] property is
    /// emitted keyed by its value, as [`emit_keyed`](Self::emit_keyed) would
    /// (a value of any length: the key length bound does not apply).
    #[inline]
    pub fn emit(&self, event: &Event<'_>) -> Result<u64, Error> {
        if let Some(session) = session_key(event) {
            // Any length: a property value that was a valid session id
            // before keys existed must not start failing now.
            let lane = self.lanes.index_unbounded(session.as_bytes());
            let seq = self.lanes.push_event(lane, event)?;
            self.wake.pushed();
            return Ok(seq);
        }
        let seq = self.producer.push_event(event)?;
        self.wake.pushed();
        Ok(seq)
    }

    /// Emits `event` with an ordering key: events with equal keys are
    /// handled in the order they were accepted (for one emitting thread, the
    /// order of its calls) and never by two handlers at once. Events of
    /// different keys, and unkeyed ones, run in parallel. Returns the
    /// event's sequence number *within its lane*.
    ///
    /// The key is any bytes (a session, player or match id), at most
    /// [`MAX_ORDERING_KEY_LEN`](crate::lane::MAX_ORDERING_KEY_LEN) long
    /// (else [`Error::OrderingKeyTooLong`], nothing emitted); it picks one of
    /// the queue's lanes ([`EventQueueBuilder::lanes`](super::EventQueueBuilder::lanes)) by a fixed hash, and
    /// keys that share a lane wait for each other. Keyed events are not seen
    /// by [`subscribe`](super::EventQueue::subscribe)rs. Other errors as
    /// [`emit`](Self::emit).
    ///
    /// ```
    /// use evqueue::{Event, EventQueue};
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// let queue = EventQueue::builder().capacity(64).workers(4).build()?;
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let s = seen.clone();
    /// queue.on("purchase", move |e| {
    ///     s.lock().unwrap().push(e.properties().get("n").unwrap().to_owned());
    ///     Ok(())
    /// })?;
    /// for n in ["1", "2", "3"] {
    ///     queue.emit_keyed(&Event::new("purchase").properties(&[("n", n)]), "player-7")?;
    /// }
    /// queue.flush(Duration::from_secs(5))?;
    /// assert_eq!(*seen.lock().unwrap(), ["1", "2", "3"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn emit_keyed(&self, event: &Event<'_>, key: impl AsRef<[u8]>) -> Result<u64, Error> {
        let lane = self.lanes.index(key.as_ref())?;
        let seq = self.lanes.push_event(lane, event)?;
        self.wake.pushed();
        Ok(seq)
    }

    /// [`emit_raw`](Self::emit_raw) with an ordering key; see
    /// [`emit_keyed`](Self::emit_keyed).
    pub fn emit_raw_keyed(
        &self,
        payload: &[u8],
        timestamp: u64,
        key: impl AsRef<[u8]>,
    ) -> Result<u64, Error> {
        let lane = self.lanes.index(key.as_ref())?;
        let seq = self.lanes.push_framed_raw(lane, payload, timestamp)?;
        self.wake.pushed();
        Ok(seq)
    }

    /// Pushes a raw payload (a user's own record, at most `slot_bytes -`
    /// [`EVENT_HEADER_BYTES`](crate::EVENT_HEADER_BYTES) bytes) framed so it
    /// shares the queue with events: workers pass it to the
    /// [`on_raw`](super::EventQueue::on_raw) handlers. Timestamp 0 means now. Errors
    /// as [`emit`](Self::emit).
    pub fn emit_raw(&self, payload: &[u8], timestamp: u64) -> Result<u64, Error> {
        let seq = self.producer.push_framed_raw(payload, timestamp)?;
        self.wake.pushed();
        Ok(seq)
    }

    /// Parses a client's JSON event body (see [`crate::json`]) and emits
    /// it, marked `external` as asked. Nothing is pushed on any error.
    ///
    /// ```
    /// use evqueue::{EventQueue, Start};
    /// let queue = EventQueue::builder().capacity(64).workers(1).build_paused()?;
    /// queue.emit_json(br#"{"name": "level_up", "properties": {"level": "7"}}"#, true)?;
    /// let event = queue.try_pop()?;
    /// assert_eq!((event.name.as_str(), event.property("level"), event.external), ("level_up", Some("7"), true));
    /// assert!(queue.emit_json(b"{\"name\": 7}", true).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "json")]
    pub fn emit_json(&self, body: &[u8], external: bool) -> Result<u64, crate::json::JsonError> {
        Ok(crate::json::with_parsed_event(body, external, |e| {
            self.emit(e)
        })??)
    }

    /// [`emit_json`](Self::emit_json) with an ordering key chosen by the
    /// server, not the client: key a client's events by the session (or
    /// player) they arrived on, so they are handled in arrival order and one
    /// at a time. See [`emit_keyed`](Self::emit_keyed).
    ///
    /// ```
    /// use evqueue::EventQueue;
    /// let queue = EventQueue::builder().capacity(64).workers(1).build_paused()?;
    /// queue.emit_json_keyed(br#"{"name": "level_up"}"#, true, "session-9")?;
    /// assert_eq!(queue.try_pop()?.name, "level_up");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "json")]
    pub fn emit_json_keyed(
        &self,
        body: &[u8],
        external: bool,
        key: impl AsRef<[u8]>,
    ) -> Result<u64, crate::json::JsonError> {
        let key = key.as_ref();
        // Check the key before parsing: nothing happens on any error.
        self.lanes.index(key)?;
        Ok(crate::json::with_parsed_event(body, external, |e| {
            self.emit_keyed(e, key)
        })??)
    }

    /// Emits `session_start` with these properties, keyed by the value of
    /// its [`SESSION_ID`] property if it has one (unkeyed otherwise).
    pub fn emit_session_start(&self, properties: &[(&str, &str)]) -> Result<u64, Error> {
        self.emit(&Event::new(SESSION_START).properties(properties))
    }

    /// Emits `session_end` with a `reason` property followed by these
    /// properties, keyed by its [`SESSION_ID`] property if it has one
    /// (unkeyed otherwise). A `reason` among `properties` is refused with
    /// [`Error::ReservedKey`] (handlers would see two), and nothing is
    /// emitted.
    pub fn emit_session_end(
        &self,
        reason: &str,
        properties: &[(&str, &str)],
    ) -> Result<u64, Error> {
        if properties.iter().any(|&(key, _)| key == SESSION_END_REASON) {
            return Err(Error::ReservedKey {
                key: SESSION_END_REASON,
            });
        }
        let mut all = Vec::with_capacity(properties.len() + 1);
        all.push((SESSION_END_REASON, reason));
        all.extend_from_slice(properties);
        self.emit(&Event::new(SESSION_END).properties(&all))
    }
}
