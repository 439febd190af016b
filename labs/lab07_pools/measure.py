"""Lab 07's measurements: a sweep of pools and concurrencies over three workloads, time
limits per pool, and head-of-line blocking from prefetch."""

from __future__ import annotations

import math
import multiprocessing
import time
from typing import Any

from labkit import cpu_share
from labkit.session import LabSession
from labs.lab07_pools.tasks import LIMITS, cpu, io, mixed, noop, overrun, spin

QUEUE = "lab07"


def calibrate(cpu_ms: float) -> int:
    """Iterations of ``spin`` that cost ``cpu_ms`` on this machine (best of three)."""
    probe = 200_000
    best = min(_timed(probe) for _ in range(3))
    return max(1, round(probe * cpu_ms / 1000 / best))


def _timed(iterations: int) -> float:
    started = time.perf_counter()
    spin(iterations)
    return time.perf_counter() - started


def cpu_reference(concurrencies: list[int], cores: int) -> int | None:
    """The prefork concurrency the CPU claim compares with one process: the measured one above 1
    nearest the core count (at or below it first), or None when only 1 was measured."""
    above = [c for c in concurrencies if c > 1]
    if not above:
        return None
    return min(above, key=lambda c: (c > cores, abs(c - cores)))


def parallel_speedup(iterations: int, processes: int, cpu_s: float) -> dict[str, Any]:
    """The control for the CPU claims: how much faster ``processes`` plain processes (no Celery)
    run the same pure-Python work than one does, on this machine, now. A busy laptop offers
    less than its core count; prefork can gain only what the machine gives."""
    tasks = max(4 * processes, math.ceil(0.5 * processes / cpu_s))
    ctx = multiprocessing.get_context("spawn")
    elapsed = {}
    for n in (1, processes):
        with ctx.Pool(n) as pool:
            pool.map(spin, [1] * n)  # every process started and imported
            started = time.perf_counter()
            pool.map(spin, [iterations] * tasks, chunksize=1)
            elapsed[n] = time.perf_counter() - started
    return {"processes": processes, "tasks": tasks, "serial_s": elapsed[1],
            "parallel_s": elapsed[processes], "speedup": elapsed[1] / elapsed[processes]}


# The measured workers send no task events: on short tasks events cost a worker a large share
# of its rate (Lab 01 measures it), and the drains are timed without them (labkit.drain).
NO_EVENTS = {"events": False, "settings": {"worker_send_task_events": False}}


def sweep(session: LabSession, configs: list[tuple[str, int]], *, latency: float,
          iterations: int, cpu_s: float, cores: int, per_slot: int, noop_tasks: int,
          timeout: float) -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, float]]:
    """Every configuration's rows (each workload a drain of a pre-filled queue), the control
    (plain processes) taken right after prefork's CPU batch at the concurrency the CPU claim
    compares with, and each pool's ceiling: no-op tasks drained per second by its worker at
    the pool's highest concurrency."""
    rows, ceilings = [], {}
    control = None
    control_at = cpu_reference([c for pool, c in configs if pool == "prefork"], cores)
    top = {pool: max(c for p, c in configs if p == pool) for pool, _ in configs}
    for pool, concurrency in configs:
        worker = session.start_worker(f"{pool}{concurrency}", pool=pool, concurrency=concurrency,
                                      queues=[QUEUE], **NO_EVENTS)
        # warm up: connections, the green hub, pool children
        session.drain([worker], io.name, [(0.0,)] * 2, timeout=timeout, wake=[QUEUE])
        rss = worker.rss_bytes()
        if concurrency == top[pool]:
            # first, beside the IO batch: a green worker that has just run CPU-bound batches
            # drained no-op tasks at half its usual rate once (141/s against 290/s)
            ceilings[pool] = ceiling(session, worker, noop_tasks, timeout)
        n_io = max(8, per_slot * concurrency)
        # CPU timings want a batch long against the fixed costs: a second of ideal work at least
        n_cpu = max(24, 4 * per_slot * min(concurrency, cores),
                    math.ceil(1.0 * min(concurrency, cores) / cpu_s))
        n_mixed = max(8, per_slot * min(concurrency, 8))  # CPU-bound past a few slots anyway
        workloads = {
            "io": (io.name, [(latency,)] * n_io),
            "cpu": (cpu.name, [(iterations,)] * n_cpu),
            "mixed": (mixed.name, [(iterations, latency)] * n_mixed),
        }
        for name, (task, args) in workloads.items():
            # the cores the worker used during the drain, and the ones at hand (cpu_share):
            # what the GIL allows threads is read there, not from two drains' wall times
            with cpu_share.CpuSampler([worker.pid]) as sampled:
                drained = session.drain([worker], task, args, timeout=timeout, wake=[QUEUE])
            cores_during = sampled.window(drained.started_at, drained.ended_at)
            rows.append({"pool": pool, "concurrency": concurrency, "workload": name,
                         "start_s": worker.ready_s, "rss_mb": rss / 1e6, "n": drained.n,
                         "elapsed_s": drained.drain_s, "throughput": drained.rate,
                         "used_cores": cores_during["used_cores"],
                         "available_cores": cores_during["available_cores"],
                         # what the CPU work took where it ran (the task returns it)
                         "min_runtime_s": (min(m["result"] for m in drained.metas)
                                           if name != "io" else None)})
            if pool == "prefork" and name == "cpu" and concurrency == control_at:
                # the machine's parallelism at the same moment, for the CPU claim's margin
                control = parallel_speedup(iterations, min(concurrency, cores), cpu_s)
        # everything it ran has finished: a green pool's slow warm shutdown is not worth waiting
        session.stop_workers([worker], timeout=1.5)
    # the CPU cost is the fastest execution of the CPU task in any worker (the driver's
    # calibration only aimed at it); the ideals follow from it, the bounds from the ceilings
    cost = min(r["min_runtime_s"] for r in rows if r["workload"] == "cpu")
    for r in rows:
        c = r["concurrency"]
        r["cpu_cost_s"] = cost
        r["ideal"] = {"io": c / latency, "cpu": min(c, cores) / cost,
                      "mixed": min(c / (cost + latency), cores / cost)}[r["workload"]]
        r["ratio"] = r["throughput"] / r["ideal"]
        r["ceiling"] = ceilings[r["pool"]]
        r["bound"] = min(r["ideal"], r["ceiling"])
        r["of_bound"] = r["throughput"] / r["bound"]
        # a finite batch cannot end before n / ideal, nor before its last task has started (no
        # sooner than (n - 1) / ceiling) and run: near the knee that last run counts
        duration = {"io": latency, "cpu": cost, "mixed": cost + latency}[r["workload"]]
        n = r["n"]
        r["batch_bound"] = n / max(n / r["ideal"], (n - 1) / r["ceiling"] + duration)
        r["of_batch_bound"] = r["throughput"] / r["batch_bound"]
    return rows, control, ceilings


