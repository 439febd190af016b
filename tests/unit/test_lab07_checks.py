"""Lab 07's check functions fed a real quick run's sweep, time limits and head-of-line data and,
one property at a time, what pools that behaved otherwise would measure. No Redis, no worker:
the rows are shaped like measure.py's (sweep.csv, time_limits, head_of_line.json)."""

from __future__ import annotations

from typing import Any

import pytest

from labkit.evidence import Evidence
from labkit.params import Params, resolve
from labs.lab07_pools import driver
from tests.unit.checks import assert_only_fails

Row = dict[str, Any]

CORES = 2
LATENCY = 0.05  # the IO task's sleep
COST = 0.01986  # the fastest CPU execution measured: the CPU ideal's cost

# tasks/s measured by a real quick run on 2 cores: (pool, concurrency) -> (io, cpu, mixed)
MEASURED = {
    ("prefork", 1): (18.9, 43.4, 13.2),
    ("prefork", 2): (37.2, 74.6, 25.5),
    ("threads", 1): (19.0, 43.5, 13.3),
    ("threads", 2): (38.0, 42.5, 25.2),
    ("gevent", 1): (17.5, 36.0, 13.0),
    ("gevent", 16): (151.4, 38.9, 32.7),
    ("eventlet", 1): (17.4, 33.6, 12.8),
    ("eventlet", 16): (156.5, 39.8, 37.5),
    ("solo", 1): (19.0, 44.5, 13.3),
}
RSS_MB = {"prefork": 118.5, "threads": 63.9, "gevent": 68.6, "eventlet": 73.2, "solo": 63.6}
PREFORK_CHILD_MB = 54.4  # each extra prefork slot: one more child process (a real quick run)
SPEEDUP = 1.91  # the control: two plain processes against one, right after prefork's batch
# no-op tasks/s each pool's worker drained at its highest concurrency (a real quick run)
CEILINGS = {"prefork": 949.0, "threads": 664.0, "gevent": 302.1, "eventlet": 311.0, "solo": 720.0}


@pytest.fixture
def p() -> Params:
    return resolve(driver.PARAMS, {}, quick=True)


# --- the sweep ---------------------------------------------------------------------------------

def sweep(rss: dict[tuple[str, int], float] | None = None,
          ceilings: dict[str, float] | None = None, at_hand: float | None = 2.0,
          **changed: tuple[float, float, float]) -> list[Row]:
    """measure.sweep's rows, ideal and ratio computed as it does, from MEASURED with some
    configurations' throughputs replaced (``threads_2=(io, cpu, mixed)``). The cores a worker
    used in its CPU drain follow from its rate (rate x the task's cost); ``at_hand``: the cores
    the run had during each drain (2.0: an idle 2-core machine)."""
    throughputs = dict(MEASURED)
    for name, values in changed.items():
        pool, concurrency = name.rsplit("_", 1)
        throughputs[(pool, int(concurrency))] = values
    rows = []
    for (pool, c), values in throughputs.items():
        for workload, throughput in zip(("io", "cpu", "mixed"), values, strict=True):
            n = {"io": max(8, 3 * c), "cpu": max(24, round(min(c, CORES) / 0.02)),
                 "mixed": max(8, 3 * min(c, 8))}[workload]
            mb = (rss or {}).get((pool, c), RSS_MB[pool] + (PREFORK_CHILD_MB * (c - 1)
                                                           if pool == "prefork" else 0.01 * c))
            ideal = {"io": c / LATENCY, "cpu": min(c, CORES) / COST,
                     "mixed": min(c / (COST + LATENCY), CORES / COST)}[workload]
            ceiling = {**CEILINGS, **(ceilings or {})}[pool]
            duration = {"io": LATENCY, "cpu": COST, "mixed": COST + LATENCY}[workload]
            batch_bound = n / max(n / ideal, (n - 1) / ceiling + duration)
            rows.append({"pool": pool, "concurrency": c, "workload": workload, "start_s": 1.0,
                         "rss_mb": mb, "n": n, "elapsed_s": n / throughput,
                         "throughput": throughput, "cpu_cost_s": COST, "ideal": ideal,
                         "ratio": throughput / ideal, "ceiling": ceiling,
                         "bound": min(ideal, ceiling),
                         "of_bound": throughput / min(ideal, ceiling),
                         "batch_bound": batch_bound, "of_batch_bound": throughput / batch_bound,
                         "used_cores": round(throughput * COST, 2) if workload == "cpu" else 0.3,
                         "available_cores": at_hand})
    return rows


