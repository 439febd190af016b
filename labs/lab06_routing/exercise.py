"""Exercise 06: route log lines by level, every line to exactly one queue.

The lab's publisher sends ``lab06.process_log`` messages to the direct exchange ``logs`` with the
routing keys ``info``, ``debug`` and ``error``. Write ``task_queues()`` (the JSON form this
project's app reads: see ``queues_from_json`` in app/celery_app.py) so that ``info`` and
``debug`` lines go to the queue ``transient_logs``, ``error`` lines to the queue ``error_logs``,
and every line lands in exactly one queue: none dropped, none twice.

Check it: ``celery-lab check 06``. Read first: labs/lab06_routing/README.md (the log-level example).
"""

from __future__ import annotations

from typing import Any


def task_queues() -> list[dict[str, Any]]:
    # As a popular walkthrough writes it: one Queue entry per routing key.
    return [
        {"name": "celery"},
        {"name": "error_logs", "exchange": "logs", "routing_key": "error"},
        {"name": "transient_logs", "exchange": "logs", "routing_key": "info"},
        {"name": "transient_logs", "exchange": "logs", "routing_key": "debug"},
    ]
