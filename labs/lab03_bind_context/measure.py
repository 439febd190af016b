"""Lab 03's measurements: request contexts across call shapes and workers, progress polling,
and what a secret argument leaves behind."""

from __future__ import annotations

import json
import time
from typing import Any

from celery import chain, group

from labkit.redis_state import queued_messages
from labkit.session import LabSession
from labs.lab03_bind_context.tasks import CONTEXTS, PROGRESS, login, progress, retrying, whoami


def contexts(session: LabSession) -> list[dict[str, Any]]:
    return session.records(CONTEXTS)


def call_shapes(session: LabSession, queues: list[str], chain_length: int, group_size: int,
                fail_times: int, countdown: float, timeout: float) -> dict[str, Any]:
    """A plain call, a retried call, a chain hopping between queues, a group; their ids."""
    plain = whoami.apply_async(kwargs={"label": "plain"}, queue=queues[0])
    retried = retrying.apply_async((fail_times, countdown), {"label": "retried"}, queue=queues[1])
    links = [whoami.s(label=f"chain-{i}").set(queue=queues[i % len(queues)])
             for i in range(chain_length)]
    chained = chain(*links).apply_async()
    grouped = group(whoami.s(label=f"group-{i}").set(queue=queues[i % len(queues)])
                    for i in range(group_size)).apply_async()
    plain.get(timeout=timeout)
    retried.get(timeout=timeout + fail_times * countdown)
    chained.get(timeout=timeout)
    grouped.get(timeout=timeout)
    chain_ids = []
    node = chained
    while node is not None:  # a chain's AsyncResult is its last link; parents lead back
        chain_ids.append(node.id)
        node = node.parent
    return {"plain": plain.id, "retried": retried.id, "chain": list(reversed(chain_ids)),
            "group": grouped.id, "group_members": [r.id for r in grouped.results]}


def progress_polling(session: LabSession, queue: str, steps: int, step_s: float, poll_s: float,
                     timeout: float) -> dict[str, Any]:
    """Poll AsyncResult while a task reports PROGRESS; the task records each update too."""
    result = progress.apply_async((steps, step_s), queue=queue)
    polls = []
    deadline = time.monotonic() + timeout + steps * step_s
    while time.monotonic() < deadline:
        state, info = result.state, result.info
        polls.append({"t": time.time(), "state": state,
                      "done": info.get("done") if isinstance(info, dict) else None})
        if state in ("SUCCESS", "FAILURE"):
            break
        time.sleep(poll_s)
    updates = [row for row in session.records(PROGRESS) if row["id"] == result.id]
    return {"id": result.id, "polls": polls,
            "updates": [{"t": u["t"], "done": u["done"]} for u in updates]}


def without_backend(session: LabSession, queue: str, steps: int, step_s: float, poll_s: float,
                    timeout: float) -> dict[str, Any]:
    """A worker with no result backend: its updates and result go nowhere the client can see."""
    result = progress.apply_async((steps, step_s), queue=queue)
    polls = []
    ran = False
    deadline = time.monotonic() + timeout + steps * step_s
    while time.monotonic() < deadline and not ran:
        polls.append({"t": time.time(), "state": result.state})
        ran = session.events.count(result.id, "task-succeeded") > 0
        time.sleep(poll_s)
    polls.append({"t": time.time(), "state": result.state})
    # and a client that has no backend itself cannot even ask
    with session.client_app({"result_backend": None}) as bare:
        try:
            client_error = f"no error; state {bare.AsyncResult(result.id).state}"
        except Exception as exc:
            client_error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return {"id": result.id, "polls": polls, "task_succeeded_event": ran,
            "client_without_backend": client_error}


def secrets(session: LabSession, queue: str, parking: str, secret: str,
            timeout: float) -> dict[str, Any]:
    """The same login sent plainly and with argsrepr/kwargsrepr: where does the secret show?"""
    plain = login.apply_async(("alice",), {"password": secret}, queue=queue)
    hidden_kwargs = {"argsrepr": "('alice',)", "kwargsrepr": "{'password': '***'}"}
    hidden = login.apply_async(("alice",), {"password": secret}, queue=queue, **hidden_kwargs)
    plain.get(timeout=timeout)
    hidden.get(timeout=timeout)
    session.events.wait_for_tasks({plain.id, hidden.id}, timeout=timeout)
    # a copy parked on a queue no worker reads: the message as the broker holds it
    parked = login.apply_async(("alice",), {"password": secret}, queue=parking, **hidden_kwargs)
    messages = [m for m in queued_messages(session.broker, parking)
                if m["envelope"]["headers"]["id"] == parked.id]
    with session.broker.client() as r:
        r.delete(session.broker.key(parking))

    def events_with_secret(task_id: str) -> int:
        return sum(secret in json.dumps(e, default=str) for e in session.events.snapshot()
                   if e.get("uuid") == task_id)

    return {
        "plain_events_with_secret": events_with_secret(plain.id),
        "hidden_events_with_secret": events_with_secret(hidden.id),
        "hidden_events": session.events.count(hidden.id, "task-received")
        + session.events.count(hidden.id, "task-sent"),
        "hidden_received_args": next(e.get("kwargs") for e in session.events.snapshot()
                                     if e.get("uuid") == hidden.id and e["type"] == "task-received"),
        "message_body_has_secret": bool(messages) and secret in json.dumps(messages[0]["body_decoded"]),
        "message_headers_have_secret": bool(messages)
        and secret in json.dumps(messages[0]["envelope"]["headers"]),
        "ids": {"plain": plain.id, "hidden": hidden.id, "parked": parked.id},
    }
