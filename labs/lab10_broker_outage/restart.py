"""Lab 10, part 1: a Redis restart in the middle of work, with and without persistence.

Each round has a worker of its own (one pool slot, ``prefetched`` messages of prefetch), and
sets the broker's persistence. Before the restart every task the round sent is in a known
place, read from Redis by task id: stored as a result, running (``hold`` occupies the slot),
prefetched (in kombu's ``unacked`` hash, the worker holds it), queued (in the queue's list), or
an ETA task the worker holds (``unacked`` too). Then the broker is stopped with the round's
signal, started again on the same port and data dir once the worker has failed to reconnect
(its own log says so), and the holder released. A sentinel sent after the worker is back runs
behind every queued task that survived (one slot, a FIFO list), so once it has run, what has
not run was lost or is stranded. Counted by the tasks (the record store), never by the client.
"""

from __future__ import annotations

import re
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from labkit import broker_control
from labkit.polling import wait_for
from labkit.redis_state import task_places
from labkit.session import LabSession
from labkit.workers import Worker
from labs.lab10_broker_outage.tasks import COUNTS, RUNS, hold, hold_bound_s, job


@dataclass(frozen=True)
class Round:
    name: str
    persistence: dict[str, str]
    sig: int

    @property
    def aof(self) -> bool:
        return self.persistence.get("appendonly") == "yes"


ROUNDS = {
    "none-SIGTERM": Round("none-SIGTERM", {"appendonly": "no"}, signal.SIGTERM),
    "everysec-SIGTERM": Round("everysec-SIGTERM", {"appendonly": "yes", "appendfsync": "everysec"},
                              signal.SIGTERM),
    "everysec-SIGKILL": Round("everysec-SIGKILL", {"appendonly": "yes", "appendfsync": "everysec"},
                              signal.SIGKILL),
    "always-SIGKILL": Round("always-SIGKILL", {"appendonly": "yes", "appendfsync": "always"},
                            signal.SIGKILL),
}
ETA_S = 3600  # an ETA task the worker holds, far beyond the run
KINDS = ("result", "running", "prefetched", "queued", "eta")

# The worker's own words (celery/worker/consumer/consumer.py, kombu's ensure_connection).
LOST = "Connection to broker lost"
CANNOT = "Cannot connect to"
RETRY = re.compile(r"Trying again in (\d+(?:\.\d+)?) seconds")
CONNECTED = "Connected to redis"
UNRECOVERABLE = "Unrecoverable error"  # the worker's consumer gave up (celery/worker/worker.py)
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})")


def log_lines(worker: Worker, since: int) -> list[tuple[float | None, str]]:
    """The worker's log from byte ``since``: (time the line was logged, line)."""
    with open(worker.process.log_path, "rb") as f:
        f.seek(since)
        text = f.read().decode(errors="replace")
    out = []
    for line in text.splitlines():
        m = STAMP.match(line)
        t = (datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + int(m.group(2)) / 1000
             if m else None)
        out.append((t, line))
    return out


def log_size(worker: Worker) -> int:
    return Path(worker.process.log_path).stat().st_size


def wait_for_log(worker: Worker, since: int, needle: str, timeout: float) -> bool:
    """True once the worker logged ``needle``; False at the deadline, or at once if it logged
    that it gave up (UNRECOVERABLE: it will log nothing more)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [line for _, line in log_lines(worker, since)]
        if any(needle in line for line in lines):
            return True
        if any(UNRECOVERABLE in line for line in lines):
            return False
        time.sleep(0.02)
    return False


def where_tasks_are(s: LabSession, queue: str, ids: set[str]) -> dict[str, str]:
    """Each id's place in the broker: 'unacked', 'queued', 'result' (its result key), or absent."""
    b = s.broker
    places = task_places(b, queue)
    with b.client() as r:
        results = {i for i in ids if r.exists(b.key(f"celery-task-meta-{i}"))}
    named = {"unacked": "unacked", "queue": "queued"}
    return {i: named[places[i]] if i in places else "result" if i in results else "absent" for i in ids}


def _runs(s: LabSession, label: str) -> list[dict[str, Any]]:
    return [r for r in s.records(RUNS) if r.get("label") == label]


def set_gate(s: LabSession, gate: str) -> None:
    with s.record_store.client() as r:
        r.set(gate, 1, ex=600)


