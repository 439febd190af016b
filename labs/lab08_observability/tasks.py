"""Lab 08's tasks: work that succeeds, fails, retries, or keeps no result.

The states part's tasks hold the state under test until the polling client has seen it: the
client adds each state it polls to a set in Redis (``SEEN``), and the task waits for it (at most
``cap`` seconds). However slowly the client polls, STARTED and RETRY last long enough to be seen;
a Celery that never stored them would leave the client without them and the task finishing at
its cap.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from typing import Any

from celery import shared_task

from labkit.taskside import store

SEEN = "lab08:seen"  # SEEN:<task id> is the set of states the polling client has seen


class Boom(Exception):
    """The failure the lab provokes."""


def seen_by_client(task, state: str) -> bool:
    client, prefix = store(task)
    return bool(client.sismember(f"{prefix}{SEEN}:{task.request.id}", state))


@shared_task(bind=True, name="lab08.work")
def work(self, seconds: float, fail: bool = False) -> float:
    time.sleep(seconds)
    if fail:
        raise Boom(f"task {self.request.id} failed on purpose")
    return seconds


@shared_task(bind=True, name="lab08.until_seen")
def until_seen(self, cap: float, fail: bool = False) -> float:
    """Runs (STARTED) until the client has polled STARTED, or ``cap`` seconds; then succeeds or
    fails. Returns how long it ran."""
    began = time.monotonic()
    while not seen_by_client(self, "STARTED") and time.monotonic() - began < cap:
        time.sleep(0.01)
    if fail:
        raise Boom(f"task {self.request.id} failed on purpose")
    return time.monotonic() - began


@shared_task(bind=True, name="lab08.retry_until_seen", max_retries=None)
def retry_until_seen(self, countdown: float, cap: float) -> int:
    """Retries with ``countdown`` (RETRY for that long each time) until the client has polled
    RETRY, or ``cap`` seconds' worth of retries; then succeeds. Returns the retries it took."""
    if not seen_by_client(self, "RETRY") and self.request.retries * countdown < cap:
        raise self.retry(countdown=countdown)
    return self.request.retries


@shared_task(name="lab08.fire_and_forget", ignore_result=True)
def fire_and_forget() -> str:
    return "nobody will read this"


def get_json(url: str, user: str, password: str, timeout: float = 2.0) -> Any:
    """Exercise 08's HTTP: GET ``url`` with basic auth, decode the JSON."""
    request = urllib.request.Request(url)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())
