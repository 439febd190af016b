"""Exercise 07's grader: the learner's two worker configurations drained on pre-filled queues
(Lab 07's own measurement), against targets set by this machine in the same moment: the IO
worker's own no-op ceiling, and the cores at hand while the CPU worker drains."""

from __future__ import annotations

import math
import os
from typing import Any

from labkit import cpu_share
from labkit.errors import SetupError
from labkit.exercise import Exercise, Learner
from labkit.params import Param
from labkit.session import LabSession
from labs.lab07_pools import measure
from labs.lab07_pools.driver import POOLS
from labs.lab07_pools.tasks import cpu, io

LATENCY = 0.05
IO_TARGET = 150.0  # tasks/s
CEILING_SHARE = 0.6  # of the worker's own no-op ceiling, where that is the lower target
CEILING_TASKS = 300  # the no-op drain that measures it (Lab 07's noop_tasks minimum)
RSS_CAP_MB = 400.0
# prefork keeps most of the cores at hand busy (its main process, the broker and the results
# take a share); threads and green pools one core at most (the GIL)
CPU_SHARE = 0.6
MIN_CONTROL = 1.5  # cores at hand; below it, processes and threads would pass alike: no verdict
PARAMS = {"cpu_ms": Param(20.0, "the CPU task's cost, milliseconds", min=5, max=100)}


def options(config: Any, name: str) -> dict[str, Any]:
    if not isinstance(config, dict) or config.get("pool") not in POOLS \
            or not isinstance(config.get("concurrency"), int) \
            or not 1 <= config["concurrency"] <= 256:
        raise SetupError(f"{name} must be {{'pool': one of {POOLS}, 'concurrency': 1-256}}, "
                         f"got {config!r}")
    return {"pool": config["pool"], "concurrency": config["concurrency"], **measure.NO_EVENTS}


def drain(s: LabSession, name: str, worker_options: dict[str, Any], task: str, args: tuple,
          n: int, ceiling: bool = False, tries: int = 1,
          enough: float = math.inf) -> tuple[float, float, float | None, dict[str, Any] | None]:
    """Tasks per second on a pre-filled queue, the worker's resident memory (MB), with
    ``ceiling`` the rate it drains no-op tasks at right now (its ceiling, Lab 07), and the cores
    the worker used and the cores the run had at hand during the drain (labkit.cpu_share's
    window). With ``tries`` > 1, a
    drain under ``enough`` is measured again and the best one counts: one reading taken while
    something else had the machine is no verdict on the learner's choice."""
    queue = f"ex07_{name}"
    worker = s.start_worker(name, queues=[queue], **worker_options)
    s.drain([worker], io.name, [(0.0,)] * 2, timeout=30, wake=[queue])  # warm up
    rss = worker.rss_bytes() / 1e6
    top = s.drain([worker], io.name, [(0.0,)] * CEILING_TASKS, timeout=120, wake=[queue]).rate \
        if ceiling else None
    if top is not None:  # the IO target: the lower of the fixed one and the ceiling's share
        enough = min(enough, CEILING_SHARE * top)
    best: tuple[float, dict[str, Any] | None] = (0.0, None)
    with cpu_share.CpuSampler([worker.pid]) as sampler:
        for _ in range(tries):
            d = s.drain([worker], task, [args] * n, timeout=120, wake=[queue])
            if d.rate > best[0]:
                best = (d.rate, sampler.window(d.started_at, d.ended_at) if d.ended_at else None)
            if best[0] >= enough:
                break
    s.stop_workers([worker], timeout=1.5)
    return best[0], rss, top, best[1]


MIN_IO_CORES = 0.9  # the IO worker is one process: with less than a core at hand it is no verdict


