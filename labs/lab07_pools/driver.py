"""Lab 07: pool comparison (prefork, threads, gevent, eventlet, solo) against the ideal.

``python -m labs.lab07_pools.driver`` is ``celery-lab run 07``; the notebook calls ``run()``.
"""

from __future__ import annotations

import os
import sys
from functools import partial
from typing import Any

from labkit import runner
from labkit.cli import run_script
from labkit.errors import SetupError
from labkit.evidence import Evidence
from labkit.lab import Lab
from labkit.params import Param, Params
from labkit.session import LabSession
from labs.lab07_pools import measure, plots

POOLS = ["prefork", "threads", "gevent", "eventlet", "solo"]
GREEN = {"gevent", "eventlet"}

PARAMS = {
    "pools": Param(POOLS, "pools to compare"),
    "process_concurrency": Param([1, 2, 4], "concurrencies for prefork and threads (a few: "
                                 "the IO claim compares green pools with prefork at these)",
                                 quick=[1, 2], min=1, max=4),
    "green_concurrency": Param([1, 8, 32, 128], "concurrencies for gevent and eventlet",
                               quick=[1, 16], min=1, max=1000),
    "latency": Param(0.05, "IO-bound task: seconds of waiting (>= 0.04: shorter, Celery's own "
                     "per-task cost, not the wait, sets the pace)", min=0.04, max=2),
    "cpu_ms": Param(20.0, "CPU-bound task: milliseconds of pure-Python work", min=1, max=2000),
    "per_slot": Param(4, "tasks per concurrency slot in each batch", quick=3, min=1, max=50),
    "noop_tasks": Param(1000, "no-op tasks per ceiling drain (a worker's own limit, per pool)",
                        quick=500, min=300, max=20000),
    "soft_limit": Param(0.5, "task_soft_time_limit for the overrunning task, seconds", min=0.1,
                        max=30),
    "hard_limit": Param(1.0, "task_time_limit, seconds", min=0.2, max=60),
    "long_s": Param(1.5, "head-of-line: the long task, seconds", quick=1.0, min=0.3, max=30),
    "shorts": Param(12, "head-of-line: short tasks sent behind it", min=4, max=200),
    "timeout": Param(60.0, "bound on every wait, seconds", min=5),
}


def validate(p: Params) -> None:
    unknown = set(p.pools) - set(POOLS)
    if unknown:
        raise SetupError(f"bad param pools: unknown {sorted(unknown)}; choose from {POOLS}")
    if p.hard_limit <= p.soft_limit:
        raise SetupError("bad param hard_limit: it must exceed soft_limit")
    if set(p.pools) & set(GREEN) and max(p.green_concurrency) < 16:
        raise SetupError(f"bad param green_concurrency={','.join(map(str, p.green_concurrency))}: "
                         "green_pools_win_on_io needs a green pool at 16 or more")
    if max(p.process_concurrency) < 2:
        raise SetupError("bad param process_concurrency: needs a value above 1 (threads against "
                         "prefork on CPU work compares it with 1)")
    if 1 not in p.process_concurrency or (set(p.pools) & set(GREEN) and 1 not in p.green_concurrency):
        raise SetupError("bad param process_concurrency/green_concurrency: each needs 1 (the "
                         "one-at-a-time and scaling claims compare against it)")


def configs(p: Params) -> list[tuple[str, int]]:
    out = []
    for pool in p.pools:
        levels = ([1] if pool == "solo" else p.green_concurrency if pool in GREEN
                  else p.process_concurrency)
        out += [(pool, c) for c in levels]
    return out


