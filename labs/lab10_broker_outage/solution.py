"""Exercise 10, a reference answer.

- AOF keeps the queue through a SIGKILL of Redis: it writes each command to the file (the
  kernel's page cache) before it replies, so a killed process loses nothing the kernel holds
  (with everysec, a slow disk can make it postpone a write by up to 2 s; the grader waits for
  Redis's AOF buffer to be written before it strikes, and ``always`` closes that window).
- A prefetch of one with late acknowledgement: the worker holds no message beyond the one it
  runs, so there is nothing reserved for it to forget when the connection drops (a reserved
  message waits in ``unacked`` until the visibility timeout, an hour); and with its prefetch
  full it is not reading from Redis when Redis goes, the case where kombu 5.7's worker dies.
- The running order is acknowledged when it ends, once Redis is back here. Had Redis stayed
  down past its end, the acknowledgement could not be sent and the message would run again when
  the visibility timeout passed: the tasks of a real deployment are made idempotent for that.
"""

from __future__ import annotations

from typing import Any

PERSISTENCE: dict[str, str] = {"appendonly": "yes", "appendfsync": "everysec"}
SETTINGS: dict[str, Any] = {"task_acks_late": True, "worker_prefetch_multiplier": 1}
