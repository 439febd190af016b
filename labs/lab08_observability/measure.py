"""Lab 08's measurements: states by polling and by events, result keys in Redis, inspect
snapshots under load, the worker's prefetch count, and Flower's API and metrics scraped while
it all happens."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from celery.result import AsyncResult
from celery.utils import uuid

from labkit.polling import poll_until
from labkit.redis_state import queue_length
from labkit.sampler import Sampler
from labkit.session import LabSession
from labkit.workers import Flower
from labs.lab08_observability.tasks import SEEN, fire_and_forget, retry_until_seen, until_seen, work

FINAL = {"SUCCESS", "FAILURE", "REVOKED"}
HOUR = 3600.0  # the probe's ETA tasks: far enough that none runs during the run


def states(session: LabSession, poll_s: float, timeout: float) -> dict[str, Any]:
    """One task per final state, each polled through AsyncResult while events are recorded.

    Every state a poll returns goes into the set SEEN:<id>; the tasks hold STARTED and RETRY
    until it is there (tasks.py), so the poll interval never decides what the client sees."""
    retry_s = max(0.6, 2 * poll_s)  # RETRY lasts this long each time, until a poll has seen it
    calls = {
        "success": lambda i: until_seen.apply_async((timeout,), task_id=i),
        "failure": lambda i: until_seen.apply_async((timeout, True), task_id=i),
        "retry": lambda i: retry_until_seen.apply_async((retry_s, timeout), task_id=i),
        "revoked": lambda i: work.apply_async((0.1,), countdown=1.0, task_id=i),
    }
    tasks = {name: AsyncResult(uuid(), app=session.app) for name in calls}
    unknown = AsyncResult(uuid(), app=session.app)
    # one look before anything is sent: the ids are known to nobody yet
    polls = [{"t": time.time(), **{n: r.state for n, r in tasks.items()}, "unknown": unknown.state}]
    # a revoke names an id: the worker keeps it and discards the task whenever it arrives. Sent
    # (and confirmed) before the ETA task itself, so no race with its countdown decides the outcome
    workers = [w.hostname for w in session.workers]
    confirmed = session.app.control.revoke(tasks["revoked"].id, destination=workers, reply=True,
                                           timeout=timeout)
    if not confirmed:
        raise TimeoutError(f"no worker confirmed the revoke within {timeout:g} s")
    for name, send in calls.items():
        send(tasks[name].id)
    # the loop's own length (1.5 s, a retry or two) plus the bound on waiting for a state
    deadline = time.monotonic() + 1.5 + 4 * retry_s + timeout
    with session.broker.client() as r:
        while time.monotonic() < deadline:
            now = time.time()
            row = {"t": now, **{name: res.state for name, res in tasks.items()},
                   "unknown": unknown.state}
            polls.append(row)
            pipe = r.pipeline()
            for name, res in tasks.items():
                pipe.sadd(session.broker.key(f"{SEEN}:{res.id}"), row[name])
            pipe.execute()
            if all(row[name] in FINAL for name in tasks) and now - polls[0]["t"] > 1.5:
                break
            time.sleep(poll_s)
    events = [{"t": e["timestamp"], "type": e["type"], "task": name}
              for e in session.events.snapshot() for name, r in tasks.items()
              if e.get("uuid") == r.id]
    return {"ids": {name: r.id for name, r in tasks.items()}, "polls": polls,
            "retry_countdown_s": retry_s, "events": sorted(events, key=lambda e: e["t"])}


def result_keys(session: LabSession, timeout: float) -> dict[str, Any]:
    """The celery-task-meta-* keys a success, a failure and an ignore_result task leave, and
    how long after sending they were read (a key's TTL has run down by at most that much)."""
    sent_at = time.time()
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

        keys = {"success": meta(ok.id), "failure": meta(bad.id), "ignore_result": meta(quiet.id)}
    return {**keys, "sent_at": sent_at, "read_at": time.time()}


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
          scheduled: int, countdown: float, threshold: int, scrape_s: float,
          timeout: float) -> dict[str, Any]:
    """A burst that backs up the queue; inspect, LLEN and Flower watch it drain.

    The worker stops consuming ``celery`` (cancel_consumer) while the burst is sent, and starts
    again once a Flower scrape has reported the backlog: however slowly Flower is scraped, the
    alert has a backlog to see. Each inspect sample reads LLEN, then scheduled, reserved and
    active (the order a task moves in); ``done`` is counted afterwards from the events' own
    timestamps up to the sample's end."""
    workers = [w.hostname for w in session.workers]
    control = session.app.control
    # one worker asked: each call returns as soon as it answers, the timeout only bounds a silence
    inspector = control.inspect(destination=workers, timeout=timeout)
    rows: list[dict[str, Any]] = []
    with Sampler(lambda: scrape(flower), interval=scrape_s) as scraper:
        # Flower's baseline: a scrape once its counters include every task finished so far
        finished = _finished(session.events.snapshot())
        baseline = _wait_scrape(scraper, lambda v: v["succeeded"] >= finished["task-succeeded"]
                                and v["failed"] >= finished["task-failed"], 0.0, timeout)
        prefetch_before = _prefetch(inspector)
        _confirmed(control.cancel_consumer("celery", destination=workers, reply=True,
                                           timeout=timeout), "cancel_consumer")
        t_sent = time.time()
        # the ETA tasks first, so the worker fetches them first when it consumes again
        eta = datetime.fromtimestamp(t_sent + countdown, UTC)
        sent = [work.apply_async((task_s,), eta=eta) for _ in range(scheduled)]
        sent += [work.apply_async((task_s, i < failures)) for i in range(tasks)]
        ids = [r.id for r in sent]
        eta_ids = set(ids[:scheduled])
        # a BRPOP the worker issued before the cancel takes the first message sent; kombu, with
        # no consumer left for it, puts it back ("Requeuing undeliverable message" in the
        # worker's log). Until it is back it is nowhere, so sampling starts once it is
        _wait_until(lambda: queue_length(session.broker) >= len(ids), timeout)
        resumed_at = None
        pause_until = time.monotonic() + timeout
        deadline = pause_until + timeout + countdown + tasks * task_s
        while time.monotonic() < deadline:
            if resumed_at is None and (time.monotonic() > pause_until or any(
                    row["t"] >= t_sent and row["value"]["queue_length"] > threshold
                    for row in list(scraper.rows))):
                _confirmed(control.add_consumer("celery", destination=workers, reply=True,
                                                timeout=timeout), "add_consumer")
                resumed_at = time.time()
            t = time.time()
            waiting = queue_length(session.broker)
            scheduled_now = _count(inspector.scheduled())
            reserved = _count(inspector.reserved())
            active = _count(inspector.active())
            rows.append({"t": t, "t_end": time.time(), "queue": waiting,
                         "scheduled": scheduled_now, "reserved": reserved, "active": active})
            if _finished(session.events.snapshot(), set(ids))["done"] == len(ids):
                break
            time.sleep(0.05)
        t_done = time.time()
        # Flower catches up from its own event stream: give it until its counters reach the
        # burst (a Flower that missed events never does, and the check says so)
        want_ok = baseline["succeeded"] + len(ids) - failures
        want_failed = baseline["failed"] + failures
        _wait_scrape(scraper, lambda v: v["succeeded"] >= want_ok and v["failed"] >= want_failed,
                     t_done, timeout)
    timeline = _timeline(session.events.snapshot(), ids, eta_ids, eta.timestamp())
    for row in rows:
        row["done"] = sum(1 for tl in timeline if tl["done"] is not None and tl["done"] <= row["t_end"])
    prefetch = {"before_burst": prefetch_before, "after_burst": _prefetch(inspector),
                **prefetch_probe(session, inspector, scheduled, timeout)}
    inspector = control.inspect(destination=workers, timeout=timeout)
    once = {"stats": inspector.stats(), "registered": inspector.registered(),
            "active_queues": inspector.active_queues()}
    return {"sent": len(sent), "failures": failures, "scheduled": scheduled, "tasks": tasks,
            "sent_at": t_sent, "resumed_at": resumed_at, "inspect": rows, "timeline": timeline,
            "flower_baseline": baseline,
            "scrapes": [{"t": row["t"], **row["value"]} for row in scraper.rows],
            "prefetch": prefetch,
            "registered_lab08": sorted(t for ts in (once["registered"] or {}).values()
                                       for t in ts if t.startswith("lab08.")),
            "active_queues": sorted({q["name"] for qs in (once["active_queues"] or {}).values()
                                     for q in qs}),
            "pool": {h: s.get("pool", {}).get("max-concurrency")
                     for h, s in (once["stats"] or {}).items()}}


