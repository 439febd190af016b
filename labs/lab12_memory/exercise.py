"""Exercise 12: keep a leaking task's pool processes small, without recycling them needlessly.

``lab12.leak`` keeps ``leak_mib`` MiB more in its process every time it runs (a cache that
never empties, a list that only grows: the classic leak). The grader runs it many times on one
worker of two pool processes, configured by ``WORKER``'s Celery ``settings`` and reads what each
run recorded: its process, and how much that process had kept.

Make sure that:

1. no pool process ever keeps more than ``allow_mib`` MiB (the grader prints both numbers);
2. processes are not replaced needlessly: each new process costs a start (Lab 12 measured it),
   so on average a process must run at least 60 % of the tasks that fit in ``allow_mib``.

Check it: ``celery-lab check 12``. Read first: labs/lab12_memory/README.md (when exactly is a
process replaced, and is a memory limit a cap?).
"""

from __future__ import annotations

from typing import Any

WORKER: dict[str, Any] = {"settings": {}}
