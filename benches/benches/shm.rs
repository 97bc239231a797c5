//! The shared-memory ring (`SharedRing`, feature `shm`) against the heap
//! ring and against an in-process peer: the shared ring's speed goals. Rounds
//! interleaved (`SHM_ROUNDS`, default 5; the side that goes first
//! alternates), every sample in steady state, ratios per round reported as
//! median [min, max]. The cross-process rows re-run this binary as a child
//! (`EVQ_SHM_CHILD=<role> ...`), like `benches/nakama.rs`.
//!
//! Rows:
//! - `push`: one thread, single producer, `Overwrite`, 65536 slots of 64
//!   and 256 B: `SharedRing` against `HeapRing`, the ring filled once
//!   before timing (a push always overwrites), then `SHM_PUSH_LAPS` laps
//!   (default 100) timed. Goal: shared within 1.1x of heap.
//! - `xproc`: one producer process, one consumer process (a worker of the
//!   worker group, `try_claim`), a `SharedRing` of 65536 slots under
//!   `Reject`; `SHM_XPROC_LAPS` laps (default 100) per sample. The
//!   payloads, their check and the backoff are `benches::steady`'s (the
//!   loop of `benches/steady.rs`): every word holds the sequence number, the
//!   consumer checks every word and the order, a full producer and an idle
//!   consumer spin 128 times then yield. Timed from the producer's start
//!   (after the consumer said it is ready) to the consumer's last event,
//!   on `CLOCK_MONOTONIC`. Against, in one process, two threads:
//!   `reject_ringbuf` (ringbuf `try_push`/`try_pop`) and
//!   `reject_evqueue_claim` (`HeapRing`), both through `steady::run`. Goal:
//!   the processes at least as fast as `reject_ringbuf`. Each side pinned
//!   to one of two CPUs.
//! - `wake`: a consumer process sleeps in `SharedRing::wait`; the producer
//!   waits until it is registered as a waiter and 200 µs more (so it is in
//!   `FUTEX_WAIT`), reads `CLOCK_MONOTONIC`, pushes the reading and calls
//!   `wake()`; the consumer's latency is its clock after the claim minus the
//!   pushed one. `SHM_WAKE_SAMPLES` (default 2000) samples, p50 and p99.
//!   Against a bare futex: the same protocol on one word in a `/dev/shm`
//!   mapping (`FUTEX_WAIT` / store, `FUTEX_WAKE` by `syscall(SYS_futex)`).
//! - `idle`: a consumer process that waits `SHM_IDLE_MS` (default 1000) in
//!   `wait` with nothing pushed: its CPU time over the wait (getrusage,
//!   user + system), printed.
//!
//! Output: stdout and, in bench mode, `bench-extra/shm.csv`
//! (`row,side,bytes,round,value`). `cargo test -p benches --bench shm` runs
//! every row once, briefly.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

use benches::peers::{evqueue_ring, ringbuf, EvClaim, EvTx};
use benches::steady::{check_payload, payload_of, run, SPINS};
use benches::{
    bench_mode, env_count, median_range, merge_extra, payload, pin_to_allowed_cpu, quantile,
    Backoff, CAPACITY,
};
use evqueue::{Error, HeapRing, Overflow, RecvError, SharedRing};

/// The child's role and arguments, in the environment.
const CHILD_VAR: &str = "EVQ_SHM_CHILD";
/// The wake rows' ring: small, the payload is one timestamp.
const WAKE_CAPACITY: usize = 1024;
const WAKE_SLOT_BYTES: usize = 64;
/// How long the producer lets a registered waiter get into `FUTEX_WAIT`.
const SETTLE: Duration = Duration::from_micros(200);

fn rounds() -> usize {
    env_count("SHM_ROUNDS", 5, 1)
}

/// `CLOCK_MONOTONIC` in nanoseconds: comparable across processes (an
/// `Instant` is not transferable).
fn monotonic_ns() -> u64 {
    // SAFETY: clock_gettime writes the timespec it is given; zeroed is a
    // valid value for it.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }
}

