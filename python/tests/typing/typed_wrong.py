"""Wrong uses the stubs must catch: `mypy --strict` must report exactly these 7 errors (2 on the last line)."""

import evqueue

q = evqueue.EventQueue(overflow="drop")  # not a valid overflow literal
q.emit(42)  # name must be str
q.emit("a", {"k": 1})  # values must be str
q.flush(timeout="soon")  # timeout is a number
q.on("a", 5)  # a handler is a callable
name: int = q.subscribe().recv().name  # Event | None, and name is str
