"""Exercise 02, a reference answer: Celery's own autoretry with exponential backoff, a cap and
full jitter (each countdown drawn from ``randrange(min(cap, factor * 2**k) + 1)``)."""

from __future__ import annotations

from celery import shared_task

from labs.lab02_retry.tasks import TransientError, payment_api


@shared_task(bind=True, name="ex02.charge", autoretry_for=(TransientError,), retry_backoff=1,
             retry_backoff_max=2, retry_jitter=True, max_retries=5)
def charge(self, fail_times: int) -> str:
    return payment_api(self, fail_times)