def check_io(s: Any, rate: float, rss_mb: float, ceiling: float,
             available_cores: float | None = None) -> None:
    """A worker cannot drain waits faster than it drains no-op tasks: a green worker's ceiling
    has read 141-313 tasks/s from run to run on one idle machine, so the target is IO_TARGET or
    CEILING_SHARE of the ceiling measured just before, whichever is lower. A drain short of it
    while the rest of the machine left the run less than a core is not graded."""
    target = min(IO_TARGET, CEILING_SHARE * ceiling)
    measured = {"tasks_per_s": round(rate, 1), "rss_mb": round(rss_mb, 1),
                "ceiling_tasks_per_s": round(ceiling, 1), "target_tasks_per_s": round(target, 1),
                "available_cores": available_cores}
    if rate < target and rss_mb <= RSS_CAP_MB and available_cores is not None \
            and available_cores < MIN_IO_CORES:
        s.check("io_reaches_its_target", "not graded: this machine is too busy right now (during "
                f"the IO drain the run had {available_cores:.2f} of a core at hand); close what "
                "else runs and check again", measured, f">= {MIN_IO_CORES} cores at hand", False)
        return
    s.check("io_reaches_its_target", f"the IO-bound worker drains at least {IO_TARGET:g} tasks/s "
            f"of 50 ms waits (or {CEILING_SHARE:g} of its own ceiling on this machine, if lower) "
            f"within {RSS_CAP_MB:g} MB",
            measured, f">= {target:.0f} tasks/s and <= {RSS_CAP_MB:g} MB",
            rate >= target and rss_mb <= RSS_CAP_MB)


def grade(s: LabSession, learner: Learner) -> None:
    p = s.params
    io_options = options(getattr(learner.module, "IO_BOUND", None), "IO_BOUND")
    cpu_options = options(getattr(learner.module, "CPU_BOUND", None), "CPU_BOUND")
    iterations = measure.calibrate(p.cpu_ms)
    cost = p.cpu_ms / 1000
    cores = os.cpu_count() or 1

    c = io_options["concurrency"]
    io_rate, io_rss, top, io_window = drain(s, "io", io_options, io.name, (LATENCY,),
                                            60 if c < 16 else 4 * c, ceiling=True, tries=2,
                                            enough=IO_TARGET)
    check_io(s, io_rate, io_rss, top, (io_window or {}).get("available_cores"))

    # the learner's CPU worker, the cores it used during its drain and the ones at hand then:
    # a laptop's free cores change by the second, so the target is read in the same moment
    n_cpu = max(24, math.ceil(1.5 * min(cpu_options["concurrency"], cores) / cost))
    cpu_rate, _, _, window = drain(s, "cpu", cpu_options, cpu.name, (iterations,), n_cpu)
    check_cpu(s, cpu_rate, window, cores)


def check_cpu(s: Any, rate: float, window: dict[str, Any] | None, cores: int) -> None:
    """Pure-Python work holds the GIL: one process uses one core at most, so a configuration
    that runs it in parallel keeps most of the free cores busy. Read where it acts (the cores
    the worker used during its own drain), not from drains at other moments: a solution once
    missed a target set by plain processes that read 2.41x faster than one on 2 cores."""
    used = window.get("used_cores") if window else None
    at_hand = min(window["available_cores"], cores) if window and window.get("available_cores") \
        else None
    measured = {"tasks_per_s": round(rate, 1), "used_cores": used, "cores_at_hand": at_hand}
    if cores > 1 and (at_hand is None or used is None or at_hand < MIN_CONTROL):
        # processes and threads would pass alike: no verdict, and the learner is told why
        s.check("cpu_reaches_what_the_cores_allow", "not graded: this machine is too busy right "
                f"now (during the CPU drain the run had {at_hand} of {cores} cores at hand); "
                "close what else runs and check again", measured, f">= {MIN_CONTROL} cores at hand",
                False)
        return
    want = CPU_SHARE * at_hand if cores > 1 else 0.9
    s.check("cpu_reaches_what_the_cores_allow", "the CPU-bound worker keeps at least "
            f"{CPU_SHARE} of the cores at hand busy during its drain (the GIL lets one process "
            "use one)", measured, f">= {want:.2f} cores used", used >= want)


EXERCISE = Exercise(
    lab_id="07_pools",
    task="choose the pool and concurrency for an IO-bound and a CPU-bound workload to reach "
         "this machine's targets",
    read_first="labs/lab07_pools/README.md (the ideal, the one-worker ceiling, the GIL)",
    time_box_min=10,
    grade=grade,
    params=PARAMS,
    measures_speed=True,
    hints={
        "io_reaches_its_target": "a task that waits holds a slot without using a core; which "
                                 "pool gives many slots without a process each?",
        "cpu_reaches_what_the_cores_allow": "pure-Python work holds the GIL: how many can run "
                                            "at once in one process, and in several?",
    },
)
