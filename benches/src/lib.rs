//! Helpers shared by the benchmark targets in `benches/`: the ring geometry
//! every bench uses, deterministic payloads and events, the store floor, a
//! barrier-started two-thread timer, CPU pinning, a spin-then-yield backoff,
//! run sizes by mode, quantiles and median ranges, the extra CSV files, and
//! the steady-state loop ([`steady`]).
//!
//! Run the benches with `cargo bench -p benches`; `cargo test -p benches
//! --benches` runs each once so they keep compiling and working.

use evqueue::Event;
use std::hint::spin_loop;
use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

pub mod peers;
pub mod steady;

/// Slots in every ring and peer queue the benches build.
pub const CAPACITY: usize = 65536;
/// Bytes in one slot: the largest payload measured.
pub const SLOT_BYTES: usize = 256;
/// 8-byte words in one slot.
pub const SLOT_WORDS: usize = SLOT_BYTES / 8;

/// A payload of `N` deterministic, non-zero bytes.
pub fn payload<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(7);
    }
    bytes
}

/// The physical floor of a push: the same payload bytes stored into memory of
/// the ring's size (`capacity * slot_words` words), one relaxed atomic store
/// per word at slot `i & mask`, with no stamp, no length and no cursor.
pub struct StoreFloor {
    words: Box<[AtomicU64]>,
    mask: usize,
    slot_words: usize,
    next: usize,
}

impl StoreFloor {
    /// Zeroed memory for `capacity` slots (a power of two) of `slot_words` words.
    pub fn new(capacity: usize, slot_words: usize) -> Self {
        assert!(
            capacity.is_power_of_two(),
            "capacity must be a power of two"
        );
        let words = (0..capacity * slot_words)
            .map(|_| AtomicU64::new(0))
            .collect();
        StoreFloor {
            words,
            mask: capacity - 1,
            slot_words,
            next: 0,
        }
    }

    /// Stores `payload` (at most a slot, a multiple of 8 bytes) into the next
    /// slot.
    #[inline]
    pub fn store(&mut self, payload: &[u8]) {
        let start = (self.next & self.mask) * self.slot_words;
        let slot = &self.words[start..start + self.slot_words];
        for (cell, chunk) in slot.iter().zip(payload.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            cell.store(u64::from_ne_bytes(word), Relaxed);
        }
        self.next = self.next.wrapping_add(1);
    }

    /// Word `index` of the memory, to check what was stored.
    pub fn word(&self, index: usize) -> u64 {
        self.words[index].load(Relaxed)
    }
}

/// Runs `a` and `b` on two threads released together by a barrier, and
/// returns the time from the first thread's start to the last one's stop,
/// with both results. On Linux with two or more CPUs allowed, `a` runs
/// pinned to the first allowed CPU and `b` to the second. Left to the
/// scheduler, two busy threads released by a barrier on the idle 2-core VM
/// started on one CPU and stayed there for 3 ms in 55-66 of 300 tries,
/// taking turns by time slice while the other CPU idled.
pub fn time_two_threads<RA, RB>(
    a: impl FnOnce() -> RA + Send,
    b: impl FnOnce() -> RB + Send,
) -> (Duration, RA, RB)
where
    RA: Send,
    RB: Send,
{
    fn timed<R>(cpu: usize, barrier: &Barrier, f: impl FnOnce() -> R) -> (Instant, Instant, R) {
        pin_to_allowed_cpu(cpu);
        barrier.wait();
        let start = Instant::now();
        let result = f();
        (start, Instant::now(), result)
    }
    let barrier = Barrier::new(2);
    let ((start_a, stop_a, ra), (start_b, stop_b, rb)) = thread::scope(|s| {
        let ha = s.spawn(|| timed(0, &barrier, a));
        let hb = s.spawn(|| timed(1, &barrier, b));
        (
            ha.join().expect("thread a panicked"),
            hb.join().expect("thread b panicked"),
        )
    });
    (stop_a.max(stop_b) - start_a.min(start_b), ra, rb)
}

