//! [`QueueStats`] and its Prometheus rendering.

use crate::Stats;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Handler failures for one event name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NameFailures {
    /// Errors returned.
    pub errors: u64,
    /// Panics caught.
    pub panics: u64,
}

/// One subscriber's position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubscriberStats {
    /// The subscriber's id ([`EventSubscriber::id`](super::EventSubscriber::id)).
    pub id: u64,
    /// Events pushed and not yet read (beyond the capacity it has been lapped).
    pub lag: u64,
    /// Events it lost to lapping so far.
    pub missed: u64,
}

/// A snapshot of a queue's counters (each read atomically, not all at once).
///
/// The identity they keep, exact once the queue is quiet:
///
/// ```text
/// ring.pushed = handled + popped + lost() + ring.depth (+ events being handled)
/// lost()      = ring.overwritten + ring.rejected
/// ```
///
/// `ring.pushed` counts every push that reached the open queue, rejected
/// ones included; `handled` and `popped` are the two ways an event leaves
/// (`ring.delivered = handled + popped` once no handler runs).
///
/// ```
/// use evqueue::{Event, EventQueue, Overflow};
/// let queue = EventQueue::builder().capacity(2).workers(1).overflow(Overflow::Reject).build_paused()?;
/// for _ in 0..3 { let _ = queue.emit(&Event::new("tick")); } // the third is rejected
/// queue.try_pop()?;
/// let s = queue.stats();
/// assert_eq!((s.ring.pushed, s.popped, s.lost(), s.ring.depth), (3, 1, 1, 1));
/// assert_eq!(s.ring.pushed, s.handled + s.popped + s.lost() + s.ring.depth);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// The ring's counters: pushed, delivered, overwritten, rejected, depth,
    /// high-water mark.
    pub ring: Stats,
    /// Events whose handlers have all returned (including failed ones).
    pub handled: u64,
    /// Events taken in pull mode ([`EventQueue::try_pop`](super::EventQueue::try_pop)).
    pub popped: u64,
    /// Handler errors, all names together.
    pub handler_errors: u64,
    /// Handler panics caught, all names together.
    pub panics: u64,
    /// Errors and panics per event name (names that never failed are
    /// absent). At most [`MAX_FAILURE_NAMES`](crate::MAX_FAILURE_NAMES)
    /// names, since names may come from clients: failures of names beyond
    /// that are counted under [`OTHER_FAILURE_NAMES`](crate::OTHER_FAILURE_NAMES).
    pub failures_by_name: BTreeMap<String, NameFailures>,
    /// Live subscribers, by id.
    pub subscribers: Vec<SubscriberStats>,
    /// Slots in the ring.
    pub capacity: usize,
    /// Worker threads.
    pub workers: usize,
    /// Workers inside a claim or a handler at the time of the snapshot.
    pub busy_workers: usize,
}

impl QueueStats {
    /// Events lost: overwritten before a worker claimed them, or rejected
    /// (`ring.overwritten + ring.rejected`; see [`Stats::lost`]).
    pub const fn lost(&self) -> u64 {
        self.ring.lost()
    }

    /// Renders the snapshot in the Prometheus text exposition format
    /// (version 0.0.4): `# HELP` and `# TYPE` lines, metric names prefixed
    /// `evqueue_`, counters ending in `_total`.
    ///
    /// ```
    /// let text = evqueue::QueueStats::default().to_prometheus();
    /// assert!(text.contains("# TYPE evqueue_events_pushed_total counter\nevqueue_events_pushed_total 0\n"));
    /// ```
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(2048);
        let r = &self.ring;
        let counters: [(&str, &str, u64); 6] = [
            (
                "events_pushed_total",
                "Events pushed while the queue was open, accepted or rejected.",
                r.pushed,
            ),
            (
                "events_delivered_total",
                "Events claimed by the worker group.",
                r.delivered,
            ),
            (
                "events_handled_total",
                "Events whose handlers have all returned.",
                self.handled,
            ),
            (
                "events_popped_total",
                "Events taken in pull mode.",
                self.popped,
            ),
            (
                "events_overwritten_total",
                "Events lost because they were overwritten before a worker claimed them.",
                r.overwritten,
            ),
            (
                "events_rejected_total",
                "Pushes refused because the queue was full (Reject policy).",
                r.rejected,
            ),
        ];
        for (name, help, value) in counters {
            metric(&mut out, name, help, "counter");
            let _ = writeln!(out, "evqueue_{name} {value}");
        }
        let gauges: [(&str, &str, u64); 5] = [
            (
                "queue_depth",
                "Events in the ring not yet claimed by a worker.",
                r.depth,
            ),
            ("queue_high_water", "Highest depth sampled.", r.high_water),
            ("queue_capacity", "Slots in the ring.", self.capacity as u64),
            ("workers", "Worker threads.", self.workers as u64),
            (
                "workers_busy",
                "Workers claiming or handling an event.",
                self.busy_workers as u64,
            ),
        ];
        for (name, help, value) in gauges {
            metric(&mut out, name, help, "gauge");
            let _ = writeln!(out, "evqueue_{name} {value}");
        }
        metric(
            &mut out,
            "handler_errors_total",
            "Errors returned by handlers, by event name.",
            "counter",
        );
        for (name, f) in &self.failures_by_name {
            if f.errors > 0 {
                let _ = writeln!(
                    out,
                    "evqueue_handler_errors_total{{event=\"{}\"}} {}",
                    escape(name),
                    f.errors
                );
            }
        }
        metric(
            &mut out,
            "handler_panics_total",
            "Handler panics caught, by event name.",
            "counter",
        );
        for (name, f) in &self.failures_by_name {
            if f.panics > 0 {
                let _ = writeln!(
                    out,
                    "evqueue_handler_panics_total{{event=\"{}\"}} {}",
                    escape(name),
                    f.panics
                );
            }
        }
        metric(
            &mut out,
            "subscriber_lag",
            "Events pushed and not yet read, by subscriber.",
            "gauge",
        );
        for s in &self.subscribers {
            let _ = writeln!(
                out,
                "evqueue_subscriber_lag{{subscriber=\"{}\"}} {}",
                s.id, s.lag
            );
        }
        metric(
            &mut out,
            "subscriber_missed_total",
            "Events a subscriber lost to lapping.",
            "counter",
        );
        for s in &self.subscribers {
            let _ = writeln!(
                out,
                "evqueue_subscriber_missed_total{{subscriber=\"{}\"}} {}",
                s.id, s.missed
            );
        }
        out
    }
}

pub(super) fn metric(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP evqueue_{name} {help}");
    let _ = writeln!(out, "# TYPE evqueue_{name} {kind}");
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}
