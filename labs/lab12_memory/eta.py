"""Lab 12, part 2: thousands of tasks with a countdown far longer than the run, sent to a worker
with no ``worker_eta_task_limit`` and to one with a limit: what each worker holds (``inspect
scheduled``, Redis's ``unacked`` hash), what stays in Redis, the worker's RSS, and whether a
plain task on another of its queues still runs."""

from __future__ import annotations

import time
from typing import Any

import psutil

from labkit.polling import poll_until, wait_for
from labkit.redis_state import queue_length, unacked_for
from labkit.session import LabSession
from labkit.workers import Worker
from labs.lab12_memory.tasks import NOOP, SMALL

PLAIN_WAIT_S = 2.0  # how long a plain task may take to run on a worker with room for it


def main_rss(worker: Worker) -> int:
    """The worker's main process: where a held ETA task lives (the consumer's timer)."""
    return psutil.Process(worker.pid).memory_info().rss


def scheduled(s: LabSession, worker: Worker, held: int) -> int:
    """How many ETA tasks ``inspect scheduled`` lists (a reply of ``held`` entries takes time)."""
    inspect = s.app.control.inspect(destination=[worker.hostname], timeout=5.0 + held / 1000)
    replies = inspect.scheduled() or {}
    if worker.hostname not in replies:
        raise RuntimeError(f"{worker.hostname} did not answer inspect scheduled")
    return len(replies[worker.hostname])


def hold(s: LabSession, worker: Worker, queue: str, other: str, count: int, countdown: float,
         timeout: float) -> dict[str, Any]:
    """Send ``count`` ETA tasks; once the worker stops taking them (what it holds and what is
    left in Redis unchanged for a second), read both, then send one plain task to ``other``."""
    rss_before = main_rss(worker)
    for i in range(count):  # no result to wait for: the client subscribes to none
        s.app.send_task(NOOP, (i,), queue=queue, countdown=countdown, ignore_result=True)
    sent_at = time.time()
    last: list[tuple[int, int]] = []

    def settled() -> tuple[int, int] | None:
        state = (unacked_for(s.broker, queue), queue_length(s.broker, queue))
        last.append(state)
        steady = len(last) >= 6 and len(set(last[-6:])) == 1 and sum(state) == count
        return state if steady else None

    held, left = wait_for(settled, timeout + count / 200, f"{worker.hostname} to stop taking ETA tasks",
                          interval=0.2)
    taking_s = time.time() - sent_at
    rss_after = main_rss(worker)  # before inspect: its reply of every held task costs memory too
    listed = scheduled(s, worker, held)
    # "at once" against "when an ETA task comes due" (an hour): seconds, more for a worker
    # holding thousands of timers (20,000 held delayed a plain task past 2 s)
    wait_s = PLAIN_WAIT_S + held / 1000
    # judged on the worker's side: its result key in Redis, not a client's get()
    plain = s.app.send_task(SMALL, (1,), queue=other, ignore_result=False)
    with s.broker.client() as r:
        plain_ran = poll_until(lambda: r.exists(s.broker.key(f"celery-task-meta-{plain.id}")), wait_s,
                               interval=0.05)
    return {"sent": count, "held_unacked": held, "left_in_redis": left, "scheduled": listed,
            "rss_before": rss_before, "rss_after": rss_after, "taking_s": taking_s,
            "plain_task_ran": plain_ran, "plain_wait_s": wait_s, "plain_id": plain.id}
