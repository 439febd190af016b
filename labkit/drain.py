"""A worker's throughput measured on a pre-filled queue: fill it first, then open it.

A batch sent while a worker consumes measures the slower of the publisher and the worker. Here
the queue is filled while nothing consumes it (publishing timed as its own quantity), then
opened to the worker(s) with ``add_consumer``. The drain runs from the stamp of a marker task
published first (``kit.stamp``: opening is not the start, since a worker blocked in BRPOP on
its other queues only adds the new one when that BRPOP returns, up to a second later) to the
end of the last task: the last ``date_done`` the worker stored in the result backend or, for a
worker without one, the stamp of a marker published last. Neither needs task events, so a
drain can be measured with the lab's instruments off.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout

from labkit.broker import Broker
from labkit.errors import SetupError

MARKER = "kit.stamp"


@dataclass
class Drain:
    """One pre-filled drain: ``n`` tasks published in ``publish_s``, drained from ``started_at``
    (the first marker's stamp) to ``ended_at`` (the last task's end)."""

    queue: str
    n: int
    publish_s: float
    started_at: float = 0.0
    ended_at: float = 0.0
    ids: list[str] = field(default_factory=list)
    submits: list[float] = field(default_factory=list)  # client clock, one per task
    publish_cpu_s: float = 0.0  # the CPU this process spent publishing them
    worker_cpu_s: float | None = None  # the CPU the workers spent draining them, if read
    metas: list[dict[str, Any]] = field(default_factory=list)

    @property
    def publish_rate(self) -> float:
        return self.n / self.publish_s

    @property
    def drain_s(self) -> float:
        return self.ended_at - self.started_at

    @property
    def rate(self) -> float:
        return self.n / self.drain_s

    def row(self) -> dict[str, Any]:
        return {"queue": self.queue, "n": self.n, "publish_s": round(self.publish_s, 4),
                "publish_tasks_per_s": round(self.publish_rate, 1),
                "drain_s": round(self.drain_s, 4), "drain_tasks_per_s": round(self.rate, 1)}


def fill(app: Celery, task: str, args: Sequence[Sequence[Any]], queue: str, start_key: str,
         end_key: str | None = None) -> Drain:
    """Publish a ``kit.stamp`` marker, then one ``task`` per args tuple, to ``queue`` (nothing
    consumes it yet), on one producer as fast as one client can; with ``end_key``, a marker
    last too."""
    ids, submits = [], []
    with app.producer_or_acquire() as producer:
        app.send_task(MARKER, args=[start_key], queue=queue, producer=producer)
        started, cpu = time.perf_counter(), time.process_time()
        for one in args:
            submits.append(time.time())
            ids.append(app.send_task(task, args=list(one), queue=queue, producer=producer).id)
        publish_s, publish_cpu_s = time.perf_counter() - started, time.process_time() - cpu
        if end_key:
            app.send_task(MARKER, args=[end_key], queue=queue, producer=producer)
    return Drain(queue, len(ids), publish_s, ids=ids, submits=submits, publish_cpu_s=publish_cpu_s)


def open_queue(app: Celery, hostnames: Sequence[str], queue: str, timeout: float,
               no_ack: bool = False) -> None:
    """Let the workers consume ``queue`` (``no_ack``: without acknowledging, as Celery's own
    worker benchmark consumes)."""
    replies = app.control.add_consumer(queue, destination=list(hostnames), reply=True,
                                       timeout=timeout, options={"no_ack": True} if no_ack else None)
    answered = {host for reply in replies for host in reply}
    if set(hostnames) - answered:
        raise SetupError(f"add_consumer {queue}: no reply from {sorted(set(hostnames) - answered)}")


def close_queue(app: Celery, hostnames: Sequence[str], queue: str, timeout: float) -> None:
    app.control.cancel_consumer(queue, destination=list(hostnames), reply=True, timeout=timeout)


def _date_done(meta: dict[str, Any]) -> float:
    done = meta["date_done"]
    return (datetime.fromisoformat(done) if isinstance(done, str) else done).timestamp()


def _until_drained(broker: Broker, drain: Drain, stalled_after: float) -> None:
    """While the queue still holds work, watch its length (a cheap LLEN, 20 times a second);
    a drain may take as long as it takes while it progresses, and fails only after
    ``stalled_after`` seconds without the queue getting shorter."""
    key = broker.key(drain.queue)
    with broker.client() as r:
        last, moved = r.llen(key), time.monotonic()
        while last:
            time.sleep(0.05)
            now = r.llen(key)
            if now != last:
                last, moved = now, time.monotonic()
            elif time.monotonic() - moved > stalled_after:
                raise SetupError(f"drain of {drain.n} tasks on {drain.queue}: the queue stayed at "
                                 f"{now} messages for {stalled_after:g} s (no worker consumed)")


def wait_results(app: Celery, broker: Broker, drain: Drain, timeout: float) -> None:
    """Until every task stored its result; the end is the last ``date_done``. ``timeout``
    bounds a stall, not the drain: the queue must keep getting shorter, and the tasks the
    workers still hold must finish within it."""
    _until_drained(broker, drain, timeout)
    try:
        metas = dict(app.backend.get_many(set(drain.ids), timeout=timeout, interval=0.05))
    except CeleryTimeout:
        raise SetupError(f"drain of {drain.n} tasks on {drain.queue}: the last tasks held by the "
                         f"workers did not finish within {timeout:g} s") from None
    drain.metas = [metas[i] for i in drain.ids]
    drain.ended_at = max(_date_done(m) for m in drain.metas)


def wait_stamp(broker: Broker, drain: Drain, key: str, timeout: float) -> float:
    """The time a marker stamped under ``key``, once it has run."""
    deadline = time.monotonic() + timeout
    with broker.client() as r:
        while time.monotonic() < deadline:
            raw = r.get(broker.key(key))
            if raw is not None:
                return float(raw)
            time.sleep(0.05)
    raise SetupError(f"drain of {drain.queue}: a marker did not run within {timeout:.0f} s")


def nudge(app: Celery, queue: str) -> None:
    """A marker on a queue the workers already consume. A worker applies ``add_consumer`` at the
    top of its consumer loop; a green pool's loop (``synloop``) sits in ``drain_events`` for up
    to 2 s when idle, and a delivery is what ends that wait at once."""
    app.send_task(MARKER, args=[f"kit:nudge:{queue}"], queue=queue)


def measure(app: Celery, publisher: Celery, broker: Broker, hostnames: Sequence[str], task: str,
            args: Sequence[Sequence[Any]], timeout: float, *, results: bool = True,
            no_ack: bool = False, wake: Sequence[str] = ()) -> Drain:
    """Fill a fresh queue with ``task`` x ``args``, open it to ``hostnames``, time the drain.

    ``results=False`` is for workers without a result backend: the end is the last marker's
    stamp (on a solo pool it runs last; on a pool with c slots up to c - 1 tasks may still run).
    ``wake``: a queue of each worker's own, nudged once the new queue is asked for, so joining
    it does not wait out a green pool's idle loop. The timing starts at the first marker's stamp
    whatever the wait; but with several workers, one that joined late would have drained less.
    """
    queue = f"drain-{uuid.uuid4().hex[:8]}"
    start_key, end_key = f"kit:drain:{queue}:start", None if results else f"kit:drain:{queue}:end"
    drain = fill(publisher, task, args, queue, start_key, end_key)
    open_queue(app, hostnames, queue, timeout=min(timeout, 5.0), no_ack=no_ack)
    for own in wake:
        nudge(publisher, own)
    if results:
        wait_results(app, broker, drain, timeout)
    else:
        _until_drained(broker, drain, timeout)
        drain.ended_at = wait_stamp(broker, drain, end_key, timeout)
    drain.started_at = wait_stamp(broker, drain, start_key, timeout)
    close_queue(app, hostnames, queue, timeout=min(timeout, 5.0))
    return drain