def measure_lab(s: LabSession) -> None:
    p = s.params
    cores = os.cpu_count() or 1
    iterations = measure.calibrate(p.cpu_ms)
    s.measured(cores=cores, cpu_iterations=iterations)
    plan = configs(p)
    s.step(f"sweep: {len(plan)} worker configurations x io/cpu/mixed; {p.cpu_ms} ms of CPU = "
           f"{iterations} iterations; {cores} cores")
    rows, control, ceilings = measure.sweep(
        s, plan, latency=p.latency, iterations=iterations, cpu_s=p.cpu_ms / 1000, cores=cores,
        per_slot=p.per_slot, noop_tasks=p.noop_tasks, timeout=p.timeout)
    s.measured(cpu_cost_s=rows[0]["cpu_cost_s"] if rows else None,
               ceiling_tasks_per_s={pool: round(rate, 1) for pool, rate in ceilings.items()},
               bound_rows=bound_rows(rows))
    s.write_csv("sweep.csv", rows)
    if control:
        s.step(f"control: {control['processes']} plain processes ran the CPU work "
               f"{control['speedup']:.2f}x faster than one, right after prefork's batch")
    s.measured(parallel_control=control)
    machine_speedup = control["speedup"] if control else None
    check_sweep(s.evidence, rows, cores, machine_speedup)
    check_bound(s.evidence, rows)
    check_memory(s.evidence, rows)

    top = top_green_io(rows) or max((r for r in rows if r["workload"] == "io"),
                                    key=lambda r: r["concurrency"])
    s.step(f"the instruments' cost: {top['pool']} x{top['concurrency']} no-op drain with events on")
    cost = measure.events_cost(s, top["pool"], top["concurrency"], ceilings[top["pool"]],
                               p.noop_tasks, p.timeout)
    s.measured(instrumentation_overhead=round(cost["overhead"], 3), events_cost=cost)
    check_instruments_off(s.evidence, s.events.snapshot(), [f"{pool}{c}@" for pool, c in plan],
                          cost)
    green = top_green_io(rows)
    if green:
        s.step(f"one, then two worker processes of {green['pool']} x{green['concurrency']} on "
               "one IO queue, the cores they used and the idle ones sampled throughout")
        two = measure.two_workers(s, green["pool"], green["concurrency"], p.latency,
                                  green["n"], p.timeout)
        s.measured(two_workers=two)
        check_two_workers(s.evidence, green, two)
    s.write_json("ceiling.json", {"ceiling_tasks_per_s": ceilings, "events_cost": cost,
                                  "two_workers": two if green else None})

    s.step(f"time limits (soft {p.soft_limit} s, hard {p.hard_limit} s) on every pool")
    limits = measure.time_limits(s, p.pools, p.soft_limit, p.hard_limit,
                                 runs_for=p.hard_limit + 1.5, timeout=p.timeout)
    s.measured(time_limits=limits)
    check_limits(s.evidence, p, limits)

    s.step("head-of-line blocking: prefetch multiplier 4 against 1 with acks_late")
    hol = [measure.head_of_line(s, 4, False, p.long_s, p.shorts, p.timeout),
           measure.head_of_line(s, 1, True, p.long_s, p.shorts, p.timeout)]
    s.write_json("head_of_line.json", hol)
    check_hol(s.evidence, hol)

    s.measured(choose=choose(rows))


def bound_rows(rows: list[dict]) -> list[dict[str, Any]]:
    """The result contract: per configuration and workload, throughput against
    ``bound = min(ideal, ceiling)``, ``ratio = throughput / bound``."""
    return [{"pool": r["pool"], "concurrency": r["concurrency"], "workload": r["workload"],
             "throughput": round(r["throughput"], 1), "ideal": round(r["ideal"], 1),
             "ceiling": round(r["ceiling"], 1), "bound": round(r["bound"], 1),
             "ratio": round(r["of_bound"], 3)} for r in rows]


def top_green_io(rows: list[dict]) -> dict | None:
    """The IO row of the green pool configuration with the most concurrency (the one the
    ceiling limits most)."""
    green = [r for r in rows if r["pool"] in GREEN and r["workload"] == "io"]
    return max(green, key=lambda r: (r["concurrency"], r["throughput"])) if green else None


# On IO work the bound predicts one worker's throughput within this band. Its top leaves room
# for the ceiling's own noise: a green worker's no-op rate has measured 141-313/s on this
# machine, idle, from run to run (twice about half its usual rate, below its own IO rate)
BOUND_BAND = (0.5, 2.0)


