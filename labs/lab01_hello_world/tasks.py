"""Lab 01's one task. ``shared_task`` binds it to whichever app runs it: the worker's
``app.celery_app``, or the lab kit's client app in a driver."""

from celery import shared_task


@shared_task(name="lab01.add")
def add(x: int, y: int) -> int:
    return x + y
