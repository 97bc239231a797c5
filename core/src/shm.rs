//! Feature `shm` (Linux): a ring in a memory-mapped file, shared by
//! processes. [`SharedRing`] is [`Ring`]`<`[`MappedSlots`]`>`: the same
//! algorithm, producers, worker-group claims and subscribers as a heap ring,
//! over a third storage whose slots *and* state ([`RingState`]: cursors,
//! counters, control byte) live in the file.
//!
//! The file (default directory `/dev/shm`) is position independent: a
//! versioned header of sizes and byte offsets (no pointers), a wake block
//! (a futex word and a waiter count), the ring state, a process table and
//! the slots. `open`
//! reads the header into process memory with `pread`, validates every field
//! against the file's length and the ring's bounds, checks the state's
//! cursors and every slot stamp, and only then maps the file; from then on
//! it uses its own validated copy of the sizes, never the file's.
//! `docs/ARCHITECTURE.md`, "Shared memory", has the layout table and the
//! crash semantics.
//!
//! The single-producer role is also a lock on the file (an open file
//! description lock, `F_OFD_SETLK`), which the kernel drops when its holder
//! dies: the next [`producer`](Ring::producer) takes a dead holder's role
//! over and continues with the next sequence number.
//!
//! Crashes: each process that pushes through multi-producer handles (or
//! waits) holds an entry of a process table in the file, counting its
//! pushes in flight (and its sleepers), behind another such lock. A
//! reader waiting at a ticket that was handed out but not committed marks
//! it lost once every process with pushes in flight is dead
//! ([`recover`](Ring::recover)), so a producer killed mid-write never
//! stalls the ring; a `wake` forgets sleepers of dead processes.
//!
//! Waking: an idle consumer calls [`wait`](Ring::wait) (a `FUTEX_WAIT` on
//! the shared word, no polling); producers call [`wake`](Ring::wake) after
//! pushing. A push itself never touches the wake block: `wake` is one
//! `SeqCst` fence and one load when nobody sleeps, and a `FUTEX_WAKE`
//! system call only when someone does.

use crate::ring::{Overflow, Ring};
use crate::stamp;
use crate::state::{layout, RingState};
use crate::storage::{sealed, slot_footprint, SlotRef, Storage, WORD_BYTES};
use crate::sync::{fence, AtomicU32, AtomicU64, Ordering::*};
use crate::{MAX_CAPACITY, MAX_SLOT_BYTES, MIN_SLOT_BYTES};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A ring in a memory-mapped file, shared by processes. Create it with
/// [`SharedRing::create`](Ring::create), attach with
/// [`SharedRing::open`](Ring::open); everything else is [`Ring`]'s API.
///
/// ```
/// use evqueue::{Overflow, SharedRing, Start};
/// let path = std::env::temp_dir().join(format!("evq-doc-{}", std::process::id()));
/// let ring = SharedRing::create(&path, 1024, 64, Overflow::Overwrite)?;
/// let other = SharedRing::open(&path)?;          // another process would do this
/// let mut sub = other.subscribe(Start::Now);
/// ring.mp_producer()?.push(b"hello")?;
/// ring.wake();
/// let mut buf = [0u8; 64];
/// let claim = sub.try_recv(&mut buf).unwrap();
/// assert_eq!(&buf[..claim.len], b"hello");
/// SharedRing::remove(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type SharedRing = Ring<MappedSlots>;

/// The file's first 8 bytes.
pub const MAGIC: [u8; 8] = *b"EVQUEUE\x7f";
/// The layout version this build writes and reads.
pub const LAYOUT_VERSION: u32 = 2;
/// Where a bare file name (no `/`) is placed.
pub const DEFAULT_DIR: &str = "/dev/shm";

/// Bytes of the header block.
const HEADER_BYTES: usize = 128;
/// Byte offsets of the wake block, the state, the process table and the slots.
const WAKE_OFFSET: usize = 128;
const STATE_OFFSET: usize = 256;
const PROCESSES_OFFSET: usize = STATE_OFFSET + layout::BYTES;
const SLOTS_OFFSET: usize = PROCESSES_OFFSET + PROCESS_ENTRIES * PROCESS_ENTRY_BYTES;
/// Processes that may push through multi-producer handles or wait at once:
/// each takes an entry of the process table (its pushes in flight and its
/// sleepers, on a cache line of its own), held by a file lock the kernel
/// drops when it dies.
pub const PROCESS_ENTRIES: usize = 128;
const PROCESS_ENTRY_BYTES: usize = 64;
/// File byte locked (`F_OFD_SETLK`) by the holder of process entry `i`:
/// `PROCESS_LOCK_BASE + i`. Byte 0 is the single-producer lease.
const PROCESS_LOCK_BASE: usize = 1;
/// Written native-endian: a file from a machine of the other byte order
/// reads as `0x04030201`.
const BYTE_ORDER: u32 = 0x0102_0304;

const _: () = assert!(SLOTS_OFFSET % layout::ALIGN == 0 && STATE_OFFSET % layout::ALIGN == 0);
const _: () = assert!(SLOTS_OFFSET == 9088 && PROCESSES_OFFSET == 896);
const _: () = assert!(WAKE_OFFSET >= HEADER_BYTES && WAKE_OFFSET + 8 <= STATE_OFFSET);