/// User + system CPU time of this process, in microseconds.
fn cpu_us() -> u64 {
    // SAFETY: getrusage fills the struct it is given; zeroed is valid.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
        us(u.ru_utime) + us(u.ru_stime)
    }
}

/// A fresh name under /dev/shm for this process's ring `what`.
fn ring_name(what: &str) -> String {
    format!("evq-bench-shm-{}-{what}", std::process::id())
}

/// Removes a ring file when dropped, so a failed row leaves nothing behind.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn create(
    name: &str,
    capacity: usize,
    slot_bytes: usize,
    overflow: Overflow,
) -> (SharedRing, Cleanup) {
    let _ = SharedRing::remove(name);
    let ring =
        SharedRing::create(name, capacity, slot_bytes, overflow).expect("create shared ring");
    let cleanup = Cleanup(ring.slots().path().to_owned());
    (ring, cleanup)
}

// ---- push, one thread ----

/// Nanoseconds per push of `laps` laps into `push`'s ring, after one
/// untimed lap.
fn time_pushes<const N: usize>(laps: u64, mut push: impl FnMut(&[u8; N])) -> f64 {
    let p = payload::<N>();
    for _ in 0..CAPACITY {
        push(&p);
    }
    let n = laps * CAPACITY as u64;
    let start = Instant::now();
    for _ in 0..n {
        push(black_box(&p));
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn push_heap<const N: usize>(laps: u64) -> f64 {
    let ring = HeapRing::with_capacity(CAPACITY, N, Overflow::Overwrite).expect("heap ring");
    let mut tx = ring.producer().expect("producer");
    time_pushes::<N>(laps, |p| {
        black_box(tx.push(p).expect("push"));
    })
}

fn push_shared<const N: usize>(laps: u64) -> f64 {
    let (ring, _cleanup) = create(&ring_name("push"), CAPACITY, N, Overflow::Overwrite);
    let mut tx = ring.producer().expect("producer");
    time_pushes::<N>(laps, |p| {
        black_box(tx.push(p).expect("push"));
    })
}

/// Multi-producer pushes, one thread: on a shared ring each also counts
/// the process's pushes in flight (two atomic adds on its process entry).
fn push_heap_mp<const N: usize>(laps: u64) -> f64 {
    let ring = HeapRing::with_capacity(CAPACITY, N, Overflow::Overwrite).expect("heap ring");
    let tx = ring.mp_producer().expect("producer");
    time_pushes::<N>(laps, |p| {
        black_box(tx.push(p).expect("push"));
    })
}

fn push_shared_mp<const N: usize>(laps: u64) -> f64 {
    let (ring, _cleanup) = create(&ring_name("push-mp"), CAPACITY, N, Overflow::Overwrite);
    let tx = ring.mp_producer().expect("producer");
    time_pushes::<N>(laps, |p| {
        black_box(tx.push(p).expect("push"));
    })
}

// ---- one producer process, one consumer process ----

/// Spawns this binary as a child in `role`, with its stdout piped.
fn spawn_child(role: &str, args: &[String]) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD_VAR, format!("{role} {}", args.join(" ")))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let out = BufReader::new(child.stdout.take().expect("piped"));
    (child, out)
}

/// The child's next line (panics with what it said if it ended).
fn read_line(out: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    out.read_line(&mut line).expect("child stdout");
    assert!(!line.is_empty(), "the child ended without a result");
    line.trim().to_owned()
}

/// A `key=value ...` line.
fn parse(line: &str) -> BTreeMap<String, f64> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().expect("a number")))
        .collect()
}

fn finish(mut child: Child) {
    let status = child.wait().expect("wait for child");
    assert!(status.success(), "child failed: {status}");
}

