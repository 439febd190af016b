"""Lab 02 end to end: retries, unacked_index, backoff and the visibility-timeout trap, with
parameters other than the defaults so the findings are shown to follow Celery, not them, read
from its notebook's run (tests/notebook_runs.py)."""

from __future__ import annotations

import pytest

from labs.lab02_retry import plots
from tests.conftest import assert_held
from tests.figures import assert_figures_read_at_a_glance
from tests.notebook_runs import declare_notebook

RUN = declare_notebook("02_retry")  # its notebook's run: parameters in tests/notebook_runs.py


@pytest.fixture(scope="module")
def lab02(lab_runs):
    return lab_runs[RUN]


def test_every_finding_holds(lab02):
    proc, result, _ = lab02
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert_held(result, {
        "retry_is_a_new_message_for_the_same_task", "retry_message_is_received_at_once_and_held",
        "retry_does_not_hold_a_pool_slot", "sleeping_inside_the_task_holds_the_slot",
        "exhausted_retries_fail_with_the_tasks_exception", "unacked_index_score_is_the_delivery_time",
        "backoff_follows_min_max_factor_2_to_the_retries",
        "full_jitter_draws_a_whole_number_of_seconds_in_0_to_cap",
        "visibility_ratio0_runs_once", "visibility_ratio1_runs_again", "visibility_fix_runs_once"})


def test_measured_behaviour(lab02):
    _, result, _ = lab02
    f = {x["id"]: x["measured"] for x in result["findings"]}
    assert f["retry_is_a_new_message_for_the_same_task"]["retries"] == [0, 1]
    assert f["exhausted_retries_fail_with_the_tasks_exception"]["True"]["attempts"] == 2
    for row in f["unacked_index_score_is_the_delivery_time"]:
        assert abs(row["score_minus_received_s"]) < 0.2 and row["eta_minus_score_s"] > 0.4
    # the cap of 1 s flattens the backoff: every plain retry drew exactly 1 s
    assert f["backoff_follows_min_max_factor_2_to_the_retries"]["drawn_by_k"] == {"0": [1], "1": [1]}
    assert all(c >= 2 for c in f["visibility_ratio1_runs_again"]["executions_per_task"])
    assert f["visibility_ratio1_runs_again"]["redelivered_runs"] > 0
    assert f["visibility_fix_runs_once"]["executions_per_task"] == [1, 1, 1]
    assert result["celery_settings"]["task_annotations"]["lab02.backoff_plain"]["retry_backoff_max"] == 1
    plots = {"retry_timeline.png", "unacked_index.png", "backoff.png", "visibility.png"}
    assert plots <= set(result["files"])


def test_figures_read_at_a_glance(lab02):
    _, _, run_dir = lab02
    assert_figures_read_at_a_glance(plots.FIGURES, run_dir)
