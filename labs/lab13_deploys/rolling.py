"""Part 3: a rolling restart under load. Workers are replaced one by one (the new one first,
as an orchestrator's surge does) while the lab's own publisher keeps a steady stream of tasks
flowing; what each procedure loses, strands, runs twice, and costs in latency."""

from __future__ import annotations

import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from labkit.polling import poll_until, wait_for
from labkit.session import LabSession
from labkit.workers import Worker
from labs.lab13_deploys.sequences import grace_then_kill, locations
from labs.lab13_deploys.tasks import EFFECTS, FINISHES, RUNS, STARTS, work

MARGIN_S = 0.5  # a signal meant to land while a task runs leaves it at least this much to spare
DEFAULT_PREFETCH = 4  # worker_prefetch_multiplier, as Celery ships it: the rollouts' workers keep it
LONG_EVERY = 3  # one task in three, on average, is a long one


@dataclass(frozen=True)
class Procedure:
    """How a team deploys: the signal, the worker's settings, the grace period, the tasks."""

    name: str
    label: str
    settings: dict[str, Any] = field(default_factory=dict)
    remap: bool = False  # REMAP_SIGTERM=SIGQUIT: SIGTERM starts a cold (soft) shutdown
    idempotent: bool = False
    grace_s: float = 0.0


def procedures(p: Any, warm_grace_s: float, soft_grace_s: float) -> list[Procedure]:
    """The three procedures; the warm and soft graces are the ones the checklist computed."""
    return [
        Procedure("naive", f"SIGTERM, {p.grace_short:g} s grace, SIGKILL", grace_s=p.grace_short),
        Procedure("warm", f"SIGTERM, {warm_grace_s:.1f} s grace (> longest task + exit)",
                  grace_s=warm_grace_s),
        Procedure("soft", f"remapped SIGTERM, soft {p.roll_soft:g} s, acks_late, idempotent, "
                          f"{soft_grace_s:.1f} s grace",
                  {"task_acks_late": True, "worker_soft_shutdown_timeout": p.roll_soft},
                  remap=True, idempotent=True, grace_s=soft_grace_s),
    ]


def own_queue(queue: str, worker: str) -> str:
    """A worker's own queue besides the shared one: where the lab sends the task it strikes.
    Once the worker has exited its replacement is told to read it too (``add_consumer``): a
    queue nobody reads any more would keep a requeued task from everyone."""
    return f"{queue}.{worker}"


def worker_spec(proc: Procedure, queue: str, name: str, concurrency: int) -> dict[str, Any]:
    return {"concurrency": concurrency, "queues": [queue, own_queue(queue, name)],
            "settings": dict(proc.settings) or None,
            "env": {"REMAP_SIGTERM": "SIGQUIT"} if proc.remap else None}


class Publisher:
    """A steady stream from a thread of its own: ``rate`` tasks a second, one in
    ``LONG_EVERY`` ``long_s`` long, the others between ``short_s`` and twice that."""

    def __init__(self, queue: str, rate: float, short_s: float, long_s: float, idempotent: bool,
                 seed: int = 13) -> None:
        self.queue, self.rate, self.idempotent = queue, rate, idempotent
        self.short_s, self.long_s = short_s, long_s
        self.sent: dict[str, dict[str, float]] = {}  # id -> {"t": sent at, "s": its duration}
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="publisher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def send(self, seconds: float, queue: str) -> str:
        t = time.time()
        task_id = work.apply_async((seconds, self.idempotent), queue=queue, ignore_result=True).id
        self.sent[task_id] = {"t": t, "s": seconds}
        return task_id

    def _loop(self) -> None:
        n, t0 = 0, time.monotonic()
        while not self._stop.is_set():
            # long at random, not every third: workers take turns, and a fixed pattern could
            # hand every long task to the same ones
            seconds = self.long_s if self._rng.random() < 1 / LONG_EVERY else \
                round(self._rng.uniform(self.short_s, 2 * self.short_s), 3)
            self.send(seconds, self.queue)
            n += 1
            self._stop.wait(max(0.0, t0 + n / self.rate - time.monotonic()))


