"""Lab 08's check functions fed what a real quick run watched (states by polling and events,
result keys, inspect and Flower under a burst) and, one property at a time, what a Celery or a
Flower that behaved otherwise would show. No Redis, no worker, no Flower: the data is shaped like
measure.py's; inspect.csv and flower_scrapes.csv are written into the run directory."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from labkit.evidence import Evidence
from labkit.params import Params, resolve
from labkit.results import write_csv
from labs.lab08_observability import driver

Row = dict[str, Any]
Timeline = list[tuple[float, str]]

T0 = 1_795_300_421.33  # a wall-clock instant of a real run


@pytest.fixture
def ev(tmp_path: Path) -> Evidence:
    return Evidence(tmp_path)


@pytest.fixture
def p() -> Params:
    return resolve(driver.PARAMS, {}, quick=True)


def assert_only_fails(ev: Evidence, finding_id: str) -> None:
    """The named finding does not hold; every other finding of the same call still does."""
    assert [f.id for f in ev.findings if not f.holds] == [finding_id]


def tid(n: int) -> str:
    return str(uuid.UUID(int=n, version=4))


# --- task states -------------------------------------------------------------------------------

# each task's state over time (seconds after the first poll), as the result backend had it
STATES: dict[str, Timeline] = {
    "success": [(0, "PENDING"), (0.04, "STARTED"), (0.65, "SUCCESS")],  # work(0.6)
    "failure": [(0, "PENDING"), (0.045, "STARTED"), (0.355, "FAILURE")],  # work(0.3, fail)
    # retry_once: STARTED for a few ms, RETRY for the 0.6 s countdown, then STARTED and SUCCESS
    "retry": [(0, "PENDING"), (0.358, "STARTED"), (0.375, "RETRY"), (0.962, "STARTED"),
              (0.966, "SUCCESS")],
    "revoked": [(0, "PENDING"), (0.05, "REVOKED")],  # an ETA task revoked before it ran
    "unknown": [(0, "PENDING")],  # an id no task ever had
}
# the worker's events for the same tasks
EVENTS: dict[str, list[tuple[float, str]]] = {
    "success": [(0.034, "task-sent"), (0.036, "task-received"), (0.04, "task-started"),
                (0.65, "task-succeeded")],
    "failure": [(0.037, "task-sent"), (0.039, "task-received"), (0.045, "task-started"),
                (0.356, "task-failed")],
    "retry": [(0.04, "task-sent"), (0.045, "task-received"), (0.358, "task-started"),
              (0.369, "task-sent"), (0.371, "task-received"), (0.375, "task-retried"),
              (0.962, "task-started"), (0.966, "task-succeeded")],
    "revoked": [(0.042, "task-sent"), (0.05, "task-revoked")],
}


def state_at(timeline: Timeline, t: float) -> str:
    return [state for since, state in timeline if since <= t][-1]


def states(timelines: dict[str, Timeline] | None = None,
           events: dict[str, list[tuple[float, str]]] | None = None, poll_s: float = 0.051) -> Row:
    """measure.states: AsyncResult polled every ``poll_s`` until all are final and 1.5 s passed."""
    timelines = {**STATES, **(timelines or {})}
    events = {**EVENTS, **(events or {})}
    polls = [{"t": T0 + k * poll_s, **{name: state_at(tl, k * poll_s) for name, tl in timelines.items()}}
             for k in range(int(1.55 / poll_s) + 1)]
    return {"ids": {name: tid(i) for i, name in enumerate(events)}, "polls": polls,
            "events": sorted(({"t": T0 + t, "type": kind, "task": name}
                              for name, evs in events.items() for t, kind in evs),
                             key=lambda e: e["t"])}


POLLING = "a_client_sees_the_states_by_polling"
EVENTS_AGREE = "events_tell_the_same_story"
PENDING = "pending_also_means_never_heard_of"


def test_polling_and_events_show_every_state_as_a_real_run_did(ev: Evidence) -> None:
    """The holding example: retry seen as PENDING, RETRY, SUCCESS (its STARTED falls between
    polls), as in a real run."""
    driver.check_states(ev, states())
    assert [f.id for f in ev.findings] == [POLLING, EVENTS_AGREE, PENDING]
    assert all(f.holds for f in ev.findings)
    assert ev.measurements["states_seen"]["retry"] == ["PENDING", "RETRY", "SUCCESS"]


def test_without_task_track_started_polling_never_shows_started(ev: Evidence) -> None:
    """task_track_started off: the backend goes PENDING -> SUCCESS / FAILURE (the worker still
    sends task-started, so the events agree)."""
    driver.check_states(ev, states({"success": [(0, "PENDING"), (0.65, "SUCCESS")],
                                    "failure": [(0, "PENDING"), (0.355, "FAILURE")]}))
    assert_only_fails(ev, POLLING)


def test_a_retry_the_backend_never_records_is_not_seen_by_polling(ev: Evidence) -> None:
    """A Celery that kept STARTED through the countdown instead of storing RETRY."""
    driver.check_states(ev, states({"retry": [(0, "PENDING"), (0.358, "STARTED"), (0.966, "SUCCESS")]}))
    assert_only_fails(ev, POLLING)


def test_a_revoke_that_is_lost_lets_the_eta_task_run(ev: Evidence) -> None:
    """The revoke never reached the worker: the ETA task runs at its countdown and succeeds,
    and the events say so too."""
    ran = [(0, "PENDING"), (1.05, "STARTED"), (1.16, "SUCCESS")]
    ran_events = [(0.042, "task-sent"), (0.05, "task-received"), (1.05, "task-started"),
                  (1.16, "task-succeeded")]
    driver.check_states(ev, states({"revoked": ran}, {"revoked": ran_events}))
    assert [f.id for f in ev.findings if not f.holds] == [POLLING, EVENTS_AGREE]


def test_a_worker_that_discards_a_revoked_task_without_an_event_tells_another_story(
        ev: Evidence) -> None:
    """REVOKED stored, but no task-revoked event: the event stream misses the outcome."""
    driver.check_states(ev, states(events={"revoked": [(0.042, "task-sent")]}))
    assert_only_fails(ev, EVENTS_AGREE)


def test_a_worker_that_reports_a_retry_as_a_failure_tells_another_story(ev: Evidence) -> None:
    """task-failed instead of task-retried for the first attempt."""
    retry = [(t, "task-failed" if kind == "task-retried" else kind) for t, kind in EVENTS["retry"]]
    driver.check_states(ev, states(events={"retry": retry}))
    assert_only_fails(ev, EVENTS_AGREE)


def test_a_backend_that_told_unknown_ids_apart_would_not_say_pending(ev: Evidence) -> None:
    """Had the backend known which ids were never sent, the unknown id would not be PENDING."""
    driver.check_states(ev, states({"unknown": [(0, "PENDING"), (0.3, "UNKNOWN")]}))
    assert_only_fails(ev, PENDING)


# --- result keys -------------------------------------------------------------------------------

def meta(task: int, exists: bool = True, ttl: int = 60, status: str | None = "SUCCESS") -> Row:
    """measure.result_keys' look at one celery-task-meta-<id> key (TTL -2: no such key)."""
    return {"key": f"celery-task-meta-{tid(task)}", "exists": exists, "ttl_s": ttl if exists else -2,
            "status": status if exists else None}


