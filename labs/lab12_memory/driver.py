"""Lab 12: memory and growth: a leaking task and child recycling, thousands of ETA tasks, the
result backend, and big arguments, measured.

``python -m labs.lab12_memory.driver`` is ``celery-lab run 12``; the notebook calls ``run()``.
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
from labs.lab12_memory import checks, eta, growth, payload, plots, results

ETA_COUNTDOWN = 3600.0  # far longer than the run: every ETA task is still waiting at its end

PARAMS = {
    "tasks": Param(24, "leaking tasks per worker", quick=16, min=8, max=200),
    "leak_mib": Param(8, "MiB the leaking task keeps in its process per run", min=1, max=64),
    "max_tasks": Param(5, "worker_max_tasks_per_child of the second leaking worker", min=1, max=50),
    "max_memory_mib": Param(120, "worker_max_memory_per_child of the third, in MiB (and the spike "
                                 "it takes for a moment)", min=20, max=1024),
    "eta_tasks": Param(2000, "tasks with a countdown of an hour sent to each ETA worker", quick=1000,
                       min=200, max=20000),
    "eta_limit": Param(100, "worker_eta_task_limit of the second ETA worker", min=8, max=5000),
    "results": Param(500, "small tasks per result-backend worker", quick=300, min=100, max=20000),
    "expires_s": Param(3.0, "the short result_expires, seconds", min=1, max=20),
    "payload_kib": Param(1024, "the big argument, KiB", min=512, max=4096),
    "payload_tasks": Param(20, "tasks of each kind in the payload part", quick=10, min=5, max=100),
    "timeout": Param(30.0, "bound on every wait, seconds", min=10),
}


MAX_KEPT_MIB = 2048  # what the process without a limit may keep in all: this machine's memory
MAX_PAYLOAD_KIB = 256 * 1024  # the big arguments in all (Redis holds them, base64, twice)


def validate(p: Params) -> None:
    if p.tasks * p.leak_mib > MAX_KEPT_MIB:
        raise SetupError(f"bad params tasks={p.tasks}, leak_mib={p.leak_mib}: the worker without a "
                         f"limit would keep {p.tasks * p.leak_mib} MiB (at most {MAX_KEPT_MIB})")
    if p.max_tasks >= p.tasks:
        raise SetupError(f"bad param max_tasks={p.max_tasks}: below tasks={p.tasks} (a limit the "
                         "tasks never reach replaces nothing)")
    if p.payload_kib * p.payload_tasks > MAX_PAYLOAD_KIB:
        raise SetupError(f"bad params payload_kib={p.payload_kib}, payload_tasks={p.payload_tasks}: "
                         f"at most {MAX_PAYLOAD_KIB // 1024} MiB of arguments in all")
    if p.eta_limit >= p.eta_tasks:
        raise SetupError(f"bad param eta_limit={p.eta_limit}: below eta_tasks={p.eta_tasks} "
                         "(a limit the tasks never reach shows nothing)")


def _worker(queues: list[str], **settings) -> dict:
    return {"concurrency": 1, "queues": queues, "settings": settings or None}


def measure_lab(s: LabSession) -> None:
    p = s.params
    workers = s.start_workers({
        "leak_none": _worker(["lab12_leak_none"]),
        "leak_tasks": _worker(["lab12_leak_tasks"], worker_max_tasks_per_child=p.max_tasks),
        "leak_memory": _worker(["lab12_leak_memory"],
                               worker_max_memory_per_child=p.max_memory_mib * 1024),
        "eta_none": _worker(["lab12_eta_none", "lab12_plain_none"]),
        "eta_limited": _worker(["lab12_eta_limited", "lab12_plain_limited"],
                               worker_eta_task_limit=p.eta_limit),
        "result_default": _worker(["lab12_idle_default"]),
        "result_short": _worker(["lab12_idle_short"], result_expires=p.expires_s),
        "result_ignored": _worker(["lab12_idle_ignored"], task_ignore_result=True),
    }, ready_timeout=p.timeout + 10)
    w = {x.name: x for x in workers}

    s.step(f"part 1: a task keeping {p.leak_mib} MiB per run, {p.tasks} runs on each of three workers")
    leakers = ("leak_none", "leak_tasks", "leak_memory")
    for name in leakers:  # the three workers run side by side
        growth.send_leaks(s, name, f"lab12_{name}", p.tasks, p.leak_mib)
    leaks = {name: growth.ran_leaks(s, name, p.tasks, p.timeout) for name in leakers}
    spike = growth.spike_then_next(s, "lab12_leak_memory", p.max_memory_mib, p.timeout)
    # the time between two tasks within one process (the worker without a limit has only those)
    # and across a replacement
    between = {name: growth.gaps(leaks[name]) for name in leakers}
    s.write_json("growth.json", {"leaks": leaks, "gaps": between, "spike": spike, "max_tasks": p.max_tasks,
                                 "max_memory_mib": p.max_memory_mib, "leak_mib": p.leak_mib})
    checks.check_growth(s.evidence, leaks, p.leak_mib, p.max_tasks, p.max_memory_mib)
    checks.check_spike(s.evidence, spike, p.max_memory_mib)
    checks.check_replacement(s.evidence, between)

    s.step(f"part 2: {p.eta_tasks} tasks with a countdown of an hour, without and with a limit")
    held = {name: eta.hold(s, w[f"eta_{name}"], f"lab12_eta_{name}", f"lab12_plain_{name}",
                           p.eta_tasks, ETA_COUNTDOWN, p.timeout)
            for name in ("none", "limited")}
    s.write_json("eta.json", {"held": held, "eta_limit": p.eta_limit})
    checks.check_eta(s.evidence, held, p.eta_limit)

    s.step(f"part 3: {p.results} small tasks on each result-backend worker")
    # a drain is timed to its last result where the results stay; the short ones may expire
    # before the drain ends, so that one is timed by a marker, as the ignored one
    kept = {name: results.drain_and_count(s, w[f"result_{name}"], p.results, name == "default", p.timeout)
            for name in ("default", "short", "ignored")}
    gone = results.expired(s, kept["short"]["ids"], p.expires_s)
    exists = results.exists_against_state(s, kept["default"]["ids"][0], kept["short"]["ids"][0])
    counted = {k: {x: y for x, y in v.items() if x != "ids"} for k, v in kept.items()}
    s.write_json("results.json", {"kept": counted,
                                  "expired": gone, "exists": exists, "expires_s": p.expires_s,
                                  "default_expires_s": s.app.conf.result_expires.total_seconds()})
    checks.check_results(s.evidence, kept, gone, exists, p.expires_s,
                         s.app.conf.result_expires.total_seconds())

    s.step(f"part 4: a {p.payload_kib} KiB argument against an id")
    at_rest = payload.stored_size(s, p.payload_tasks, p.payload_kib)
    speed = payload.drains(s, w["result_default"], p.payload_tasks, p.payload_kib, p.timeout)
    s.write_json("payload.json", {"at_rest": at_rest, "drains": speed})
    checks.check_payload(s.evidence, at_rest, speed)


LAB = Lab(
    id="12_memory",
    title="Memory and growth: leaking tasks, child recycling, ETA tasks, the result backend",
    measure=measure_lab,
    figures=plots.FIGURES,
    params=PARAMS,
    validate=validate,
    wall_time="default about 45 s, --quick about 35 s",
)

# What the notebook calls: the same measurement as ``celery-lab run 12``.
run = partial(runner.run, LAB)

if __name__ == "__main__":
    sys.exit(run_script(LAB))
