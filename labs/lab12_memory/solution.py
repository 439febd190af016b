"""Exercise 12, a reference answer: the growth per task is known (8 MiB) and the allowance is
40 MiB, so a process may run 5 tasks: ``worker_max_tasks_per_child = 5`` bounds what a process
keeps exactly. ``worker_max_memory_per_child`` would not: it is checked after each task, so a
process goes over it by one task's growth before it is replaced, and it counts the process's
whole RSS (the interpreter and Celery included), not only what the task kept."""

from __future__ import annotations

from typing import Any

WORKER: dict[str, Any] = {"settings": {"worker_max_tasks_per_child": 5}}