def prefetch_probe(session: LabSession, inspector: Any, count: int, timeout: float) -> dict[str, Any]:
    """``count`` ETA tasks an hour away, sent one at a time: the worker's prefetch_count (inspect
    stats) once each has arrived, then what inspect lists them under. None of them runs: the
    worker holds them until the run stops it."""
    held, after_each = [], []
    for _ in range(count):
        result = work.apply_async((0.0,), countdown=HOUR)
        session.events.wait_for_tasks({result.id}, "task-received", timeout=timeout)
        held.append(result.id)
        after_each.append(_prefetch(inspector))
    listed = inspector.scheduled()
    return {"held": held, "after_each": after_each,
            "scheduled_ids": sorted(entry["request"]["id"] for entries in (listed or {}).values()
                                    for entry in entries),
            "reserved": _count(inspector.reserved())}


def _prefetch(inspector: Any) -> int | None:
    """The worker's prefetch count as it reports it (``inspect stats``: prefetch_count)."""
    stats = inspector.stats() or {}
    return next((s.get("prefetch_count") for s in stats.values()), None)


_wait_until = partial(poll_until, interval=0.01)


def _confirmed(replies: list | None, what: str) -> None:
    if not replies:
        raise TimeoutError(f"the worker did not confirm {what}")


def _finished(events: list[dict[str, Any]], ids: set[str] | None = None) -> dict[str, int]:
    """Counts of task-succeeded and task-failed events (of ``ids``, if given), and how many of
    the tasks are done."""
    out = {"task-succeeded": 0, "task-failed": 0}
    done = set()
    for e in events:
        if e.get("type") in out and (ids is None or e.get("uuid") in ids):
            out[e["type"]] += 1
            done.add(e.get("uuid"))
    return {**out, "done": len(done)}


