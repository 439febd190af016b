"""Exercise 05, a reference answer: each tick expires one interval after beat publishes it; a
worker that receives an expired message revokes it instead of running it."""

from __future__ import annotations

from typing import Any


def beat_schedule(interval_s: float) -> dict[str, Any]:
    return {"tick": {"task": "lab05.tick", "schedule": interval_s,
                     "options": {"expires": interval_s}}}
