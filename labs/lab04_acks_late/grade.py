"""Exercise 04's grader: the learner's ``ex04.pay`` under Lab 04's faults (a pool child
SIGKILLed, the whole worker SIGKILLed), each on its own worker and queue, struck halfway through
the receipt; counted by the tasks themselves: finishes per task, charges per card."""

from __future__ import annotations

import math
import time
from typing import Any

from labkit import run_settings
from labkit.exercise import Exercise, Learner
from labkit.params import Param
from labkit.session import LabSession
from labs.lab04_acks_late.matrix import FRESH_WORKER_AFTER, Cell, inject
from labs.lab04_acks_late.tasks import CARD_CHARGES, FINISHES, RUNS

FAULTS = ("child_kill", "worker_kill")
VT, SWEEP = 2.0, 0.5  # visibility timeout and restore sweep of the graded workers
PARAMS = {
    "orders": Param(3, "payments per fault", min=2, max=20),
    "work_s": Param(1.0, "the receipt's work after the charge, seconds", min=0.5, max=10),
}


def grade(s: LabSession, learner: Learner) -> None:
    p = s.params
    options = learner.worker_options()
    settings = {**options["settings"], **run_settings.visibility(VT, SWEEP)}
    cells = [Cell("exercise", fault) for fault in FAULTS]

    def spec(cell: Cell) -> dict[str, Any]:
        return {"concurrency": 2, "prefetch": 1, "queues": [cell.queue], "settings": settings,
                "env": options["env"]}

    workers = dict(zip(FAULTS, s.start_workers({c.name: spec(c) for c in cells}), strict=True))
    orders = {c.fault: [f"{c.fault}-order-{i}" for i in range(p.orders)] for c in cells}
    sent = {c.fault: [s.app.send_task("ex04.pay", args=[order, p.work_s], queue=c.queue)
                      for order in orders[c.fault]] for c in cells}
    ids = {fault: {r.id for r in results} for fault, results in sent.items()}

    struck: dict[str, float] = {}
    deadline = time.monotonic() + 30
    while len(struck) < len(cells) and time.monotonic() < deadline:
        runs, finishes = s.records(RUNS), s.counts(FINISHES)
        for cell in cells:
            mine = [r for r in runs if r["id"] in ids[cell.fault] and not finishes.get(r["id"])]
            if cell.fault in struck or not mine or time.time() < mine[0]["t"] + p.work_s / 2:
                continue
            inject(cell, workers[cell.fault], mine)
            struck[cell.fault] = time.time()
        time.sleep(0.01)
    fresh = [c for c in cells if c.fault in FRESH_WORKER_AFTER and c.fault in struck]
    s.start_workers({f"{c.name}-fresh": spec(c) for c in fresh})

    # until every payment finished, or the latest a redelivery could (a visibility timeout, two
    # sweeps, the queue behind it); then one more timeout for a late duplicate
    last = max(struck.values(), default=time.time())
    latest = last + VT + 2 * SWEEP + (math.ceil(p.orders / 2) + 1) * p.work_s + 2
    all_ids = set().union(*ids.values())
    while time.time() < latest and not all(s.counts(FINISHES).get(i) for i in all_ids):
        time.sleep(0.1)
    time.sleep(max(0.0, last + VT + 2 * SWEEP + p.work_s + 0.5 - time.time()))
    check_payments(s, orders, sent, s.counts(FINISHES), s.counts(CARD_CHARGES), struck)


def check_payments(s: LabSession, orders: dict[str, list[str]], sent: dict[str, list[Any]],
                   finishes: dict[str, int], charges: dict[str, int],
                   struck: dict[str, float]) -> None:
    what = {"child_kill": "a pool child", "worker_kill": "the whole worker"}
    for fault in FAULTS:
        unfinished = [r.id for r in sent[fault] if not finishes.get(r.id)]
        uncharged = [o for o in orders[fault] if not charges.get(o)]
        twice = {o: n for o in orders[fault] if (n := charges.get(o, 0)) > 1}
        s.check(f"nothing_lost_when_{fault.replace('_kill', '')}_is_killed",
                f"when {what[fault]} is SIGKILLed mid-payment, every payment still finishes and "
                "every card is charged", {"struck": fault in struck,
                                          "unfinished": len(unfinished),
                                          "never_charged": uncharged},
                "struck, 0 unfinished, 0 never charged",
                fault in struck and not unfinished and not uncharged)
        s.check(f"no_double_charge_when_{fault.replace('_kill', '')}_is_killed",
                f"when {what[fault]} is SIGKILLed mid-payment, no card is charged twice",
                {"charged_more_than_once": twice}, "0 cards charged twice", not twice)


EXERCISE = Exercise(
    lab_id="04_acks_late",
    task="make a payment task safe under a SIGKILL of one pool child and of the whole worker: "
         "0 payments lost, 0 cards charged twice",
    read_first="labs/lab04_acks_late/README.md (the fault matrix, redelivery, idempotency)",
    time_box_min=20,
    grade=grade,
    params=PARAMS,
    hints={
        "nothing_lost_when_child_is_killed": "with the default early ack the message is gone "
                                             "before the work is done; and with a late ack, "
                                             "what does Celery do when the child dies?",
        "nothing_lost_when_worker_is_killed": "a message acknowledged only after the work "
                                              "comes back when its worker vanishes",
        "no_double_charge_when_child_is_killed": "a redelivered task runs from the top again: "
                                                 "how does it know the card was charged?",
        "no_double_charge_when_worker_is_killed": "a redelivered task runs from the top again: "
                                                  "how does it know the card was charged?",
    },
)
