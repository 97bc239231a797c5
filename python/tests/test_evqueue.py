"""End-to-end tests of the evqueue Python bindings (pytest)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import textwrap
import gc
import sys
import threading
import time
import weakref
from typing import Any, Literal

import pytest

import evqueue
from evqueue import Event, EventQueue

T = 10.0  # generous deadline for anything that should be quick


def small(**kw: Any) -> EventQueue:
    kw.setdefault("capacity", 1024)
    kw.setdefault("workers", 2)
    return EventQueue(**kw)


# --- the API end to end -----------------------------------------------------


def test_end_to_end() -> None:
    q = small(slot_size=512)
    named: list[Event] = []
    any_names: list[str] = []
    sessions: list[tuple[str, dict[str, str]]] = []

    @q.on("purchase")
    def on_purchase(event: Event) -> None:
        named.append(event)

    assert on_purchase.__name__ == "on_purchase"  # the decorator returns the function
    q.on_any(lambda e: any_names.append(e.name))
    q.on_session_start(lambda e: sessions.append(("start", e.properties)))
    q.on_session_end(lambda e: sessions.append(("end", e.properties)))

    # Emitted before start: kept, handled once the workers start.
    s0 = q.emit("purchase", {"sku": "gem_pack"}, timestamp=1_700_000_000_000_000_000, external=True)
    q.start()
    s1 = q.emit("purchase")
    s2 = q.emit_json(b'{"name": "level_up", "properties": {"level": "7"}}')
    s3 = q.emit_json('{"name": "purchase", "timestamp": "2024-01-02T03:04:05Z"}', external=False)
    assert q.emit_many([("a", {"k": "v"}), ("b", None)]) == 2
    s4 = q.emit_session_start({"user": "ada"})
    s5 = q.emit_session_end(reason="client closed", props={"user": "ada"})
    assert [s0, s1, s2, s3, s4, s5] == [0, 1, 2, 3, 6, 7]
    assert q.flush(timeout=T) is True
    assert q.flush() is True

    named.sort(key=lambda e: e.seq)  # two workers: any order
    assert [e.seq for e in named] == [0, 1, 3]
    first = named[0]
    assert (first.name, first.properties, first.timestamp, first.external) == (
        "purchase",
        {"sku": "gem_pack"},
        1_700_000_000_000_000_000,
        True,
    )
    assert named[1].timestamp > 1_700_000_000_000_000_000  # stamped at emit time
    assert named[2].timestamp == 1_704_164_645_000_000_000 and named[2].external is False
    assert sorted(any_names) == sorted(
        ["purchase", "purchase", "level_up", "purchase", "a", "b", "session_start", "session_end"]
    )
    assert sorted(sessions, key=lambda s: s[0], reverse=True) == [
        ("start", {"user": "ada"}),
        ("end", {"reason": "client closed", "user": "ada"}),
    ]

    stats = q.stats()
    assert (stats.pushed, stats.delivered, stats.handled, stats.overwritten, stats.rejected) == (8, 8, 8, 0, 0)
    assert (stats.errors, stats.panics, stats.depth, stats.capacity, stats.workers) == (0, 0, 0, 1024, 2)
    assert stats.high_water >= 1
    assert "evqueue_events_handled_total 8\n" in stats.to_prometheus()
    assert "handled=8" in repr(stats)
    assert (q.capacity, q.slot_size, q.workers, q.closed) == (1024, 512, 2, False)

    report = q.close(timeout=T)
    assert (report.pushed, report.handled, report.overwritten, report.errors, report.left) == (8, 8, 0, 0, 0)
    assert (report.panics, report.rejected, report.popped, report.timed_out) == (0, 0, 0, False)
    assert q.closed
    assert q.close() is not None  # a second close reports again
    with pytest.raises(evqueue.QueueClosed):
        q.emit("late")
    with pytest.raises(evqueue.QueueClosed):
        q.start()
    assert q.stats().pushed == 8


def test_context_manager_and_off() -> None:
    seen: list[str] = []
    with evqueue.EventQueue(capacity=64, workers=1) as q:
        assert "closed=False" in repr(q)
        q.on("a", lambda e: seen.append("a1"))
        q.on("a", lambda e: seen.append("a2"))
        q.emit("a")
        assert q.flush(T)
        assert q.off("a") == 2
        assert q.off("a") == 0
        q.emit("a")
        assert q.flush(T)
    assert q.closed and seen == ["a1", "a2"]


def test_start_on_a_started_queue_does_nothing() -> None:
    """`with` starts the workers; a `start()` after registering handlers inside
    the block (the natural way to write it) does nothing, like a second `with`."""
    seen: list[str] = []
    with EventQueue(capacity=64, workers=1) as q:
        q.on("a", lambda e: seen.append(e.name))
        q.start()
        q.start()
        q.emit("a")
        assert q.flush(T)
        assert q.__enter__() is q  # entering again does nothing either
    assert seen == ["a"] and q.closed
    q2 = EventQueue(capacity=64, workers=1)
    q2.start()
    q2.start()
    assert q2.close(T).timed_out is False
    with pytest.raises(evqueue.QueueClosed):
        q2.start()


def test_timestamp_none_or_zero_is_stamped_with_now() -> None:
    q = EventQueue(capacity=64, workers=1)  # not started: a subscriber reads
    sub = q.subscribe()
    before = evqueue.now()
    q.emit("a")
    q.emit("b", timestamp=0)
    after = evqueue.now()
    q.emit("c", timestamp=7)
    stamps = [e.timestamp for e in (sub.try_recv(), sub.try_recv(), sub.try_recv()) if e is not None]
    assert before > 1_600_000_000_000_000_000
    assert len(stamps) == 3 and all(before <= t <= after for t in stamps[:2]) and stamps[2] == 7
    q.close(0)


def test_event_class() -> None:
    e = Event("match_end", {"winner": "blue"}, timestamp=5, external=True, seq=9)
    assert (e.name, e.properties, e.timestamp, e.external, e.seq) == ("match_end", {"winner": "blue"}, 5, True, 9)
    e.properties["winner"] = "red"  # a copy: the event does not change
    assert e.properties == {"winner": "blue"}
    assert e == Event("match_end", {"winner": "blue"}, 5, True, 9)
    assert e != Event("match_end")
    assert hash(e) == hash(Event("match_end", {"winner": "blue"}, 5, True, 9))
    assert repr(e) == 'Event(name="match_end", properties={"winner": "blue"}, timestamp=5, external=True, seq=9)'
    with pytest.raises(AttributeError):
        e.name = "x"  # type: ignore[misc]


def test_reject_policy_counts() -> None:
    q = EventQueue(capacity=16, workers=1, overflow="reject")  # not started: nothing drains
    for _ in range(16):
        q.emit("e")
    with pytest.raises(evqueue.QueueFull):
        q.emit("e")
    stats = q.stats()
    assert (stats.pushed, stats.rejected, stats.depth) == (17, 1, 16)
    # One identity: pushed == handled + popped + lost + depth, lost == overwritten + rejected.
    assert stats.lost == stats.overwritten + stats.rejected == 1
    assert stats.pushed == stats.handled + stats.popped + stats.lost + stats.depth
    assert "lost=1" in repr(stats)
    report = q.close(0)
    assert report.lost == 1 and report.pushed == report.handled + report.popped + report.lost + report.left
    with pytest.raises(evqueue.QueueFull, match=r"\(2 of 3 events emitted\)"):
        q2 = EventQueue(capacity=2, workers=1, overflow="reject")
        q2.emit_many([("a", None), ("b", None), ("c", None)])


def test_overwrite_policy_counts() -> None:
    q = EventQueue(capacity=16, workers=1)  # not started: the ring laps
    for _ in range(40):
        q.emit("e")
    q.start()
    assert q.flush(T)
    # 24 overwritten; the lapped workers continue an eighth of the ring (2
    # events) past the oldest retained one, so 26 are lost and 14 handled.
    stats = q.stats()
    assert (stats.lost, stats.overwritten) == (26, 26)
    assert stats.pushed == stats.handled + stats.popped + stats.lost + stats.depth
    report = q.close(T)
    assert (report.pushed, report.handled, report.overwritten, report.left) == (40, 14, 26, 0)
    assert report.lost == 26 and "lost=26" in repr(report)


# --- handler exceptions -----------------------------------------------------


def test_handler_exceptions_are_counted_and_reported() -> None:
    q = small()
    failures: list[tuple[str, int, BaseException]] = []
    handled: list[int] = []

    @q.on("ad_view")
    def flaky(event: Event) -> None:
        if event.seq % 2 == 0:
            raise RuntimeError(f"ad network down at {event.seq}")
        handled.append(event.seq)

    q.on_error(lambda event, exc: failures.append((event.name, event.seq, exc)))
    q.start()
    for _ in range(10):
        q.emit("ad_view")
    assert q.flush(T)
    assert sorted(handled) == [1, 3, 5, 7, 9]  # the workers went on
    assert sorted(f[1] for f in failures) == [0, 2, 4, 6, 8]
    name, seq, exc = failures[0]
    assert name == "ad_view" and isinstance(exc, RuntimeError) and f"at {seq}" in str(exc)
    stats = q.stats()
    assert (stats.errors, stats.handled, stats.failures_by_name) == (5, 10, {"ad_view": (5, 0)})
    assert q.close(T).errors == 5


def test_exceptions_without_hook_go_to_unraisablehook(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append((u.exc_type, u.object)))
    q = small()

    def bad(event: Event) -> None:
        raise KeyError("missing")

    q.on("x", bad)
    q.start()
    q.emit("x")
    assert q.flush(T)
    q.close(T)
    assert seen == [(KeyError, bad)]


def test_failing_error_hook_goes_to_unraisablehook(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_type))
    q = small()
    q.on("x", lambda e: 1 / 0)
    q.on_error(lambda event, exc: [][1])
    q.start()
    q.emit("x")
    q.emit("x")
    assert q.flush(T)
    assert q.close(T).errors == 2 and seen == [IndexError, IndexError]


# --- re-entrant emit --------------------------------------------------------


def test_handler_may_emit_and_register() -> None:
    q = small()
    seen: list[str] = []
    flush_errors: list[BaseException] = []

    @q.on("match_end")
    def on_match_end(event: Event) -> None:
        q.emit("leaderboard_update", {"match": event.properties["n"]})
        for wait in (q.flush, q.close):  # would wait on themselves
            try:
                wait(1.0)
            except evqueue.EvqueueError as e:
                flush_errors.append(e)

    q.on("leaderboard_update", lambda e: seen.append(e.properties["match"]))
    q.start()
    for i in range(50):
        q.emit("match_end", {"n": str(i)})
    assert q.flush(T)  # the match_end events...
    assert q.flush(T)  # ...and what their handlers emitted
    assert sorted(seen, key=int) == [str(i) for i in range(50)]
    assert len(flush_errors) == 100 and all("inside a handler" in str(e) for e in flush_errors)
    assert not q.closed
    assert q.close(T).handled == 100


# --- threads ----------------------------------------------------------------


def test_four_threads_emit_with_exact_accounting() -> None:
    per_thread = 25_000
    q = EventQueue(capacity=1 << 17, workers=4)
    counts: dict[str, int] = {}
    seqs: set[int] = set()
    lock = threading.Lock()

    def handler(event: Event) -> None:
        with lock:
            who = event.properties["thread"]
            counts[who] = counts.get(who, 0) + 1
            seqs.add(event.seq)

    q.on("tick", handler)
    q.start()
    barrier = threading.Barrier(4)
    returned: list[list[int]] = [[] for _ in range(4)]

    def produce(i: int) -> None:
        props = {"thread": str(i)}
        barrier.wait()
        returned[i] = [q.emit("tick", props) for _ in range(per_thread)]

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert q.flush(60)
    report = q.close(T)
    total = 4 * per_thread
    all_returned = [s for r in returned for s in r]
    assert sorted(all_returned) == list(range(total))  # every seq once
    assert counts == {str(i): per_thread for i in range(4)}
    assert seqs == set(range(total))
    assert (report.pushed, report.handled, report.overwritten, report.left, report.errors) == (total, total, 0, 0, 0)


# --- subscribers ------------------------------------------------------------


def test_subscriber_lag_and_receive() -> None:
    q = EventQueue(capacity=16, workers=1)
    sub = q.subscribe()
    assert sub.try_recv() is None
    for i in range(100):
        q.emit("tick", {"i": str(i)})
    got = []
    while (e := sub.try_recv()) is not None:
        got.append(int(e.properties["i"]))
    # 84..99 retained; a lapped subscriber continues 2 (an eighth) further on.
    assert got == list(range(86, 100))
    assert sub.lagged == 86
    assert q.stats().subscribers == [(sub.id, 0, 86)]
    assert "lagged=86" in repr(sub)

    old = q.subscribe(from_oldest=True)
    assert old.try_recv().properties["i"] == "84"  # type: ignore[union-attr]

    t0 = time.monotonic()
    assert sub.recv(timeout=0.05) is None
    assert time.monotonic() - t0 >= 0.04
    q.emit("tick", {"i": "100"})
    assert sub.recv(timeout=T).properties == {"i": "100"}  # type: ignore[union-attr]

    threading.Timer(0.05, lambda: q.emit("late")).start()
    assert sub.recv().name == "late"  # type: ignore[union-attr]
    q.emit("last")
    q.close(T)
    assert [e.name for e in sub] == ["last"]  # iteration ends when the queue closes
    with pytest.raises(evqueue.QueueClosed):
        sub.try_recv()
    with pytest.raises(evqueue.QueueClosed):
        sub.recv(timeout=0)


def test_blocking_iteration_releases_the_gil() -> None:
    q = small()
    sub = q.subscribe()
    names: list[str] = []
    reader = threading.Thread(target=lambda: names.extend(e.name for e in sub))
    reader.start()
    for i in range(5):
        time.sleep(0.01)  # the reader blocks meanwhile, GIL released
        q.emit(f"e{i}")
    q.close(T)
    reader.join(T)
    assert not reader.is_alive() and names == [f"e{i}" for i in range(5)]


def test_async_iteration_alongside_other_tasks() -> None:
    async def main() -> tuple[list[str], int]:
        q = small()
        sub = q.subscribe()
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        async def consume() -> list[str]:
            return [e.name async for e in sub]

        def produce() -> None:
            for i in range(20):
                time.sleep(0.005)
                q.emit(f"e{i}")
            q.close(T)

        tick_task = asyncio.create_task(ticker())
        consumer = asyncio.create_task(consume())
        await asyncio.to_thread(produce)
        names = await asyncio.wait_for(consumer, T)
        stop.set()
        await tick_task
        return names, ticks

    names, ticks = asyncio.run(main())
    assert names == [f"e{i}" for i in range(20)]
    assert ticks >= 10  # the loop kept running while the consumer waited


def test_async_cancel_loses_nothing() -> None:
    async def main() -> Event:
        q = small()
        sub = q.subscribe()
        waiting = asyncio.ensure_future(sub.__anext__())
        await asyncio.sleep(0.02)
        waiting.cancel()
        q.emit("kept")
        await asyncio.sleep(0.15)  # the cancelled wait may have taken it
        event = await asyncio.wait_for(sub.__anext__(), T)
        q.close(T)
        return event

    assert asyncio.run(main()).name == "kept"


# --- deadlines ----------------------------------------------------------------


def test_flush_and_close_with_deadline() -> None:
    q = EventQueue(capacity=64, workers=1, batch=1)
    release = threading.Event()
    q.on("slow", lambda e: release.wait(T))
    q.start()
    for _ in range(5):
        q.emit("slow")
    t0 = time.monotonic()
    assert q.flush(timeout=0.05) is False
    assert 0.04 <= time.monotonic() - t0 < 5
    assert q.flush(timeout=0) is False
    threading.Timer(0.1, release.set).start()
    assert q.flush(timeout=T) is True

    release.clear()
    for _ in range(5):
        q.emit("slow")
    threading.Timer(0.2, release.set).start()
    report = q.close(timeout=0.05)
    assert report.timed_out
    assert report.left >= 1
    assert report.pushed == report.handled + report.overwritten + report.left == 10
    with pytest.raises(evqueue.QueueClosed):
        q.flush(T)


# --- bad input ----------------------------------------------------------------

BIG = "x" * 1000


async def async_handler(event: Event) -> None:
    pass


@pytest.mark.parametrize(
    ("call", "exc"),
    [
        (lambda q: q.emit(123), TypeError),
        (lambda q: q.emit(b"name"), TypeError),
        (lambda q: q.emit(None), TypeError),
        (lambda q: q.emit(""), evqueue.InvalidEvent),
        (lambda q: q.emit("n" * 256), evqueue.InvalidEvent),
        (lambda q: q.emit("a", ["k", "v"]), TypeError),
        (lambda q: q.emit("a", {"k": 1}), TypeError),
        (lambda q: q.emit("a", {1: "v"}), TypeError),
        (lambda q: q.emit("a", {"": "v"}), evqueue.InvalidEvent),
        (lambda q: q.emit("a", {"k" * 256: "v"}), evqueue.InvalidEvent),
        (lambda q: q.emit("a", {"k": BIG}), evqueue.EventTooLarge),
        (lambda q: q.emit("a", {"k": "\udcff"}), UnicodeEncodeError),
        (lambda q: q.emit("a", timestamp=-1), ValueError),
        (lambda q: q.emit("a", timestamp=2**64), ValueError),
        (lambda q: q.emit("a", timestamp="now"), TypeError),
        (lambda q: q.emit("a", timestamp=1.5), TypeError),
        (lambda q: q.emit("a", external=1), TypeError),
        (lambda q: q.emit_json(b"{"), evqueue.InvalidEvent),
        (lambda q: q.emit_json(b"[]"), evqueue.InvalidEvent),
        (lambda q: q.emit_json(b'["level_up"]'), evqueue.InvalidEvent),
        (lambda q: q.emit_json(b'["level_up", {"level": "7"}, "2026-11-23T05:00:00Z"]'), evqueue.InvalidEvent),
        (lambda q: q.emit_json(b'{"name": ""}'), evqueue.InvalidEvent),
        (lambda q: q.emit_json(b'{"name": "a", "properties": {"k": 1}}'), evqueue.InvalidEvent),
        (lambda q: q.emit_json(b'{"name": "a", "timestamp": "yesterday"}'), evqueue.InvalidEvent),
        (lambda q: q.emit_json(b'{"name": "a", "properties": {"k": "' + BIG.encode() + b'"}}'), evqueue.EventTooLarge),
        (lambda q: q.emit_json(b"\xff"), evqueue.InvalidEvent),
        (lambda q: q.emit_json(b" " * (1 << 21)), evqueue.EventTooLarge),
        (lambda q: q.emit_json({"name": "a"}), TypeError),
        (lambda q: q.emit_json(b'{"name": "a"}', external="yes"), TypeError),
        (lambda q: q.emit_many(5), TypeError),
        (lambda q: q.emit_many([("a", None), "b"]), TypeError),
        (lambda q: q.emit_many([("a", None), ("b", None, None, None)]), TypeError),
        (lambda q: q.emit_many([("a", None), (1, None)]), TypeError),
        (lambda q: q.emit_many([("a", None), ("b", {"k": 2})]), TypeError),
        (lambda q: q.emit_many([("a", None), ("", None)]), evqueue.InvalidEvent),
        (lambda q: q.emit_many([("a", None), ("b", {"k": BIG})]), evqueue.EventTooLarge),
        (lambda q: q.emit_session_start({"k": 1}), TypeError),
        (lambda q: q.emit_session_end(None), TypeError),
        (lambda q: q.emit_session_end("r", {"k": BIG}), evqueue.EventTooLarge),
        (lambda q: q.emit_session_end("r", {"reason": "other"}), evqueue.InvalidEvent),
        (lambda q: q.flush(-1), ValueError),
        (lambda q: q.flush(float("nan")), ValueError),
        (lambda q: q.flush("1"), TypeError),
        (lambda q: q.close(-0.5), ValueError),
        (lambda q: q.subscribe().recv(-1), ValueError),
        (lambda q: q.subscribe(from_oldest=1), TypeError),
        (lambda q: q.on("", lambda e: None), evqueue.InvalidEvent),
        (lambda q: q.on(5, lambda e: None), TypeError),
        (lambda q: q.on("a", "not callable"), TypeError),
        (lambda q: q.on("a")(42), TypeError),
        (lambda q: q.on_any(None), TypeError),
        (lambda q: q.on_any(async_handler), TypeError),
        (lambda q: q.on("a", async_handler), TypeError),
        (lambda q: q.on_error(3), TypeError),
        (lambda q: q.off(3), TypeError),
    ],
)
def test_bad_input_raises_and_changes_nothing(call: Any, exc: type[BaseException]) -> None:
    q = EventQueue(capacity=64, slot_size=256, workers=1)
    q.emit("before")
    with pytest.raises(exc):
        call(q)
    stats = q.stats()
    assert (stats.pushed, stats.rejected, stats.depth) == (1, 0, 1)
    q.close(0)


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"capacity": 1000}, ValueError),
        ({"capacity": 0}, ValueError),
        ({"capacity": -1}, ValueError),
        ({"capacity": "big"}, TypeError),
        ({"slot_size": 12}, ValueError),
        ({"slot_size": 100}, ValueError),
        ({"workers": 0}, ValueError),
        ({"workers": 5000}, ValueError),
        ({"workers": 2.0}, TypeError),
        ({"overflow": "drop"}, ValueError),
        ({"overflow": 1}, TypeError),
        ({"batch": 0}, ValueError),
        ({"batch": 4096}, ValueError),
        ({"worker_nice": 40}, ValueError),
        ({"worker_nice": 300}, ValueError),
        ({"worker_nice": -1}, ValueError),
        ({"worker_nice": 1.5}, TypeError),
    ],
)
def test_bad_config(kwargs: dict[str, Any], exc: type[BaseException]) -> None:
    with pytest.raises(exc):
        EventQueue(**kwargs)


def test_worker_nice_is_accepted_in_range() -> None:
    for levels in (0, 39):
        q = EventQueue(capacity=64, workers=1, worker_nice=levels)
        q.start()
        q.emit("tick")
        assert q.flush(T)
        q.close(T)


def test_error_hierarchy() -> None:
    for cls in (evqueue.InvalidEvent, evqueue.EventTooLarge, evqueue.QueueFull, evqueue.QueueClosed):
        assert issubclass(cls, evqueue.EvqueueError)
    assert issubclass(evqueue.EvqueueError, Exception)
    q = EventQueue(capacity=64, slot_size=64, workers=1)
    with pytest.raises(evqueue.EventTooLarge, match="does not fit in a slot of 64 bytes"):
        q.emit("a", {"k": "v" * 100})


# --- memory and references ----------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_memory_flat_over_a_million_emits() -> None:
    q = EventQueue(capacity=1 << 14, workers=2)
    props = {"sku": "gem_pack", "price": "499"}
    handled = [0]

    def handler(event: Event) -> None:
        handled[0] += len(event.properties)

    q.on("purchase", handler)
    q.on_any(lambda e: None)
    q.start()
    refs_before = (sys.getrefcount(props), sys.getrefcount(handler), sys.getrefcount("purchase"))

    def burst(n: int) -> None:
        for _ in range(n):
            q.emit("purchase", props)
        assert q.flush(60)

    burst(200_000)  # warm up: ring pages, allocator pools
    gc.collect()
    before = rss_bytes()
    for _ in range(4):
        burst(200_000)
    gc.collect()
    growth = rss_bytes() - before
    assert (sys.getrefcount(props), sys.getrefcount(handler), sys.getrefcount("purchase")) == refs_before
    report = q.close(T)
    assert report.pushed == 1_000_000
    assert report.handled + report.overwritten == 1_000_000
    assert handled[0] == 2 * report.handled
    # close() drops the queue's reference to the handler
    assert sys.getrefcount(handler) == refs_before[1] - 1
    assert growth < 8 * 1024 * 1024, f"RSS grew by {growth} bytes over 800k emits"


def cycle(kind: str) -> weakref.ref[EventQueue]:
    """A queue reachable only through its own handler or hook."""
    q = small()
    holder = [q]  # the handler reaches the queue through this list, not a local
    if kind == "named":
        q.on("x", lambda e: holder[0].emit("y"))
    elif kind == "any":
        q.on_any(lambda e: holder[0].stats())
    else:
        q.on_error(lambda e, x: holder[0].stats())
    q.start()
    q.emit("x")
    assert q.flush(T)
    return weakref.ref(q)


@pytest.mark.parametrize("kind", ["named", "any", "error_hook"])
def test_queue_in_a_cycle_is_collected(kind: str) -> None:
    ref = cycle(kind)
    assert ref() is not None  # only the garbage collector can free it
    gc.collect()
    assert ref() is None


def test_traverse_counts_no_reference_twice() -> None:
    """The same function registered twice, and a queue kept alive from outside:
    the collector must free nothing that is still in use."""
    q = small()
    f = lambda e: None  # noqa: E731
    q.on("x", f)
    q.on("x", f)
    q.on_any(f)
    q.on_error(lambda e, x: None)
    q.start()
    for _ in range(3):
        gc.collect()
    q.emit("x")
    assert q.flush(T)
    assert q.off("x") == 2
    gc.collect()
    assert q.close(T).handled == 1


def test_dropping_a_running_queue_joins_its_workers() -> None:
    seen: list[int] = []
    q = small()
    q.on("x", lambda e: seen.append(e.seq))
    q.start()
    for _ in range(100):
        q.emit("x")
    del q  # drains with the GIL released, then stops the workers
    assert sorted(seen) == list(range(100))


def test_interpreter_exit_with_open_queues() -> None:
    """Queues left open (one in a reference cycle, one with a slow handler)
    are closed at exit: the handlers run, the process exits cleanly."""
    import subprocess
    import textwrap

    code = textwrap.dedent(
        """
        import os, time, evqueue
        q = evqueue.EventQueue(capacity=1024, workers=4)
        q.on("x", lambda e: os.write(1, b"handled 98\\n") if e.seq == 98 else None)
        q.on("y", lambda e: q.stats())  # a cycle through the handler
        slow = evqueue.EventQueue(capacity=64, workers=1)
        slow.on("s", lambda e: time.sleep(0.01))
        slow.start()
        q.start()
        for _ in range(99):
            q.emit("x")
        q.emit("y")
        for _ in range(20):
            slow.emit("s")
        os.write(1, b"exiting\\n")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "exiting" in done.stdout
    assert "handled 98" in done.stdout, done.stdout
    assert done.stderr == ""


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a fresh interpreter (fork warnings of newer CPythons off)."""
    return subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_queue_made_before_fork_is_refused_in_the_child() -> None:
    """Its worker threads stayed in the parent: in the child every wait on
    them would hang and every join would panic. It raises instead; a new
    queue works; both processes exit cleanly."""
    done = run_python(
        """
        import os, evqueue
        q = evqueue.EventQueue(capacity=64, workers=2)
        q.on_any(lambda e: None)
        q.start()
        q.emit("before")
        sub = q.subscribe()
        pid = os.fork()
        if pid == 0:
            said = []
            for call in (lambda: q.emit("x"), lambda: q.flush(1), lambda: q.close(1),
                         lambda: q.subscribe(), lambda: q.start(), lambda: sub.recv(),
                         lambda: sub.try_recv()):
                try:
                    call()
                    said.append("ran")
                except evqueue.EvqueueError as e:
                    said.append("refused" if "os.fork()" in str(e) else repr(e))
            fresh = evqueue.EventQueue(capacity=64, workers=1)
            fresh.on_any(lambda e: None)
            fresh.start()
            fresh.emit("x")
            os.write(1, (",".join(said) + f" fresh={fresh.flush(5)}\\n").encode())
        else:
            _, status = os.waitpid(pid, 0)
            report = q.close(5)
            os.write(1, f"child status={status} parent handled={report.handled}\\n".encode())
        """
    )
    assert done.returncode == 0, done.stderr
    assert "refused,refused,refused,refused,refused,refused,refused fresh=True" in done.stdout, done.stdout
    assert "child status=0 parent handled=1" in done.stdout, done.stdout
    assert done.stderr == ""


def test_no_queue_is_made_after_the_exit_hook_ran() -> None:
    """evqueue's atexit hook closes every queue; one made after it (by a hook
    registered before evqueue was imported) would never be closed, and the
    interpreter's exit would wait on it forever. It is refused instead."""
    done = run_python(
        """
        import atexit, os
        def late():
            import evqueue
            try:
                evqueue.EventQueue(capacity=64, workers=1)
                os.write(1, b"made\\n")
            except evqueue.EvqueueError as e:
                os.write(1, f"refused: {e}\\n".encode())
        atexit.register(late)  # runs after evqueue's own hook
        import evqueue
        """
    )
    assert done.returncode == 0, done.stderr
    assert "refused: the interpreter is exiting" in done.stdout, done.stdout