IDEAL = "nobody_beats_the_ideal"
ONE = "concurrency_one_runs_one_task_at_a_time"
GREEN = "green_pools_win_on_io"
GIL = "threads_do_not_scale_cpu_work"


def test_a_real_sweep_holds_every_sweep_finding(ev: Evidence) -> None:
    """The holding example: a real quick run's throughputs, every pool below its ideal."""
    driver.check_sweep(ev, sweep(), CORES, SPEEDUP)
    assert [f.id for f in ev.findings] == [IDEAL, ONE, GREEN, GIL] and all(f.holds for f in ev.findings)


def test_a_green_pool_that_ignores_its_concurrency_beats_the_ideal(ev: Evidence) -> None:
    """gevent running every task of a batch at once (an unbounded pool of greenlets): IO far
    above concurrency / latency, at 1 as at 16. Both the ideal and 'one at a time' fail."""
    driver.check_sweep(ev, sweep(gevent_1=(110.0, 36.0, 13.0), gevent_16=(400.0, 38.9, 32.7)),
                       CORES, SPEEDUP)
    assert [f.id for f in ev.findings if not f.holds] == [IDEAL, ONE]


def test_a_threads_pool_running_twice_its_slots_beats_the_ideal(ev: Evidence) -> None:
    """threads x2 running 4 IO tasks at once: 74/s against an ideal of 40/s."""
    driver.check_sweep(ev, sweep(threads_2=(74.0, 42.5, 25.2)), CORES, SPEEDUP)
    assert_only_fails(ev, IDEAL)


def test_a_threads_pool_at_one_that_runs_two_at_once_is_not_one_at_a_time(ev: Evidence) -> None:
    """threads '-c 1' running 2 threads (the default concurrency, -c ignored): IO at 2 / latency."""
    driver.check_sweep(ev, sweep(threads_1=(38.0, 43.5, 25.2)), CORES, SPEEDUP)
    assert [f.id for f in ev.findings if not f.holds] == [IDEAL, ONE]


def test_a_pool_that_pays_a_fork_per_task_is_not_one_task_per_latency(ev: Evidence) -> None:
    """prefork x1 replacing its child after every task (max_tasks_per_child=1): ~60 ms of fork
    per 50 ms task, IO at 0.4 of its ideal."""
    driver.check_sweep(ev, sweep(prefork_1=(8.0, 43.4, 13.2)), CORES, SPEEDUP)
    assert_only_fails(ev, ONE)


def test_green_pools_without_monkey_patching_do_not_win_on_io(ev: Evidence) -> None:
    """No monkey patching: time.sleep blocks the hub, so x16 runs one task at a time."""
    driver.check_sweep(ev, sweep(gevent_16=(19.0, 38.9, 12.9), eventlet_16=(19.0, 39.8, 12.9)),
                       CORES, SPEEDUP)
    assert_only_fails(ev, GREEN)


def test_threads_without_a_gil_scale_cpu_work(ev: Evidence) -> None:
    """Free-threaded Python: threads x2 use both cores, as prefork does."""
    driver.check_sweep(ev, sweep(threads_2=(38.0, 76.0, 25.2)), CORES, SPEEDUP)
    assert_only_fails(ev, GIL)


