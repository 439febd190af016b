"""Exercise 01's grader: the learner's ``send`` and ``collect`` against a real worker with one
pool slot, judged by what reached the broker and the worker's own events."""

from __future__ import annotations

import time

from labkit import bounded
from labkit.errors import SetupError
from labkit.exercise import Exercise, Learner
from labkit.params import Param
from labkit.session import LabSession
from labs.lab01_hello_world.tasks import add

EXPECTED = [2, 5, 13]
PARAMS = {
    "later_s": Param(1.0, "how much later the third task must run, seconds", min=0.5, max=10),
    "deadline_s": Param(4.0, "collect's deadline for all three results, seconds", min=2, max=60),
}


def grade(s: LabSession, learner: Learner) -> None:
    p = s.params
    if p.deadline_s < p.later_s + 1:
        raise SetupError("bad param deadline_s: it must exceed later_s by a second at least")
    worker = s.start_worker("w1", concurrency=1)
    m = learner.module
    t0 = time.time()
    sent = bounded.call(lambda: m.send(s.app, add, p.later_s), timeout=p.later_s + 10)
    probe = add.delay(100, 1)  # the one slot must be free while the third task waits
    results = sent.value if sent.finished and not sent.error else []
    got = bounded.call(lambda: m.collect(results, p.deadline_s), timeout=p.deadline_s + 2)
    probe.get(timeout=p.deadline_s + 5)
    ids = [getattr(r, "id", None) for r in results or []]
    published = [i for i in ids if i and s.events.count(i, "task-sent")]
    s.events.missing_tasks(set(published), "task-succeeded", p.later_s + 5)
    events = s.events.by_task()
    started = {i: events.get(i, {}).get("task-started", {}).get("timestamp") for i in ids}
    on_worker = [i for i in ids if events.get(i, {}).get("task-succeeded", {}).get("hostname")
                 == worker.hostname]

    s.check("the_worker_ran_all_three", "the worker, not this process, ran the three tasks",
            {"results": len(ids), "published": len(published), "ran_on_the_worker": len(on_worker)},
            f"3 published, 3 run on {worker.hostname}",
            len(ids) == 3 and len(published) == 3 and len(on_worker) == 3)
    s.check("send_returns_at_once", "send() returns at once: the waiting is not the client's",
            {"send_s": round(sent.seconds, 3) if sent.finished else None,
             "error": repr(sent.error) if sent.error else None},
            f"send() returned without error in under {p.later_s / 2:g} s",
            sent.finished and sent.error is None and sent.seconds < p.later_s / 2)
    delays = [round(t - t0, 3) if t else None for t in started.values()]
    later = delays[2] if len(delays) == 3 else None
    s.check("the_third_runs_later", f"the third task starts about {p.later_s:g} s later, the "
            "first two at once",
            {"started_after_s": delays},
            f"first two < {p.later_s / 2:g} s, third >= {0.9 * p.later_s:g} s",
            len(delays) == 3 and None not in delays and max(delays[:2]) < p.later_s / 2
            and later >= 0.9 * p.later_s)
    probe_done = events.get(probe.id, {}).get("task-succeeded", {}).get("timestamp")
    s.check("no_pool_slot_held_while_waiting", "while the third task waits, the worker's only "
            "pool slot stays free: a task sent after it runs first",
            {"probe_done_after_s": round(probe_done - t0, 3) if probe_done else None,
             "third_started_after_s": later},
            "probe done before the third task starts",
            bool(probe_done and later is not None and probe_done - t0 < later))
    values = got.value if got.finished and not got.error else None
    s.check("results_within_the_deadline", f"collect() returns {EXPECTED} within "
            f"{p.deadline_s:g} s",
            {"values": values, "collect_s": round(got.seconds, 3) if got.finished else None,
             "error": repr(got.error) if got.error else None},
            f"{EXPECTED} in under {p.deadline_s:g} s",
            values == EXPECTED and got.seconds <= p.deadline_s)


EXERCISE = Exercise(
    lab_id="01_hello_world",
    task="send add three ways, one scheduled for later without holding a pool slot, and "
         "collect the results within a deadline",
    read_first="labs/lab01_hello_world/README.md, step 3 (the four ways to submit)",
    time_box_min=10,
    grade=grade,
    params=PARAMS,
    hints={
        "the_worker_ran_all_three": "which of delay, apply_async, send_task and apply publish "
                                    "a message, and which runs the task where it is called?",
        "send_returns_at_once": "a client that sleeps is not scheduling anything: what can a "
                                "message carry that tells the worker when to run it?",
        "the_third_runs_later": "apply_async takes options besides the arguments: look for "
                                "the ones about time",
        "no_pool_slot_held_while_waiting": "where does a task with a countdown wait: in a "
                                           "pool slot, or in the worker's timer?",
        "results_within_the_deadline": "result.get() takes a timeout; one deadline for three "
                                       "waits means each gets what is left of it",
    },
)