/// The header fields, in file order (all native-endian).
mod field {
    pub(super) const MAGIC: usize = 0; // [u8; 8]
    pub(super) const VERSION: usize = 8; // u32
    pub(super) const HEADER_BYTES: usize = 12; // u32
    pub(super) const WORD_BYTES: usize = 16; // u32
    pub(super) const OVERFLOW: usize = 20; // u32: 0 Overwrite, 1 Reject
    pub(super) const CAPACITY: usize = 24; // u64
    pub(super) const SLOT_BYTES: usize = 32; // u64
    pub(super) const SLOT_WORDS: usize = 40; // u64
    pub(super) const SLOT_STRIDE: usize = 48; // u64: bytes from one slot to the next
    pub(super) const WAKE_OFFSET: usize = 56; // u64
    pub(super) const STATE_OFFSET: usize = 64; // u64
    pub(super) const SLOTS_OFFSET: usize = 72; // u64
    pub(super) const FILE_BYTES: usize = 80; // u64
    pub(super) const STATE_BYTES: usize = 88; // u64
    pub(super) const BYTE_ORDER: usize = 96; // u32
    pub(super) const PROCESS_ENTRIES: usize = 100; // u32
    pub(super) const PROCESSES_OFFSET: usize = 104; // u64; 112..128 reserved, zero
}

/// Why a shared ring could not be created or opened. Nothing is mapped
/// (and, for `create`, no file is left behind) when one is returned.
#[derive(Debug)]
#[non_exhaustive]
pub enum ShmError {
    /// A system call failed: `op` names it (`open`, `mmap`, ...).
    Io {
        /// The operation.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// `create`: the capacity or slot size is out of bounds.
    Config(crate::Error),
    /// `open`: the path is not a regular file.
    NotAFile,
    /// `open`: the file belongs to another user (see
    /// [`ShmOptions::allow_foreign_owner`]).
    ForeignOwner {
        /// The file's owner.
        owner: u32,
        /// This process's effective user.
        uid: u32,
    },
    /// `open`: the file is shorter than the header.
    Truncated {
        /// The file's length in bytes.
        len: u64,
    },
    /// `open`: the file does not start with [`MAGIC`] (not an evqueue ring,
    /// or one whose creator has not finished initialising it).
    BadMagic,
    /// `open`: a layout version this build does not read.
    BadVersion {
        /// The file's version.
        found: u32,
    },
    /// `open`: a header field is invalid: `field` names it.
    BadField {
        /// The header field.
        field: &'static str,
        /// Its value in the file.
        value: u64,
        /// What it should be.
        expected: &'static str,
    },
    /// `open`: the file's length is not what the header's sizes make it.
    LengthMismatch {
        /// The file's length.
        len: u64,
        /// The length the header describes.
        expected: u64,
    },
    /// `open`: the ring state is impossible (corrupted): `field` names it.
    BadState {
        /// The state field (`head`, `worker`, ..., or `stamp` of a slot).
        field: &'static str,
        /// Its value.
        value: u64,
        /// What bounds it.
        expected: &'static str,
    },
}

impl fmt::Display for ShmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShmError::Io { op, path, source } => {
                write!(f, "shared ring {}: {op} failed: {source}", path.display())
            }
            ShmError::Config(e) => write!(f, "shared ring: {e}"),
            ShmError::NotAFile => write!(f, "shared ring: not a regular file"),
            ShmError::ForeignOwner { owner, uid } => write!(
                f,
                "shared ring: file owned by uid {owner}, not by this process's uid {uid} \
                 (ShmOptions::allow_foreign_owner opens it anyway)"
            ),
            ShmError::Truncated { len } => write!(
                f,
                "shared ring: file of {len} bytes is shorter than the {HEADER_BYTES}-byte header"
            ),
            ShmError::BadMagic => write!(
                f,
                "shared ring: header field `magic` is not EVQUEUE\\x7f (not an evqueue ring, \
                 or not initialised yet)"
            ),
            ShmError::BadVersion { found } => write!(
                f,
                "shared ring: header field `version` is {found}; this build reads version \
                 {LAYOUT_VERSION}"
            ),
            ShmError::BadField {
                field,
                value,
                expected,
            } => write!(
                f,
                "shared ring: header field `{field}` is {value}; expected {expected}"
            ),
            ShmError::LengthMismatch { len, expected } => write!(
                f,
                "shared ring: file is {len} bytes; header field `file_bytes` and the sizes \
                 say {expected}"
            ),
            ShmError::BadState {
                field,
                value,
                expected,
            } => write!(
                f,
                "shared ring: state field `{field}` is {value}; expected {expected}"
            ),
        }
    }
}

impl std::error::Error for ShmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ShmError::Io { source, .. } => Some(source),
            ShmError::Config(e) => Some(e),
            _ => None,
        }
    }
}

/// Options for [`SharedRing::open_with`](Ring::open_with).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShmOptions {
    /// Open a file owned by another user (default `false`: refused with
    /// [`ShmError::ForeignOwner`]). Whoever can write the file can make
    /// this process lose or misreport events, though never read or write
    /// outside the mapping.
    pub allow_foreign_owner: bool,
}

impl ShmOptions {
    /// The defaults: refuse a file owned by another user.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`allow_foreign_owner`](Self::allow_foreign_owner).
    pub fn allow_foreign_owner(mut self, allow: bool) -> Self {
        self.allow_foreign_owner = allow;
        self
    }
}

/// The wake block: the futex word sleepers wait on and how many sleep.
#[repr(C)]
struct Wake {
    /// Bumped by a `wake` that found sleepers; `FUTEX_WAIT` compares it.
    seq: AtomicU32,
    /// Consumers between registering and leaving `wait`.
    waiters: AtomicU32,
}

/// One entry of the process table, for the process (open of the file)
/// holding its lock.
#[repr(C, align(64))]
struct ProcessEntry {
    /// Its multi-producer pushes between `writing_begin` and `writing_end`.
    in_flight: AtomicU64,
    /// Its threads inside `wait_for`, counted in the wake block's `waiters`
    /// too: what a `wake` subtracts from there once the process is dead.
    sleeping: AtomicU64,
}