def check_bound(ev: Evidence, rows: list[dict]) -> None:
    io_rows = [r for r in rows if r["workload"] == "io"]
    low, high = BOUND_BAND
    ev.check("io_throughput_follows_the_one_worker_bound",
             "on IO work one worker's throughput follows its bound, min(ideal, ceiling), the "
             "ceiling being the no-op tasks the pool's worker drains per second (measured at its "
             "highest concurrency, applied to all its rows); for a batch of n the bound counts "
             "the last task too: it starts no sooner than (n - 1) / ceiling, then runs",
             {f"{r['pool']}x{r['concurrency']}": {"throughput": round(r["throughput"], 1),
                                                  "ideal": round(r["ideal"], 1),
                                                  "ceiling": round(r["ceiling"], 1),
                                                  "batch_bound": round(r["batch_bound"], 1),
                                                  "of_batch_bound": round(r["of_batch_bound"], 3)}
              for r in io_rows},
             f"throughput / batch bound within [{low}, {high}] for every IO configuration",
             bool(io_rows) and all(low <= r["of_batch_bound"] <= high for r in io_rows))


def check_instruments_off(ev: Evidence, events: list[dict], measured_hosts: list[str],
                          cost: dict[str, Any]) -> None:
    """The sweep's workers sent no task events: the throughput was measured without the lab's
    instruments (the drains are timed from markers and the results' date_done)."""
    sent = sum(1 for e in events if e.get("type", "").startswith("task-")
               and any(str(e.get("hostname", "")).startswith(h) for h in measured_hosts))
    ev.check("throughput_is_measured_with_the_instruments_off",
             "the measured workers send no task events, so the throughput is Celery's, not "
             "Celery's plus the lab's instruments (on a no-op drain events would cost "
             f"{cost['pool']} x{cost['concurrency']} "
             + (f"{cost['overhead']:.0%} of its rate)" if cost["overhead"] > 0 else
                "no share of its rate this run measured)"),
             {"task_events_from_measured_workers": sent,
              "no_op_rate_without_events": round(cost["without_events"], 1),
              "no_op_rate_with_events": round(cost["with_events"], 1)},
             "0 task events", sent == 0)


# Two worker processes must beat one by this factor, when the one is held by its ceiling and
# the two had the cores to run at once.
MIN_TWO_WORKER_GAIN = 1.25
# The cores the run had at hand (used by it, or idle) during a drain, for a claim about
# parallel work to be judged: one worker held by its ceiling uses about one core, so with 1.6
# at hand two could have run 1.6x its rate, past the 1.25 the claim asks even with Redis and
# the driver taking their share; the CPU claim's halves ask the same of their drains.
MIN_SPARE_PARALLELISM = 1.6


def check_two_workers(ev: Evidence, row: dict, two: dict[str, Any]) -> None:
    """``row``: the sweep's row of the configuration (is one worker held by its ceiling?);
    ``two``: one worker's drain and then two's, measured back to back (measure.two_workers)."""
    one = two["one_worker"]
    gain = two["throughput"] / one["throughput"]
    # a second process helps only if the first was held by its ceiling, and it can show it only
    # if it had a core to run on during the drain (sampled then, not in a control before it)
    held = row["ideal"] > 1.5 * row["ceiling"]
    available = two.get("available_cores")
    spare = available is not None and available >= MIN_SPARE_PARALLELISM
    why = ("" if held and spare else
           f"during the two workers' drain they used {two.get('used_cores')} cores and "
           f"{two.get('idle_cores')} more sat idle: the rest of the machine was busy" if held else
           f"one worker's ideal ({row['ideal']:.0f}/s) is not past 1.5 x its ceiling "
           f"({row['ceiling']:.0f}/s)")
    ev.check("more_worker_processes_lift_the_ceiling",
             "the one-worker ceiling is per process: two worker processes of the same "
             "configuration drain an IO queue faster than one",
             {"one_worker": round(one["throughput"], 1), "two_workers": round(two["throughput"], 1),
              "gain": round(gain, 2), "one_worker_ideal": round(row["ideal"], 1),
              "one_worker_ceiling": round(row["ceiling"], 1),
              "one_worker_used_cores": one.get("used_cores"),
              "two_workers_used_cores": two.get("used_cores"),
              "available_cores_during_the_two": available, "decided": not why},
             f"two / one >= {MIN_TWO_WORKER_GAIN} (with >= {MIN_SPARE_PARALLELISM} cores at hand)"
             if not why else f"not decided here: {why}",
             gain >= MIN_TWO_WORKER_GAIN if not why else True)


