//! `evqueue`: create, inspect, tail, forward and remove the shared-memory
//! rings of the evqueue crate (feature `shm`, Linux).
//!
//! ```text
//! evqueue create  NAME [--capacity N] [--slot-bytes B] [--reject]
//! evqueue stats   NAME                     Prometheus text
//! evqueue tail    NAME [--from now|oldest] [--count N] [--idle-exit MS]
//! evqueue forward NAME --redis URL --stream STREAM [--batch N] [--maxlen N]
//!                      [--count N] [--idle-exit MS] [--close-timeout MS]
//! evqueue push    NAME EVENT [KEY=VALUE...]
//! evqueue remove  NAME
//! ```
//!
//! A bare NAME is a file under /dev/shm; anything with a `/` is a path.
//! `tail` is a subscriber: it reads every event without taking any from
//! the worker group, one JSON object per line; a lap it fell behind by is
//! a `{"lagged": n}` line.
//!
//! `forward` is a worker of the ring's worker group: it claims events in
//! batches and hands them to the crate's `RedisForwarder` (a buffer of 4
//! batches, one `XADD` pipeline per batch, retried until written),
//! sleeping in `wait` when the ring is empty. It claims only what the
//! forwarder's buffer has room for: while Redis is down, events stay in the
//! ring (where the ring's overflow policy counts what it loses). SIGTERM or
//! SIGINT (or `--count`, `--idle-exit`, or the ring closed and drained)
//! stops it, a second signal at once: it flushes the forwarder (at most
//! `--close-timeout`) and prints one line,
//! `claimed=C written=W lost=L overwritten=O unforwardable=U dropped=D
//! failed=F abandoned=A`: `overwritten` events were lost in the ring before
//! it could claim them, `unforwardable` ones were claimed but are not
//! events (raw payloads, undecodable bytes), the last three are the
//! forwarder's; `lost` is their sum, and `claimed = written +
//! unforwardable + dropped + failed + abandoned`. It exits nonzero when
//! the forwarder could not write everything by the deadline.

