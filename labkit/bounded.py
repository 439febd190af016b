"""Calling code the kit does not own (a learner's exercise) with a bound on its time."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Call:
    value: Any = None
    error: BaseException | None = None
    seconds: float = 0.0
    finished: bool = False
    ended_at: float | None = None  # wall clock, read in the thread as fn returned: not the
    # caller's start plus ``seconds`` (the thread may start late on a busy machine)


@dataclass
class Background:
    """A call running in its own daemon thread, to be joined later with a bound."""
    thread: threading.Thread
    out: Call

    def frames(self) -> list[str]:
        """The functions the thread is in now, outermost first ("file:function"); [] once it
        has ended. What tells "blocked where we meant it to be" from "still getting there"."""
        frame = sys._current_frames().get(self.thread.ident or -1)
        names = []
        while frame is not None:
            names.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")
            frame = frame.f_back
        return names[::-1]

    def join(self, timeout: float) -> Call:
        """What the call did by ``timeout`` from now (``finished=False``: still running)."""
        self.thread.join(timeout)
        return self.out


def start(fn: Callable[[], Any], name: str = "bounded-call") -> Background:
    """Begin ``fn`` in a daemon thread and return at once."""
    out = Call()

    def target() -> None:
        started = time.monotonic()
        try:
            out.value = fn()
        except BaseException as exc:
            out.error = exc
        out.seconds = time.monotonic() - started
        out.ended_at = time.time()
        out.finished = True

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return Background(thread, out)


def call(fn: Callable[[], Any], timeout: float) -> Call:
    """Run ``fn`` in a daemon thread; what it returned or raised, and how long it took, or
    ``finished=False`` if it was still running at ``timeout`` (the thread is left behind)."""
    return start(fn, "learner-call").join(timeout)
