"""Exercise 03: progress a client can watch, and a password nobody else can read.

1. ``report(steps, step_s)`` works in ``steps`` steps. Make a client polling its result (``state``
   and ``info``) see it climb: a state saying it is under way, with how far it got, after each
   step; then its result.
2. ``send_login(app, password, **options)`` sends a login for ``alice`` (pass ``options`` on to
   ``apply_async``: the grader chooses the queue). The worker must get the password right
   (``check_password``), and the password must appear in none of the places Lab 03 measures: the
   message in Redis, the events, the worker's log (at DEBUG), the result backend (the grader's
   worker keeps ``result_extended`` on). A secret store exists: ``vault_put`` and ``vault_take``
   in labs/lab03_bind_context/tasks.py. Keep the task names.

Check it: ``celery-lab check 03``. Read first: labs/lab03_bind_context/README.md (progress, then
the secret argument).
"""

from __future__ import annotations

import time
from typing import Any

from celery import Celery, shared_task

from labs.lab03_bind_context.tasks import check_password


@shared_task(bind=True, name="ex03.report")
def report(self, steps: int, step_s: float) -> dict:
    for done in range(1, steps + 1):
        time.sleep(step_s)
        print(f"{done}/{steps} done")  # a worker's stdout: no client ever sees it
    return {"done": steps, "total": steps}


@shared_task(bind=True, name="ex03.login")
def login(self, user: str, password: str) -> bool:
    return check_password(self, user, password)


def send_login(app: Celery, password: str, **options: Any) -> Any:
    # Hidden from the logs and from Flower, as the documentation suggests.
    return login.apply_async(("alice",), {"password": password}, argsrepr="('alice',)",
                             kwargsrepr="{'password': '***'}", **options)
