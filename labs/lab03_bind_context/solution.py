"""Exercise 03, a reference answer: ``update_state`` with a custom state and its meta for the
progress; for the password, a reference to it in the message, never the password itself
(argsrepr/kwargsrepr change what is shown, not what is sent or what result_extended stores)."""

from __future__ import annotations

import time
from typing import Any

from celery import Celery, shared_task

from labs.lab03_bind_context.tasks import check_password, vault_put, vault_take


@shared_task(bind=True, name="ex03.report")
def report(self, steps: int, step_s: float) -> dict:
    for done in range(1, steps + 1):
        time.sleep(step_s)
        if done < steps:
            self.update_state(state="PROGRESS", meta={"done": done, "total": steps})
    return {"done": steps, "total": steps}


@shared_task(bind=True, name="ex03.login")
def login(self, user: str, secret_ref: str) -> bool:
    return check_password(self, user, vault_take(self, secret_ref) or "")


def send_login(app: Celery, password: str, **options: Any) -> Any:
    return login.apply_async(("alice", vault_put(app, password)), **options)
