"""Lab 11, part 2: the order one worker runs a queue in, by priority. A queue pre-filled with
shuffled priorities, drained by a worker that takes one message at a time; then urgent tasks
sent into a running backlog, against what the worker had already prefetched."""

from __future__ import annotations

import json
import random
import time
from typing import Any

from celery import Celery

from labkit.broker import Broker
from labkit.polling import wait_for
from labkit.redis_state import PRIORITY_SEP, unacked_for
from labkit.session import LabSession
from labkit.taskside import STARTS
from labs.lab11_priorities.tasks import JOB, RUNS

BULK, URGENT = 9, 0  # the priorities of the backlog and of the tasks that should overtake it


def prefill_shuffled(app: Celery, queue: str, per_value: int, seed: int, label: str) -> list[dict[str, Any]]:
    """``per_value`` tasks of each priority 0-9, sent in a shuffled order (``seq`` = the order
    sent), into a queue no worker consumes yet."""
    priorities = [p for p in range(10) for _ in range(per_value)]
    random.Random(seed).shuffle(priorities)
    sent = []
    for seq, priority in enumerate(priorities):
        result = app.send_task(JOB, (label, seq), queue=queue, priority=priority)
        sent.append({"seq": seq, "priority": priority, "id": result.id})
    return sent


def runs(session: LabSession, label: str) -> list[dict[str, Any]]:
    """The executions recorded under ``label``, in the order they started."""
    return sorted((r for r in session.records(RUNS) if r.get("label") == label), key=lambda r: r["started"])


def drained_order(session: LabSession, label: str, count: int, timeout: float) -> list[dict[str, Any]]:
    """Once all ``count`` ran: (seq, priority sent) in the order they ran, and who ran them."""
    wait_for(lambda: len(runs(session, label)) >= count, timeout, f"{count} '{label}' tasks to run")
    return [{"seq": r["seq"], "priority": r["priority"], "routing_key": r["routing_key"],
             "hostname": r["hostname"], "started": r["started"]} for r in runs(session, label)]


# -- urgent tasks sent into a running backlog --------------------------------------------------
def prefill_bulk(app: Celery, queue: str, count: int, task_s: float, label: str) -> list[str]:
    """The backlog: ``count`` tasks of ``task_s`` seconds at the bulk priority; their ids in
    the order sent (the order a worker takes them: one Redis list, first in first out)."""
    return [app.send_task(JOB, (label, seq, task_s), queue=queue, priority=BULK).id
            for seq in range(count)]


def job_starts(session: LabSession) -> dict[str, float]:
    """When each lab11.job began, stamped in its pool process (``taskside.STAMP_STARTS``)."""
    with session.evidence_store.client() as r:
        rows = r.lrange(session.evidence_store.key(f"{STARTS}lab11.job"), 0, -1)
    return {row["id"]: row["t"] for row in map(json.loads, rows)}


def _waiting(broker: Broker, queue: str) -> int:
    with broker.client() as r:
        return int(r.llen(broker.key(f"{queue}{PRIORITY_SEP}{BULK}")))


def urgent_trial(session: LabSession, queue: str, bulk_ids: list[str], urgent: int, task_s: float,
                 trial: int, timeout: float) -> dict[str, Any]:
    """Send ``urgent`` tasks at the urgent priority while a backlog task has just begun; then
    read from the tasks' own start stamps which backlog tasks ran before them, and whether each
    had left Redis (prefetched by the worker) or was still in it when they were sent."""
    position = {task_id: seq for seq, task_id in enumerate(bulk_ids)}

    def just_begun() -> float | None:
        starts = {i: t for i, t in job_starts(session).items() if i in position}
        if len(starts) == len(position):
            raise TimeoutError(f"the backlog of {queue} ran out before a trial")
        if len(starts) < 2:  # the worker is past its first task: its prefetch has filled
            return None
        latest = max(starts.values())
        return latest if time.time() - latest < 0.3 * task_s else None

    running_since = wait_for(just_begun, timeout, f"a backlog task of {queue} to begin")
    in_redis_before = _waiting(session.broker, queue)
    held_before = unacked_for(session.broker, queue)
    label = f"urgent-{queue}-{trial}"
    sent_at = time.time()
    urgent_ids = [session.app.send_task(JOB, (label, seq), queue=queue, priority=URGENT).id
                  for seq in range(urgent)]
    landed_at = time.time()
    in_redis_after = _waiting(session.broker, queue)
    still_in_redis = {i for i in bulk_ids if position[i] >= len(bulk_ids) - in_redis_after}

    def done() -> dict[str, float] | None:
        starts = job_starts(session)
        urgent_ran = all(i in starts for i in urgent_ids)
        next_from_redis = any(i in starts for i in still_in_redis) or not still_in_redis
        return starts if urgent_ran and next_from_redis else None

    starts = wait_for(done, timeout + (held_before + urgent + 2) * task_s,
                      f"the urgent tasks of {queue} and the backlog task after them")
    urgent_starts = sorted(starts[i] for i in urgent_ids)
    bulk_runs = {i: starts[i] for i in bulk_ids if i in starts}
    running = max((i for i, t in bulk_runs.items() if t <= sent_at), key=bulk_runs.get, default=None)
    ended = {r["id"]: r["ended"] for r in session.records(RUNS) if r["id"] == running}
    ran_before = sorted((i for i, t in bulk_runs.items() if sent_at < t < urgent_starts[0]),
                        key=bulk_runs.get)
    return {
        "queue": queue, "trial": trial, "urgent": urgent, "task_s": task_s,
        "running_since": running_since, "sent_at": sent_at, "landed_at": landed_at,
        "held_before": held_before, "in_redis_before": in_redis_before, "in_redis_after": in_redis_after,
        # the backlog task running when the urgent ones were sent, still running once all landed
        "covered": running is not None and ended.get(running, 0) > landed_at,
        "held": sum(1 for i in ran_before if i not in still_in_redis),
        "overtook_from_redis": sum(1 for i, t in bulk_runs.items()
                                   if i in still_in_redis and t < urgent_starts[-1]),
        "urgent_wait_s": urgent_starts[0] - sent_at,
        "urgent_starts": [t - sent_at for t in urgent_starts],
        "bulk_starts": sorted(t - sent_at for t in bulk_runs.values() if t > sent_at - 2 * task_s),
    }
