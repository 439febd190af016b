"""Lab 11, part 1: where a message with a priority goes in Redis. One task per priority value
(and one sent without) into a queue nothing consumes; then every list kombu made for it is
read back, message by message."""

from __future__ import annotations

import json
from typing import Any

from celery import Celery

from labkit.broker import Broker
from labkit.redis_state import PRIORITY_SEP
from labs.lab11_priorities.tasks import JOB

PRIORITIES: list[int | None] = [*range(10), None]  # None: sent without a priority


def publish_each_priority(app: Celery, queue: str) -> list[dict[str, Any]]:
    """One ``lab11.job`` per priority value, ``seq`` = its position; what each was sent with."""
    sent = []
    for seq, priority in enumerate(PRIORITIES):
        options = {} if priority is None else {"priority": priority}
        result = app.send_task(JOB, ("stored", seq), queue=queue, **options)
        sent.append({"seq": seq, "id": result.id, "priority": priority})
    return sent


def read_lists(broker: Broker, queue: str) -> dict[str, list[dict[str, Any]]]:
    """Every Redis list kombu keeps for ``queue``, by its name shown readably (the separator
    ``\\x06\\x16`` as ``␆␖``), each with its messages oldest first: the task's seq and the
    priority the message carries."""
    out: dict[str, list[dict[str, Any]]] = {}
    with broker.client() as r:
        base = broker.key(queue).encode()
        keys = [k for k in r.scan_iter(match=base + b"*", count=500)
                if k == base or k.startswith(base + PRIORITY_SEP.encode())]
        for key in sorted(keys):
            if r.type(key) != b"list":
                continue
            messages = []
            for raw in reversed(r.lrange(key, 0, -1)):  # kombu LPUSHes, a worker BRPOPs
                message = json.loads(raw)
                argsrepr = (message.get("headers") or {}).get("argsrepr") or ""
                messages.append({"id": (message.get("headers") or {}).get("id"),
                                 "priority": (message.get("properties") or {}).get("priority"),
                                 "argsrepr": argsrepr})
            name = key.decode()[len(broker.prefix):].replace(PRIORITY_SEP, "␆␖")
            out[name] = messages
        if keys:
            r.delete(*keys)
    return out


def where_each_went(sent: list[dict[str, Any]], lists: dict[str, list[dict[str, Any]]],
                    queue: str) -> list[dict[str, Any]]:
    """Per task sent: the list it landed in (the step, or 0 for the plain queue key), and the
    priority its stored message carries."""
    found = {m["id"]: (name, m["priority"]) for name, messages in lists.items() for m in messages}
    rows = []
    for s in sent:
        name, stored = found.get(s["id"], (None, None))
        step = None if name is None else int(name.rsplit("␆␖", 1)[1]) if "␆␖" in name else 0
        rows.append({"seq": s["seq"], "sent_priority": s["priority"], "list": name,
                     "list_step": step, "stored_priority": stored, "queue": queue})
    return rows


def measure(app: Celery, broker: Broker, queue: str) -> dict[str, Any]:
    sent = publish_each_priority(app, queue)
    lists = read_lists(broker, queue)
    return {"queue": queue, "lists": {k: len(v) for k, v in lists.items()},
            "rows": where_each_went(sent, lists, queue)}