def test_prefork_confined_to_one_core_does_not_scale_cpu_work(ev: Evidence) -> None:
    """A CPU quota of one core while os.cpu_count() says 2: prefork x2 no faster than x1."""
    driver.check_sweep(ev, sweep(prefork_2=(37.2, 44.0, 25.5)), CORES, SPEEDUP)
    assert_only_fails(ev, GIL)


def test_on_a_machine_with_no_free_core_neither_half_is_decided(ev: Evidence) -> None:
    """A CPU hog beside the run: 1.43 cores at hand, prefork x2 no faster than x1 (measured).
    With no free core to use, neither pool can show what it would do with one."""
    driver.check_sweep(ev, sweep(prefork_2=(43.0, 43.0, 25.5), at_hand=1.43), CORES, 1.43)
    finding = ev.finding(GIL)
    assert finding.holds and finding.expected.count("cannot be decided") == 2


def test_threads_that_scale_are_caught_even_when_the_control_said_busy(ev: Evidence) -> None:
    # the control (plain processes, another moment) said 1.1x; during the threads' own drain
    # the run had the cores, and threads used 1.5 of them: no GIL
    driver.check_sweep(ev, sweep(threads_2=(38.0, 76.0, 25.2)), CORES, 1.1)
    assert_only_fails(ev, GIL)


def test_two_moments_of_a_busy_machine_do_not_fail_the_claim(ev: Evidence) -> None:
    # what failed a run beside other jobs: threads x2 read 1.3x threads x1 (x1 drained while
    # the machine was busier) and prefork x2 0.97x prefork x1; the cores used say otherwise
    rows = sweep(threads_1=(19.0, 33.0, 13.3), prefork_2=(37.2, 42.0, 25.5))
    for r in rows:
        if r["workload"] == "cpu" and (r["pool"], r["concurrency"]) == ("prefork", 2):
            r["used_cores"] = 1.7  # its children ran at once, each slowed by the other job
    driver.check_sweep(ev, rows, CORES, 1.8)
    assert ev.finding(GIL).holds and "cannot be decided" not in ev.finding(GIL).expected


# --- time limits -------------------------------------------------------------------------------

def limit(pool: str, enforced: bool, soft: bool = False, ended: float | None = None) -> Row:
    """measure.time_limits' row for a task that runs 2.5 s under soft 0.5 s / hard 1.0 s."""
    if enforced:
        return {"pool": pool, "state": "FAILURE", "exception": "TimeLimitExceeded",
                "ended_after_s": 1.01 if ended is None else ended, "soft_limit_reached_task": soft,
                "soft_after_s": 0.501 if soft else None, "ran_to_the_end": False}
    return {"pool": pool, "state": "SUCCESS", "exception": None,
            "ended_after_s": 2.52 if ended is None else ended, "soft_limit_reached_task": soft,
            "soft_after_s": 0.501 if soft else None, "ran_to_the_end": True}


def limits(prefork: Row | None = None, threads: Row | None = None) -> list[Row]:
    """A real quick run: prefork enforces both, gevent only the hard limit, the others none."""
    return [prefork or limit("prefork", enforced=True, soft=True),
            threads or limit("threads", enforced=False),
            limit("gevent", enforced=True, ended=1.02),
            limit("eventlet", enforced=False),
            limit("solo", enforced=False)]


PREFORK = "prefork_enforces_soft_and_hard_time_limits"


def test_prefork_delivering_soft_and_killing_at_hard_holds(ev: Evidence, p: Params) -> None:
    """The holding example; the pools that let the task run to the end are kept as measured."""
    driver.check_limits(ev, p, limits())
    assert ev.finding(PREFORK).holds
    assert ev.measurements["time_limits_not_enforced"] == ["threads", "eventlet", "solo"]


