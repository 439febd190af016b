"""After a whole-worker SIGKILL with acks_late: when does the work come back, where does it
wait meanwhile, and what does a redelivered side effect do without and with a guard?"""

from __future__ import annotations

import time
from typing import Any

from labkit import run_settings
from labkit.redis_state import queue_length, snapshot
from labkit.sampler import Sampler
from labkit.session import LabSession
from labs.lab04_acks_late.tasks import FINISHES, RUNS, SIDE_EFFECTS, STARTS, charge, work

QUEUE = "lab04_redelivery"
# a worker killed inside a sweep holds kombu's sweep mutex until it expires (300 s by default)
MUTEX_EXPIRE_S = 2


def after_kill(session: LabSession, name: str, visibility_timeout: float, sweep: float,
               task_s: float, tail_s: float, with_charges: bool, timeout: float) -> dict[str, Any]:
    """Two tasks (and, once, two charges) in flight; SIGKILL the worker; a fresh one at once."""
    settings = {"task_acks_late": True,
                **run_settings.visibility(visibility_timeout, sweep, MUTEX_EXPIRE_S)}
    worker = session.start_worker(f"{name}a", concurrency=4, queues=[QUEUE], prefetch=1,
                                  settings=settings)
    sent = [work.apply_async((task_s,), queue=QUEUE) for _ in range(2)]
    charges = []
    if with_charges:
        charges = [charge.apply_async((f"order-{name}-plain", tail_s, False), queue=QUEUE),
                   charge.apply_async((f"order-{name}-guarded", tail_s, True), queue=QUEUE)]
    ids = {r.id for r in sent + charges}
    deadline = time.monotonic() + timeout
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = [r for r in session.records(RUNS) if r["id"] in ids]
        if len(runs) == len(ids):
            break
        time.sleep(0.01)
    delivered = {r["id"]: r for r in runs}
    # strike a quarter of the way into the shortest task: the work has begun (and the charges
    # are made), well before any of it can finish
    lead = min(0.1, min(task_s, tail_s if with_charges else task_s) / 8)
    time.sleep(lead)

    def where() -> dict[str, Any]:
        snap = snapshot(session.broker, queues=(QUEUE,))
        held = [i for i in snap["unacked_messages"].values() if i["id"] in ids]
        return {"unacked": len(held), "queued": snap["queues"][QUEUE],
                "scores": {k: v for k, v in snap["unacked_index"].items()
                           if snap["unacked_messages"].get(k, {}).get("id") in ids},
                "score_by_id": {snap["unacked_messages"][k]["id"]: v
                                for k, v in snap["unacked_index"].items()
                                if snap["unacked_messages"].get(k, {}).get("id") in ids}}

    with Sampler(where, interval=0.05) as sampler:
        time.sleep(lead)
        fault = time.time()
        worker.kill_all()
        worker.wait_exit(5)
        # the killed worker can finish nothing more and the fresh one has not started: what has
        # not finished now was in flight at the fault (what a late kill let finish is not)
        finished_at_fault = session.counts(FINISHES)
        fresh = session.start_worker(f"{name}b", concurrency=4, queues=[QUEUE], prefetch=1,
                                     settings=settings)
        fresh_ready = time.time()
        while time.monotonic() < deadline:
            finishes = session.counts(FINISHES)
            if all(finishes.get(i) for i in ids):
                break
            time.sleep(0.05)
        time.sleep(0.2)
    session.stop_workers([worker, fresh])
    starts, finishes = session.counts(STARTS), session.counts(FINISHES)
    again = [r for r in session.records(RUNS) if r["id"] in ids and r["t"] > fault]
    effects = session.counts(SIDE_EFFECTS)
    return {
        "name": name, "visibility_timeout": visibility_timeout, "sweep": sweep,
        "fault": fault, "fresh_ready": fresh_ready,
        "in_flight": sorted(i for i in ids if not finished_at_fault.get(i)),
        "delivered": {i: run["t"] for i, run in delivered.items()},
        # the unacked_index score of each message the killed worker held: the moment kombu
        # counts its visibility timeout from (a fresh worker's deliveries score after the fault)
        "scored": {i: min((row["value"]["score_by_id"][i] for row in sampler.rows
                           if row["value"]["score_by_id"].get(i, fault) < fault), default=None)
                   for i in ids},
        "again": [{"id": r["id"], "t": r["t"], "redelivered": r["redelivered"],
                   "hostname": r["hostname"]} for r in again],
        "starts": {i: starts.get(i, 0) for i in ids},
        "finishes": {i: finishes.get(i, 0) for i in ids},
        "charges": [{"id": c.id, "guarded": g, "side_effects": effects.get(order, 0),
                     "starts": starts.get(c.id, 0)}
                    for c, g, order in zip(charges, (False, True),
                                           (f"order-{name}-plain", f"order-{name}-guarded"),
                                           strict=False)],
        "samples": [{"t": s["t"], **s["value"]} for s in sampler.rows],
        "queue_left": queue_length(session.broker, QUEUE),
    }

