"""The Celery app: ``celery -A app.celery_app worker`` runs every lab's tasks.

Tasks are declared with ``@shared_task`` in ``labs/labNN_*/tasks.py``; they attach to this
app in workers and to the lab kit's client app in a driver (see ``create_app``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import Celery
from celery.schedules import crontab
from kombu import Exchange, Queue, binding
from kombu.common import Broadcast

import labs
from app.config import settings_from_env


def create_app(environ: Mapping[str, str] | None = None) -> Celery:
    """Build the lab app from ``environ`` (default: this process's environment).

    Workers use the module-level ``app`` below; a driver builds its client from the very
    variables it hands its workers, so the two cannot disagree, and one process can run
    several labs against several brokers one after another.
    """
    celery = Celery("celery_lab", include=[*labs.task_modules(), "labkit.tasks"])
    settings = settings_from_env(environ)
    if "beat_schedule" in settings:
        settings["beat_schedule"] = schedule_from_json(settings["beat_schedule"], celery)
    if settings.get("task_queues"):
        settings["task_queues"] = queues_from_json(settings["task_queues"])
    celery.conf.update(settings)
    return celery


def queues_from_json(specs: list[dict[str, Any]]) -> list[Queue]:
    """``task_queues`` from JSON, one dict per ``Queue`` (JSON has no kombu objects):

    ``{"name": "q", "exchange": "x", "exchange_type": "direct", "routing_key": "k"}``;
    several bindings: ``{"name": "q", "bindings": [{"exchange": "x", "routing_key": "a"}, ...]}``;
    a broadcast (fanout) queue: ``{"name": "q", "broadcast": true}``.
    Entries are kept in order, duplicates included: what Celery does with two entries of one
    name is what Lab 06 measures.
    """
    queues = []
    for spec in specs:
        if spec.get("broadcast"):
            queues.append(Broadcast(spec["name"]))
            continue
        kind = spec.get("exchange_type", "direct")
        if "bindings" in spec:
            queues.append(Queue(spec["name"], [
                binding(Exchange(b["exchange"], type=b.get("exchange_type", kind)),
                        routing_key=b["routing_key"]) for b in spec["bindings"]]))
        else:
            exchange = spec.get("exchange", spec["name"])
            queues.append(Queue(spec["name"], Exchange(exchange, type=kind),
                                routing_key=spec.get("routing_key", spec["name"])))
    return queues


def schedule_from_json(entries: dict[str, dict[str, Any]], celery: Celery) -> dict[str, dict]:
    """``beat_schedule`` from JSON: a number is seconds (as Celery takes it); a crontab is
    written ``{"crontab": {"minute": "*/5", "hour": "9-17"}}``, since JSON has no objects."""
    out = {}
    for name, entry in entries.items():
        entry = dict(entry)
        spec = entry.get("schedule")
        if isinstance(spec, dict) and "crontab" in spec:
            entry["schedule"] = crontab(**spec["crontab"], app=celery)
        out[name] = entry
    return out


app = create_app()