def thread_states() -> int:
    """Python thread states of this interpreter (CPython: walks the list)."""
    import ctypes

    api = ctypes.pythonapi
    api.PyInterpreterState_Main.restype = ctypes.c_void_p
    api.PyInterpreterState_ThreadHead.restype = ctypes.c_void_p
    api.PyInterpreterState_ThreadHead.argtypes = [ctypes.c_void_p]
    api.PyThreadState_Next.restype = ctypes.c_void_p
    api.PyThreadState_Next.argtypes = [ctypes.c_void_p]
    n, ts = 0, api.PyInterpreterState_ThreadHead(api.PyInterpreterState_Main())
    while ts:
        n, ts = n + 1, api.PyThreadState_Next(ts)
    return n


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="walks CPython thread states")
def test_worker_thread_states_are_released() -> None:
    before = thread_states()
    for _ in range(10):
        q = EventQueue(capacity=64, workers=4, batch=1)
        q.on_any(lambda e: None)
        q.start()
        for _ in range(40):
            q.emit("x")
        assert q.flush(T)
        assert thread_states() > before  # the workers keep theirs across batches
        q.close(T)
    assert thread_states() == before


def test_waits_can_be_interrupted(sigint_raises: None) -> None:
    """Ctrl-C reaches a thread blocked in flush() or recv() (checked every 100 ms)."""
    import _thread

    q = EventQueue(capacity=64, workers=1, batch=1)
    release = threading.Event()
    q.on("stuck", lambda e: release.wait(T))
    q.start()
    q.emit("stuck")
    sub = q.subscribe()
    # close() last: interrupted, it goes on closing in the background.
    for wait in (lambda: q.flush(), lambda: sub.recv(), lambda: q.close()):
        threading.Timer(0.05, _thread.interrupt_main).start()
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            wait()
        assert time.monotonic() - t0 < 2
    assert not release.is_set()  # each wait was cut short, not finished
    release.set()
    report = q.close(T)
    assert (report.handled, report.left, report.timed_out) == (1, 0, False)