/// Pins the calling thread to the `nth` CPU this process may run on, if it
/// may run on at least two (Linux); otherwise leaves it where it is.
pub fn pin_to_allowed_cpu(nth: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: `cpu_set_t` is a plain bit set; sched_getaffinity and
    // sched_setaffinity only read and write the one we pass, of its size.
    unsafe {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size, &mut allowed) != 0 || libc::CPU_COUNT(&allowed) < 2 {
            return;
        }
        let Some(cpu) = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &allowed))
            .nth(nth)
        else {
            return;
        };
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        // Best effort: a failure leaves the thread unpinned.
        libc::sched_setaffinity(0, size, &one);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nth;
}

/// The calling thread's CPU (Linux); 0 elsewhere.
pub fn current_cpu() -> u64 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sched_getcpu takes no arguments and touches no memory.
        let cpu = unsafe { libc::sched_getcpu() };
        u64::try_from(cpu).unwrap_or(0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// Spins up to a limit, then yields: how the benches' spinning producers
/// and polling consumers wait. On a 2-core machine a waiter that only spins
/// can hold the very CPU the thread it waits for was queued on.
pub struct Backoff {
    spins: u32,
    limit: u32,
}

impl Backoff {
    /// A backoff that spins `limit` times before it starts yielding.
    pub const fn new(limit: u32) -> Self {
        Backoff { spins: 0, limit }
    }

    /// Waits a little: a spin hint while under the limit, else a yield.
    #[inline]
    pub fn snooze(&mut self) {
        if self.spins < self.limit {
            self.spins += 1;
            spin_loop();
        } else {
            thread::yield_now();
        }
    }
}

/// Whether this process is a real benchmark run (`cargo bench` passes
/// `--bench`), not `cargo test --benches` running each row once.
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// `bench` in a real benchmark run ([`bench_mode`]), `test` when `cargo test
/// --benches` runs it once.
pub fn by_mode<T>(bench: T, test: T) -> T {
    if bench_mode() {
        bench
    } else {
        test
    }
}

/// A count from the environment variable `var` (panics if it is not a
/// number), else [`by_mode`]`(bench, test)`.
pub fn env_count<T: FromStr>(var: &str, bench: T, test: T) -> T {
    match std::env::var(var) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{var}: a number, not {v:?}")),
        Err(_) => by_mode(bench, test),
    }
}

/// The event the dispatcher benches emit: a `match_end` with two
/// properties and a fixed timestamp (so no clock is read per emit).
pub fn match_end() -> Event<'static> {
    Event::new("match_end")
        .properties(&[("winner", "blue"), ("duration_s", "1260")])
        .timestamp(1_700_000_000_000_000_000)
}

/// Where the benches write what criterion does not record (loss counts,
/// round-trip samples): `$BENCH_EXTRA_DIR`, else `bench-extra/` in the
/// target directory (`$CARGO_TARGET_DIR`, else the workspace's `target/`).
pub fn extra_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BENCH_EXTRA_DIR") {
        return dir.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    target.join("bench-extra")
}

/// Writes `lines` (after a `header` line) to `name` in [`extra_dir`],
/// replacing the file. Panics with the path on an I/O error.
pub fn write_extra(name: &str, header: &str, lines: &[String]) {
    let dir = extra_dir();
    let path = dir.join(name);
    let result = std::fs::create_dir_all(&dir).and_then(|()| {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        writeln!(out, "{header}")?;
        for line in lines {
            writeln!(out, "{line}")?;
        }
        out.flush()
    });
    if let Err(e) = result {
        panic!("cannot write {}: {e}", path.display());
    }
}