CEILING_S = 1.5  # a ceiling drain lasts this long at least: shorter ones read low


def ceiling(session: LabSession, worker: Any, n: int, timeout: float) -> float:
    """No-op tasks drained per second: the better of two drains, the second sized to last
    ``CEILING_S`` at the first one's rate (a short drain pays its start-up on every task)."""
    first = session.drain([worker], noop.name, [()] * n, timeout=timeout, wake=[QUEUE]).rate
    n2 = max(n, math.ceil(CEILING_S * first))
    second = session.drain([worker], noop.name, [()] * n2, timeout=timeout, wake=[QUEUE]).rate
    return max(first, second)


def events_cost(session: LabSession, pool: str, concurrency: int, without: float, n: int,
                timeout: float) -> dict[str, Any]:
    """The same no-op drain on the same pool with task events on: what the lab's instruments
    would cost the measured worker."""
    worker = session.start_worker(f"{pool}{concurrency}-events", pool=pool,
                                  concurrency=concurrency, queues=[f"{QUEUE}_events"])
    n = max(n, math.ceil(CEILING_S * without))
    with_events = session.drain([worker], noop.name, [()] * n, timeout=timeout,
                                wake=[f"{QUEUE}_events"]).rate
    session.stop_workers([worker], timeout=1.5)
    return {"pool": pool, "concurrency": concurrency, "without_events": without,
            "with_events": with_events, "overhead": 1 - with_events / without}


def two_workers(session: LabSession, pool: str, concurrency: int, latency: float, n: int,
                timeout: float) -> dict[str, Any]:
    """One worker process, then two of the same configuration, draining a pre-filled IO queue,
    back to back, the machine's CPU sampled throughout (labkit.cpu_share): each drain says how
    many cores its workers used and how many more sat idle, so a second process that got no
    core of its own is told apart from one that gained nothing from it. Each worker's share is
    at least twice what its prefetch (4 x concurrency) reserves at once: with less, the first
    worker to consume takes the whole queue and the second has nothing to do."""
    own = [f"{QUEUE}_two_{i}" for i in range(2)]  # each worker's, to wake it (labkit.drain)
    workers = session.start_workers({
        f"{pool}{concurrency}-{i}": {"pool": pool, "concurrency": concurrency,
                                     "queues": [queue], **NO_EVENTS} for i, queue in enumerate(own)})
    share = max(n, 8 * concurrency)
    with cpu_share.CpuSampler([w.pid for w in workers]) as cpu:
        one = session.drain(workers[:1], io.name, [(latency,)] * share, timeout=timeout,
                            wake=own[:1])
        both = session.drain(workers, io.name, [(latency,)] * (2 * share), timeout=timeout,
                             wake=own)
    session.stop_workers(workers, timeout=1.5)
    return {"pool": pool, "concurrency": concurrency, "workers": 2, "n": both.n,
            "throughput": both.rate, **cpu.window(both.started_at, both.ended_at),
            "one_worker": {"n": one.n, "throughput": one.rate,
                           **cpu.window(one.started_at, one.ended_at)}}


