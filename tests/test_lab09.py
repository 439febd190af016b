"""Lab 09 end to end, toward the extremes of its declared ranges, read from its notebook's run
(tests/notebook_runs.py)."""

from __future__ import annotations

import json

import pytest

from labs.lab09_canvas import plots
from tests.conftest import assert_held
from tests.figures import assert_figures_read_at_a_glance
from tests.notebook_runs import declare_notebook

FINDINGS = {
    "s_passes_the_previous_result_si_does_not",
    "group_members_run_at_once_across_workers",
    "chord_body_runs_once_after_the_header_with_results_in_header_order",
    "each_task_is_one_message_and_a_chord_adds_its_body",
    "every_task_leaves_a_result_key",
    "the_redis_backend_joins_a_chord_in_a_sorted_set",
    "without_a_native_join_chord_unlock_polls",
    "chunks_send_one_message_per_chunk",
    "chunks_beat_a_group_of_tiny_tasks",
    "a_chain_stops_at_the_failing_link",
    "a_chain_errback_fires_once_inline",
    "an_old_style_errback_is_a_message_of_its_own",
    "a_group_runs_every_member_and_the_errback_fires_per_failure",
    "a_failed_header_member_means_the_body_never_runs",
    "a_chord_errback_fires_for_the_body_only_by_default",
    "allow_error_cb_on_chord_header_fires_per_failed_member_too",
    "a_failing_body_fires_the_chord_errback_once",
    "a_retrying_header_member_delays_the_body_not_breaks_it",
    "a_revoked_header_member_means_the_body_never_runs",
    "get_inside_a_task_is_refused",
    "get_inside_a_full_pool_waits_for_itself",
    "a_chain_needs_no_waiting",
    "group_get_raises_the_first_failure_to_arrive",
    "propagate_false_lists_results_in_header_order",
}


RUN = declare_notebook("09_canvas")  # its notebook's run: parameters in tests/notebook_runs.py


@pytest.fixture(scope="module")
def lab09(lab_runs):
    return lab_runs[RUN]


def test_every_finding_holds(lab09):
    proc, result, _ = lab09
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert_held(result, FINDINGS)
    assert "Retry limit exceeded" not in proc.stderr  # no result left to unsubscribe after Redis is gone


def test_the_run_counted_what_it_claims(lab09):
    _, result, run_dir = lab09
    cost = json.loads((run_dir / "cost.json").read_text())
    assert [(r["shape"], r["n"], r["messages"]) for r in cost["costs"]["rows"]] == [
        ("chain", 2, 2), ("group", 2, 2), ("chord", 2, 3), ("chain", 3, 3), ("group", 3, 3),
        ("chord", 3, 4)]
    assert {r["messages"] for r in cost["chunks"]["rows"] if r["way"] == "chunks"} == {1}  # one chunk
    matrix = json.loads((run_dir / "failures.json").read_text())["matrix"]
    retry = next(r for r in matrix if r["cell"] == "chord-retry")
    assert [m["executions"] for m in retry["members"]] == [1, 5]  # fail_times=4: five attempts
    assert result["params"]["unlock_interval"] == 0.1
    unlock = cost["unlock"]
    assert unlock["unlock_runs_while_held"] >= unlock["polls_awaited"] == 3  # the header waited for them


def test_figures_read_at_a_glance(lab09):
    _, _, run_dir = lab09
    assert_figures_read_at_a_glance(plots.FIGURES, run_dir)
