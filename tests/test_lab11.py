"""Lab 11 end to end, toward the extremes of its declared ranges, read from its notebook's run
(tests/notebook_runs.py)."""

from __future__ import annotations

import json

import pytest

from labs.lab11_priorities import plots
from tests.conftest import assert_held
from tests.figures import assert_figures_read_at_a_glance
from tests.notebook_runs import declare_notebook

FINDINGS = {
    "a_priority_is_a_redis_list_per_step",
    "a_task_sent_without_a_priority_lands_with_priority_0",
    "on_redis_priority_0_runs_first",
    "within_a_step_tasks_run_in_the_order_sent",
    "a_list_per_value_orders_every_value",
    "backlog_still_in_redis_waits_for_urgent_tasks",
    "prefetched_tasks_run_before_later_urgent_ones",
    "acks_late_with_prefetch_one_holds_nothing_back",
    "round_robin_takes_the_queues_in_turn",
    "priority_order_starves_the_later_queue",
    "a_message_priority_outranks_the_queue_order",
    "one_worker_never_exceeds_its_rate_limit",
    "rate_limit_is_per_worker",
    "rate_limited_tasks_wait_in_the_worker_unlisted",
    "a_bucket_in_redis_limits_every_worker_together",
}

RUN = declare_notebook("11_priorities")  # its notebook's run: parameters in tests/notebook_runs.py


@pytest.fixture(scope="module")
def lab11(lab_runs):
    return lab_runs[RUN]


def test_every_finding_holds(lab11):
    proc, result, _ = lab11
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert_held(result, FINDINGS)


def test_the_run_measured_what_it_claims(lab11):
    _, result, run_dir = lab11
    assert result["params"]["prefetch"] == 8 and result["params"]["urgent"] == 1
    order = json.loads((run_dir / "order.json").read_text())
    assert len(order["default_steps"]["ran"]) == 10  # per_value=1: one task per priority value
    backlog = json.loads((run_dir / "backlog.json").read_text())
    held = backlog["trials"]["prefetch"][-1]["held"]
    assert 1 <= held <= 8  # a prefetch multiplier of 8 on one process holds up to 8
    rates = json.loads((run_dir / "rates.json").read_text())
    assert rates["rate"] == 30 and len(rates["shared"]["grants"]) == 30
    rows = (run_dir / "approaches.csv").read_text().splitlines()
    assert len(rows) == 7 and rows[0].startswith("approach")


def test_figures_read_at_a_glance(lab11):
    _, _, run_dir = lab11
    assert_figures_read_at_a_glance(plots.FIGURES, run_dir)
