"""Lab 12's tasks: a leaking task that records its own process's memory after each run, no-op
tasks for drains, ETA targets, and a task taking a big argument against one taking an id."""

from __future__ import annotations

import os
import resource

import psutil
from celery import shared_task

from labkit.taskside import record_attempt, store

LEAK, SPIKE, NOOP, SMALL = "lab12.leak", "lab12.spike", "lab12.noop", "lab12.small"
BIG, BY_ID = "lab12.big", "lab12.by_id"
RUNS = "lab12:runs"  # one record per lab12.leak execution
PAYLOAD = "lab12:payload:"  # where a task given an id finds its data

_KEPT: list[bytes] = []  # what the leaking task keeps: it grows in each pool process


@shared_task(bind=True, name=LEAK)
def leak(self, label: str, seq: int, mib: int) -> int:
    """Keeps ``mib`` MiB more in its process each run (filled, so the pages are resident), then
    records the process's RSS: a child's memory over the tasks it ran."""
    _KEPT.append(b"\xa5" * (mib * 2**20))
    rss = psutil.Process(os.getpid()).memory_info().rss
    record_attempt(self, RUNS, label=label, seq=seq, rss=rss, peak=peak_rss(), kept_mib=kept_mib())
    return rss


def kept_mib() -> int:
    return sum(len(block) for block in _KEPT) // 2**20


def peak_rss() -> int:
    """The process's peak RSS in bytes (Linux's ru_maxrss, in KiB): what billiard compares with
    worker_max_memory_per_child after each task (``billiard.compat.mem_rss``), not the current RSS."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@shared_task(bind=True, name=SPIKE)
def spike(self, label: str, seq: int, mib: int) -> int:
    """Takes ``mib`` MiB for a moment and gives it all back: the current RSS falls again, the peak
    stays."""
    block = b"\xa5" * (mib * 2**20)
    del block
    rss = psutil.Process(os.getpid()).memory_info().rss
    record_attempt(self, RUNS, label=label, seq=seq, rss=rss, peak=peak_rss(), kept_mib=kept_mib())
    return rss


@shared_task(name=NOOP, ignore_result=True)
def noop(x: int) -> int:
    return x


@shared_task(name=SMALL)
def small(x: int) -> int:
    """A result-producing task whose result is tiny: what a result key costs on its own."""
    return x


@shared_task(name=BIG)
def big(payload: str) -> int:
    """Takes its data in the message."""
    return len(payload)


@shared_task(bind=True, name=BY_ID)
def by_id(self, key: str) -> int:
    """Takes an id and reads its data where it lives (here, the same Redis)."""
    client, prefix = store(self)
    return len(client.get(f"{prefix}{PAYLOAD}{key}") or b"")