def keys(success: Row | None = None, failure: Row | None = None, quiet: Row | None = None) -> Row:
    return {"success": success or meta(1, ttl=60), "failure": failure or meta(2, ttl=20, status="FAILURE"),
            "ignore_result": quiet or meta(3, exists=False)}


RESULTS = "results_live_in_redis_for_result_expires"


def test_results_expire_as_set_and_ignore_result_leaves_no_key(ev: Evidence, p: Params) -> None:
    """The holding example: TTL 60 for a success, 20 for a failure, no key for ignore_result."""
    driver.check_result_keys(ev, p, keys())
    assert ev.finding(RESULTS).holds


def test_a_failure_kept_for_result_expires_ignores_result_failure_expires(
        ev: Evidence, p: Params) -> None:
    """result_failure_expires not applied: the failure's key lives 60 s like a success."""
    driver.check_result_keys(ev, p, keys(failure=meta(2, ttl=60, status="FAILURE")))
    assert not ev.finding(RESULTS).holds


def test_an_ignore_result_task_that_stores_its_result_fails(ev: Evidence, p: Params) -> None:
    """ignore_result not honoured: the fire-and-forget task leaves a key."""
    driver.check_result_keys(ev, p, keys(quiet=meta(3, ttl=60)))
    assert not ev.finding(RESULTS).holds


