"""Lab 08's tasks: work that succeeds, fails, retries once, or keeps no result."""

from __future__ import annotations

import time

from celery import shared_task


class Boom(Exception):
    """The failure the lab provokes."""


@shared_task(bind=True, name="lab08.work")
def work(self, seconds: float, fail: bool = False) -> float:
    time.sleep(seconds)
    if fail:
        raise Boom(f"task {self.request.id} failed on purpose")
    return seconds


@shared_task(bind=True, name="lab08.retry_once", max_retries=1)
def retry_once(self, countdown: float) -> int:
    if self.request.retries == 0:
        raise self.retry(countdown=countdown)
    return self.request.retries


@shared_task(name="lab08.fire_and_forget", ignore_result=True)
def fire_and_forget() -> str:
    return "nobody will read this"
