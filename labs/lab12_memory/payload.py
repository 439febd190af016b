"""Lab 12, part 4: a task handed a 1 MiB argument against a task handed an id: what each
message costs Redis while it waits, and how fast one worker drains each."""

from __future__ import annotations

from typing import Any

from labkit.session import LabSession
from labkit.workers import Worker
from labs.lab12_memory.tasks import BIG, BY_ID, PAYLOAD


def _queue_bytes(s: LabSession, queue: str) -> int:
    """Bytes the queue's list holds (every message's length as stored)."""
    with s.broker.client() as r:
        return sum(len(m) for m in r.lrange(s.broker.key(queue), 0, -1))


def stored_size(s: LabSession, count: int, kib: int) -> dict[str, Any]:
    """``count`` messages of each kind into queues nothing consumes: their bytes in Redis."""
    payload = "x" * (kib * 1024)
    with s.broker.client() as r:
        r.set(s.broker.key(f"{PAYLOAD}one"), payload)
    for _ in range(count):
        s.app.send_task(BIG, (payload,), queue="lab12_big_at_rest")
        s.app.send_task(BY_ID, ("one",), queue="lab12_id_at_rest")
    big, small = _queue_bytes(s, "lab12_big_at_rest"), _queue_bytes(s, "lab12_id_at_rest")
    with s.broker.client() as r:
        r.delete(s.broker.key("lab12_big_at_rest"), s.broker.key("lab12_id_at_rest"))
    return {"count": count, "payload_bytes": len(payload), "big_message_bytes": big / count,
            "id_message_bytes": small / count}


def drains(s: LabSession, worker: Worker, count: int, kib: int, timeout: float) -> dict[str, Any]:
    """The same worker drains ``count`` tasks of each kind (pre-filled, then opened)."""
    payload = "x" * (kib * 1024)
    big = s.drain([worker], BIG, [(payload,)] * count, timeout=timeout + count)
    small = s.drain([worker], BY_ID, [("one",)] * count, timeout=timeout + count)
    def row(d: Any) -> dict[str, float]:
        return {"publish_s": d.publish_s, "publish_cpu_s": d.publish_cpu_s, "drain_s": d.drain_s,
                "rate": d.rate}
    return {"count": count, "big": row(big), "by_id": row(small)}
