"""Lab 09: canvas (chain, group, chord), what it costs, and what happens when a member fails.

``python -m labs.lab09_canvas.driver`` is ``celery-lab run 09``; the notebook calls ``run()``.
"""

from __future__ import annotations

import sys
from functools import partial

from labkit import runner
from labkit.cli import run_script
from labkit.errors import SetupError
from labkit.lab import Lab
from labkit.params import Param, Params
from labkit.session import LabSession
from labkit.taskside import STAMP_STARTS
from labs.lab09_canvas import checks, cost, failures, flow, plots

QUEUE = "lab09"  # w1 and w2, and every process's default queue (a chain's links are sent by workers)
ONE_SLOT = "lab09_one"  # a worker with one pool process: get() inside a task
NO_JOIN = "lab09_nojoin"  # a worker whose result backend cannot join a chord
UNLOCK_POLLS = 3  # the header is held incomplete until chord_unlock has run this many times

PARAMS = {
    "group_size": Param(8, "members of the data-flow group and chord", min=4, max=40),
    "member_s": Param(0.2, "seconds a data-flow member sleeps", quick=0.1, min=0.05, max=2),
    "sizes": Param([2, 8, 32], "sizes of the chain, group and chord whose cost is counted",
                   quick=[2, 8, 16], min=2, max=64),
    "fail_times": Param(2, "retries of the retrying chord header member", min=1, max=4),
    "countdown": Param(0.2, "its retry countdown, seconds", min=0.05, max=2),
    "inner_timeout": Param(1.0, "how long a task waits on get() for its own subtask, seconds",
                           quick=0.5, min=0.2, max=10),
    "unlock_interval": Param(0.25, "result_chord_retry_interval of the worker without a native "
                                   "join, seconds", min=0.1, max=1),
    "gap_s": Param(0.5, "how much later the first failing group member (in header order) fails "
                        "than the second, seconds", min=0.2, max=5),
    "tiny_tasks": Param(400, "tiny additions sent as a group and as chunks", quick=200, min=200, max=5000),
    "chunk_size": Param(50, "additions per chunk", min=10, max=1000),
    "timeout": Param(30.0, "bound on every wait, seconds", min=10),
}


def validate(p: Params) -> None:
    if p.chunk_size > p.tiny_tasks:
        raise SetupError(f"bad param chunk_size={p.chunk_size}: at most tiny_tasks={p.tiny_tasks}")


def settings(p: Params) -> dict:
    return {"task_default_queue": QUEUE}


def measure_lab(s: LabSession) -> None:
    p = s.params
    backend_dir = s.tmp / "file-backend"
    backend_dir.mkdir()
    backend_url = f"file://{backend_dir}"
    one_slot = {"worker_prefetch_multiplier": 1}
    w1, w2, _, _ = s.start_workers({
        "w1": {"concurrency": 2, "queues": [QUEUE], "settings": one_slot},
        "w2": {"concurrency": 2, "queues": [QUEUE], "settings": one_slot},
        "one": {"concurrency": 1, "queues": [ONE_SLOT], "settings": one_slot},
        "nojoin": {"concurrency": 2, "queues": [NO_JOIN],
                   "settings": {"result_backend": backend_url, "task_default_queue": NO_JOIN,
                                "result_chord_retry_interval": p.unlock_interval,
                                # each chord_unlock run stamped where it runs, as it starts
                                STAMP_STARTS: [cost.UNLOCK]}},
    })

    s.step("data flow: a chain with .s and .si, a group, a chord finishing out of header order")
    chained = flow.chain_links(s, p.timeout)
    grouped = flow.group_timeline(s, p.group_size, p.member_s, p.timeout)
    chorded = flow.chord_order(s, p.group_size, p.member_s, p.timeout)
    s.write_json("flow.json", {"chain": chained, "group": grouped, "chord": chorded})
    checks.check_flow(s.evidence, chained, grouped, chorded, [w1.hostname, w2.hostname])

    s.step(f"cost: messages, result keys and Redis commands of a chain, a group, a chord of {p.sizes}")
    costs = cost.costs(s, p.sizes, p.timeout)
    redis_join = cost.redis_join(s, p.group_size, p.timeout)
    unlock = cost.unlock_join(s, NO_JOIN, p.group_size, UNLOCK_POLLS, backend_url, p.timeout)
    chunks = cost.chunks_against_group(s, p.tiny_tasks, p.chunk_size, p.timeout)
    s.write_json("cost.json", {"costs": costs, "redis_join": redis_join, "unlock": unlock, "chunks": chunks})
    s.write_csv("cost.csv", costs["rows"])
    checks.check_costs(s.evidence, costs)
    checks.check_join(s.evidence, redis_join, unlock, p.unlock_interval)
    checks.check_chunks(s.evidence, chunks)

    s.step(f"failure matrix: {len(failures.CELLS)} canvases at once, each with one thing going wrong")
    rows = failures.matrix(s, p.fail_times, p.countdown, p.timeout)
    s.step("get() inside a task, and what a group's get() raises")
    inside = failures.get_inside(s, ONE_SLOT, p.inner_timeout, p.timeout)
    prop = failures.propagation(s, p.gap_s, p.timeout)
    s.write_json("failures.json", {"matrix": rows, "get_inside": inside, "propagation": prop})
    checks.check_failures(s.evidence, rows, p.fail_times)
    checks.check_waiting(s.evidence, inside, p.inner_timeout)
    checks.check_propagation(s.evidence, prop)


LAB = Lab(
    id="09_canvas",
    title="Canvas: chain, group, chord, what they cost and what happens when a member fails",
    measure=measure_lab,
    figures=plots.FIGURES,
    params=PARAMS,
    settings=settings,
    validate=validate,
    wall_time="default about 25 s, --quick about 21 s",
)

# What the notebook calls: the same measurement as ``celery-lab run 09``.
run = partial(runner.run, LAB)

if __name__ == "__main__":
    sys.exit(run_script(LAB))
