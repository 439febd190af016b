"""Lab 02's measurements. Each sends real tasks and returns what the tasks, the events and
Redis recorded."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from celery.exceptions import MaxRetriesExceededError

from labkit import run_settings
from labkit.redis_state import snapshot
from labkit.sampler import Sampler
from labkit.session import LabSession
from labs.lab02_retry.tasks import (
    ATTEMPTS,
    EXECUTIONS,
    TransientError,
    backoff_jitter,
    backoff_plain,
    counted,
    flaky,
    quick,
    wait_inside,
)


def epoch(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


def attempts(session: LabSession, task_id: str | None = None) -> list[dict[str, Any]]:
    return [row for row in session.records(ATTEMPTS) if task_id is None or row["id"] == task_id]


def _events(session: LabSession, task_id: str, event_type: str) -> list[dict[str, Any]]:
    return [e for e in session.events.snapshot()
            if e.get("uuid") == task_id and e.get("type") == event_type]


def _wait(session: LabSession, ids: set[str], event_type: str, timeout: float) -> None:
    session.events.wait_for_tasks(ids, event_type, timeout=timeout)


def unacked_sampler(session: LabSession, interval: float = 0.05) -> Sampler:
    return Sampler(lambda: snapshot(session.broker), interval=interval)


def retry_anatomy(session: LabSession, fail_times: int, countdown: float, others: int,
                  timeout: float) -> dict[str, Any]:
    """One task that fails ``fail_times`` times, and what the concurrency-1 worker does meanwhile."""
    sent_at = time.time()
    result = flaky.delay(fail_times, countdown)
    # once the first attempt asked for a retry, send quick tasks into the countdown window
    if not session.events.wait_for(
            lambda e: e.get("uuid") == result.id and e.get("type") == "task-retried", timeout):
        raise TimeoutError("the first attempt never asked for a retry")
    window_quick = [quick.delay(i) for i in range(others)]
    value = result.get(timeout=timeout)
    for r in window_quick:
        r.get(timeout=timeout)
    _wait(session, {result.id} | {r.id for r in window_quick}, "task-succeeded", timeout)
    done_at = time.time()
    return {
        "id": result.id,
        "value": value,
        # every execution of the flaky task in this window, whatever id it ran under: that the
        # retries share the first call's id is then something the check can find false
        "attempts": [a for a in attempts(session) if a["task"] == flaky.name
                     and sent_at <= a["t"] <= done_at],
        "received": [{"t": e["timestamp"], "retries": e.get("retries"), "eta": e.get("eta")}
                     for e in _events(session, result.id, "task-received")],
        "retried": [e["timestamp"] for e in _events(session, result.id, "task-retried")],
        "quick_done": [_events(session, r.id, "task-succeeded")[0]["timestamp"] for r in window_quick],
    }


def wait_inside_anatomy(session: LabSession, seconds: float, others: int,
                        timeout: float) -> dict[str, Any]:
    """The contrast: a task that waits by sleeping in a loop keeps its pool slot."""
    result = wait_inside.delay(seconds)
    if not session.events.wait_for(
            lambda e: e.get("uuid") == result.id and e.get("type") == "task-started", timeout):
        raise TimeoutError("wait_inside never started")
    window_quick = [quick.delay(i) for i in range(others)]
    result.get(timeout=timeout)
    for r in window_quick:
        r.get(timeout=timeout)
    _wait(session, {result.id} | {r.id for r in window_quick}, "task-succeeded", timeout)
    started = _events(session, result.id, "task-started")[0]["timestamp"]
    finished = _events(session, result.id, "task-succeeded")[0]["timestamp"]
    return {"id": result.id, "start": started, "end": finished,
            "quick_done": [_events(session, r.id, "task-succeeded")[0]["timestamp"]
                           for r in window_quick]}


def exhausted(session: LabSession, max_retries: int, countdown: float,
              timeout: float) -> list[dict[str, Any]]:
    """Retries run out: the final state, and the exception the caller sees, with and without exc."""
    rows = []
    for with_exc in (True, False):
        result = flaky.apply_async((10 ** 6, countdown, with_exc, max_retries))
        try:
            result.get(timeout=timeout)
            seen = None
        except (TransientError, MaxRetriesExceededError) as exc:
            seen = type(exc).__name__
        except Exception as exc:  # whatever it is, the lab reports it
            seen = type(exc).__name__
        rows.append({"with_exc": with_exc, "id": result.id, "state": result.state,
                     "exception_seen": seen,
                     "attempts": len([a for a in attempts(session, result.id)
                                      if a["phase"] == "attempt"])})
    return rows


def backoff(session: LabSession, tasks: int, retries: int, timeout: float) -> list[dict[str, Any]]:
    """``tasks`` autoretrying tasks per policy; one row per retry with drawn and actual delays."""
    sent = [("plain", backoff_plain.delay(retries)) for _ in range(tasks)]
    sent += [("jitter", backoff_jitter.delay(retries)) for _ in range(tasks)]
    for _, r in sent:
        r.get(timeout=timeout)
    records = attempts(session)
    rows = []
    for policy, r in sent:
        mine = [a for a in records if a["id"] == r.id]
        called = {a["retries"]: a["t"] for a in mine if a["phase"] == "retry-called"}
        started = {a["retries"]: a for a in mine if a["phase"] == "attempt"}
        for k in range(retries):
            nxt = started[k + 1]
            eta = epoch(nxt["eta"])  # a drawn countdown of 0 sends the retry with no ETA at all
            rows.append({"policy": policy, "id": r.id, "retries": k,
                         "drawn_s": eta - called[k] if eta else 0.0,
                         "delay_s": nxt["t"] - called[k]})
    return rows


def visibility(session: LabSession, name: str, visibility_timeout: float, countdown: float,
               tasks: int, sweep: float, timeout: float) -> dict[str, Any]:
    """ETA tasks against a visibility timeout: executions per task id, counted by the task."""
    queue = f"lab02_{name}"
    settings = run_settings.visibility(visibility_timeout, sweep)
    worker = session.start_worker(name, concurrency=2, queues=[queue], settings=settings)
    sent_at = time.time()
    results = [counted.apply_async(countdown=countdown, queue=queue) for _ in range(tasks)]
    ids = {r.id for r in results}
    _wait(session, ids, "task-succeeded", countdown + timeout)
    if countdown >= visibility_timeout:
        # a copy restored just before its original ran still comes back: wait out one more
        # visibility timeout and two sweeps after the ETA before counting
        settle_until = sent_at + countdown + visibility_timeout + 2 * sweep + 0.3
    else:
        # each ran (and was acked, early) before its timeout: only a straggler could follow
        settle_until = time.time() + 2 * sweep + 0.1
    time.sleep(max(0.0, settle_until - time.time()))
    worker.stop()
    counts = session.counts(EXECUTIONS)
    runs = [a for a in attempts(session) if a["id"] in ids]
    return {
        "name": name, "visibility_timeout": visibility_timeout, "countdown": countdown,
        "ratio": countdown / visibility_timeout, "sweep": sweep,
        "executions": {i: counts.get(i, 0) for i in ids},
        "redelivered_runs": sum(1 for a in runs if a["redelivered"]),
        "runs": len(runs),
    }
