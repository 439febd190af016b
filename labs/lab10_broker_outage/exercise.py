"""Exercise 10: a broker restart in the middle of a burst: nothing lost, nothing run twice.

The grader starts its own Redis with your ``PERSISTENCE``, one worker (one pool slot) with your
``SETTINGS`` (Celery settings), and sends a burst of orders (``lab10.job``, a second of work
each, not idempotent: it counts every execution). Just after an order starts, it SIGKILLs
Redis, starts it again on the same port and data directory once the worker has noticed, and
watches. Choose the settings so that:

1. every order runs (none lost with the broker's data, none forgotten by the worker);
2. no order runs twice;
3. nothing is left waiting in Redis when the burst is done (a message still in kombu's
   ``unacked`` hash would run again when the visibility timeout passes, an hour later).

``PERSISTENCE`` takes Redis's ``appendonly`` ("yes"/"no") and ``appendfsync`` ("everysec",
"always"). Check it: ``celery-lab check 10``. Read first: labs/lab10_broker_outage/README.md
(what a restart does to queued, prefetched and running tasks).
"""

from __future__ import annotations

from typing import Any

PERSISTENCE: dict[str, str] = {"appendonly": "no"}
SETTINGS: dict[str, Any] = {}