const _: () = assert!(core::mem::size_of::<ProcessEntry>() == PROCESS_ENTRY_BYTES);

/// `MappedSlots::entry` before this open of the file holds one.
const NO_ENTRY: usize = usize::MAX;

/// A shared, writable mapping of a whole file; unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory that stays mapped until drop; it is
// only ever accessed through atomics (state, wake block, slots), which any
// thread may use.
unsafe impl Send for Mapping {}
// SAFETY: as above: shared access is through atomics only.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(file: &File, len: usize, path: &Path) -> Result<Self, ShmError> {
        // SAFETY: a fresh shared mapping of `len` bytes of an open file
        // descriptor; the kernel chooses the address, and nothing else
        // refers to it yet.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io_error("mmap", path, io::Error::last_os_error()));
        }
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| io_error("mmap", path, io::ErrorKind::Other.into()))?;
        Ok(Mapping { ptr, len })
    }

    /// A `T` at byte `offset`, which the caller has checked is in bounds
    /// and aligned for `T`.
    fn at<T>(&self, offset: usize) -> *const T {
        debug_assert!(offset + core::mem::size_of::<T>() <= self.len);
        debug_assert!(offset % core::mem::align_of::<T>() == 0);
        self.ptr.as_ptr().wrapping_add(offset).cast::<T>()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr + len` is the mapping `mmap` returned, and no
        // reference into it outlives `self` (every borrow is tied to the
        // storage that owns this mapping).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// The sizes `open` validated, kept in process memory: the file's header
/// is never read again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Geometry {
    capacity: usize,
    slot_words: usize,
    /// Words from one slot to the next.
    stride_words: usize,
    overflow: Overflow,
    file_bytes: usize,
}

impl Geometry {
    fn new(capacity: usize, slot_bytes: usize, overflow: Overflow) -> Result<Self, crate::Error> {
        if !capacity.is_power_of_two() || capacity > MAX_CAPACITY {
            return Err(crate::Error::InvalidCapacity { capacity });
        }
        if !(MIN_SLOT_BYTES..=MAX_SLOT_BYTES).contains(&slot_bytes) || slot_bytes % WORD_BYTES != 0
        {
            return Err(crate::Error::InvalidSlotSize { slot_bytes });
        }
        let stride = slot_footprint(slot_bytes);
        let file_bytes = stride
            .checked_mul(capacity)
            .and_then(|b| b.checked_add(SLOTS_OFFSET))
            .ok_or(crate::Error::AllocationFailed { bytes: usize::MAX })?;
        Ok(Geometry {
            capacity,
            slot_words: slot_bytes / WORD_BYTES,
            stride_words: stride / WORD_BYTES,
            overflow,
            file_bytes,
        })
    }

    fn header(&self) -> [u8; HEADER_BYTES] {
        let mut h = [0u8; HEADER_BYTES];
        let mut put = |at: usize, bytes: &[u8]| h[at..at + bytes.len()].copy_from_slice(bytes);
        put(field::MAGIC, &MAGIC);
        put(field::VERSION, &LAYOUT_VERSION.to_ne_bytes());
        put(field::HEADER_BYTES, &(HEADER_BYTES as u32).to_ne_bytes());
        put(field::WORD_BYTES, &(WORD_BYTES as u32).to_ne_bytes());
        let overflow: u32 = match self.overflow {
            Overflow::Overwrite => 0,
            Overflow::Reject => 1,
        };
        put(field::OVERFLOW, &overflow.to_ne_bytes());
        let u64s = [
            (field::CAPACITY, self.capacity),
            (field::SLOT_BYTES, self.slot_words * WORD_BYTES),
            (field::SLOT_WORDS, self.slot_words),
            (field::SLOT_STRIDE, self.stride_words * WORD_BYTES),
            (field::WAKE_OFFSET, WAKE_OFFSET),
            (field::STATE_OFFSET, STATE_OFFSET),
            (field::SLOTS_OFFSET, SLOTS_OFFSET),
            (field::FILE_BYTES, self.file_bytes),
            (field::STATE_BYTES, layout::BYTES),
            (field::PROCESSES_OFFSET, PROCESSES_OFFSET),
        ];
        for (at, value) in u64s {
            put(at, &(value as u64).to_ne_bytes());
        }
        put(field::BYTE_ORDER, &BYTE_ORDER.to_ne_bytes());
        put(
            field::PROCESS_ENTRIES,
            &(PROCESS_ENTRIES as u32).to_ne_bytes(),
        );
        h
    }

    /// Validates a header read from a file of `len` bytes.
    fn parse(h: &[u8; HEADER_BYTES], len: u64) -> Result<Self, ShmError> {
        let u32_at = |at: usize| u32::from_ne_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[at..at + 8]);
            u64::from_ne_bytes(b)
        };
        let bad = |field: &'static str, value: u64, expected: &'static str| ShmError::BadField {
            field,
            value,
            expected,
        };
        let exactly = |field: &'static str, value: u64, want: usize, expected: &'static str| {
            if value == want as u64 {
                Ok(())
            } else {
                Err(bad(field, value, expected))
            }
        };
        if h[..8] != MAGIC {
            return Err(ShmError::BadMagic);
        }
        let byte_order = u32_at(field::BYTE_ORDER);
        if byte_order != BYTE_ORDER {
            return Err(bad(
                "byte_order",
                byte_order.into(),
                "0x01020304 (a file of this machine's byte order)",
            ));
        }
        let version = u32_at(field::VERSION);
        if version != LAYOUT_VERSION {
            return Err(ShmError::BadVersion { found: version });
        }
        exactly(
            "header_bytes",
            u32_at(field::HEADER_BYTES).into(),
            HEADER_BYTES,
            "128",
        )?;
        exactly(
            "word_bytes",
            u32_at(field::WORD_BYTES).into(),
            WORD_BYTES,
            "8",
        )?;
        if h[112..].iter().any(|&b| b != 0) {
            return Err(bad("reserved", 0, "bytes 112..128 all zero"));
        }
        exactly(
            "process_entries",
            u32_at(field::PROCESS_ENTRIES).into(),
            PROCESS_ENTRIES,
            "128",
        )?;
        exactly(
            "processes_offset",
            u64_at(field::PROCESSES_OFFSET),
            PROCESSES_OFFSET,
            "896",
        )?;
        let overflow = match u32_at(field::OVERFLOW) {
            0 => Overflow::Overwrite,
            1 => Overflow::Reject,
            other => return Err(bad("overflow", other.into(), "0 (Overwrite) or 1 (Reject)")),
        };
        let capacity = u64_at(field::CAPACITY);
        if !capacity.is_power_of_two() || capacity > MAX_CAPACITY as u64 {
            return Err(bad(
                "capacity",
                capacity,
                "a power of two, at most MAX_CAPACITY (2^30)",
            ));
        }
        let slot_bytes = u64_at(field::SLOT_BYTES);
        let slot_bounds = MIN_SLOT_BYTES as u64..=MAX_SLOT_BYTES as u64;
        if !slot_bounds.contains(&slot_bytes) || slot_bytes % WORD_BYTES as u64 != 0 {
            return Err(bad(
                "slot_bytes",
                slot_bytes,
                "a multiple of 8 from MIN_SLOT_BYTES (16) to MAX_SLOT_BYTES (2^20)",
            ));
        }
        // Both bounded above: the casts are exact on 64-bit targets.
        let geometry = Geometry::new(capacity as usize, slot_bytes as usize, overflow)
            .map_err(ShmError::Config)?;
        exactly(
            "slot_words",
            u64_at(field::SLOT_WORDS),
            geometry.slot_words,
            "slot_bytes / 8",
        )?;
        exactly(
            "slot_stride",
            u64_at(field::SLOT_STRIDE),
            geometry.stride_words * WORD_BYTES,
            "slot_bytes + 16 rounded up to 64",
        )?;
        exactly(
            "wake_offset",
            u64_at(field::WAKE_OFFSET),
            WAKE_OFFSET,
            "128",
        )?;
        exactly(
            "state_offset",
            u64_at(field::STATE_OFFSET),
            STATE_OFFSET,
            "256",
        )?;
        exactly(
            "slots_offset",
            u64_at(field::SLOTS_OFFSET),
            SLOTS_OFFSET,
            "9088",
        )?;
        exactly(
            "state_bytes",
            u64_at(field::STATE_BYTES),
            layout::BYTES,
            "640",
        )?;
        exactly(
            "file_bytes",
            u64_at(field::FILE_BYTES),
            geometry.file_bytes,
            "9088 + capacity * slot_stride",
        )?;
        if len != geometry.file_bytes as u64 {
            return Err(ShmError::LengthMismatch {
                len,
                expected: geometry.file_bytes as u64,
            });
        }
        Ok(geometry)
    }
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> ShmError {
    ShmError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// A bare file name goes under [`DEFAULT_DIR`]; any other path is used as
/// given.
fn resolve(path: &Path) -> PathBuf {
    let mut parts = path.components();
    match (parts.next(), parts.next()) {
        (Some(std::path::Component::Normal(name)), None) => Path::new(DEFAULT_DIR).join(name),
        _ => path.to_owned(),
    }
}

/// Slots and ring state in a memory-mapped file: the storage of a
/// [`SharedRing`]. Laid out like [`HeapSlots`](crate::HeapSlots) (each slot
/// `[stamp, len, data..., padding]` on whole cache lines), at the offsets
/// the file's header records.
pub struct MappedSlots {
    map: Mapping,
    geometry: Geometry,
    path: PathBuf,
    /// Kept open for the single-producer lease: an open-file-description
    /// lock on byte 0, which the kernel drops when this process dies.
    file: File,
    /// This mapping holds the lease (a live `Producer` of this process).
    holds_role: AtomicBool,
    /// The process entry this open of the file holds (locked through
    /// `file`), or `NO_ENTRY`; taken by the first multi-producer handle or
    /// the first wait.
    entry: AtomicUsize,
    /// Serialises taking the entry.
    attaching: Mutex<()>,
    /// A wait found every entry held: later waits do not scan again.
    entry_refused: AtomicBool,
    /// `wake`s that woke nobody while `waiters` said someone sleeps: every
    /// 64th looks for sleepers of dead processes.
    empty_wakes: AtomicU32,
}

impl MappedSlots {
    /// Every word of the slots area.
    #[inline(always)]
    fn words(&self) -> &[AtomicU64] {
        let n = self.geometry.capacity * self.geometry.stride_words;
        // SAFETY: the mapping is `file_bytes = SLOTS_OFFSET + n * 8` bytes
        // (validated, or written by `create`), `SLOTS_OFFSET` is 8-aligned
        // in a page-aligned mapping, and the area is only ever accessed
        // through atomics, in this and every other process. Borrowed for as
        // long as `self`, which keeps it mapped.
        unsafe { core::slice::from_raw_parts(self.map.at::<AtomicU64>(SLOTS_OFFSET), n) }
    }

    #[inline(always)]
    fn wake_block(&self) -> &Wake {
        // SAFETY: `WAKE_OFFSET + 8 <= STATE_OFFSET < file_bytes`, 4-aligned,
        // accessed only through atomics; lives as long as the mapping.
        unsafe { &*self.map.at::<Wake>(WAKE_OFFSET) }
    }

    /// The file this ring was created or opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes (`F_WRLCK`) or drops (`F_UNLCK`) the lock on file byte
    /// `byte` (0: the single-producer lease; `PROCESS_LOCK_BASE + i`: process
    /// entry `i`), without waiting: an open-file-description lock. It
    /// belongs to this open of the file, so two opens in one process
    /// exclude each other too, and the kernel drops it when the last
    /// descriptor closes, which a killed process's exit does. (A child
    /// forked while holding it shares it.)
    fn lock_byte(&self, byte: usize, kind: libc::c_int) -> bool {
        let mut lock = byte_lock(byte, kind);
        // SAFETY: a valid descriptor we own and a live `flock` struct.
        unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_OFD_SETLK, &mut lock) == 0 }
    }

    /// Whether another open of the file (another process, or another open
    /// in this one) locks byte `byte`. An error counts as locked: callers
    /// then assume a live holder, which is the safe side.
    fn locked_elsewhere(&self, byte: usize) -> bool {
        let mut lock = byte_lock(byte, libc::F_WRLCK as libc::c_int);
        // SAFETY: a valid descriptor we own and a live `flock` struct,
        // which F_OFD_GETLK overwrites with the conflicting lock, if any.
        let ok = unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) == 0 };
        !ok || lock.l_type != libc::F_UNLCK as libc::c_short
    }

    /// The process table.
    fn process_entries(&self) -> &[ProcessEntry] {
        // SAFETY: `PROCESSES_OFFSET + PROCESS_ENTRIES * 64 = SLOTS_OFFSET <=
        // file_bytes`, 64-aligned in a page-aligned mapping; entries are
        // atomics only; borrowed for as long as the mapping lives.
        unsafe {
            core::slice::from_raw_parts(
                self.map.at::<ProcessEntry>(PROCESSES_OFFSET),
                PROCESS_ENTRIES,
            )
        }
    }

    /// This open's own entry, once taken.
    #[inline(always)]
    fn own_entry(&self) -> Option<&ProcessEntry> {
        self.process_entries().get(self.entry.load(Relaxed))
    }

    /// Takes the first process entry no other open of the file locks, and
    /// zeroes its counts: a previous holder is dead (or left idle), and
    /// its sleepers are forgotten. `false` if every entry is held.
    fn attach(&self) -> bool {
        if self.entry.load(Acquire) != NO_ENTRY {
            return true;
        }
        let _one_at_a_time = crate::blocking::lock(&self.attaching);
        if self.entry.load(Acquire) != NO_ENTRY {
            return true;
        }
        for (i, entry) in self.process_entries().iter().enumerate() {
            if self.lock_byte(PROCESS_LOCK_BASE + i, libc::F_WRLCK as libc::c_int) {
                entry.in_flight.store(0, Release);
                self.forget_sleepers(entry.sleeping.swap(0, AcqRel));
                self.entry.store(i, Release);
                return true;
            }
        }
        false
    }

    /// Subtracts from the wake block's `waiters` the sleepers of processes
    /// that died in `wait_for` (their entry's lock is gone, its count not),
    /// so that `wake` stops making a system call for them.
    fn forget_dead_sleepers(&self) {
        let mine = self.entry.load(Acquire);
        for (i, entry) in self.process_entries().iter().enumerate() {
            let n = entry.sleeping.load(Acquire);
            if n == 0 || i == mine || self.locked_elsewhere(PROCESS_LOCK_BASE + i) {
                continue;
            }
            // Whoever zeroes the count subtracts it, once. A sleeper adds
            // to `waiters` before its entry and subtracts after, so an
            // entry never holds more than it put there.
            if entry
                .sleeping
                .compare_exchange(n, 0, AcqRel, Relaxed)
                .is_ok()
            {
                self.forget_sleepers(n);
            }
        }
    }

    /// Takes `n` dead sleepers off the wake block's `waiters`.
    fn forget_sleepers(&self, n: u64) {
        if n != 0 {
            let n = n.min(u64::from(u32::MAX)) as u32;
            let waiters = &self.wake_block().waiters;
            let _ = waiters.fetch_update(SeqCst, Relaxed, |w| Some(w.saturating_sub(n)));
        }
    }
}

