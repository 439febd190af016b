"""Poll something (a queue length, Redis keys) on a fixed interval in the background."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class Sampler:
    """``with Sampler(fn, 0.05) as s: ...`` then ``s.rows``: ``[{"t": ..., "value": ...}]``."""

    def __init__(self, fn: Callable[[], Any], interval: float = 0.05) -> None:
        self.fn = fn
        self.interval = interval
        self.rows: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            t = time.time()
            try:
                self.rows.append({"t": t, "value": self.fn()})
            except Exception as exc:  # a failed sample is recorded, never fatal
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
