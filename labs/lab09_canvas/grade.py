"""Exercise 09's grader: the learner's pipeline run on a real worker over items of which one,
chosen at random, fails to fetch; then what the fan-in step recorded and the failures reported,
once everything the pipeline sent has ended."""

from __future__ import annotations

import random
from typing import Any

from labkit.exercise import Exercise, Learner
from labkit.params import Param
from labkit.session import LabSession
from labs.lab09_canvas.tasks import EX_BAD, EX_FAILURES, EX_TOTALS

QUEUE = "ex09"
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
    learner.module.pipeline(s.app, list(range(p["members"])), queue=QUEUE)
    s.events.wait_until_settled(p["timeout"])
    check_pipeline(s, p["members"], bad, s.records(EX_TOTALS), s.records(EX_FAILURES))


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
        "the_failure_is_reported_once": "an errback on a chord fires for the body by default, and "
                                        "per member with task_allow_error_cb_on_chord_header; which "
                                        "step runs exactly once?",
    },
)
