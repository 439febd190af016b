"""Exercise 10, a reference answer.

- AOF keeps the queue through a SIGKILL: Redis writes each command to the file before it
  replies, so a killed process loses nothing the kernel holds.
- Early acknowledgement (the default) for the running order: it is acknowledged when it starts,
  so the restart cannot make it run again. With ``task_acks_late`` its acknowledgement, due
  while the worker is still reconnecting, is lost, and the message waits in ``unacked`` to run
  a second time.
- The message the worker had reserved is forgotten when the connection drops, and waits in
  ``unacked``: a visibility timeout of a few seconds, swept every half second, hands it back
  within the burst. A timeout that short is only safe if no message waits unacknowledged that
  long in normal running: a prefetch of one keeps the reserved message's wait under one
  order's work (Lab 02 measures the trap).
"""

from __future__ import annotations

from typing import Any

PERSISTENCE: dict[str, str] = {"appendonly": "yes", "appendfsync": "everysec"}
SETTINGS: dict[str, Any] = {
    "worker_prefetch_multiplier": 1,
    "broker_transport_options": {"visibility_timeout": 4, "unacked_restore_interval": 0.5,
                                 "unacked_restore_throttle": 1},
}