def test_prefork_that_never_delivers_the_soft_limit_fails(ev: Evidence, p: Params) -> None:
    """Killed at the hard limit, but SoftTimeLimitExceeded never reached the task."""
    driver.check_limits(ev, p, limits(prefork=limit("prefork", enforced=True, soft=False)))
    assert not ev.finding(PREFORK).holds


def test_prefork_that_lets_the_task_run_to_the_end_fails(ev: Evidence, p: Params) -> None:
    """prefork behaving like threads: no limit at all, SUCCESS after 2.5 s."""
    driver.check_limits(ev, p, limits(prefork=limit("prefork", enforced=False)))
    assert not ev.finding(PREFORK).holds
    assert "prefork" in ev.measurements["time_limits_not_enforced"]


def test_prefork_that_kills_well_past_the_hard_limit_fails(ev: Evidence, p: Params) -> None:
    """The kill comes 2.3 s in, not near the 1.0 s hard limit."""
    driver.check_limits(ev, p, limits(prefork=limit("prefork", enforced=True, soft=True, ended=2.3)))
    assert not ev.finding(PREFORK).holds


def test_prefork_that_kills_at_the_soft_limit_fails(ev: Evidence, p: Params) -> None:
    """The hard kill fired at 0.52 s, right after the soft limit, half a second early."""
    driver.check_limits(ev, p, limits(prefork=limit("prefork", enforced=True, soft=True, ended=0.52)))
    assert not ev.finding(PREFORK).holds


def test_prefork_that_delivers_the_soft_limit_at_once_fails(ev: Evidence, p: Params) -> None:
    """SoftTimeLimitExceeded raised 50 ms into the task, long before the 0.5 s soft limit."""
    row = limit("prefork", enforced=True, soft=True)
    row["soft_after_s"] = 0.05
    driver.check_limits(ev, p, limits(prefork=row))
    assert not ev.finding(PREFORK).holds


WHICH = "which_pools_enforce_time_limits"


def test_the_measured_pools_enforce_what_celery_implements(ev: Evidence, p: Params) -> None:
    driver.check_limits(ev, p, limits())
    assert ev.finding(WHICH).holds
    assert ev.finding(WHICH).measured == {"prefork": "soft+hard", "threads": "none", "gevent": "hard",
                                          "eventlet": "none", "solo": "none"}


def test_a_threads_pool_that_enforced_the_hard_limit_is_caught(ev: Evidence, p: Params) -> None:
    """A Celery whose threads pool learned to stop a task at its hard limit: the table changes,
    and prefork's own finding is unaffected."""
    driver.check_limits(ev, p, limits(threads=limit("threads", enforced=True, ended=1.02)))
    assert ev.measurements["time_limits_not_enforced"] == ["eventlet", "solo"]
    assert_only_fails(ev, WHICH)


def test_a_gevent_pool_that_delivered_the_soft_limit_is_caught(ev: Evidence, p: Params) -> None:
    rows = limits()
    rows[2] = limit("gevent", enforced=True, soft=True, ended=1.02)
    driver.check_limits(ev, p, rows)
    assert_only_fails(ev, WHICH)


def test_only_the_pools_that_ran_are_judged(ev: Evidence, p: Params) -> None:
    driver.check_limits(ev, p, limits()[:1])
    assert ev.finding(WHICH).holds and ev.finding(WHICH).measured == {"prefork": "soft+hard"}


# --- memory ------------------------------------------------------------------------------------

MEMORY = "a_prefork_slot_costs_a_process_of_memory"


def test_a_prefork_slot_costs_a_child_process_of_memory(ev: Evidence) -> None:
    driver.check_memory(ev, sweep())
    assert ev.finding(MEMORY).holds
    assert ev.measurements["memory_per_slot_mb"]["prefork"] == pytest.approx(PREFORK_CHILD_MB, abs=0.1)


def test_prefork_children_that_cost_nothing_are_caught(ev: Evidence) -> None:
    """A prefork whose children shared everything (or a pool not forking at all)."""
    driver.check_memory(ev, sweep(rss={("prefork", 2): RSS_MB["prefork"] + 1.0}))
    assert not ev.finding(MEMORY).holds


