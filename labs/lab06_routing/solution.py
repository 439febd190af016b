"""Exercise 06, a reference answer: one queue with two bindings, not two entries of one name
(Celery keeps only the last entry of a name, and the other key is bound nowhere)."""

from __future__ import annotations

from typing import Any


def task_queues() -> list[dict[str, Any]]:
    return [
        {"name": "celery"},
        {"name": "error_logs", "exchange": "logs", "routing_key": "error"},
        {"name": "transient_logs", "bindings": [{"exchange": "logs", "routing_key": "info"},
                                                {"exchange": "logs", "routing_key": "debug"}]},
    ]
