"""The app's JSON forms: settings from the environment, task_queues and beat_schedule."""

from __future__ import annotations

import json

import pytest
from celery.schedules import crontab
from kombu.common import Broadcast

from app.celery_app import create_app, queues_from_json, schedule_from_json
from app.config import BACKEND_ENV, BROKER_ENV, SETTINGS_ENV, settings_from_env


def test_defaults_are_json_only_and_the_backend_follows_the_broker():
    settings = settings_from_env({BROKER_ENV: "redis://h:1/3"})
    assert settings["result_backend"] == "redis://h:1/3"
    assert settings["accept_content"] == ["json"] and settings["task_serializer"] == "json"


def test_results_keep_no_task_arguments_by_default():
    """result_extended would copy every argument, secrets included, into the result backend."""
    assert settings_from_env({})["result_extended"] is False


def test_lab_settings_are_applied_last():
    settings = settings_from_env({SETTINGS_ENV: json.dumps({"task_serializer": "json",
                                                            "worker_prefetch_multiplier": 1})})
    assert settings["worker_prefetch_multiplier"] == 1


def test_settings_that_are_not_a_json_object_are_refused():
    with pytest.raises(ValueError, match="JSON object"):
        settings_from_env({SETTINGS_ENV: "[1, 2]"})


def test_one_queue_several_bindings_and_a_broadcast():
    queues = queues_from_json([
        {"name": "logs", "bindings": [{"exchange": "logs", "routing_key": "error"},
                                      {"exchange": "logs", "routing_key": "info"}]},
        {"name": "plain"},
        {"name": "everyone", "broadcast": True},
    ])
    logs, plain, everyone = queues
    assert {b.routing_key for b in logs.bindings} == {"error", "info"}  # kombu keeps a set
    assert plain.exchange.name == "plain" and plain.routing_key == "plain"
    assert isinstance(everyone, Broadcast) and everyone.exchange.type == "fanout"


def test_two_entries_with_one_name_are_both_kept_for_celery_to_decide():
    queues = queues_from_json([{"name": "logs", "routing_key": "error"},
                               {"name": "logs", "routing_key": "info"}])
    assert [q.routing_key for q in queues] == ["error", "info"]


def test_a_topic_exchange_type_reaches_the_exchange():
    (queue,) = queues_from_json([{"name": "q", "exchange": "x", "exchange_type": "topic",
                                  "routing_key": "a.#"}])
    assert queue.exchange.type == "topic" and queue.routing_key == "a.#"


def test_schedules_take_seconds_or_a_crontab():
    app = create_app({})
    schedule = schedule_from_json({"fast": {"task": "t", "schedule": 0.5},
                                   "cron": {"task": "t", "schedule": {"crontab": {"minute": "*/5"}}}},
                                  app)
    assert schedule["fast"]["schedule"] == 0.5
    cron = schedule["cron"]["schedule"]
    assert isinstance(cron, crontab) and cron.minute == {0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55}


def test_the_app_finds_every_labs_tasks_and_reads_backend_from_its_variable():
    app = create_app({BROKER_ENV: "redis://h:1/0", BACKEND_ENV: "redis://h:1/1"})
    assert app.conf.result_backend == "redis://h:1/1"
    app.loader.import_default_modules()
    assert {"lab01.add", "lab04.work"} <= set(app.tasks)
