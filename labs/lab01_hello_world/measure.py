"""Lab 01's measurements. Each takes the session, sends real tasks, and returns plain rows."""

from __future__ import annotations

import sys
import time
from typing import Any

from celery.result import AsyncResult

from labkit import cpu_share
from labkit.drain import Drain
from labkit.redis_state import lpush_calls, queue_length, queued_messages
from labkit.sampler import Sampler
from labkit.session import LabSession
from labkit.workers import Worker
from labs.lab01_hello_world.tasks import add

EVENT_STAMPS = {"task-sent": "sent", "task-received": "received", "task-started": "started",
                "task-succeeded": "succeeded"}


def _stamps(session: LabSession, task_id: str) -> dict[str, Any]:
    events = session.events.by_task().get(task_id, {})
    row = {name: events[etype]["timestamp"] if etype in events else None
           for etype, name in EVENT_STAMPS.items()}
    received = events.get("task-received", {})
    row["hostname"] = received.get("hostname")
    row["eta"] = received.get("eta")
    return row


def _stored_at(result: AsyncResult) -> float | None:
    """When the pool process stored the result (the backend's ``date_done``)."""
    done = result.date_done
    if done is None:
        return None
    return done.timestamp() if hasattr(done, "timestamp") else None


def four_ways(session: LabSession, countdown: float, timeout: float) -> list[dict[str, Any]]:
    """delay, apply_async, send_task and apply: who runs the task, and what reaches Redis."""
    ways = [
        ("delay", (2, 2), lambda: add.delay(2, 2)),
        ("apply_async", (3, 4), lambda: add.apply_async((3, 4), countdown=countdown,
                                                        expires=countdown + timeout)),
        ("send_task", (5, 6), lambda: session.app.send_task("lab01.add", args=(5, 6))),
        ("apply", (7, 8), lambda: add.apply((7, 8))),
    ]
    rows, results = [], []
    for way, args, submit in ways:
        before = lpush_calls(session.broker)
        t_submit = time.time()
        result = submit()
        enqueued = lpush_calls(session.broker) - before
        rows.append({"way": way, "id": result.id, "args": list(args), "submit": t_submit,
                     "result_type": type(result).__name__, "messages_enqueued": enqueued})
        results.append(result)
    # A task sent after apply(): once it has finished, the worker has seen everything before it.
    marker = add.delay(0, 0)
    for row, result in zip(rows, results, strict=True):
        row["value"] = result.get(timeout=timeout)
        row["seen"] = time.time()
    marker.get(timeout=timeout)
    ids = {r["id"] for r in rows if r["way"] != "apply"} | {marker.id}
    session.events.wait_for_tasks(ids, timeout=timeout)
    for row in rows:
        row.update(_stamps(session, row["id"]))
        row["worker_events"] = sum(1 for e in session.events.snapshot()
                                   if e.get("uuid") == row["id"] and e["type"] != "task-sent")
    return rows


def sequential(session: LabSession, n: int, timeout: float) -> list[dict[str, Any]]:
    """One task at a time, each waited for: latency without any queueing."""
    rows, results = [], []
    for i in range(n):
        t_submit = time.time()
        result = add.delay(i, i)
        value = result.get(timeout=timeout)
        rows.append({"i": i, "id": result.id, "submit": t_submit, "seen": time.time(),
                     "value": value, "expected": 2 * i})
        results.append(result)
    _join_events(session, rows, timeout)
    for row, result in zip(rows, results, strict=True):
        row["stored"] = _stored_at(result)
    return rows


