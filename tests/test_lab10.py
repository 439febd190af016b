"""Lab 10 end to end, toward the extremes of its declared ranges, read from its notebook's run
(tests/notebook_runs.py). Also: it refuses an external Redis."""

from __future__ import annotations

import json

import pytest

from labs.lab10_broker_outage import plots
from tests.conftest import assert_held, run_lab
from tests.figures import assert_figures_read_at_a_glance
from tests.notebook_runs import declare_notebook

FINDINGS = {
    "a_restart_without_persistence_loses_the_queue_and_the_results",
    "aof_keeps_the_queue_and_the_results_even_through_a_sigkill",
    "prefetched_and_eta_tasks_are_stranded_until_the_visibility_timeout",
    "the_running_task_finishes_across_the_restart",
    "a_restart_runs_nothing_twice_with_early_ack",
    "the_worker_reconnects_by_itself_on_its_retry_schedule",
    "a_worker_with_room_in_its_prefetch_dies_when_the_broker_goes",
    "a_send_to_a_stopped_broker_raises_after_its_retry_policy",
    "a_send_that_keeps_its_result_fails_on_the_result_store_first",
    "a_hung_broker_goes_unnoticed_by_the_worker",
    "a_send_to_a_hung_broker_waits_for_it",
    "a_socket_timeout_makes_the_send_give_up",
    "a_send_that_timed_out_may_still_be_delivered",
    "acks_late_task_outliving_the_outage_runs_once",
    "acks_late_task_ending_during_the_outage_runs_once_and_stores_a_failure",
    "cancel_on_connection_loss_terminates_the_task_and_it_is_not_redelivered",
    "a_hung_broker_blocks_the_default_workers_event_loop",
    "health_checks_and_a_socket_timeout_notice_a_hung_broker_without_heartbeats",
    "get_with_the_result_store_down_ignores_its_timeout",
    "a_get_waiting_across_the_restart_returns_the_result",
    "the_client_gets_results_again_once_the_store_is_back",
}


RUN = declare_notebook("10_broker_outage")  # its notebook's run: parameters in tests/notebook_runs.py


@pytest.fixture(scope="module")
def lab10(lab_runs):
    return lab_runs[RUN]


def test_every_finding_holds(lab10):
    proc, result, _ = lab10
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert_held(result, FINDINGS)


def test_the_run_counted_what_it_claims(lab10):
    _, _, run_dir = lab10
    rounds = json.loads((run_dir / "restarts.json").read_text())["rounds"]
    assert [r["round"] for r in rounds] == ["always-SIGKILL", "none-SIGTERM", "everysec-SIGTERM"]
    for r in rounds:
        assert r["by_kind"]["prefetched"]["sent"] == 8  # prefetch 8: every one reserved, none queued
        assert sum(v == "unacked" for k, v in r["before"].items() if k in r["sent"]["prefetched"]) == 8
    table = (run_dir / "table.csv").read_text().splitlines()
    assert len(table) == 1 + 3 * 5  # a row per round and kind of task


def test_figures_read_at_a_glance(lab10):
    _, _, run_dir = lab10
    assert_figures_read_at_a_glance(plots.FIGURES, run_dir)


def test_an_external_redis_is_refused_up_front_with_one_line(tmp_path):
    # refused before any connection: the URL need not answer, and no run directory is made
    proc, result, _ = run_lab(tmp_path, "10_broker_outage", "--quick", "--broker", "redis://127.0.0.1:1/0")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "runs only on the kit's own embedded Redis" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert result is None and not (tmp_path / "10_broker_outage").exists()
