"""Exercise 09: a fan-out/fan-in that survives one failing member.

``pipeline(app, items, **options)`` fetches every item in parallel (``fetch``) and then adds the
results up in one step (``total``). Pass ``options`` on to every signature (``.set(**options)``):
the grader chooses the queue. One item's fetch raises (``fetch_item``, in
labs/lab09_canvas/tasks.py). Make the pipeline:

1. run its fan-in step exactly once, with the value of every item that did not fail
   (``record_total``);
2. report the failed item exactly once (``report_failure``), naming the item;
3. never wait: each item is a task of its own, and the fan-in is a task sent only once the
   fetches have run (a task that waits for others holds a worker slot; the client does not
   compute anything itself).

Keep the task names. Check it: ``celery-lab check 09``. Read first: labs/lab09_canvas/README.md
(the failure matrix: what a chord does when a header member raises).
"""

from __future__ import annotations

from typing import Any

from celery import Celery, chord, shared_task

from labs.lab09_canvas.tasks import fetch_item, record_total, report_failure  # noqa: F401


@shared_task(bind=True, name="ex09.fetch")
def fetch(self, item: int) -> int:
    return fetch_item(self, item)


@shared_task(bind=True, name="ex09.total")
def total(self, values: list[int]) -> int:
    record_total(self, values)
    return sum(values)


def pipeline(app: Celery, items: list[int], **options: Any) -> Any:
    # The textbook fan-out/fan-in: a chord.
    return chord([fetch.s(i).set(**options) for i in items], total.s().set(**options)).apply_async()