def _wait_scrape(scraper: Sampler, ok: Callable[[dict[str, Any]], bool], after: float,
                 timeout: float) -> dict[str, Any]:
    """The first scrape started at or after ``after`` whose values satisfy ``ok``; at the
    timeout, the last scrape there is (the check then reads what Flower really said)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = list(scraper.rows)
        found = next((r for r in rows if r["t"] >= after and ok(r["value"])), None)
        if found is not None or (time.monotonic() > deadline and rows):
            row = found or rows[-1]
            return {"t": row["t"], **row["value"]}
        if time.monotonic() > deadline + timeout:
            raise TimeoutError("Flower answered no scrape")
        time.sleep(0.02)


def _timeline(events: list[dict[str, Any]], ids: list[str], eta_ids: set[str],
              eta: float) -> list[dict[str, Any]]:
    """Each burst task's moves, stamped by the worker: received (left the Redis list), started
    (became active), done (succeeded or failed); an ETA task also waits for its ETA."""
    out = {i: {"id": i, "eta": eta if i in eta_ids else None, "received": None, "started": None,
               "done": None} for i in ids}
    kinds = {"task-received": "received", "task-started": "started", "task-succeeded": "done",
             "task-failed": "done"}
    for e in sorted(events, key=lambda e: e.get("timestamp", 0)):
        row = out.get(e.get("uuid"))
        if row is not None and e.get("type") in kinds and row[kinds[e["type"]]] is None:
            row[kinds[e["type"]]] = e["timestamp"]
    return list(out.values())


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
