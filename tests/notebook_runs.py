"""Each lab's notebook, executed on a real kernel at the parameters its end-to-end test asserts
on: one run serves both tiers. The notebook tier checks that the notebook ran top to bottom and
showed its measurements; the lab's own test (tests/test_labNN.py) reads the same run's
result.json. The notebook calls the driver, so it measures exactly as ``celery-lab run`` does;
the command line and the driver-as-script paths are run by tests/test_param_extremes.py,
tests/test_cli.py and tests/test_lab01.py.

The parameters sit here, in one table, so that the two tiers cannot drift apart."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import NamedTuple

from labkit.exercise import EXERCISES_ENV
from tests import board
from tests.conftest import REPO, LabRun, read_run


class Setup(NamedTuple):
    quick: bool
    params: list[str]
    expected_s: float = 30.0
    alone: bool = False  # it measures throughput against the machine's spare cores
    quiet: bool = False  # beside one other board job only, once the tests beside the board ended


SETUPS: dict[str, Setup] = {
    "01_hello_world": Setup(True, ["batch=500", "sequential=30"], 35),
    "02_retry": Setup(True, ["countdown=0.8", "fail_times=1", "others=3", "max_retries=1",
                             "backoff_tasks=12", "backoff_retries=2", "retry_backoff_max=1",
                             "visibility_timeout=0.6", "ratios=0.4,2.5", "trap_tasks=3"], 30),
    "03_bind_context": Setup(False, ["chain_length=5", "group_size=3", "fail_times=1", "steps=5",
                                     "step_s=0.1", "poll_s=0.12", "secret=s3cr3t-value"], 15),
    "04_acks_late": Setup(True, ["modes=early,late,late_reject", "faults=child_kill,worker_kill,cold",
                                 "tasks=3", "task_s=0.4", "kill_fractions=0.5", "redelivery_vts=1.2",
                                 "tail_s=0.5", "visibility_timeout=6.5"], 40),
    "05_beat": Setup(True, ["interval=0.4", "window=2.5", "away=1.5", "gap=1.2", "both=1.6",
                            "broken_interval=0.4", "timezones=UTC,Asia/Tokyo", "cron_hour=6",
                            "cron_minute=30"], 30),
    "06_routing": Setup(False, ["per_level=3", "transient_keys=info,debug,trace",
                                "topic_patterns=a.*,a.#,#.z,*.*.z", "topic_keys=a.b,a,z,a.z,b.c.z",
                                "broadcasts=2", "shared=6", "unroutable_key=fatal"], 22),
    # toward the extremes of its ranges, beside the other jobs like every lab: its claims that
    # need spare cores measure them during the measurement and say "not decided" without
    "07_pools": Setup(True, ["pools=prefork,threads,gevent", "process_concurrency=1,4",
                             "green_concurrency=1,64", "latency=0.04", "cpu_ms=5", "per_slot=1",
                             "noop_tasks=300", "long_s=0.3", "shorts=4", "soft_limit=0.1",
                             "hard_limit=0.2"], 110, quiet=True),
    "08_observability": Setup(False, ["tasks=24", "task_s=0.15", "failures=5", "scheduled=2",
                                      "countdown=1.2", "threshold=8", "result_expires=45",
                                      "failure_expires=15"], 20),
    "09_canvas": Setup(True, ["group_size=4", "member_s=0.05", "sizes=2,3", "fail_times=4",
                              "countdown=0.05", "inner_timeout=0.2", "unlock_interval=0.1",
                              "gap_s=0.2", "tiny_tasks=200", "chunk_size=200", "timeout=10"], 30),
    "10_broker_outage": Setup(True, ["rounds=always-SIGKILL,none-SIGTERM,everysec-SIGTERM",
                                     "results=1", "prefetched=8", "queued=1", "eta=1", "pause_s=5",
                                     "timeout=10"], 33, quiet=True),
    "11_priorities": Setup(True, ["per_value=1", "seed=3", "bulk=16", "urgent=1", "task_s=0.1",
                                  "prefetch=8", "per_queue=3", "rate=30", "rate_s=1", "timeout=10"], 25),
    "12_memory": Setup(True, ["tasks=8", "leak_mib=16", "max_tasks=3", "max_memory_mib=100",
                              "eta_tasks=600", "eta_limit=8", "results=100",
                              "expires_s=1", "payload_kib=512", "payload_tasks=5", "timeout=10"], 35),
    "13_deploys": Setup(True, ["task_s=1.5", "strike_s=0.3", "grace_short=0.5", "soft_short=0.3",
                               "soft_long=6", "long_s=1.8", "roll_soft=0.5", "warmup_s=0.5", "queued=1",
                               "eta=1", "prefetch=2", "workers=2", "timeout=15"], 60),
}

NOTEBOOK_TIMEOUT = 420.0
_kernel_lock = threading.Lock()


def notebook_path(lab_id: str) -> Path:
    return REPO / "notebooks" / f"{lab_id}.ipynb"


def executed_notebook(run: LabRun) -> Path:
    """Where the executed copy of a notebook run was written."""
    return run.run_dir.parents[2] / "executed.ipynb"


def _kernel_path(workdir: Path) -> Path:
    """A ``python3`` kernelspec for *this* interpreter, ahead of any other on the machine,
    installed once for the board."""
    from ipykernel.kernelspec import install

    prefix = workdir.parent / "jupyter-kernel"
    with _kernel_lock:
        if not (prefix / "share" / "jupyter" / "kernels" / "python3").exists():
            install(prefix=str(prefix), kernel_name="python3")
    return prefix / "share" / "jupyter"


def declare_notebook(lab_id: str) -> str:
    """The notebook run of ``lab_id``, on the test board; its key."""
    setup = SETUPS[lab_id]

    def run(workdir: Path) -> LabRun:
        env = dict(os.environ, CELERY_LAB_RESULTS=str(workdir / "results"),
                   JUPYTER_PATH=str(_kernel_path(workdir)),
                   # "Your turn" grades the starter: no learner copy here
                   **{EXERCISES_ENV: str(workdir / "no-exercises")})
        env.pop("CELERY_LAB_BROKER", None)
        argv = [sys.executable, "-m", "tests.run_notebook", str(notebook_path(lab_id)),
                str(workdir / "executed.ipynb"),
                json.dumps({"quick": setup.quick, "params": setup.params})]
        proc = board.command(argv, env, REPO, workdir, NOTEBOOK_TIMEOUT)
        return read_run(workdir / "results", lab_id, proc)

    return board.declare(f"notebook-{lab_id}", run, expected_s=setup.expected_s, alone=setup.alone,
                         quiet=setup.quiet)
