"""The fault matrix: every ack mode against every fault, one queue and worker per cell, all
cells of a trial in flight at once."""

from __future__ import annotations

import math
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

from labkit.session import LabSession
from labkit.workers import Worker
from labs.lab04_acks_late.tasks import FINISHES, RUNS, STARTS, work

MODES: dict[str, dict[str, Any]] = {
    "early": {},
    "late": {"task_acks_late": True},
    "late_reject": {"task_acks_late": True, "task_reject_on_worker_lost": True},
    "late_retry": {"task_acks_late": True, "task_retry_on_worker_lost": True},
}
FAULTS = ("child_kill", "worker_kill", "warm", "cold")
FRESH_WORKER_AFTER = ("worker_kill", "warm", "cold")


@dataclass
class Cell:
    mode: str
    fault: str

    @property
    def name(self) -> str:
        return f"{self.mode}-{self.fault}".replace("_", "")

    @property
    def queue(self) -> str:
        return f"lab04_{self.mode}_{self.fault}"


def cells(modes: list[str], faults: list[str]) -> list[Cell]:
    return [Cell(m, f) for m in modes for f in faults]





def inject(cell: Cell, worker: Worker, in_flight: list[dict[str, Any]]) -> list[str]:
    """The fault itself; returns the ids of the tasks it hit (running at that instant)."""
    if cell.fault == "child_kill":
        victim = in_flight[0]
        os.kill(victim["pid"], signal.SIGKILL)
        return [victim["id"]]
    if cell.fault == "worker_kill":
        worker.process.signal_group(signal.SIGKILL)  # the main process and its pool children
    elif cell.fault == "warm":
        worker.kill(signal.SIGTERM)
    elif cell.fault == "cold":
        worker.kill(signal.SIGQUIT)
    return [r["id"] for r in in_flight]


def worker_spec(cell: Cell, concurrency: int) -> dict[str, Any]:
    return {"concurrency": concurrency, "queues": [cell.queue], "prefetch": 1,
            "settings": MODES[cell.mode]}


def run_trial(session: LabSession, trial: int, workers: dict[str, Worker], the_cells: list[Cell], *,
              tasks: int, task_s: float, kill_fraction: float, concurrency: int,
              visibility_timeout: float, sweep: float, timeout: float
              ) -> tuple[list[dict[str, Any]], dict[str, Worker]]:
    """One trial of every cell at once. ``workers`` serve the cells (one each); returns the
    rows and the workers left standing, which serve the next trial."""
    sent = {c.name: [work.apply_async((task_s,), queue=c.queue) for _ in range(tasks)]
            for c in the_cells}
    ids = {name: {r.id for r in results} for name, results in sent.items()}

    # the fault lands kill_fraction of a task's duration after the cell's own first start,
    # whatever the other cells are doing
    deadline = time.monotonic() + timeout
    first_start: dict[str, float] = {}
    faults: dict[str, dict[str, Any]] = {}
    by_name = {c.name: c for c in the_cells}
    while len(faults) < len(the_cells):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no task started in cells {set(ids) - set(first_start)}")
        records = session.records(RUNS)
        finishes = session.counts(FINISHES)
        for run in records:
            for name, cell_ids in ids.items():
                if run["id"] in cell_ids and name not in first_start:
                    first_start[name] = run["t"]
        # one snapshot serves every cell due now, so the faults land together and on time
        for name, started in first_start.items():
            if name in faults or time.time() < started + kill_fraction * task_s:
                continue
            flying = [r for r in records if r["id"] in ids[name] and r["phase"] == "start"
                      and not finishes.get(r["id"])]
            t = time.time()
            victims = inject(by_name[name], workers[name], flying) if flying else []
            faults[name] = {"t": t, "victims": victims, "in_flight": len(flying),
                            "late_s": t - started - kill_fraction * task_s}
        time.sleep(0.005)
    session.step(f"trial {trial}: faults injected at {kill_fraction:.0%} of a task in "
                 f"{len(the_cells)} cells ({sum(len(f['victims']) for f in faults.values())} "
                 "tasks hit); fresh workers for the dead ones")
    fresh = [c for c in the_cells if c.fault in FRESH_WORKER_AFTER]
    started = session.start_workers({f"{c.name}-{trial}f": worker_spec(c, concurrency)
                                     for c in fresh})
    survivors = {c.name: workers[c.name] for c in the_cells if c.fault not in FRESH_WORKER_AFTER}
    survivors.update({c.name: w for c, w in zip(fresh, started, strict=True)})

    # settle: every task finished, or the last moment a redelivery could still finish (a
    # restored message needs its timeout, a sweep, a worker and then the queue ahead of it);
    # then at least one more visibility timeout after the fault, for a late duplicate
    last_fault = max(f["t"] for f in faults.values())
    latest = (max(last_fault + visibility_timeout + 2 * sweep, time.time())
              + (math.ceil(tasks / concurrency) + 1) * task_s + 1.0)
    all_ids = set().union(*ids.values())
    end = min(latest, time.time() + timeout)
    while time.time() < end:
        finishes = session.counts(FINISHES)
        if all(finishes.get(i) for i in all_ids):
            break
        time.sleep(0.1)
    time.sleep(max(0.0, last_fault + visibility_timeout + 2 * sweep + task_s + 0.3 - time.time()))

    starts, finishes = session.counts(STARTS), session.counts(FINISHES)
    runs = session.records(RUNS)
    rows = []
    for cell in the_cells:
        fault = faults[cell.name]
        for result in sent[cell.name]:
            mine = [r for r in runs if r["id"] == result.id]
            again = [r["t"] - fault["t"] for r in mine
                     if r["t"] > fault["t"] and (r["redelivered"] or r["retries"])]
            state = result.state
            rows.append({
                "trial": trial, "mode": cell.mode, "fault": cell.fault, "id": result.id,
                "victim": result.id in fault["victims"], "starts": starts.get(result.id, 0),
                "finishes": finishes.get(result.id, 0), "state": state,
                "exception": type(result.result).__name__ if state == "FAILURE" else "",
                "redelivered_runs": sum(1 for r in mine if r["redelivered"]),
                "retried_runs": sum(1 for r in mine if r["retries"]),
                "again_after_s": min(again) if again else None,
                "kill_fraction": kill_fraction, "in_flight_at_fault": fault["in_flight"],
                "fault_late_s": round(fault["late_s"], 4),
            })
    # the faulted workers: a warm/cold shutdown may still be exiting; killed ones are gone
    session.stop_workers([workers[c.name] for c in fresh], timeout=task_s + 5)
    return rows, survivors


def outcome(row: dict[str, Any]) -> str:
    if row["finishes"] == 0:
        return "lost"
    if row["finishes"] > 1:
        return "completed twice"
    return "once" if row["starts"] == 1 else "re-executed"
