"""Waiting for a condition the lab polls (a Redis key, a record, a log line), always bounded."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def poll_until(ok: Callable[[], Any], timeout: float, interval: float = 0.02) -> bool:
    """True once ``ok()`` is truthy; False if ``timeout`` s pass first (checked once at least)."""
    deadline = time.monotonic() + max(0.0, timeout)
    while not ok():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def wait_for(ready: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """``ready()``'s first truthy value, polled; TimeoutError naming ``what`` otherwise, so a
    lab never goes on to measure something that did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        value = ready()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:g} s")
        time.sleep(interval)
