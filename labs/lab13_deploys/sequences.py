"""Part 1: one worker, one signal sequence. What an orchestrator does to a worker (a signal, a
grace period, then SIGKILL to every process left), against each of Celery's shutdown modes and
both ack modes, and where every task the worker held ends up."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from labkit.polling import wait_for
from labkit.redis_state import task_places
from labkit.session import LabSession
from labkit.workers import Worker
from labs.lab13_deploys.tasks import EFFECTS, FINISHES, RELEASE, RUNS, STARTS, work

ACKS: dict[str, dict[str, Any]] = {"early": {}, "late": {"task_acks_late": True}}


@dataclass(frozen=True)
class Sequence:
    """What the orchestrator sends, how the worker is configured, and how long it waits."""

    name: str
    label: str
    signal: int
    remap: bool = False  # REMAP_SIGTERM=SIGQUIT in the worker's environment (read by billiard)
    soft: str | None = None  # worker_soft_shutdown_timeout: "short" or "long" against the task
    grace: str = "long"  # the wait before SIGKILL: "short" or "long" against the task


SEQUENCES = (
    Sequence("term_kill", "SIGTERM, grace < task, SIGKILL", signal.SIGTERM, grace="short"),
    Sequence("term", "SIGTERM, grace > task", signal.SIGTERM),
    Sequence("quit", "SIGQUIT", signal.SIGQUIT),
    Sequence("int", "SIGINT (one Ctrl-C)", signal.SIGINT),
    Sequence("remap", "SIGTERM + REMAP_SIGTERM=SIGQUIT", signal.SIGTERM, remap=True),
    Sequence("soft_short", "remapped SIGTERM, soft timeout < task", signal.SIGTERM, remap=True,
             soft="short"),
    Sequence("soft_long", "remapped SIGTERM, soft timeout > task", signal.SIGTERM, remap=True,
             soft="long"),
)
BY_NAME = {s.name: s for s in SEQUENCES}


@dataclass(frozen=True)
class Cell:
    sequence: Sequence
    ack: str

    @property
    def name(self) -> str:
        return f"{self.sequence.name}-{self.ack}".replace("_", "")

    @property
    def queue(self) -> str:
        return f"lab13_{self.sequence.name}_{self.ack}"


def cells(sequences: list[str], acks: list[str]) -> list[Cell]:
    return [Cell(BY_NAME[s], a) for s in sequences for a in acks]


def worker_spec(cell: Cell, p: Any) -> dict[str, Any]:
    settings = dict(ACKS[cell.ack])
    if cell.sequence.soft:
        short = cell.sequence.soft == "short"
        settings["worker_soft_shutdown_timeout"] = p.soft_short if short else p.soft_long
    return {"concurrency": 1, "queues": [cell.queue], "prefetch": p.prefetch, "settings": settings,
            "env": {"REMAP_SIGTERM": "SIGQUIT"} if cell.sequence.remap else None}


def grace_of(cell: Cell, p: Any) -> float:
    return p.grace_short if cell.sequence.grace == "short" else p.grace_long


def grace_then_kill(worker: Worker, grace_s: float) -> tuple[int | None, float | None]:
    """What an orchestrator does after its signal: wait ``grace_s`` for the worker to exit, then
    SIGKILL its whole process group. Returns the exit code and, if it came to that, when the
    SIGKILL was sent (``time.time()``)."""
    code = worker.wait_exit(grace_s)
    if code is not None:
        return code, None
    killed_at = time.time()
    worker.kill_all(signal.SIGKILL)
    return worker.wait_exit(5.0), killed_at


def locations(s: LabSession, *queues: str) -> dict[str, str]:
    """Task id -> ``queue`` or ``unacked`` (``labkit.redis_state.task_places``)."""
    return task_places(s.broker, *queues)


def shutdowns_said(worker: Worker) -> list[str]:
    """What the worker printed as it began to shut down: "Warm" or "Cold", once per signal it
    acted on (``worker: Warm shutdown (MainProcess)``)."""
    text = worker.process.log_path.read_text(errors="replace")
    return [line.split("worker: ", 1)[1].split()[0] for line in text.splitlines()
            if line.startswith("worker: ") and " shutdown (MainProcess)" in line]


def restoring_lines(worker: Worker) -> list[int]:
    """The N of every "Restoring N unacknowledged message(s)" kombu wrote to the worker's log."""
    text = worker.process.log_path.read_text(errors="replace")
    return [int(line.split("Restoring ", 1)[1].split()[0]) for line in text.splitlines()
            if "unacknowledged message(s)" in line and "Restoring " in line]


