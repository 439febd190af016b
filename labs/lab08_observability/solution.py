"""Exercise 08, a reference answer: the backlog is in the broker, and only the broker knows it.
Flower's task list holds what workers reported (events), never the messages still queued;
its ``/api/queues/length`` asks the broker."""

from __future__ import annotations

from labs.lab08_observability.tasks import get_json


def backlog_alert(flower_url: str, user: str, password: str, threshold: int) -> bool:
    lengths = get_json(f"{flower_url}/api/queues/length", user, password)
    waiting = sum(q.get("messages", 0) for q in lengths.get("active_queues", [])
                  if q.get("name") == "celery")
    return waiting > threshold