def strike_moment(s: LabSession, worker: Worker, publisher: Publisher, queue: str, long_s: float,
                  bound: float, timeout: float) -> list[str]:
    """The unlucky moment every deploy meets sooner or later: a long task has just begun on the
    worker about to be stopped. The lab sends it one on its own queue and waits for it to start;
    returns the tasks it runs with more than ``bound`` seconds to go."""
    # it may queue behind what the worker runs and has prefetched (Celery's default multiplier of
    # 4 per process), each up to long_s; and a busy machine may notice its start too late, when
    # it has no more than bound to go: then another is sent, within the same budget
    deadline = time.monotonic() + timeout + (DEFAULT_PREFETCH + 1) * long_s
    while True:
        victim = publisher.send(long_s, queue)
        started = wait_for(lambda v=victim: next((r["t"] for r in s.records(RUNS) if r["id"] == v
                                                  and r["phase"] == "start"), None),
                           max(0.0, deadline - time.monotonic()),
                           f"the task struck on {worker.hostname} to start", interval=0.02)
        runs = s.records(RUNS)
        ended = {r["id"] for r in runs if r["phase"] == "finish"}
        now = time.time()
        left = {r["id"]: r["t"] + publisher.sent[r["id"]]["s"] - now for r in runs
                if r["phase"] == "start" and r["hostname"] == worker.hostname and r["id"] not in ended
                and r["id"] in publisher.sent}
        if started + long_s - now > bound:
            return sorted(i for i, x in left.items() if x > bound)


def stop(s: LabSession, proc: Procedure, old: Worker, new: Worker, struck: list[str],
         queue: str) -> dict[str, Any]:
    """The orchestrator's part: SIGTERM, the grace period, then SIGKILL to what is left."""
    t0 = time.time()
    old.kill(signal.SIGTERM)
    code, killed_at = grace_then_kill(old, proc.grace_s)
    killed = killed_at is not None
    t_exit = time.time()
    s.app.control.add_consumer(own_queue(queue, old.name), destination=[new.hostname], reply=True,
                               timeout=2.0)
    return {"worker": old.hostname, "t_signal": t0, "t_exit": t_exit, "killed": killed,
            "exit_code": code, "struck": struck}


def settled(s: LabSession, queues: list[str], live: list[Worker]) -> bool:
    """Nothing waits in the queues, and no live worker runs or holds a task."""
    if any(where == "queue" for where in locations(s, *queues).values()):
        return False
    inspect = s.app.control.inspect(destination=[w.hostname for w in live], timeout=1.0)
    replies = [inspect.active(), inspect.reserved()]
    return all(r is not None and len(r) == len(live) and not any(r.values()) for r in replies)


