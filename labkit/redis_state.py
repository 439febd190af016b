"""Snapshots of what kombu keeps in Redis: queues, unacked messages, exchange bindings."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from labkit.broker import Broker

PRIORITY_SEP = "\x06\x16"


def queue_length(broker: Broker, queue: str = "celery") -> int:
    """Messages waiting in a queue, counting kombu's priority sub-lists (``queue\\x06\\x16N``)."""
    with broker.client() as r:
        pipe = r.pipeline()
        pipe.llen(broker.key(queue))
        for step in range(1, 10):
            pipe.llen(broker.key(f"{queue}{PRIORITY_SEP}{step}"))
        return sum(pipe.execute())


def unacked_for(broker: Broker, queue: str) -> int:
    """Deliveries of ``queue`` that workers hold unacknowledged (kombu's ``unacked`` hash keeps
    ``[message, exchange, routing_key]`` per delivery tag): what they fetched and have not finished."""
    with broker.client() as r:
        return sum(1 for raw in r.hvals(broker.key("unacked")) if json.loads(raw)[2] == queue)


def task_places(broker: Broker, *queues: str) -> dict[str, str]:
    """Task id -> where its message is now: ``queue`` (waiting in one of ``queues``) or
    ``unacked`` (delivered from one of them to a worker, not acknowledged: kombu's ``unacked``
    hash). An id in neither was acknowledged, or lost, or never sent."""
    where: dict[str, str] = {}
    with broker.client() as r:
        for queue in queues:
            for raw in r.lrange(broker.key(queue), 0, -1):
                where[json.loads(raw)["headers"]["id"]] = "queue"
        for raw in r.hvals(broker.key("unacked")):
            message, _, routing_key = json.loads(raw)
            if routing_key in queues:
                where[message["headers"]["id"]] = "unacked"
    return where


def snapshot(broker: Broker, queues: tuple[str, ...] = ("celery",)) -> dict[str, Any]:
    """One moment of broker state, stamped with the host clock."""
    with broker.client() as r:
        unacked_index = r.zrange(broker.key("unacked_index"), 0, -1, withscores=True)
        bindings = {
            key.decode()[len(broker.prefix):]: sorted(m.decode() for m in r.smembers(key))
            for key in r.scan_iter(match=f"{broker.prefix}_kombu.binding.*")
            if r.type(key) == b"set"
        }
        unacked = r.hgetall(broker.key("unacked"))
    return {
        "t": time.time(),
        "queues": {q: queue_length(broker, q) for q in queues},
        "unacked": len(unacked),
        "unacked_messages": {tag.decode(): unacked_summary(raw) for tag, raw in unacked.items()},
        "unacked_index": {tag.decode(): score for tag, score in unacked_index},
        "bindings": bindings,
    }


def unacked_summary(raw: bytes) -> dict[str, Any]:
    """kombu keeps ``[message, exchange, routing_key]`` per delivery tag in the ``unacked`` hash."""
    message, exchange, routing_key = json.loads(raw)
    headers = message.get("headers") or {}
    return {"id": headers.get("id"), "task": headers.get("task"), "retries": headers.get("retries"),
            "eta": headers.get("eta"), "exchange": exchange, "routing_key": routing_key}


def lpush_calls(broker: Broker) -> int:
    """How many LPUSH commands the server has run: each one puts a message on a queue."""
    with broker.client() as r:
        stats = r.info("commandstats")
    return int(stats.get("cmdstat_lpush", {}).get("calls", 0))


def decode_message(raw: bytes | str) -> dict[str, Any]:
    """A kombu message as Redis stores it, with its base64 body decoded to (args, kwargs, embed)."""
    message = json.loads(raw)
    body = message["body"]
    if message.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    decoded = json.loads(body) if message.get("content-type") == "application/json" else None
    return {"envelope": message, "body_decoded": decoded}


def queued_messages(broker: Broker, queue: str = "celery") -> list[dict[str, Any]]:
    """Every message waiting in ``queue``, oldest first (kombu LPUSHes, the worker BRPOPs)."""
    with broker.client() as r:
        raw = r.lrange(broker.key(queue), 0, -1)
    return [decode_message(m) for m in reversed(raw)]
