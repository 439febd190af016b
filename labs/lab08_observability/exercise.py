"""Exercise 08: a backlog alert that fires when the queue backs up and clears once it drains.

Write ``backlog_alert(flower_url, user, password, threshold)``: True while more than
``threshold`` messages wait in the ``celery`` queue. The grader calls it four times a second
against a real Flower (basic auth) while a burst backs the queue up with the worker paused, then
drains it. It must fire within 3 s of the queue passing the threshold, stay quiet before, and
clear within 3 s of the queue draining. ``get_json`` (in the lab's tasks.py) does the HTTP.

Check it: ``celery-lab check 08``. Read first: labs/lab08_observability/README.md (Flower).
"""

from __future__ import annotations

from labs.lab08_observability.tasks import get_json


def backlog_alert(flower_url: str, user: str, password: str, threshold: int) -> bool:
    # The tasks Flower knows that no worker has started yet.
    tasks = get_json(f"{flower_url}/api/tasks?state=RECEIVED", user, password)
    return len(tasks) > threshold
