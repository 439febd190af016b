"""Lab 10, part 1b: a worker whose prefetch has room when the broker goes away.

In the restart rounds the worker's prefetch is full (it reserved all it may), so it is not
reading from Redis when Redis stops. Here it has room: one pool slot held, prefetch multiplier 2,
one message reserved, the queue empty. Its BRPOP is then in flight. In kombu 5.7 closing that
channel after the loss fails half-way (the BRPOP's read raises, the remote-control channel's
close raises first), the transport is detached, and the retry of the close tries to put the
reserved message back through it: ``AttributeError: 'NoneType' object has no attribute
'hostname'``, which the consumer does not catch. The lab measures whether this worker consumes
again after Redis is back, within the time the full-prefetch workers needed, and what it logged.
"""

from __future__ import annotations

import signal
import time
import uuid
from typing import Any

from labkit import broker_control
from labkit.polling import poll_until, wait_for
from labkit.session import LabSession
from labkit.workers import Worker
from labs.lab10_broker_outage import restart
from labs.lab10_broker_outage.tasks import COUNTS, hold, job

QUEUE = "lab10_room"
PREFETCH = 2  # multiplier, with one pool slot: room for one more message than it reserves


def room_round(s: LabSession, worker: Worker, window_s: float, timeout: float) -> dict[str, Any]:
    """``window_s``: how long after Redis is back a live worker surely consumes again (its first
    retry and the run's own grace, as the full-prefetch rounds measured)."""
    label, gate = "room", f"lab10:gate:{uuid.uuid4().hex}"
    worker.wait_ready(timeout)
    broker_control.configure(s.broker, appendonly="yes", appendfsync="everysec")
    holder = hold.apply_async((gate, timeout, label), queue=QUEUE).id
    wait_for(lambda: s.counts(COUNTS).get(holder), timeout, "the holder did not start")
    reserved = job.apply_async((300, label), queue=QUEUE).id
    wait_for(lambda: restart.where_tasks_are(s, QUEUE, {reserved})[reserved] == "unacked", timeout,
             "the worker did not reserve its second message")
    mark = restart.log_size(worker)
    down_at = time.time()
    broker_control.stop(s.broker, signal.SIGKILL, timeout)
    restart.wait_for_log(worker, mark, restart.CANNOT, timeout)
    broker_control.start_again(s.broker, timeout)
    up_at = time.time()
    restart.set_gate(s, gate)
    sentinel = job.apply_async((-5, label), queue=QUEUE).id
    consumed = poll_until(lambda: s.counts(COUNTS).get(sentinel), window_s)
    lines = [line for _, line in restart.log_lines(worker, mark)]
    gave_up = next((line for line in lines if restart.UNRECOVERABLE in line), None)
    return {"prefetch_multiplier": PREFETCH, "window_s": window_s, "down_at": down_at,
            "up_at": up_at,
            "holder_runs": s.counts(COUNTS).get(holder, 0),
            "sentinel_consumed_within_window": bool(consumed),
            "unrecoverable": gave_up[gave_up.index(restart.UNRECOVERABLE):][:200] if gave_up else None,
            "reconnected": any(restart.CONNECTED in line for line in lines),
            "process_alive": worker.process.alive()}