def test_threads_that_cost_a_process_each_are_caught(ev: Evidence) -> None:
    driver.check_memory(ev, sweep(rss={("threads", 2): RSS_MB["threads"] + 50.0}))
    assert not ev.finding(MEMORY).holds


def test_memory_is_not_judged_without_two_prefork_concurrencies(ev: Evidence) -> None:
    rows = [r for r in sweep() if not (r["pool"] == "prefork" and r["concurrency"] == 2)]
    driver.check_memory(ev, rows)
    assert not ev.findings and "not measured" in ev.measurements["memory_per_slot_mb"]


# --- head-of-line blocking ---------------------------------------------------------------------

def hol(multiplier: int, acks_late: bool, stuck: list[int], long_s: float = 1.0) -> Row:
    """measure.head_of_line: 12 short tasks' latencies; those at ``stuck`` waited behind the
    long task on the busy worker, the others ran on the free one ~12 ms apart."""
    latencies = [long_s + 0.02 + 0.008 * i if i in stuck else 0.02 + 0.012 * i for i in range(12)]
    return {"multiplier": multiplier, "acks_late": acks_late, "long_s": long_s,
            "short_latencies": latencies,
            "stuck_behind_the_long_one": sum(1 for x in latencies if x > long_s / 2)}


EAGER_STUCK = [1, 3, 5, 7]  # a real run: the busy worker had prefetched every other short task
HOL = "prefetch_holds_short_tasks_behind_a_long_one"


def test_prefetch_four_holds_shorts_and_fair_prefetch_does_not(ev: Evidence) -> None:
    """The holding example: 4 shorts stuck with multiplier 4, none with 1 + acks_late."""
    driver.check_hol(ev, [hol(4, False, EAGER_STUCK), hol(1, True, [])])
    assert ev.finding(HOL).holds


def test_a_busy_worker_that_hands_its_prefetched_shorts_back_holds_none(ev: Evidence) -> None:
    """A worker that released reserved messages to the idle one: nothing stuck with 4 either."""
    driver.check_hol(ev, [hol(4, False, []), hol(1, True, [])])
    assert not ev.finding(HOL).holds


def test_multiplier_one_that_still_reserves_one_short_holds_it(ev: Evidence) -> None:
    """acks_late + multiplier 1 still reserving one message behind the running long task."""
    driver.check_hol(ev, [hol(4, False, EAGER_STUCK), hol(1, True, [0])])
    assert not ev.finding(HOL).holds


# --- stuck, by evidence ------------------------------------------------------------------------

def hol_events(shorts: list[tuple[str, float, float]], long_end: float = 1.0) -> dict:
    """by_task events: the long task on w1 from 0 to ``long_end``; each short (worker, received,
    started) ran 10 ms."""
    events = {"long": {"task-received": {"hostname": "w1", "timestamp": 0.0},
                       "task-started": {"timestamp": 0.001},
                       "task-succeeded": {"timestamp": long_end}}}
    for i, (worker, received, started) in enumerate(shorts):
        events[f"s{i}"] = {"task-received": {"hostname": worker, "timestamp": received},
                           "task-started": {"timestamp": started},
                           "task-succeeded": {"timestamp": started + 0.01}}
    return events


def test_a_short_prefetched_by_the_busy_worker_and_run_after_the_long_one_is_stuck() -> None:
    from labs.lab07_pools.measure import stuck_behind

    events = hol_events([("w1", 0.002, 1.001), ("w2", 0.003, 0.004)])
    assert stuck_behind(events, "long", ["s0", "s1"]) == ("w1", 1, 1)