def batch(session: LabSession, worker: Worker, n: int,
          timeout: float) -> tuple[list[dict[str, Any]], Drain]:
    """``n`` tasks published into a queue nothing consumes yet, then drained by the lab's
    worker: the client's publishing rate and the worker's draining rate, apart."""
    before = cpu_share.tree_cpu_s(worker.pid)
    drained = session.drain([worker], add.name, [(i, 1) for i in range(n)], timeout=timeout,
                            wake=["celery"])
    # the CPU each side spent per task: the client's publishing (its own process, read around
    # the publish loop) and the worker's taking, running and acknowledging (its process tree,
    # read around the drain; it idles outside it)
    drained.worker_cpu_s = cpu_share.tree_cpu_s(worker.pid) - before
    rows = [{"i": i, "id": task_id, "submit": t, "value": meta["result"], "expected": i + 1}
            for i, (task_id, t, meta) in enumerate(zip(drained.ids, drained.submits,
                                                       drained.metas, strict=True))]
    _join_events(session, rows, timeout)
    return rows, drained


# The cost ladder: from the shape of Celery's own worker benchmark (t/benchmarks/bench_worker.py:
# solo pool, no_ack queue, prefetch multiplier 0, no result backend, no events, CRITICAL log)
# to the lab's worker, one thing at a time. (name, worker options, settings, no_ack, results)
NO_EVENTS = {"worker_send_task_events": False}
NO_RESULTS = {**NO_EVENTS, "result_backend": None}
QUIET = {"loglevel": "CRITICAL", "events": False}
LAB_RUNG = "prefork (the lab's worker)"
LADDER = [
    ("bench shape", {"pool": "solo", "prefetch": 0, **QUIET}, NO_RESULTS, True, False),
    ("+ acks", {"pool": "solo", "prefetch": 0, **QUIET}, NO_RESULTS, False, False),
    ("+ prefetch x4", {"pool": "solo", **QUIET}, NO_RESULTS, False, False),
    ("+ result backend", {"pool": "solo", **QUIET}, NO_EVENTS, False, True),
    ("+ INFO log", {"pool": "solo", "events": False}, NO_EVENTS, False, True),
    (LAB_RUNG, {"pool": "prefork", "events": False}, NO_EVENTS, False, True),
    # a side step, not the lab's: every result also keeps the task's name, args and kwargs
    ("prefork + result_extended", {"pool": "prefork", "events": False},
     {**NO_EVENTS, "result_extended": True}, False, True),
]


LAB_RUNG_INDEX = next(i for i, (name, *_) in enumerate(LADDER) if name == LAB_RUNG)
EVENTS_RUNG = "+ events (the lab's worker as it runs)"


def ladder_workers(session: LabSession, concurrency: int) -> list[Worker]:
    """One worker per rung, all started at once, idle on a queue of their own until theirs opens."""
    return session.start_workers({
        f"rung{i}": {**options, "concurrency": concurrency if options["pool"] == "prefork" else 1,
                     "queues": [f"lab01.rung{i}"], "settings": settings}
        for i, (_, options, settings, _, _) in enumerate(LADDER)})


