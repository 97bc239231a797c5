"""Tests of evqueue.SharedQueue, the shared-memory ring (Linux), and the
cross-language test: a C producer process (tests/c/shared_producer.c, built
here against the C library) and this Python process claiming from one ring,
with exact accounting across the two; and C producers killed with SIGKILL
mid-stream while this process claims.

The C library is looked for in $EVQUEUE_C_LIB_DIR, else in target/release of
this repository (tests/c/run.sh builds it there). Without it or without a C
compiler the cross-language tests are skipped, unless
EVQUEUE_REQUIRE_C_PRODUCER=1 (scripts/test.sh sets it), which makes them fail.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, Literal

import pytest

import evqueue

if sys.platform != "linux":
    pytest.skip("the shared ring is Linux-only", allow_module_level=True)

from evqueue import Event, EvqueueError, SharedQueue

T = 10.0
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def path(tmp_path: Path) -> Iterator[str]:
    p = str(tmp_path / "ring")
    yield p
    if os.path.exists(p):
        os.unlink(p)


# --- the API ---------------------------------------------------------------


def test_create_emit_claim_stats(path: str) -> None:
    with SharedQueue.create(path, capacity=64, slot_size=128) as q:
        assert (q.capacity, q.slot_size, q.path) == (64, 128, path)
        assert q.emit("purchase", {"sku": "gem_pack"}, timestamp=1234) == 0
        assert q.emit("café") == 1
        other = SharedQueue.open(path)
        e = other.try_claim()
        assert e is not None
        assert (e.name, e.properties, e.timestamp, e.seq) == ("purchase", {"sku": "gem_pack"}, 1234, 0)
        e = q.claim(timeout=T)
        assert e is not None and (e.name, e.seq) == ("café", 1) and e.timestamp > 0
        assert q.try_claim() is None
        s = other.stats()
        assert (s.pushed, s.delivered, s.overwritten, s.rejected, s.depth, s.lost) == (2, 2, 0, 0, 0, 0)
        assert s.capacity == 64
        assert "pushed=2" in repr(s)
        other.close()
    assert q.closed
    with pytest.raises(ValueError, match="closed"):
        q.emit("x")
    q.close()  # again: nothing
    SharedQueue.remove(path)
    assert not os.path.exists(path)


def test_overwrite_accounting(path: str) -> None:
    q = SharedQueue.create(path, capacity=16, slot_size=64)
    for i in range(100):
        assert q.emit("tick", {"i": str(i)}) == i
    seqs = []
    while (e := q.try_claim()) is not None:
        assert e.properties["i"] == str(e.seq)
        seqs.append(e.seq)
    assert seqs == sorted(seqs) and len(seqs) <= 16
    s = q.stats()
    assert s.pushed == 100 and s.delivered == len(seqs) and s.depth == 0
    assert s.overwritten == 100 - len(seqs) and s.pushed == s.delivered + s.lost + s.depth


def test_reject_policy(path: str) -> None:
    q = SharedQueue.create(path, capacity=4, slot_size=64, overflow="reject")
    for _ in range(4):
        q.emit("x")
    with pytest.raises(evqueue.QueueFull):
        q.emit("x")
    assert q.stats().rejected == 1
    assert q.try_claim() is not None
    q.emit("x")


def test_claim_waits_and_times_out(path: str) -> None:
    q = SharedQueue.create(path, capacity=64, slot_size=64)
    start = time.monotonic()
    assert q.claim(timeout=0.05) is None
    assert time.monotonic() - start >= 0.04
    assert q.claim(timeout=0) is None
    other = SharedQueue.open(path)
    timer = threading.Timer(0.1, lambda: other.emit("late"))
    timer.start()
    e = q.claim(timeout=T)
    timer.join()
    assert e is not None and e.name == "late"
    q.wake()


def test_claim_releases_the_gil(path: str) -> None:
    q = SharedQueue.create(path, capacity=64, slot_size=64)
    ticks = 0
    stop = False

    def spin() -> None:
        nonlocal ticks
        while not stop:
            ticks += 1
            time.sleep(0.001)

    t = threading.Thread(target=spin)
    t.start()
    assert q.claim(timeout=0.3) is None
    stop = True
    t.join()
    assert ticks > 20


def test_claim_takes_ctrl_c(path: str, sigint_raises: None) -> None:
    q = SharedQueue.create(path, capacity=64, slot_size=64)
    timer = threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        q.claim()
    timer.join()
    assert time.monotonic() - start < 5


# --- broadcast subscribers --------------------------------------------------


def test_subscribe_from_oldest_and_now(path: str) -> None:
    q = SharedQueue.create(path, capacity=16, slot_size=128)
    for i in range(3):
        q.emit("tick", {"i": str(i)})
    oldest = q.subscribe(from_oldest=True)
    now = q.subscribe()
    q.emit("tick", {"i": "3"})
    got = [oldest.try_recv() for _ in range(4)]
    assert [(e.seq, e.name, e.properties) for e in got if e is not None] == [
        (i, "tick", {"i": str(i)}) for i in range(4)
    ]
    assert oldest.try_recv() is None
    e = now.try_recv()
    assert e is not None and e.seq == 3
    assert now.try_recv() is None
    assert (oldest.lagged, now.lagged) == (0, 0)
    # Subscribers take nothing from the worker group.
    assert [e.seq for e in iter(q.try_claim, None)] == [0, 1, 2, 3]


def test_two_subscribers_each_see_all(path: str) -> None:
    q = SharedQueue.create(path, capacity=64, slot_size=64)
    a = q.subscribe()
    b = SharedQueue.open(path).subscribe()  # as another process would
    for i in range(10):
        q.emit(f"e{i}")
    for sub in (a, b):
        assert [e.name for e in iter(sub.try_recv, None)] == [f"e{i}" for i in range(10)]


def test_subscriber_lagged_when_lapped(path: str) -> None:
    q = SharedQueue.create(path, capacity=16, slot_size=64)
    sub = q.subscribe()
    for i in range(40):
        q.emit("e", {"i": str(i)})
    # Head 40 on a 16-slot ring: oldest kept 24; the subscriber goes on two
    # past it (an eighth of the ring), having missed 26.
    seqs = [e.seq for e in iter(sub.try_recv, None)]
    assert seqs == list(range(26, 40))
    assert sub.lagged == 26
    assert "lagged=26" in repr(sub)


def test_subscriber_recv_waits_and_times_out(path: str) -> None:
    q = SharedQueue.create(path, capacity=64, slot_size=64)
    sub = q.subscribe()
    start = time.monotonic()
    assert sub.recv(timeout=0.05) is None
    assert time.monotonic() - start >= 0.04
    assert sub.recv(timeout=0) is None
    other = SharedQueue.open(path)
    timer = threading.Timer(0.1, lambda: other.emit("late"))
    timer.start()
    e = sub.recv(timeout=T)
    timer.join()
    assert e is not None and e.name == "late"
    q.emit("again")
    it = iter(sub)
    assert next(it).name == "again"
    with pytest.raises(ValueError):
        sub.recv(timeout=-1)
    with pytest.raises(TypeError):
        sub.recv(timeout="1")  # type: ignore[arg-type]


def test_subscriber_outlives_close(path: str) -> None:
    q = SharedQueue.create(path, capacity=64, slot_size=64)
    sub = q.subscribe()
    q.emit("x")
    q.close()
    with pytest.raises(ValueError):
        q.subscribe()
    e = sub.try_recv()
    assert e is not None and e.name == "x"


def test_subscriber_recv_takes_ctrl_c(path: str, sigint_raises: None) -> None:
    q = SharedQueue.create(path, capacity=64, slot_size=64)
    sub = q.subscribe()
    timer = threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        sub.recv()
    timer.join()
    assert time.monotonic() - start < 5


def test_bad_arguments(path: str) -> None:
    with pytest.raises(TypeError):
        SharedQueue.create(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        SharedQueue.create("")
    with pytest.raises(ValueError, match="NUL"):
        SharedQueue.create("a\0b")
    with pytest.raises(ValueError):
        SharedQueue.create(path, capacity=63)
    with pytest.raises(ValueError):
        SharedQueue.create(path, slot_size=12)
    with pytest.raises(ValueError):
        SharedQueue.create(path, overflow="sometimes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        SharedQueue.create(path, capacity="64")  # type: ignore[arg-type]
    assert not os.path.exists(path)  # nothing left behind
    with pytest.raises(FileNotFoundError):
        SharedQueue.open(path)
    with pytest.raises(FileNotFoundError):
        SharedQueue.remove(path)
    q = SharedQueue.create(Path(path), capacity=64, slot_size=64)
    with pytest.raises(FileExistsError):
        SharedQueue.create(os.fsencode(path))
    assert SharedQueue.open(os.fsencode(path)).path == path
    with pytest.raises(evqueue.InvalidEvent):
        q.emit("")
    with pytest.raises(TypeError):
        q.emit("x", {"k": 1})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        q.emit(b"x")  # type: ignore[arg-type]
    with pytest.raises(evqueue.EventTooLarge):
        q.emit("x", {"k": "v" * 100})
    with pytest.raises(ValueError):
        q.claim(timeout=-1)
    assert q.stats().pushed == 0


# --- raw payloads ------------------------------------------------------------


def test_raw_payloads(path: str) -> None:
    q = SharedQueue.create(path, capacity=16, slot_size=64)
    reading = struct.pack("<Ifq", 7, 21.5, 1234567)
    assert q.emit_raw(reading) == 0
    assert q.emit_raw(bytearray(b"\x00\xff")) == 1
    assert q.emit_raw(b"") == 2
    most = bytes(range(52))  # slot_size - 12
    assert q.emit_raw(most) == 3
    other = SharedQueue.open(path)  # as another process would
    got = other.try_claim_raw()
    assert got is not None and got[0] == 0
    assert struct.unpack("<Ifq", got[1]) == (7, 21.5, 1234567)
    assert other.try_claim_raw() == (1, b"\x00\xff")
    assert other.claim_raw(timeout=T) == (2, b"")
    assert other.try_claim_raw() == (3, most)
    assert other.try_claim_raw() is None
    assert other.claim_raw(timeout=0.01) is None
    s = q.stats()
    assert (s.pushed, s.delivered, s.depth) == (4, 4, 0)


def test_raw_claim_waits(path: str) -> None:
    q = SharedQueue.create(path, capacity=16, slot_size=64)
    other = SharedQueue.open(path)
    timer = threading.Timer(0.1, lambda: other.emit_raw(b"late"))
    timer.start()
    got = q.claim_raw(timeout=T)
    timer.join()
    assert got == (0, b"late")


def test_raw_mixed_with_events(path: str) -> None:
    """Each claim reads its kind; the wrong kind raises, naming the seq,
    and is consumed (the worker group's cursor has moved past it)."""
    q = SharedQueue.create(path, capacity=16, slot_size=64)
    q.emit("tick")
    q.emit_raw(b"raw")
    q.emit("tock")
    with pytest.raises(EvqueueError, match="event 0 .*not a raw payload"):
        q.try_claim_raw()
    with pytest.raises(EvqueueError, match="event 1 is a raw payload of 3 bytes"):
        q.try_claim()
    e = q.try_claim()
    assert e is not None and (e.seq, e.name) == (2, "tock")
    sub = q.subscribe(from_oldest=True)
    with pytest.raises(EvqueueError, match="raw payload"):
        for _ in range(3):
            sub.try_recv()
    s = q.stats()
    assert (s.pushed, s.delivered, s.depth) == (3, 3, 0)


def test_raw_bad_arguments(path: str) -> None:
    q = SharedQueue.create(path, capacity=4, slot_size=64, overflow="reject")
    for bad in ("text", 42, None, [1, 2], memoryview(b"x")):
        with pytest.raises(TypeError, match="bytes or bytearray"):
            q.emit_raw(bad)  # type: ignore[arg-type]
    with pytest.raises(evqueue.EventTooLarge, match="53"):
        q.emit_raw(bytes(53))
    with pytest.raises(TypeError):
        q.claim_raw(timeout="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        q.claim_raw(timeout=-1)
    s = q.stats()
    assert (s.pushed, s.rejected) == (0, 0)  # nothing emitted, nothing counted
    for i in range(4):
        assert q.emit_raw(bytes([i])) == i
    with pytest.raises(evqueue.QueueFull):
        q.emit_raw(b"x")
    assert q.try_claim_raw() == (0, b"\x00")
    assert q.emit_raw(b"y") == 4
    q.close()
    for call in (lambda: q.emit_raw(b"x"), q.try_claim_raw, q.claim_raw):
        with pytest.raises(ValueError, match="closed"):
            call()
    other = SharedQueue.open(path)
    s = other.stats()
    assert (s.pushed, s.rejected, s.delivered, s.depth) == (6, 1, 1, 4)
    assert [other.try_claim_raw() for _ in range(4)] == [(1, b"\x01"), (2, b"\x02"), (3, b"\x03"), (4, b"y")]


def test_open_refuses_files_that_are_not_rings(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not a ring")
    with pytest.raises(EvqueueError, match="shorter than"):
        SharedQueue.open(garbage)
    garbage.write_bytes(b"\x5a" * 4096)
    with pytest.raises(EvqueueError, match="magic"):
        SharedQueue.open(str(garbage))
    with pytest.raises(IsADirectoryError):
        SharedQueue.open(tmp_path)


# --- C producer process, Python consumer ------------------------------------


def c_producer(tmp_path: Path) -> Path:
    """Builds tests/c/shared_producer.c against the C library, or skips."""
    required = os.environ.get("EVQUEUE_REQUIRE_C_PRODUCER") == "1"

    def missing(reason: str) -> None:
        if required:
            pytest.fail(f"{reason} (EVQUEUE_REQUIRE_C_PRODUCER=1)")
        pytest.skip(reason)

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        missing("no C compiler (cc or gcc) on PATH")
    assert cc is not None
    lib_dir = Path(os.environ.get("EVQUEUE_C_LIB_DIR", REPO / "target" / "release"))
    if not (lib_dir / "libevqueue.so").exists():
        missing(f"{lib_dir}/libevqueue.so not found (cargo build --release -p evqueue-ffi)")
    exe = tmp_path / "shared_producer"
    subprocess.run(
        [cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", f"-I{REPO / 'include'}",
         str(REPO / "tests" / "c" / "shared_producer.c"), "-o", str(exe),
         f"-L{lib_dir}", "-levqueue", f"-Wl,-rpath,{lib_dir}"],
        check=True,
    )
    return exe


def pad_for(i: int) -> str:
    digits = str(i)
    return "".join(digits[k % len(digits)] for k in range(48))


def check_event(e: Event) -> None:
    assert e.name == "tick"
    i = int(e.properties["i"])
    assert e.seq == i, (e.seq, i)
    assert e.properties == {"i": str(i), "pad": pad_for(i)}, "torn or mixed-up event"


@pytest.mark.parametrize("overflow", ["overwrite", "reject"])
def test_c_producer_python_consumer(tmp_path: Path, overflow: Literal["overwrite", "reject"]) -> None:
    exe = c_producer(tmp_path)
    n = 200_000
    path = str(tmp_path / "ring")
    q = SharedQueue.create(path, capacity=256, slot_size=128, overflow=overflow)
    proc = subprocess.Popen([str(exe), path, str(n)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: set[int] = set()
    last = -1
    deadline = time.monotonic() + 120

    def take(e: Event) -> None:
        nonlocal last
        check_event(e)
        assert e.seq > last, "out of order or claimed twice"
        last = e.seq
        seen.add(e.seq)

    while True:
        e = q.claim(timeout=0.05)
        if e is not None:
            take(e)
            continue
        if proc.poll() is not None:
            # The producer is gone: every push it made is committed.
            while (e := q.try_claim()) is not None:
                take(e)
            break
        assert time.monotonic() < deadline, "the producer did not finish"
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    words = out.split()
    assert words[0] == "pushed" and int(words[1]) == n
    c_rejected = int(words[3])
    s = q.stats()
    # Every push the C side made reached the ring; each is delivered to this
    # process or counted lost, once.
    assert s.pushed == n + c_rejected
    assert s.rejected == c_rejected
    assert s.delivered == len(seen)
    assert s.depth == 0
    assert s.pushed == s.delivered + s.overwritten + s.rejected
    assert seen <= set(range(n))
    if overflow == "reject":
        assert s.overwritten == 0 and seen == set(range(n))
    else:
        assert s.rejected == 0 and s.overwritten == n - len(seen)
    q.close()
    SharedQueue.remove(path)


def test_c_producer_with_an_open_python_producer(tmp_path: Path) -> None:
    """Both languages push into one ring at once; a claim sees each seq once."""
    exe = c_producer(tmp_path)
    path = str(tmp_path / "ring")
    q = SharedQueue.create(path, capacity=1 << 16, slot_size=128)
    proc = subprocess.Popen([str(exe), path, "20000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for i in range(20_000):
        q.emit("py", {"i": str(i)})
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    seqs = []
    names = {"py": 0, "tick": 0}
    while (e := q.try_claim()) is not None:
        seqs.append(e.seq)
        names[e.name] += 1
    assert seqs == list(range(40_000))
    assert names == {"py": 20_000, "tick": 20_000}
    s = q.stats()
    assert (s.pushed, s.delivered, s.overwritten, s.depth) == (40_000, 40_000, 0, 0)


# --- C producers killed with SIGKILL mid-stream, Python consumer ------------

KILL_ROUNDS = 100
# Long events: a push's write (the window a kill must land in to leave a
# ticket half-written) is then a large part of a producer's time, also
# under "reject", where a producer mostly waits for room.
KILL_PAD = 16000


def tag_pad(producer: int, i: int) -> str:
    tag = f"{producer}.{i}"
    return (tag * (KILL_PAD // len(tag) + 1))[:KILL_PAD]


@pytest.mark.parametrize("overflow", ["overwrite", "reject"])
def test_c_producers_killed_python_consumer(tmp_path: Path, overflow: Literal["overwrite", "reject"]) -> None:
    """100 C producer processes, one after another, each SIGKILLed after a
    random 5-30 ms (often in the middle of a push), then one that runs to
    completion and pushes 4x the capacity; this process claims throughout.
    No torn event, none twice, each producer's events in order, exact
    accounting; under "reject" the ring never stalls on a dead producer's
    ticket (a waiting claim marks it lost once its writer is dead), so every
    event of the last producer arrives."""
    exe = c_producer(tmp_path)
    capacity = 64
    path = str(tmp_path / "ring")
    q = SharedQueue.create(path, capacity=capacity, slot_size=16384, overflow=overflow)
    rng = random.Random(os.getpid())
    last_of: dict[int, int] = {}
    seqs: set[int] = set()
    count_of: dict[int, int] = {}
    errors: list[BaseException] = []
    stop = threading.Event()

    def take(e: Event) -> None:
        p, i = int(e.properties["p"]), int(e.properties["i"])
        assert e.name == "tick"
        assert e.properties == {"p": str(p), "i": str(i), "pad": tag_pad(p, i)}, "torn or mixed-up event"
        assert e.seq not in seqs, f"seq {e.seq} delivered twice"
        seqs.add(e.seq)
        assert last_of.get(p, -1) < i, f"producer {p}: event {i} after {last_of.get(p)}"
        last_of[p] = i
        count_of[p] = count_of.get(p, 0) + 1

    def consume() -> None:
        try:
            while not stop.is_set():
                e = q.claim(timeout=0.05)
                if e is not None:
                    take(e)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    last_id = KILL_ROUNDS
    proc: subprocess.Popen[str] | None = None
    try:
        for producer in range(KILL_ROUNDS):
            proc = subprocess.Popen([str(exe), "--producer", str(producer), path, "0", str(KILL_PAD)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(rng.uniform(0.005, 0.030))
            proc.kill()
            _, err = proc.communicate(timeout=T)
            assert proc.returncode == -signal.SIGKILL, f"producer {producer} exited early: {err}"
            assert not errors, errors
        # The last producer laps the ring past every dead ticket.
        n = 4 * capacity
        proc = subprocess.Popen([str(exe), "--producer", str(last_id), path, str(n), str(KILL_PAD)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert out.split()[:2] == ["pushed", str(n)]
    finally:
        # A failed check must not leave a producer spinning on a full ring.
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=T)
        stop.set()
        consumer.join(timeout=T)
    assert not consumer.is_alive(), "the consumer did not stop"
    assert not errors, errors
    # Every producer is gone: what is left is committed, or a dead ticket
    # that a waiting claim marks lost.
    deadline = time.monotonic() + T
    while (e := q.claim(timeout=0.2)) is not None:
        take(e)
        assert time.monotonic() < deadline, "the ring did not drain"
    s = q.stats()
    print(f"{KILL_ROUNDS} C producers killed ({overflow}): {s!r}, {len(count_of)} producers seen")
    assert s.depth == 0, s
    assert s.delivered == len(seqs), s
    assert s.pushed == s.delivered + s.overwritten + s.rejected, s
    assert count_of.get(last_id, 0) > 0
    if overflow == "reject":
        # Nothing is overwritten under "reject": each lost event is the
        # ticket of a producer killed mid-push (one in flight at most each).
        assert s.overwritten <= KILL_ROUNDS, s
        assert count_of[last_id] == n, f"{count_of[last_id]} of the last producer's {n} events arrived"
    else:
        assert s.rejected == 0
    q.close()
    SharedQueue.remove(path)