def roll(s: LabSession, proc: Procedure, p: Any, bound: float) -> dict[str, Any]:
    """``workers`` workers under a steady stream, replaced one by one as an orchestrator's
    rolling update does (surge one): start a new worker, once it answers stop an old one, and
    go on while the old one shuts down. Each old worker is stopped while it runs a long task
    with more than ``bound`` seconds to go."""
    queue = f"lab13_roll_{proc.name}"
    workers = s.start_workers({f"{proc.name}-{i}": worker_spec(proc, queue, f"{proc.name}-{i}", p.concurrency)
                               for i in range(p.workers)}, ready_timeout=p.timeout + 10)
    life = [{"worker": w.hostname, "t_ready": time.time()} for w in workers]
    publisher = Publisher(queue, p.rate, p.short_s, p.long_s, proc.idempotent)
    t_start = time.time()
    publisher.start()
    try:
        time.sleep(p.warmup_s)
        t_rollout = time.time()
        with ThreadPoolExecutor(p.workers) as pool:
            stopping = []
            for i, old in enumerate(list(workers)):
                name = f"{proc.name}-{p.workers + i}"
                new = s.start_workers({name: worker_spec(proc, queue, name, p.concurrency)},
                                      ready_timeout=p.timeout + 10)[0]
                life.append({"worker": new.hostname, "t_ready": time.time()})
                struck = strike_moment(s, old, publisher, own_queue(queue, old.name), p.long_s, bound,
                                       p.timeout)
                stopping.append(pool.submit(stop, s, proc, old, new, struck, queue))
                workers[i] = new
            stops = [f.result() for f in stopping]
        t_rolled = time.time()
        time.sleep(p.warmup_s)
    finally:
        publisher.stop()
    t_end = time.time()
    queues = [queue, *(own_queue(queue, w["worker"].split("@")[0]) for w in life)]
    # what the live workers still run and hold (up to the default prefetch each), up to long_s each
    settle_s = p.timeout + (DEFAULT_PREFETCH + 1) * p.long_s
    if not poll_until(lambda: settled(s, queues, workers), settle_s, interval=0.2):
        raise TimeoutError(f"the {proc.name} rollout's live workers did not finish within {settle_s:g} s")
    where = locations(s, *queues)
    # settled: nothing is left for them to finish or give back
    s.registry.reap_many([w.process for w in workers], term=signal.SIGKILL, grace=0)
    starts, finishes, effects = s.counts(STARTS), s.counts(FINISHES), s.counts(EFFECTS)
    runs = [r for r in s.records(RUNS) if r["id"] in publisher.sent]
    tasks = []
    for task_id, sent in publisher.sent.items():
        ends = sorted(r["t"] for r in runs if r["id"] == task_id and r["phase"] == "finish")
        tasks.append({"id": task_id, "t_sent": sent["t"], "s": sent["s"],
                      "starts": starts.get(task_id, 0), "finishes": finishes.get(task_id, 0),
                      "effects": effects.get(task_id, 0), "where": where.get(task_id, "gone"),
                      "latency_s": ends[0] - sent["t"] if ends else None})
    return {"procedure": proc.name, "label": proc.label, "grace_s": proc.grace_s,
            "t_start": t_start, "t_rollout": t_rollout, "t_rolled": t_rolled, "t_end": t_end,
            "stops": stops, "life": life, "tasks": tasks,
            "runs": [{k: r[k] for k in ("id", "phase", "t", "hostname")} for r in runs]}


def disruption(roll: dict[str, Any]) -> dict[str, float | None]:
    """What the rollout cost the tasks that finished: how long each waited beyond its own work
    (its first finish - its send - its length), the median for those sent outside the rollout
    against the worst sent during it; and the finishes per second during the rollout against
    the rate sent."""
    def waited(t: dict[str, Any]) -> float:
        return t["latency_s"] - t["s"]

    finished = [t for t in roll["tasks"] if t["latency_s"] is not None]
    inside = [t for t in finished if roll["t_rollout"] <= t["t_sent"] < roll["t_rolled"]]
    outside = sorted(waited(t) for t in finished if t not in inside)
    span = roll["t_rolled"] - roll["t_rollout"]
    ends = sum(1 for r in roll["runs"] if r["phase"] == "finish"
               and roll["t_rollout"] <= r["t"] < roll["t_rolled"])
    sent = sum(1 for t in roll["tasks"] if roll["t_rollout"] <= t["t_sent"] < roll["t_rolled"])
    return {"wait_median_outside_s": round(outside[len(outside) // 2], 3) if outside else None,
            "tasks_outside": len(outside),
            "wait_max_during_s": round(max(waited(t) for t in inside), 3) if inside else None,
            "sent_per_s_during": round(sent / span, 2) if span > 0 else None,
            "finished_per_s_during": round(ends / span, 2) if span > 0 else None}


def outcome(task: dict[str, Any]) -> str:
    """One task of a rollout: ``once``, ``twice`` (its effect applied more than once),
    ``stranded`` (its message waits in ``unacked`` for the visibility timeout) or ``lost``."""
    if task["effects"] > 1:
        return "twice"
    if task["finishes"]:
        return "once"
    return "stranded" if task["where"] == "unacked" else "lost"
