"""Settings shared by every lab, and the one way a run passes its own settings to processes.

A worker, beat or Flower process reads its configuration from the environment when it
imports ``app.celery_app``:

- ``CELERY_BROKER_URL``      broker (default ``redis://localhost:6379/0``)
- ``CELERY_RESULT_BACKEND``  result backend (default: the broker URL)
- ``CELERY_LAB_SETTINGS``    a JSON object of Celery settings (lowercase names, e.g.
  ``{"task_acks_late": true, "broker_transport_options": {"visibility_timeout": 5}}``),
  applied last, over the defaults below. ``beat_schedule`` entries take a number of seconds
  or ``{"crontab": {"minute": "*/5"}}`` as their ``schedule`` (see ``app/celery_app.py``).
  One key is the kit's own, not Celery's: ``celery_lab_record_store``, a Redis URL where the
  tasks record what they did (``labkit/taskside.py``; Lab 10, which restarts its broker).

The lab kit sets these three variables for every process it starts, and applies the same
values to its own client app, so the driver and its workers can never disagree. By hand,
``export`` them in each terminal (``celery-lab env`` prints the lines).

Note that Celery itself reads ``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND`` from the
environment *in preference to* the app's configuration (``celery/app/utils.py``); this module
uses the same names so that both readings always agree.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

BROKER_ENV = "CELERY_BROKER_URL"
BACKEND_ENV = "CELERY_RESULT_BACKEND"
SETTINGS_ENV = "CELERY_LAB_SETTINGS"
ENV_VARS = (BROKER_ENV, BACKEND_ENV, SETTINGS_ENV)

DEFAULT_BROKER_URL = "redis://localhost:6379/0"

# JSON only: pickle would let anyone who can write to the broker run code in the worker.
BASE_SETTINGS: dict[str, Any] = {
    "task_serializer": "json",
    "result_serializer": "json",
    "accept_content": ["json"],
    "result_accept_content": ["json"],
    "event_serializer": "json",
    # Events are the lab's measuring instrument, and what Flower shows.
    "worker_send_task_events": True,
    "task_send_sent_event": True,
    # Off, as Celery ships it: on, every result key (celery-task-meta-<id>) would also keep the
    # task's real args and kwargs, whatever argsrepr/kwargsrepr say, for result_expires (a day).
    # Lab 03 measures both; no lab needs a task's name or arguments in its result meta.
    "result_extended": False,
    "enable_utc": True,
    "timezone": "UTC",
    "broker_connection_retry_on_startup": True,
    "worker_hijack_root_logger": True,
}


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The full settings for a process started with ``environ``."""
    env = os.environ if environ is None else environ
    broker = env.get(BROKER_ENV) or DEFAULT_BROKER_URL
    settings: dict[str, Any] = dict(BASE_SETTINGS)
    settings["broker_url"] = broker
    settings["result_backend"] = env.get(BACKEND_ENV) or broker
    raw = env.get(SETTINGS_ENV)
    if raw:
        extra = json.loads(raw)
        if not isinstance(extra, dict):
            raise ValueError(f"{SETTINGS_ENV} must be a JSON object, got {type(extra).__name__}")
        settings.update(extra)
    return settings