@dataclass
class Strike:
    """One outage as the workers saw it: from the kill to Redis answering again."""
    marks: dict[str, int]  # each worker's log size at the kill: what it printed since is the outage's
    down_at: float
    up_at: float
    stop_s: float
    start_s: float
    worker_noticed: bool  # every worker logged that it could not reconnect
    aof_written: dict[str, float]
    while_down: Any = None

    @property
    def mark(self) -> int:
        """The log mark of a strike on one worker."""
        return next(iter(self.marks.values()))


def strike(s: LabSession, workers: Worker | list[Worker], sig: int, timeout: float,
           while_down: Any = None) -> Strike:
    """Stop Redis with ``sig``, wait for each worker's log to show it could not reconnect, run
    ``while_down(s)``, start Redis again on the same port and data. Before the kill, Redis's AOF
    buffer is written (broker_control.wait_for_aof_written): the lab measures a killed
    process, not a slow disk that made Redis postpone a write."""
    workers = [workers] if isinstance(workers, Worker) else workers
    aof_written = broker_control.wait_for_aof_written(s.broker, timeout)
    marks = {w.hostname: log_size(w) for w in workers}
    down_at = time.time()
    stop_s = broker_control.stop(s.broker, sig, timeout)
    # lost, cleaned up, a reconnect refused
    noticed = all([wait_for_log(w, marks[w.hostname], CANNOT, timeout) for w in workers])
    client = while_down(s) if while_down else None
    start_s = broker_control.start_again(s.broker, timeout)
    return Strike(marks, down_at, time.time(), stop_s, start_s, noticed, aof_written, client)


def one_round(s: LabSession, rnd: Round, worker: Worker, queue: str, sizes: dict[str, int],
              timeout: float, while_down: Any = None, results: Any = None) -> dict[str, Any]:
    """One restart; ``while_down(s)`` runs while the broker is stopped (the client's part), and
    ``results`` (a publish.ResultsAcrossRestart) waits on the running task across it."""
    label, gate = f"restart-{rnd.name}", f"lab10:gate:{uuid.uuid4().hex}"
    worker.wait_ready(timeout)  # connected again after the round before
    broker_control.configure(s.broker, **rnd.persistence)
    sent: dict[str, list[str]] = {k: [] for k in KINDS}

    for n in range(sizes["results"]):
        sent["result"].append(job.apply_async((n, label), queue=queue).id)
    wait_for(lambda: len(_runs(s, label)) >= sizes["results"] and
          all(v == "result" for v in where_tasks_are(s, queue, set(sent["result"])).values()),
          timeout, "the results were not stored")
    sent["running"].append(hold.apply_async((gate, hold_bound_s(timeout), label), queue=queue).id)
    wait_for(lambda: any(r.get("role") == "hold" for r in _runs(s, label)), timeout,
             "the holder did not start")
    # ETA tasks first: the worker raises its prefetch for each one it holds, but only fetches
    # them while its prefetch has room; sent after the queue they would wait in it.
    for n in range(sizes["eta"]):
        sent["eta"].append(job.apply_async((200 + n, label), queue=queue, countdown=ETA_S).id)
    wait_for(lambda: all(v == "unacked" for v in where_tasks_are(s, queue, set(sent["eta"])).values()),
          timeout, "the worker did not take its ETA tasks")
    for n in range(sizes["prefetched"] + sizes["queued"]):
        (sent["prefetched"] if n < sizes["prefetched"] else sent["queued"]).append(
            job.apply_async((100 + n, label), queue=queue).id)
    waiting = set(sent["prefetched"]) | set(sent["queued"]) | set(sent["eta"])
    # Settled: the worker has reserved what its prefetch allows and the ETA tasks (unacked), the
    # rest is in the list. Which id went where is read, not assumed.
    try:
        wait_for(lambda: _settled(s, queue, waiting, sizes), timeout, "the worker did not reserve its "
              f"{sizes['prefetched']} prefetched and {sizes['eta']} ETA tasks")
    except TimeoutError as exc:
        places = Counter(where_tasks_are(s, queue, waiting).values())
        raise TimeoutError(f"{exc}: {dict(places)}") from None
    before = where_tasks_are(s, queue, {i for ids in sent.values() for i in ids})
    # which job the worker reserved and which waits in the list is read, not assumed
    jobs = sent["prefetched"] + sent["queued"]
    sent["prefetched"] = [i for i in jobs if before[i] == "unacked"]
    sent["queued"] = [i for i in jobs if before[i] == "queued"]

    if results is not None:
        results.before_stop(sent["running"][0])

    def down(s: LabSession) -> Any:
        out = while_down(s) if while_down else None
        if results is not None:
            results.while_down()
        return out

    struck = strike(s, worker, rnd.sig, timeout, down if while_down or results else None)
    mark, up_at = struck.mark, struck.up_at
    bound_after_restart = queue_is_bound(s, queue)  # before the worker is back: what Redis kept
    set_gate(s, gate)
    wait_for(lambda: queue_is_bound(s, queue), timeout, "the worker did not declare its queue again")
    sentinel = job.apply_async((-2, label), queue=queue).id
    wait_for(lambda: any(r["id"] == sentinel for r in _runs(s, label)), timeout,
          "the sentinel sent after the restart did not run")
    wait_for(lambda: any(r.get("phase") == "finished" for r in _runs(s, label)), timeout,
          "the holder did not finish")
    if results is not None:
        results.after_up(queue)

    after = where_tasks_are(s, queue, {i for ids in sent.values() for i in ids})
    counts = s.counts(COUNTS)
    runs = _runs(s, label)
    lines = log_lines(worker, mark)
    starts_after = [r["started"] for r in runs if r["started"] >= up_at]
    retries = [float(m.group(1)) for _, line in lines for m in [RETRY.search(line)] if m]
    return {
        "round": rnd.name, "persistence": rnd.persistence, "signal": signal.Signals(rnd.sig).name,
        "worker": worker.hostname, "queue": queue,
        "sent": sent, "before": before, "after": after,
        "executions": {i: counts.get(i, 0) for ids in sent.values() for i in ids},
        "by_kind": summarise(sent, after, counts),
        "stop_s": struck.stop_s, "start_s": struck.start_s, "down_at": struck.down_at,
        "up_at": up_at, "outage_s": up_at - struck.down_at, "worker_noticed": struck.worker_noticed,
        "aof_written_before_the_kill": struck.aof_written,
        "binding_after_restart": bound_after_restart,
        "log": {"lost": sum(LOST in line for _, line in lines),
                "cannot_connect": sum(CANNOT in line for _, line in lines),
                "retry_delays_s": retries,
                "connected_at": next((t for t, line in lines if CONNECTED in line), None)},
        "first_start_after_up_s": min(starts_after) - up_at if starts_after else None,
        "sentinel_ran": counts.get(sentinel, 0),
        "holder_released": any(r.get("phase") == "finished" and r.get("released") for r in runs),
        "client": struck.while_down,
    }