def test_results_stored_without_expiry_fail(ev: Evidence, p: Params) -> None:
    """Keys with no TTL at all (-1): results kept forever."""
    driver.check_result_keys(ev, p, keys(success=meta(1, ttl=-1)))
    assert not ev.finding(RESULTS).holds


# --- the burst, watched by inspect -------------------------------------------------------------

CONCURRENCY, HELD = 2, 6  # one worker -c 2: at most 2 active, and 4 more it has prefetched
BURST: Row = {"sent": 23, "failures": 4, "scheduled": 3, "tasks": 20,
              "registered_lab08": ["lab08.fire_and_forget", "lab08.retry_once", "lab08.work"],
              "active_queues": ["celery"], "pool": {"w1@celery-lab": 2}, "threshold": 5}


def inspect_rows(concurrency: int = CONCURRENCY, held: int = HELD, tasks: int = 20,
                 scheduled: int = 3, eta_sample: int = 23, per_task: int = 3) -> list[Row]:
    """measure.burst's inspect samples (one every ~65 ms): ``scheduled`` ETA tasks held until
    sample ``eta_sample``, then reserved; ``tasks`` more, of which the worker runs
    ``concurrency`` at a time, each taking ``per_task`` samples, holding ``held`` at most."""
    active = min(concurrency, tasks)
    reserved = min(held - active, tasks - active)
    queue, sched, done = tasks - active - reserved, scheduled, 0
    rows = []
    for k in range(1000):
        rows.append({"t": T0 + 2.0 + 0.065 * k, "queue": queue, "reserved": reserved,
                     "scheduled": sched, "active": active, "done": done})
        if done == tasks + scheduled:
            return rows
        if k + 1 == eta_sample:
            reserved, sched = reserved + sched, 0
        if (k + 1) % per_task == 0:
            done += active
            active = min(concurrency, reserved)
            reserved -= active
            fetched = max(0, min(queue, held - active - reserved))
            reserved, queue = reserved + fetched, queue - fetched
    raise AssertionError("the simulated burst never drained")


def write_inspect(ev: Evidence, rows: list[Row]) -> None:
    write_csv(ev.run_dir / "inspect.csv", rows)


ACCOUNTS = "inspect_accounts_for_every_task"
POOL = "inspect_respects_the_pool_and_prefetch"


def test_the_simulated_burst_looks_like_a_real_one() -> None:
    """The builder's rows: 14 waiting, 4 reserved, 3 scheduled, 2 active at first; 23 done."""
    rows = inspect_rows()
    assert {k: rows[0][k] for k in ("queue", "reserved", "scheduled", "active", "done")} == {
        "queue": 14, "reserved": 4, "scheduled": 3, "active": 2, "done": 0}
    assert rows[-1]["done"] == 23
    assert all(r["queue"] + r["reserved"] + r["scheduled"] + r["active"] + r["done"] == 23 for r in rows)


def test_inspect_accounting_for_every_task_within_the_pool_holds(ev: Evidence) -> None:
    """The holding example: every sample adds up to 23; peaks 2 active, 7 reserved (4 + the 3
    ETA tasks when due), 3 scheduled, as a real run measured."""
    write_inspect(ev, inspect_rows())
    driver.check_inspect(ev, BURST)
    assert [f.id for f in ev.findings] == [ACCOUNTS, POOL] and all(f.holds for f in ev.findings)
    assert ev.measurements["inspect_peaks"] == {"queue": 14, "reserved": 7, "scheduled": 3, "active": 2}


