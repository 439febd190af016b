"""Exercise 13: deploy without losing a task or running one twice.

The grader runs a rolling restart of three workers while its publisher keeps a steady stream of
``lab13.work`` tasks flowing (some short, one in three ``long_s`` long; each applies a side
effect when it starts, like charging a card, then works). Each old worker is replaced as an
orchestrator does it: a new worker starts, then the old one gets SIGTERM while it runs a long
task, ``grace_s`` seconds to exit, then SIGKILL to everything left.

Choose the procedure in ``PROCEDURE`` so that no task is lost, none waits stranded for the
visibility timeout, and no side effect is applied twice:

- ``remap_sigterm``: start the workers with ``REMAP_SIGTERM=SIGQUIT`` (SIGTERM then starts a
  cold shutdown, soft if a soft timeout is set);
- ``settings``: the workers' Celery settings (``task_acks_late``,
  ``worker_soft_shutdown_timeout``, ...);
- ``grace_s``: the orchestrator's grace period (``terminationGracePeriodSeconds``), at most 30;
- ``idempotent``: the task guards its side effect by its task id.

Check it: ``celery-lab check 13``. Read first: labs/lab13_deploys/README.md (the signal matrix,
then the checklist).
"""

from __future__ import annotations

from typing import Any

PROCEDURE: dict[str, Any] = {"remap_sigterm": False, "settings": {}, "grace_s": 1.0, "idempotent": False}
