//! The handler registry and how one event is dispatched to it.
//!
//! The registry is copy-on-write behind an [`ArcSwap`]: every worker reads it
//! for every event, and registrations are rare. `ArcSwap::load` is lock-free
//! and writes no shared cache line in the common case (it borrows through a
//! per-thread debt slot), so eight workers reading it never contend with one
//! another, and a writer (`on`, `remove_handlers`) never blocks a reader: it
//! builds a new map and swaps the pointer. A `RwLock` would make every read
//! write the lock's shared counter, and a writer would stall all workers.

use crate::{EventView, RawView};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Name of the built-in session start event.
pub const SESSION_START: &str = "session_start";
/// Name of the built-in session end event (it carries a `reason` property).
pub const SESSION_END: &str = "session_end";
/// The property of a [`SESSION_END`] event that holds its reason.
pub const SESSION_END_REASON: &str = "reason";

/// The error a handler returns: any error type, boxed (`?` converts into it).
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a handler returns.
pub type HandlerResult = Result<(), HandlerError>;

/// How a handler failed, as passed to the error hook.
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure<'a> {
    /// The handler returned this error.
    Error(&'a (dyn std::error::Error + Send + Sync + 'static)),
    /// The handler panicked with this message (`"<non-string panic>"` when
    /// the payload was not a string).
    Panic(&'a str),
}

pub(crate) type Handler = Arc<dyn Fn(&EventView<'_>) -> HandlerResult + Send + Sync + 'static>;
pub(crate) type RawHandler = Arc<dyn Fn(&RawView<'_>) -> HandlerResult + Send + Sync + 'static>;
pub(crate) type ErrorHook = Arc<dyn Fn(&EventView<'_>, &Failure<'_>) + Send + Sync + 'static>;

/// One immutable version of the registry.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    by_name: HashMap<Box<str>, Vec<Handler>>,
    catch_all: Vec<Handler>,
    raw: Vec<RawHandler>,
    error_hook: Option<ErrorHook>,
}

impl Registry {
    pub(crate) fn with_handler(&self, name: &str, handler: Handler) -> Registry {
        let mut next = self.clone();
        next.by_name.entry(name.into()).or_default().push(handler);
        next
    }

    pub(crate) fn with_catch_all(&self, handler: Handler) -> Registry {
        let mut next = self.clone();
        next.catch_all.push(handler);
        next
    }

    pub(crate) fn without_name(&self, name: &str) -> (Registry, usize) {
        let mut next = self.clone();
        let removed = next.by_name.remove(name).map_or(0, |v| v.len());
        (next, removed)
    }

    pub(crate) fn without_catch_all(&self) -> (Registry, usize) {
        let mut next = self.clone();
        let removed = std::mem::take(&mut next.catch_all).len();
        (next, removed)
    }

    pub(crate) fn with_raw(&self, handler: RawHandler) -> Registry {
        let mut next = self.clone();
        next.raw.push(handler);
        next
    }

    pub(crate) fn without_raw(&self) -> (Registry, usize) {
        let mut next = self.clone();
        let removed = std::mem::take(&mut next.raw).len();
        (next, removed)
    }

    pub(crate) fn with_error_hook(&self, hook: Option<ErrorHook>) -> Registry {
        let mut next = self.clone();
        next.error_hook = hook;
        next
    }

    /// Number of handlers registered for `name` (not counting catch-alls).
    pub(crate) fn count(&self, name: &str) -> usize {
        self.by_name.get(name).map_or(0, Vec::len)
    }
}

/// Swaps in `f(current)`, retrying if another writer swapped first; returns
/// what `f` computed alongside.
pub(crate) fn update<T: Copy>(
    reg: &ArcSwap<Registry>,
    f: impl Fn(&Registry) -> (Registry, T),
) -> T {
    let mut out = None;
    reg.rcu(|current| {
        let (next, t) = f(current);
        out = Some(t);
        next
    });
    out.expect("rcu runs the closure at least once")
}

/// What dispatching one event produced, for the counters.
pub(crate) struct Outcome {
    pub(crate) errors: u64,
    pub(crate) panics: u64,
}

/// Runs every handler for `event`: those registered for its name (in
/// registration order), then the catch-alls. Errors and panics go to the
/// error hook; a panicking hook is caught and ignored.
pub(crate) fn dispatch(registry: &Registry, event: &EventView<'_>) -> Outcome {
    let named = registry
        .by_name
        .get(event.name)
        .map_or(&[][..], Vec::as_slice);
    run_all(
        registry,
        named.iter().chain(&registry.catch_all),
        event,
        |h| h(event),
    )
}

/// Name under which raw payload failures are counted and reported.
pub(crate) const RAW_NAME: &str = "<raw>";

/// Runs every raw handler for `raw`. Failures go to the error hook with an
/// event named [`RAW_NAME`] carrying the raw payload's seq and timestamp.
pub(crate) fn dispatch_raw(registry: &Registry, raw: &RawView<'_>) -> Outcome {
    let stand_in = EventView::stand_in(RAW_NAME, raw.seq, raw.timestamp);
    run_all(registry, registry.raw.iter(), &stand_in, |h| h(raw))
}

/// Calls each handler, catching panics; counts and reports failures.
fn run_all<'h, H: 'h>(
    registry: &Registry,
    handlers: impl Iterator<Item = &'h H>,
    reported_as: &EventView<'_>,
    call: impl Fn(&H) -> HandlerResult,
) -> Outcome {
    let mut outcome = Outcome {
        errors: 0,
        panics: 0,
    };
    for handler in handlers {
        match catch_unwind(AssertUnwindSafe(|| call(handler))) {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                outcome.errors += 1;
                report(registry, reported_as, &Failure::Error(&*error));
            }
            Err(payload) => {
                outcome.panics += 1;
                let message = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("<non-string panic>");
                report(registry, reported_as, &Failure::Panic(message));
            }
        }
    }
    outcome
}

fn report(registry: &Registry, event: &EventView<'_>, failure: &Failure<'_>) {
    if let Some(hook) = &registry.error_hook {
        // A panicking hook must not kill the worker either.
        let _ = catch_unwind(AssertUnwindSafe(|| hook(event, failure)));
    }
}