def _best(rows: list[dict], pool: str, workload: str) -> dict | None:
    mine = [r for r in rows if r["pool"] == pool and r["workload"] == workload]
    return max(mine, key=lambda r: r["throughput"]) if mine else None


def _at(rows: list[dict], pool: str, workload: str, concurrency: int) -> dict | None:
    return next((r for r in rows if r["pool"] == pool and r["workload"] == workload
                 and r["concurrency"] == concurrency), None)


def check_sweep(ev: Evidence, rows: list[dict], cores: int,
                machine_speedup: float | None) -> None:
    over = [r for r in rows if r["ratio"] > 1.1]
    ev.check("nobody_beats_the_ideal",
             "no pool exceeds its ideal throughput: IO concurrency / latency, CPU "
             "min(concurrency, cores) / cost (the fastest single execution measured)",
             {"configurations": len(rows), "max_ratio": round(max(r["ratio"] for r in rows), 3)},
             "every measured / ideal <= 1.1", not over)
    ones = [r for r in rows if r["concurrency"] == 1 and r["workload"] == "io"]
    ev.check("concurrency_one_runs_one_task_at_a_time",
             "at concurrency 1 (and with solo) tasks run one at a time: IO throughput is about "
             "1 / latency, whatever the pool",
             {r["pool"]: round(r["ratio"], 3) for r in ones},
             "measured / ideal between 0.5 and 1.1 for every pool at concurrency 1",
             bool(ones) and all(0.5 <= r["ratio"] <= 1.1 for r in ones))
    green = [b for b in (_best(rows, pool, "io") for pool in GREEN) if b]
    prefork = _best(rows, "prefork", "io")
    if green:
        top = max(green, key=lambda r: r["throughput"])
        latency = top["concurrency"] / top["ideal"]
        per_core = cores / latency  # prefork with one process per core, perfectly
        ev.check("green_pools_win_on_io",
                 "on IO-bound work a green pool at high concurrency does more than prefork with a "
                 "process per core could do even perfectly",
                 {"green": f"{top['pool']} x{top['concurrency']}: {top['throughput']:.0f}/s",
                  "prefork_measured": (f"x{prefork['concurrency']}: {prefork['throughput']:.0f}/s"
                                       if prefork else None),
                  "prefork_per_core_ideal": f"x{cores}: {per_core:.0f}/s"},
                 f"green > {per_core:.0f}/s (cores / latency)", top["throughput"] > per_core)
    t1, p1 = _at(rows, "threads", "cpu", 1), _at(rows, "prefork", "cpu", 1)
    reference = measure.cpu_reference([r["concurrency"] for r in rows
                                       if r["pool"] == "prefork" and r["workload"] == "cpu"], cores)
    tmax = _best(rows, "threads", "cpu")
    pmax = _at(rows, "prefork", "cpu", reference) if reference else None
    if t1 and p1 and tmax and pmax and pmax["concurrency"] > 1:
        threads_gain = tmax["throughput"] / t1["throughput"]
        prefork_gain = pmax["throughput"] / p1["throughput"]
        # Read where it acts: the cores each worker used during its own CPU drain, judged only
        # when more were at hand then (cpu_share). Two drains' wall times are two moments of a
        # busy machine: beside other jobs threads x4 once read 1.3x threads x1 and prefork x4
        # 0.97x prefork x1, with a control of 1.8x taken after. Threads use one core at most
        # (the GIL); prefork's children use several. Nor is prefork judged when the work is short
        # against Celery's own cost per task: a 1 ms task on prefork is held by the consumer
        # loop's ceiling, not by the cores.
        # the GIL shows at the most threads measured (the best rate may be at one thread)
        tmost = max((r for r in rows if r["pool"] == "threads" and r["workload"] == "cpu"),
                    key=lambda r: r["concurrency"])
        t_used, t_hand = tmost.get("used_cores"), tmost.get("available_cores")
        p_used, p_hand = pmax.get("used_cores"), pmax.get("available_cores")
        gil_decided = t_used is not None and t_hand is not None and t_hand >= MIN_SPARE_PARALLELISM
        long_enough = pmax["ideal"] <= 0.5 * pmax.get("ceiling", float("inf"))
        spare = p_used is not None and p_hand is not None and p_hand >= MIN_SPARE_PARALLELISM
        decidable = spare and long_enough
        why = ("" if decidable else
               f"prefork's ideal ({pmax['ideal']:.0f}/s) is over half its ceiling "
               f"({pmax['ceiling']:.0f}/s): Celery's own cost per task, not the cores, sets it"
               if spare else f"the run had {p_hand} cores at hand during prefork's drain")
        expected = [f"threads use <= {MAX_GIL_CORES} cores with >= {MIN_SPARE_PARALLELISM} at hand"
                    if gil_decided else "the threads half cannot be decided here: the run had "
                    f"{t_hand} cores at hand during their drain",
                    f"prefork uses >= {MIN_PREFORK_CORES}" if decidable
                    else f"the prefork half cannot be decided here: {why}"]
        ev.check("threads_do_not_scale_cpu_work",
                 "on CPU-bound pure-Python work threads gain nothing from concurrency (the GIL): "
                 "their worker uses one core at most, however many are free; prefork's processes "
                 "use the free cores",
                 {"threads_best_over_1": round(threads_gain, 2),
                  f"threads_{tmost['concurrency']}_used_cores": t_used,
                  f"threads_{tmost['concurrency']}_cores_at_hand": t_hand,
                  f"prefork_{pmax['concurrency']}_over_1": round(prefork_gain, 2),
                  f"prefork_{pmax['concurrency']}_used_cores": p_used,
                  f"prefork_{pmax['concurrency']}_cores_at_hand": p_hand,
                  "plain_processes_speedup": (round(machine_speedup, 2)
                                              if machine_speedup is not None else None)},
                 "; ".join(expected),
                 (t_used <= MAX_GIL_CORES if gil_decided else True)
                 and (p_used >= MIN_PREFORK_CORES if decidable else True))