/// Like [`write_extra`], but keeps the rows of an existing file whose key
/// (the first `key_cols` comma-separated fields) has no row in `lines`, so a
/// run filtered to some benches updates only their rows. A file with another
/// header is replaced.
pub fn merge_extra(name: &str, header: &str, key_cols: usize, lines: &[String]) {
    fn key(line: &str, n: usize) -> Vec<&str> {
        line.split(',').take(n).collect()
    }
    let fresh: std::collections::HashSet<Vec<&str>> =
        lines.iter().map(|l| key(l, key_cols)).collect();
    let old = std::fs::read_to_string(extra_dir().join(name)).unwrap_or_default();
    let mut rows: Vec<String> = match old.lines().next() {
        Some(h) if h == header => old
            .lines()
            .skip(1)
            .filter(|l| !l.is_empty() && !fresh.contains(&key(l, key_cols)))
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    rows.extend(lines.iter().cloned());
    write_extra(name, header, &rows);
}

/// The value at quantile `q` (0..=1) of `sorted`, nearest rank.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    assert!(!sorted.is_empty(), "no samples");
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// `(median, min, max)` of `v` (sorted in place): how the benches report a
/// ratio over rounds, "median [min, max]".
pub fn median_range(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_stores_the_payload_words_slot_by_slot() {
        let mut floor = StoreFloor::new(4, 4);
        let bytes = payload::<16>();
        for _ in 0..5 {
            floor.store(&bytes);
        }
        let first = u64::from_ne_bytes(bytes[..8].try_into().unwrap());
        let second = u64::from_ne_bytes(bytes[8..].try_into().unwrap());
        for slot in 0..4 {
            assert_eq!(
                (floor.word(slot * 4), floor.word(slot * 4 + 1)),
                (first, second)
            );
            assert_eq!(floor.word(slot * 4 + 2), 0);
        }
    }

    #[test]
    fn median_range_sorts_and_picks() {
        assert_eq!(median_range(&mut [3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
    }

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(quantile(&v, 0.5), 501);
        assert_eq!(quantile(&v, 0.99), 990);
        assert_eq!(quantile(&v, 0.999), 999);
        assert_eq!(quantile(&v, 1.0), 1000);
    }

    #[test]
    fn extras_land_in_the_given_directory() {
        let dir = std::env::temp_dir().join(format!("bench-extra-test-{}", std::process::id()));
        std::env::set_var("BENCH_EXTRA_DIR", &dir);
        write_extra("t.csv", "a,b,v", &["x,1,5".into(), "y,1,6".into()]);
        let first = std::fs::read_to_string(dir.join("t.csv")).unwrap();
        // A filtered run replaces the rows of its keys and keeps the others.
        merge_extra("t.csv", "a,b,v", 2, &["y,1,7".into(), "y,1,8".into()]);
        let merged = std::fs::read_to_string(dir.join("t.csv")).unwrap();
        // Another header: the old rows are dropped.
        merge_extra("t.csv", "a,v", 1, &["z,9".into()]);
        let replaced = std::fs::read_to_string(dir.join("t.csv")).unwrap();
        std::env::remove_var("BENCH_EXTRA_DIR");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(first, "a,b,v\nx,1,5\ny,1,6\n");
        assert_eq!(merged, "a,b,v\nx,1,5\ny,1,7\ny,1,8\n");
        assert_eq!(replaced, "a,v\nz,9\n");
    }

    #[test]
    fn two_threads_both_run_and_the_span_covers_each() {
        let (elapsed, a, b) = time_two_threads(
            || {
                thread::sleep(Duration::from_millis(20));
                1
            },
            || 2,
        );
        assert_eq!((a, b), (1, 2));
        assert!(elapsed >= Duration::from_millis(20));
    }

    /// With two CPUs or more to run on, the two threads run on two of them.
    #[cfg(target_os = "linux")]
    #[test]
    fn two_threads_run_on_two_cpus_when_there_are_two() {
        // SAFETY: as in `pin_to_allowed_cpu`.
        let cpus = unsafe {
            let mut allowed: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(
                libc::sched_getaffinity(0, std::mem::size_of_val(&allowed), &mut allowed),
                0
            );
            libc::CPU_COUNT(&allowed)
        };
        let (_, a, b) = time_two_threads(current_cpu, current_cpu);
        assert_eq!(a != b, cpus >= 2, "threads ran on CPUs {a} and {b}");
    }
}
