"""Type stubs for the compiled module `evqueue._evqueue` (re-exported by `evqueue`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Literal, TypeVar, final, overload

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
    "_after_fork_in_child",
    "_close_all",
    "now",
]

if sys.platform == "linux":
    __all__ += ["SharedQueue", "SharedStats", "SharedSubscriber"]

MAX_NAME_LEN: int

def now() -> int:
    """Nanoseconds since the Unix epoch: the clock that stamps an event
    emitted with timestamp None or 0."""

_Props = dict[str, str] | None
_H = TypeVar("_H", bound=Callable[[Event], object])
_E = TypeVar("_E", bound=Callable[[Event, BaseException], object])

class EvqueueError(Exception):
    """Base class of every error evqueue raises (besides TypeError and ValueError for bad arguments)."""

class InvalidEvent(EvqueueError):
    """The event was refused: empty or too long name, bad property, malformed JSON. Nothing was emitted."""

class EventTooLarge(EvqueueError):
    """The encoded event does not fit in one slot (the message names both sizes). Nothing was emitted."""

class QueueFull(EvqueueError):
    """overflow="reject" and the workers are a whole ring behind: the event was refused and counted."""

class QueueClosed(EvqueueError):
    """The queue was closed: it accepts no more events (or a subscriber has read everything)."""

@final
class Event:
    """An event: what a handler or a subscriber receives."""

    def __new__(
        cls,
        name: str,
        properties: dict[str, str] | None = None,
        timestamp: int = 0,
        external: bool = False,
        seq: int = 0,
    ) -> Event: ...
    @property
    def name(self) -> str:
        """The event name."""
    @property
    def properties(self) -> dict[str, str]:
        """The properties, as a new dict of str to str."""
    @property
    def timestamp(self) -> int:
        """Nanoseconds since the Unix epoch (an event emitted with timestamp
        None or 0 was stamped at emit, with `now()`'s clock)."""
    @property
    def external(self) -> bool:
        """True when a client sent the event."""
    @property
    def seq(self) -> int:
        """The sequence number the queue assigned."""
    def __eq__(self, other: object, /) -> bool: ...
    def __ne__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Stats:
    """A snapshot of a queue's counters.

    Once the queue is quiet, `pushed == handled + popped + lost + depth`,
    where `lost == overwritten + rejected` (`pushed` includes rejected emits).
    """

    @property
    def pushed(self) -> int: ...
    @property
    def delivered(self) -> int: ...
    @property
    def handled(self) -> int: ...
    @property
    def popped(self) -> int: ...
    @property
    def overwritten(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def panics(self) -> int: ...
    @property
    def depth(self) -> int: ...
    @property
    def high_water(self) -> int: ...
    @property
    def capacity(self) -> int: ...
    @property
    def workers(self) -> int: ...
    @property
    def busy_workers(self) -> int: ...
    @property
    def failures_by_name(self) -> dict[str, tuple[int, int]]: ...
    @property
    def subscribers(self) -> list[tuple[int, int, int]]: ...
    @property
    def lost(self) -> int:
        """Events lost: `overwritten + rejected`."""
    def to_prometheus(self) -> str:
        """The snapshot in the Prometheus text exposition format."""

@final
class ShutdownReport:
    """What `EventQueue.close()` reports.

    Once the workers are joined, `pushed == handled + popped + lost + left`,
    where `lost == overwritten + rejected`.
    """

    @property
    def pushed(self) -> int: ...
    @property
    def handled(self) -> int: ...
    @property
    def popped(self) -> int: ...
    @property
    def overwritten(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def panics(self) -> int: ...
    @property
    def left(self) -> int: ...
    @property
    def timed_out(self) -> bool: ...
    @property
    def lost(self) -> int:
        """Events lost: `overwritten + rejected`."""

@final
class Subscriber:
    """A broadcast subscriber, from `EventQueue.subscribe()`."""

    def try_recv(self) -> Event | None:
        """The next event if one is waiting, else None (never blocks)."""
    def recv(self, timeout: float | None = None) -> Event | None:
        """Waits for the next event with the GIL released; None on timeout."""
    def _wait(self, timeout: float) -> bool: ...
    @property
    def lagged(self) -> int:
        """Events this subscriber missed so far (overwritten before it read
        them)."""
    @property
    def id(self) -> int:
        """This subscriber's id, as in `Stats.subscribers`."""
    def __iter__(self) -> Subscriber: ...
    def __next__(self) -> Event: ...
    def __aiter__(self) -> Subscriber: ...
    def __anext__(self) -> Awaitable[Event]: ...

@final
class RedisForwarder:
    """Forwards a queue's events to a Redis stream; see `EventQueue.forward_to_redis`."""

    def stats(self) -> dict[str, int]:
        """accepted, dropped, written, failed, abandoned, pending, high_water, batches, connects."""
    def flush(self, timeout: float | None = None) -> bool:
        """Waits until everything taken is in the stream; False on timeout."""
    def close(self, timeout: float | None = None) -> None:
        """Writes what is buffered, then stops."""

@final
class EventQueue:
    """An event queue with a pool of worker threads running Python handlers.

    The workers start with `start()` or on entering a `with` block,
    whichever comes first (the other then does nothing); until then events
    wait in the ring. Handlers may be registered before or after.
    """

    def __new__(
        cls,
        capacity: int = 65536,
        slot_size: int = 256,
        workers: int = 8,
        overflow: Literal["overwrite", "reject"] = "overwrite",
        *,
        batch: int = 64,
        lanes: int = 0,
        worker_nice: int = 5,
        lag: Literal["headroom", "oldest", "newest"] = "headroom",
    ) -> EventQueue: ...
    def start(self) -> None:
        """Starts the worker threads; does nothing if they already run.
        Raises `QueueClosed` after `close()`."""
    @overload
    def on(self, name: str, handler: None = None) -> Callable[[_H], _H]: ...
    @overload
    def on(self, name: str, handler: _H) -> _H: ...
    def on_any(self, handler: _H) -> _H:
        """Registers a handler for every event."""
    def on_session_start(self, handler: _H) -> _H:
        """Registers a handler for `session_start` events."""
    def on_session_end(self, handler: _H) -> _H:
        """Registers a handler for `session_end` events."""
    def on_error(self, hook: _E) -> _E:
        """Sets `hook(event, exception)` for handler exceptions."""
    def off(self, name: str) -> int:
        """Removes the handlers of `name`; returns how many there were."""
    def emit(
        self,
        name: str,
        props: _Props = None,
        timestamp: int | None = None,
        external: bool = False,
        *,
        key: str | bytes | None = None,
    ) -> int:
        """Emits an event and returns its sequence number; never blocks.
        `timestamp` None or 0 means "stamp it at emit" (the clock of `now()`).
        `key`: events with equal keys are handled in emit order, one at a time."""
    def emit_json(
        self, body: bytes | str, external: bool = True, *, key: str | bytes | None = None
    ) -> int:
        """Emits a JSON event body; returns its sequence number. `key` as for `emit`."""
    def emit_many(
        self,
        events: Iterable[tuple[str, _Props] | tuple[str, _Props, str | bytes | None]],
    ) -> int:
        """Emits `(name, props)` pairs or `(name, props, key)` triples in
        order; returns how many. A bad item raises and emits nothing."""
    def emit_session_start(self, props: _Props = None) -> int:
        """Emits `session_start`."""
    def emit_session_end(self, reason: str, props: _Props = None) -> int:
        """Emits `session_end` with a `reason` property."""
    def flush(self, timeout: float | None = None) -> bool:
        """Waits until everything emitted before is handled; False on timeout."""
    def close(self, timeout: float | None = None) -> ShutdownReport:
        """Closes the queue, drains it and reports."""
    def forward_to_redis(
        self, url: str, stream: str, *, batch: int = 256, maxlen: int | None = None
    ) -> RedisForwarder:
        """Forwards every event to a Redis stream (XADD in pipelined batches)."""
    def stats(self) -> Stats:
        """A snapshot of the counters."""
    def subscribe(
        self,
        from_oldest: bool = False,
        *,
        lag: Literal["headroom", "oldest", "newest"] = "headroom",
    ) -> Subscriber:
        """A broadcast subscriber; `lag`: where it continues when lapped."""
    @property
    def capacity(self) -> int: ...
    @property
    def slot_size(self) -> int: ...
    @property
    def workers(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> EventQueue:
        """Starts the workers (as `start()`) and returns the queue."""
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> bool: ...

if sys.platform == "linux":
    _Path = str | bytes | os.PathLike[str] | os.PathLike[bytes]

    @final
    class SharedStats:
        """A snapshot of a shared ring's counters, those of every process on it.

        Once the ring is quiet, `pushed == delivered + lost + depth`, where
        `lost == overwritten + rejected`.
        """

        @property
        def pushed(self) -> int: ...
        @property
        def delivered(self) -> int: ...
        @property
        def overwritten(self) -> int: ...
        @property
        def rejected(self) -> int: ...
        @property
        def lost(self) -> int: ...
        @property
        def depth(self) -> int: ...
        @property
        def high_water(self) -> int: ...
        @property
        def capacity(self) -> int: ...

    @final
    class SharedQueue:
        """A queue in shared memory (Linux): a ring in a memory-mapped file
        that processes in Python, C or Rust emit into and claim from."""

        @staticmethod
        def create(
            path: _Path,
            capacity: int = 65536,
            slot_size: int = 256,
            overflow: Literal["overwrite", "reject"] = "overwrite",
        ) -> SharedQueue:
            """Creates the file (mode 0600; `FileExistsError` if it exists) and opens it."""
        @staticmethod
        def open(path: _Path) -> SharedQueue:
            """Opens an existing ring; `EvqueueError` if the file does not validate."""
        @staticmethod
        def remove(path: _Path) -> None:
            """Deletes the file; processes that have it open keep using it."""
        def emit(
            self,
            name: str,
            props: _Props = None,
            timestamp: int | None = None,
            external: bool = False,
        ) -> int:
            """Emits an event (never blocks), wakes waiting claims, returns its sequence number."""
        def try_claim(self) -> Event | None:
            """The next event for the worker group, or None."""
        def claim(self, timeout: float | None = None) -> Event | None:
            """Waits up to `timeout` seconds for an event (GIL released); None on timeout."""
        def emit_raw(self, data: bytes | bytearray) -> int:
            """Emits the bytes as they are (at most `slot_size - 12`), wakes
            waiting claims, returns its sequence number."""
        def try_claim_raw(self) -> tuple[int, bytes] | None:
            """The next raw payload as `(seq, bytes)`, or None; `EvqueueError`
            (and consumed) if it is an event."""
        def claim_raw(self, timeout: float | None = None) -> tuple[int, bytes] | None:
            """Waits up to `timeout` seconds for a raw payload (GIL released); None on timeout."""
        def subscribe(self, from_oldest: bool = False) -> SharedSubscriber:
            """A broadcast subscriber: every event from now on (or every one the
            ring holds), taking none from the worker group."""
        def wake(self) -> None:
            """Wakes every process waiting in `claim` on this ring."""
        def stats(self) -> SharedStats:
            """A snapshot of the ring's counters."""
        def close(self) -> None:
            """Releases this process's handle; the file and its events stay."""
        @property
        def closed(self) -> bool: ...
        @property
        def path(self) -> str: ...
        @property
        def capacity(self) -> int: ...
        @property
        def slot_size(self) -> int: ...
        def __enter__(self) -> SharedQueue: ...
        def __exit__(
            self,
            exc_type: type[BaseException] | None,
            exc: BaseException | None,
            tb: TracebackType | None,
            /,
        ) -> bool: ...

    @final
    class SharedSubscriber:
        """A broadcast subscriber on a shared ring, from `SharedQueue.subscribe()`."""

        def try_recv(self) -> Event | None:
            """The next event if one is there, else None (never blocks)."""
        def recv(self, timeout: float | None = None) -> Event | None:
            """Waits for the next event (GIL released, Ctrl-C honoured); None on timeout."""
        @property
        def lagged(self) -> int:
            """Events this subscriber missed so far (overwritten before it read
            them)."""
        def __iter__(self) -> SharedSubscriber: ...
        def __next__(self) -> Event: ...

def _after_fork_in_child() -> None: ...
def _close_all() -> None: ...