def time_limits(session: LabSession, pools: list[str], soft: float, hard: float, runs_for: float,
                timeout: float) -> list[dict[str, Any]]:
    """The same overrunning task on every pool at once, each on its own queue."""
    settings = {"task_soft_time_limit": soft, "task_time_limit": hard}
    workers = session.start_workers({
        f"limits-{pool}": {"pool": pool, "concurrency": 1 if pool == "solo" else 2,
                           "queues": [f"{QUEUE}_limits_{pool}"], "settings": settings}
        for pool in pools})
    sent = {pool: (time.time(), overrun.apply_async((runs_for,), queue=f"{QUEUE}_limits_{pool}"))
            for pool in pools}
    deadline = time.monotonic() + runs_for + timeout
    ids = {r.id for _, r in sent.values()}
    while time.monotonic() < deadline:
        if all(session.events.count(i, "task-succeeded") or session.events.count(i, "task-failed")
               for i in ids):
            break
        time.sleep(0.05)
    records: dict[str, list[str]] = {}
    soft_after: dict[str, float] = {}
    for row in session.records(LIMITS):
        records.setdefault(row["id"], []).append(row["outcome"])
        if row["outcome"] == "soft":
            soft_after.setdefault(row["id"], round(row["after"], 3))
    rows = []
    for pool, (t0, result) in sent.items():
        ended = [e for e in session.events.snapshot() if e.get("uuid") == result.id
                 and e["type"] in ("task-succeeded", "task-failed")]
        failure = type(result.result).__name__ if result.state == "FAILURE" else None
        rows.append({
            "pool": pool, "state": result.state, "exception": failure,
            "ended_after_s": round(ended[0]["timestamp"] - t0, 2) if ended else None,
            "soft_limit_reached_task": "soft" in records.get(result.id, []),
            "soft_after_s": soft_after.get(result.id),
            "ran_to_the_end": "ran to the end" in records.get(result.id, []),
        })
    session.stop_workers(workers, timeout=runs_for + 2)
    return rows


def stuck_behind(events: dict[str, dict[str, dict]], long_id: str,
                 short_ids: list[str]) -> tuple[str, int, int]:
    """(the worker that ran the long task, shorts stuck behind it, shorts it ran), by evidence,
    not by latency: stuck means received by that worker while the long task still ran, and
    started only once it had ended. A short that merely queued on the free worker is not."""
    busy = events[long_id]["task-received"]["hostname"]
    long_end = events[long_id]["task-succeeded"]["timestamp"]
    mine = [events[i] for i in short_ids if events[i]["task-received"]["hostname"] == busy]
    stuck = [e for e in mine
             if e["task-received"]["timestamp"] < long_end <= e["task-started"]["timestamp"]]
    return busy, len(stuck), len(mine)


def head_of_line(session: LabSession, multiplier: int, acks_late: bool, long_s: float,
                 shorts: int, timeout: float) -> dict[str, Any]:
    """Two single-process workers; long tasks with short ones queued behind them."""
    settings = {"task_acks_late": acks_late}
    name = f"m{multiplier}{'late' if acks_late else ''}"
    workers = session.start_workers({
        f"hol-{name}-{i}": {"concurrency": 1, "prefetch": multiplier, "queues": [f"{QUEUE}_hol"],
                            "settings": settings} for i in range(2)})
    submitted = []
    for i in range(shorts + 1):
        task = io.s(long_s) if i == 0 else io.s(0.01)
        submitted.append((i > 0, time.time(), task.apply_async(queue=f"{QUEUE}_hol")))
    ids = {r.id for _, _, r in submitted}
    session.events.wait_for_tasks(ids, timeout=long_s + timeout)
    events = {i: e for i, e in session.events.by_task().items() if i in ids}
    done = {i: e["task-succeeded"]["timestamp"] for i, e in events.items()}
    latencies = [done[r.id] - t for short, t, r in submitted if short]
    session.stop_workers(workers)
    long_id = submitted[0][2].id
    busy, stuck, on_busy = stuck_behind(events, long_id, [r.id for short, _, r in submitted if short])
    return {"multiplier": multiplier, "acks_late": acks_late, "long_s": long_s,
            "short_latencies": latencies, "busy_worker": busy,
            "shorts_on_busy_worker": on_busy, "stuck_behind_the_long_one": stuck}
