"""Lab 10, part 3: a hung broker. SIGSTOP freezes redis-server: its sockets stay open and the
kernel still accepts connections, but nothing answers. A task already running in the pool goes
on (it records to the record store, not to the broker); the worker logs nothing; three clients
begin a send while it is hung: one with the default settings (no socket timeout), two with
``socket_timeout``, one of them with its connection already open (it sent a task before). Then
SIGCONT, and what each did is read back, the tasks' runs counted."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from typing import Any

from labkit import broker_control
from labkit.polling import wait_for
from labkit.session import LabSession
from labkit.workers import Worker
from labs.lab10_broker_outage import restart
from labs.lab10_broker_outage.publish import CLIENT_QUEUE, HUNG_CLIENTS, HUNG_SOCKET_TIMEOUT_S, WARM, send
from labs.lab10_broker_outage.tasks import COUNTS, RUNS, job


def hung(s: LabSession, worker: Worker, pause_s: float, timeout: float) -> dict[str, Any]:
    label = "hung"
    worker.wait_ready(timeout)
    running = job.apply_async((-3, label, pause_s / 2), queue=CLIENT_QUEUE).id
    wait_for(lambda: s.counts(COUNTS).get(running, 0) >= 1, timeout, "the running task did not start")
    mark = restart.log_size(worker)
    sends: dict[str, Any] = {}
    with ExitStack() as stack:
        apps = {name: stack.enter_context(s.client_app(settings)) for name, settings in HUNG_CLIENTS.items()}
        warmed = send(apps[WARM], timeout)  # its connection open before the broker hangs
        broker_control.pause(s.broker)
        paused_at = time.time()
        try:
            threads = [threading.Thread(target=lambda n=name, a=app: sends.__setitem__(
                n, send(a, timeout + pause_s)), daemon=True) for name, app in apps.items()]
            for thread in threads:
                thread.start()
            time.sleep(max(0.0, paused_at + pause_s - time.time()))
        finally:
            resumed_at = time.time()  # before SIGCONT: nothing the broker does can precede it
            broker_control.resume(s.broker)
        for thread in threads:
            thread.join(timeout + pause_s)
    lines_while_hung = [line for t, line in restart.log_lines(worker, mark)
                        if t is None or paused_at <= t < resumed_at]
    sentinel = job.apply_async((-4, label), queue=CLIENT_QUEUE).id
    wait_for(lambda: any(r["id"] == sentinel for r in s.records(RUNS)), timeout,
             "the worker did not consume after the broker resumed")
    counts = s.counts(COUNTS)
    runs = {r["id"]: r for r in s.records(RUNS) if r.get("label") in (label, "client")}
    ended = runs.get(running, {}).get("t")
    return {
        "pause_s": pause_s, "paused_at": paused_at, "resumed_at": resumed_at,
        "socket_timeout_s": HUNG_SOCKET_TIMEOUT_S,
        "running_task": {"id": running, "runs": counts.get(running, 0), "ended_at": ended,
                         "ended_while_hung": ended is not None and paused_at < ended < resumed_at},
        "worker_log_while_hung": {"lines": len(lines_while_hung), "first_lines": lines_while_hung[:5],
                                  "lost": sum(restart.LOST in line for line in lines_while_hung)},
        "sends": {name: {**out, "runs": counts.get(out["task_id"], 0)} for name, out in sends.items()},
        "warm_up_send": {**warmed, "runs": counts.get(warmed["task_id"], 0)},
        "sentinel_started_after_resume_s": runs[sentinel]["started"] - resumed_at,
    }
