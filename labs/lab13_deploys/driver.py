"""Lab 13: deploys and shutdown. Warm, cold and soft shutdowns, SIGTERM under an orchestrator's
grace period, and a rolling restart under load, measured; then the checklist the run implies.

``python -m labs.lab13_deploys.driver`` is ``celery-lab run 13``; the notebook calls ``run()``.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from labkit import runner
from labkit.cli import run_script
from labkit.errors import SetupError
from labkit.lab import Lab
from labkit.params import Param, Params
from labkit.session import LabSession
from labs.lab13_deploys import checklist, checks, plots, rolling, sequences

MARGIN_S = rolling.MARGIN_S
EXIT_ALLOWANCE_S = 5.0  # a worker exiting on its own may take this long beyond what it waits for
MAX_LOAD = 0.7  # of the rollout's pool slots the stream may keep busy (more: the queue only grows)

PARAMS = {
    "task_s": Param(2.5, "part 1: the running task's length, seconds", quick=2.0, min=1, max=20),
    "strike_s": Param(0.5, "part 1: the signal comes this long after the task starts", min=0.2, max=10),
    "grace_short": Param(0.8, "the short grace before SIGKILL (part 1 and the naive rollout)",
                         min=0.2, max=10),
    "grace_long": Param(12.0, "part 1: the long grace before SIGKILL", min=5, max=60),
    "soft_short": Param(0.5, "part 1: a worker_soft_shutdown_timeout shorter than the task", min=0.1, max=10),
    "soft_long": Param(6.0, "part 1: one longer than what is left of the task and a warm exit",
                      quick=5.5, min=0.5, max=30),
    "prefetch": Param(4, "part 1: worker_prefetch_multiplier (one pool process)", min=2, max=16),
    "queued": Param(3, "part 1: tasks prefetched behind the running one", min=1, max=15),
    "eta": Param(2, "part 1: ETA tasks the worker holds", min=1, max=20),
    "eta_countdown": Param(120.0, "part 1: their countdown, seconds (they never come due in the run)",
                           min=60, max=3600),
    "workers": Param(3, "part 3: workers in the rollout", quick=2, min=2, max=5),
    "concurrency": Param(2, "part 3: pool processes per worker", min=1, max=4),
    "rate": Param(3.0, "part 3: tasks per second the publisher sends", min=0.5, max=20),
    "short_s": Param(0.2, "part 3: a short task lasts this to twice this, seconds", min=0.05, max=2),
    "long_s": Param(2.5, "part 3: every third task lasts this long, seconds", quick=2.0, min=1, max=20),
    "roll_soft": Param(0.8, "part 3: the soft procedure's worker_soft_shutdown_timeout", min=0.1, max=10),
    "warmup_s": Param(1.5, "part 3: the stream runs this long before and after the rollout",
                      quick=0.5, min=0.5, max=10),
    "timeout": Param(30.0, "bound on every wait, seconds", min=10),
}


def strike_bound(p: Params) -> float:
    """A rollout strikes a task with more than this to go: longer than the naive grace and the
    soft timeout, so that the one is cut short and the other cancels it."""
    return max(p.grace_short, p.roll_soft) + MARGIN_S


def validate(p: Params) -> None:
    left = p.task_s - p.strike_s
    for name in ("grace_short", "soft_short"):
        if p[name] + MARGIN_S > left:
            raise SetupError(f"bad param {name}={p[name]:g}: the task has {left:g} s left at the signal "
                             f"(task_s - strike_s); {name} must end {MARGIN_S:g} s before that, or the "
                             "task ends before the kill or the cancel it is meant to meet")
    if p.soft_long < left + MARGIN_S:
        raise SetupError(f"bad param soft_long={p.soft_long:g}: at least {left + MARGIN_S:g} s (what is "
                         f"left of the task at the signal, {left:g} s, plus {MARGIN_S:g} s)")
    if p.grace_long < max(left, p.soft_long) + EXIT_ALLOWANCE_S:
        raise SetupError(f"bad param grace_long={p.grace_long:g}: at least "
                         f"{max(left, p.soft_long) + EXIT_ALLOWANCE_S:g} s (the longest wait + "
                         f"{EXIT_ALLOWANCE_S:g} s for the worker to exit), or SIGKILL cuts a clean "
                         "exit short")
    if p.queued > p.prefetch - 1:
        raise SetupError(f"bad param queued={p.queued}: at most prefetch - 1 = {p.prefetch - 1} (with "
                         "acks_late the running task takes one of the worker's prefetch slots)")
    bound = strike_bound(p)
    if p.long_s < bound + MARGIN_S:
        raise SetupError(f"bad param long_s={p.long_s:g}: at least {bound + MARGIN_S:g} s, so a long task "
                         f"can be struck with more than {bound:g} s to go (the grace or soft timeout "
                         f"+ {MARGIN_S:g} s)")
    mean = (2 * 1.5 * p.short_s + p.long_s) / rolling.LONG_EVERY
    load = p.rate * mean / (p.workers * p.concurrency)
    if load > MAX_LOAD:
        raise SetupError(f"bad param rate={p.rate:g}: it keeps {load:.0%} of {p.workers} x {p.concurrency} "
                         f"pool slots busy (at most {MAX_LOAD:.0%}; a queue that only grows never settles)")


def measure_lab(s: LabSession) -> None:
    p = s.params
    cells = sequences.cells([q.name for q in sequences.SEQUENCES], list(sequences.ACKS))
    s.step(f"part 1: {len(cells)} workers, each struck once ({len(sequences.SEQUENCES)} signal "
           f"sequences x 2 ack modes), each holding 1 running + {p.queued} prefetched + {p.eta} ETA tasks")
    rows, exits = sequences.run(s, cells, p)
    s.evidence.write_csv("cells.csv", [{**r, "outcome": sequences.outcome(r)} for r in rows])
    s.write_json("exits.json", exits)
    checks.check_kill(s.evidence, rows, exits)
    checks.check_warm_and_cold(s.evidence, rows, exits)
    checks.check_given_back(s.evidence, rows, exits)
    checks.check_soft_wait(s.evidence, exits, p.soft_long)

    s.step("part 2: the log's \"Restoring N unacknowledged message(s)\" against the count")
    checks.check_restoring_line(s.evidence, rows, exits)

    plan = checklist.compute(exits, p.long_s, p.roll_soft,
                             {"soft_short": p.soft_short, "soft_long": p.soft_long})
    s.step(f"part 4 (from part 1): grace {plan['grace_s']:.1f} s for warm, "
           f"{plan['soft_grace_s']:.1f} s for soft")
    procedures = rolling.procedures(p, plan["grace_s"], plan["soft_grace_s"])
    s.step(f"part 3: {len(procedures)} rolling restarts side by side, {p.workers} workers each under "
           f"{p.rate:g} tasks/s: " + "; ".join(f"{q.name}: {q.label}" for q in procedures))
    # side by side, each on its own queues: a deploy happens on a busy machine, and the three
    # take the time of one
    with ThreadPoolExecutor(len(procedures)) as pool:
        done = pool.map(lambda q: rolling.roll(s, q, p, strike_bound(p)), procedures)
        rolls = {q.name: roll for q, roll in zip(procedures, done, strict=True)}
    for name, roll in rolls.items():
        s.step(f"{name}: {checks.tally(roll)}")
    s.write_json("rollouts.json", rolls)
    s.evidence.write_csv("rollouts.csv", [{"procedure": n, **checks.tally(r), **rolling.disruption(r)}
                                          for n, r in rolls.items()])
    checks.check_rollouts(s.evidence, rolls)

    vt = (s.settings.get("broker_transport_options") or {}).get("visibility_timeout", 3600)
    s.write_json("checklist.json", {**plan, "rules": checklist.rules(plan, vt)})
    checks.check_checklist(s.evidence, plan, rolls)


LAB = Lab(
    id="13_deploys",
    title="Deploys and shutdown: warm, soft, cold, SIGTERM under an orchestrator, a rolling restart",
    measure=measure_lab,
    figures=plots.FIGURES,
    params=PARAMS,
    validate=validate,
    wall_time="default about 45 s, --quick about 40 s",
)

# What the notebook calls: the same measurement as ``celery-lab run 13``.
run = partial(runner.run, LAB)

if __name__ == "__main__":
    sys.exit(run_script(LAB))
