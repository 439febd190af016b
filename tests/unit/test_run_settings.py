"""How a run's settings reach its processes and its client: merging, the three variables,
and Celery's env-preferred broker/backend variables pinned and restored."""

from __future__ import annotations

import json
import os

import pytest

from app.config import BACKEND_ENV, BROKER_ENV, SETTINGS_ENV, settings_from_env
from labkit.broker import Broker
from labkit.run_settings import RunSettings, kit_settings, merge, pinned, process_env, visibility

EMBEDDED = Broker(url="redis://127.0.0.1:7001/0", embedded=True)
EXTERNAL = Broker(url="redis://shared:6379/2", embedded=False, prefix="celerylab:abc:")


def test_merge_adds_a_labs_transport_options_to_the_kits():
    merged = merge({"broker_transport_options": {"socket_connect_timeout": 2}},
                   {"broker_transport_options": {"visibility_timeout": 5}})
    assert merged["broker_transport_options"] == {"socket_connect_timeout": 2, "visibility_timeout": 5}


def test_merge_replaces_whole_definitions_rather_than_mixing_two_schedules():
    base = {"beat_schedule": {"a": {"task": "t", "schedule": 1}}, "task_routes": {"x": {"queue": "q"}}}
    merged = merge(base, {"beat_schedule": {"b": {"task": "t", "schedule": 2}}})
    assert list(merged["beat_schedule"]) == ["b"]
    assert merged["task_routes"] == {"x": {"queue": "q"}}


def test_merge_does_not_change_its_inputs():
    base = {"broker_transport_options": {"a": 1}}
    merge(base, {"broker_transport_options": {"b": 2}})
    assert base == {"broker_transport_options": {"a": 1}}


def test_an_external_redis_gets_the_runs_prefix_on_broker_and_backend_keys():
    assert "global_keyprefix" not in kit_settings(EMBEDDED)["broker_transport_options"]
    settings = kit_settings(EXTERNAL)
    assert settings["broker_transport_options"]["global_keyprefix"] == "celerylab:abc:"
    assert settings["result_backend_transport_options"] == {"global_keyprefix": "celerylab:abc:"}


def test_visibility_options_name_kombus_settings():
    assert visibility(5, 0.2) == {"broker_transport_options": {
        "visibility_timeout": 5, "unacked_restore_interval": 0.2, "unacked_restore_throttle": 1}}
    assert visibility(5, 0.2, mutex_expire=2)["broker_transport_options"]["unacked_mutex_expire"] == 2


def test_the_three_variables_rebuild_the_same_settings_in_a_worker():
    run = RunSettings.for_run(EMBEDDED, {"task_acks_late": True})
    env = run.env
    assert env[BROKER_ENV] == env[BACKEND_ENV] == EMBEDDED.url
    worker_side = settings_from_env(env)
    assert worker_side["task_acks_late"] is True
    assert worker_side["broker_transport_options"] == run.settings["broker_transport_options"]
    assert json.loads(env[SETTINGS_ENV]) == run.settings


def test_no_result_backend_empties_the_variable_celery_would_prefer():
    env = process_env(EMBEDDED, {"result_backend": None})
    assert env[BACKEND_ENV] == ""


def test_amended_settings_add_to_the_run_and_leave_it_unchanged():
    run = RunSettings.for_run(EMBEDDED, {"worker_lost_wait": 1})
    child = run.amended({"task_acks_late": True})
    assert child.settings["task_acks_late"] is True and child.settings["worker_lost_wait"] == 1
    assert "task_acks_late" not in run.settings
    assert run.amended(None) is run


def test_a_child_never_inherits_the_callers_broker(monkeypatch):
    monkeypatch.setenv(BROKER_ENV, "redis://elsewhere:1/0")
    monkeypatch.setenv("CELERY_BROKER_WRITE_URL", "redis://elsewhere:1/0")
    env = RunSettings.for_run(EMBEDDED, {}).child_env()
    assert env[BROKER_ENV] == EMBEDDED.url
    assert "CELERY_BROKER_WRITE_URL" not in env
    assert env["PYTHONUNBUFFERED"] == "1"


def test_pinned_says_the_runs_broker_and_restores_the_callers(monkeypatch):
    monkeypatch.setenv(BROKER_ENV, "redis://callers:1/0")
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    with pinned({BROKER_ENV: EMBEDDED.url, BACKEND_ENV: EMBEDDED.url, SETTINGS_ENV: "{}"}):
        assert os.environ[BROKER_ENV] == EMBEDDED.url
        assert os.environ[BACKEND_ENV] == EMBEDDED.url
        assert SETTINGS_ENV not in os.environ or os.environ[SETTINGS_ENV] != "{}"  # not pinned
    assert os.environ[BROKER_ENV] == "redis://callers:1/0"
    assert BACKEND_ENV not in os.environ


def test_pinned_restores_even_when_the_block_raises(monkeypatch):
    monkeypatch.setenv(BROKER_ENV, "redis://callers:1/0")
    with pytest.raises(RuntimeError), pinned({BROKER_ENV: EMBEDDED.url}):
        raise RuntimeError
    assert os.environ[BROKER_ENV] == "redis://callers:1/0"