def _best_of_two(session: LabSession, worker: Worker, n: int, timeout: float, wake: str,
                 **options: Any) -> dict[str, Any]:
    """Two drains of n/2 back to back, the faster kept: a burst of load elsewhere on the
    machine only ever slows a drain, so the better one is nearer what the worker can do."""
    drains = [session.drain([worker], add.name, [(k, 1) for k in range(max(1, n // 2))],
                            timeout=timeout, wake=[wake], **options) for _ in range(2)]
    best = max(drains, key=lambda d: d.rate)
    return {**best.row(), "drains": len(drains),
            "other_drain_tasks_per_s": round(min(d.rate for d in drains), 1)}


def cost_ladder(session: LabSession, workers: list[Worker], lab_worker: Worker, batch: Drain,
                timeout: float) -> list[dict[str, Any]]:
    """Each rung the best of two no-op drains of ``batch.n / 2``; the bench shape measured again
    last, for the run's own noise. The prefork rung goes first, then the lab's worker with its
    events on (the same configuration), so each compared pair is measured back to back. The
    rows come back in the ladder's order, the events rung right after the prefork one, with
    the publishing rate of the lab's batch (the run's one client)."""
    order = [LAB_RUNG_INDEX] + [i for i in range(len(LADDER)) if i != LAB_RUNG_INDEX] + [0]
    rows: dict[int, dict[str, Any]] = {}
    events_row: dict[str, Any] = {}
    for step, i in enumerate(order):
        name, _, _, no_ack, results = LADDER[i]
        again = step == len(order) - 1
        rows[len(LADDER) if again else i] = {
            "rung": f"{name} (again)" if again else name,
            **_best_of_two(session, workers[i], batch.n, timeout, f"lab01.rung{i}",
                           results=results, no_ack=no_ack)}
        if step == 0:
            events_row = {"rung": EVENTS_RUNG,
                          **_best_of_two(session, lab_worker, batch.n, timeout, "celery"),
                          "publish_tasks_per_s": batch.row()["publish_tasks_per_s"],
                          "client_cpu_ms_per_task": round(1000 * batch.publish_cpu_s / batch.n, 4),
                          "worker_cpu_ms_per_task": (round(1000 * batch.worker_cpu_s / batch.n, 4)
                                                     if batch.worker_cpu_s is not None else None)}
    session.stop_workers(workers, timeout=3)
    ladder = [rows[k] for k in sorted(rows)]
    ladder.insert(LAB_RUNG_INDEX + 1, events_row)
    return ladder


def _join_events(session: LabSession, rows: list[dict[str, Any]], timeout: float) -> None:
    session.events.wait_for_tasks({r["id"] for r in rows}, timeout=timeout)
    by_task = session.events.by_task()
    for row in rows:
        events = by_task.get(row["id"], {})
        for etype, name in EVENT_STAMPS.items():
            row[name] = events[etype]["timestamp"] if etype in events else None
        row["succeeded_events"] = session.events.count(row["id"], "task-succeeded")


def redis_pingpong(session: LabSession, rounds: int, timeout: float) -> list[dict[str, Any]]:
    """The ceiling: LPUSH then BRPOP between two processes on the same server, no Celery."""
    broker = session.broker
    ping, pong = broker.key("lab01:ping"), broker.key("lab01:pong")
    echo = session.spawn("redis-echo", [sys.executable, "-m", "labs.lab01_hello_world.echo",
                                        broker.url, ping, pong, str(rounds + 1), str(timeout)])
    rows = []
    try:
        with broker.client() as r:
            try:
                for i in range(-1, rounds):  # round -1 waits for the echo process to start
                    t0 = time.perf_counter()
                    r.lpush(ping, i)
                    if r.brpop([pong], timeout=timeout) is None:
                        raise TimeoutError(f"raw Redis ping-pong stalled at round {i}")
                    if i >= 0:
                        rows.append({"i": i, "rtt": time.perf_counter() - t0})
            finally:
                r.delete(ping, pong)
    finally:
        session.registry.reap(echo, grace=timeout)
    return rows


def queued_while_no_worker(session: LabSession, worker, k: int, idle: float,
                           timeout: float) -> dict[str, Any]:
    """Stop the worker, send ``k`` tasks, read them raw in Redis, then let a new worker drain."""
    broker = session.broker
    marks: dict[str, float] = {}
    with Sampler(lambda: queue_length(broker), interval=0.02) as sampler:
        worker.stop()
        marks["worker stopped"] = time.time()
        sent = [add.delay(i, 10 * i) for i in range(k)]
        marks["tasks sent"] = time.time()
        time.sleep(idle)
        waiting = queue_length(broker)
        messages = queued_messages(broker)
        marks["worker starting"] = time.time()
        session.start_worker("w2", concurrency=1)
        marks["worker ready"] = time.time()
        values = [r.get(timeout=timeout) for r in sent]
        marks["results seen"] = time.time()
        deadline = time.monotonic() + timeout
        while queue_length(broker) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)  # a few more samples of the empty queue
    return {
        "sent": [{"id": r.id, "args": [i, 10 * i]} for i, r in enumerate(sent)],
        "waiting_before_worker": waiting,
        "messages": messages,
        "values": values,
        "queue_after": queue_length(broker),
        "marks": marks,
        "samples": [{"t": row["t"], "queue_length": row["value"]} for row in sampler.rows],
    }
