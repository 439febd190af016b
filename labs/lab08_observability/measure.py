"""Lab 08's measurements: states by polling and by events, result keys in Redis, inspect
snapshots under load, and Flower's API and metrics scraped while it all happens."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from celery.result import AsyncResult
from celery.utils import uuid

from labkit.redis_state import queue_length
from labkit.sampler import Sampler
from labkit.session import LabSession
from labkit.workers import Flower
from labs.lab08_observability.tasks import fire_and_forget, retry_once, work


def states(session: LabSession, poll_s: float, timeout: float) -> dict[str, Any]:
    """One task per final state; each polled through AsyncResult while events are recorded."""
    calls = {
        "success": lambda i: work.apply_async((0.6,), task_id=i),
        "failure": lambda i: work.apply_async((0.3, True), task_id=i),
        "retry": lambda i: retry_once.apply_async((0.6,), task_id=i),
        "revoked": lambda i: work.apply_async((0.1,), countdown=1.0, task_id=i),
    }
    tasks = {name: AsyncResult(uuid(), app=session.app) for name in calls}
    unknown = AsyncResult(uuid(), app=session.app)
    # one look before anything is sent: the ids are known to nobody yet
    polls = [{"t": time.time(), **{n: r.state for n, r in tasks.items()}, "unknown": unknown.state}]
    for name, send in calls.items():
        send(tasks[name].id)
    session.app.control.revoke(tasks["revoked"].id)
    deadline = time.monotonic() + timeout
    final = {"SUCCESS", "FAILURE", "REVOKED"}
    while time.monotonic() < deadline:
        now = time.time()
        row = {"t": now, **{name: r.state for name, r in tasks.items()}, "unknown": unknown.state}
        polls.append(row)
        if all(row[name] in final for name in tasks) and now - polls[0]["t"] > 1.5:
            break
        time.sleep(poll_s)
    events = [{"t": e["timestamp"], "type": e["type"], "task": name}
              for e in session.events.snapshot() for name, r in tasks.items()
              if e.get("uuid") == r.id]
    return {"ids": {name: r.id for name, r in tasks.items()}, "polls": polls,
            "events": sorted(events, key=lambda e: e["t"])}


def result_keys(session: LabSession, timeout: float) -> dict[str, Any]:
    """The celery-task-meta-* keys a success, a failure and an ignore_result task leave."""
    ok = work.apply_async((0.0,))
    bad = work.apply_async((0.0, True))
    quiet = fire_and_forget.apply_async()
    ok.get(timeout=timeout)
    bad.get(timeout=timeout, propagate=False)
    session.events.wait_for_tasks({quiet.id}, timeout=timeout)
    with session.broker.client() as r:
        def meta(task_id: str) -> dict[str, Any]:
            key = session.broker.key(f"celery-task-meta-{task_id}")
            raw = r.get(key)
            return {"key": key, "exists": raw is not None, "ttl_s": r.ttl(key),
                    "status": json.loads(raw)["status"] if raw else None}

        return {"success": meta(ok.id), "failure": meta(bad.id), "ignore_result": meta(quiet.id)}


def scrape(flower: Flower) -> dict[str, Any]:
    """One look at Flower: the queue length its API reports and its event counters."""
    _, lengths = flower.get("/api/queues/length", timeout=2)
    _, metrics = flower.get("/metrics", timeout=2)
    active = json.loads(lengths).get("active_queues", [])
    return {
        "queue_length": sum(q.get("messages", 0) for q in active if q.get("name") == "celery"),
        "succeeded": _metric_sum(metrics, "flower_events_total", "task-succeeded"),
        "failed": _metric_sum(metrics, "flower_events_total", "task-failed"),
        "received": _metric_sum(metrics, "flower_events_total", "task-received"),
    }


def _metric_sum(text: bytes, name: str, event_type: str) -> float:
    """Sum a Prometheus counter's samples with type="<event_type>"."""
    total = 0.0
    for line in text.decode().splitlines():
        if line.startswith(name + "{") and f'type="{event_type}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def burst(session: LabSession, flower: Flower, tasks: int, task_s: float, failures: int,
          scheduled: int, countdown: float, scrape_s: float, timeout: float) -> dict[str, Any]:
    """A burst that backs up the queue; inspect and Flower watch it drain."""
    inspect_rows = []
    # a failed scrape is a gap in the plot (Sampler records the error), not a failed run
    with Sampler(lambda: scrape(flower), interval=scrape_s) as scraper:
        time.sleep(2 * scrape_s)
        # the ETA tasks first: a worker holds them as "scheduled" only once it has fetched them
        sent = [work.apply_async((task_s,), countdown=countdown) for _ in range(scheduled)]
        sent += [work.apply_async((task_s, i < failures)) for i in range(tasks)]
        ids = {r.id for r in sent}
        workers = [w.hostname for w in session.workers]
        deadline = time.monotonic() + timeout + countdown + tasks * task_s
        while time.monotonic() < deadline:
            t = time.time()
            inspector = session.app.control.inspect(destination=workers, timeout=1.0)
            active = _count(inspector.active())
            reserved = _count(inspector.reserved())
            scheduled_now = _count(inspector.scheduled())
            waiting = queue_length(session.broker)
            done = sum(1 for i in ids if session.events.count(i, "task-succeeded")
                       or session.events.count(i, "task-failed"))
            inspect_rows.append({"t": t, "queue": waiting, "reserved": reserved,
                                 "scheduled": scheduled_now, "active": active, "done": done})
            if done == len(ids):
                break
            time.sleep(0.05)
        time.sleep(3 * scrape_s)
    inspector = session.app.control.inspect(timeout=1.0)
    once = {"stats": inspector.stats(), "registered": inspector.registered(),
            "active_queues": inspector.active_queues()}
    return {"sent": len(sent), "failures": failures, "scheduled": scheduled, "tasks": tasks,
            "inspect": inspect_rows,
            "scrapes": [{"t": row["t"], **row["value"]} for row in scraper.rows],
            "registered_lab08": sorted(t for ts in (once["registered"] or {}).values()
                                       for t in ts if t.startswith("lab08.")),
            "active_queues": sorted({q["name"] for qs in (once["active_queues"] or {}).values()
                                     for q in qs}),
            "pool": {h: s.get("pool", {}).get("max-concurrency")
                     for h, s in (once["stats"] or {}).items()}}


def _count(reply: dict[str, list] | None) -> int:
    return sum(len(v) for v in (reply or {}).values())


def flower_access(flower: Flower) -> dict[str, Any]:
    """What Flower answers with and without credentials."""
    out = {}
    for path in ("/api/workers", "/api/tasks", "/api/queues/length", "/metrics"):
        anonymous, body = flower.get(path, auth=False)
        authorised, _ = flower.get(path)
        out[path] = {"without_credentials": anonymous, "with_credentials": authorised,
                     "exposes_without": _summarise(body) if anonymous == 200 else None}
    _, workers = flower.get("/api/workers")
    _, tasks = flower.get("/api/tasks?limit=1000")
    out["workers_seen"] = sorted(json.loads(workers))
    out["tasks_seen"] = len(json.loads(tasks))
    return out


def _summarise(body: bytes) -> list[str]:
    names = sorted({m.group(1) for m in re.finditer(rb"^(flower_[a-z_]+)", body, re.M)})
    return [n.decode() for n in names]
