"""Lab 07's workloads: IO-bound (a sleep of fixed latency), CPU-bound (pure-Python work of a
calibrated number of iterations), mixed, nothing at all (the ceiling); and a task that overruns
its time limits."""

from __future__ import annotations

import time

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from labkit.taskside import record_attempt

LIMITS = "lab07:limits"


def spin(iterations: int) -> int:
    """Pure-Python work that holds the GIL: the cost the lab calibrates."""
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return total


@shared_task(name="lab07.io")
def io(latency: float) -> float:
    time.sleep(latency)
    return latency


@shared_task(name="lab07.noop")
def noop() -> None:
    """Nothing: what a worker drains per second of these is its own ceiling."""


def _timed_spin(iterations: int) -> float:
    started = time.perf_counter()
    spin(iterations)
    return time.perf_counter() - started


@shared_task(name="lab07.cpu")
def cpu(iterations: int) -> float:
    """Returns the seconds its work took: the CPU cost, measured where it ran, without events."""
    return _timed_spin(iterations)


@shared_task(name="lab07.mixed")
def mixed(iterations: int, latency: float) -> float:
    spent = _timed_spin(iterations)
    time.sleep(latency)
    return spent


@shared_task(bind=True, name="lab07.overrun")
def overrun(self, seconds: float) -> str:
    """Runs past its limits; notes the soft limit when it arrives, then keeps going, so only
    the hard limit can stop it."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            time.sleep(0.02)
        except SoftTimeLimitExceeded:
            record_attempt(self, LIMITS, outcome="soft", after=time.monotonic() - started)
    record_attempt(self, LIMITS, outcome="ran to the end", after=time.monotonic() - started)
    return "finished"
