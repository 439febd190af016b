"""The per-run Celery settings a driver hands to its client and to every process it starts.

One mechanism, documented in ``app/config.py``: the environment variables
``CELERY_BROKER_URL``, ``CELERY_RESULT_BACKEND`` and ``CELERY_LAB_SETTINGS`` (JSON).
"""

from __future__ import annotations

import json
from typing import Any

from app.config import BACKEND_ENV, BROKER_ENV, SETTINGS_ENV
from labkit.broker import CONNECT_TIMEOUT, Broker

# Whole definitions: a process given its own replaces the run's rather than adding to it.
REPLACED_WHOLE = frozenset({"beat_schedule", "task_routes", "task_queues", "task_annotations"})


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep merge, so a lab's transport options add to the kit's rather than replace them
    (except for the whole definitions in ``REPLACED_WHOLE``)."""
    out = dict(base)
    for key, value in extra.items():
        if key in REPLACED_WHOLE:
            out[key] = value
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def kit_settings(broker: Broker) -> dict[str, Any]:
    """What every run needs: bounded connections, and the key prefix on an external Redis."""
    settings: dict[str, Any] = {
        "broker_connection_timeout": CONNECT_TIMEOUT,
        "broker_transport_options": {"socket_connect_timeout": CONNECT_TIMEOUT},
        "task_publish_retry_policy": {"max_retries": 3, "interval_start": 0,
                                      "interval_step": 0.2, "interval_max": 0.5},
        "redis_socket_connect_timeout": CONNECT_TIMEOUT,
    }
    if broker.prefix:
        settings["broker_transport_options"]["global_keyprefix"] = broker.prefix
        settings["result_backend_transport_options"] = {"global_keyprefix": broker.prefix}
    return settings


def process_env(broker: Broker, settings: dict[str, Any]) -> dict[str, str]:
    """The three variables ``app.config`` reads in a worker, beat or Flower process.

    Celery itself gives ``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND`` precedence over
    the app's configuration, so a setting of ``result_backend: None`` must also empty the
    variable, or the process would still use the broker as its backend.
    """
    backend = settings.get("result_backend", broker.url)
    return {
        BROKER_ENV: settings.get("broker_url") or broker.url,
        BACKEND_ENV: backend or "",
        SETTINGS_ENV: json.dumps(settings, sort_keys=True),
    }
