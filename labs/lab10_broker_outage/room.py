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
import uuid
from typing import Any

import psutil

from labkit import broker_control
from labkit.polling import poll_until, wait_for
from labkit.session import LabSession
from labkit.workers import Worker
from labs.lab10_broker_outage import restart
from labs.lab10_broker_outage.tasks import COUNTS, hold, hold_bound_s, job

QUEUE = "lab10_room"
PREFETCH = 2  # multiplier, with one pool slot: room for one more message than it reserves


def blocked_in_brpop(s: LabSession, worker: Worker) -> str | None:
    """The worker's own connection that Redis shows blocked in BRPOP (CLIENT LIST: cmd=brpop,
    flag b), matched by the worker's local TCP ports; None if there is none right now."""
    try:
        ports = {c.laddr.port for c in psutil.Process(worker.pid).net_connections(kind="tcp")
                 if c.raddr and c.raddr.port == s.broker.server.port}
    except psutil.Error:
        return None
    with s.broker.client() as r:
        for client in r.client_list():
            if (client.get("cmd") == "brpop" and "b" in client.get("flags", "")
                    and int(client["addr"].rsplit(":", 1)[1]) in ports):
                return client["addr"]
    return None


def room_round(s: LabSession, worker: Worker, window_s: float, timeout: float) -> dict[str, Any]:
    """``window_s``: how long after Redis is back a live worker surely consumes again (its first
    retry and the run's own grace, as the full-prefetch rounds measured)."""
    label, gate = "room", f"lab10:gate:{uuid.uuid4().hex}"
    worker.wait_ready(timeout)
    broker_control.configure(s.broker, appendonly="yes", appendfsync="everysec")
    holder = hold.apply_async((gate, hold_bound_s(timeout), label), queue=QUEUE).id
    wait_for(lambda: s.counts(COUNTS).get(holder), timeout, "the holder did not start")
    reserved = job.apply_async((300, label), queue=QUEUE).id
    wait_for(lambda: restart.where_tasks_are(s, QUEUE, {reserved})[reserved] == "unacked", timeout,
             "the worker did not reserve its second message")
    # the precondition, established rather than assumed: this worker blocked in a BRPOP now
    blocked = wait_for(lambda: blocked_in_brpop(s, worker), timeout, "the worker did not block in BRPOP")
    struck = restart.strike(s, worker, signal.SIGKILL, timeout)
    mark, down_at, up_at = struck.mark, struck.down_at, struck.up_at
    restart.set_gate(s, gate)
    sentinel = job.apply_async((-5, label), queue=QUEUE).id
    consumed = poll_until(lambda: s.counts(COUNTS).get(sentinel), window_s)
    lines = [line for _, line in restart.log_lines(worker, mark)]
    gave_up = next((line for line in lines if restart.UNRECOVERABLE in line), None)
    return {"prefetch_multiplier": PREFETCH, "blocked_in_brpop": blocked, "window_s": window_s,
            "down_at": down_at, "up_at": up_at,
            "holder_runs": s.counts(COUNTS).get(holder, 0),
            "sentinel_consumed_within_window": bool(consumed),
            "unrecoverable": gave_up[gave_up.index(restart.UNRECOVERABLE):][:200] if gave_up else None,
            "reconnected": any(restart.CONNECTED in line for line in lines),
            "process_alive": worker.process.alive()}