def test_a_short_that_only_queued_on_the_free_worker_is_not_stuck() -> None:
    """Ordinary queueing on the free worker: a latency longer than half the long task, which
    the old latency rule called stuck."""
    from labs.lab07_pools.measure import stuck_behind

    events = hol_events([("w2", 0.003, 0.7)], long_end=1.0)
    assert stuck_behind(events, "long", ["s0"]) == ("w1", 0, 0)


def test_a_short_the_busy_worker_took_after_finishing_is_not_stuck() -> None:
    from labs.lab07_pools.measure import stuck_behind

    events = hol_events([("w1", 1.002, 1.003)])
    assert stuck_behind(events, "long", ["s0"]) == ("w1", 0, 1)


def test_green_pools_that_only_double_prefork_but_stay_under_its_ideal_are_caught(ev: Evidence) -> None:
    """Green at 16 that reaches 39/s: above prefork x2's measured 37/s, but under the 40/s prefork
    x2 would do perfectly. A green pool that brings nothing prefork could not is caught."""
    driver.check_sweep(ev, sweep(gevent_16=(39.0, 38.9, 32.7), eventlet_16=(39.5, 39.8, 37.5)),
                       CORES, SPEEDUP)
    assert not ev.finding(GREEN).holds


@pytest.mark.parametrize("override,needle", [
    ({"green_concurrency": [1, 8]}, "needs a green pool at 16 or more"),
    ({"process_concurrency": [2, 4]}, "each needs 1"),
    ({"process_concurrency": [1]}, "needs a value above 1"),
    ({"hard_limit": 0.4, "soft_limit": 0.5}, "must exceed soft_limit"),
    ({"pools": ["prefork", "nope"]}, "unknown ['nope']"),
])
def test_values_that_could_not_decide_a_claim_are_refused(override: dict, needle: str) -> None:
    from labkit.errors import SetupError

    with pytest.raises(SetupError) as refused:
        driver.validate(resolve(driver.PARAMS, override, quick=True))
    assert needle in str(refused.value)


def test_ranges_exclude_an_io_task_shorter_than_celerys_own_cost() -> None:
    from labkit.errors import SetupError

    with pytest.raises(SetupError, match=r"latency=0\.005: must be >= 0\.04"):
        resolve(driver.PARAMS, {"latency": 0.005}, quick=True)


def test_prefork_measured_at_1_and_4_on_2_cores_is_compared_at_4(ev: Evidence) -> None:
    """No prefork at 2: the CPU claim uses the measured concurrency nearest the cores, rather
    than dropping the claim."""
    rows = [r for r in sweep(prefork_4=(75.0, 80.0, 40.0), threads_4=(76.0, 42.0, 40.0))
            if not (r["pool"] in ("prefork", "threads") and r["concurrency"] == 2)]
    driver.check_sweep(ev, rows, CORES, SPEEDUP)
    assert ev.finding(GIL).holds and "prefork_4_over_1" in ev.finding(GIL).measured


# --- the one-worker bound, the instruments, two workers ----------------------------------------

BOUND = "io_throughput_follows_the_one_worker_bound"


def test_a_real_sweep_follows_its_bound_and_reports_the_result_contract(ev: Evidence) -> None:
    rows = sweep()
    driver.check_bound(ev, rows)
    assert ev.finding(BOUND).holds
    contract = driver.bound_rows(rows)
    assert set(contract[0]) == {"pool", "concurrency", "workload", "throughput", "ideal",
                                "ceiling", "bound", "ratio"}
    green = next(r for r in contract if r["pool"] == "gevent" and r["concurrency"] == 16
                 and r["workload"] == "io")
    assert green["bound"] == 302.1 and green["ratio"] == pytest.approx(151.4 / 302.1, abs=0.001)


def test_a_worker_that_beats_its_own_ceiling_on_io_is_caught(ev: Evidence) -> None:
    # a ceiling measured too low (the instruments on, say) no longer bounds the IO rows
    driver.check_bound(ev, sweep(ceilings={"gevent": 60.0}))
    assert_only_fails(ev, BOUND)


