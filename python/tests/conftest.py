"""Fixtures shared by the test files."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest


@pytest.fixture
def sigint_raises() -> Iterator[None]:
    """Python's own SIGINT handler for the test. A shell that runs the suite
    in the background starts it with SIGINT ignored; a Ctrl-C then never
    reaches Python (`_thread.interrupt_main()` and `os.kill(SIGINT)` do
    nothing), and a test of an interruptible wait would wait forever."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)