/// A lock request for the one byte `byte` of the file.
fn byte_lock(byte: usize, kind: libc::c_int) -> libc::flock {
    // SAFETY: `flock` is plain integers, for which zero is valid.
    let mut lock: libc::flock = unsafe { core::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = byte as libc::off_t;
    lock.l_len = 1;
    lock
}

impl sealed::Sealed for MappedSlots {}

impl Storage for MappedSlots {
    #[inline]
    fn capacity(&self) -> usize {
        self.geometry.capacity
    }
    #[inline]
    fn slot_words(&self) -> usize {
        self.geometry.slot_words
    }
    #[inline]
    fn slot(&self, index: usize) -> SlotRef<'_> {
        let g = &self.geometry;
        let start = (index & (g.capacity - 1)) * g.stride_words;
        let words = self.words();
        // SAFETY: `words` holds `capacity * stride_words` words,
        // `index & (capacity - 1) < capacity`, and `stride_words >=
        // slot_words + 2` (validated): stamp, length and data are in bounds.
        unsafe {
            SlotRef {
                stamp: words.get_unchecked(start),
                len: words.get_unchecked(start + 1),
                data: words.get_unchecked(start + 2..start + 2 + g.slot_words),
            }
        }
    }
    #[inline(always)]
    fn state(&self) -> &RingState {
        // SAFETY: `STATE_OFFSET` is 128-aligned in a page-aligned mapping
        // and `STATE_OFFSET + size_of::<RingState>() <= SLOTS_OFFSET`
        // (asserted in `state::layout`); `RingState` is all atomics, for
        // which any bit pattern is valid, shared only through atomic
        // operations. Lives as long as the mapping.
        unsafe { &*self.map.at::<RingState>(STATE_OFFSET) }
    }
    fn lock_single(&self) -> bool {
        if self.holds_role.swap(true, AcqRel) {
            return false;
        }
        if self.lock_byte(0, libc::F_WRLCK as libc::c_int) {
            return true;
        }
        self.holds_role.store(false, Release);
        false
    }
    fn single_holder_dead(&self) -> bool {
        // Only asked after `lock_single` succeeded: we hold the lease, so
        // whoever set the bit no longer does, and it was not this mapping.
        true
    }
    fn unlock_single(&self) {
        self.lock_byte(0, libc::F_UNLCK as libc::c_int);
        self.holds_role.store(false, Release);
    }

    const COUNTS_WRITERS: bool = true;

    fn attach_writer(&self) -> bool {
        self.attach()
    }

    #[inline(always)]
    fn writing_begin(&self) {
        if let Some(entry) = self.own_entry() {
            entry.in_flight.fetch_add(1, Relaxed);
        }
    }

    #[inline(always)]
    fn writing_end(&self) {
        if let Some(entry) = self.own_entry() {
            // Release: a reader that sees the count drop sees our slot done.
            entry.in_flight.fetch_sub(1, Release);
        }
    }

    fn writers_gone(&self, own: u64) -> bool {
        let mine = self.entry.load(Acquire);
        self.process_entries().iter().enumerate().all(|(i, entry)| {
            let n = entry.in_flight.load(Acquire);
            if i == mine {
                n <= own
            } else {
                n == 0 || !self.locked_elsewhere(PROCESS_LOCK_BASE + i)
            }
        })
    }
}

