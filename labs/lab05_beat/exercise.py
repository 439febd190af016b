"""Exercise 05: a schedule whose ticks do not pile up while no worker runs.

Beat publishes ``lab05.tick`` every ``interval_s`` seconds whether or not a worker consumes them.
Write ``beat_schedule(interval_s)`` (the JSON form this project's app reads: a number of seconds
as the schedule; ``options`` are passed to ``apply_async``) so that beat publishes at that
interval, and a worker coming back after an outage does not run the stale ticks published while
it was away: only ticks still fresh (published less than two intervals before they run).

Check it: ``celery-lab check 05``. Read first: labs/lab05_beat/README.md (the worker away).
"""

from __future__ import annotations

from typing import Any


def beat_schedule(interval_s: float) -> dict[str, Any]:
    return {"tick": {"task": "lab05.tick", "schedule": interval_s}}
