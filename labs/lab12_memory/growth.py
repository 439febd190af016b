"""Lab 12, part 1: a leaking task on three workers of one pool process each (no limit,
``worker_max_tasks_per_child``, ``worker_max_memory_per_child``): which process ran each task,
when, and its RSS after it, recorded by the task; and what a replacement costs between two tasks."""

from __future__ import annotations

import time
from itertools import pairwise
from typing import Any

from labkit.session import LabSession
from labs.lab12_memory.tasks import LEAK, RUNS, SPIKE

REPLACEMENT_BOUND_S = 6.0  # a new pool process within the pool's 5 s maintenance, and its start


def send_leaks(s: LabSession, label: str, queue: str, n: int, mib: int) -> None:
    """``n`` leaking tasks into ``queue``, labelled ``label``."""
    for seq in range(n):
        s.app.send_task(LEAK, (label, seq, mib), queue=queue)


def ran_leaks(s: LabSession, label: str, n: int, timeout: float) -> list[dict[str, Any]]:
    """Once all ``n`` ran: each execution's pid, RSS and peak RSS, in the order they ran. The
    wait is bounded per task, not in all: each may wait for a replaced process (the pool may
    notice an exit only on its 5 s maintenance timer)."""
    seen, progress = 0, time.monotonic()
    while True:
        rows = [r for r in s.records(RUNS) if r.get("label") == label]
        if len(rows) >= n:
            break
        if len(rows) > seen:
            seen, progress = len(rows), time.monotonic()
        elif time.monotonic() - progress > timeout + REPLACEMENT_BOUND_S:
            raise TimeoutError(f"{n} leaking tasks labelled {label}: {seen} ran, then none for "
                               f"{timeout + REPLACEMENT_BOUND_S:g} s")
        time.sleep(0.05)
    return [{"seq": r["seq"], "pid": r["pid"], "rss": r["rss"], "peak": r["peak"], "t": r["t"],
             "kept_mib": r["kept_mib"]} for r in sorted(rows, key=lambda r: r["t"])]


def spike_then_next(s: LabSession, queue: str, mib: int, timeout: float) -> dict[str, Any]:
    """A task that takes ``mib`` MiB and frees it, then a task keeping nothing: their processes."""
    s.app.send_task(SPIKE, ("spike", 0, mib), queue=queue)
    s.app.send_task(LEAK, ("spike", 1, 0), queue=queue)
    first, after = ran_leaks(s, "spike", 2, timeout)
    return {"mib": mib, "spike": first, "next": after}


def leak_runs(s: LabSession, label: str, queue: str, n: int, mib: int,
              timeout: float) -> list[dict[str, Any]]:
    send_leaks(s, label, queue, n, mib)
    return ran_leaks(s, label, n, timeout)


def segments(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs of consecutive tasks one process ran: a new segment is a new pool child."""
    out: list[dict[str, Any]] = []
    for r in rows:
        if not out or out[-1]["pid"] != r["pid"]:
            out.append({"pid": r["pid"], "seqs": [], "rss": [], "peak": []})
        out[-1]["seqs"].append(r["seq"])
        out[-1]["rss"].append(r["rss"])
        out[-1]["peak"].append(r.get("peak", r["rss"]))
    return out


def gaps(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Seconds between consecutive tasks of one worker (each recorded as it ended): within one
    process, and across a replacement (the new process's first task after the old one's last)."""
    out: dict[str, list[float]] = {"within": [], "across": []}
    for a, b in pairwise(rows):
        out["within" if a["pid"] == b["pid"] else "across"].append(b["t"] - a["t"])
    return out
