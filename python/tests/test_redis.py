"""`EventQueue.forward_to_redis`: argument checks (no server needed) and,
when EVQUEUE_REDIS_URL names a throwaway redis-server (the test command starts
one), events forwarded exactly once into a stream."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

import evqueue
from evqueue import EventQueue

T = 10.0
URL = os.environ.get("EVQUEUE_REDIS_URL")


def test_bad_arguments_are_refused_before_anything_is_attached() -> None:
    with EventQueue(capacity=64, workers=1) as q:
        for kw in ({"batch": 0}, {"batch": 65537}, {"maxlen": 0}, {"batch": -1}):
            with pytest.raises(ValueError):
                q.forward_to_redis("redis://127.0.0.1:1/", "s", **kw)
        with pytest.raises(ValueError, match="stream name"):
            q.forward_to_redis("redis://127.0.0.1:1/", "")
        with pytest.raises(ValueError, match="bad redis url"):
            q.forward_to_redis("http://nowhere", "s")
        with pytest.raises(TypeError):
            q.forward_to_redis("redis://127.0.0.1:1/", "s", batch="8")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            q.forward_to_redis(1, "s")  # type: ignore[arg-type]
        # Nothing was attached: events still flow with no handler failing.
        q.emit("tick")
        assert q.flush(timeout=T)
        assert q.stats().errors == 0


def redis_cli(*args: str) -> str:
    assert URL is not None
    out = subprocess.run(
        ["redis-cli", "-u", URL, *args], check=True, capture_output=True, text=True, timeout=T
    )
    return out.stdout.strip()


@pytest.mark.skipif(URL is None, reason="EVQUEUE_REDIS_URL is not set (the test command sets it)")
def test_events_arrive_in_the_stream_exactly_once() -> None:
    assert URL is not None
    stream = f"evq-py-{uuid.uuid4().hex}"
    n = 2000
    q = EventQueue(capacity=4096, workers=2)
    fwd = q.forward_to_redis(URL, stream, batch=128, maxlen=100_000)
    assert isinstance(fwd, evqueue.RedisForwarder)
    q.start()
    for i in range(n):
        q.emit("purchase", {"sku": "gem_pack", "i": str(i)}, external=i % 2 == 0)
    report = q.close(timeout=T)
    assert (report.handled, report.errors, report.left) == (n, 0, 0)
    fwd.close(timeout=T)
    stats = fwd.stats()
    assert (stats["accepted"], stats["written"], stats["dropped"]) == (n, n, 0)
    assert redis_cli("XLEN", stream) == str(n)
    # Every entry is 11 lines: its id, then the documented fields name, ts,
    # ext and p:<key> per property. Two workers feed the forwarder, so the
    # stream's order across them is not the emit order: check each entry.
    lines = redis_cli("XRANGE", stream, "-", "+").splitlines()
    assert len(lines) == 11 * n
    seen = []
    for at in range(0, len(lines), 11):
        entry = lines[at + 1 : at + 11]
        i = int(entry[9])
        assert entry[:3] == ["name", "purchase", "ts"] and entry[3].isdigit(), entry
        assert entry[4:] == ["ext", "1" if i % 2 == 0 else "0", "p:sku", "gem_pack", "p:i", str(i)]
        seen.append(i)
    assert sorted(seen) == list(range(n)), "each event exactly once"
    redis_cli("DEL", stream)