def load(s: LabSession, cell: Cell, p: Any, timeout: float) -> dict[str, Any]:
    """One task to run, then ``queued`` more behind it (prefetched) and ``eta`` with a countdown
    (held by the worker's timer); returns once the worker holds them all."""
    # held: it ends when the lab releases it, task_s - strike_s after the signal, however long
    # the rest of the loading took on a busy machine
    running = work.apply_async((p.task_s + p.timeout, False, True), queue=cell.queue,
                               ignore_result=True).id
    started = wait_for(lambda: next((r["t"] for r in s.records(RUNS) if r["id"] == running), None),
                       timeout, f"the first task of {cell.name} to start", interval=0.01)
    # the ETA tasks first: a worker raises its prefetch for each one it takes, but cannot take
    # one while its prefetch is already full
    eta = [work.apply_async((p.task_s,), queue=cell.queue, countdown=p.eta_countdown,
                            ignore_result=True).id for _ in range(p.eta)]
    queued = [work.apply_async((p.task_s,), queue=cell.queue, ignore_result=True).id
              for _ in range(p.queued)]
    held = 1 + p.queued + p.eta if cell.ack == "late" else p.queued + p.eta
    wait_for(lambda: sum(1 for w in locations(s, cell.queue).values() if w == "unacked") == held,
             timeout, f"the worker of {cell.name} to hold {held} messages", interval=0.01)
    return {"running": running, "started": started, "queued": queued, "eta": eta}


def release(s: LabSession, queue: str) -> None:
    with s.broker.client() as r:
        r.set(s.broker.key(f"{RELEASE}:{queue}"), 1)


def strike(s: LabSession, cell: Cell, worker: Worker, sent: dict[str, Any], p: Any) -> dict[str, Any]:
    """The orchestrator: the signal ``strike_s`` into the running task (or at once, if loading
    took longer), then up to the grace period for the worker to exit, then SIGKILL to its whole
    process group. The running task ends ``task_s - strike_s`` after the signal, unless it was
    cancelled or killed first."""
    time.sleep(max(0.0, sent["started"] + p.strike_s - time.time()))
    before = locations(s, cell.queue)
    left = p.task_s - p.strike_s
    t0 = time.time()
    worker.kill(cell.sequence.signal)
    ends = threading.Timer(left, release, (s, cell.queue))
    ends.start()
    try:
        code, killed_at = grace_then_kill(worker, grace_of(cell, p))
        exited = time.time()
    finally:
        ends.join()
    return {"t_signal": t0, "exit_s": exited - t0, "killed": killed_at is not None, "exit_code": code,
            "left_s": left, "kill_s": killed_at - t0 if killed_at is not None else None, "before": before}


def run(s: LabSession, the_cells: list[Cell], p: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every cell at once (one worker each): a row per task a worker held, and how each exited."""
    workers = dict(zip([c.name for c in the_cells], s.start_workers(
        {c.name: worker_spec(c, p) for c in the_cells}, ready_timeout=p.timeout + 10), strict=True))
    with ThreadPoolExecutor(len(the_cells)) as pool:
        sent = dict(zip([c.name for c in the_cells],
                        pool.map(lambda c: load(s, c, p, p.timeout), the_cells), strict=True))
        struck = dict(zip([c.name for c in the_cells],
                          pool.map(lambda c: strike(s, c, workers[c.name], sent[c.name], p), the_cells),
                          strict=True))
    starts, finishes, effects = s.counts(STARTS), s.counts(FINISHES), s.counts(EFFECTS)
    runs = s.records(RUNS)
    rows = []
    for cell in the_cells:
        after = locations(s, cell.queue)
        hit = struck[cell.name]
        ended = [r["t"] for r in runs if r["id"] == sent[cell.name]["running"] and r["phase"] == "finish"]
        mine = sent[cell.name]
        for role, ids in (("running", [mine["running"]]), ("prefetched", mine["queued"]),
                          ("eta", mine["eta"])):
            for task_id in ids:
                rows.append({
                    "cell": cell.name, "sequence": cell.sequence.name, "ack": cell.ack, "role": role,
                    "id": task_id, "before": hit["before"].get(task_id, "gone"),
                    "after": after.get(task_id, "gone"), "starts": starts.get(task_id, 0),
                    "finishes": finishes.get(task_id, 0), "effects": effects.get(task_id, 0),
                })
        hit["running_ended_s"] = (min(ended) - hit["t_signal"]) if ended else None
        hit["restoring"] = restoring_lines(workers[cell.name])
        hit["said"] = shutdowns_said(workers[cell.name])
    exits = [{"cell": c.name, "sequence": c.sequence.name, "ack": c.ack,
              **{k: v for k, v in struck[c.name].items() if k != "before"},
              "unacked_before": sum(1 for w in struck[c.name]["before"].values() if w == "unacked"),
              "unacked_after": sum(1 for w in locations(s, c.queue).values() if w == "unacked")}
             for c in the_cells]
    s.stop_workers(list(workers.values()), timeout=2)
    return rows, exits


def outcome(row: dict[str, Any]) -> str:
    """What became of one task, from its counters and where its message is."""
    if row["after"] == "queue":
        return "ran, and restored (runs again)" if row["finishes"] else "restored at once"
    if row["after"] == "unacked":
        return "ran, and waits for the visibility timeout" if row["finishes"] else \
            "waits for the visibility timeout"
    if row["finishes"] > 1:
        return "ran twice"
    return "finished" if row["finishes"] == 1 else "lost"
