"""The kit's own task, attached to the lab app like every lab's: a marker that stamps the time
it ran, so a drain without a result backend still has an end (``labkit.drain``)."""

from __future__ import annotations

import time

from celery import shared_task

from labkit.taskside import store


@shared_task(bind=True, name="kit.stamp", ignore_result=True)
def stamp(self, key: str) -> None:
    client, prefix = store(self)
    client.set(f"{prefix}{key}", repr(time.time()))
