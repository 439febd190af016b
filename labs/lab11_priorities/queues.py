"""Lab 11, part 3: one worker consuming two queues (``-Q high,low``), pre-filled: which queue it
takes from next, with the Redis transport's default ``queue_order_strategy`` (round robin) and
with ``priority``; and a message priority against the order of the queues."""

from __future__ import annotations

from typing import Any

from celery import Celery

from labs.lab11_priorities.tasks import JOB


def prefill(app: Celery, label: str, high: str, low: str, per_queue: int,
            low_priority: int | None = None, high_priority: int | None = None) -> int:
    """``per_queue`` tasks into each queue (high first, then low), sent without a priority unless
    one is given; returns how many were sent."""
    def options(priority: int | None) -> dict[str, Any]:
        return {} if priority is None else {"priority": priority}
    seq = 0
    for queue, priority in ((high, high_priority), (low, low_priority)):
        for _ in range(per_queue):
            app.send_task(JOB, (label, seq), queue=queue, **options(priority))
            seq += 1
    return seq


def turns(order: list[dict[str, Any]], high: str, low: str) -> dict[str, Any]:
    """What a queue order did to ``low``: where its first task ran, the longest run of one queue
    while the other still had work, and the queue of each execution."""
    queues = [r["routing_key"] for r in order]
    total = {q: queues.count(q) for q in (high, low)}
    seen = {high: 0, low: 0}
    longest, run, previous = 0, 0, None
    for q in queues:
        both_left = all(seen[x] < total[x] for x in (high, low))
        seen[q] += 1
        run = run + 1 if q == previous else 1
        previous = q
        if both_left:
            longest = max(longest, run)
    return {"queues": queues, "first_low_at": queues.index(low) if low in queues else None,
            "last_high_at": len(queues) - 1 - queues[::-1].index(high) if high in queues else None,
            "longest_run_while_both_had_work": longest, "total": total}