def _settled(s: LabSession, queue: str, waiting: set[str], sizes: dict[str, int]) -> bool:
    place = where_tasks_are(s, queue, waiting)
    unacked = sum(v == "unacked" for v in place.values())
    return (all(v in ("unacked", "queued") for v in place.values())
            and unacked == sizes["prefetched"] + sizes["eta"])


def queue_is_bound(s: LabSession, queue: str) -> bool:
    """The worker's queue is bound again (a Redis that kept nothing lost the bindings too, and a
    task sent to an unbound queue is dropped)."""
    with s.broker.client() as r:
        return bool(r.exists(s.broker.key(f"_kombu.binding.{queue}")))


def summarise(sent: dict[str, list[str]], after: dict[str, str],
              counts: dict[str, int]) -> dict[str, dict[str, int]]:
    """Per kind (read from Redis before the restart, in one_round): how many were sent, and
    after the restart: ran once, ran twice or more, never ran and still waiting in the broker
    (stranded), never ran and gone (lost); and for results, kept or gone."""
    out = {}
    for kind, ids in sent.items():
        row = {"sent": len(ids), "ran_once": 0, "ran_twice": 0, "stranded": 0, "lost": 0, "kept": 0}
        for i in ids:
            n = counts.get(i, 0)
            if kind == "result":
                row["kept" if after[i] == "result" else "lost"] += 1
                row["ran_twice" if n > 1 else "ran_once"] += 1 if n else 0
                continue
            if n == 1:
                row["ran_once"] += 1
            elif n > 1:
                row["ran_twice"] += 1
            elif after[i] in ("unacked", "queued"):
                row["stranded"] += 1
            else:
                row["lost"] += 1
        out[kind] = row
    return out
