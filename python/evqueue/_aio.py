"""`async for` support for `evqueue.Subscriber` (used by `Subscriber.__anext__`).

The event loop never blocks: an empty subscriber is waited on in a helper
thread (GIL released) for at most 0.1 s at a time; the event it receives is
kept in the subscriber until `try_recv` takes it, so cancelling a waiting
`__anext__` loses nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

from ._evqueue import Event, QueueClosed, Subscriber

#: Longest time a helper thread waits before the coroutine looks again.
WAIT_SLICE = 0.1

_executor: concurrent.futures.ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _waiters() -> concurrent.futures.ThreadPoolExecutor:
    """A private pool for the waits, so they never starve the loop's default executor."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=32, thread_name_prefix="evqueue-aio"
            )
        return _executor


async def anext(sub: Subscriber) -> Event:
    """The next event of `sub`; StopAsyncIteration once the queue is closed and drained."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            event = sub.try_recv()
        except QueueClosed:
            raise StopAsyncIteration from None
        if event is not None:
            return event
        await loop.run_in_executor(_waiters(), sub._wait, WAIT_SLICE)