use clap::{value_parser, Arg, ArgAction, ArgMatches, Command};
use evqueue::forward::redis::{RedisConfig, RedisForwarder};
use evqueue::{
    Claim, Event, Overflow, OwnedEvent, Payload, QueueStats, RecvError, SharedRing, ShmOptions,
    Start,
};
use serde_json::{json, Map, Value};
use std::io::{ErrorKind, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn name_arg() -> Arg {
    Arg::new("name")
        .required(true)
        .help("ring file: a bare name lives under /dev/shm, a path is used as given")
}

fn cli() -> Command {
    Command::new("evqueue")
        .about("Create, inspect, tail, forward and remove evqueue shared-memory rings")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true)
        .arg_required_else_help(true)
        .arg(
            Arg::new("allow-foreign-owner")
                .long("allow-foreign-owner")
                .global(true)
                .action(ArgAction::SetTrue)
                .help("open a ring file owned by another user"),
        )
        .subcommand(
            Command::new("create")
                .about("Create a ring file (mode 0600; fails if it exists)")
                .arg(name_arg())
                .arg(
                    Arg::new("capacity")
                        .long("capacity")
                        .value_parser(value_parser!(usize))
                        .default_value("65536")
                        .help("slots, a power of two"),
                )
                .arg(
                    Arg::new("slot-bytes")
                        .long("slot-bytes")
                        .value_parser(value_parser!(usize))
                        .default_value("256")
                        .help("bytes per slot, a multiple of 8"),
                )
                .arg(
                    Arg::new("reject")
                        .long("reject")
                        .action(ArgAction::SetTrue)
                        .help("refuse pushes when the worker group is a ring behind (default: overwrite the oldest)"),
                ),
        )
        .subcommand(
            Command::new("stats")
                .about("Print the ring's counters in the Prometheus text format")
                .arg(name_arg()),
        )
        .subcommand(
            Command::new("tail")
                .about("Print events as JSON lines, as a subscriber (takes nothing from the workers)")
                .arg(name_arg())
                .arg(
                    Arg::new("from")
                        .long("from")
                        .value_parser(["now", "oldest"])
                        .default_value("now")
                        .help("start with the next event, or the oldest the ring holds"),
                )
                .arg(
                    Arg::new("count")
                        .long("count")
                        .value_parser(value_parser!(u64))
                        .help("exit after this many events"),
                )
                .arg(
                    Arg::new("idle-exit")
                        .long("idle-exit")
                        .value_parser(value_parser!(u64))
                        .help("exit after this many milliseconds without an event"),
                ),
        )
        .subcommand(
            Command::new("forward")
                .about("Drain the worker group into a Redis stream (XADD), until SIGTERM/SIGINT")
                .arg(name_arg())
                .arg(
                    Arg::new("redis")
                        .long("redis")
                        .required(true)
                        .help("redis://host:port/db"),
                )
                .arg(
                    Arg::new("stream")
                        .long("stream")
                        .required(true)
                        .help("the stream to append to"),
                )
                .arg(
                    Arg::new("batch")
                        .long("batch")
                        .value_parser(value_parser!(u32).range(1..=65536))
                        .default_value("256")
                        .help("events per claim and per XADD pipeline"),
                )
                .arg(
                    Arg::new("maxlen")
                        .long("maxlen")
                        .value_parser(value_parser!(u64).range(1..))
                        .help("trim the stream to about this many entries (MAXLEN ~)"),
                )
                .arg(
                    Arg::new("count")
                        .long("count")
                        .value_parser(value_parser!(u64))
                        .help("exit after claiming this many events"),
                )
                .arg(
                    Arg::new("idle-exit")
                        .long("idle-exit")
                        .value_parser(value_parser!(u64))
                        .help("exit after this many milliseconds without an event"),
                )
                .arg(
                    Arg::new("close-timeout")
                        .long("close-timeout")
                        .value_parser(value_parser!(u64))
                        .default_value("10000")
                        .help("milliseconds to write what is buffered when stopping"),
                ),
        )
        .subcommand(
            Command::new("push")
                .about("Push one event (and wake sleeping consumers)")
                .arg(name_arg())
                .arg(Arg::new("event").required(true).help("event name"))
                .arg(
                    Arg::new("properties")
                        .num_args(0..)
                        .help("KEY=VALUE properties"),
                ),
        )
        .subcommand(
            Command::new("remove")
                .about("Remove the ring file (processes that have it open keep using it)")
                .arg(name_arg()),
        )
}

fn main() -> ExitCode {
    let matches = cli().get_matches();
    let result = match matches.subcommand() {
        Some(("create", m)) => create(m),
        Some(("stats", m)) => stats(m),
        Some(("tail", m)) => tail(m),
        Some(("forward", m)) => forward(m),
        Some(("push", m)) => push(m),
        Some(("remove", m)) => remove(m),
        _ => unreachable!("clap requires a subcommand"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("evqueue: {e}");
            ExitCode::FAILURE
        }
    }
}

fn name(m: &ArgMatches) -> &str {
    m.get_one::<String>("name").expect("required")
}

fn open(m: &ArgMatches) -> Result<SharedRing> {
    let options = ShmOptions::new().allow_foreign_owner(m.get_flag("allow-foreign-owner"));
    Ok(SharedRing::open_with(name(m), options)?)
}

fn create(m: &ArgMatches) -> Result<()> {
    let overflow = if m.get_flag("reject") {
        Overflow::Reject
    } else {
        Overflow::Overwrite
    };
    let capacity = *m.get_one::<usize>("capacity").expect("defaulted");
    let slot_bytes = *m.get_one::<usize>("slot-bytes").expect("defaulted");
    let ring = SharedRing::create(name(m), capacity, slot_bytes, overflow)?;
    println!("{}", ring.slots().path().display());
    Ok(())
}

fn stats(m: &ArgMatches) -> Result<()> {
    let ring = open(m)?;
    // The dispatcher's rendering, with the ring's counters: no workers or
    // subscribers of this process to report.
    let stats = QueueStats {
        ring: ring.stats(),
        capacity: ring.capacity(),
        ..QueueStats::default()
    };
    print!("{}", stats.to_prometheus());
    Ok(())
}

