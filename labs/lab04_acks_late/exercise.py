"""Exercise 04: a payment task that survives a SIGKILL: nothing lost, no card charged twice.

The grader runs ``ex04.pay`` on real workers and kills them while it runs: once a single pool
child (the OOM killer's favourite), once the whole worker (a lost host). Make every order end
paid, each card charged exactly once, under both faults. You may change the task's options and
its body; keep ``begin`` first and ``write_receipt`` last (they are the grader's stopwatch), and
keep the name and signature. ``labkit.taskside.store(self)`` gives a Redis client and the run's
key prefix, if you need somewhere to remember things.

Check it: ``celery-lab check 04``. Read first: labs/lab04_acks_late/README.md (the fault matrix,
then idempotency).
"""

from __future__ import annotations

from celery import shared_task

from labs.lab04_acks_late.tasks import begin, charge_card, write_receipt


@shared_task(bind=True, name="ex04.pay")
def pay(self, order: str, work_s: float) -> str:
    begin(self)
    charge_card(self, order)
    write_receipt(self, work_s)
    return "paid"