def test_forwarder_waits_can_be_interrupted(sigint_raises: None) -> None:
    """A forwarder to a Redis that is not there retries until closed; its
    flush() and close() without a timeout still take Ctrl-C."""
    import _thread

    q = EventQueue(capacity=64, workers=1)
    fwd = q.forward_to_redis("redis://127.0.0.1:1/", "s")  # nothing listens there
    q.start()
    q.emit("x")
    assert q.flush(T)
    for wait in (lambda: fwd.flush(), lambda: fwd.close()):
        threading.Timer(0.05, _thread.interrupt_main).start()
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            wait()
        assert time.monotonic() - t0 < 2
    q.close(T)
    with pytest.raises(evqueue.EvqueueError):
        fwd.close(0.1)  # the event could not be written: given up, and said so


def test_try_recv_never_blocks_on_a_busy_subscriber() -> None:
    q = small()
    sub = q.subscribe()
    got: list[Event | None] = []
    reader = threading.Thread(target=lambda: got.append(sub.recv(timeout=T)))
    reader.start()
    time.sleep(0.05)  # the reader is inside recv, holding the subscriber
    t0 = time.monotonic()
    assert sub.try_recv() is None
    assert time.monotonic() - t0 < 0.05
    q.emit("for_the_reader")
    reader.join(T)
    assert [e.name for e in got if e is not None] == ["for_the_reader"]
    q.close(T)