/// The shared-memory constructors and the cross-process wake.
impl Ring<MappedSlots> {
    /// Creates the file `path` (a bare name goes under `/dev/shm`) with
    /// `O_CREAT | O_EXCL` and mode 0600, sized for `capacity` slots of
    /// `slot_bytes` bytes, and maps it. Fails if the file exists.
    ///
    /// ```
    /// use evqueue::{Overflow, SharedRing, ShmError};
    /// let name = format!("evq-doc-create-{}", std::process::id());
    /// let ring = SharedRing::create(&name, 64, 32, Overflow::Reject)?;
    /// assert_eq!((ring.capacity(), ring.slot_bytes()), (64, 32));
    /// assert!(ring.slots().path().starts_with("/dev/shm"));
    /// assert!(matches!(SharedRing::create(&name, 64, 32, Overflow::Reject), Err(ShmError::Io { .. })));
    /// SharedRing::remove(&name)?;
    /// # Ok::<(), ShmError>(())
    /// ```
    pub fn create(
        path: impl AsRef<Path>,
        capacity: usize,
        slot_bytes: usize,
        overflow: Overflow,
    ) -> Result<Self, ShmError> {
        let geometry = Geometry::new(capacity, slot_bytes, overflow).map_err(ShmError::Config)?;
        let path = resolve(path.as_ref());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| io_error("open (O_CREAT | O_EXCL)", &path, e))?;
        let made = Self::initialise(&file, &path, &geometry).and_then(|()| {
            let map = Mapping::new(&file, geometry.file_bytes, &path)?;
            let file = file.try_clone().map_err(|e| io_error("dup", &path, e))?;
            Ok(Ring::from_storage(
                MappedSlots {
                    map,
                    geometry,
                    path: path.clone(),
                    file,
                    holds_role: AtomicBool::new(false),
                    entry: AtomicUsize::new(NO_ENTRY),
                    attaching: Mutex::new(()),
                    entry_refused: AtomicBool::new(false),
                    empty_wakes: AtomicU32::new(0),
                },
                geometry.overflow,
            ))
        });
        if made.is_err() {
            // We created it: leave nothing half-made behind.
            let _ = std::fs::remove_file(&path);
        }
        made
    }

    /// Sizes the new file, reserves its memory and writes the header, the
    /// magic last: an `open` racing with this sees `Truncated` or `BadMagic`
    /// until the header is whole. (The zero-filled state and slots are a
    /// fresh ring.)
    fn initialise(file: &File, path: &Path, geometry: &Geometry) -> Result<(), ShmError> {
        let len = geometry.file_bytes as u64;
        file.set_len(len)
            .map_err(|e| io_error("ftruncate", path, e))?;
        // Reserve the pages now, so that a full /dev/shm is an error here
        // and not a SIGBUS on some later push. Filesystems without
        // fallocate keep the sparse file.
        // SAFETY: plain system call on an open descriptor.
        let err = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
        if err != 0 && err != libc::EOPNOTSUPP && err != libc::EINVAL {
            return Err(io_error(
                "posix_fallocate",
                path,
                io::Error::from_raw_os_error(err),
            ));
        }
        let header = geometry.header();
        file.write_all_at(&header[8..], 8)
            .and_then(|()| file.write_all_at(&header[..8], 0))
            .map_err(|e| io_error("pwrite (header)", path, e))
    }

    /// Opens and maps the shared ring at `path` (a bare name goes under
    /// `/dev/shm`) with the default [`ShmOptions`]: refuses a file owned by
    /// another user. Every header field, the file's length, the state and
    /// every slot stamp are validated first: a truncated, corrupted or
    /// hostile file is an [`ShmError`], never a crash.
    ///
    /// ```
    /// use evqueue::{SharedRing, ShmError};
    /// let path = std::env::temp_dir().join(format!("evq-doc-open-{}", std::process::id()));
    /// std::fs::write(&path, b"not a ring")?;
    /// assert!(matches!(SharedRing::open(&path), Err(ShmError::Truncated { len: 10 })));
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ShmError> {
        Self::open_with(path, ShmOptions::default())
    }

    /// [`open`](Self::open) with options.
    pub fn open_with(path: impl AsRef<Path>, options: ShmOptions) -> Result<Self, ShmError> {
        let path = resolve(path.as_ref());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| io_error("open", &path, e))?;
        let meta = file.metadata().map_err(|e| io_error("fstat", &path, e))?;
        if !meta.file_type().is_file() {
            return Err(ShmError::NotAFile);
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        if meta.uid() != uid && !options.allow_foreign_owner {
            return Err(ShmError::ForeignOwner {
                owner: meta.uid(),
                uid,
            });
        }
        let len = meta.len();
        if len < HEADER_BYTES as u64 {
            return Err(ShmError::Truncated { len });
        }
        let mut header = [0u8; HEADER_BYTES];
        file.read_exact_at(&mut header, 0)
            .map_err(|e| io_error("pread (header)", &path, e))?;
        let geometry = Geometry::parse(&header, len)?;
        let map = Mapping::new(&file, geometry.file_bytes, &path)?;
        let ring = Ring::from_storage(
            MappedSlots {
                map,
                geometry,
                path,
                file,
                holds_role: AtomicBool::new(false),
                entry: AtomicUsize::new(NO_ENTRY),
                attaching: Mutex::new(()),
                entry_refused: AtomicBool::new(false),
                empty_wakes: AtomicU32::new(0),
            },
            geometry.overflow,
        );
        ring.validate_state()?;
        Ok(ring)
    }

    /// Checks that the cursors, counters and stamps could have been left by
    /// the algorithm, so that no arithmetic on them overflows and no reader
    /// skips through an absurd range. Reads each value once, in an order
    /// under which the checked relations hold for a live ring too.
    fn validate_state(&self) -> Result<(), ShmError> {
        let s = self.state();
        let cap = self.capacity() as u64;
        let bad = |field, value, expected| {
            Err(ShmError::BadState {
                field,
                value,
                expected,
            })
        };
        let control = s.control.load(Acquire);
        if control & !(crate::ring::SINGLE_LIVE | crate::ring::MULTI | crate::ring::CLOSE_REQUESTED)
            != 0
        {
            return bad("control", control.into(), "only bits 0..3 set");
        }
        // Stamps first, then the cursors they are checked against (which
        // only grow): every stamp seen belongs to a ticket handed out before
        // `head` is read.
        let mut max_stamp = 0;
        for i in 0..self.capacity() {
            max_stamp = max_stamp.max(stamp::seq_plus_one(self.slots.slot(i).stamp.load(Acquire)));
        }
        let skipped = s.counters.skipped.load(Acquire);
        let seen = s.worker_seen.load(Acquire);
        let worker = s.worker.load(Acquire);
        let head = s.head.load(Acquire) & !crate::ring::CLOSED;
        let rejected = s.counters.rejected.load(Acquire);
        let high_water = s.counters.high_water.load(Acquire);
        // Room for every sequence number's stamp, `(seq + 1) << 2`, and for
        // the sums the stats compute.
        const SEQ_LIMIT: u64 = 1 << 60;
        if head >= SEQ_LIMIT {
            return bad("head", head, "below 2^60");
        }
        // A single producer commits before it publishes `head`: a worker
        // (and a stamp) may be one ahead of it.
        if worker > head + 1 {
            return bad("worker", worker, "at most head + 1");
        }
        if seen > worker {
            return bad("worker_seen", seen, "at most worker");
        }
        if skipped > worker {
            return bad("skipped", skipped, "at most worker");
        }
        if rejected >= SEQ_LIMIT {
            return bad("rejected", rejected, "below 2^60");
        }
        if high_water > cap {
            return bad("high_water", high_water, "at most capacity");
        }
        if max_stamp > head + 1 + cap {
            return bad(
                "stamp",
                max_stamp,
                "a sequence number at most head + capacity",
            );
        }
        Ok(())
    }

    /// Deletes the file `path` (a bare name goes under `/dev/shm`).
    /// Processes that have it mapped keep using it; the memory is freed
    /// when the last one unmaps it.
    pub fn remove(path: impl AsRef<Path>) -> Result<(), ShmError> {
        let path = resolve(path.as_ref());
        std::fs::remove_file(&path).map_err(|e| io_error("unlink", &path, e))
    }

    /// The storage: the file's path and layout.
    pub fn slots(&self) -> &MappedSlots {
        &self.slots
    }

    /// The same ring with the worker group continuing as `lag` says when it
    /// is lapped. The policy is this process's: each process attached to
    /// the ring chooses its own.
    pub fn with_lag(self, lag: crate::Lag) -> Self {
        Ring { lag, ..self }
    }

    /// Waits until the worker group has something to do at its cursor (an
    /// event committed there, or lost and to be skipped), the ring is
    /// sealed, or `timeout` passed. Returns whether there is something to
    /// do. Sleeps on the shared futex: no polling; a producer's
    /// [`wake`](Self::wake) ends it.
    pub fn wait(&self, timeout: Duration) -> bool {
        self.wait_for(self.worker_position(), timeout)
    }

    /// Waits until the slot of sequence number `seq` (for a subscriber, its
    /// [`next_seq`](crate::Subscriber::next_seq)) holds event `seq`
    /// committed, or shows it was lost (lapped, or a hole), or the ring is
    /// sealed, or `timeout` passed; returns whether one of those happened.
    ///
    /// It looks at the slot, not at [`next_seq`](Ring::next_seq): a ticket
    /// taken by a multi-producer still writing it is not ready. Before it
    /// sleeps it tries [`recover`](Ring::recover): a ticket whose writer's
    /// process died is marked lost, and the wait returns.
    ///
    /// ```
    /// use evqueue::{Overflow, SharedRing, Start};
    /// use std::time::Duration;
    /// let path = std::env::temp_dir().join(format!("evq-doc-wait-{}", std::process::id()));
    /// let ring = SharedRing::create(&path, 64, 32, Overflow::Overwrite)?;
    /// let sub = ring.subscribe(Start::Now);
    /// assert!(!ring.wait_for(sub.next_seq(), Duration::from_millis(10)));
    /// ring.mp_producer()?.push(b"x")?;
    /// ring.wake();
    /// assert!(ring.wait_for(sub.next_seq(), Duration::from_secs(10)));
    /// SharedRing::remove(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_for(&self, seq: u64, timeout: Duration) -> bool {
        let ready = || {
            let held = self.slot(seq).stamp.load(Acquire);
            stamp::view(held, seq) != stamp::View::NotYet || self.is_sealed()
        };
        let wake = self.slots.wake_block();
        let deadline = Instant::now().checked_add(timeout);
        // Our sleepers are counted in our entry too, so that a `wake` can
        // forget them if this process dies asleep. (Without an entry, all
        // taken, they are counted in `waiters` only; a wait asks once.)
        if !self.slots.entry_refused.load(Relaxed) && !self.slots.attach() {
            self.slots.entry_refused.store(true, Relaxed);
        }
        let entry = self.slots.own_entry();
        loop {
            if ready() || self.recover_ticket(seq) {
                return true;
            }
            // Read the word before registering: a `wake` after this changes
            // it, and FUTEX_WAIT then returns at once.
            let word = wake.seq.load(Acquire);
            wake.waiters.fetch_add(1, SeqCst);
            if let Some(entry) = entry {
                entry.sleeping.fetch_add(1, AcqRel);
            }
            // Pairs with the fence in `wake`: either that producer sees us
            // registered, or we see its push here.
            fence(SeqCst);
            let mut left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            if self.head_seq() > seq {
                // A writer is on the ticket: look again soon, in case its
                // process dies before it wakes us.
                left = left.min(WRITER_RECHECK);
            }
            if !ready() && !left.is_zero() {
                futex_wait(&wake.seq, word, left);
            }
            if let Some(entry) = entry {
                entry.sleeping.fetch_sub(1, AcqRel);
            }
            wake.waiters.fetch_sub(1, SeqCst);
            if ready() {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
        }
    }

    /// Recovers ticket `seq` from a multi-producer whose process died
    /// mid-push: if `seq` was handed out (`seq < next_seq()`) but its slot
    /// shows it neither committed nor lost, and every process with a
    /// multi-producer push in flight is dead, marks it a hole, so that
    /// readers count it lost and pass it. Returns whether the slot of `seq`
    /// now shows readers something to do (the event, or its loss).
    ///
    /// [`wait`](Self::wait) and [`wait_for`](Self::wait_for) call it before
    /// they sleep; a consumer that polls instead may call it at its cursor
    /// ([`worker_position`](Ring::worker_position), or a subscriber's
    /// [`next_seq`](crate::Subscriber::next_seq)).
    pub fn recover(&self, seq: u64) -> bool {
        self.recover_ticket(seq)
    }

    /// Wakes every process sleeping in [`wait`](Self::wait) or
    /// [`wait_for`](Self::wait_for). Producers call it after a push (or a
    /// batch of pushes), and after [`close`](Ring::close): pushes do not
    /// wake by themselves. When nobody sleeps it costs one `SeqCst` fence
    /// and one load, no system call.
    ///
    /// A process killed while it waited stays counted until a `wake` that
    /// woke nobody finds it dead (the first, then every 64th such `wake`).
    pub fn wake(&self) {
        let wake = self.slots.wake_block();
        // Pairs with the sleeper's fence: our pushes are visible to its
        // re-check, or its registration is visible to this load.
        fence(SeqCst);
        if wake.waiters.load(Relaxed) != 0 {
            wake.seq.fetch_add(1, Release);
            if futex_wake(&wake.seq) == 0 && self.slots.empty_wakes.fetch_add(1, Relaxed) % 64 == 0
            {
                self.slots.forget_dead_sleepers();
            }
        }
    }

    /// Threads inside [`wait`](Self::wait) or [`wait_for`](Self::wait_for)
    /// right now, in every process (one killed while waiting stays counted
    /// until a [`wake`](Self::wake) finds it dead).
    pub fn waiters(&self) -> u32 {
        self.slots.wake_block().waiters.load(Relaxed)
    }
}

/// How long a reader sleeps at a ticket that is being written before it
/// looks again whether the writer's process died.
const WRITER_RECHECK: Duration = Duration::from_millis(50);

/// Sleeps while `word` holds `expected`, at most `timeout` (spurious
/// returns allowed: the caller re-checks). Not `FUTEX_PRIVATE_FLAG`: the
/// word is in a shared mapping and the wakers are other processes.
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64 / 2) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, 4-aligned u32 in a shared mapping; the
    // kernel only reads it and the timespec, which outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

/// Wakes every sleeper on `word`; returns how many there were.
fn futex_wake(word: &AtomicU32) -> libc::c_long {
    // SAFETY: `word` is a live, 4-aligned u32; FUTEX_WAKE does not touch
    // user memory.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX) }
}
