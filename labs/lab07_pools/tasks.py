"""Lab 07's workloads: IO-bound (a sleep of fixed latency), CPU-bound (pure-Python work of a
calibrated number of iterations), mixed; and a task that overruns its time limits."""

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


@shared_task(name="lab07.cpu")
def cpu(iterations: int) -> int:
    return spin(iterations)


@shared_task(name="lab07.mixed")
def mixed(iterations: int, latency: float) -> int:
    spin(iterations)
    time.sleep(latency)
    return iterations


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