def test_a_worker_that_does_not_answer_inspect_loses_track_of_tasks(ev: Evidence) -> None:
    """A worker too busy to answer within inspect's timeout: active, reserved and scheduled
    come back empty, so up to 9 tasks are nowhere (and no ETA task shows as scheduled)."""
    rows = [{**r, "reserved": 0, "scheduled": 0, "active": 0} for r in inspect_rows()]
    write_inspect(ev, rows)
    driver.check_inspect(ev, BURST)
    assert not ev.finding(ACCOUNTS).holds and not ev.finding(POOL).holds


@pytest.mark.xfail(strict=True, reason="cannot fail on this counter-example: each sample may be "
                   "off by concurrency + ETA tasks (5 here), so the 4 failures a Celery without "
                   "task-failed events would never count as done stay within the tolerance")
def test_failed_tasks_never_counted_as_done_leave_tasks_unaccounted(ev: Evidence) -> None:
    """No task-failed events: the 4 failed tasks of the burst never reach 'done'."""
    rows = [{**r, "done": max(0, r["done"] - BURST["failures"])} for r in inspect_rows()]
    write_inspect(ev, rows)
    driver.check_inspect(ev, BURST)
    assert not ev.finding(ACCOUNTS).holds


def test_eta_tasks_listed_as_reserved_not_scheduled_fail(ev: Evidence) -> None:
    """A Celery listing held ETA tasks under reserved: every task still accounted for."""
    rows = [{**r, "reserved": r["reserved"] + r["scheduled"], "scheduled": 0} for r in inspect_rows()]
    write_inspect(ev, rows)
    driver.check_inspect(ev, BURST)
    assert_only_fails(ev, POOL)


def test_a_worker_that_ignores_the_prefetch_limit_reserves_the_whole_burst(ev: Evidence) -> None:
    """Prefetch unlimited: the worker takes all 20 at once; 18 reserved, nothing waits in Redis."""
    write_inspect(ev, inspect_rows(held=20))
    driver.check_inspect(ev, BURST)
    assert_only_fails(ev, POOL)
    assert ev.measurements["inspect_peaks"]["reserved"] == 18


def test_a_pool_running_more_than_its_concurrency_fails(ev: Evidence) -> None:
    """Four tasks active at once on a -c 2 worker (from the same 6 held)."""
    write_inspect(ev, inspect_rows(concurrency=4))
    driver.check_inspect(ev, BURST)
    assert_only_fails(ev, POOL)


def test_a_worker_not_consuming_the_default_queue_fails(ev: Evidence) -> None:
    """active_queues without 'celery' (a worker started with -Q elsewhere)."""
    write_inspect(ev, inspect_rows())
    driver.check_inspect(ev, {**BURST, "active_queues": ["lab08"]})
    assert_only_fails(ev, POOL)


# --- Flower ------------------------------------------------------------------------------------

METRIC_FAMILIES = ["flower_events_created", "flower_events_total", "flower_task_prefetch_time_seconds",
                   "flower_task_runtime_seconds_bucket", "flower_task_runtime_seconds_count",
                   "flower_task_runtime_seconds_created", "flower_task_runtime_seconds_sum",
                   "flower_worker_number_of_currently_executing_tasks", "flower_worker_online",
                   "flower_worker_prefetched_tasks"]


def endpoint(without: int, with_: int = 200) -> Row:
    return {"without_credentials": without, "with_credentials": with_,
            "exposes_without": (METRIC_FAMILIES if without == 200 else None)}


def access(changed: dict[str, Row] | None = None) -> Row:
    """measure.flower_access with basic auth on: the API refuses anonymous calls, /metrics does
    not. ``changed`` replaces some paths' answers."""
    return {"/api/workers": endpoint(401), "/api/tasks": endpoint(401),
            "/api/queues/length": endpoint(401), "/metrics": endpoint(200),
            "workers_seen": ["w1@celery-lab"], "tasks_seen": 30, **(changed or {})}


