"""What a task uses, inside a worker, to leave evidence: counters and records in the run's Redis.

Executions are counted by the task itself (an atomic INCR keyed by task id), never by parsing
logs. Keys carry the run's prefix on an external Redis, so the run's cleanup removes them.

The evidence goes to the broker, unless the process's settings name a record store
(``RECORD_STORE``): a lab that stops or restarts its broker keeps what the tasks recorded in a
second private Redis that nothing takes away (``LabSession.start_record_store``).
"""

from __future__ import annotations

import json
import os
import socket
import time
from functools import cache
from typing import Any

import redis
from celery import Celery, Task, signals

RECORD_STORE = "celery_lab_record_store"  # a setting: the Redis URL the tasks' evidence goes to
# A setting: names of tasks (Celery's own too, such as celery.chord_unlock) whose every run the
# process that runs it stamps as it starts, under STARTS + name. A task-started event is stamped
# later, by the worker's main process once the pool child has reported in: on a busy machine
# that lag differs from run to run by tens of milliseconds, more than a timing claim allows.
STAMP_STARTS = "celery_lab_stamp_starts"
STARTS = "starts:"


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)


def app_store(app: Celery) -> tuple[redis.Redis, str]:
    """The run's Redis (the broker, or the record store if the settings name one) and the run's
    key prefix, from an app's configuration (a client's, as a task's)."""
    record_store = app.conf.get(RECORD_STORE)
    if record_store:
        return _client(record_store), ""
    options = app.conf.broker_transport_options or {}
    return _client(app.conf.broker_url), options.get("global_keyprefix", "")


def store(task: Task) -> tuple[redis.Redis, str]:
    """The run's Redis (the broker) and the run's key prefix, from the task's own app."""
    return app_store(task.app)


def count_execution(task: Task, name: str) -> int:
    """Atomically count one more execution of this task id; returns the new count."""
    client, prefix = store(task)
    return int(client.hincrby(f"{prefix}{name}", task.request.id, 1))


def request_context(task: Task) -> dict[str, Any]:
    """``self.request`` as this execution sees it, plus the process that runs it."""
    request = task.request
    delivery = request.delivery_info or {}
    return {
        "id": request.id,
        "task": task.name,
        "retries": request.retries,
        "delivery_tag": (request.properties or {}).get("delivery_tag"),
        "redelivered": delivery.get("redelivered"),
        "exchange": delivery.get("exchange"),
        "routing_key": delivery.get("routing_key"),
        "priority": delivery.get("priority"),
        "eta": request.eta,
        "hostname": request.hostname,
        "args": list(request.args or []),
        "kwargs": dict(request.kwargs or {}),
        "argsrepr": getattr(request, "argsrepr", None),
        "kwargsrepr": getattr(request, "kwargsrepr", None),
        "root_id": request.root_id,
        "parent_id": request.parent_id,
        "group": request.group,
        "origin": getattr(request, "origin", None),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "t": time.time(),
    }


def record_attempt(task: Task, name: str, **extra: Any) -> dict[str, Any]:
    """Append what this execution saw (its request, its process, the time) to a Redis list."""
    row = {**request_context(task), **extra}
    client, prefix = store(task)
    client.rpush(f"{prefix}{name}", json.dumps(row, default=str))
    return row


def read_records(client: redis.Redis, key: str) -> list[dict[str, Any]]:
    """The driver's side: every record a task appended, in order."""
    return [json.loads(raw) for raw in client.lrange(key, 0, -1)]


def read_counts(client: redis.Redis, key: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(key).items()}


@signals.task_prerun.connect
def _stamp_start(sender: Task | None = None, task_id: str | None = None, **_: Any) -> None:
    if sender is None or sender.name not in (sender.app.conf.get(STAMP_STARTS) or ()):
        return
    client, prefix = store(sender)
    client.rpush(f"{prefix}{STARTS}{sender.name}", json.dumps({"id": task_id, "t": time.time()}))
