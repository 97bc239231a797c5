"""evqueue: a lock-free event queue for game servers.

Game code emits small events; a pool of native worker threads runs your
Python handlers in the background, taking the GIL once per batch of events.
Emitting never blocks: when handlers fall behind, the queue keeps the newest
events and counts exactly what it lost.

>>> import evqueue
>>> with evqueue.EventQueue(capacity=1024, workers=2) as q:
...     @q.on("purchase")
...     def on_purchase(event: evqueue.Event) -> None:
...         print(event.name, event.properties["sku"])
...     _ = q.emit("purchase", {"sku": "gem_pack"})
...     q.flush(timeout=5.0)
purchase gem_pack
True
"""

from __future__ import annotations

import atexit
import os
import sys

from ._evqueue import (
    MAX_NAME_LEN,
    Event,
    EventQueue,
    EventTooLarge,
    EvqueueError,
    InvalidEvent,
    QueueClosed,
    QueueFull,
    RedisForwarder,
    ShutdownReport,
    Stats,
    Subscriber,
    _after_fork_in_child,
    _close_all,
    now,
)

__all__ = [
    "MAX_NAME_LEN",
    "Event",
    "EventQueue",
    "EventTooLarge",
    "EvqueueError",
    "InvalidEvent",
    "QueueClosed",
    "QueueFull",
    "RedisForwarder",
    "ShutdownReport",
    "Stats",
    "Subscriber",
    "now",
]

if sys.platform == "linux":
    # The shared-memory ring is Linux-only.
    from ._evqueue import SharedQueue, SharedStats, SharedSubscriber

    __all__ += ["SharedQueue", "SharedStats", "SharedSubscriber"]

# Close every open queue while the interpreter still runs: a worker thread
# must never try to take the GIL of a finalizing interpreter.
atexit.register(_close_all)

# A queue made before os.fork() has its worker threads in the parent: in the
# child its methods raise EvqueueError instead of waiting on threads that are
# not there.
os.register_at_fork(after_in_child=_after_fork_in_child)
