"""Lab 05 end to end, with parameters other than the defaults, read from its notebook's run
(tests/notebook_runs.py)."""

from __future__ import annotations

import pytest

from labs.lab05_beat import plots
from tests.conftest import assert_held
from tests.figures import assert_figures_read_at_a_glance
from tests.notebook_runs import declare_notebook

FINDINGS = {
    "backlog_drains_in_a_burst",
    "beat_keeps_the_interval",
    "beat_only_publishes",
    "beat_that_imports_the_task_refuses_bad_args",
    "beat_without_the_task_sends_it_and_the_worker_fails",
    "crontab_follows_the_timezone_setting",
    "missed_ticks_are_not_caught_up",
    "queue_grows_while_no_worker_runs",
    "two_beats_publish_every_tick_twice",
}


RUN = declare_notebook("05_beat")  # its notebook's run: parameters in tests/notebook_runs.py


@pytest.fixture(scope="module")
def lab05(lab_runs):
    return lab_runs[RUN]


def test_every_finding_holds(lab05):
    proc, result, _ = lab05
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert_held(result, FINDINGS)


def test_beat_behaviour_as_measured(lab05):
    _, result, _ = lab05
    f = {x["id"]: x["measured"] for x in result["findings"]}
    assert abs(f["beat_keeps_the_interval"]["mean_period_ms"] - 400) < 15
    assert f["missed_ticks_are_not_caught_up"]["sent_while_down"] == 0
    assert len(f["two_beats_publish_every_tick_twice"]["per_beat"]) == 2
    assert f["beat_that_imports_the_task_refuses_bad_args"]["messages_published"] == 0
    assert "TypeError" in f["beat_without_the_task_sends_it_and_the_worker_fails"]["worker_exception"]
    due = f["crontab_follows_the_timezone_setting"]["next_due_utc"]
    assert due["UTC (enable_utc=True)"].endswith("06:30:00+00:00")
    assert due["Asia/Tokyo (enable_utc=True)"].endswith("21:30:00+00:00")  # 06:30 JST, UTC+9


def test_figures_read_at_a_glance(lab05):
    _, _, run_dir = lab05
    assert_figures_read_at_a_glance(plots.FIGURES, run_dir)
