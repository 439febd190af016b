"""Exercise 03's grader: the learner's progress polled from the result backend as a client
would, and the learner's login sent twice (once parked on a queue no worker reads, once run by
a worker logging at DEBUG with ``result_extended`` on), then every place Lab 03 reads searched
whole for the password."""

from __future__ import annotations

import itertools
import json
import secrets
import time
from typing import Any

from labkit.exercise import Exercise, Learner
from labkit.params import Param
from labkit.redis_state import decode_message
from labkit.session import LabSession
from labs.lab03_bind_context.tasks import EXPECTED_PASSWORD

QUEUE, PARKED = "ex03", "ex03_parked"
PARAMS = {
    "steps": Param(6, "steps of the progress task", min=4, max=50),
    "step_s": Param(0.2, "seconds per step", min=0.1, max=5),
    "poll_s": Param(0.03, "the client's polling interval, seconds", min=0.01, max=0.05),
}


def grade(s: LabSession, learner: Learner) -> None:
    p = s.params
    options = learner.worker_options()
    worker = s.start_worker("w1", concurrency=2, loglevel="DEBUG", queues=[QUEUE],
                            env=options["env"],
                            settings={**options["settings"], "result_extended": True})
    result = s.app.send_task("ex03.report", args=[p.steps, p.step_s], queue=QUEUE)
    polls = []
    deadline = time.monotonic() + p.steps * p.step_s + 10
    while time.monotonic() < deadline:
        state, info = result.state, result.info
        polls.append({"state": state, "done": info.get("done") if isinstance(info, dict) else None})
        if state in ("SUCCESS", "FAILURE"):
            break
        time.sleep(p.poll_s)
    check_progress(s, p, polls)

    password = f"pw-{secrets.token_hex(8)}"
    with s.broker.client() as r:
        r.set(s.broker.key(EXPECTED_PASSWORD), password)
    learner.module.send_login(s.app, password, queue=PARKED)
    login = learner.module.send_login(s.app, password, queue=QUEUE)
    value = login.get(timeout=15, propagate=False)
    s.events.missing_tasks({login.id}, "task-succeeded", 5)
    with s.broker.client() as r:
        parked = [raw.decode() for raw in r.lrange(s.broker.key(PARKED), 0, -1)]
        meta = (r.get(s.broker.key(f"celery-task-meta-{login.id}")) or b"").decode()
    message = "\n".join(raw + json.dumps(decode_message(raw)["body_decoded"]) for raw in parked)
    places = {"events": json.dumps(s.events.snapshot(), default=str),
              "worker_log_debug": worker.process.log_path.read_text(errors="replace"),
              "result_backend": meta}
    check_login(s, password, value, login.state, message, places)


def check_progress(s: LabSession, p: Any, polls: list[dict[str, Any]]) -> None:
    seen = [x["done"] for x in polls if x["done"] is not None and x["state"] != "SUCCESS"]
    climbs = all(a <= b for a, b in itertools.pairwise(seen))
    distinct = sorted(set(seen))
    s.check("progress_climbs", "a client polling the result sees the task under way, step "
            "after step, then its result",
            {"polls": len(polls), "progress_values_seen": distinct,
             "last_state": polls[-1]["state"] if polls else None},
            "at least 3 increasing values before SUCCESS",
            len(distinct) >= 3 and climbs and bool(polls) and polls[-1]["state"] == "SUCCESS")


def check_login(s: LabSession, password: str, value: Any, state: str, message: str,
                places: dict[str, str]) -> None:
    s.check("the_login_works", "the worker gets the password right: the login succeeds",
            {"state": state, "value": value}, "SUCCESS, True", state == "SUCCESS" and value is True)
    s.check("the_password_is_not_in_the_message", "the password is not in the message as Redis "
            "holds it (headers, or the body once base64-decoded)",
            {"messages": message.count('"headers"'), "found": password in message},
            "1 message, password absent", '"headers"' in message and password not in message)
    found = [place for place, text in places.items() if password in text]
    s.check("the_password_is_nowhere_else", "the password is in none of the events, the "
            "worker's DEBUG log or the stored result (result_extended on)",
            {"found_in": found}, "found in none", not found)


EXERCISE = Exercise(
    lab_id="03_bind_context",
    task="report progress a polling client sees climb, and send a password that appears in "
         "none of the places Lab 03 measures",
    read_first="labs/lab03_bind_context/README.md (progress with update_state; the secret "
               "argument)",
    time_box_min=15,
    grade=grade,
    params=PARAMS,
    hints={
        "progress_climbs": "a bound task can store a state of its own, with meta, while it runs",
        "the_login_works": "the worker must end up with the real password",
        "the_password_is_not_in_the_message": "argsrepr and kwargsrepr change what is shown, "
                                              "not what is sent",
        "the_password_is_nowhere_else": "what does result_extended store, and what does a "
                                        "DEBUG log print? What if the message carried no "
                                        "password at all?",
    },
)
