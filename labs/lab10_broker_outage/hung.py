"""Lab 10, part 3: a hung broker. SIGSTOP freezes redis-server: its sockets stay open and the
kernel still accepts connections, but nothing answers. A task already running in the pool goes
on (it records to the record store, not to the broker); the worker logs nothing; three clients
begin a send while it is hung: one with the default settings (no socket timeout), two with
``socket_timeout``, one of them with its connection already open (it sent a task before). Then
SIGCONT, and what each did is read back, the tasks' runs counted.

Part 2, detection, in the same hang: mid-way the default worker is asked for its stacks
(SIGUSR1, Celery's cry handler) to show where its event loop is; a second worker has the
settings that let kombu notice a dead connection (``health_check_interval`` and
``socket_timeout``) and sends nothing from its loop (``--without-heartbeat``, no task events):
when it drops its connection, logs the loss and reconnects is read from its log."""

from __future__ import annotations

import inspect
import os
import signal
import threading
import time
from contextlib import ExitStack
from typing import Any

from kombu import Connection
from kombu.transport.redis import Transport

from labkit import broker_control
from labkit.polling import wait_for
from labkit.session import LabSession
from labkit.workers import Worker
from labs.lab10_broker_outage import restart
from labs.lab10_broker_outage.publish import CLIENT_QUEUE, HUNG_CLIENTS, HUNG_SOCKET_TIMEOUT_S, WARM, send
from labs.lab10_broker_outage.tasks import COUNTS, RUNS, job

DETECT_QUEUE = "lab10_detect"
DETECTION = {"health_check_interval": 1, "socket_timeout": 1.0}  # its broker_transport_options
BRPOP_TIMEOUT_S = float(Transport.brpop_timeout)  # a live Redis answers a BRPOP within this
DROPPED = "dropping stale connection"  # kombu 5.7's health checks, in the worker's log
CONNECTED = "Connected to redis"


def detection_bounds_s() -> tuple[float, float, float]:
    """When the detecting worker drops its BRPOP connection after the hang began, by kombu's
    rules, at the soonest and the latest, and when it has logged the loss at the latest.

    kombu drops a BRPOP whose reply is overdue by ``health_check_interval`` (H), checked every
    H. A BRPOP sent as the hang began is dropped after brpop_timeout + H at the soonest and
    brpop_timeout + 2 H at the latest; the reconnect's handshake then times out after
    ``socket_timeout``. One sent before (Redis answers a BRPOP a few ms after its timeout, more
    on a busy machine) can be dropped up to brpop_timeout sooner: H is reported, not judged."""
    h = float(DETECTION["health_check_interval"])
    latest_drop = BRPOP_TIMEOUT_S + 2 * h
    return h, latest_drop, latest_drop + float(DETECTION["socket_timeout"])


def max_retry_delay_s() -> float:
    """The longest sleep of a worker's reconnect loop (kombu's interval_max, as installed)."""
    return float(inspect.signature(Connection._ensure_connection).parameters["interval_max"].default)


def detecting_spec(records: dict[str, Any]) -> dict[str, Any]:
    return {"concurrency": 1, "queues": [DETECT_QUEUE], "events": False,
            "extra": ["--without-heartbeat"],
            "settings": {**records, "worker_send_task_events": False,
                         "broker_transport_options": DETECTION}}


def main_thread_stack(worker: Worker, since: int) -> list[tuple[str, str, str]]:
    """The MainThread frames of Celery's cry output logged from byte ``since``."""
    return parse_cry([line for _, line in restart.log_lines(worker, since)])


def parse_cry(lines: list[str]) -> list[tuple[str, str, str]]:
    """The MainThread frames of Celery's cry output (outermost first, the cry handler itself
    left out): (file, function, source line)."""
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "MainThread")
    except StopIteration:
        return []
    frames: list[tuple[str, str, str]] = []
    for i in range(start + 2, len(lines)):
        line = lines[i].strip()
        if line.startswith("="):
            break
        if line.startswith("File "):
            parts = line.split('"')
            func = line.rsplit(" in ", 1)[-1]
            code = lines[i + 1].strip() if i + 1 < len(lines) else ""
            if func == "cry_handler":
                break
            frames.append((parts[1] if len(parts) > 2 else line, func, code))
    return frames