def test_a_pool_that_stalls_far_below_its_bound_is_caught(ev: Evidence) -> None:
    # eventlet x16 at 60/s: neither its concurrency nor its ceiling explains it
    driver.check_bound(ev, sweep(eventlet_16=(60.0, 39.8, 37.5)))
    assert_only_fails(ev, BOUND)


def events_cost(overhead: float = 0.25) -> Row:
    return {"pool": "gevent", "concurrency": 16, "without_events": 302.1,
            "with_events": 302.1 * (1 - overhead), "overhead": overhead}


def event(kind: str, host: str) -> Row:
    return {"type": kind, "hostname": host, "uuid": "x", "timestamp": 1.0}


HOSTS = ["gevent1@", "gevent16@", "prefork2@"]


def test_measured_workers_that_sent_no_task_events_hold(ev: Evidence) -> None:
    others = [event("task-succeeded", "gevent16-events@celery-lab"),
              event("worker-heartbeat", "gevent16@celery-lab")]
    driver.check_instruments_off(ev, others, HOSTS, events_cost())
    assert ev.finding("throughput_is_measured_with_the_instruments_off").holds


def test_a_measured_worker_that_sent_task_events_is_caught(ev: Evidence) -> None:
    driver.check_instruments_off(ev, [event("task-started", "gevent16@celery-lab")], HOSTS,
                                 events_cost())
    assert_only_fails(ev, "throughput_is_measured_with_the_instruments_off")


def one_worker(throughput: float = 192.3, ideal: float = 2560.0, ceiling: float = 302.1) -> Row:
    return {"pool": "gevent", "concurrency": 128, "workload": "io", "throughput": throughput,
            "ideal": ideal, "ceiling": ceiling}


def two(throughput: float, one: float = 190.0, used: float = 1.9, idle: float = 0.05,
        one_used: float = 1.0) -> Row:
    return {"pool": "gevent", "concurrency": 128, "workers": 2, "n": 1024,
            "throughput": throughput, "used_cores": used, "idle_cores": idle,
            "available_cores": round(used + idle, 2),
            "one_worker": {"n": 512, "throughput": one, "used_cores": one_used,
                           "idle_cores": 1.0, "available_cores": 2.0}}


TWO = "more_worker_processes_lift_the_ceiling"


def test_two_workers_that_nearly_double_a_ceiling_bound_one_hold(ev: Evidence) -> None:
    driver.check_two_workers(ev, one_worker(), two(366.5))
    assert ev.finding(TWO).holds and ev.finding(TWO).measured["decided"]


def test_a_ceiling_shared_by_every_process_is_caught(ev: Evidence) -> None:
    # were the ceiling the broker's, a second process would add nothing: the two would idle
    driver.check_two_workers(ev, one_worker(), two(200.0, used=1.0, idle=0.9))
    assert_only_fails(ev, TWO)


def test_two_workers_that_had_the_cores_and_gained_little_are_caught(ev: Evidence) -> None:
    driver.check_two_workers(ev, one_worker(), two(220.0, used=1.9, idle=0.0))
    assert_only_fails(ev, TWO)


def test_two_workers_without_a_core_each_are_not_decided(ev: Evidence) -> None:
    # what failed a notebook run beside another lab: 163/s against 180/s, on a shared core
    driver.check_two_workers(ev, one_worker(), two(163.4, one=180.5, used=1.05, idle=0.02))
    finding = ev.finding(TWO)
    assert finding.holds and "not decided" in finding.expected and "busy" in finding.expected
    assert finding.measured["decided"] is False


def test_the_gain_is_against_the_one_worker_measured_beside_not_the_sweep(ev: Evidence) -> None:
    # the sweep's row ran at 192/s; beside the two, one worker ran at 300/s: 366 is no gain
    driver.check_two_workers(ev, one_worker(), two(366.5, one=300.0))
    assert_only_fails(ev, TWO)
    assert ev.finding(TWO).measured["one_worker"] == 300.0


