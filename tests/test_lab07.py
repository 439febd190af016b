"""Lab 07 end to end toward the extremes of its declared ranges (one and four processes, one and
64 greenlets, 300 no-op tasks, the shortest limits), read from its notebook's run. It is not
among tests/test_param_extremes.py's runs: this is that run."""

from __future__ import annotations

import pytest

from labs.lab07_pools import plots
from tests.conftest import assert_held
from tests.figures import assert_figures_read_at_a_glance
from tests.notebook_runs import declare_notebook

FINDINGS = {
    "a_prefork_slot_costs_a_process_of_memory",
    "concurrency_one_runs_one_task_at_a_time",
    "green_pools_win_on_io",
    "nobody_beats_the_ideal",
    "prefetch_holds_short_tasks_behind_a_long_one",
    "prefork_enforces_soft_and_hard_time_limits",
    "threads_do_not_scale_cpu_work",
    "which_pools_enforce_time_limits",
    "io_throughput_follows_the_one_worker_bound",
    "throughput_is_measured_with_the_instruments_off",
    "more_worker_processes_lift_the_ceiling",
}


RUN = declare_notebook("07_pools")  # its notebook's run: parameters in tests/notebook_runs.py


@pytest.fixture(scope="module")
def lab07(lab_runs):
    return lab_runs[RUN]


def test_every_finding_holds(lab07):
    proc, result, _ = lab07
    assert proc.returncode == 0, [f for f in (result or {}).get("findings", []) if not f["holds"]]
    assert_held(result, FINDINGS)


def test_the_sweep_as_measured(lab07):
    _, result, _ = lab07
    f = {x["id"]: x["measured"] for x in result["findings"]}
    assert set(f["concurrency_one_runs_one_task_at_a_time"]) == {"prefork", "threads", "gevent"}
    assert f["prefork_enforces_soft_and_hard_time_limits"]["exception"] == "TimeLimitExceeded"
    assert f["prefetch_holds_short_tasks_behind_a_long_one"]["stuck_with_multiplier_1_acks_late"] == 0
    choose = result["measurements"]["choose"]
    assert {row["workload"] for row in choose} == {"io", "cpu", "mixed"}


def test_the_bound_and_the_ceiling_as_measured(lab07):
    _, result, _ = lab07
    m = result["measurements"]
    assert set(m["ceiling_tasks_per_s"]) == {"prefork", "threads", "gevent"}
    rows = {(r["pool"], r["concurrency"], r["workload"]): r for r in m["bound_rows"]}
    assert len(rows) == 3 * 6  # prefork 1, 4; threads 1, 4; gevent 1, 64
    for r in rows.values():
        assert r["bound"] == min(r["ideal"], r["ceiling"])
    # one green worker at 64 x 40 ms is held by its ceiling: a second process adds to it
    green = rows[("gevent", 64, "io")]
    assert green["ideal"] == 1600 and green["throughput"] <= 2.0 * green["ceiling"]
    two = m["two_workers"]
    assert two["one_worker"]["n"] == two["n"] / 2  # one worker's drain beside, half the tasks
    if two["available_cores"] >= 1.6:  # the two had a core each: they beat the one beside them
        assert two["throughput"] > 1.25 * two["one_worker"]["throughput"]
    # events' cost is one no-op drain against another: on a noisy run it can come out at or
    # below zero (the finding then says no share was measured); never a whole rate
    assert m["instrumentation_overhead"] < 1 and m["events_cost"]["with_events"] > 0


def test_figures_read_at_a_glance(lab07):
    _, _, run_dir = lab07
    assert_figures_read_at_a_glance(plots.FIGURES, run_dir)
