"""Lab 04: acks_late versus a worker kill. A fault-injection matrix with counts of lost and
duplicated tasks, the redelivery delay, and idempotency.

``python -m labs.lab04_acks_late.driver`` is ``celery-lab run 04``; the notebook calls ``run()``.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from functools import partial
from typing import Any

from labkit import run_settings, runner
from labkit.cli import run_script
from labkit.errors import SetupError
from labkit.evidence import Evidence
from labkit.lab import Lab
from labkit.params import Param, Params
from labkit.session import LabSession
from labs.lab04_acks_late import matrix, plots, redelivery

PARAMS = {
    "modes": Param(list(matrix.MODES), "ack modes: early, late, late_reject, late_retry"),
    "faults": Param(list(matrix.FAULTS), "faults: child_kill, worker_kill, warm, cold"),
    "trials": Param(2, "trials per cell (the kill moment varies)", quick=1, min=1, max=20),
    "kill_fractions": Param([0.3, 0.7], "when to strike, as fractions of a task's duration "
                            "after the cell's first start (cycled over trials)", min=0.05, max=0.95),
    "tasks": Param(4, "tasks per cell: concurrency running, the rest prefetched or queued",
                   min=1, max=50),
    "concurrency": Param(2, "pool processes per worker", min=1, max=8),
    "task_s": Param(0.5, "duration of one task, seconds", min=0.1, max=10),
    "visibility_timeout": Param(7.0, "visibility_timeout of the matrix, seconds", min=0.5, max=120),
    "sweep": Param(0.25, "unacked_restore_interval (throttle 1), seconds", min=0.05, max=10),
    "worker_lost_wait": Param(0.5, "how long a worker waits before declaring a dead pool child's "
                              "task lost (Celery's default is 10 s)", min=0.1, max=30),
    "retry_delay": Param(0.2, "default_retry_delay used by retry_on_worker_lost, seconds",
                         min=0, max=30),
    "redelivery_vts": Param([1.5, 3.0], "visibility timeouts for the redelivery-delay part",
                            quick=[1.5, 2.5], min=0.5, max=60),
    "tail_s": Param(0.6, "work after the side effect in the idempotency part, seconds",
                    min=0.2, max=10),
    "timeout": Param(60.0, "bound on every wait, seconds", min=5),
}

# What each ack mode does to the tasks a fault hits: (outcome, state the client sees).
# The tasks it does not hit run exactly once, in every cell.
EXPECTED = {
    ("early", "child_kill"): ("lost", "FAILURE"),
    ("early", "worker_kill"): ("lost", "PENDING"),
    ("early", "cold"): ("lost", "RETRY"),
    ("late", "child_kill"): ("lost", "FAILURE"),
}
WHY = {
    ("early", "child_kill"): "acked when it started; the worker records WorkerLostError",
    ("early", "worker_kill"): "acked when it started, and nobody is left to record anything",
    ("early", "cold"): "acked when it started; cold shutdown cancels it and marks it RETRY, "
                       "yet nothing will retry it (one that reached the end of its body before "
                       "the shutdown acted keeps its work and still reads RETRY)",
    ("late", "child_kill"): "the worker survives, sees WorkerLostError and acks the message "
                            "as failed (acks_on_failure_or_timeout)",
    ("late_reject", "child_kill"): "reject_on_worker_lost requeues the message",
    ("late_retry", "child_kill"): "retry_on_worker_lost sends it again as a retry",
}


# How long a worker may take to declare a dead pool child's task lost. Celery's prefork pool
# (celery/concurrency/asynpool.py, on_job_process_lost) does it as soon as it sees the child
# exit; billiard's own pool waits for a maintenance pass (5 s) plus worker_lost_wait. The lab
# keeps the larger bound as a margin: a conservative refusal, never a wrong verdict.
MAINTAIN_POOL_S = 5.0
# A fault is injected a few milliseconds after the driver decides to (more on a busy machine):
# the task it aims at must still have this long to run.
KILL_MARGIN_S = 0.1


def expected(mode: str, fault: str) -> tuple[str, str]:
    if fault == "warm":
        return ("once", "SUCCESS")  # a warm shutdown lets running tasks finish
    return EXPECTED.get((mode, fault), ("re-executed", "SUCCESS"))


def why(mode: str, fault: str) -> str:
    if fault == "warm":
        return "warm shutdown finishes running tasks and requeues the prefetched ones"
    if (mode, fault) in WHY:
        return WHY[(mode, fault)]
    return "unacked when the worker died, restored after visibility_timeout and run again"


def settings(p: Params) -> dict[str, Any]:
    return {
        **run_settings.visibility(p.visibility_timeout, p.sweep, redelivery.MUTEX_EXPIRE_S),
        "worker_lost_wait": p.worker_lost_wait,
        "task_annotations": {"lab04.work": {"default_retry_delay": p.retry_delay}},
    }


def validate(p: Params) -> None:
    unknown = (set(p.modes) - set(matrix.MODES)) | (set(p.faults) - set(matrix.FAULTS))
    if unknown:
        raise SetupError(f"bad param: unknown modes/faults {sorted(unknown)}")
    left = (1 - max(p.kill_fractions)) * p.task_s
    if left < KILL_MARGIN_S:
        raise SetupError(f"bad param kill_fractions={max(p.kill_fractions):g}: a fault at that point "
                         f"leaves {left:.2f} s of a {p.task_s:g} s task; under {KILL_MARGIN_S:g} s a busy "
                         "machine lets the task finish before the kill lands, and it is no victim")
    busiest = (math.ceil(p.tasks / p.concurrency) + 1) * p.task_s + 0.5
    if p.visibility_timeout <= busiest:
        raise SetupError(f"bad param visibility_timeout={p.visibility_timeout}: a message can wait "
                         f"unacked ~{busiest:.1f} s in normal running; a shorter timeout duplicates "
                         "tasks with no fault at all (Lab 02's trap)")
    noticed = MAINTAIN_POOL_S + p.worker_lost_wait + p.sweep + 0.5
    if p.visibility_timeout <= noticed:
        raise SetupError(f"bad param visibility_timeout={p.visibility_timeout}: a worker can take "
                         f"up to ~{noticed:.1f} s to declare a killed child's task lost (at once in "
                         f"Celery's prefork pool; {MAINTAIN_POOL_S:g} s maintenance + worker_lost_wait in "
                         "billiard's); the lab keeps that margin so the task never races its own "
                         "redelivery")
    longest = max(p.task_s, p.tail_s)
    for vt in p.redelivery_vts:
        if vt <= longest + 0.5:
            raise SetupError(f"bad param redelivery_vts: {vt} s must exceed the longest task "
                             f"({longest:.1f} s) by 0.5 s, or the rerun itself is redelivered")


def measure_lab(s: LabSession) -> None:
    p = s.params
    cells = matrix.cells(p.modes, p.faults)
    s.step(f"{len(cells)} cells ({len(p.modes)} ack modes x {len(p.faults)} faults), "
           f"{p.tasks} tasks each, {p.trials} trials")
    workers = dict(zip([c.name for c in cells], s.start_workers(
        {f"{c.name}-0": matrix.worker_spec(c, p.concurrency) for c in cells}), strict=True))
    rows: list[dict[str, Any]] = []
    for trial in range(p.trials):
        fraction = p.kill_fractions[trial % len(p.kill_fractions)]
        trial_rows, workers = matrix.run_trial(
            s, trial, workers, cells, tasks=p.tasks, task_s=p.task_s, kill_fraction=fraction,
            concurrency=p.concurrency, visibility_timeout=p.visibility_timeout, sweep=p.sweep,
            timeout=p.timeout)
        rows += trial_rows
    # A fault that found no task running measured nothing (on a busy machine it can land late,
    # after the cell's tasks are done): those cells get trials of their own, up to a bound.
    trial = p.trials
    for _ in range(MAX_EXTRA_TRIALS):
        missed = [c for c in cells if not any(r["victim"] for r in rows if r["mode"] == c.mode
                                              and r["fault"] == c.fault)]
        if not missed:
            break
        s.step(f"{len(missed)} cell(s) whose fault hit no running task: one more trial for them")
        fraction = p.kill_fractions[trial % len(p.kill_fractions)]
        trial_rows, again = matrix.run_trial(
            s, trial, {c.name: workers[c.name] for c in missed}, missed, tasks=p.tasks,
            task_s=p.task_s, kill_fraction=fraction, concurrency=p.concurrency,
            visibility_timeout=p.visibility_timeout, sweep=p.sweep, timeout=p.timeout)
        workers.update(again)
        rows += trial_rows
        trial += 1
    s.measured(trials_run=trial)
    s.stop_workers(list(workers.values()))
    for row in rows:
        row["outcome"] = matrix.outcome(row)
    s.write_csv("matrix.csv", rows)
    check_matrix(s.evidence, cells, rows)

    parts = []
    for i, vt in enumerate(p.redelivery_vts):
        s.step(f"redelivery: whole-worker SIGKILL with acks_late, visibility_timeout {vt} s")
        parts.append(redelivery.after_kill(s, f"vt{i}", vt, p.sweep, p.task_s, p.tail_s,
                                           with_charges=(i == 0), timeout=p.timeout))
    s.write_json("redelivery.json", parts)
    check_redelivery(s.evidence, parts)
    check_idempotency(s.evidence, parts[0])


# A cold shutdown acts in the worker's main process: a task in flight at the signal may reach
# the end of its body before its child is terminated (beside other jobs, one of two did). It
# was cancelled all the same (RETRY, run once, never again): its work is done, not lost.
ENDED_AS_IT_CAME = {("early", "cold")}


def as_expected(cell: matrix.Cell, row: dict[str, Any], outcome: str, state: str) -> bool:
    if row["state"] != state:
        return False
    if row["outcome"] == outcome:
        return True
    return ((cell.mode, cell.fault) in ENDED_AS_IT_CAME and row["outcome"] == "once"
            and row["starts"] == 1)


MAX_EXTRA_TRIALS = 3  # trials beyond ``trials`` for the cells whose fault hit nothing


def check_matrix(ev: Evidence, cells: list[matrix.Cell], rows: list[dict[str, Any]]) -> None:
    table = []
    for cell in cells:
        mine = [r for r in rows if r["mode"] == cell.mode and r["fault"] == cell.fault]
        hit = [r for r in mine if r["victim"]]
        spared = [r for r in mine if not r["victim"]]
        want_outcome, want_state = expected(cell.mode, cell.fault)
        measured = {
            "hit": len(hit),
            "hit_outcomes": dict(Counter(r["outcome"] for r in hit)),
            "hit_states": dict(Counter(r["state"] + (f" ({r['exception']})" if r["exception"] else "")
                                       for r in hit)),
            "others": dict(Counter(r["outcome"] for r in spared)),
        }
        table.append({"mode": cell.mode, "fault": cell.fault, **measured})
        ev.check(f"{cell.mode}_{cell.fault}",
                 f"{cell.mode} ack, {cell.fault.replace('_', ' ')}: the tasks it hits end "
                 f"{want_outcome} ({why(cell.mode, cell.fault)}); the others run once",
                 measured, (f"hit >= 1, all {want_outcome} / {want_state}; others all once"
                            + (f" (or once / {want_state}: it ended as the shutdown came)"
                               if (cell.mode, cell.fault) in ENDED_AS_IT_CAME else ""))
                 if hit else "not decided: in every trial the fault found no task running (it "
                 "came after the cell's tasks were done); the others all once",
                 all(as_expected(cell, r, want_outcome, want_state) for r in hit)
                 and all(r["outcome"] == "once" and r["state"] == "SUCCESS" for r in spared))
    ev.measured(matrix=table)


def check_redelivery(ev: Evidence, parts: list[dict[str, Any]]) -> None:
    rows = []
    for part in parts:
        vt, sweep = part["visibility_timeout"], part["sweep"]
        for again in part["again"]:
            row = {"visibility_timeout": vt, "id": again["id"], "after_delivery_s": None,
                   "after_fault_s": round(again["t"] - part["fault"], 3),
                   "earliest_s": None, "latest_s": None, "redelivered_flag": again["redelivered"]}
            scored = part["scored"].get(again["id"])
            if scored is not None:  # else never in unacked_index: acks_late did not hold it
                # restored by the first sweep after score + vt that a live worker runs
                earliest = scored + vt
                latest = max(earliest, part["fresh_ready"]) + sweep + 0.6
                row.update(after_delivery_s=round(again["t"] - scored, 3),
                           earliest_s=round(earliest - scored, 3),
                           latest_s=round(latest - scored, 3))
            rows.append(row)
    ev.write_csv("redelivery.csv", rows)
    ev.measured(redelivery=rows)
    # every task the kill caught unfinished must come back (one a late kill let finish need not)
    expected_ids = sum(len(p["in_flight"]) for p in parts)
    ev.check("redelivery_waits_for_the_visibility_timeout",
             "after a whole-worker SIGKILL, acks_late work comes back only once visibility_timeout "
             "has passed since it was delivered (the unacked_index score), at the next sweep of a "
             "live worker, flagged redelivered",
             [{k: r[k] for k in ("visibility_timeout", "after_delivery_s", "redelivered_flag")}
              for r in rows],
             "earliest <= after_delivery <= latest (vt + sweep + worker start), redelivered True, "
             "every task back",
             expected_ids > 0 and {r["id"] for r in rows} == {i for p in parts for i in p["in_flight"]}
             and all(r["earliest_s"] is not None
                     and r["earliest_s"] <= r["after_delivery_s"] <= r["latest_s"]
                     and r["redelivered_flag"] for r in rows))


def check_idempotency(ev: Evidence, part: dict[str, Any]) -> None:
    by_guard = {c["guarded"]: c for c in part["charges"]}
    plain, guarded = by_guard[False], by_guard[True]
    ev.check("redelivery_repeats_side_effects",
             "at-least-once delivery: a redelivered task that already charged the card charges it "
             "again",
             {"executions": plain["starts"], "charges": plain["side_effects"]},
             "2 executions, 2 charges", plain["starts"] == 2 and plain["side_effects"] == 2)
    ev.check("an_idempotency_key_makes_it_once",
             "with an idempotency key on the task id (SET NX), the card is charged once while the "
             "task still runs twice",
             {"executions": guarded["starts"], "charges": guarded["side_effects"]},
             "2 executions, 1 charge", guarded["starts"] == 2 and guarded["side_effects"] == 1)


LAB = Lab(
    id="04_acks_late",
    title="acks_late versus a worker kill: lost and duplicated tasks, measured",
    measure=measure_lab,
    figures=plots.FIGURES,
    params=PARAMS,
    settings=settings,
    validate=validate,
    wall_time="default about 42 s, --quick about 37 s",
)

# What the notebook calls: the same measurement as ``celery-lab run 04``.
run = partial(runner.run, LAB)

if __name__ == "__main__":
    sys.exit(run_script(LAB))
