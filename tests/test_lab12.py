"""Lab 12 end to end, toward the extremes of its declared ranges, read from its notebook's run
(tests/notebook_runs.py)."""

from __future__ import annotations

import json

import pytest

from labs.lab12_memory import plots
from tests.conftest import assert_held
from tests.figures import assert_figures_read_at_a_glance
from tests.notebook_runs import declare_notebook

FINDINGS = {
    "a_leaking_child_grows_by_what_it_keeps",
    "max_tasks_per_child_replaces_the_child_after_exactly_k_tasks",
    "max_memory_per_child_replaces_after_the_task_that_crossed",
    "a_freed_spike_still_replaces_the_process",
    "replacing_a_process_costs_more_than_a_task",
    "a_worker_takes_every_eta_task_it_is_sent",
    "eta_task_limit_caps_what_a_worker_holds",
    "a_worker_at_its_eta_limit_fetches_nothing_else",
    "held_eta_tasks_cost_the_worker_memory",
    "every_result_is_a_key_kept_for_result_expires",
    "a_short_result_expires_is_enforced_by_redis",
    "ignore_result_stores_no_key",
    "exists_tells_a_stored_result_from_none",
    "a_big_argument_is_stored_base64_encoded",
    "a_big_argument_costs_the_client_its_size",
}

RUN = declare_notebook("12_memory")  # its notebook's run: parameters in tests/notebook_runs.py


@pytest.fixture(scope="module")
def lab12(lab_runs):
    return lab_runs[RUN]


def test_every_finding_holds(lab12):
    proc, result, _ = lab12
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert_held(result, FINDINGS)


def test_the_run_measured_what_it_claims(lab12):
    _, _, run_dir = lab12
    growth = json.loads((run_dir / "growth.json").read_text())
    pids = [r["pid"] for r in growth["leaks"]["leak_tasks"]]
    assert len(pids) == 8 and len(set(pids)) == 3  # max_tasks=3: 3 + 3 + 2
    eta = json.loads((run_dir / "eta.json").read_text())["held"]
    assert eta["limited"]["held_unacked"] <= 8 and eta["none"]["held_unacked"] == 600
    results = json.loads((run_dir / "results.json").read_text())
    assert results["expired"]["keys"] == 0 and results["kept"]["ignored"]["keys"] == 0


def test_figures_read_at_a_glance(lab12):
    _, _, run_dir = lab12
    assert_figures_read_at_a_glance(plots.FIGURES, run_dir)