def test_a_worker_not_held_by_its_ceiling_is_not_judged_on_the_gain(ev: Evidence) -> None:
    driver.check_two_workers(ev, one_worker(throughput=150.0, ideal=160.0), two(170.0))
    assert ev.finding(TWO).holds and "not decided" in ev.finding(TWO).expected


def test_cpu_work_short_against_celerys_own_cost_leaves_the_prefork_half_undecided(
        ev: Evidence) -> None:
    # 1 ms tasks: prefork x2 gains nothing because its consumer loop, not the cores, holds it
    rows = sweep(ceilings={"prefork": 150.0}, prefork_2=(37.2, 44.0, 25.5))
    driver.check_sweep(ev, rows, CORES, SPEEDUP)
    finding = ev.finding(GIL)
    assert finding.holds and "over half its ceiling" in finding.expected


def test_without_the_cores_read_the_prefork_half_is_not_decided(ev: Evidence) -> None:
    driver.check_sweep(ev, sweep(prefork_2=(37.2, 44.0, 25.5), at_hand=None), CORES, None)
    finding = ev.finding(GIL)
    assert finding.holds and finding.expected.count("cannot be decided") == 2
    assert finding.measured["plain_processes_speedup"] is None



# --- exercise 07's IO check: a target the worker's own ceiling can reach ------------------------

@pytest.mark.parametrize(("rate", "rss", "ceiling", "holds"), [
    (200, 100, 300, True),    # 150 tasks/s reached
    (100, 100, 300, False),   # too few slots: well under a ceiling that allowed 150
    (100, 100, 150, True),    # a slow green worker (a 150/s ceiling): 0.6 of it is 90
    (60, 100, 150, False),    # under 0.6 of even that
    (200, 500, 300, False),   # too much memory
])
def test_exercise_07_io_target_follows_the_workers_own_ceiling(tmp_path, rate, rss, ceiling, holds):
    from labs.lab07_pools import grade

    ev = Evidence(tmp_path)
    grade.check_io(ev, rate, rss, ceiling)
    assert ev.finding("io_reaches_its_target").holds is holds


@pytest.mark.parametrize(("rate", "at_hand", "holds", "refused"), [
    (97.5, 1.7, False, False),  # a whole core and more at hand, and still short: not yet
    (97.5, 0.6, False, True),   # short while the rest of the machine had it: not graded, said so
    (200.0, 0.6, True, False),  # reached even so: passed
])
def test_exercise_07_io_is_not_graded_without_a_core_at_hand(tmp_path, rate, at_hand, holds, refused):
    from labs.lab07_pools import grade

    ev = Evidence(tmp_path)
    grade.check_io(ev, rate, 69.0, 193.3, at_hand)
    finding = ev.finding("io_reaches_its_target")
    assert finding.holds is holds
    assert ("not graded: this machine is too busy" in finding.claim) is refused



@pytest.mark.parametrize(("used", "at_hand", "holds", "refused"), [
    (1.85, 1.98, True, False),   # prefork x2 on an idle 2-core machine (measured)
    (1.02, 1.97, False, False),  # threads x2: the GIL, one core whatever is free
    (1.0, 1.1, False, True),     # a busy machine: threads and processes would look alike
    (1.85, 3.7, True, False),    # idle time read past the cores it may use counts as 2
])
def test_exercise_07_cpu_is_graded_on_the_cores_used_in_the_same_moment(
        tmp_path, used, at_hand, holds, refused):
    from labs.lab07_pools import grade

    ev = Evidence(tmp_path)
    grade.check_cpu(ev, 76.0, {"used_cores": used, "available_cores": at_hand}, 2)
    finding = ev.finding("cpu_reaches_what_the_cores_allow")
    assert finding.holds is holds
    assert ("not graded: this machine is too busy" in finding.claim) is refused