SHARED = ("threads", "gevent", "eventlet")
MAX_GIL_CORES = 1.25  # one core's worth, and the process's own work outside the GIL
MIN_PREFORK_CORES = 1.4  # well past what one process can use: its children ran at once


def check_memory(ev: Evidence, rows: list[dict]) -> None:
    """Resident memory per extra slot: a prefork slot is a process, the others share one."""
    def per_slot(pool: str) -> float | None:
        rss = {r["concurrency"]: r["rss_mb"] for r in rows if r["pool"] == pool}
        if len(rss) < 2:
            return None
        low, high = min(rss), max(rss)
        return (rss[high] - rss[low]) / (high - low)

    prefork = per_slot("prefork")
    shared = {pool: per_slot(pool) for pool in SHARED if per_slot(pool) is not None}
    if prefork is None or not shared:
        ev.measured(memory_per_slot_mb="not measured: needs prefork and a shared pool at two "
                                       "concurrencies each")
        return
    ev.measured(memory_per_slot_mb={"prefork": round(prefork, 1),
                                    **{k: round(v, 2) for k, v in shared.items()}})
    ev.check("a_prefork_slot_costs_a_process_of_memory",
             "each prefork slot is a child process with its own resident memory; a thread or "
             "greenlet slot shares the one process and adds next to nothing",
             {"prefork_mb_per_slot": round(prefork, 1),
              **{f"{k}_mb_per_slot": round(v, 2) for k, v in shared.items()}},
             "prefork per slot > 10 x every shared pool's (and > 5 MB)",
             prefork > 10 * max(max(shared.values()), 0.5))


