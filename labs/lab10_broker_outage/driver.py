"""Lab 10: the broker goes away. A Redis restart with and without persistence (SIGTERM and
SIGKILL), what the worker does until it is back, what a client's send does while it is down,
a hung broker (SIGSTOP), and acks_late tasks running when the connection drops (with
worker_cancel_long_running_tasks_on_connection_loss off and on), all on the kit's own Redis,
controlled at exact moments.

``python -m labs.lab10_broker_outage.driver`` is ``celery-lab run 10``; the notebook calls ``run()``.
"""

from __future__ import annotations

import inspect
import sys
from functools import partial

from kombu import Connection

from labkit import runner
from labkit.cli import run_script
from labkit.errors import SetupError
from labkit.lab import Lab
from labkit.params import Param, Params
from labkit.session import LabSession
from labs.lab10_broker_outage import checks, hung, late, lessons, plots, publish, restart, room
from labs.lab10_broker_outage.tasks import COUNTS

HUNG_QUEUE = publish.CLIENT_QUEUE

PARAMS = {
    "rounds": Param(list(restart.ROUNDS), "restarts, each persistence-signal: "
                    + ", ".join(restart.ROUNDS), quick=["none-SIGTERM", "everysec-SIGKILL"]),
    "results": Param(2, "tasks whose results are stored before the restart", min=1, max=20),
    "prefetched": Param(2, "messages the worker reserves beyond the one it runs (its prefetch)",
                        min=1, max=8),
    "queued": Param(4, "tasks left in the queue's list", min=1, max=50),
    "eta": Param(2, "ETA tasks the worker holds (countdown an hour)", min=1, max=20),
    "pause_s": Param(8.0, "how long the broker stays hung (SIGSTOP)", min=5.0, max=30.0),
    "late_vt": Param(4.0, "visibility_timeout of the acks_late part's workers, seconds", min=3.0,
                     max=30.0),
    "timeout": Param(30.0, "bound on every wait, seconds", min=10),
}


def validate(p: Params) -> None:
    unknown = [r for r in p.rounds if r not in restart.ROUNDS]
    if unknown:
        raise SetupError(f"bad param rounds={','.join(p.rounds)}: unknown {unknown}; "
                         f"choose from {', '.join(restart.ROUNDS)}")
    if len(set(p.rounds)) != len(p.rounds):
        raise SetupError(f"bad param rounds={','.join(p.rounds)}: a round named twice")
    bound = publish.hung_send_bound_s()
    if p.pause_s < 2 * bound:  # the socket_timeout client must be able to give up while hung
        raise SetupError(f"bad param pause_s={p.pause_s:g}: at least {2 * bound:g} s (twice the "
                         f"{bound:g} s a client with socket_timeout can take to give up)")


def settings(p: Params) -> dict:
    # The kit's compressed publish policy is replaced by Celery's own: what a real client does.
    return {"task_publish_retry_policy": publish.CELERY_PUBLISH_POLICY}


def first_retry_delay_s() -> float:
    """kombu's first reconnect delay (the interval_start of Connection._ensure_connection, which
    the worker's consumer calls with no intervals of its own), as installed."""
    return float(inspect.signature(Connection._ensure_connection).parameters["interval_start"].default)


