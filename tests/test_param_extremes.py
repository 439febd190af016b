"""Every lab at a second non-default parameter set, toward the extremes of its declared ranges
(each lab's own test runs another one): a verdict must be true at every legal parameter, so
each run exits 0 with every finding held, on whatever else this machine is doing.

Labs 01 (on an external Redis), 07, 09 and 10 have their own tests run them toward their
extremes, so they are not here."""

from __future__ import annotations

import pytest

from labkit.results import held
from tests.conftest import declare_run

EXTREMES = {
    "02_retry": ["countdown=0.2", "fail_times=1", "others=1", "max_retries=0", "backoff_tasks=24",
                 "backoff_retries=1", "visibility_timeout=0.2", "ratios=5", "trap_tasks=1"],
    "03_bind_context": ["poll_s=0.02", "steps=2", "step_s=0.06", "chain_length=2", "group_size=2",
                        "fail_times=1", "countdown=0.05", "timeout=10", "secret=abcd"],
    "04_acks_late": ["modes=late_retry,early", "faults=warm,child_kill", "tasks=1", "concurrency=1",
                     "task_s=0.2", "kill_fractions=0.5"],
    "05_beat": ["interval=0.1", "window=1", "away=0.5", "gap=0.5", "both=0.5", "broken_interval=0.1",
                "timezones=UTC,Asia/Kolkata"],
    "06_routing": ["per_level=1", "broadcasts=1", "shared=2", "transient_keys=x,y", "topic_patterns=#",
                   "topic_keys=a.b.c", "unroutable_key=Z", "timeout=10"],
    "08_observability": ["poll_s=1", "scrape_s=5", "task_s=0.01", "tasks=5", "failures=5",
                         "scheduled=100", "countdown=0.5", "threshold=1", "result_expires=10",
                         "failure_expires=11", "timeout=10"],
}


EXPECTED_S = {"04_acks_late": 28}
# the driver as a script for some, ``celery-lab run`` for the others: both entry points run a
# whole lab (the lab's own test reads its notebook's run)
AS_SCRIPT = {"02_retry", "04_acks_late", "05_beat"}
RUNS = {lab_id: declare_run(f"extremes-{lab_id}", lab_id, "--quick", params=params,
                            script=lab_id in AS_SCRIPT, expected_s=EXPECTED_S.get(lab_id, 20))
        for lab_id, params in EXTREMES.items()}


@pytest.mark.parametrize("lab_id", list(EXTREMES))
def test_every_finding_holds_toward_the_extremes(lab_id, lab_runs):
    proc, result, _ = lab_runs[RUNS[lab_id]]
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    ok, failed = held(result)
    assert ok and not failed, failed
