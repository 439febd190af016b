"""Lab 04 end to end on a sub-matrix with parameters other than the defaults, read from its
notebook's run (tests/notebook_runs.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from labs.lab04_acks_late import plots
from tests.conftest import REPO, assert_held, cli_env
from tests.figures import assert_figures_read_at_a_glance
from tests.notebook_runs import declare_notebook

RUN = declare_notebook("04_acks_late")  # its notebook's run: parameters in tests/notebook_runs.py


@pytest.fixture(scope="module")
def lab04(lab_runs):
    return lab_runs[RUN]


def test_every_finding_holds(lab04):
    proc, result, _ = lab04
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    assert_held(result, {f"{m}_{f}" for m in ("early", "late", "late_reject")
                         for f in ("child_kill", "worker_kill", "cold")}
                | {"redelivery_waits_for_the_visibility_timeout", "redelivery_repeats_side_effects",
                   "an_idempotency_key_makes_it_once"})


def test_what_loses_work_and_what_repeats_it(lab04):
    _, result, _ = lab04
    f = {x["id"]: x["measured"] for x in result["findings"]}
    assert f["early_child_kill"]["hit_outcomes"] == {"lost": 1}
    assert f["late_child_kill"]["hit_states"] == {"FAILURE (WorkerLostError)": 1}
    assert set(f["late_reject_child_kill"]["hit_outcomes"]) == {"re-executed"}
    assert set(f["early_worker_kill"]["hit_outcomes"]) == {"lost"}
    assert set(f["late_worker_kill"]["hit_outcomes"]) == {"re-executed"}
    assert f["redelivery_repeats_side_effects"] == {"executions": 2, "charges": 2}
    assert f["an_idempotency_key_makes_it_once"] == {"executions": 2, "charges": 1}
    for row in result["measurements"]["redelivery"]:
        assert row["after_delivery_s"] >= 1.2 and row["redelivered_flag"] is True


def test_a_visibility_timeout_inside_the_lost_child_window_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "labkit", "run", "04", "--param",
                           "visibility_timeout=3"], capture_output=True, text=True, timeout=60,
                          cwd=REPO, env=cli_env(tmp_path))
    assert proc.returncode == 2
    assert "declare a killed child's task lost" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_figures_read_at_a_glance(lab04):
    _, _, run_dir = lab04
    assert_figures_read_at_a_glance(plots.FIGURES, run_dir)
