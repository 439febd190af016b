"""When a run may read what its tasks did: every task sent has ended, whatever order the events
arrived in (a sender's task-sent travels on another connection than the worker's events)."""

from __future__ import annotations

import pytest

from labkit.events import EventRecorder


def recorder(*events: tuple[str, str]) -> EventRecorder:
    rec = EventRecorder(app=None)
    rec.events = [{"type": kind, "uuid": task_id} for task_id, kind in events]
    return rec


def test_a_task_sent_received_after_its_end_is_settled():
    rec = recorder(("a", "task-received"), ("a", "task-started"), ("a", "task-succeeded"), ("a", "task-sent"))
    assert rec.unsettled() == set()


def test_queued_held_running_and_retrying_tasks_are_not_settled():
    rec = recorder(("q", "task-sent"), ("eta", "task-received"), ("run", "task-started"),
                   ("retry", "task-retried"), ("done", "task-failed"), ("gone", "task-revoked"))
    assert rec.unsettled() == {"q", "eta", "run", "retry"}


def test_waiting_for_a_task_that_never_ends_is_a_timeout_naming_it():
    rec = recorder(("stuck", "task-received"))
    with pytest.raises(TimeoutError, match=r"1 tasks had not ended within 0\.2 s: stuck"):
        rec.wait_until_settled(timeout=0.2, hold=0.05)


def test_settled_means_nothing_new_for_the_hold():
    rec = recorder(("a", "task-sent"), ("a", "task-succeeded"))
    rec.wait_until_settled(timeout=1, hold=0.05)  # returns: everything sent has ended
