"""Exercise 01: send ``add`` three ways, and get the results back within a deadline.

Fill in ``send``: submit ``add(1, 1)``, ``add(2, 3)`` and ``add(5, 8)`` to the worker (not in
this process), three different ways, the last one scheduled to run ``later_s`` seconds from now
without holding one of the worker's pool slots while it waits (the grader's worker has one).
Return the three results in that order, at once. Fill in ``collect``: their values, waiting at
most ``deadline_s`` seconds in all.

Check it: ``celery-lab check 01``. Read first: labs/lab01_hello_world/README.md, step 3.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Celery


def send(app: Celery, add: Any, later_s: float) -> list[Any]:
    # This runs every task right here, in the client, and does the waiting here too.
    first = add.apply((1, 1))
    second = add.apply((2, 3))
    time.sleep(later_s)
    third = add.apply((5, 8))
    return [first, second, third]


def collect(results: list[Any], deadline_s: float) -> list[int]:
    return [r.get() for r in results]
