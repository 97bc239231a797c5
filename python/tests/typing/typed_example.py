"""A small typed program: `mypy --strict` must accept it (and it runs)."""

from __future__ import annotations

import asyncio

import evqueue


def main() -> int:
    totals: dict[str, int] = {}
    failures: list[str] = []

    with evqueue.EventQueue(capacity=1024, slot_size=256, workers=2, overflow="overwrite") as q:

        @q.on("purchase")
        def on_purchase(event: evqueue.Event) -> None:
            sku = event.properties.get("sku", "?")
            totals[sku] = totals.get(sku, 0) + 1

        def on_error(event: evqueue.Event, exc: BaseException) -> None:
            failures.append(f"{event.name}: {exc!r}")

        q.on_any(lambda e: None)
        q.on_error(on_error)
        q.on_session_end(lambda e: None)
        seq: int = q.emit("purchase", {"sku": "gem_pack"}, timestamp=None, external=False)
        q.emit_json(b'{"name": "purchase", "properties": {"sku": "gold"}}', external=True)
        n: int = q.emit_many([("purchase", {"sku": "gem_pack"}), ("tick", None)])
        q.emit_session_end(reason="client closed")
        done: bool = q.flush(timeout=5.0)
        stats: evqueue.Stats = q.stats()
        sub: evqueue.Subscriber = q.subscribe(from_oldest=True)
        first: evqueue.Event | None = sub.try_recv()
        later: evqueue.Event | None = sub.recv(timeout=0.01)
        lagged: int = sub.lagged
        try:
            q.emit("")
        except evqueue.InvalidEvent as e:
            failures.append(str(e))
        report: evqueue.ShutdownReport = q.close(timeout=5.0)

    async def drain(s: evqueue.Subscriber) -> list[str]:
        return [e.name async for e in s]

    names = asyncio.run(drain(sub))
    assert done and report.handled == stats.pushed == 5
    assert seq == 0 and n == 2 and first is not None and lagged == 0 and later is not None
    assert totals == {"gem_pack": 2, "gold": 1}, totals
    print(f"ok: {report.handled} handled, {len(names)} left for the subscriber, {len(failures)} failure")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