fn tail(m: &ArgMatches) -> Result<()> {
    let ring = open(m)?;
    let start = match m.get_one::<String>("from").map(String::as_str) {
        Some("oldest") => Start::Oldest,
        _ => Start::Now,
    };
    let count = m.get_one::<u64>("count").copied();
    let idle_exit = m
        .get_one::<u64>("idle-exit")
        .map(|&ms| Duration::from_millis(ms));
    let mut sub = ring.subscribe(start);
    let mut buf = vec![0u8; ring.slot_bytes()];
    let mut out = std::io::stdout().lock();
    let mut printed = 0u64;
    let mut last_event = Instant::now();
    let written = loop {
        if count.is_some_and(|c| printed >= c) {
            break Ok(());
        }
        let line = match sub.try_recv(&mut buf) {
            Ok(claim) => {
                printed += 1;
                last_event = Instant::now();
                to_json(&claim, &buf)
            }
            Err(RecvError::Lagged(n)) => json!({ "lagged": n }),
            Err(RecvError::Closed) => break Ok(()),
            Err(RecvError::Empty) => {
                let wait = match idle_exit {
                    Some(idle) => {
                        let left = idle.saturating_sub(last_event.elapsed());
                        if left.is_zero() {
                            break Ok(());
                        }
                        left.min(Duration::from_secs(1))
                    }
                    None => Duration::from_secs(1),
                };
                ring.wait_for(sub.next_seq(), wait);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if let Err(e) = writeln!(out, "{line}") {
            break Err(e);
        }
    };
    match written.and_then(|()| out.flush()) {
        // A closed pipe (`evqueue tail ... | head`) is a normal end.
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// One received slot as a JSON object: an event, a framed raw payload (hex),
/// or bytes that decode as neither (hex).
fn to_json(claim: &Claim, buf: &[u8]) -> Value {
    match claim.payload(buf) {
        Ok(Payload::Event(e)) => {
            let properties: Map<String, Value> = e
                .properties()
                .iter()
                .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
                .collect();
            json!({
                "seq": e.seq,
                "name": e.name,
                "timestamp": e.timestamp,
                "external": e.external,
                "properties": properties,
            })
        }
        Ok(Payload::Raw(r)) => {
            json!({ "seq": r.seq, "timestamp": r.timestamp, "raw": hex(r.bytes) })
        }
        Err(_) => json!({ "seq": claim.seq, "undecoded": hex(&buf[..claim.len]) }),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Set by SIGTERM and SIGINT: `forward` stops at its next look.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    // Async-signal-safe: one atomic store.
    STOP.store(true, Ordering::Relaxed);
}

/// Routes the first SIGTERM or SIGINT to [`STOP`] instead of ending the
/// process; `SA_RESETHAND` puts the default back, so a second one ends it
/// at once (a forwarder stuck retrying a dead server can still be stopped).
fn catch_stop_signals() -> Result<()> {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: `sigaction` is plain data, for which zero is valid (an
        // empty mask); the handler only stores to an atomic, which is
        // async-signal-safe, and lives for the whole program.
        let installed = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_flags = libc::SA_RESETHAND;
            action.sa_sigaction =
                on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if installed != 0 {
            return Err(format!("sigaction: {}", std::io::Error::last_os_error()).into());
        }
    }
    Ok(())
}

/// The longest `forward` sleeps in `wait` before it looks at [`STOP`]
/// again: a signal does not end the futex wait early (`wait` resumes it).
const STOP_CHECK: Duration = Duration::from_millis(200);
/// Batches the forwarder may hold unwritten; `forward` claims only what
/// fits. Enough to keep a batch in flight while the next is claimed, and
/// small, because what `forward` claimed is no longer in the ring: a
/// `forward` killed with SIGKILL loses what it held.
const FORWARD_BATCHES: usize = 4;

/// What `forward` did, for its summary line.
#[derive(Default)]
struct Forwarded {
    claimed: u64,
    overwritten: u64,
    unforwardable: u64,
}

fn forward(m: &ArgMatches) -> Result<()> {
    let ring = open(m)?;
    let url = m.get_one::<String>("redis").expect("required");
    let stream = m.get_one::<String>("stream").expect("required");
    let batch = *m.get_one::<u32>("batch").expect("defaulted") as usize;
    let count = m.get_one::<u64>("count").copied();
    let idle_exit = m
        .get_one::<u64>("idle-exit")
        .map(|&ms| Duration::from_millis(ms));
    let close_timeout =
        Duration::from_millis(*m.get_one::<u64>("close-timeout").expect("defaulted"));
    let buffer = FORWARD_BATCHES * batch;
    let mut config = RedisConfig::new(url, stream).batch(batch).buffer(buffer);
    if let Some(&n) = m.get_one::<u64>("maxlen") {
        config = config.maxlen(n);
    }
    let fwd = RedisForwarder::new(config)?;
    let sink = fwd.sink();
    catch_stop_signals()?;

    let slot = ring.slot_bytes();
    let mut buf = vec![0u8; batch * slot];
    let mut claims = vec![Claim::default(); batch];
    let mut done = Forwarded::default();
    let mut last_event = Instant::now();
    while !STOP.load(Ordering::Relaxed) {
        let max = match count {
            Some(c) if done.claimed >= c => break,
            Some(c) => batch.min((c - done.claimed) as usize),
            None => batch,
        };
        // Claim only what the forwarder can take: while Redis is down the
        // events wait in the ring, not in a buffer that would refuse them.
        if fwd.stats().pending as usize + max > buffer {
            let _ = fwd.flush(STOP_CHECK);
            continue;
        }
        match ring.try_claim_batch(&mut buf[..max * slot], &mut claims[..max]) {
            Ok(n) => {
                done.claimed += n as u64;
                done.overwritten += claims[0].lost;
                last_event = Instant::now();
                let mut events = Vec::with_capacity(n);
                for (i, claim) in claims[..n].iter().enumerate() {
                    match claim.payload(&buf[i * slot..(i + 1) * slot]) {
                        Ok(Payload::Event(e)) => events.push(OwnedEvent::from(&e)),
                        // A raw payload has no name to put in a stream entry.
                        _ => done.unforwardable += 1,
                    }
                }
                // The only refusal is a full buffer, which the check above
                // prevents, and the forwarder counts it as dropped anyway.
                let _ = sink.write_owned(events);
            }
            Err(RecvError::Lagged(n)) => done.overwritten += n,
            Err(RecvError::Closed) => break,
            Err(RecvError::Empty) => {
                let wait = match idle_exit {
                    Some(idle) => {
                        let left = idle.saturating_sub(last_event.elapsed());
                        if left.is_zero() {
                            break;
                        }
                        left.min(STOP_CHECK)
                    }
                    None => STOP_CHECK,
                };
                ring.wait(wait);
            }
            Err(e) => return Err(e.into()),
        }
    }
    let closed = fwd.close(close_timeout);
    let s = fwd.stats();
    let lost = done.overwritten + done.unforwardable + s.dropped + s.failed + s.abandoned;
    println!(
        "claimed={} written={} lost={lost} overwritten={} unforwardable={} dropped={} failed={} abandoned={}",
        done.claimed, s.written, done.overwritten, done.unforwardable, s.dropped, s.failed, s.abandoned
    );
    closed.map_err(|e| format!("forward: the forwarder did not finish: {e}").into())
}

fn push(m: &ArgMatches) -> Result<()> {
    let ring = open(m)?;
    let event = m.get_one::<String>("event").expect("required");
    let pairs: Vec<(&str, &str)> = m
        .get_many::<String>("properties")
        .into_iter()
        .flatten()
        .map(|p| {
            p.split_once('=')
                .ok_or_else(|| format!("property {p:?} is not KEY=VALUE"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let seq = ring
        .mp_producer()?
        .push_event(&Event::new(event).properties(&pairs))?;
    ring.wake();
    println!("{seq}");
    Ok(())
}

fn remove(m: &ArgMatches) -> Result<()> {
    SharedRing::remove(name(m))?;
    Ok(())
}
