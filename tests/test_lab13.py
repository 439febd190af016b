"""Lab 13 end to end, toward the low ends of its declared ranges (two workers in the rollout,
one prefetched and one ETA task per cell), read from its notebook's run (tests/notebook_runs.py)."""

from __future__ import annotations

import csv
import json

import pytest

from labs.lab13_deploys import plots
from tests.conftest import assert_held
from tests.figures import assert_figures_read_at_a_glance
from tests.notebook_runs import declare_notebook

FINDINGS = {
    "sigkill_after_a_short_grace_loses_an_early_acked_task",
    "sigkill_strands_every_message_the_worker_held",
    "a_warm_shutdown_finishes_the_running_task",
    "a_cold_shutdown_cancels_the_running_task",
    "one_ctrl_c_is_a_warm_shutdown_that_exits_1",
    "remap_sigterm_makes_sigterm_a_cold_shutdown",
    "a_clean_exit_gives_back_prefetched_and_eta_tasks_at_once",
    "a_soft_shutdown_waits_its_whole_timeout",
    "the_restoring_line_counts_what_went_back",
    "a_naive_rollout_loses_the_tasks_it_kills",
    "a_warm_rollout_loses_nothing_and_runs_nothing_twice",
    "a_soft_rollout_loses_nothing_and_runs_nothing_twice",
    "grace_longest_task_plus_exit_overhead_is_enough",
    "a_soft_exit_fits_in_the_timeout_plus_its_overhead",
}

RUN = declare_notebook("13_deploys")  # its notebook's run: parameters in tests/notebook_runs.py


@pytest.fixture(scope="module")
def lab13(lab_runs):
    return lab_runs[RUN]


def test_every_finding_holds(lab13):
    proc, result, _ = lab13
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert_held(result, FINDINGS)


def test_the_run_measured_what_it_claims(lab13):
    _, result, run_dir = lab13
    assert result["params"]["workers"] == 2 and result["params"]["queued"] == 1
    with (run_dir / "cells.csv").open() as f:
        cells = list(csv.DictReader(f))
    assert len(cells) == 14 * 3  # 7 sequences x 2 acks, each: 1 running + 1 prefetched + 1 ETA
    exits = json.loads((run_dir / "exits.json").read_text())
    killed = {e["cell"] for e in exits if e["killed"]}
    assert killed == {"termkill-early", "termkill-late"}
    rolls = json.loads((run_dir / "rollouts.json").read_text())
    for name, roll in rolls.items():
        assert len(roll["stops"]) == 2 and len(roll["life"]) == 4, name  # two replaced, surge one
        assert all(s["struck"] for s in roll["stops"]), name
    plan = json.loads((run_dir / "checklist.json").read_text())
    assert plan["grace_s"] > plan["longest_task_s"] == result["params"]["long_s"]
    assert len(plan["rules"]) == 6


def test_figures_read_at_a_glance(lab13):
    _, _, run_dir = lab13
    assert_figures_read_at_a_glance(plots.FIGURES, run_dir)
