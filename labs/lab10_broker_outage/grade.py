"""Exercise 10's grader: the learner's persistence and worker settings, a burst of orders, a
SIGKILL of Redis just after an order started, a restart on the same data; then, counted by the
tasks (in the record store, which the restart does not touch): what ran, what ran twice, and
what still waits in the broker."""

from __future__ import annotations

import signal
import time
from typing import Any

from labkit import broker_control
from labkit.errors import SetupError
from labkit.exercise import Exercise, Learner
from labkit.params import Param
from labkit.polling import poll_until, wait_for
from labkit.session import LabSession
from labs.lab10_broker_outage import restart
from labs.lab10_broker_outage.tasks import COUNTS, RUNS, job

QUEUE = "ex10"
MAX_REDELIVERY_S = 10.0  # the longest the grader waits for a redelivery
ALLOWED = {"appendonly": ("yes", "no"), "appendfsync": ("everysec", "always")}
PARAMS = {
    "orders": Param(5, "orders in the burst", min=3, max=20),
    "work_s": Param(1.0, "seconds each order works", min=0.5, max=2),
    "timeout": Param(20.0, "bound on every wait, seconds", min=10),
}


def persistence(learner: Learner) -> dict[str, str]:
    chosen = dict(getattr(learner.module, "PERSISTENCE", {}) or {})
    for key, value in chosen.items():
        if value not in ALLOWED.get(key, ()):
            raise SetupError(f"PERSISTENCE[{key!r}] = {value!r}: choose "
                             + ("one of " + ", ".join(ALLOWED[key]) if key in ALLOWED
                                else "among " + ", ".join(ALLOWED)))
    return chosen


def grade(s: LabSession, learner: Learner) -> None:
    p = s.params
    chosen = persistence(learner)
    records = s.start_record_store()
    options = learner.worker_options()
    if chosen:
        broker_control.configure(s.broker, **chosen)
    settings = {**options["settings"], **records, **dict(getattr(learner.module, "SETTINGS", {}) or {})}
    worker = s.start_worker("w1", concurrency=1, queues=[QUEUE], env=options["env"], settings=settings)
    label = "ex10"
    orders = [job.apply_async((n, label, p.work_s), queue=QUEUE).id for n in range(p.orders)]

    # struck just after the second order started: one order done, one running, the rest waiting
    wait_for(lambda: s.counts(COUNTS).get(orders[1], 0) >= 1, p.timeout,
                  "the second order did not start")
    struck = restart.strike(s, worker, signal.SIGKILL, p.timeout)
    mark, back = struck.mark, struck.up_at
    # the burst is done once every order ran to its end, or once the worker, back and bound again, has had
    # time for every order still there (each at most work_s), a first retry, and the redelivery
    # the learner's visibility timeout allows (capped); a worker that died is not waited for
    alive = worker.process.alive
    latest = back + 2.5 + redelivery_s(learner) + (p.orders + 1) * p.work_s
    poll_until(lambda: restart.queue_is_bound(s, QUEUE) or not alive(), latest - time.time())
    poll_until(lambda: finished(s, orders) or not alive(), latest - time.time())
    # a duplicate comes when a message left unacknowledged is handed back: wait out the
    # learner's redelivery (when it is short enough to matter), the reconnect and one order
    redelivery = redelivery_s(learner)
    time.sleep(max(0.5, back + 2.5 + redelivery + p.work_s - time.time()) if redelivery else 0.5)
    counts = s.counts(COUNTS)
    left = restart.where_tasks_are(s, QUEUE, set(orders))
    gave_up = [line for _, line in restart.log_lines(worker, mark) if restart.UNRECOVERABLE in line]
    check_burst(s, orders, counts, left,
                gave_up[0][gave_up[0].index(restart.UNRECOVERABLE):][:160] if gave_up
                else None if alive() else worker.process.log_tail(1))


def finished(s: LabSession, orders: list[str]) -> bool:
    """Every order has run to its end (its record is written when it ends; counting starts
    would end the burst while the last order still runs, its message not yet acknowledged)."""
    ended = {r["id"] for r in s.records(RUNS)}
    return all(i in ended for i in orders)


def redelivery_s(learner: Learner) -> float:
    """How long the learner's settings make an unacknowledged message wait before a worker
    restores it (the visibility timeout, then up to two sweeps); 0 beyond MAX_REDELIVERY_S,
    since a redelivery that late is outside any burst the grader waits for."""
    options = (getattr(learner.module, "SETTINGS", {}) or {}).get("broker_transport_options") or {}
    sweep = (float(options.get("unacked_restore_interval", 10))
             * float(options.get("unacked_restore_throttle", 10)))
    wait = float(options.get("visibility_timeout", 3600)) + 2 * sweep
    return wait if wait <= MAX_REDELIVERY_S else 0.0


def check_burst(s: Any, orders: list[str], counts: dict[str, int], left: dict[str, str],
                worker_died: str | None = None) -> None:
    never = [i for i in orders if not counts.get(i)]
    twice = {i: n for i in orders if (n := counts.get(i, 0)) > 1}
    waiting = sorted(i for i, place in left.items() if place in ("unacked", "queued"))
    died = f" (your worker did not survive the restart: {worker_died})" if worker_died else ""
    s.check("every_order_ran", "every order of the burst ran, although Redis was SIGKILLed and "
            f"restarted in the middle of it{died}",
            {"orders": len(orders), "never_ran": len(never), "worker_died": worker_died},
            "0 orders never ran", not never)
    s.check("no_order_ran_twice", "no order ran twice",
            {"ran_twice": twice, "executions": sum(counts.get(i, 0) for i in orders)},
            "0 orders ran twice", not twice)
    s.check("nothing_is_left_waiting", "when the burst is done nothing of it waits in Redis (a "
            "message left in unacked runs again when the visibility timeout passes)",
            {"still_in_redis": len(waiting), "where": {i: left[i] for i in waiting}},
            "0 messages of the burst left in the queue or in unacked", not waiting)


EXERCISE = Exercise(
    lab_id="10_broker_outage",
    task="choose the broker's persistence and the worker's settings so that a Redis restart in "
         "the middle of a burst loses nothing and runs nothing twice",
    read_first="labs/lab10_broker_outage/README.md (what a restart does to queued, prefetched and "
               "running tasks)",
    time_box_min=15,
    grade=grade,
    params=PARAMS,
    embedded_only=True,
    hints={
        "every_order_ran": "where does a queued message live, and what survives a SIGKILL of Redis? "
                           "What does the worker do with the messages it had reserved when the "
                           "connection drops, and when do they come back? And did your worker "
                           "survive at all (Lab 10: a worker with room in its prefetch)?",
        "no_order_ran_twice": "which messages can be handed out again, and when? Is the order that "
                              "was running when Redis went acknowledged before or after it ran?",
        "nothing_is_left_waiting": "a message the worker took but never acknowledged stays in kombu's "
                                   "unacked hash: the ones it reserved ahead, and the one it ran, if "
                                   "its acknowledgement was due while the worker was reconnecting",
    },
)
