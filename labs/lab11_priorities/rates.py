"""Lab 11, part 4: ``rate_limit`` is a token bucket in each worker, not a limit on the queue.
One worker, then three, drain rate-limited tasks: their aggregate rate, and where the waiting
tasks are meanwhile (Redis's ``unacked`` hash against ``inspect``). Then a limit shared by every
worker, a token bucket in Redis, with three workers."""

from __future__ import annotations

import time
from typing import Any

from labkit.polling import wait_for
from labkit.redis_state import queue_length, unacked_for
from labkit.session import LabSession
from labkit.workers import Worker
from labs.lab11_priorities.tasks import GRANTS, GUARDED, LIMITED, RUNS


def where_they_wait(session: LabSession, worker: Worker, queue: str) -> dict[str, Any]:
    """One look at a worker draining rate-limited tasks: what ``inspect`` lists (reserved,
    active, scheduled) between two reads of the deliveries it holds unacknowledged."""
    before = unacked_for(session.broker, queue)
    inspect = session.app.control.inspect(destination=[worker.hostname], timeout=1.0)
    listed = {kind: len((getattr(inspect, kind)() or {}).get(worker.hostname, []))
              for kind in ("reserved", "active", "scheduled")}
    after = unacked_for(session.broker, queue)
    return {"t": time.time(), "held_unacked": min(before, after),
            "queued_in_redis": queue_length(session.broker, queue), **listed}


def limited_run(session: LabSession, workers: list[Worker], queue: str, count: int, label: str,
                timeout: float, look_at: Worker | None = None) -> dict[str, Any]:
    """``count`` rate-limited tasks into ``queue``; with ``look_at``, the worker is looked at
    (``where_they_wait``) while it drains. Returns each execution's start and host."""
    sent_at = time.time()
    for seq in range(count):
        session.app.send_task(LIMITED, (label, seq), queue=queue)
    looks = []

    def ran() -> list[dict[str, Any]]:
        rows = [r for r in session.records(RUNS) if r.get("label") == label]
        if look_at is not None and len(rows) < count - 2 and len(looks) < 4:
            looks.append(where_they_wait(session, look_at, queue))
        return rows if len(rows) >= count else []

    rows = wait_for(ran, timeout + count, f"{count} rate-limited tasks on {queue}", interval=0.1)
    return {"queue": queue, "count": count, "sent_at": sent_at, "workers": [w.hostname for w in workers],
            "looks": looks, "runs": sorted(({"t": r["started"], "hostname": r["hostname"]} for r in rows),
                                           key=lambda r: r["t"])}


def guarded_run(session: LabSession, workers: list[Worker], queue: str, count: int, per_s: float,
                label: str, timeout: float) -> dict[str, Any]:
    """``count`` tasks that each take a token from the bucket the workers share in Redis."""
    for seq in range(count):
        session.app.send_task(GUARDED, (label, seq, per_s, timeout + count / per_s), queue=queue)

    def granted() -> list[dict[str, Any]]:
        rows = [r for r in session.records(GRANTS) if r.get("label") == label]
        return rows if len(rows) >= count else []

    rows = wait_for(granted, timeout + count / per_s, f"{count} tokens from the shared bucket",
                    interval=0.1)
    return {"queue": queue, "count": count, "per_s": per_s, "workers": [w.hostname for w in workers],
            "grants": sorted(({"t": r["granted_at"], "hostname": r["hostname"], "waits": r["waits"]}
                              for r in rows), key=lambda r: r["t"])}


def aggregate_rate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Executions per second while every host that ran any was running: counted between the
    latest first start and the earliest last start among the hosts (where they overlap)."""
    hosts = sorted({r["hostname"] for r in runs})
    if len(runs) < 2:
        return {"hosts": hosts, "rate": None, "span_s": 0.0, "in_span": len(runs)}
    first = max(min(r["t"] for r in runs if r["hostname"] == h) for h in hosts)
    last = min(max(r["t"] for r in runs if r["hostname"] == h) for h in hosts)
    inside = [r["t"] for r in runs if first <= r["t"] <= last]
    span = last - first
    rate = (len(inside) - 1) / span if span > 0 and len(inside) >= 2 else None
    return {"hosts": hosts, "rate": rate, "span_s": span, "in_span": len(inside)}
