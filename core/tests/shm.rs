//! The shared-memory ring (feature `shm`): create/open in one process, a
//! second process producing while this one consumes (exact accounting, no
//! torn event), every `open` failure as an error, `O_EXCL`, and futex
//! waking across processes.
//!
//! The second process is this test binary run again with `EVQ_SHM_CHILD`
//! set, filtered to the `child` test, which does nothing otherwise.
#![cfg(target_os = "linux")]

use evqueue::{Error, Lag, Overflow, RecvError, SharedRing, ShmError, ShmOptions, Start};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Byte offsets in the file: the ring state, the process table, the slots.
const STATE: usize = 256;
const PROCESSES: usize = 896;
const SLOTS: usize = 9088;

/// A fresh path, removed on drop.
struct TempRing(PathBuf);

impl TempRing {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let name = format!("evq-test-{tag}-{}-{n}", std::process::id());
        TempRing(std::env::temp_dir().join(name))
    }
}

impl Drop for TempRing {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Event `i` of a child: `i` then its complement, so a torn copy shows.
fn payload(i: u64) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[..8].copy_from_slice(&i.to_le_bytes());
    p[8..].copy_from_slice(&(!i).to_le_bytes());
    p
}

fn decode(buf: &[u8]) -> u64 {
    let i = u64::from_le_bytes(buf[..8].try_into().unwrap());
    let check = u64::from_le_bytes(buf[8..16].try_into().unwrap());
    assert_eq!(check, !i, "torn event delivered");
    i
}

/// Held while a child is spawned, and by the tests that need a dropped
/// file lock to be gone: between its fork and its exec a child shares
/// every descriptor of this process (close-on-exec or not), and with them
/// the locks of its open file descriptions.
static SPAWNING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn no_spawning() -> std::sync::MutexGuard<'static, ()> {
    SPAWNING.lock().unwrap_or_else(|e| e.into_inner())
}

fn spawn_child(role: &str) -> Child {
    let _forking = no_spawning();
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("EVQ_SHM_CHILD", role)
        .stdout(Stdio::piped())
        .spawn()
        .expect("re-run the test binary")
}

/// The line the child printed after `key`.
fn child_result(child: Child, key: &str) -> String {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "child failed: {text}");
    // The harness prints "test child ... " before the child's own line.
    let (_, after) = text
        .split_once(key)
        .unwrap_or_else(|| panic!("no {key} in child output: {text}"));
    after.lines().next().unwrap_or("").trim().to_owned()
}

/// A push through either producer handle.
type Push<'a> = dyn FnMut(&[u8]) -> Result<u64, Error> + 'a;