def check_limits(ev: Evidence, p: Params, limits: list[dict]) -> None:
    by_pool = {r["pool"]: r for r in limits}
    pre = by_pool.get("prefork")
    if pre:
        ev.check("prefork_enforces_soft_and_hard_time_limits",
                 "prefork delivers SoftTimeLimitExceeded inside the task at the soft limit and "
                 "kills it at the hard limit (TimeLimitExceeded)",
                 pre, f"soft reached the task in [0.75 x {p.soft_limit}, {p.hard_limit}) s; FAILURE with "
                      f"TimeLimitExceeded, ended in [{p.hard_limit}, {p.hard_limit + 1}) s after the send",
                 pre["soft_limit_reached_task"] and pre["soft_after_s"] is not None
                 and 0.75 * p.soft_limit <= pre["soft_after_s"] < p.hard_limit
                 and pre["state"] == "FAILURE"
                 and "TimeLimitExceeded" in (pre["exception"] or "")
                 and pre["ended_after_s"] is not None
                 and p.hard_limit - 0.02 <= pre["ended_after_s"] < p.hard_limit + 1.0)
    enforced = {r["pool"]: enforcement(r) for r in limits}
    ev.measured(time_limits_not_enforced=[pool for pool, how in enforced.items() if how == "none"])
    expected = {pool: ENFORCES[pool] for pool in enforced}
    ev.check("which_pools_enforce_time_limits",
             "only prefork enforces both limits; gevent enforces the hard limit (a gevent.Timeout "
             "around the task) but never delivers the soft one; threads, eventlet and solo let the "
             "task run past both",
             enforced, str(expected), enforced == expected)


# What each pool does to a task past task_soft_time_limit and task_time_limit.
ENFORCES = {"prefork": "soft+hard", "gevent": "hard", "threads": "none", "eventlet": "none",
            "solo": "none"}


def enforcement(row: dict) -> str:
    """Which limits the task met: 'soft+hard', 'hard', 'soft' or 'none', from its own records
    (SoftTimeLimitExceeded caught) and its end state (TimeLimitExceeded)."""
    hard = row["state"] == "FAILURE" and "TimeLimitExceeded" in (row["exception"] or "")
    soft = bool(row["soft_limit_reached_task"])
    return {(True, True): "soft+hard", (False, True): "hard", (True, False): "soft",
            (False, False): "none"}[(soft, hard)]


def check_hol(ev: Evidence, hol: list[dict]) -> None:
    eager, fair = hol
    ev.check("prefetch_holds_short_tasks_behind_a_long_one",
             "with prefetch multiplier 4 a busy worker takes short tasks while its long one runs "
             "and starts them only after it ends, though another worker is free; multiplier 1 "
             "with acks_late leaves them to the free worker",
             {"stuck_with_multiplier_4": eager["stuck_behind_the_long_one"],
              "stuck_with_multiplier_1_acks_late": fair["stuck_behind_the_long_one"]},
             ">= 1 stuck with 4, 0 with 1 + acks_late",
             eager["stuck_behind_the_long_one"] >= 1 and fair["stuck_behind_the_long_one"] == 0)


def choose(rows: list[dict]) -> list[dict[str, Any]]:
    """A plain table: for each workload, the best configuration measured, and the runner-up."""
    out = []
    for workload in ("io", "cpu", "mixed"):
        ranked = sorted((r for r in rows if r["workload"] == workload),
                        key=lambda r: r["throughput"], reverse=True)
        for rank, r in enumerate(ranked[:2], 1):
            out.append({"workload": workload, "rank": rank, "pool": r["pool"],
                        "concurrency": r["concurrency"], "tasks_per_s": round(r["throughput"], 1),
                        "of_ideal": round(r["ratio"], 2), "rss_mb": round(r["rss_mb"], 1)})
    return out


LAB = Lab(
    id="07_pools",
    title="Pool comparison (prefork, threads, gevent, eventlet, solo) against the ideal",
    measure=measure_lab,
    figures=plots.FIGURES,
    params=PARAMS,
    validate=validate,
    wall_time="default about 140 s, --quick about 95 s",
)

# What the notebook calls: the same measurement as ``celery-lab run 07``.
run = partial(runner.run, LAB)

if __name__ == "__main__":
    sys.exit(run_script(LAB))
