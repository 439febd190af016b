"""Lab 11: priorities, queue order and rate limits on Redis, measured.

``python -m labs.lab11_priorities.driver`` is ``celery-lab run 11``; the notebook calls ``run()``.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from labkit import runner
from labkit.cli import run_script
from labkit.errors import SetupError
from labkit.lab import Lab
from labkit.params import Param, Params
from labkit.session import LabSession
from labkit.taskside import STAMP_STARTS
from labs.lab11_priorities import checks, order, plots, queues, rates, stored
from labs.lab11_priorities.tasks import JOB

FINE_STEPS = list(range(10))  # a priority_steps with a list per value
# The queues, one job each; every worker takes one message at a time unless said otherwise.
Q = {"stored": "lab11_stored", "stored_fine": "lab11_stored_fine", "order": "lab11_order",
     "fine": "lab11_fine", "rr": ("lab11_rr_high", "lab11_rr_low"),
     "po": ("lab11_po_high", "lab11_po_low"), "cross": ("lab11_x_high", "lab11_x_low"),
     "rate1": "lab11_rate1", "rate3": "lab11_rate3", "global": "lab11_global",
     "dedicated": "lab11_urgent"}
BACKLOG = {"prefetch": "lab11_pf", "prefetch_one": "lab11_pf1", "late_one": "lab11_late1"}
TRIALS = 3  # tries of an urgent trial that must land while a backlog task runs

PARAMS = {
    "per_value": Param(3, "tasks per priority value 0-9 in the pre-filled queue", quick=2, min=1, max=20),
    "seed": Param(11, "seed of the order those tasks are sent in", min=0),
    "bulk": Param(24, "backlog tasks at priority 9 per worker", quick=18, min=16, max=200),
    "urgent": Param(3, "urgent tasks (priority 0) sent into the running backlog", min=1, max=10),
    "task_s": Param(0.2, "seconds each backlog task takes", quick=0.15, min=0.1, max=2),
    "prefetch": Param(4, "the first backlog worker's prefetch multiplier (Celery's default is 4)",
                      min=2, max=16),
    "per_queue": Param(6, "tasks per queue in the two-queue runs", quick=4, min=3, max=50),
    "rate": Param(10.0, "the rate limit, tasks per second", quick=20.0, min=2, max=50),
    "rate_s": Param(1.5, "seconds of rate-limited work per run at that rate", quick=1.0, min=0.5, max=10),
    "timeout": Param(30.0, "bound on every wait, seconds", min=10),
}


# A worker with more rate-limited tasks waiting than this stalls: kombu 5.7's event loop fires at
# most ten timers a tick, then sleeps a second (``Hub.fire_timers``), and each waiting task keeps
# a timer. The lab's runs stay under it; the stall is measured apart (see the README).
MAX_LIMITED = 30


def validate(p: Params) -> None:
    if round(p.rate * p.rate_s) > MAX_LIMITED:
        raise SetupError(f"bad params rate={p.rate:g}, rate_s={p.rate_s:g}: at most {MAX_LIMITED} "
                         "rate-limited tasks per worker (more stall kombu's event loop: see the README)")
    if p.bulk < p.prefetch + p.urgent + 2 * TRIALS:
        raise SetupError(f"bad param bulk={p.bulk}: at least prefetch + urgent + {2 * TRIALS} = "
                         f"{p.prefetch + p.urgent + 2 * TRIALS} (a backlog left when the urgent tasks land)")


def settings(p: Params) -> dict:
    return {"task_annotations": {"lab11.limited": {"rate_limit": f"{p.rate:g}/s"}}}


def _solo(queues: tuple[str, ...] | str, prefetch: int | None = 1, **settings) -> dict:
    """A worker that runs one task at a time in its main process (one message at a time, unless
    ``prefetch`` says otherwise; None is Celery's default multiplier, 4)."""
    queues = (queues,) if isinstance(queues, str) else queues
    return {"pool": "solo", "concurrency": 1, "prefetch": prefetch, "queues": list(queues),
            "settings": settings or None}


def _rate_worker(queues: tuple[str, ...]) -> dict:
    """Prefork with one process and Celery's default prefetch (multiplier 4)."""
    return {"concurrency": 1, "queues": list(queues)}


def _backlog_worker(queue: str, prefetch: int, **settings) -> dict:
    return {"concurrency": 1, "prefetch": prefetch, "queues": [queue],
            "settings": {STAMP_STARTS: ["lab11.job"], **settings}}


def measure_lab(s: LabSession) -> None:
    p = s.params
    fine = {"broker_transport_options": {"priority_steps": FINE_STEPS}}
    priority_order = {"broker_transport_options": {"queue_order_strategy": "priority"}}

    s.step("part 1: where a priority goes in Redis (a queue nothing consumes)")
    coarse = stored.measure(s.app, s.broker, Q["stored"])
    with s.client_app(fine) as fine_app:
        finer = stored.measure(fine_app, s.broker, Q["stored_fine"])
        s.step("pre-filling: shuffled priorities and the two-queue runs")
        sent = order.prefill_shuffled(s.app, Q["order"], p.per_value, p.seed, "order")
        sent_fine = order.prefill_shuffled(fine_app, Q["fine"], p.per_value, p.seed, "fine")
    per = p.per_queue
    queues.prefill(s.app, "rr", *Q["rr"], per)
    queues.prefill(s.app, "po", *Q["po"], per)
    queues.prefill(s.app, "cross", *Q["cross"], per, low_priority=0, high_priority=6)
    s.write_json("stored.json", {"default_steps": coarse, "fine_steps": finer})
    checks.check_stored(s.evidence, coarse, finer, FINE_STEPS)

    workers = s.start_workers({
        "order": _solo(Q["order"]), "fine": _solo(Q["fine"], **fine),
        "rr": _solo(Q["rr"]), "po": _solo(Q["po"], **priority_order),
        "cross": _solo(Q["cross"], **priority_order),
        "prefetch": _backlog_worker(BACKLOG["prefetch"], p.prefetch),
        "prefetch_one": _backlog_worker(BACKLOG["prefetch_one"], 1),
        "late_one": _backlog_worker(BACKLOG["late_one"], 1, task_acks_late=True),
        # Celery's default prefetch: what a rate-limited worker holds is part 4's question
        "r1": _rate_worker((Q["rate1"], Q["rate3"], Q["global"])),
        "r2": _rate_worker((Q["rate3"], Q["global"])),
        "r3": _rate_worker((Q["rate3"], Q["global"])),
        "dedicated": _solo(Q["dedicated"]),
    }, ready_timeout=p.timeout)
    by_name = {w.name: w for w in workers}

    s.step("part 2: the order one worker runs a pre-filled queue in")
    ran = order.drained_order(s, "order", len(sent), p.timeout)
    ran_fine = order.drained_order(s, "fine", len(sent_fine), p.timeout)
    s.write_json("order.json", {"default_steps": {"sent": sent, "ran": ran},
                                "fine_steps": {"sent": sent_fine, "ran": ran_fine}})
    checks.check_order(s.evidence, sent, ran, sent_fine, ran_fine)

    s.step("part 2: urgent tasks sent into a running backlog, three prefetch settings at once")
    # sent now, to idle workers: the trials begin as soon as two backlog tasks have started
    backlogs = {name: order.prefill_bulk(s.app, queue, p.bulk, p.task_s, f"bulk-{name}")
                for name, queue in BACKLOG.items()}
    with ThreadPoolExecutor(len(BACKLOG)) as pool:
        trials = dict(zip(BACKLOG, pool.map(lambda name: _trials(s, name, backlogs[name]), BACKLOG),
                          strict=True))
    dedicated = _dedicated(s, p)
    s.write_json("backlog.json", {"trials": trials, "dedicated": dedicated,
                                  "prefetch": {"prefetch": p.prefetch, "prefetch_one": 1, "late_one": 1}})
    checks.check_backlog(s.evidence, trials, p.prefetch)

    s.step("part 3: one worker, two queues: round robin, priority, and a message priority across them")
    runs = {name: order.drained_order(s, name, 2 * per, p.timeout) for name in ("rr", "po", "cross")}
    turns = {name: queues.turns(runs[name], *Q[name]) for name in runs}
    s.write_json("queues.json", {"runs": runs, "turns": turns, "queues": {n: Q[n] for n in runs}})
    checks.check_queues(s.evidence, turns, per)

    s.step(f"part 4: rate_limit {p.rate:g}/s on one worker, on three, and a bucket they share")
    count = max(4, round(p.rate * p.rate_s))
    one = rates.limited_run(s, [by_name["r1"]], Q["rate1"], count, "rate-one", p.timeout,
                            look_at=by_name["r1"])
    three_workers = [by_name[n] for n in ("r1", "r2", "r3")]
    three = rates.limited_run(s, three_workers, Q["rate3"], 3 * count, "rate-three", p.timeout)
    shared = rates.guarded_run(s, three_workers, Q["global"], count, p.rate, "shared", p.timeout)
    s.write_json("rates.json", {"rate": p.rate, "one": one, "three": three, "shared": shared})
    checks.check_rates(s.evidence, one, three, shared, p.rate)
    s.write_csv("approaches.csv", checks.approaches(trials, turns, dedicated, p.task_s))


def _trials(s: LabSession, name: str, bulk_ids: list[str]) -> list[dict]:
    """Up to TRIALS urgent trials on one backlog, until one lands while a backlog task runs."""
    p, out = s.params, []
    for trial in range(TRIALS):
        try:
            out.append(order.urgent_trial(s, BACKLOG[name], bulk_ids, p.urgent, p.task_s, trial, p.timeout))
        except TimeoutError:
            if not out:  # not one backlog task began: that is what the run reports
                raise
            break  # the backlog ran out before another trial: the ones done are judged
        if out[-1]["covered"]:
            break
    return out


def _dedicated(s: LabSession, p: Params) -> dict:
    """The other approach: urgent tasks on a queue only a worker of their own consumes."""
    worker = next(w for w in s.workers if w.name == "dedicated")
    sent_at = time.time()
    for seq in range(p.urgent):
        s.app.send_task(JOB, ("dedicated", seq), queue=Q["dedicated"])
    ran = order.drained_order(s, "dedicated", p.urgent, p.timeout)
    return {"urgent_wait_s": min(r["started"] for r in ran) - sent_at, "rss_bytes": worker.rss_bytes()}


LAB = Lab(
    id="11_priorities",
    title="Priorities, queue order and rate limits on Redis",
    measure=measure_lab,
    figures=plots.FIGURES,
    params=PARAMS,
    settings=settings,
    validate=validate,
    wall_time="default about 15 s, --quick about 12 s",
)

# What the notebook calls: the same measurement as ``celery-lab run 11``.
run = partial(runner.run, LAB)

if __name__ == "__main__":
    sys.exit(run_script(LAB))