def where_blocked(frames: list[tuple[str, str, str]]) -> dict[str, Any]:
    """Where a main thread stood: its innermost frame, whether that is a socket read, whether it
    is inside an event's publish (celery/events/dispatcher.py), and what in the loop called it
    (the first frame after the hub's: a timer such as the heartbeat, or a tick callback)."""
    if not frames:
        return {"captured": False, "innermost": None, "socket_read": False, "in_event_publish": False,
                "called_from": None}
    path, func, code = frames[-1]
    paths = [p for p, _, _ in frames]
    called_from = None
    hub = [i for i, p in enumerate(paths) if "kombu/asynchronous/hub.py" in p]
    if hub:
        calls = [(p, f) for p, f, _ in frames[hub[0] + 1:]
                 if "kombu/asynchronous" not in p and "/vine/" not in p]
        called_from = f"{calls[0][0].rsplit('site-packages/', 1)[-1]}:{calls[0][1]}" if calls else None
    return {"captured": True, "innermost": f"{os.path.basename(path)}:{func}: {code}",
            "socket_read": ".recv" in code or "recv_into" in code,
            "in_event_publish": any("celery/events/dispatcher.py" in p for p in paths),
            "called_from": called_from, "depth": len(frames)}


def first_after(lines: list[tuple[float | None, str]], needle: str, t0: float) -> float | None:
    """Seconds from ``t0`` to the first line containing ``needle``."""
    return next((round(t - t0, 3) for t, line in lines if t is not None and needle in line), None)


def hung(s: LabSession, worker: Worker, pause_s: float, timeout: float,
         detecting: Worker) -> dict[str, Any]:
    label = "hung"
    worker.wait_ready(timeout)
    detecting.wait_ready(timeout)
    running = job.apply_async((-3, label, pause_s / 2), queue=CLIENT_QUEUE).id
    wait_for(lambda: s.counts(COUNTS).get(running, 0) >= 1, timeout, "the running task did not start")
    mark, detect_mark = restart.log_size(worker), restart.log_size(detecting)
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
            # a second before the resume: every 2 s timer of the worker has fired since the hang
            time.sleep(max(0.0, paused_at + pause_s - 1.0 - time.time()))
            dump_mark = restart.log_size(worker)
            os.kill(worker.pid, signal.SIGUSR1)
            time.sleep(max(0.0, paused_at + pause_s - time.time()))
        finally:
            resumed_at = time.time()  # before SIGCONT: nothing the broker does can precede it
            broker_control.resume(s.broker)
        for thread in threads:
            thread.join(timeout + pause_s)
    lines_while_hung = [line for t, line in restart.log_lines(worker, mark)
                        if t is None or paused_at <= t < resumed_at]
    sentinel = job.apply_async((-4, label), queue=CLIENT_QUEUE).id
    detect_sentinel = job.apply_async((-5, label), queue=DETECT_QUEUE).id
    wait_for(lambda: any(r["id"] == sentinel for r in s.records(RUNS)), timeout,
             "the worker did not consume after the broker resumed")
    # the detecting worker is in its reconnect loop: its next attempt may be a whole sleep away
    wait_for(lambda: any(r["id"] == detect_sentinel for r in s.records(RUNS)),
             timeout + max_retry_delay_s(), "the detecting worker did not consume after the resume")
    blocked = where_blocked(main_thread_stack(worker, dump_mark))
    detect_lines = restart.log_lines(detecting, detect_mark)
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
        "default_worker_stack": blocked,
        "detecting": {
            "settings": DETECTION, "brpop_timeout_s": BRPOP_TIMEOUT_S,
            "bounds_s": dict(zip(("soonest_drop", "latest_drop", "latest_lost"),
                                 detection_bounds_s(), strict=True)),
            "dropped_after_s": first_after(detect_lines, DROPPED, paused_at),
            "lost_after_s": first_after(detect_lines, restart.LOST, paused_at),
            "cannot_connect_lines": sum(restart.CANNOT in line for t, line in detect_lines
                                        if t is not None and t < resumed_at),
            "reconnected_after_resume_s": first_after(detect_lines, CONNECTED, resumed_at),
            "next_task_started_after_resume_s":
                round(next(r for r in s.records(RUNS) if r["id"] == detect_sentinel)["started"]
                      - resumed_at, 3),
        },
    }
