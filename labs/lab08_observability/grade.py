"""Exercise 08's grader: the learner's alert polled against a real Flower while a burst backs up
the ``celery`` queue (the worker paused with ``cancel_consumer``) and then drains; the queue's
real length read from Redis beside it."""

from __future__ import annotations

import time
from typing import Any

from labkit import bounded
from labkit.exercise import Exercise, Learner
from labkit.params import Param
from labkit.redis_state import queue_length
from labkit.sampler import Sampler
from labkit.session import LabSession
from labs.lab08_observability.tasks import work

POLL_S = 0.25
PARAMS = {
    "threshold": Param(5, "the alert's threshold, messages", min=1, max=100),
    "within": Param(3.0, "fire and clear within this many seconds", min=2, max=30),
}


def grade(s: LabSession, learner: Learner) -> None:
    p = s.params
    worker = s.start_worker("w1", concurrency=2)
    flower = s.start_flower()

    def poll() -> dict[str, Any]:
        call = bounded.call(lambda: learner.module.backlog_alert(
            flower.url, flower.user, flower.password, p.threshold), timeout=2.0)
        return {"firing": bool(call.value) if call.finished and not call.error else None,
                "error": repr(call.error) if call.error else None,
                "queue": queue_length(s.broker)}

    control = s.app.control
    with Sampler(poll, interval=POLL_S) as alert:
        time.sleep(1.0)  # quiet
        control.cancel_consumer("celery", destination=[worker.hostname], reply=True, timeout=5)
        burst_at = time.time()
        results = [work.delay(0.05) for _ in range(p.threshold + 10)]
        deadline = time.monotonic() + p.within + 2
        while time.monotonic() < deadline and not any(
                r["value"]["firing"] for r in alert.rows if r["t"] >= burst_at):
            time.sleep(0.05)
        control.add_consumer("celery", destination=[worker.hostname], reply=True, timeout=5)
        for r in results:
            r.get(timeout=30)
        drained_at = time.time()
        time.sleep(p.within + 1)
    rows = [{"t": r["t"], **r["value"]} for r in alert.rows]
    check_alert(s, p, rows, burst_at, drained_at)


def check_alert(s: LabSession, p: Any, rows: list[dict[str, Any]], burst_at: float,
                drained_at: float) -> None:
    errors = sorted({r["error"] for r in rows if r["error"]})
    over = [r["t"] for r in rows if r["queue"] > p.threshold]
    crossed = min(over) if over else None
    before = [r for r in rows if r["t"] < burst_at]
    s.check("quiet_without_a_backlog", "the alert stays quiet while nothing waits",
            {"polls": len(before), "fired": sum(1 for r in before if r["firing"]),
             "errors": errors[:2]}, "0 of the polls fired, no error",
            bool(before) and not any(r["firing"] for r in before) and not errors)
    fired = [r["t"] for r in rows if r["firing"] and crossed and r["t"] >= crossed]
    s.check("fires_when_the_queue_backs_up", f"the alert fires within {p.within:g} s of the "
            f"queue passing {p.threshold} messages",
            {"queue_passed_threshold_at_s": round(crossed - burst_at, 2) if crossed else None,
             "fired_after_s": round(fired[0] - crossed, 2) if fired else None},
            f"fired <= {p.within:g} s after the crossing",
            bool(fired) and fired[0] - crossed <= p.within)
    after = [r for r in rows if r["t"] >= drained_at]
    cleared = next((r["t"] for r in after if r["firing"] is False), None)
    late_fires = [r for r in after if cleared and r["t"] > cleared and r["firing"]]
    s.check("clears_once_it_drains", f"the alert clears within {p.within:g} s of the queue "
            "draining, and stays clear",
            {"cleared_after_s": round(cleared - drained_at, 2) if cleared else None,
             "fired_again": len(late_fires)}, f"cleared <= {p.within:g} s, then quiet",
            cleared is not None and cleared - drained_at <= p.within and not late_fires)


EXERCISE = Exercise(
    lab_id="08_observability",
    task="a backlog alert from Flower's API that fires when the queue backs up past a "
         "threshold and clears once it drains",
    read_first="labs/lab08_observability/README.md (Flower, and what inspect and events "
               "can and cannot see)",
    time_box_min=15,
    grade=grade,
    params=PARAMS,
    hints={
        "quiet_without_a_backlog": "an alert that errors or fires on an empty queue wakes "
                                   "someone for nothing",
        "fires_when_the_queue_backs_up": "Flower's task list comes from worker events: can it "
                                         "know a message no worker has taken yet? Who does?",
        "clears_once_it_drains": "the alert must follow the queue down as well as up",
    },
)