/// Events per second through a `Reject` shared ring from this process to
/// a consumer process.
fn xproc<const N: usize>(total: u64) -> f64 {
    let name = ring_name("xproc");
    let (ring, _cleanup) = create(&name, CAPACITY, N, Overflow::Reject);
    let path = ring.slots().path().display().to_string();
    let (child, mut out) = spawn_child("consume", &[path, N.to_string(), total.to_string()]);
    assert_eq!(read_line(&mut out), "ready");
    let start_ns = std::thread::scope(|s| {
        s.spawn(|| {
            pin_to_allowed_cpu(0);
            let mut tx = ring.producer().expect("producer");
            let start = monotonic_ns();
            for seq in 0..total {
                let p = payload_of::<N>(seq);
                let mut backoff = Backoff::new(SPINS);
                loop {
                    match tx.push(&p) {
                        Ok(_) => break,
                        Err(Error::Full) => backoff.snooze(),
                        Err(e) => panic!("push: {e}"),
                    }
                }
            }
            start
        })
        .join()
        .expect("producer thread")
    });
    let result = parse(&read_line(&mut out));
    finish(child);
    assert_eq!(result["got"] as u64, total, "the consumer lost events");
    let secs = (result["stop_ns"] - start_ns as f64) / 1e9;
    total as f64 / secs
}

/// The consumer process: claims `total` events one at a time, checking
/// each, and prints when it took the last.
fn child_consume(path: &str, bytes: usize, total: u64) {
    match bytes {
        64 => consume::<64>(path, total),
        256 => consume::<256>(path, total),
        other => panic!("no consumer for {other} bytes"),
    }
}

fn consume<const N: usize>(path: &str, total: u64) {
    pin_to_allowed_cpu(1);
    let ring = SharedRing::open(path).expect("open");
    let mut buf = vec![0u8; ring.slot_bytes()];
    println!("ready");
    let (mut got, mut last) = (0u64, None);
    let mut backoff = Backoff::new(SPINS);
    while got < total {
        match ring.try_claim(&mut buf) {
            Ok(claim) => {
                last = Some(check_payload::<N>(&buf[..claim.len], last));
                assert_eq!(last, Some(got), "out of order");
                got += 1;
                backoff = Backoff::new(SPINS);
            }
            Err(RecvError::Empty) => backoff.snooze(),
            Err(e) => panic!("claim: {e:?}"),
        }
    }
    println!("stop_ns={} got={got}", monotonic_ns());
}

// ---- wake latency ----

/// Waits until `sleeping()` and then [`SETTLE`] more.
fn until_asleep(sleeping: impl Fn() -> bool) {
    let start = Instant::now();
    while !sleeping() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the consumer never slept"
        );
        std::thread::sleep(Duration::from_micros(20));
    }
    std::thread::sleep(SETTLE);
}

/// `(p50, p99, max)` in nanoseconds of push-to-wake-up through a shared
/// ring's `wake` and `wait`.
fn wake_evqueue(samples: u64) -> BTreeMap<String, f64> {
    let (ring, _cleanup) = create(
        &ring_name("wake"),
        WAKE_CAPACITY,
        WAKE_SLOT_BYTES,
        Overflow::Overwrite,
    );
    let path = ring.slots().path().display().to_string();
    let (child, mut out) = spawn_child("wake-evqueue", &[path, samples.to_string()]);
    std::thread::scope(|s| {
        s.spawn(|| {
            pin_to_allowed_cpu(0);
            let mut tx = ring.producer().expect("producer");
            for i in 0..samples {
                // Sample `i - 1` claimed, and the consumer back in `wait`
                // (not a stale count from the wait that sample ended).
                until_asleep(|| ring.worker_position() == i && ring.waiters() > 0);
                tx.push(&monotonic_ns().to_ne_bytes()).expect("push");
                ring.wake();
            }
        });
    });
    let result = parse(&read_line(&mut out));
    finish(child);
    result
}

fn child_wake_evqueue(path: &str, samples: u64) {
    pin_to_allowed_cpu(1);
    let ring = SharedRing::open(path).expect("open");
    let mut buf = vec![0u8; ring.slot_bytes()];
    let mut lat = Vec::with_capacity(samples as usize);
    while (lat.len() as u64) < samples {
        match ring.try_claim(&mut buf) {
            Ok(claim) => {
                let now = monotonic_ns();
                assert_eq!(claim.len, 8);
                let sent = u64::from_ne_bytes(buf[..8].try_into().unwrap());
                lat.push(now - sent);
            }
            Err(RecvError::Empty) => {
                ring.wait(Duration::from_secs(30));
            }
            Err(e) => panic!("claim: {e:?}"),
        }
    }
    print_latencies(lat);
}

