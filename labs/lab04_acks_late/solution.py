"""Exercise 04, a reference answer: acknowledge after the work, hand the message back when the
pool child dies (a whole-worker loss leaves it unacked until the visibility timeout), and an
idempotency key per order, so a redelivered payment does not charge again."""

from __future__ import annotations

from celery import shared_task

from labkit.taskside import store
from labs.lab04_acks_late.tasks import begin, charge_card, write_receipt


@shared_task(bind=True, name="ex04.pay", acks_late=True, reject_on_worker_lost=True)
def pay(self, order: str, work_s: float) -> str:
    begin(self)
    client, prefix = store(self)
    if client.set(f"{prefix}ex04:charged:{order}", self.request.id, nx=True):
        charge_card(self, order)
    write_receipt(self, work_s)
    return "paid"
