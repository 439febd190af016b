"""Lab 08: watching Celery: task states, the result backend, inspect and Flower, measured.

``python -m labs.lab08_observability.driver`` is ``celery-lab run 08``; the notebook calls ``run()``.
"""

from __future__ import annotations

import math
import sys
from functools import partial
from typing import Any

from labkit import runner
from labkit.cli import run_script
from labkit.evidence import Evidence
from labkit.lab import Lab
from labkit.params import Param, Params
from labkit.session import LabSession
from labs.lab08_observability import measure, plots

CONCURRENCY = 2
PREFETCH = 2

PARAMS = {
    "poll_s": Param(0.05, "AsyncResult poll interval for the states part, seconds", min=0.01,
                    max=1),
    "result_expires": Param(60, "result_expires, seconds", min=10, max=86400),
    "failure_expires": Param(20, "result_failure_expires, seconds", min=10, max=86400),
    "tasks": Param(30, "tasks in the burst", quick=20, min=5, max=1000),
    "task_s": Param(0.25, "duration of one burst task, seconds", quick=0.2, min=0.01, max=5),
    "failures": Param(6, "tasks of the burst that fail", quick=4, min=1, max=1000),
    "scheduled": Param(3, "ETA tasks in the burst", min=1, max=100),
    "countdown": Param(2.0, "their countdown, seconds", quick=1.5, min=0.5, max=60),
    "threshold": Param(5, "backlog alert: queue length above which it fires", min=1, max=1000),
    "scrape_s": Param(0.25, "Flower scrape interval, seconds", min=0.05, max=5),
    "timeout": Param(30.0, "bound on every wait, seconds", min=10),
}


def settings(p: Params) -> dict[str, Any]:
    return {"task_track_started": True, "result_expires": p.result_expires,
            "result_failure_expires": p.failure_expires}


def validate(p: Params) -> None:
    from labkit.errors import SetupError

    if p.failures > p.tasks:
        raise SetupError(f"bad param failures={p.failures}: more than tasks={p.tasks}")
    if p.failure_expires == p.result_expires:
        raise SetupError(f"bad param failure_expires={p.failure_expires}: equal to result_expires, "
                         "so no TTL can tell which of the two a failure's key got")
    # the worker consumes nothing until Flower has seen the backlog: the whole burst waits
    if p.tasks + p.scheduled <= p.threshold:
        raise SetupError(f"bad param threshold={p.threshold}: the burst of {p.tasks} + "
                         f"{p.scheduled} ETA tasks never puts more than that in the queue")


def measure_lab(s: LabSession) -> None:
    p = s.params
    s.start_worker("w1", concurrency=CONCURRENCY, prefetch=PREFETCH)
    flower = s.start_flower()

    s.step("task states: polling AsyncResult next to the events")
    states = measure.states(s, p.poll_s, p.timeout)
    s.write_json("states.json", states)
    check_states(s.evidence, states)

    keys = measure.result_keys(s, p.timeout)
    s.measured(result_keys=keys)
    check_result_keys(s.evidence, p, keys)

    s.step(f"a burst of {p.tasks} tasks ({p.failures} failing) and {p.scheduled} ETA tasks, "
           "watched by inspect and Flower")
    burst = measure.burst(s, flower, p.tasks, p.task_s, p.failures, p.scheduled, p.countdown,
                          p.threshold, p.scrape_s, p.timeout)
    burst["threshold"] = p.threshold
    s.write_csv("inspect.csv", burst.pop("inspect"))
    s.write_csv("flower_scrapes.csv", burst.pop("scrapes"))
    s.write_json("burst.json", burst)
    check_inspect(s.evidence, burst)
    check_prefetch(s.evidence, burst)
    access = measure.flower_access(flower)
    s.measured(flower_access=access)
    check_flower(s.evidence, p, burst, access)
    flower.stop()


def _sequence(polls: list[dict], name: str) -> list[str]:
    out: list[str] = []
    for row in polls:
        if not out or out[-1] != row[name]:
            out.append(row[name])
    return out


