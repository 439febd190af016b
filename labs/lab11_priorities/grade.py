"""Exercise 11's grader: one worker as the learner configures it, a backlog sent through their
``send_bulk``, urgent tasks through their ``send_urgent`` while a backlog task runs; what ran
between the urgent send and the last urgent task, read from the tasks' own start stamps."""

from __future__ import annotations

import time
from typing import Any

from labkit.errors import SetupError
from labkit.exercise import Exercise, Learner
from labkit.params import Param
from labkit.polling import wait_for
from labkit.session import LabSession
from labkit.taskside import STAMP_STARTS
from labs.lab11_priorities.order import job_starts
from labs.lab11_priorities.tasks import RUNS

TRIALS = 3  # tries until the urgent tasks land while a backlog task runs
PARAMS = {
    "bulk": Param(16, "backlog tasks", min=12, max=200),
    "urgent": Param(3, "urgent tasks", min=2, max=10),
    "task_s": Param(0.4, "seconds each backlog task takes", min=0.2, max=2),
    "timeout": Param(20.0, "bound on every wait, seconds", min=10),
}


def _worker(learner: Learner) -> dict[str, Any]:
    spec = getattr(learner.module, "WORKER", None)
    if not isinstance(spec, dict) or not spec.get("queues"):
        raise SetupError(f"{learner.path}: WORKER must be a dict with a list of 'queues'")
    return spec


def grade(s: LabSession, learner: Learner) -> None:
    p = s.params
    spec = _worker(learner)
    settings = dict(spec.get("settings") or {})
    with s.client_app(settings) as app:
        bulk = [learner.module.send_bulk(app, ("ex-bulk", seq, p.task_s)).id for seq in range(p.bulk)]
        s.start_worker("learner", concurrency=1, queues=list(spec["queues"]),
                       prefetch=int(spec.get("prefetch_multiplier", 4)),
                       settings={**settings, STAMP_STARTS: ["lab11.job"]}, ready_timeout=p.timeout)
        trials = []
        for trial in range(TRIALS):
            trials.append(urgent_trial(s, app, learner, bulk, trial))
            if trials[-1]["covered"] or trials[-1]["missing"]:
                break
    s.write_json("trials.json", trials)
    check_overtake(s, trials[-1], p.task_s)


def urgent_trial(s: LabSession, app: Any, learner: Learner, bulk: list[str], trial: int) -> dict[str, Any]:
    """The learner's urgent tasks sent while a backlog task has just begun; which backlog tasks
    started between that send and the last urgent task's start."""
    p = s.params
    known = set(bulk)

    def just_begun() -> float | None:
        starts = [t for i, t in job_starts(s).items() if i in known]
        latest = max(starts, default=None)
        return latest if len(starts) >= 2 and time.time() - latest < 0.3 * p.task_s else None

    wait_for(just_begun, p.timeout + p.bulk * p.task_s, "a backlog task to begin")
    sent_at = time.time()
    urgent = [learner.module.send_urgent(app, (f"ex-urgent-{trial}", seq, 0.0)).id
              for seq in range(p.urgent)]
    landed_at = time.time()

    def settled() -> dict[str, float] | None:
        starts = job_starts(s)
        if not all(u in starts for u in urgent):
            return None
        last = max(starts[u] for u in urgent)
        after = any(i in known and t > last for i, t in starts.items())
        return starts if after or all(i in starts for i in bulk) else None

    try:
        starts = wait_for(settled, p.timeout + (p.bulk + p.urgent) * p.task_s, "the urgent tasks")
    except TimeoutError:
        starts = job_starts(s)
    ran = sorted(starts[u] for u in urgent if u in starts)
    bulk_starts = {i: starts[i] for i in bulk if i in starts}
    running = max((i for i, t in bulk_starts.items() if t <= sent_at), key=bulk_starts.get, default=None)
    ended = {r["id"]: r["ended"] for r in s.records(RUNS) if r["id"] == running}
    last = ran[-1] if len(ran) == len(urgent) else float("inf")
    return {"trial": trial, "urgent": len(urgent), "urgent_ran": len(ran), "missing": len(ran) < len(urgent),
            "covered": running is not None and ended.get(running, 0) > landed_at,
            "backlog_between": sum(1 for t in bulk_starts.values() if sent_at < t < last),
            "backlog_after": sum(1 for t in bulk_starts.values() if t > last),
            "urgent_wait_s": (ran[0] - sent_at) if ran else None}


def check_overtake(s: LabSession, trial: dict[str, Any], task_s: float) -> None:
    s.check("every_task_runs", "every urgent task runs, on the worker the grader started",
            {k: trial[k] for k in ("urgent", "urgent_ran", "backlog_after")},
            f"{trial['urgent']} urgent ran", not trial["missing"])
    decided = trial["covered"]
    claim = ("once the urgent tasks are sent, no backlog task starts before the last of them (the "
             "one already running may finish)")
    s.check("urgent_tasks_overtake_the_backlog",
            claim if decided else f"{claim}: not graded: this machine is too busy (no trial landed "
            "while a backlog task ran)",
            {k: trial[k] for k in ("backlog_between", "urgent_wait_s", "covered")},
            "0 backlog tasks between" if decided else "a trial that lands while a backlog task runs",
            decided and not trial["missing"] and trial["backlog_between"] == 0)


EXERCISE = Exercise(
    lab_id="11_priorities",
    task="make urgent tasks overtake a backlog of bulk tasks on one worker (any approach)",
    read_first="labs/lab11_priorities/README.md (what a worker holds besides the task it runs, and "
               "which end of Redis's priorities is urgent)",
    time_box_min=15,
    grade=grade,
    params=PARAMS,
    hints={
        "every_task_runs": "every urgent task you send must run on the one worker: does it listen "
                           "where you send them?",
        "urgent_tasks_overtake_the_backlog": "a worker fetches messages before it runs them "
                                             "(prefetch): which of its settings decide how many it "
                                             "holds besides the one it runs, and when a message "
                                             "stops counting as held?",
    },
)
