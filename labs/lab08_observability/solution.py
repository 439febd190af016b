"""Exercise 08, a reference answer: the backlog is in the broker, and only the broker knows it.
Flower's task list holds what workers reported (events), never the messages still queued;
its ``/api/queues/length`` asks the broker."""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any


def get_json(url: str, user: str, password: str, timeout: float = 2.0) -> Any:
    request = urllib.request.Request(url)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def backlog_alert(flower_url: str, user: str, password: str, threshold: int) -> bool:
    lengths = get_json(f"{flower_url}/api/queues/length", user, password)
    waiting = sum(q.get("messages", 0) for q in lengths.get("active_queues", [])
                  if q.get("name") == "celery")
    return waiting > threshold