def check_states(ev: Evidence, states: dict) -> None:
    seen = {name: _sequence(states["polls"], name) for name in (*states["ids"], "unknown")}
    events = {name: sorted({e["type"] for e in states["events"] if e["task"] == name})
              for name in states["ids"]}
    ev.measured(states_seen=seen, events_seen=events)
    ev.check("a_client_sees_the_states_by_polling",
             "polling AsyncResult shows PENDING, STARTED (task_track_started) and a final state: "
             "SUCCESS, FAILURE, RETRY on the way, REVOKED for a revoked ETA task",
             seen, "success P,S,SUCCESS; failure ends FAILURE; retry passes RETRY and ends SUCCESS; "
                  "revoked ends REVOKED",
             seen["success"] == ["PENDING", "STARTED", "SUCCESS"]
             and seen["failure"][-1] == "FAILURE" and "STARTED" in seen["failure"]
             and "RETRY" in seen["retry"] and seen["retry"][-1] == "SUCCESS"
             and seen["revoked"][-1] == "REVOKED")
    ev.check("events_tell_the_same_story",
             "the worker's events for the same tasks carry the same outcomes",
             events, "task-succeeded / task-failed / task-retried / task-revoked respectively",
             "task-succeeded" in events["success"] and "task-failed" in events["failure"]
             and "task-retried" in events["retry"] and "task-revoked" in events["revoked"])
    ev.check("pending_also_means_never_heard_of",
             "an id no task ever had is PENDING too: PENDING cannot tell 'waiting' from 'unknown'",
             seen["unknown"], "PENDING throughout", seen["unknown"] == ["PENDING"])


def check_result_keys(ev: Evidence, p: Params, keys: dict) -> None:
    ok, bad, quiet = keys["success"], keys["failure"], keys["ignore_result"]
    # a key's TTL has run down by at most the time between sending and reading (Redis rounds
    # TTL to the nearest second)
    waited = math.ceil(keys["read_at"] - keys["sent_at"]) + 1

    def fresh(ttl: int, expires: int) -> bool:
        return expires - waited <= ttl <= expires

    ev.check("results_live_in_redis_for_result_expires",
             "a result is a celery-task-meta-<id> key whose TTL is result_expires; failures use "
             "result_failure_expires; an ignore_result task leaves no key",
             {"success_ttl_s": ok["ttl_s"], "failure_ttl_s": bad["ttl_s"],
              "ignore_result_key": quiet["exists"],
              "read_s_after_sending": round(keys["read_at"] - keys["sent_at"], 3)},
             f"success {p.result_expires - waited}..{p.result_expires}, failure "
             f"{p.failure_expires - waited}..{p.failure_expires}, no key",
             ok["exists"] and fresh(ok["ttl_s"], p.result_expires)
             and bad["exists"] and fresh(bad["ttl_s"], p.failure_expires)
             and bad["status"] == "FAILURE" and not quiet["exists"])


def moves_during(timeline: list[dict], start: float, end: float) -> int:
    """How many moves of the burst's tasks fall in [start, end], from the worker's events: each
    received (out of the Redis list), started (active) and done, and for an ETA task the wait
    from its ETA to its start (scheduled -> reserved -> active). A sample's separate reads can
    count a task that moves while they are taken twice, or miss it, once per such move."""
    moves = 0
    for task in timeline:
        moves += sum(1 for kind in ("received", "started", "done")
                     if task[kind] is not None and start <= task[kind] <= end)
        if task["eta"] is not None and task["eta"] <= end and (task["started"] is None
                                                                or task["started"] >= start):
            moves += 1
    return moves


def check_inspect(ev: Evidence, burst: dict) -> None:
    from labkit.results import read_csv

    rows = read_csv(ev.run_dir / "inspect.csv")
    total = burst["sent"]
    counted = [{"t": r["t"], "off": r["queue"] + r["scheduled"] + r["reserved"] + r["active"]
                + r["done"] - total, "moving": moves_during(burst["timeline"], r["t"], r["t_end"])}
               for r in rows]
    unaccounted = [c for c in counted if abs(c["off"]) > c["moving"]]
    ev.measured(inspect_samples=len(rows), inspect_peaks={
        k: max(r[k] for r in rows) for k in ("queue", "reserved", "scheduled", "active")})
    ev.check("inspect_accounts_for_every_task",
             "at every moment each task is in exactly one place: still in the Redis list, reserved "
             "(prefetched) by the worker, scheduled (ETA), active, or done",
             {"samples": len(rows), "exact": sum(1 for c in counted if c["off"] == 0),
              "off_by_more_than_moved": len(unaccounted),
              "largest_off": max((abs(c["off"]) for c in counted), default=None),
              "most_moving_in_one_sample": max((c["moving"] for c in counted), default=None),
              "peaks": ev.measurements["inspect_peaks"]},
             f"queue + scheduled + reserved + active + done = {total} in every sample, off by no "
             "more than the tasks' moves the events place inside that sample's reads",
             len(rows) >= 3 and not unaccounted)
    peaks = ev.measurements["inspect_peaks"]
    limit = CONCURRENCY * PREFETCH + burst["scheduled"]
    ev.check("inspect_respects_the_pool_and_prefetch",
             "active never exceeds the concurrency; reserved stays within concurrency x prefetch "
             "multiplier + the ETA tasks (each one held raises the limit, and once due it joins "
             "reserved); no more tasks are scheduled than ETA tasks were sent",
             peaks, f"active <= {CONCURRENCY}, reserved <= {CONCURRENCY} x {PREFETCH} + "
                   f"{burst['scheduled']}, scheduled <= {burst['scheduled']}",
             peaks["active"] <= CONCURRENCY and peaks["reserved"] <= limit
             and peaks["scheduled"] <= burst["scheduled"]
             and "lab08.work" in burst["registered_lab08"] and "celery" in burst["active_queues"])