fn print_latencies(mut lat: Vec<u64>) {
    lat.sort_unstable();
    println!(
        "p50_ns={} p99_ns={} max_ns={}",
        quantile(&lat, 0.5),
        quantile(&lat, 0.99),
        lat.last().expect("samples")
    );
}

/// The bare futex block in a `/dev/shm` file: `[seq u32, sleeping u32,
/// sent_ns u64]`. `seq` is the futex word (samples sent); `sleeping` is 0
/// while the consumer is awake, `seq + 1` while it sleeps on `seq`.
struct FutexBlock {
    ptr: *mut u8,
    _cleanup: Option<Cleanup>,
}

const FUTEX_BLOCK_BYTES: usize = 4096;

impl FutexBlock {
    fn map(path: &Path, create: bool) -> Self {
        use std::os::unix::io::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(create)
            .open(path)
            .expect("futex block file");
        if create {
            file.set_len(FUTEX_BLOCK_BYTES as u64).expect("size it");
        }
        // SAFETY: a fresh shared mapping of an open file of
        // FUTEX_BLOCK_BYTES bytes; the kernel picks the address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                FUTEX_BLOCK_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap");
        FutexBlock {
            ptr: ptr.cast(),
            _cleanup: create.then(|| Cleanup(path.to_owned())),
        }
    }

    fn seq(&self) -> &AtomicU32 {
        // SAFETY: offset 0 of a live, page-aligned mapping, used only
        // through atomics by both processes.
        unsafe { &*self.ptr.cast::<AtomicU32>() }
    }

    fn sleeping(&self) -> &AtomicU32 {
        // SAFETY: as `seq`, at offset 4.
        unsafe { &*self.ptr.add(4).cast::<AtomicU32>() }
    }

    fn sent(&self) -> &AtomicU64 {
        // SAFETY: as `seq`, at offset 8 (8-aligned).
        unsafe { &*self.ptr.add(8).cast::<AtomicU64>() }
    }
}

impl Drop for FutexBlock {
    fn drop(&mut self) {
        // SAFETY: the mapping `map` made; no reference into it outlives
        // `self`.
        unsafe {
            libc::munmap(self.ptr.cast(), FUTEX_BLOCK_BYTES);
        }
    }
}

// SAFETY: the block is plain shared memory used only through atomics.
unsafe impl Sync for FutexBlock {}

