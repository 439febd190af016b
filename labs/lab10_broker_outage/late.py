"""Part 4: a task running under ``task_acks_late`` when the broker connection drops.

Three workers, one slot each, prefetch 1 (a full prefetch: not in a BRPOP, so kombu 5.7's
room-in-prefetch failure stays out of it), acks_late, each with its own ``unacked`` keys and a
short visibility timeout, so that each one's redelivery is its own. One outage strikes all
three while each runs a held task:

- ``keep-after``: ``worker_cancel_long_running_tasks_on_connection_loss`` False (Celery 5's
  default), the task released once Redis is back;
- ``keep-during``: False, the task released while Redis is down: it ends while the
  acknowledgement cannot be sent;
- ``cancel``: True, the task released once Redis is back (if it is still running).

Counted by the tasks themselves in the record store: executions, runs that reached their end,
and where each message is at the end. What happens is read, not assumed.
"""

from __future__ import annotations

import signal
import time
import uuid
from typing import Any, NamedTuple

from labkit import broker_control
from labkit.polling import poll_until, wait_for
from labkit.redis_state import unacked_summary
from labkit.run_settings import visibility
from labkit.session import LabSession
from labkit.workers import Worker
from labs.lab10_broker_outage import restart
from labs.lab10_broker_outage.tasks import COUNTS, RUNS, hold, hold_bound_s

SWEEP_S = 0.25  # unacked_restore_interval: how often each worker looks for overdue messages


class Case(NamedTuple):
    cancel: bool  # worker_cancel_long_running_tasks_on_connection_loss
    release: str  # "during" the outage or "after" it


CASES = {"keep-after": Case(False, "after"), "keep-during": Case(False, "during"),
         "cancel": Case(True, "after")}


def queue(case: str) -> str:
    return f"lab10_late_{case.replace('-', '_')}"


def unacked_key(case: str) -> str:
    return f"unacked_{queue(case)}"


def worker_specs(records: dict[str, Any], visibility_timeout: float) -> dict[str, dict[str, Any]]:
    """One worker per case: its settings and its own unacked keys."""
    specs = {}
    for case, c in CASES.items():
        options = visibility(visibility_timeout, SWEEP_S, mutex_expire=5.0)
        options["broker_transport_options"].update(
            unacked_key=unacked_key(case), unacked_index_key=f"{unacked_key(case)}_index",
            unacked_mutex_key=f"{unacked_key(case)}_mutex")
        specs[f"late-{case}"] = {
            "concurrency": 1, "prefetch": 1, "queues": [queue(case)],
            "settings": {**records, **options, "task_acks_late": True,
                         "worker_cancel_long_running_tasks_on_connection_loss": c.cancel}}
    return specs


def _unacked_ids(s: LabSession, case: str) -> set[str]:
    with s.broker.client() as r:
        return {unacked_summary(raw)["id"] for raw in r.hvals(s.broker.key(unacked_key(case)))}


def late_round(s: LabSession, workers: dict[str, Worker], visibility_timeout: float,
               reconnect_s: float, timeout: float) -> dict[str, Any]:
    """``reconnect_s``: how long after Redis is back a live worker surely consumes again."""
    label = "late"
    gates = {case: f"lab10:gate:{uuid.uuid4().hex}" for case in CASES}
    for worker in workers.values():
        worker.wait_ready(timeout)
    broker_control.configure(s.broker, appendonly="yes", appendfsync="everysec")
    sent = {case: hold.apply_async((gates[case], hold_bound_s(timeout), f"{label}-{case}"),
                                   queue=queue(case))
            for case in CASES}
    ids = {case: r.id for case, r in sent.items()}

    def runs(case: str) -> list[dict[str, Any]]:
        return [r for r in s.records(RUNS) if r.get("label") == f"{label}-{case}"]

    wait_for(lambda: all(any(r.get("phase") == "started" for r in runs(c)) for c in CASES),
             timeout, "the held tasks did not all start")
    delivered_at = {case: min(r["started"] for r in runs(case)) for case in CASES}

    def release_during(_s: LabSession) -> dict[str, Any]:
        """Redis is down: the keep-during task ends now, its acknowledgement has nowhere to go."""
        restart.set_gate(s, gates["keep-during"])
        ended = poll_until(lambda: any(r.get("phase") == "finished" for r in runs("keep-during")),
                           timeout)
        return {"keep_during_ended_while_down": bool(ended), "at": time.time()}

    struck = restart.strike(s, list(workers.values()), signal.SIGKILL, timeout, release_during)
    for case, c in CASES.items():
        if c.release == "after":
            restart.set_gate(s, gates[case])
    for case in CASES:
        wait_for(lambda c=case: restart.queue_is_bound(s, queue(c)), timeout,
                 f"the {case} worker did not declare its queue again")
    # long enough for every redelivery the visibility timeout allows: from the latest delivery,
    # the timeout, two sweeps, and a reconnect's pace behind it
    settle = max(delivered_at.values()) + visibility_timeout + 2 * SWEEP_S + reconnect_s
    time.sleep(max(0.0, settle - time.time()))
    wait_for(lambda: all(_quiet(runs(c), struck.up_at) for c in CASES), timeout,
             "a task run again after the restart did not finish")
    settled_at = time.time()

    counts = s.counts(COUNTS)
    out = {}
    for case, c in CASES.items():
        mine = runs(case)
        worker = workers[f"late-{case}"]
        lines = [line for _, line in restart.log_lines(worker, struck.marks[worker.hostname])]
        starts = sorted(r["started"] for r in mine if r.get("phase") == "started")
        out[case] = {
            "cancel_on_connection_loss": c.cancel, "released": c.release,
            "executions": counts.get(ids[case], 0),
            "finished": sum(r.get("phase") == "finished" for r in mine),
            "still_unacked": ids[case] in _unacked_ids(s, case),
            "state": sent[case].state,  # the result store is the Redis that went away
            "stored_error": (type(sent[case].result).__name__
                             if sent[case].state in ("FAILURE", "REVOKED") else None),
            "reran_after_delivery_s": (round(starts[1] - delivered_at[case], 3)
                                       if len(starts) > 1 else None),
            "first_finished_at": min((r["t"] for r in mine if r.get("phase") == "finished"),
                                     default=None),
            "delivered_at": delivered_at[case],
            "log": {"terminating": sum("Terminating it instead" in line for line in lines),
                    "worker_lost": sum("WorkerLostError" in line for line in lines)},
        }
    return {"visibility_timeout": visibility_timeout, "sweep_s": SWEEP_S, "cases": out,
            "settled_at": settled_at,
            "down_at": struck.down_at, "up_at": struck.up_at,
            "during": struck.while_down, "aof_written_before_the_kill": struck.aof_written}


def _quiet(runs: list[dict[str, Any]], up_at: float) -> bool:
    """Every execution that started after the restart has reached its end (one cut off by the
    outage never records an end: it started before)."""
    finished = {r["started"] for r in runs if r.get("phase") == "finished"}
    return all(r["started"] in finished for r in runs
               if r.get("phase") == "started" and r["started"] > up_at)