def check_prefetch(ev: Evidence, burst: dict) -> None:
    probe = burst["prefetch"]
    base = CONCURRENCY * PREFETCH
    raised = [base + k for k in range(1, len(probe["held"]) + 1)]
    ev.check("each_eta_task_held_raises_the_prefetch_count_by_one",
             "a worker's prefetch count (inspect stats) is concurrency x prefetch multiplier; each "
             "ETA task it holds is listed by inspect scheduled (not reserved) and raises the count "
             "by exactly one, and the count comes back down once the ETA tasks have run",
             {"before_burst": probe["before_burst"], "after_burst": probe["after_burst"],
              "as_each_eta_task_arrived": probe["after_each"],
              "scheduled_listed": len(probe["scheduled_ids"]), "reserved_listed": probe["reserved"]},
             f"{base} before and after the burst; {raised} as {len(raised)} ETA tasks arrived; "
             f"all {len(raised)} scheduled, 0 reserved",
             probe["before_burst"] == base and probe["after_burst"] == base
             and probe["after_each"] == raised
             and sorted(probe["scheduled_ids"]) == sorted(probe["held"]) and probe["reserved"] == 0)


def check_flower(ev: Evidence, p: Params, burst: dict, access: dict) -> None:
    from labkit.results import read_csv

    api = {k: v for k, v in access.items() if k.startswith("/api")}
    ev.check("flower_api_refuses_without_credentials",
             "with basic auth on, Flower's API answers 401 without credentials and 200 with them",
             {k: [v["without_credentials"], v["with_credentials"]] for k, v in api.items()},
             "[401, 200] for every endpoint",
             all(v["without_credentials"] == 401 and v["with_credentials"] == 200
                 for v in api.values()))
    metrics = access["/metrics"]
    ev.check("flower_metrics_are_served_without_credentials",
             "Flower's Prometheus /metrics has no auth check: it answers without credentials and "
             "names workers and tasks (protect it at the network)",
             {"status_without_credentials": metrics["without_credentials"],
              "metric_families": metrics["exposes_without"]},
             "200 without credentials, flower_* metrics",
             metrics["without_credentials"] == 200 and bool(metrics["exposes_without"]))
    scrapes = read_csv(ev.run_dir / "flower_scrapes.csv")
    before = burst["flower_baseline"]  # a scrape before the burst, its counters caught up
    succeeded = scrapes[-1]["succeeded"] - before["succeeded"]
    failed = scrapes[-1]["failed"] - before["failed"]
    expected_ok = burst["sent"] - burst["failures"]  # the ETA tasks succeed too
    ev.check("flower_counts_the_burst",
             "Flower's metrics count every success and failure of the burst (from the events)",
             {"succeeded": succeeded, "failed": failed, "workers_seen": access["workers_seen"]},
             f"{expected_ok} succeeded, {burst['failures']} failed",
             succeeded == expected_ok and failed == burst["failures"])
    firing = [r for r in scrapes if r["queue_length"] > p.threshold]
    cleared = [r for r in scrapes if firing and r["t"] > firing[-1]["t"]
               and r["queue_length"] <= p.threshold]
    ev.measured(alert={"threshold": p.threshold, "fired_at": firing[0]["t"] if firing else None,
                       "cleared_at": cleared[0]["t"] if cleared else None,
                       "peak": max(r["queue_length"] for r in scrapes)})
    ev.check("backlog_alert_fires_and_clears",
             f"an alert on Flower's queue length (> {p.threshold}) fires while the burst backs up "
             "and clears when it drains",
             {"peak_queue_length": max(r["queue_length"] for r in scrapes),
              "fired": bool(firing), "cleared": bool(cleared)},
             "fired, then cleared", bool(firing) and bool(cleared))


LAB = Lab(
    id="08_observability",
    title="Watching Celery: task states, the result backend, inspect and Flower, measured",
    measure=measure_lab,
    figures=plots.FIGURES,
    params=PARAMS,
    settings=settings,
    validate=validate,
    wall_time="default about 13 s, --quick about 11 s",
)

# What the notebook calls: the same measurement as ``celery-lab run 08``.
run = partial(runner.run, LAB)

if __name__ == "__main__":
    sys.exit(run_script(LAB))
