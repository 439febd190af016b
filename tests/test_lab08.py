"""Lab 08 end to end (real Flower included), with parameters other than the defaults, read from its
notebook's run (tests/notebook_runs.py)."""

from __future__ import annotations

import re

import pytest

from labs.lab08_observability import plots
from tests.conftest import assert_held
from tests.figures import assert_figures_read_at_a_glance
from tests.notebook_runs import declare_notebook

FINDINGS = {
    "a_client_sees_the_states_by_polling",
    "backlog_alert_fires_and_clears",
    "each_eta_task_held_raises_the_prefetch_count_by_one",
    "events_tell_the_same_story",
    "flower_api_refuses_without_credentials",
    "flower_counts_the_burst",
    "flower_metrics_are_served_without_credentials",
    "inspect_accounts_for_every_task",
    "inspect_respects_the_pool_and_prefetch",
    "pending_also_means_never_heard_of",
    "results_live_in_redis_for_result_expires",
}


RUN = declare_notebook("08_observability")  # its notebook's run: parameters in tests/notebook_runs.py


@pytest.fixture(scope="module")
def lab08(lab_runs):
    return lab_runs[RUN]


def test_every_finding_holds(lab08):
    proc, result, _ = lab08
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert_held(result, FINDINGS)


def test_observed_as_measured_and_no_credential_written(lab08):
    _, result, run_dir = lab08
    f = {x["id"]: x["measured"] for x in result["findings"]}
    assert f["results_live_in_redis_for_result_expires"]["failure_ttl_s"] <= 15
    assert f["flower_counts_the_burst"]["failed"] == 5
    assert f["each_eta_task_held_raises_the_prefetch_count_by_one"]["as_each_eta_task_arrived"] == [5, 6]
    assert f["flower_api_refuses_without_credentials"]["/api/workers"] == [401, 200]
    # the per-run Flower credential (user "lab", a random token) lives only in Flower's
    # environment: no file of the run holds it
    credential = re.compile(r"lab:[A-Za-z0-9_-]{16,}")
    for path in run_dir.rglob("*"):
        if path.is_file() and path.suffix != ".png":
            assert not credential.search(path.read_text(errors="replace")), path
    assert "basic_auth" not in result["celery_settings"]


def test_figures_read_at_a_glance(lab08):
    _, _, run_dir = lab08
    assert_figures_read_at_a_glance(plots.FIGURES, run_dir)
