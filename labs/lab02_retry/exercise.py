"""Exercise 02: retry a flaky call with exponential backoff, capped, with jitter.

``charge`` calls a payment API that times out (``TransientError``) a few times, then answers.
Make the task retry on ``TransientError`` with exponential backoff: at most 1 s before the first
retry, 2 s before the second, doubling, but never more than 2 s (the cap), with full jitter
(each wait drawn between 0 and that bound), at most 5 retries; and make it finish once. Keep the
task's name and signature: the grader sends ``ex02.charge`` with ``fail_times``.

Check it: ``celery-lab check 02``. Read first: labs/lab02_retry/README.md (backoff and jitter).
"""

from __future__ import annotations

from celery import shared_task

from labs.lab02_retry.tasks import TransientError, payment_api


@shared_task(bind=True, name="ex02.charge", max_retries=5)
def charge(self, fail_times: int) -> str:
    try:
        return payment_api(self, fail_times)
    except TransientError as exc:
        # The same short wait every time: a struggling API gets hammered in lockstep.
        raise self.retry(exc=exc, countdown=0.5) from exc
