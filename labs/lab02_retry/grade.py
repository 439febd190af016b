"""Exercise 02's grader: the learner's ``ex02.charge`` on a real worker, each retry's drawn wait
read from the retried message's ETA (exact, whatever the worker's timer precision), each
attempt recorded by the flaky API itself."""

from __future__ import annotations

from typing import Any

from labkit.exercise import Exercise, Learner
from labkit.params import Param
from labkit.session import LabSession
from labs.lab02_retry.measure import epoch
from labs.lab02_retry.tasks import EXERCISE_ATTEMPTS

FACTOR, CAP = 1, 2  # the exercise's backoff: 1 s, 2 s, ... never more than 2 s
SLACK = 0.05  # the drawn wait is eta - the moment the failure was recorded, a few ms after
PARAMS = {
    "tasks": Param(8, "charges sent at once", min=6, max=50),
    "fail_times": Param(4, "timeouts before the API answers (each charge)", min=3, max=5),
}


def bound(k: int) -> float:
    return min(CAP, FACTOR * 2 ** k)


def drawn_waits(records: list[dict[str, Any]], task_id: str) -> dict[int, float]:
    """Retry k's drawn wait: the next attempt's ETA minus when attempt k failed (no ETA: 0)."""
    mine = [r for r in records if r["id"] == task_id]
    failed = {r["retries"]: r["t"] for r in mine if r["phase"] == "retry-called"}
    attempts = {r["retries"]: r for r in mine if r["phase"] == "attempt"}
    out = {}
    for k, t in failed.items():
        nxt = attempts.get(k + 1)
        if nxt is not None:
            eta = epoch(nxt["eta"])
            out[k] = eta - t if eta else 0.0
    return out


def grade(s: LabSession, learner: Learner) -> None:
    p = s.params
    s.start_worker("w1", concurrency=2, **learner.worker_options())
    sent = [s.app.send_task("ex02.charge", args=[p.fail_times]) for _ in range(p.tasks)]
    worst = sum(bound(k) for k in range(p.fail_times)) + 10
    states = [(r.get(timeout=worst, propagate=False), r.state) for r in sent]
    records = s.records(EXERCISE_ATTEMPTS)
    per_task = {r.id: drawn_waits(records, r.id) for r in sent}
    attempts = {r.id: sum(1 for x in records if x["id"] == r.id and x["phase"] == "attempt")
                for r in sent}
    check_charges(s, p, states, attempts, per_task)


def check_charges(s: LabSession, p: Any, states: list[tuple[Any, str]],
                  attempts: dict[str, int], per_task: dict[str, dict[int, float]]) -> None:
    done = sum(1 for value, state in states if state == "SUCCESS" and value == "charged")
    right = sum(1 for n in attempts.values() if n == p.fail_times + 1)
    s.check("every_charge_finishes_once", "every charge succeeds, after exactly "
            f"{p.fail_times} retries", {"succeeded": done, "with_the_right_attempts": right,
                                        "of": len(states)},
            f"{len(states)} succeeded, each in {p.fail_times + 1} attempts",
            done == len(states) and right == len(states))
    waits = [(k, w) for waits in per_task.values() for k, w in waits.items()]
    over = [(k, round(w, 3)) for k, w in waits if not -SLACK <= w <= bound(k) + SLACK]
    s.check("waits_within_the_capped_exponential", "retry k waits between 0 and "
            f"min({CAP}, {FACTOR} x 2**k) s", {"waits": len(waits), "outside": over[:5]},
            "every wait inside its bound", bool(waits) and not over)
    later = [w for k, w in waits if k >= 1]
    s.check("the_backoff_grows", f"later retries may wait longer than the first bound "
            f"({bound(0)} s): the waits grow", {"longest_after_the_first_s":
                                                 round(max(later), 3) if later else None},
            f"some retry after the first waits more than {bound(0) + SLACK:g} s",
            bool(later) and max(later) > bound(0) + SLACK)
    by_k: dict[int, list[float]] = {}
    for k, w in waits:
        by_k.setdefault(k, []).append(w)
    spread = {k: round(max(v) - min(v), 3) for k, v in by_k.items() if len(v) > 1}
    s.check("the_waits_are_jittered", "charges failing together do not retry together: the "
            "same retry waits differently across charges", {"spread_by_retry_s": spread},
            "some retry's waits spread over more than 0.3 s",
            any(v > 0.3 for v in spread.values()))


EXERCISE = Exercise(
    lab_id="02_retry",
    task="retry a flaky payment call with capped exponential backoff and full jitter, and "
         "finish once",
    read_first="labs/lab02_retry/README.md (backoff and full jitter against Celery's formula)",
    time_box_min=15,
    grade=grade,
    params=PARAMS,
    hints={
        "every_charge_finishes_once": "a retry is a new message for the same task id; a loop or "
                                      "a sleep inside the task is not one",
        "waits_within_the_capped_exponential": "the wait before retry k is bounded by "
                                               "factor x 2**k, and by the cap",
        "the_backoff_grows": "a fixed countdown is not a backoff: what should the wait depend "
                             "on?",
        "the_waits_are_jittered": "without jitter, tasks that failed together retry together; "
                                  "Celery has an option for it",
    },
)