# a real run's Flower scrapes (every 0.25 s): the queue length its API reports and its event
# counters; before the burst, 4 successes and 2 failures from the states and result-key parts
SCRAPES = [  # (seconds, queue_length, succeeded, failed, received)
    (0.0, 0, 4, 2, 7), (0.26, 0, 4, 2, 7), (0.52, 4, 4, 2, 16), (0.79, 12, 4, 4, 18),
    (1.05, 10, 4, 6, 20), (1.31, 8, 6, 6, 22), (1.57, 4, 10, 6, 26), (1.83, 2, 12, 6, 28),
    (2.09, 0, 14, 6, 30), (2.35, 0, 16, 6, 30), (2.6, 0, 20, 6, 30), (2.86, 0, 22, 6, 30),
    (3.12, 0, 23, 6, 30), (3.38, 0, 23, 6, 30), (3.64, 0, 23, 6, 30),
]


def scrapes(queue: list[int] | None = None, missed_successes: int = 0) -> list[Row]:
    """flower_scrapes.csv; ``queue`` replaces the queue lengths, ``missed_successes`` takes
    that many task-succeeded events out of the counter from the burst's middle on."""
    rows = []
    for k, (t, length, ok, bad, received) in enumerate(SCRAPES):
        if k >= 6:
            ok -= missed_successes
        rows.append({"t": T0 + 1.5 + t, "queue_length": length if queue is None else queue[k],
                     "succeeded": float(ok), "failed": float(bad), "received": float(received)})
    return rows


def flower(ev: Evidence, p: Params, scraped: list[Row] | None = None,
           seen: Row | None = None) -> None:
    write_csv(ev.run_dir / "flower_scrapes.csv", scraped or scrapes())
    driver.check_flower(ev, p, BURST, seen or access())


API = "flower_api_refuses_without_credentials"
METRICS = "flower_metrics_are_served_without_credentials"
COUNTS = "flower_counts_the_burst"
ALERT = "backlog_alert_fires_and_clears"


def test_flower_as_a_real_run_saw_it_holds_every_flower_finding(ev: Evidence, p: Params) -> None:
    """The holding example: API 401 / 200, /metrics open, 19 successes and 4 failures counted,
    the queue above 5 for a while and then drained."""
    flower(ev, p)
    assert [f.id for f in ev.findings] == [API, METRICS, COUNTS, ALERT] and all(f.holds for f in ev.findings)
    assert ev.measurements["alert"]["peak"] == 12


def test_a_flower_api_endpoint_served_without_credentials_fails(ev: Evidence, p: Params) -> None:
    """/api/tasks left open: it answers an anonymous call."""
    flower(ev, p, seen=access({"/api/tasks": endpoint(200)}))
    assert_only_fails(ev, API)


def test_flower_metrics_requiring_auth_fails(ev: Evidence, p: Params) -> None:
    """A Flower that protected /metrics with the same basic auth: 401, nothing exposed."""
    flower(ev, p, seen=access({"/metrics": endpoint(401)}))
    assert_only_fails(ev, METRICS)


def test_flower_that_misses_events_does_not_count_the_burst(ev: Evidence, p: Params) -> None:
    """Three task-succeeded events lost by Flower's event receiver: 16 of 19."""
    flower(ev, p, scraped=scrapes(missed_successes=3))
    assert_only_fails(ev, COUNTS)


def test_flower_that_sees_no_queue_never_fires_the_alert(ev: Evidence, p: Params) -> None:
    """Flower looking for the queue under the wrong key (0 throughout)."""
    flower(ev, p, scraped=scrapes(queue=[0] * len(SCRAPES)))
    assert_only_fails(ev, ALERT)


def test_a_queue_length_that_never_comes_back_down_never_clears_the_alert(
        ev: Evidence, p: Params) -> None:
    """A stale queue length (Flower caching its broker's answer) stuck at the peak."""
    stuck = [row[1] for row in SCRAPES[:4]] + [12] * (len(SCRAPES) - 4)
    flower(ev, p, scraped=scrapes(queue=stuck))
    assert_only_fails(ev, ALERT)
