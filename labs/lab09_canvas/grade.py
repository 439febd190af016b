"""Exercise 09's grader: the learner's pipeline run on a real worker over items of which one,
chosen at random, fails to fetch; then what the fan-in step recorded and the failures reported,
once everything the pipeline sent has ended."""

from __future__ import annotations

import random
from typing import Any

from labkit.exercise import Exercise, Learner
from labkit.params import Param
from labkit.session import LabSession
from labs.lab09_canvas.tasks import EX_BAD, EX_FAILURES, EX_FETCH_S, EX_TOTALS

QUEUE = "ex09"
FETCH_S = 0.1  # each fetch takes this long: several rounds on the worker's two slots
PARAMS = {
    "members": Param(6, "items fetched in parallel (the chord's header)", min=3, max=50),
    "timeout": Param(20.0, "bound on every wait, seconds", min=10),
}


def grade(s: LabSession, learner: Learner) -> None:
    p = s.params
    options = learner.worker_options()
    s.start_worker("w1", concurrency=2, queues=[QUEUE], env=options["env"],
                   settings={**options["settings"], "task_default_queue": QUEUE})
    bad = random.randrange(p["members"])
    with s.broker.client() as r:
        r.set(s.broker.key(EX_BAD), bad)
        r.set(s.broker.key(EX_FETCH_S), FETCH_S)
    learner.module.pipeline(s.app, list(range(p["members"])), queue=QUEUE)
    s.events.wait_until_settled(p["timeout"])
    check_pipeline(s, p["members"], bad, s.records(EX_TOTALS), s.records(EX_FAILURES))
    check_shape(s, p["members"], task_times(s.events.snapshot()))


def task_times(events: list[dict[str, Any]]) -> dict[str, list[dict[str, float | None]]]:
    """Per task name, each task sent: when it was sent, started and ended (its events)."""
    names = {e["uuid"]: e.get("name") for e in events if e.get("type") in ("task-sent", "task-received")}
    kinds = {"task-sent": "sent", "task-started": "start", "task-succeeded": "end", "task-failed": "end"}
    times: dict[str, dict[str, float]] = {}
    for e in events:
        if e.get("uuid") in names and e["type"] in kinds:
            times.setdefault(e["uuid"], {}).setdefault(kinds[e["type"]], e["timestamp"])
    out: dict[str, list[dict[str, float | None]]] = {}
    for task_id, name in names.items():
        out.setdefault(name, []).append({k: times.get(task_id, {}).get(k) for k in ("sent", "start", "end")})
    return out


def check_shape(s: Any, members: int, times: dict[str, list[dict[str, float | None]]]) -> None:
    fetches, totals = times.get("ex09.fetch", []), times.get("ex09.total", [])
    last_start = max((f["start"] or 0 for f in fetches), default=None)
    sent = totals[0]["sent"] if len(totals) == 1 else None
    s.check("the_fan_in_is_sent_when_the_fetches_are_done",
            "every item is fetched by a task of its own, and the fan-in is a task sent only once the "
            "last fetch has run: no task sits waiting for others (in a worker slot or in the client)",
            {"fetch_tasks": len(fetches), "fan_in_tasks": len(totals),
             "fan_in_sent_after_last_fetch_started_s": round(sent - last_start, 4)
             if sent is not None and last_start is not None else None},
            f"{members} fetch tasks; 1 fan-in task, sent after the last fetch started",
            len(fetches) == members and len(totals) == 1 and sent is not None
            and last_start is not None and sent >= last_start)


def check_pipeline(s: Any, items: int, bad: int, totals: list[dict[str, Any]],
                   failures: list[dict[str, Any]]) -> None:
    good = sorted(i * i for i in range(items) if i != bad)
    s.check("the_fan_in_runs_once", "the fan-in step runs exactly once, although one item failed",
            {"fan_in_runs": len(totals)}, "1", len(totals) == 1)
    got = sorted(totals[0]["values"]) if len(totals) == 1 else None
    s.check("the_fan_in_gets_every_good_value", "it is given the value of every item that did not fail",
            {"values": got, "failed_item": bad}, f"{good}", got == good)
    named = [f.get("item") for f in failures]
    s.check("the_failure_is_reported_once", "the failed item is reported exactly once, by name",
            {"reports": named}, f"[{bad}]", named == [bad])


EXERCISE = Exercise(
    lab_id="09_canvas",
    task="make a fan-out/fan-in run its fan-in once with every good result, and report the one "
         "failed item once",
    read_first="labs/lab09_canvas/README.md (the failure matrix: a chord whose header member raises)",
    time_box_min=15,
    grade=grade,
    params=PARAMS,
    hints={
        "the_fan_in_runs_once": "what does a chord do with its body when a header member raises?",
        "the_fan_in_gets_every_good_value": "a member that does not raise still has something to "
                                            "say about its item",
        "the_fan_in_is_sent_when_the_fetches_are_done": "a task that waits for other tasks holds a "
                                                        "worker slot; which canvas sends the next step "
                                                        "only when its inputs are ready?",
        "the_failure_is_reported_once": "an errback on a chord fires for the body by default, and "
                                        "per member with task_allow_error_cb_on_chord_header; which "
                                        "step runs exactly once?",
    },
)
