"""Exercise 12's grader: the leaking task run ``tasks`` times on one worker configured by the
learner; what each run's process had kept, and how many tasks each process ran, as recorded by
the task itself."""

from __future__ import annotations

from typing import Any

from labkit.errors import SetupError
from labkit.exercise import Exercise, Learner
from labkit.params import Param
from labkit.session import LabSession
from labs.lab12_memory.growth import leak_runs, segments

CONCURRENCY = 2  # the grader's: with more processes than tasks to share, nothing need be replaced
SHARE = 0.6  # of the tasks that fit in the allowance, a process must run at least this many on average
PARAMS = {
    "tasks": Param(30, "leaking tasks", min=12, max=500),
    "leak_mib": Param(8, "MiB the task keeps per run", min=1, max=32),
    "allow_mib": Param(40, "MiB a process may keep at most", min=8, max=512),
    "timeout": Param(30.0, "bound on every wait, seconds", min=10),
}


def _worker(learner: Learner) -> dict[str, Any]:
    spec = getattr(learner.module, "WORKER", None)
    if not isinstance(spec, dict):
        raise SetupError(f"{learner.path}: WORKER must be a dict with 'settings'")
    return spec


def grade(s: LabSession, learner: Learner) -> None:
    p = s.params
    if p.allow_mib < p.leak_mib:
        raise SetupError(f"bad param allow_mib={p.allow_mib}: at least leak_mib={p.leak_mib}")
    if p.tasks < 2 * (p.allow_mib // p.leak_mib):
        raise SetupError(f"bad param tasks={p.tasks}: at least twice the {p.allow_mib // p.leak_mib} "
                         "tasks that fit in the allowance (or no process need ever be replaced)")
    spec = _worker(learner)
    s.step(f"each run keeps {p.leak_mib} MiB; a process may keep {p.allow_mib} MiB")
    s.start_worker("learner", concurrency=CONCURRENCY, queues=["ex12"],
                   settings=dict(spec.get("settings") or {}), ready_timeout=p.timeout)
    rows = leak_runs(s, "ex12", "ex12", p.tasks, p.leak_mib, p.timeout)
    s.write_json("runs.json", rows)
    check_leak(s, rows, p.tasks, p.leak_mib, p.allow_mib, CONCURRENCY)


def check_leak(s: LabSession, rows: list[dict[str, Any]], tasks: int, leak_mib: int, allow_mib: int,
               concurrency: int) -> None:
    kept = max((r["kept_mib"] for r in rows), default=0)
    s.check("no_process_keeps_more_than_allowed",
            f"no pool process ever keeps more than {allow_mib} MiB",
            {"most_kept_mib": kept, "tasks_ran": len(rows)}, f"<= {allow_mib} MiB, all {tasks} ran",
            kept <= allow_mib and len(rows) == tasks)
    processes = segments_by_pid(rows)
    # only the processes that were replaced: each pool slot's last one was still running when the
    # tasks ran out, with however few tasks were left for it
    last_seen = sorted(processes, key=lambda g: max(r["t"] for r in rows if r["pid"] == g["pid"]))
    replaced = last_seen[:-concurrency] if len(last_seen) > concurrency else []
    fits = allow_mib // leak_mib
    mean = sum(len(g["seqs"]) for g in replaced) / len(replaced) if replaced else None
    s.check("processes_are_not_replaced_needlessly",
            f"a replaced process had run on average at least {SHARE:.0%} of the {fits} tasks that fit "
            "in the allowance (each new process costs a start)",
            {"processes": len(processes), "replaced": len(replaced),
             "mean_tasks_per_replaced_process": round(mean, 2) if mean is not None else None},
            f">= {SHARE * fits:g} (none replaced: nothing needless)",
            bool(rows) and (mean is None or mean >= SHARE * fits))


def segments_by_pid(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per process, its tasks (several processes run side by side: grouped by pid, not by order)."""
    by_pid: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        by_pid.setdefault(r["pid"], []).append(r)
    return [segments(runs)[0] for runs in by_pid.values()]


EXERCISE = Exercise(
    lab_id="12_memory",
    task="keep a leaking task's pool processes under a memory allowance without recycling them needlessly",
    read_first="labs/lab12_memory/README.md (when a process is replaced, and whether a memory "
               "limit is a cap)",
    time_box_min=10,
    grade=grade,
    params=PARAMS,
    hints={
        "no_process_keeps_more_than_allowed": "a leak lives as long as its process: which settings "
                                              "replace a pool process, when is each checked, and "
                                              "against what (what a task keeps, or the whole "
                                              "process's peak)?",
        "processes_are_not_replaced_needlessly": "replacing after every task bounds memory too; how "
                                                 "many tasks fit in the allowance?",
    },
)