def measure_lab(s: LabSession) -> None:
    p = s.params
    records = s.start_record_store()
    one_slot = {"concurrency": 1, "prefetch": p.prefetched}
    specs = {f"r{i}": {**one_slot, "queues": [f"lab10_r{i}"], "settings": records}
             for i, _ in enumerate(p.rounds)}
    specs["room"] = {"concurrency": 1, "prefetch": room.PREFETCH, "queues": [room.QUEUE],
                     "settings": records}
    specs["hung"] = {"concurrency": 1, "queues": [HUNG_QUEUE], "settings": records}
    specs["detect"] = hung.detecting_spec(records)
    late_specs = late.worker_specs(records, p.late_vt)
    workers = s.start_workers({**specs, **late_specs})
    late_workers = dict(zip(late_specs, workers[len(specs):], strict=True))
    workers = workers[:len(specs)]
    round_workers, room_worker, hung_worker, detect_worker = (workers[:-3], workers[-3],
                                                              workers[-2], workers[-1])
    grace_s = 1.0 + max(w.ready_s or 0 for w in workers)  # the machine's own pace, measured

    sizes = {"results": p.results, "prefetched": p.prefetched, "queued": p.queued, "eta": p.eta}
    rounds = []
    results = publish.ResultsAcrossRestart(s, p.timeout)  # the client's results, first round
    try:
        for i, (name, worker) in enumerate(zip(p.rounds, round_workers, strict=True)):
            rnd = restart.ROUNDS[name]
            s.step(f"restart {name}: persistence {rnd.persistence}, stopped with {name.split('-')[1]}")
            first = i == 0
            rounds.append(restart.one_round(
                s, rnd, worker, f"lab10_r{i}", sizes, p.timeout,
                partial(publish.while_stopped, timeout=p.timeout) if first else None,
                results if first else None))
    finally:
        results_run = results.close()
    client = rounds[0].pop("client")
    results_run["outage_s"] = rounds[0]["outage_s"]

    s.step("a worker with room in its prefetch when the broker goes (a BRPOP in flight)")
    window_s = first_retry_delay_s() + grace_s  # what a live worker needed, at most, above
    room_run = room.room_round(s, room_worker, window_s, p.timeout)

    s.step(f"a hung broker: SIGSTOP for {p.pause_s:g} s, a running task, three clients sending, "
           "a worker set to notice")
    hung_run = hung.hung(s, hung_worker, p.pause_s, p.timeout, detect_worker)
    runs = s.counts(COUNTS)  # after the hung part's sentinel: every send that got through has run

    s.step(f"acks_late tasks running when the connection drops: cancel on connection loss "
           f"False and True, visibility_timeout {p.late_vt:g} s")
    late_run = late.late_round(s, late_workers, p.late_vt, window_s, p.timeout)
    s.write_json("restarts.json", {"rounds": rounds, "room": room_run, "late": late_run})
    s.write_json("client.json", {"stopped": client, "hung": hung_run, "results": results_run})
    table = teaching_table(rounds)
    s.write_csv("table.csv", table)
    taught = lessons.lessons(rounds, room_run, client, runs, results_run, hung_run, late_run)
    s.write_csv("lessons.csv", taught)
    s.measured(table=table, lessons=taught, first_retry_delay_s=first_retry_delay_s(), grace_s=grace_s)

    checks.check_restarts(s.evidence, rounds)
    checks.check_reconnect(s.evidence, rounds, first_retry_delay_s(), grace_s)
    checks.check_room(s.evidence, room_run)
    checks.check_client_stopped(s.evidence, client, runs)
    checks.check_results_across(s.evidence, results_run, grace_s)
    checks.check_hung(s.evidence, hung_run)
    checks.check_detection(s.evidence, hung_run)
    checks.check_late(s.evidence, late_run)


def teaching_table(rounds: list[dict]) -> list[dict]:
    """Per restart and kind of task: what was lost, stranded, run once, run twice."""
    return [{"round": r["round"], "kind": kind, **row} for r in rounds for kind, row in r["by_kind"].items()]


LAB = Lab(
    id="10_broker_outage",
    title="The broker goes away: a Redis restart, persistence, a hung broker, the worker and the client",
    measure=measure_lab,
    figures=plots.FIGURES,
    params=PARAMS,
    settings=settings,
    validate=validate,
    embedded_only=True,
    wall_time="default about 50 s, --quick about 45 s",
)

# What the notebook calls: the same measurement as ``celery-lab run 10``.
run = partial(runner.run, LAB)

if __name__ == "__main__":
    sys.exit(run_script(LAB))
