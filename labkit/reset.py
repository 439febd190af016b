"""``celery-lab reset NN``: clear one lab's traces from a workshop Redis between rounds.

Only the lab's own: its messages (tasks named ``labNN.*``) in any queue and among the
unacked deliveries, its counter keys (``labNN:*``), and the results of the task ids found
there (a result key does not say which task wrote it, so a result whose id the lab recorded
nowhere stays until ``result_expires``). Other labs' messages, the bindings and everyone
else's keys stay. Stop the lab's workers first: a running worker holds reserved and ETA
messages the reset cannot see.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from labkit.redis_state import unacked_summary

BINDING_PREFIX = b"_kombu.binding."
SEP = b"\x06\x16"
UNACKED, UNACKED_INDEX = "unacked", "unacked_index"
RESULT_KEY = "celery-task-meta-{}"


@dataclass
class Removed:
    queued: int = 0
    unacked: int = 0
    keys: int = 0
    results: int = 0

    def line(self, lab: str) -> str:
        return (f"reset lab {lab}: removed {self.queued} queued message(s), {self.unacked} unacked "
                f"delivery(ies), {self.keys} counter key(s), {self.results} result(s)")


def _task_of(payload: bytes | str) -> tuple[str, str]:
    """(task name, task id) of a kombu Redis message body; ('', '') if it is not a task."""
    try:
        headers = json.loads(payload).get("headers") or {}
    except (ValueError, AttributeError):
        return "", ""
    return str(headers.get("task") or ""), str(headers.get("id") or "")


def queues(client: redis.Redis) -> set[bytes]:
    """Every queue kombu has bound, with its priority sub-lists (``name\\x06\\x16N``)."""
    names: set[bytes] = set()
    for key in client.scan_iter(match=BINDING_PREFIX + b"*"):
        for member in client.smembers(key):
            names.add(member.split(SEP)[-1])
    lists = set()
    for name in names:
        lists.add(name)
        lists.update(client.scan_iter(match=name + SEP + b"*"))
    return lists


def _ids_in(client: redis.Redis, key: bytes) -> set[str]:
    """Task ids a lab's counter holds: the fields of a hash keyed by task id, or the ``id`` of
    each JSON record in a list (``labkit.taskside``)."""
    kind = client.type(key)
    if kind == b"hash":
        return {field.decode() for field in client.hkeys(key)}
    if kind != b"list":
        return set()
    ids = set()
    for raw in client.lrange(key, 0, -1):
        try:
            row = json.loads(raw)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("id"):
            ids.add(str(row["id"]))
    return ids


def reset(client: redis.Redis, number: str) -> Removed:
    mine = f"lab{number}."
    removed, ids = Removed(), set()
    for queue in sorted(queues(client)):
        for raw in client.lrange(queue, 0, -1):
            name, task_id = _task_of(raw)
            if name.startswith(mine):
                removed.queued += client.lrem(queue, 1, raw)
                ids.add(task_id)
    for tag, raw in client.hgetall(UNACKED).items():
        try:
            summary = unacked_summary(raw)
        except (ValueError, TypeError, AttributeError):
            continue
        name, task_id = str(summary["task"] or ""), str(summary["id"] or "")
        if name.startswith(mine):
            removed.unacked += client.hdel(UNACKED, tag)
            client.zrem(UNACKED_INDEX, tag)
            ids.add(task_id)
    for key in list(client.scan_iter(match=f"lab{number}:*")):
        ids.update(_ids_in(client, key))
        removed.keys += client.delete(key)
    for task_id in ids - {""}:
        removed.results += client.delete(RESULT_KEY.format(task_id))
    return removed
