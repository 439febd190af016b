"""Exercise 13, a reference answer: a soft shutdown. SIGTERM is remapped to a cold shutdown that
first waits ``worker_soft_shutdown_timeout`` for short tasks to finish; what still runs is
cancelled and, with ``task_acks_late``, goes back to the queue at once, where another worker
runs it again from the start. The side effect runs again too, so the task guards it by its id.
The grace covers the soft timeout plus the worker's exit (Lab 13 measured up to ~2.5 s).

The other right answer: a plain warm shutdown with a grace longer than the longest task plus
the exit (here 2.5 s + a few seconds); slower to deploy, and it needs no idempotency."""

from __future__ import annotations

from typing import Any

PROCEDURE: dict[str, Any] = {
    "remap_sigterm": True,
    "settings": {"task_acks_late": True, "worker_soft_shutdown_timeout": 1.0},
    "grace_s": 7.0,
    "idempotent": True,
}
