"""Lab 09, part 2: what a canvas costs in broker messages, result keys and Redis commands, how
the Redis backend joins a chord (its keys, read while the header is incomplete) against the
``celery.chord_unlock`` task a backend without a native join needs, and chunks against a group
of many tiny tasks."""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from celery import chain, chord, group

from labkit.broker import Broker
from labkit.session import LabSession
from labkit.taskside import STARTS
from labs.lab09_canvas.tasks import add, collect, gated, tiny, work

SHAPES = ("chain", "group", "chord")
UNLOCK = "celery.chord_unlock"


def redis_commands(broker: Broker) -> int:
    """Every command the server has run so far (INFO commandstats)."""
    with broker.client() as r:
        return sum(int(v.get("calls", 0)) for v in r.info("commandstats").values())


def result_keys(broker: Broker) -> dict[str, int]:
    with broker.client() as r:
        return {kind: sum(1 for _ in r.scan_iter(match=broker.key(f"{kind}-*"), count=1000))
                for kind in ("celery-task-meta", "celery-taskset-meta")}


def idle_rate(session: LabSession, seconds: float = 0.5) -> float:
    """Commands per second with nothing running: workers polling, heartbeats."""
    before, began = redis_commands(session.broker), time.monotonic()
    time.sleep(seconds)
    return (redis_commands(session.broker) - before) / (time.monotonic() - began)


def canvas(shape: str, n: int, label: str) -> Any:
    if shape == "chain":
        return chain(add.s(0, 1, label=label), *(add.s(1, label=label) for _ in range(n - 1)))
    members = [work.s(i, 0, label=label) for i in range(n)]
    return group(members) if shape == "group" else chord(members, collect.s(label=label))


def sent_since(session: LabSession, mark: int) -> Counter:
    """task-sent events since ``mark`` (an index into the recorder's events), by task name."""
    return Counter(e.get("name") for e in session.events.snapshot()[mark:] if e.get("type") == "task-sent")


def one_cost(session: LabSession, shape: str, n: int, idle: float, timeout: float) -> dict[str, Any]:
    keys_before = result_keys(session.broker)
    mark = len(session.events.snapshot())
    commands_before, began = redis_commands(session.broker), time.monotonic()
    canvas(shape, n, f"cost-{shape}-{n}").apply_async().get(timeout=timeout)
    session.events.wait_until_settled(timeout, hold=0.2)
    elapsed = time.monotonic() - began
    commands = redis_commands(session.broker) - commands_before
    keys_after = result_keys(session.broker)
    sent = sent_since(session, mark)
    return {"shape": shape, "n": n, "messages": sum(sent.values()), "by_task": dict(sent),
            "task_meta_keys": keys_after["celery-task-meta"] - keys_before["celery-task-meta"],
            "taskset_keys": keys_after["celery-taskset-meta"] - keys_before["celery-taskset-meta"],
            "commands": commands, "window_s": elapsed,
            "commands_net": max(0.0, commands - idle * elapsed)}


def costs(session: LabSession, sizes: list[int], timeout: float) -> dict[str, Any]:
    idle = idle_rate(session)
    rows = [one_cost(session, shape, n, idle, timeout) for n in sizes for shape in SHAPES]
    return {"idle_commands_per_s": idle, "rows": rows}


def _join_keys(broker: Broker, group_id: str) -> dict[str, Any]:
    """Every key under ``celery-taskset-meta-<group id>``: its type, size and time to live."""
    out = {}
    with broker.client() as r:
        for key in r.scan_iter(match=broker.key(f"celery-taskset-meta-{group_id}*")):
            name = key.decode()[len(broker.prefix):]
            kind = r.type(key).decode()
            sizer = {"zset": r.zcard, "list": r.llen, "set": r.scard, "string": r.strlen}.get(kind)
            size = sizer(key) if sizer else None
            value = r.get(key).decode(errors="replace") if kind == "string" else None
            out[name.removeprefix(f"celery-taskset-meta-{group_id}") or "(none)"] = {
                "type": kind, "size": size, "ttl_s": r.ttl(key), "value": value}
    return out


def _open_gate_after(session: LabSession, gate: str, member_ids: list[str], timeout: float) -> None:
    session.events.wait_for_tasks(set(member_ids), timeout=timeout)
    with session.broker.client() as r:
        r.set(session.broker.key(gate), 1, ex=600)


def gated_header(n: int, gate: str, timeout: float, label: str) -> list[Any]:
    """n - 1 members that end at once, and a last one that waits for ``gate``."""
    return [*(work.s(i, 0, label=label) for i in range(n - 1)), gated.s(n - 1, gate, timeout, label=label)]


def redis_join(session: LabSession, n: int, timeout: float) -> dict[str, Any]:
    """A chord whose last header member waits for a gate: the join keys read while n - 1
    results are in, then after the body ran."""
    label, gate = "join-redis", f"lab09:gate:{uuid.uuid4().hex}"
    mark = len(session.events.snapshot())
    result = chord(gated_header(n, gate, timeout, label), collect.s(label=label)).apply_async()
    group_id = result.parent.id
    members = [r.id for r in result.parent.results]
    session.events.wait_for_tasks(set(members[:-1]), timeout=timeout)
    during = _join_keys(session.broker, group_id)
    _open_gate_after(session, gate, [], timeout)
    value = result.get(timeout=timeout)
    session.events.wait_until_settled(timeout, hold=0.2)
    return {"n": n, "group_id": group_id, "value": value, "during": during,
            "after": _join_keys(session.broker, group_id), "sent": dict(sent_since(session, mark)),
            **_header_and_body(session, members, result.id)}