fn futex(word: &AtomicU32, op: libc::c_int, val: u32) {
    // SAFETY: `word` is a live, 4-aligned u32 in a shared mapping; no
    // timeout pointer (wait without a limit; the waker always comes).
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op,
            val,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

fn wake_futex(samples: u64) -> BTreeMap<String, f64> {
    let path = Path::new(evqueue::DEFAULT_DIR).join(ring_name("futex"));
    let _ = std::fs::remove_file(&path);
    let block = FutexBlock::map(&path, true);
    let (child, mut out) = spawn_child(
        "wake-futex",
        &[path.display().to_string(), samples.to_string()],
    );
    std::thread::scope(|s| {
        s.spawn(|| {
            pin_to_allowed_cpu(0);
            for i in 0..samples {
                // The consumer sleeps on the word's current value `i`
                // (it stores `i + 1`): it took sample `i - 1`.
                let seq = i as u32;
                until_asleep(|| block.sleeping().load(Acquire) == seq + 1);
                block.sent().store(monotonic_ns(), Relaxed);
                block.seq().store(seq + 1, Release);
                futex(block.seq(), libc::FUTEX_WAKE, i32::MAX as u32);
            }
        });
    });
    let result = parse(&read_line(&mut out));
    finish(child);
    result
}

fn child_wake_futex(path: &str, samples: u64) {
    pin_to_allowed_cpu(1);
    let block = FutexBlock::map(Path::new(path), false);
    let mut seen = block.seq().load(Acquire);
    let mut lat = Vec::with_capacity(samples as usize);
    while (lat.len() as u64) < samples {
        let now_seq = block.seq().load(Acquire);
        if now_seq != seen {
            let now = monotonic_ns();
            lat.push(now - block.sent().load(Relaxed));
            seen = now_seq;
            continue;
        }
        block.sleeping().store(seen + 1, SeqCst);
        futex(block.seq(), libc::FUTEX_WAIT, seen);
        block.sleeping().store(0, SeqCst);
    }
    print_latencies(lat);
}

// ---- idle CPU ----

/// A consumer process waiting `ms` in `wait` on an empty ring: its CPU
/// time over the wait, in microseconds, and how long it waited.
fn idle(ms: u64) -> BTreeMap<String, f64> {
    let (ring, _cleanup) = create(
        &ring_name("idle"),
        WAKE_CAPACITY,
        WAKE_SLOT_BYTES,
        Overflow::Overwrite,
    );
    let path = ring.slots().path().display().to_string();
    let (child, mut out) = spawn_child("idle", &[path, ms.to_string()]);
    let result = parse(&read_line(&mut out));
    finish(child);
    result
}

fn child_idle(path: &str, ms: u64) {
    let ring = SharedRing::open(path).expect("open");
    let cpu = cpu_us();
    let start = Instant::now();
    let woke = ring.wait(Duration::from_millis(ms));
    let waited = start.elapsed();
    let cpu = cpu_us() - cpu;
    assert!(!woke, "an empty ring woke the waiter");
    println!("cpu_us={cpu} waited_ms={}", waited.as_millis());
}

fn child(args: &str) {
    // A parent that panicked must not leave this child spinning or
    // sleeping forever.
    // SAFETY: prctl with integer arguments only; it sets a flag of this
    // process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    let a: Vec<&str> = args.split_whitespace().collect();
    let num = |i: usize| -> u64 { a[i].parse().expect("a number") };
    match a[0] {
        "consume" => child_consume(a[1], num(2) as usize, num(3)),
        "wake-evqueue" => child_wake_evqueue(a[1], num(2)),
        "wake-futex" => child_wake_futex(a[1], num(2)),
        "idle" => child_idle(a[1], num(2)),
        other => panic!("{CHILD_VAR}: unknown role {other:?}"),
    }
}

/// Per-round ratios, keyed by what they compare.
type Ratios = BTreeMap<String, Vec<f64>>;

fn push_rows<const N: usize>(round: usize, laps: u64, csv: &mut Vec<String>, ratios: &mut Ratios) {
    let mut sides = [
        ("heap", push_heap::<N> as fn(u64) -> f64),
        ("shared", push_shared::<N>),
        ("heap mp", push_heap_mp::<N>),
        ("shared mp", push_shared_mp::<N>),
    ];
    if round % 2 == 1 {
        sides.reverse();
    }
    let mut ns = BTreeMap::new();
    for (side, f) in sides {
        let t = f(laps);
        println!("round {round} push   {N:>3} B {side:<22} {t:>6.2} ns/push");
        csv.push(format!("push_ns,{side},{N},{round},{t:.3}"));
        ns.insert(side, t);
    }
    ratios
        .entry(format!("push {N:>3} B shared / heap (time, goal <= 1.1)"))
        .or_default()
        .push(ns["shared"] / ns["heap"]);
    ratios
        .entry(format!(
            "push {N:>3} B shared / heap, multi-producer (time)"
        ))
        .or_default()
        .push(ns["shared mp"] / ns["heap mp"]);
}

fn xproc_rows<const N: usize>(
    round: usize,
    total: u64,
    csv: &mut Vec<String>,
    ratios: &mut Ratios,
) {
    type Side = fn(u64) -> f64;
    fn ringbuf_row<const N: usize>(total: u64) -> f64 {
        let (tx, rx) = ringbuf::<N>();
        let o = run::<N>(tx, rx, total, false, 0);
        o.delivered as f64 / o.secs
    }
    fn heap_row<const N: usize>(total: u64) -> f64 {
        let ring = evqueue_ring::<N>(Overflow::Reject);
        let o = run::<N>(EvTx::new(&ring), EvClaim::new(&ring), total, false, 0);
        o.delivered as f64 / o.secs
    }
    let mut sides: [(&str, Side); 3] = [
        ("shm_processes", xproc::<N>),
        ("reject_ringbuf", ringbuf_row::<N>),
        ("reject_evqueue_claim", heap_row::<N>),
    ];
    sides.rotate_left(round % 3);
    let mut rate = BTreeMap::new();
    for (side, f) in sides {
        let r = f(total);
        println!(
            "round {round} xproc  {N:>3} B {side:<22} {:>6.1} M/s",
            r / 1e6
        );
        csv.push(format!("xproc_events_per_sec,{side},{N},{round},{r:.0}"));
        rate.insert(side, r);
    }
    ratios
        .entry(format!(
            "xproc {N:>3} B processes / ringbuf (rate, goal >= 1)"
        ))
        .or_default()
        .push(rate["shm_processes"] / rate["reject_ringbuf"]);
    ratios
        .entry(format!(
            "xproc {N:>3} B processes / threads on HeapRing (rate)"
        ))
        .or_default()
        .push(rate["shm_processes"] / rate["reject_evqueue_claim"]);
}

fn main() {
    if let Ok(args) = std::env::var(CHILD_VAR) {
        child(&args);
        return;
    }
    let push_laps = env_count("SHM_PUSH_LAPS", 100, 2);
    let xproc_total = env_count("SHM_XPROC_LAPS", 100, 3) * CAPACITY as u64;
    let samples = env_count("SHM_WAKE_SAMPLES", 2000, 50);
    let idle_ms = env_count("SHM_IDLE_MS", 1000, 200);
    let mut csv = Vec::new();
    let mut ratios = Ratios::new();
    for round in 0..rounds() {
        push_rows::<64>(round, push_laps, &mut csv, &mut ratios);
        push_rows::<256>(round, push_laps, &mut csv, &mut ratios);
        xproc_rows::<64>(round, xproc_total, &mut csv, &mut ratios);
        xproc_rows::<256>(round, xproc_total, &mut csv, &mut ratios);
        let mut wakes = [
            ("futex", wake_futex as fn(u64) -> _),
            ("evqueue", wake_evqueue),
        ];
        if round % 2 == 1 {
            wakes.reverse();
        }
        let mut p = BTreeMap::new();
        for (side, f) in wakes {
            let r = f(samples);
            println!(
                "round {round} wake   {side:<28} p50 {:>6.1} µs, p99 {:>7.1} µs, max {:>8.1} µs ({samples} samples)",
                r["p50_ns"] / 1e3,
                r["p99_ns"] / 1e3,
                r["max_ns"] / 1e3
            );
            for key in ["p50_ns", "p99_ns", "max_ns"] {
                csv.push(format!("wake_{key},{side},8,{round},{}", r[key]));
            }
            p.insert(side, r);
        }
        for key in ["p50_ns", "p99_ns"] {
            ratios
                .entry(format!("wake {key} evqueue / bare futex"))
                .or_default()
                .push(p["evqueue"][key] / p["futex"][key].max(1.0));
        }
        let r = idle(idle_ms);
        println!(
            "round {round} idle   waiting {:.0} ms in wait: {:.0} µs of CPU ({:.3} % of a core)",
            r["waited_ms"],
            r["cpu_us"],
            r["cpu_us"] / (r["waited_ms"].max(1.0) * 1e3) * 100.0
        );
        csv.push(format!("idle_cpu_us,evqueue,0,{round},{}", r["cpu_us"]));
    }
    println!("\nratios, median [min, max] over {} rounds:", rounds());
    for (what, mut v) in ratios {
        let (median, min, max) = median_range(&mut v);
        println!("  {what:<58} {median:.2}x [{min:.2}, {max:.2}]");
    }
    if bench_mode() {
        merge_extra("shm.csv", "row,side,bytes,round,value", 4, &csv);
    }
}