/// The other process. Roles (`EVQ_SHM_CHILD`):
/// `produce <path> <n> sp|mp`: push `n` events (retrying `Full`), wake
/// after each; print `RESULT ok=<n> full=<refusals>`.
/// `wait <path>`: wait up to 20 s on an empty ring; print `WOKE <ready> <ms>`.
#[test]
fn child() {
    let Ok(role) = std::env::var("EVQ_SHM_CHILD") else {
        return;
    };
    let args: Vec<&str> = role.split(' ').collect();
    let ring = SharedRing::open(args[1]).expect("child open");
    match args[0] {
        "produce" => {
            let n: u64 = args[2].parse().unwrap();
            let mut full = 0u64;
            let mut push: Box<Push<'_>> = if args[3] == "sp" {
                let mut p = ring.producer().unwrap();
                Box::new(move |b| p.push(b))
            } else {
                let p = ring.mp_producer().unwrap();
                Box::new(move |b| p.push(b))
            };
            for i in 0..n {
                let since = Instant::now();
                loop {
                    match push(&payload(i)) {
                        Ok(_) => break,
                        Err(Error::Full) => {
                            full += 1;
                            assert!(since.elapsed() < Duration::from_secs(30), "ring stalled");
                            std::thread::yield_now();
                        }
                        Err(e) => panic!("push: {e}"),
                    }
                }
                ring.wake();
            }
            println!("RESULT ok={n} full={full}");
        }
        "wait" => {
            let start = Instant::now();
            let ready = ring.wait(Duration::from_secs(20));
            println!("WOKE {ready} {}", start.elapsed().as_millis());
        }
        "produce_forever" => {
            // Pushes `base + i` until killed.
            let base: u64 = args[2].parse().unwrap();
            let p = ring.mp_producer().unwrap();
            let mut i = 0;
            loop {
                match p.push(&payload(base + i)) {
                    Ok(_) => i += 1,
                    Err(Error::Full) => std::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
                ring.wake();
            }
        }
        "produce_single_forever" => {
            // Takes the single-producer role (over from a killed holder),
            // then pushes `base + i` until killed, retrying `Full`.
            let base: u64 = args[2].parse().unwrap();
            let mut p = ring.producer().expect("take the single-producer role");
            println!("TOOK {}", ring.next_seq());
            let mut i = 0;
            loop {
                match p.push(&payload(base + i)) {
                    Ok(_) => i += 1,
                    Err(Error::Full) => std::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
                ring.wake();
            }
        }
        "consume" => {
            // Claims until killed (or the ring closes), printing each claim.
            let mut buf = [0u8; 32];
            loop {
                match ring.try_claim(&mut buf) {
                    Ok(c) => println!("C {} {}", c.seq, decode(&buf)),
                    Err(RecvError::Empty | RecvError::Lagged(_)) => {
                        ring.wait(Duration::from_millis(10));
                    }
                    Err(RecvError::Closed) => break,
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn create_and_open_share_one_ring() {
    // A bare name lives under /dev/shm.
    let name = format!("evq-test-roundtrip-{}", std::process::id());
    let a = SharedRing::create(&name, 64, 32, Overflow::Overwrite).unwrap();
    let path = a.slots().path().to_owned();
    assert_eq!(path, Path::new("/dev/shm").join(&name));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let b = SharedRing::open(&name).unwrap();
    assert_eq!(
        (b.capacity(), b.slot_bytes(), b.overflow()),
        (64, 32, Overflow::Overwrite)
    );
    let mut sub = b.subscribe(Start::Now);
    {
        let mut producer = a.producer().unwrap();
        // The single-producer role is in the shared state: one holder across mappings.
        assert_eq!(b.producer().err(), Some(Error::ProducerTaken));
        assert_eq!(b.mp_producer().err(), Some(Error::ProducerTaken));
        for i in 0..100 {
            producer.push(&payload(i)).unwrap();
        }
    }
    let mut buf = [0u8; 32];
    // 100 pushed into 64 slots: the worker group lost the oldest ones.
    let mut delivered = 0;
    let mut lost = 0;
    loop {
        match b.try_claim(&mut buf) {
            Ok(c) => {
                lost += c.lost;
                assert_eq!(decode(&buf), c.seq);
                delivered += 1;
            }
            Err(RecvError::Lagged(n)) => lost += n,
            Err(RecvError::Empty) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    let stats = a.stats();
    assert_eq!(stats, b.stats());
    assert_eq!(
        (stats.pushed, stats.delivered, stats.overwritten),
        (100, delivered, lost)
    );
    assert_eq!(
        stats.pushed,
        stats.delivered + stats.overwritten + stats.depth
    );
    assert_eq!(sub.try_recv(&mut buf), Err(RecvError::Lagged(44)));

    assert!(a.close());
    assert!(b.is_closed() && b.is_sealed());
    SharedRing::remove(&name).unwrap();
    // Both mappings still work after the name is gone.
    assert_eq!(b.try_claim(&mut buf), Err(RecvError::Closed));
    assert!(SharedRing::open(&name).is_err());
}

#[test]
fn create_is_exclusive_and_checks_sizes() {
    let t = TempRing::new("excl");
    let _ring = SharedRing::create(&t.0, 16, 16, Overflow::Reject).unwrap();
    match SharedRing::create(&t.0, 16, 16, Overflow::Reject) {
        Err(ShmError::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists)
        }
        other => panic!("{:?}", other.err()),
    }
    let u = TempRing::new("config");
    assert!(matches!(
        SharedRing::create(&u.0, 1000, 16, Overflow::Reject),
        Err(ShmError::Config(Error::InvalidCapacity { capacity: 1000 }))
    ));
    assert!(matches!(
        SharedRing::create(&u.0, 16, 12, Overflow::Reject),
        Err(ShmError::Config(Error::InvalidSlotSize { slot_bytes: 12 }))
    ));
    assert!(!u.0.exists(), "a refused create leaves no file");
}

/// The bytes of a fresh valid ring file of 16 slots of 16 bytes.
fn valid_file() -> Vec<u8> {
    let t = TempRing::new("template");
    drop(SharedRing::create(&t.0, 16, 16, Overflow::Overwrite).unwrap());
    std::fs::read(&t.0).unwrap()
}

fn open_bytes(bytes: &[u8]) -> Result<SharedRing, ShmError> {
    let t = TempRing::new("bytes");
    std::fs::write(&t.0, bytes).unwrap();
    SharedRing::open(&t.0)
}

fn set_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_ne_bytes());
}

#[test]
fn open_refuses_bad_files_with_errors() {
    let valid = valid_file();
    assert_eq!(valid.len(), SLOTS + 16 * 64);
    assert!(open_bytes(&valid).is_ok());

    let t = TempRing::new("missing");
    match SharedRing::open(&t.0) {
        Err(ShmError::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
        }
        other => panic!("{:?}", other.err()),
    }

    let expect = |bytes: &[u8], field: &str, ok: fn(&ShmError) -> bool| {
        let err = open_bytes(bytes).err().expect("must not open");
        assert!(ok(&err), "{field}: {err:?}");
        let text = err.to_string();
        assert!(text.contains(field), "{text:?} does not name {field}");
    };

    let mut b = valid.clone();
    b[0] = b'X';
    expect(&b, "magic", |e| matches!(e, ShmError::BadMagic));

    let mut b = valid.clone();
    b[8..12].copy_from_slice(&1u32.to_ne_bytes());
    expect(&b, "version", |e| {
        matches!(e, ShmError::BadVersion { found: 1 })
    });

    expect(&valid[..100], "shorter than the 128-byte header", |e| {
        matches!(e, ShmError::Truncated { len: 100 })
    });
    expect(&[], "shorter", |e| {
        matches!(e, ShmError::Truncated { len: 0 })
    });
    expect(&valid[..valid.len() - 64], "file_bytes", |e| {
        matches!(e, ShmError::LengthMismatch { .. })
    });
    let mut longer = valid.clone();
    longer.extend_from_slice(&[0; 64]);
    expect(&longer, "file_bytes", |e| {
        matches!(e, ShmError::LengthMismatch { .. })
    });

    let mut b = valid.clone();
    set_u64(&mut b, 24, 12);
    expect(&b, "capacity", |e| {
        matches!(
            e,
            ShmError::BadField {
                field: "capacity",
                value: 12,
                ..
            }
        )
    });
    let mut b = valid.clone();
    set_u64(&mut b, 24, 1 << 40);
    expect(&b, "capacity", |e| matches!(e, ShmError::BadField { .. }));
    // Capacity doubled consistently but the file not: a length mismatch.
    let mut b = valid.clone();
    set_u64(&mut b, 24, 32);
    expect(&b, "file_bytes", |e| {
        matches!(
            e,
            ShmError::BadField {
                field: "file_bytes",
                ..
            }
        )
    });
    set_u64(&mut b, 80, (SLOTS + 32 * 64) as u64);
    expect(&b, "file_bytes", |e| {
        matches!(e, ShmError::LengthMismatch { .. })
    });

    for (at, field) in [
        (32, "slot_bytes"),
        (40, "slot_words"),
        (48, "slot_stride"),
        (56, "wake_offset"),
        (64, "state_offset"),
        (72, "slots_offset"),
        (88, "state_bytes"),
        (104, "processes_offset"),
    ] {
        let mut b = valid.clone();
        set_u64(&mut b, at, 7);
        expect(&b, field, |e| matches!(e, ShmError::BadField { .. }));
    }
    let mut b = valid.clone();
    b[100] = 1;
    expect(&b, "process_entries", |e| {
        matches!(e, ShmError::BadField { .. })
    });
    let mut b = valid.clone();
    b[112] = 1;
    expect(&b, "reserved", |e| matches!(e, ShmError::BadField { .. }));
    let mut b = valid.clone();
    b[20] = 2;
    expect(&b, "overflow", |e| matches!(e, ShmError::BadField { .. }));
    let mut b = valid.clone();
    b[96..100].copy_from_slice(&0x0403_0201u32.to_ne_bytes());
    expect(&b, "byte_order", |e| matches!(e, ShmError::BadField { .. }));

    // An impossible state: cursors beyond any sequence number, a stamp of
    // the far future.
    let mut b = valid.clone();
    set_u64(&mut b, 256, 1 << 61);
    expect(&b, "head", |e| matches!(e, ShmError::BadState { .. }));
    let mut b = valid.clone();
    set_u64(&mut b, 256 + 128, 5);
    expect(&b, "worker", |e| matches!(e, ShmError::BadState { .. }));
    let mut b = valid.clone();
    set_u64(&mut b, SLOTS, 1 << 40);
    expect(&b, "stamp", |e| matches!(e, ShmError::BadState { .. }));
    let mut b = valid.clone();
    b[256 + 512] = 0x80;
    expect(&b, "control", |e| matches!(e, ShmError::BadState { .. }));
}

#[test]
fn open_refuses_a_foreign_owner() {
    use std::os::unix::fs::MetadataExt;
    let t = TempRing::new("foreign");
    drop(SharedRing::create(&t.0, 16, 16, Overflow::Overwrite).unwrap());
    // The new file is ours: its owner is this process's effective uid.
    if std::fs::metadata(&t.0).unwrap().uid() != 0 {
        eprintln!("SKIPPED: not root, cannot give a file to another user");
        return;
    }
    std::os::unix::fs::chown(&t.0, Some(65534), None).unwrap();
    match SharedRing::open(&t.0) {
        Err(e @ ShmError::ForeignOwner { owner: 65534, .. }) => {
            assert!(e.to_string().contains("owned by uid 65534"))
        }
        other => panic!("{:?}", other.err()),
    }
    assert!(SharedRing::open_with(&t.0, ShmOptions::new().allow_foreign_owner(true)).is_ok());
}

/// Another process produces `n` events while this one claims: every event
/// it got `Ok` for is delivered once or counted lost, none torn, in order.
fn cross_process(mode: &str, overflow: Overflow, capacity: usize, n: u64) {
    let t = TempRing::new("xproc");
    let ring = SharedRing::create(&t.0, capacity, 32, overflow).unwrap();
    let mut child = Some(spawn_child(&format!(
        "produce {} {n} {mode}",
        t.0.display()
    )));
    let mut buf = [0u8; 32];
    let (mut delivered, mut lost, mut last) = (0u64, 0u64, None::<u64>);
    let mut result = None;
    loop {
        match ring.try_claim(&mut buf) {
            Ok(c) => {
                let i = decode(&buf);
                assert!(
                    last.map_or(true, |l| i > l),
                    "out of order: {i} after {last:?}"
                );
                last = Some(i);
                delivered += 1;
                lost += c.lost;
            }
            Err(RecvError::Lagged(k)) => lost += k,
            Err(RecvError::Empty) => {
                if child.as_mut().map(|c| c.try_wait().unwrap().is_some()) == Some(true) {
                    result = Some(child_result(child.take().unwrap(), "RESULT"));
                } else if child.is_none() {
                    break;
                } else {
                    ring.wait(Duration::from_millis(50));
                }
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    let result = result.unwrap();
    let parse = |key: &str| -> u64 {
        let field = result.split(' ').find_map(|f| f.strip_prefix(key)).unwrap();
        field.parse().unwrap()
    };
    let (ok, full) = (parse("ok="), parse("full="));
    let s = ring.stats();
    eprintln!("{mode} {overflow:?}: {s:?}, child ok={ok} full={full}");
    assert_eq!(ok, n);
    assert_eq!(s.pushed, ok + full);
    assert_eq!(s.rejected, full);
    assert_eq!(s.delivered, delivered);
    assert_eq!(s.overwritten, lost);
    assert_eq!(s.depth, 0);
    assert_eq!(s.pushed, s.delivered + s.overwritten + s.rejected);
    if overflow == Overflow::Reject {
        assert_eq!((delivered, lost), (n, 0));
    }
}

#[test]
fn another_process_produces_overwrite_single() {
    cross_process("sp", Overflow::Overwrite, 64, 200_000);
}

#[test]
fn another_process_produces_overwrite_multi() {
    cross_process("mp", Overflow::Overwrite, 64, 200_000);
}

#[test]
fn another_process_produces_reject() {
    cross_process("mp", Overflow::Reject, 64, 50_000);
    cross_process("sp", Overflow::Reject, 64, 50_000);
}

/// CPU ticks (user + system) a process used, from /proc/<pid>/stat.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // Fields 14 and 15 of the line: the 12th and 13th after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn a_sleeping_process_is_woken_and_burns_no_cpu() {
    let t = TempRing::new("wake");
    let ring = SharedRing::create(&t.0, 16, 16, Overflow::Overwrite).unwrap();
    let child = spawn_child(&format!("wait {}", t.0.display()));
    let start = Instant::now();
    while ring.waiters() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "child never waited"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let before = cpu_ticks(child.id());
    std::thread::sleep(Duration::from_millis(500));
    let idle = cpu_ticks(child.id()) - before;
    assert!(idle <= 2, "a waiting process used {idle} ticks in 500 ms");
    ring.mp_producer().unwrap().push(b"wake up").unwrap();
    ring.wake();
    let line = child_result(child, "WOKE");
    let (ready, ms) = line.split_once(' ').unwrap();
    assert_eq!(ready, "true");
    let ms: u64 = ms.parse().unwrap();
    assert!((500..15_000).contains(&ms), "woke after {ms} ms");
    assert_eq!(ring.waiters(), 0);
}

/// 128 opens of the file (processes) may hold multi-producer handles at
/// once; the next is refused with `ProducerTaken`, and gets an entry once
/// one is given back.
#[test]
fn multi_producer_processes_are_bounded_by_the_process_table() {
    let _locks = no_spawning();
    let t = TempRing::new("entries");
    let ring = SharedRing::create(&t.0, 16, 16, Overflow::Overwrite).unwrap();
    let mut opens: Vec<SharedRing> = (0..128).map(|_| SharedRing::open(&t.0).unwrap()).collect();
    for open in &opens {
        open.mp_producer().unwrap().push(b"one").unwrap();
    }
    assert_eq!(ring.mp_producer().err(), Some(Error::ProducerTaken));
    // Waiting needs no entry: without one, it still waits.
    assert!(!ring.wait_for(ring.next_seq(), Duration::from_millis(1)));
    opens.pop();
    ring.mp_producer().unwrap().push(b"two").unwrap();
    assert_eq!(ring.stats().pushed, 129);
}

/// A process killed while it waits stays counted in `waiters` until a
/// `wake` that woke nobody finds it dead (or its process entry is taken
/// again); then `wake` makes no system call for it any more.
#[test]
fn a_wake_forgets_a_sleeper_killed_in_wait() {
    let t = TempRing::new("deadsleeper");
    let ring = SharedRing::create(&t.0, 16, 16, Overflow::Overwrite).unwrap();
    let waiters_reach = |n: u32| {
        let start = Instant::now();
        while ring.waiters() != n {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "waiters never {n}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let asleep = spawn_child(&format!("wait {}", t.0.display()));
    let mut killed = spawn_child(&format!("wait {}", t.0.display()));
    waiters_reach(2);
    // Both asleep in FUTEX_WAIT (not between registering and sleeping).
    std::thread::sleep(Duration::from_millis(100));
    killed.kill().unwrap();
    killed.wait().unwrap();
    assert_eq!(ring.waiters(), 2, "the dead sleeper is still counted");
    // This wake wakes the live one: nothing is forgotten. (A single
    // producer: a multi-producer would take the dead process's entry,
    // which forgets its sleepers too.)
    ring.producer().unwrap().push(b"x").unwrap();
    ring.wake();
    assert_eq!(child_result(asleep, "WOKE").split(' ').next(), Some("true"));
    assert_eq!(ring.waiters(), 1);
    // The next finds nobody, and forgets the dead one.
    ring.wake();
    assert_eq!(ring.waiters(), 0);
}

#[test]
fn wait_times_out_and_sees_a_close() {
    let t = TempRing::new("timeout");
    let ring = SharedRing::create(&t.0, 16, 16, Overflow::Overwrite).unwrap();
    let start = Instant::now();
    assert!(!ring.wait(Duration::from_millis(100)));
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert!(!ring.wait(Duration::ZERO));
    assert_eq!(ring.waiters(), 0);
    ring.close();
    ring.wake();
    assert!(ring.wait(Duration::from_secs(10)));
}

/// The fuzz target's seeds are valid rings: they keep mutations past the
/// magic and the header checks, and must follow the format when it changes.
#[test]
fn fuzz_seeds_open() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/shm_open");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let ring = open_bytes(&bytes).expect("a seed opens");
        ring.mp_producer().unwrap().push(b"seed").unwrap();
        seen += 1;
    }
    assert!(seen >= 2);
}

/// A small deterministic generator for kill delays.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const KILL_ROUNDS: u64 = 100;

/// `kill -9` of a multi-producer process mid-stream, 100 times, while this
/// process claims: no torn event, no event twice, each producer's events in
/// order, and once a last producer has pushed four laps, every sequence
/// number delivered or counted lost. A ticket a killed producer held is
/// recovered by the waiting consumer, so under `Reject` the ring never
/// stalls: every event of the last producer is delivered.
fn producers_killed_mid_stream(overflow: Overflow) {
    let t = TempRing::new("killprod");
    let capacity = 1024;
    let ring = SharedRing::create(&t.0, capacity, 32, overflow).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
    let (delivered, lost, ids) = std::thread::scope(|s| {
        let consumer = s.spawn(|| {
            let mut buf = [0u8; 32];
            let (mut delivered, mut lost) = (0u64, 0u64);
            let mut ids = Vec::new();
            loop {
                match ring.try_claim(&mut buf) {
                    Ok(c) => {
                        ids.push(decode(&buf));
                        delivered += 1;
                        lost += c.lost;
                    }
                    Err(RecvError::Lagged(n)) => lost += n,
                    Err(RecvError::Empty) if stop.load(Ordering::Acquire) => break,
                    Err(RecvError::Empty) => {
                        ring.wait(Duration::from_millis(10));
                    }
                    Err(e) => panic!("{e:?}"),
                }
            }
            (delivered, lost, ids)
        });
        for round in 0..KILL_ROUNDS {
            let mut child = spawn_child(&format!(
                "produce_forever {} {}",
                t.0.display(),
                (round + 1) << 40
            ));
            std::thread::sleep(Duration::from_millis(5 + rng.below(25)));
            child.kill().unwrap();
            child.wait().unwrap();
        }
        // A producer that finishes laps the ring past every dead ticket.
        let last = spawn_child(&format!("produce {} {} mp", t.0.display(), 4 * capacity));
        child_result(last, "RESULT");
        stop.store(true, Ordering::Release);
        ring.wake();
        consumer.join().unwrap()
    });
    let s = ring.stats();
    eprintln!("{KILL_ROUNDS} producers killed ({overflow:?}): {s:?}");
    assert_eq!((s.delivered, s.overwritten, s.depth), (delivered, lost, 0));
    assert_eq!(s.pushed, s.delivered + s.lost());
    let last_producers = ids.iter().filter(|&&id| id >> 40 == 0).count();
    if overflow == Overflow::Reject {
        assert_eq!(last_producers as u64, 4 * capacity as u64);
    }
    let mut seen = std::collections::HashSet::new();
    let mut last_of = std::collections::HashMap::new();
    for id in ids {
        assert!(seen.insert(id), "event {id:#x} delivered twice");
        let (producer, i) = (id >> 40, id & ((1 << 40) - 1));
        if let Some(prev) = last_of.insert(producer, i) {
            assert!(i > prev, "producer {producer}: {i} after {prev}");
        }
    }
    assert!(last_producers > 0);
}

#[test]
fn producers_killed_mid_stream_overwrite() {
    producers_killed_mid_stream(Overflow::Overwrite);
}

#[test]
fn producers_killed_mid_stream_reject() {
    producers_killed_mid_stream(Overflow::Reject);
}

/// `kill -9` of a consumer process mid-stream, 100 times, while this
/// process pushes (`Reject`, so nothing is overwritten): no event is
/// claimed twice across all consumers; the only events not seen are those
/// a killed consumer had claimed (at most one per kill: it claims one at a
/// time); and the accounting is exact.
#[test]
fn consumers_killed_mid_stream() {
    let t = TempRing::new("killcons");
    let ring = SharedRing::create(&t.0, 256, 32, Overflow::Reject).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d ^ u64::from(std::process::id()));
    let mut seqs = Vec::new();
    let (ok, full) = std::thread::scope(|s| {
        let producer = s.spawn(|| {
            let p = ring.mp_producer().unwrap();
            let (mut ok, mut full) = (0u64, 0u64);
            while !stop.load(Ordering::Acquire) {
                match p.push(&payload(ok)) {
                    Ok(_) => {
                        ok += 1;
                        ring.wake();
                    }
                    Err(Error::Full) => {
                        full += 1;
                        std::thread::sleep(Duration::from_micros(50));
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            (ok, full)
        });
        for _ in 0..KILL_ROUNDS {
            let mut child = spawn_child(&format!("consume {}", t.0.display()));
            std::thread::sleep(Duration::from_millis(5 + rng.below(25)));
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                // The harness prints "test child ... " before the first claim.
                if let Some((_, claim)) = line.split_once("C ") {
                    let mut f = claim.split(' ');
                    let seq: u64 = f.next().unwrap().parse().unwrap();
                    let id: u64 = f.next().unwrap().parse().unwrap();
                    assert_eq!(seq, id, "a producer of one thread: seq is its index");
                    seqs.push(seq);
                }
            }
        }
        stop.store(true, Ordering::Release);
        producer.join().unwrap()
    });
    // This process drains what is left.
    let mut buf = [0u8; 32];
    loop {
        match ring.try_claim(&mut buf) {
            Ok(c) => {
                assert_eq!(decode(&buf), c.seq);
                seqs.push(c.seq);
            }
            Err(RecvError::Empty) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    let s = ring.stats();
    let seen = seqs.len() as u64;
    eprintln!("{KILL_ROUNDS} consumers killed: {s:?}, seen {seen}");
    let unique: std::collections::HashSet<u64> = seqs.iter().copied().collect();
    assert_eq!(unique.len() as u64, seen, "an event was claimed twice");
    assert_eq!(
        (s.pushed, s.rejected, s.overwritten, s.depth),
        (ok + full, full, 0, 0)
    );
    assert_eq!(s.delivered, ok);
    assert!(
        ok - seen <= KILL_ROUNDS,
        "{} events lost in {KILL_ROUNDS} kills",
        ok - seen
    );
}

/// `kill -9` of the single producer, 100 times under each policy: the role
/// is held as a file lock the kernel drops with the process, so the next
/// producer process takes it over (no `ProducerTaken`) and goes on with the
/// next sequence number. No torn event, no sequence number or event twice,
/// each producer's events in order, exact accounting; under `Reject`
/// nothing is lost at all and the worker group never stalls.
fn single_producers_killed(overflow: Overflow) {
    let t = TempRing::new("killsingle");
    let ring = SharedRing::create(&t.0, 256, 32, overflow).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut rng = XorShift(0x6a09_e667_f3bc_c909 ^ u64::from(std::process::id()));
    let mut took = 0;
    let (delivered, lost, claims) = std::thread::scope(|s| {
        let consumer = s.spawn(|| {
            let mut buf = [0u8; 32];
            let (mut delivered, mut lost) = (0u64, 0u64);
            let mut claims = Vec::new();
            loop {
                match ring.try_claim(&mut buf) {
                    Ok(c) => {
                        claims.push((c.seq, decode(&buf)));
                        delivered += 1;
                        lost += c.lost;
                    }
                    Err(RecvError::Lagged(n)) => lost += n,
                    Err(RecvError::Empty) if stop.load(Ordering::Acquire) => break,
                    Err(RecvError::Empty) => {
                        ring.wait(Duration::from_millis(10));
                    }
                    Err(e) => panic!("{e:?}"),
                }
            }
            (delivered, lost, claims)
        });
        for round in 0..KILL_ROUNDS {
            let mut child = spawn_child(&format!(
                "produce_single_forever {} {}",
                t.0.display(),
                (round + 1) << 40
            ));
            // Kill it only once it holds the role (its "TOOK" line), at a
            // random moment of its pushing.
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let holds = lines.any(|l| l.is_ok_and(|l| l.contains("TOOK")));
            assert!(holds, "round {round}: the producer did not take the role");
            took += 1;
            std::thread::sleep(Duration::from_millis(rng.below(20)));
            child.kill().unwrap();
            child.wait().unwrap();
        }
        // A last producer, also taking over, finishes normally.
        let last = spawn_child(&format!("produce {} 1000 sp", t.0.display()));
        child_result(last, "RESULT");
        stop.store(true, Ordering::Release);
        ring.wake();
        consumer.join().unwrap()
    });
    let s = ring.stats();
    eprintln!("{KILL_ROUNDS} single producers killed ({took} had the role), {overflow:?}: {s:?}");
    assert!(
        took >= KILL_ROUNDS / 2,
        "only {took} producers took the role"
    );
    assert_eq!((s.delivered, s.overwritten, s.depth), (delivered, lost, 0));
    assert_eq!(s.pushed, s.delivered + s.overwritten + s.rejected);
    if overflow == Overflow::Reject {
        assert_eq!(lost, 0);
    }
    let mut ids = std::collections::HashSet::new();
    let mut last_of = std::collections::HashMap::new();
    let mut prev_seq = None;
    for (seq, id) in claims {
        assert!(
            prev_seq.map_or(true, |p| seq > p),
            "seq {seq} after {prev_seq:?}"
        );
        prev_seq = Some(seq);
        assert!(ids.insert(id), "event {id:#x} delivered twice");
        let (producer, i) = (id >> 40, id & ((1 << 40) - 1));
        if let Some(prev) = last_of.insert(producer, i) {
            assert!(i > prev, "producer {producer}: {i} after {prev}");
        }
    }
    // The role is free again: this process can take it.
    assert!(ring.producer().is_ok());
}

#[test]
fn single_producers_killed_overwrite() {
    single_producers_killed(Overflow::Overwrite);
}

#[test]
fn single_producers_killed_reject() {
    single_producers_killed(Overflow::Reject);
}

#[test]
fn the_single_producer_role_is_exclusive_across_opens() {
    let _locks = no_spawning();
    let t = TempRing::new("lease");
    let a = SharedRing::create(&t.0, 16, 16, Overflow::Overwrite).unwrap();
    let b = SharedRing::open(&t.0).unwrap();
    let held = a.producer().unwrap();
    // Another open of the file (another process would be the same): the
    // lease is held, so no takeover.
    assert_eq!(b.producer().err(), Some(Error::ProducerTaken));
    assert_eq!(a.producer().err(), Some(Error::ProducerTaken));
    assert_eq!(b.mp_producer().err(), Some(Error::ProducerTaken));
    drop(held);
    let again = b.producer().unwrap();
    assert_eq!(a.producer().err(), Some(Error::ProducerTaken));
    drop(again);
}

/// A holder that died between committing event `head` and publishing
/// `head + 1`: the worker group may claim that event, so the producer
/// that takes over continues after it. And a close requested while the
/// holder was dead is sealed by whoever tries to take the role.
#[test]
fn takeover_after_an_unpublished_commit_and_a_close() {
    let _locks = no_spawning();
    use std::os::unix::fs::FileExt;
    let t = TempRing::new("takeover");
    {
        let a = SharedRing::create(&t.0, 16, 16, Overflow::Overwrite).unwrap();
        let mut p = a.producer().unwrap();
        for i in 0..3 {
            p.push(&payload(i)).unwrap();
        }
        // Die holding the role: the bit stays set, the lock goes with the file.
        std::mem::forget(p);
    }
    // Event 3 committed, `head` still 3: stamp (3 + 1) << 2 | COMMITTED,
    // length 16, the payload, in slot 3.
    let file = std::fs::OpenOptions::new().write(true).open(&t.0).unwrap();
    let mut slot = Vec::new();
    slot.extend_from_slice(&(4u64 << 2).to_ne_bytes());
    slot.extend_from_slice(&16u64.to_ne_bytes());
    slot.extend_from_slice(&payload(3));
    file.write_all_at(&slot, (SLOTS + 3 * 64) as u64).unwrap();

    let b = SharedRing::open(&t.0).unwrap();
    assert_eq!(b.next_seq(), 3);
    let mut buf = [0u8; 16];
    for seq in 0..4 {
        assert_eq!(b.try_claim(&mut buf).unwrap().seq, seq);
        assert_eq!(decode(&buf), seq);
    }
    let mut q = b.producer().expect("take over a dead holder's role");
    assert_eq!(b.next_seq(), 4);
    assert_eq!(q.push(&payload(4)), Ok(4));
    assert_eq!(b.try_claim(&mut buf).unwrap().seq, 4);
    assert_eq!(decode(&buf), 4);
    let s = b.stats();
    assert_eq!((s.pushed, s.delivered, s.overwritten), (5, 5, 0));

    // The holder dies again, and a close is requested meanwhile: it cannot
    // seal `head` (the role's holder does that), so consumers wait ...
    std::mem::forget(q);
    drop(b);
    let c = SharedRing::open(&t.0).unwrap();
    assert!(c.close());
    assert!(!c.is_sealed());
    // ... until someone tries to take the role: refused, and sealed.
    assert_eq!(c.producer().err(), Some(Error::Closed));
    assert!(c.is_sealed());
    assert_eq!(c.try_claim(&mut buf), Err(RecvError::Closed));
}

/// A ring file whose multi-producer died holding ticket 0 (`head` 1,
/// slot 0 stamped `WRITING(0)`), in a file kept until the guard drops.
fn ring_with_a_dead_ticket(overflow: Overflow) -> (TempRing, SharedRing) {
    let mut b = valid_file();
    b[20] = (overflow == Overflow::Reject) as u8;
    set_u64(&mut b, STATE, 1); // head
    b[STATE + 512] = 2; // control: MULTI
    set_u64(&mut b, SLOTS, (1 << 2) | 1); // slot 0: WRITING(0)
    let t = TempRing::new("dead-ticket");
    std::fs::write(&t.0, &b).unwrap();
    let ring = SharedRing::open(&t.0).unwrap();
    (t, ring)
}

/// Sets writer entry `i`'s count of pushes in flight, as its process would.
fn set_in_flight(path: &Path, i: usize, n: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(&n.to_ne_bytes(), (PROCESSES + i * 64) as u64)
        .unwrap();
}

/// A ticket whose writer is alive is waited for (the consumer sleeps, it
/// does not spin, and under `Reject` the ring fills); once the writer's
/// process is gone with the push still in flight, the next wait marks the
/// ticket lost and the ring goes on.
#[test]
fn a_dead_writers_ticket_is_recovered() {
    let _locks = no_spawning();
    let (t, ring) = ring_with_a_dead_ticket(Overflow::Reject);
    // Another open of the file stands for the writer's process: it holds a
    // writer entry (0, the first), with one push in flight.
    let writer = SharedRing::open(&t.0).unwrap();
    writer.mp_producer().unwrap();
    set_in_flight(&t.0, 0, 1);

    let mut buf = [0u8; 16];
    assert_eq!(ring.try_claim(&mut buf), Err(RecvError::Empty));
    let start = Instant::now();
    assert!(
        !ring.wait(Duration::from_millis(200)),
        "a live writer's ticket is waited for"
    );
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert!(!ring.recover(0));
    let p = ring.mp_producer().unwrap();
    for i in 1..16 {
        assert_eq!(p.push(&payload(i)), Ok(i));
    }
    assert_eq!(p.push(&payload(16)), Err(Error::Full));

    // The writer's process dies mid-push: its lock goes, its count stays.
    drop(writer);
    let start = Instant::now();
    assert!(ring.wait(Duration::from_secs(10)));
    assert!(start.elapsed() < Duration::from_secs(5));
    let first = ring.try_claim(&mut buf).unwrap();
    assert_eq!((first.seq, first.lost), (1, 1));
    for i in 2..16 {
        assert_eq!(ring.try_claim(&mut buf).unwrap().seq, i);
        assert_eq!(decode(&buf), i);
    }
    assert_eq!(p.push(&payload(16)), Ok(16));
    let s = ring.stats();
    assert_eq!(
        (s.pushed, s.delivered, s.overwritten, s.rejected, s.depth),
        (18, 15, 1, 1, 1)
    );
    assert_eq!(s.pushed, s.delivered + s.lost() + s.depth);
}

/// Under `Overwrite`, a slot a dead writer left busy is taken over by the
/// next lap's producer (not marked lost again every lap), and nothing of a
/// live writer's is: while the writer lives, that producer's event is lost.
#[test]
fn a_dead_writers_slot_is_taken_over_on_the_next_lap() {
    let _locks = no_spawning();
    for writer_alive in [true, false] {
        let (t, ring) = ring_with_a_dead_ticket(Overflow::Overwrite);
        let ring = ring.with_lag(Lag::Oldest);
        let writer = SharedRing::open(&t.0).unwrap();
        writer.mp_producer().unwrap();
        set_in_flight(&t.0, 0, 1);
        if !writer_alive {
            drop(writer);
        }
        let p = ring.mp_producer().unwrap();
        for i in 1..=16 {
            p.push(&payload(i)).unwrap(); // ticket 16 is slot 0's next lap
        }
        let mut buf = [0u8; 16];
        let first = ring.try_claim(&mut buf).unwrap();
        assert_eq!((first.seq, first.lost), (1, 1));
        let mut seen = vec![decode(&buf)];
        loop {
            match ring.try_claim(&mut buf) {
                Ok(c) => {
                    assert_eq!(decode(&buf), c.seq);
                    seen.push(c.seq);
                }
                Err(RecvError::Empty) => break,
                Err(RecvError::Lagged(n)) => {
                    assert!(writer_alive, "lost {n}");
                    assert_eq!(n, 1);
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        let expect: Vec<u64> = if writer_alive {
            (1..16).collect()
        } else {
            (1..=16).collect()
        };
        assert_eq!(seen, expect, "writer alive: {writer_alive}");
    }
}
