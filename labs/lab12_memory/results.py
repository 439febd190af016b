"""Lab 12, part 3: what results cost the result backend (Redis): the same small tasks on a
worker keeping results for Celery's default ``result_expires``, on one with a short expiry, and
on one with ``task_ignore_result``; each id's key counted, its TTL read, Redis's ``used_memory``
before and after; and what ``AsyncResult.exists()`` (new in 5.7) says where the state says
PENDING."""

from __future__ import annotations

import time
import uuid
from typing import Any

from celery.result import AsyncResult

from labkit.polling import poll_until
from labkit.session import LabSession
from labkit.workers import Worker
from labs.lab12_memory.tasks import SMALL

META = "celery-task-meta-{}"


def used_memory(s: LabSession) -> int:
    with s.broker.client() as r:
        return int(r.info("memory")["used_memory"])


def keys_of(s: LabSession, ids: list[str]) -> dict[str, Any]:
    """How many of ``ids`` have a result key, and the TTLs of those that do."""
    with s.broker.client() as r:
        pipe = r.pipeline()
        for task_id in ids:
            pipe.ttl(s.broker.key(META.format(task_id)))
        ttls = pipe.execute()
    alive = [t for t in ttls if t != -2]  # -2: no such key
    return {"keys": len(alive), "ttl_min": min(alive, default=None), "ttl_max": max(alive, default=None)}


def key_bytes(s: LabSession, ids: list[str], sample: int = 20) -> int | None:
    """The median of Redis's own ``MEMORY USAGE`` over a sample of result keys."""
    with s.broker.client() as r:
        sizes = [r.memory_usage(s.broker.key(META.format(i))) for i in ids[:sample]]
    sizes = sorted(x for x in sizes if x)
    return sizes[len(sizes) // 2] if sizes else None


def drain_and_count(s: LabSession, worker: Worker, n: int, timed_by_results: bool,
                    timeout: float) -> dict[str, Any]:
    """``n`` small tasks drained by ``worker``; then their result keys and Redis's memory."""
    before = used_memory(s)
    drain = s.drain([worker], SMALL, [(i,) for i in range(n)], timeout=timeout + n / 50,
                    results=timed_by_results)
    counted = keys_of(s, drain.ids)
    return {"n": n, "ids": drain.ids, "drain_s": drain.drain_s, "counted_at": time.time(),
            "bytes_per_key": key_bytes(s, drain.ids),
            "used_memory_before": before, "used_memory_after": used_memory(s), **counted}


def expired(s: LabSession, ids: list[str], expires_s: float) -> dict[str, Any]:
    """Wait for a short ``result_expires`` to pass: which keys Redis still has then. No beat
    runs in this lab, so nothing but Redis's own key expiry can remove them."""
    started = time.monotonic()
    gone = poll_until(lambda: keys_of(s, ids)["keys"] == 0, expires_s + 3.0, interval=0.25)
    return {"gone": gone, "waited_s": round(time.monotonic() - started, 2), **keys_of(s, ids)}


def exists_against_state(s: LabSession, kept: str, expired_id: str) -> dict[str, Any]:
    """``state`` and ``exists()`` for a kept result, an expired one, a task still waiting in a
    queue nobody consumes, and an id never sent."""
    queued = s.app.send_task(SMALL, (0,), queue="lab12_nobody").id
    out = {}
    for name, task_id in (("kept", kept), ("expired", expired_id), ("queued", queued),
                          ("never_sent", str(uuid.uuid4()))):
        result = AsyncResult(task_id, app=s.app)
        out[name] = {"state": result.state, "exists": bool(result.exists())}
    return out