def test_package_docstring_example() -> None:
    import doctest

    result = doctest.testmod(evqueue)
    assert result.attempted == 2 and result.failed == 0


def test_queue_dropped_inside_its_own_handler() -> None:
    seen: list[int] = []
    holder = [small()]
    q = holder[0]

    def last(event: Event) -> None:
        seen.append(event.seq)
        holder.clear()  # the last reference goes away on a worker thread

    q.on("x", last)
    q.start()
    ref = weakref.ref(q)
    del q
    ref().emit("x")  # type: ignore[union-attr]
    deadline = time.monotonic() + T
    while ref() is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ref() is None and seen == [0]


# --- ordered keys -------------------------------------------------------------


def test_keyed_events_run_in_order_one_at_a_time() -> None:
    """4 threads emit over 200 shared keys into 4 workers; handlers let go of
    the GIL now and then (time.sleep), so without keys two workers would be
    inside one key's handlers at once and out of order."""
    keys, threads, per_thread = 200, 4, 3000
    q = EventQueue(capacity=1 << 16, workers=4, batch=8)
    busy: set[str] = set()
    last: dict[tuple[str, str], int] = {}
    overlaps: list[str] = []
    disorder: list[str] = []

    @q.on("hit")
    def on_hit(event: Event) -> None:
        p = event.properties
        k, t, n = p["k"], p["t"], int(p["n"])
        if k in busy:
            overlaps.append(k)
        busy.add(k)
        if n != last.get((k, t), -1) + 1:
            disorder.append(f"{k}/{t}: {n} after {last.get((k, t))}")
        last[(k, t)] = n
        if n % 8 == 0:
            time.sleep(0.0001)  # releases the GIL mid-handler
        busy.discard(k)

    q.start()

    def emitter(t: int) -> None:
        counters = [0] * keys
        for i in range(per_thread):
            k = (i * 7919 + t * 104729) % keys
            n = counters[k]
            counters[k] += 1
            # str and bytes keys with equal bytes are the same key
            key: str | bytes = f"player-{k}" if t % 2 else f"player-{k}".encode()
            q.emit("hit", {"k": str(k), "t": str(t), "n": str(n)}, key=key)

    workers = [threading.Thread(target=emitter, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert q.flush(timeout=60.0)
    report = q.close(timeout=T)
    assert overlaps == []
    assert disorder == []
    total = threads * per_thread
    assert (report.pushed, report.handled, report.overwritten, report.left) == (total, total, 0, 0)


def test_keyed_bad_input_and_json() -> None:
    q = small()
    seen: list[str] = []
    q.on("level_up", lambda e: seen.append(e.properties["n"]))
    with pytest.raises(evqueue.InvalidEvent, match="ordering key of 257 bytes"):
        q.emit("level_up", {"n": "x"}, key="k" * 257)
    with pytest.raises(TypeError, match="key must be str, bytes or None"):
        q.emit("level_up", {"n": "x"}, key=7)  # type: ignore[arg-type]
    with pytest.raises(evqueue.InvalidEvent):
        q.emit_json(b'{"name": "level_up"}', key=b"k" * 257)
    assert q.stats().pushed == 0
    for n in range(5):
        q.emit_json(f'{{"name": "level_up", "properties": {{"n": "{n}"}}}}', key="session-1")
    q.emit("level_up", {"n": "5"}, key=None)
    q.start()
    assert q.flush(timeout=T)
    assert [n for n in seen if n != "5"] == ["0", "1", "2", "3", "4"]
    assert sorted(seen) == [str(i) for i in range(6)]
    with pytest.raises(ValueError):
        EventQueue(lanes=3)
    q.close()


def test_lag_policies_of_workers_and_subscribers() -> None:
    # 40 events into 16 slots: 24..39 retained; the headroom is 16 / 8 = 2.
    policies: list[tuple[Literal["headroom", "oldest", "newest"], int]] = [
        ("oldest", 24),
        ("headroom", 26),
        ("newest", 39),
    ]
    for lag, first in policies:
        q = EventQueue(capacity=16, workers=1, lanes=1, lag=lag)
        sub = q.subscribe(lag=lag)
        for i in range(40):
            q.emit("tick", {"i": str(i)})
        seen: list[int] = []
        q.on("tick", lambda e: seen.append(int(e.properties["i"])))
        q.start()
        assert q.flush(timeout=T)
        assert seen[0] == first and seen == list(range(first, 40)), lag
        assert q.stats().overwritten == first
        got = sub.try_recv()
        assert got is not None and got.properties["i"] == str(first), lag
        assert sub.lagged == first
        q.close(T)
    with pytest.raises(ValueError, match='lag must be "headroom", "oldest" or "newest"'):
        EventQueue(lag="latest")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        EventQueue(lag=1)  # type: ignore[arg-type]
    q = EventQueue(capacity=16)
    with pytest.raises(ValueError, match="lag must be"):
        q.subscribe(lag="")  # type: ignore[arg-type]
    q.close(T)


def test_emit_many_with_keys() -> None:
    q = small()
    seen: list[tuple[str, str]] = []
    q.on("move", lambda e: seen.append((e.properties["p"], e.properties["n"])))
    items: list[tuple[str, dict[str, str]] | tuple[str, dict[str, str], str]] = [
        ("move", {"p": p, "n": str(n)}, p) for n in range(50) for p in ("a", "b", "c")
    ]
    items.append(("move", {"p": "-", "n": "0"}))  # unkeyed, two-item form
    assert q.emit_many(items) == 151
    # A bad key anywhere refuses the whole call before anything is emitted.
    with pytest.raises(evqueue.InvalidEvent, match="emit_many item 1: .*ordering key of 257 bytes"):
        q.emit_many([("move", {"p": "a", "n": "x"}, "a"), ("move", {}, "k" * 257)])
    with pytest.raises(TypeError, match="emit_many item 0: key must be str, bytes or None"):
        q.emit_many([("move", {}, 5)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"\(name, props\) or \(name, props, key\) tuple"):
        q.emit_many([("move", {}, "a", "extra")])  # type: ignore[list-item]
    assert q.stats().pushed == 151
    q.start()
    assert q.flush(timeout=T)
    for p in ("a", "b", "c"):
        assert [n for (who, n) in seen if who == p] == [str(n) for n in range(50)]
    assert len(seen) == 151
    q.close(T)
