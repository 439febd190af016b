"""Exercise 05's grader: real beat on the learner's schedule with no worker for an outage, then
a worker; each tick's publish time (beat's task-sent event) against when it ran (its record)."""

from __future__ import annotations

import itertools
import statistics
import time
from typing import Any

from labkit.errors import SetupError
from labkit.exercise import Exercise, Learner
from labkit.params import Param
from labkit.session import LabSession
from labs.lab05_beat.measure import runs, sent

PARAMS = {
    "interval": Param(0.5, "the schedule's interval, seconds", min=0.2, max=5),
    "away": Param(3.0, "the outage: seconds with beat publishing and no worker", min=1, max=60),
    "after": Param(2.5, "seconds watched once the worker is back", min=1, max=60),
}


def grade(s: LabSession, learner: Learner) -> None:
    p = s.params
    if p.away < 4 * p.interval or p.after < 4 * p.interval:
        raise SetupError("bad param away/after: each must cover 4 intervals at least")
    schedule = learner.module.beat_schedule(p.interval)
    s.start_beat("beat", settings={"beat_schedule": schedule})
    outage_start = time.time()
    time.sleep(p.away)
    s.start_worker("w1", concurrency=2)
    back = time.time()
    time.sleep(p.after)
    end = time.time()
    time.sleep(min(1.0, 2 * p.interval))  # the last ticks run
    published = sent(s, "lab05.tick", outage_start, end)
    check_ticks(s, p, published, runs(s), back, end)


def check_ticks(s: LabSession, p: Any, published: list[dict[str, Any]],
                ran: dict[str, dict[str, Any]], back: float, end: float) -> None:
    gaps = [b["timestamp"] - a["timestamp"] for a, b in itertools.pairwise(published)]
    median = statistics.median(gaps) if gaps else None
    s.check("beat_publishes_at_the_interval", f"beat publishes a tick every {p.interval:g} s",
            {"published": len(published), "median_gap_s": round(median, 3) if median else None},
            f"median gap within 20 % of {p.interval:g} s",
            median is not None and abs(median - p.interval) <= 0.2 * p.interval)
    late = [round(ran[e["uuid"]]["t"] - e["timestamp"], 2) for e in published if e["uuid"] in ran]
    stale = [d for d in late if d > 2 * p.interval]
    s.check("no_stale_tick_runs", "a worker back from an outage runs no tick published more "
            f"than two intervals ({2 * p.interval:g} s) before",
            {"ticks_run": len(late), "stale_runs": len(stale), "latest_run_after_s":
             max(late) if late else None}, "0 stale runs", not stale)
    fresh = [e for e in published if back <= e["timestamp"] <= end - p.interval]
    fresh_ran = [e for e in fresh if e["uuid"] in ran]
    s.check("fresh_ticks_still_run", "once the worker is back, the ticks beat publishes run",
            {"published_after_the_worker_came_back": len(fresh), "ran": len(fresh_ran)},
            "at least 3, all run", len(fresh) >= 3 and len(fresh_ran) == len(fresh))


EXERCISE = Exercise(
    lab_id="05_beat",
    task="a schedule whose ticks expire when no worker consumes them, so a worker back from "
         "an outage runs no burst of stale ticks",
    read_first="labs/lab05_beat/README.md (beat only publishes; the worker away)",
    time_box_min=10,
    grade=grade,
    params=PARAMS,
    hints={
        "beat_publishes_at_the_interval": "the schedule is a number of seconds",
        "no_stale_tick_runs": "beat publishes whether or not anyone listens; a message can "
                              "carry a time after which no worker should run it",
        "fresh_ticks_still_run": "how long should a tick stay worth running: less than an "
                                 "interval and it may die in transit",
    },
)
