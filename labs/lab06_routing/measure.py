"""Lab 06's measurements: where each published message really went, read from the Redis lists
(and from the tasks' own records when workers consumed them)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from kombu import Exchange

from labkit.redis_state import queued_messages, snapshot
from labkit.session import LabSession
from labs.lab06_routing.tasks import RUNS, announce, process_log, routed


def routing_of(message: dict[str, Any]) -> dict[str, Any]:
    info = message["envelope"].get("properties", {}).get("delivery_info", {})
    return {"exchange": info.get("exchange"), "routing_key": info.get("routing_key"),
            "id": message["envelope"]["headers"]["id"]}


def contents(session: LabSession, queues: list[str]) -> dict[str, list[dict[str, Any]]]:
    return {q: [routing_of(m) for m in queued_messages(session.broker, q)] for q in queues}


def all_lists(session: LabSession) -> dict[str, int]:
    """Every Redis list the run has, with its length: where any message could be."""
    with session.broker.client() as r:
        return {k.decode()[len(session.broker.prefix):]: r.llen(k)
                for k in r.scan_iter(match=f"{session.broker.prefix}*") if r.type(k) == b"list"}


def forget(session: LabSession, exchange: str, queues: list[str]) -> None:
    """Delete a configuration's queues and bindings (this run's keys only)."""
    with session.broker.client() as r:
        keys = [session.broker.key(k) for k in (f"_kombu.binding.{exchange}",
                                                f"_kombu.binding_permanent.{exchange}", *queues)]
        r.delete(*keys)


def declare_with_a_worker(session: LabSession, name: str, queues_json: list[dict[str, Any]],
                          consume: list[str]) -> dict[str, list[str]]:
    """A real worker declares the queues and bindings it consumes; stop it, keep them."""
    worker = session.start_worker(name, concurrency=1, queues=consume,
                                  settings={"task_queues": queues_json})
    worker.stop()
    return snapshot(session.broker)["bindings"]


def log_levels(session: LabSession, config: str, queues_json: list[dict[str, Any]],
               levels: list[str], per_level: int) -> dict[str, Any]:
    names = list(dict.fromkeys(q["name"] for q in queues_json if q["name"] != "celery"))
    bindings = declare_with_a_worker(session, f"declare-{config}", queues_json, names)
    errors = []
    for level in levels:
        for i in range(per_level):
            try:
                process_log.apply_async((level, f"line {i}"), exchange="logs", routing_key=level)
            except Exception as exc:  # the lab reports any client error; there should be none
                errors.append(f"{type(exc).__name__}: {exc}")
    landed = contents(session, names)
    matrix = {level: {q: sum(1 for m in landed[q] if m["routing_key"] == level) for q in names}
              for level in levels}
    return {"config": config, "queues_json": queues_json, "queues": names,
            "bindings": {k: v for k, v in bindings.items() if k.startswith("_kombu.binding.logs")},
            "published_per_level": per_level, "matrix": matrix, "client_errors": errors,
            "dropped": {level: per_level - sum(matrix[level].values()) for level in levels}}


def amqp_topic_match(pattern: str, key: str) -> bool:
    """AMQP 0-9-1 topic matching: '*' is exactly one word, '#' is zero or more words."""
    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(match(p[1:], k[i:]) for i in range(len(k) + 1))
        return bool(k) and (p[0] == "*" or p[0] == k[0]) and match(p[1:], k[1:])

    return match(pattern.split("."), key.split("."))


def topic(session: LabSession, patterns: dict[str, str], keys: list[str]) -> dict[str, Any]:
    """Queues bound to a topic exchange with patterns; where each routing key lands."""
    queues_json = [{"name": q, "exchange": "topic_logs", "exchange_type": "topic",
                    "routing_key": pattern} for q, pattern in patterns.items()]
    declare_with_a_worker(session, "declare-topic", queues_json, list(patterns))
    exchange = Exchange("topic_logs", type="topic")
    for key in keys:
        process_log.apply_async((key, "x"), exchange=exchange, routing_key=key, declare=[exchange])
    landed = contents(session, list(patterns))
    rows = []
    for key in keys:
        for queue, pattern in patterns.items():
            got = any(m["routing_key"] == key for m in landed[queue])
            rows.append({"routing_key": key, "queue": queue, "pattern": pattern,
                         "redis": got, "amqp": amqp_topic_match(pattern, key)})
    return {"patterns": patterns, "keys": keys, "rows": rows}


def runs(session: LabSession) -> list[dict[str, Any]]:
    return session.records(RUNS)


def fanout(session: LabSession, broadcasts: int, shared: int, timeout: float) -> dict[str, Any]:
    """Two workers on a broadcast queue and a shared direct queue; a third joins late."""
    w1, w2 = session.start_workers({"w1": {"concurrency": 1, "queues": ["bcast", "shared"]},
                                    "w2": {"concurrency": 1, "queues": ["bcast", "shared"]}})
    # first as most code writes it; then with the fanout exchange declared by the publisher
    undeclared = [announce.apply_async((200 + i,), queue="bcast").id for i in range(broadcasts)]
    fan = Exchange("bcast", type="fanout")
    early = [announce.apply_async((i,), queue="bcast", declare=[fan]) for i in range(broadcasts)]
    shared_ids = {announce.apply_async((100 + i,), queue="shared").id for i in range(shared)}
    early_ids = {r.id for r in early}
    # waited for by id: the numbers overlap once broadcasts or shared pass 100
    _wait_runs(session, lambda rows: sum(1 for r in rows if r["id"] in early_ids) >= 2 * broadcasts
               and sum(1 for r in rows if r["id"] in shared_ids) >= shared, timeout)
    w3 = session.start_worker("w3", concurrency=1, queues=["bcast"])
    late = announce.apply_async((99,), queue="bcast", declare=[fan])
    _wait_runs(session, lambda rows: sum(1 for r in rows if r["id"] == late.id) >= 3, timeout)
    time.sleep(0.3)
    rows = runs(session)
    per_worker = {w.hostname: {
        "early_broadcasts": sum(1 for r in rows if r["id"] in early_ids and r["hostname"] == w.hostname),
        "late_broadcast": sum(1 for r in rows if r["id"] == late.id and r["hostname"] == w.hostname),
        "shared": sum(1 for r in rows if r["id"] in shared_ids and r["hostname"] == w.hostname),
    } for w in (w1, w2, w3)}
    session.stop_workers([w1, w2, w3])
    return {"broadcasts": broadcasts, "shared": shared, "per_worker": per_worker,
            "undeclared_runs": sum(1 for r in rows if r["id"] in undeclared),
            "shared_runs_per_id": sorted(Counter(r["id"] for r in rows
                                                 if r["id"] in shared_ids).values())}


def _wait_runs(session: LabSession, done, timeout: float) -> None:
    """Until ``done(runs)``; gives up only after ``timeout`` seconds without a new run, so a
    large batch on a slow machine is waited for as long as it makes progress."""
    deadline, seen = time.monotonic() + timeout, -1
    while time.monotonic() < deadline:
        rows = runs(session)
        if done(rows):
            return
        if len(rows) > seen:
            deadline, seen = time.monotonic() + timeout, len(rows)
        time.sleep(0.05)
    raise TimeoutError(f"the workers ran nothing more for {timeout:g} s")


def overrides(session: LabSession) -> list[dict[str, Any]]:
    """task_routes against per-call options, read from the raw messages (no worker runs)."""
    cases = [
        ("route only", lambda: routed.apply_async((1,))),
        ("queue='explicit_q'", lambda: routed.apply_async((2,), queue="explicit_q")),
        ("exchange='logs', routing_key='error'",
         lambda: routed.apply_async((3,), exchange="logs", routing_key="error")),
    ]
    out = []
    for label, send in cases:
        before = all_lists(session)
        result = send()
        after = all_lists(session)
        grew = [q for q, n in after.items() if n > before.get(q, 0)]
        message = next((m for q in grew for m in contents(session, [q])[q]
                        if m["id"] == result.id), {})
        out.append({"call": label, "landed_in": grew, "exchange": message.get("exchange"),
                    "routing_key": message.get("routing_key")})
    return out


def unroutable(session: LabSession, key: str, count: int) -> dict[str, Any]:
    before = sum(all_lists(session).values())
    errors = []
    for i in range(count):
        try:
            process_log.apply_async((key, f"line {i}"), exchange="logs", routing_key=key)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    after = sum(all_lists(session).values())
    return {"routing_key": key, "published": count, "arrived_anywhere": after - before,
            "client_errors": errors}
