"""The per-run Celery settings a driver hands to its client and to every process it starts.

One mechanism, documented in ``app/config.py``: the environment variables
``CELERY_BROKER_URL``, ``CELERY_RESULT_BACKEND`` and ``CELERY_LAB_SETTINGS`` (JSON).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from app.config import BACKEND_ENV, BROKER_ENV, SETTINGS_ENV
from labkit.broker import CONNECT_TIMEOUT, Broker

# Whole definitions: a process given its own replaces the run's rather than adding to it.
REPLACED_WHOLE = frozenset({"beat_schedule", "task_routes", "task_queues", "task_annotations"})

# What Celery reads from the environment ahead of the app's own configuration.
PINNED_ENV = (BROKER_ENV, BACKEND_ENV, "CELERY_BROKER_READ_URL", "CELERY_BROKER_WRITE_URL")


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


def visibility(timeout: float, sweep: float, mutex_expire: float | None = None) -> dict[str, Any]:
    """Redis transport options for a visibility-timeout experiment.

    ``sweep`` is how often a worker restores overdue unacked messages
    (``unacked_restore_interval``), with the throttle at 1 so a sweep is never skipped.
    ``mutex_expire`` bounds kombu's sweep mutex (300 s by default): a worker killed inside a
    sweep holds it that long and stalls every later sweep.
    """
    options: dict[str, Any] = {"visibility_timeout": timeout, "unacked_restore_interval": sweep,
                               "unacked_restore_throttle": 1}
    if mutex_expire is not None:
        options["unacked_mutex_expire"] = mutex_expire
    return {"broker_transport_options": options}


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


@dataclass(frozen=True)
class RunSettings:
    """A run's settings on its broker, and the environment any of its processes gets."""

    broker: Broker
    settings: dict[str, Any]

    @classmethod
    def for_run(cls, broker: Broker, lab_settings: dict[str, Any]) -> RunSettings:
        return cls(broker, merge(kit_settings(broker), lab_settings))

    def amended(self, extra: dict[str, Any] | None) -> RunSettings:
        return RunSettings(self.broker, merge(self.settings, extra)) if extra else self

    @property
    def env(self) -> dict[str, str]:
        return process_env(self.broker, self.settings)

    def child_env(self) -> dict[str, str]:
        """A child's whole environment: ours, without Celery's env-preferred variables, plus
        this run's three (so a child never inherits another broker from the caller)."""
        env = {k: v for k, v in os.environ.items() if k not in PINNED_ENV}
        env.update(self.env)
        env["PYTHONUNBUFFERED"] = "1"
        return env


@contextmanager
def pinned(env: dict[str, str]) -> Iterator[None]:
    """For the block, this process's env-preferred Celery variables say what ``env`` says:
    Celery reads CELERY_BROKER_URL / CELERY_RESULT_BACKEND from os.environ before its config."""
    saved = {name: os.environ.get(name) for name in PINNED_ENV}
    for name in PINNED_ENV:
        os.environ.pop(name, None)
    os.environ.update({k: v for k, v in env.items() if k in PINNED_ENV})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