def _header_and_body(session: LabSession, members: list[str], body: str) -> dict[str, Any]:
    """When the last header member and the body ended (their task-succeeded events)."""
    ended = {e["uuid"]: e["timestamp"] for e in session.events.snapshot()
             if e.get("type") == "task-succeeded" and e.get("uuid") in {*members, body}}
    started = {e["uuid"]: e["timestamp"] for e in session.events.snapshot()
               if e.get("type") == "task-started" and e.get("uuid") == body}
    last = max((ended[m] for m in members if m in ended), default=None)
    return {"header_done_at": last, "body_started_at": started.get(body),
            "body_delay_s": started[body] - last if last and body in started else None}


def _unlock_runs(session: LabSession, events: list[dict[str, Any]]) -> list[float]:
    """When each ``celery.chord_unlock`` run of this chord started, stamped by the pool process
    that ran it (taskside.STAMP_STARTS; a task-started event is stamped later, by the main
    process, by a lag that varies): a retry keeps the task's id, so every stamp of an id first
    received as chord_unlock is one more poll."""
    ids = {e["uuid"] for e in events if e.get("type") == "task-received" and e.get("name") == UNLOCK}
    return sorted(r["t"] for r in session.records(f"{STARTS}{UNLOCK}") if r["id"] in ids)


def _nth_unlock_run(polls: int) -> Callable[[dict[str, Any]], bool]:
    """A predicate for EventRecorder.wait_for, fed each event once: true at the ``polls``-th run."""
    ids: set[str] = set()
    runs = 0

    def seen(e: dict[str, Any]) -> bool:
        nonlocal runs
        if e.get("type") == "task-received" and e.get("name") == UNLOCK:
            ids.add(e["uuid"])
        elif e.get("type") == "task-started" and e.get("uuid") in ids:
            runs += 1
        return runs >= polls
    return seen


def unlock_join(session: LabSession, queue: str, n: int, polls: int, backend_url: str,
                timeout: float) -> dict[str, Any]:
    """The same chord on a worker whose backend has no native join (the filesystem backend):
    the client sends ``celery.chord_unlock``, which polls until the header is done. The header
    is held incomplete until ``polls`` runs were seen (or ``timeout``), not for a fixed time:
    a late first poll on a busy machine then costs time, never the verdict."""
    label, gate = "join-unlock", f"lab09:gate:{uuid.uuid4().hex}"
    mark = len(session.events.snapshot())
    with session.client_app({"result_backend": backend_url, "task_default_queue": queue}) as app:
        result = chord(gated_header(n, gate, timeout, label), collect.s(label=label), app=app).apply_async()
        members = [r.id for r in result.parent.results]
        session.events.wait_for_tasks(set(members[:-1]), timeout=timeout)
        held_from = time.time()
        session.events.wait_for(_nth_unlock_run(polls), timeout)
        opened_at = time.time()
        _open_gate_after(session, gate, [], timeout)
        value = result.get(timeout=timeout)
    session.events.wait_until_settled(timeout, hold=0.2)
    runs = _unlock_runs(session, session.events.snapshot()[mark:])
    return {"n": n, "polls_awaited": polls, "hold_s": opened_at - held_from, "value": value,
            "sent": dict(sent_since(session, mark)), "unlock_runs": len(runs),
            "unlock_runs_while_held": sum(1 for t in runs if t < opened_at), "unlock_at": runs,
            **_header_and_body(session, members, result.id)}


def chunks_against_group(session: LabSession, n: int, size: int, timeout: float) -> dict[str, Any]:
    """``n`` tiny additions as a group of ``n`` tasks and as chunks of ``size``: messages, and the
    time from the first publish to the last task's task-succeeded event, the better of two runs
    each. Not the client's ``get()``: a GroupResult's get() returns on a polling step (about
    0.5 s here), which would hide the work below it."""
    expected = sum(2 * i for i in range(n))
    bound = timeout + n * 0.01  # a wait grows with the batch: 10 ms a task, far below any rate seen
    rows = []
    for attempt in range(2):
        for way in ("group", "chunks"):
            mark = len(session.events.snapshot())
            began = time.time()
            if way == "group":
                values = group(tiny.s(i, i) for i in range(n)).apply_async().get(timeout=bound)
            else:
                values = [v for part in tiny.chunks(zip(range(n), range(n), strict=True), size)
                          .apply_async().get(timeout=bound) for v in part]
            client_wall = time.time() - began
            session.events.wait_until_settled(bound, hold=0.2)
            events = session.events.snapshot()[mark:]
            sent = Counter(e.get("name") for e in events if e.get("type") == "task-sent")
            ids = {e["uuid"] for e in events if e.get("type") == "task-sent"}
            done = [e["timestamp"] for e in events
                    if e.get("type") == "task-succeeded" and e.get("uuid") in ids]
            rows.append({"way": way, "attempt": attempt, "wall_s": max(done) - began if done else math.inf,
                         "client_wall_s": client_wall, "messages": sum(sent.values()), "by_task": dict(sent),
                         "correct": sum(values) == expected and len(values) == n})
    return {"n": n, "size": size, "rows": rows}
