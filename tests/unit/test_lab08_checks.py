"""Lab 08's check functions fed what a real quick run watched (states by polling and events,
result keys, inspect, the prefetch count and Flower under a burst) and, one property at a time,
what a Celery or a Flower that behaved otherwise would show. No Redis, no worker, no Flower: the
data is shaped like measure.py's; inspect.csv and flower_scrapes.csv are written into the run
directory. Also: validate's refusals, and the states part's tasks holding a state until seen."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from labkit.errors import SetupError
from labkit.evidence import Evidence
from labkit.params import Params, resolve
from labkit.results import write_csv
from labs.lab08_observability import driver, tasks
from tests.unit.checks import assert_only_fails

Row = dict[str, Any]
Timeline = list[tuple[float, str]]

T0 = 1_795_300_421.33  # a wall-clock instant of a real run


@pytest.fixture
def p() -> Params:
    return resolve(driver.PARAMS, {}, quick=True)


def tid(n: int) -> str:
    return str(uuid.UUID(int=n, version=4))


# --- task states -------------------------------------------------------------------------------

# each task's state over time (seconds after the first poll), as the result backend had it
STATES: dict[str, Timeline] = {
    "success": [(0, "PENDING"), (0.04, "STARTED"), (0.65, "SUCCESS")],  # work(0.6)
    "failure": [(0, "PENDING"), (0.045, "STARTED"), (0.355, "FAILURE")],  # work(0.3, fail)
    # retry_until_seen: STARTED for a few ms, RETRY for the 0.6 s countdown (seen by a poll),
    # then STARTED and SUCCESS
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


def keys(success: Row | None = None, failure: Row | None = None, quiet: Row | None = None,
         read_after: float = 0.039) -> Row:
    """measure.result_keys: the three keys, read ``read_after`` seconds after sending."""
    return {"success": success or meta(1, ttl=60), "failure": failure or meta(2, ttl=20, status="FAILURE"),
            "ignore_result": quiet or meta(3, exists=False), "sent_at": T0, "read_at": T0 + read_after}


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


def test_keys_read_late_on_a_busy_machine_are_judged_by_the_measured_wait(
        ev: Evidence, p: Params) -> None:
    """Read 3.4 s after sending (a loaded machine): TTLs 57 and 17 are what was set, run down."""
    driver.check_result_keys(ev, p, keys(meta(1, ttl=57), meta(2, ttl=17, status="FAILURE"),
                                         read_after=3.4))
    assert ev.finding(RESULTS).holds


def test_a_ttl_shorter_than_the_wait_explains_fails(ev: Evidence, p: Params) -> None:
    """Read 0.04 s after sending, yet the success's TTL is 54: a backend that expired results
    early (result_expires less a margin of its own)."""
    driver.check_result_keys(ev, p, keys(success=meta(1, ttl=54)))
    assert not ev.finding(RESULTS).holds


def test_results_stored_without_expiry_fail(ev: Evidence, p: Params) -> None:
    """Keys with no TTL at all (-1): results kept forever."""
    driver.check_result_keys(ev, p, keys(success=meta(1, ttl=-1)))
    assert not ev.finding(RESULTS).holds


# --- the burst, watched by inspect -------------------------------------------------------------

CONCURRENCY, HELD = 2, 4  # one worker -c 2, prefetch multiplier 2: prefetch count 4
BURST: Row = {"sent": 23, "failures": 4, "scheduled": 3, "tasks": 20,
              "registered_lab08": ["lab08.fire_and_forget", "lab08.retry_until_seen", "lab08.until_seen",
                                   "lab08.work"],
              "active_queues": ["celery"], "pool": {"w1@celery-lab": 2}, "threshold": 5,
              "flower_baseline": {"t": T0 + 1.5, "queue_length": 0.0, "succeeded": 4.0, "failed": 2.0,
                                  "received": 7.0}}


def simulate(concurrency: int = CONCURRENCY, held: int = HELD, tasks: int = 20, scheduled: int = 3,
             failures: int = 4, task_s: float = 0.2, countdown: float = 1.5,
             resume: float = 0.26) -> list[Row]:
    """The burst as a worker runs it, millisecond by millisecond: every task in the Redis list
    until the worker consumes again at ``resume``; then the ETA tasks first (held until their
    ETA, each raising the prefetch count), and the rest while reserved + active < ``held``;
    ``concurrency`` run at a time for ``task_s``. Each task's moves, as its events stamp them."""
    timeline = [{"id": tid(1000 + i), "eta": T0 + countdown if i < scheduled else None,
                 "fails": scheduled <= i < scheduled + failures, "received": None, "fired": None,
                 "started": None, "done": None} for i in range(scheduled + tasks)]
    queue, timer, reserved, active = list(range(len(timeline))), [], [], []
    for ms in range(100_000):
        now = T0 + ms / 1000
        for i, ends in list(active):
            if now >= ends:
                active.remove((i, ends))
                timeline[i]["done"] = now
        for i in list(timer):
            if now >= timeline[i]["eta"]:
                timer.remove(i)
                reserved.append(i)
                timeline[i]["fired"] = now
        while reserved and len(active) < concurrency:
            i = reserved.pop(0)
            timeline[i]["started"] = now
            active.append((i, now + task_s))
        while ms >= resume * 1000 and queue and len(reserved) + len(active) < held:
            i = queue.pop(0)
            timeline[i]["received"] = now
            (timer if timeline[i]["eta"] is not None else reserved).append(i)
        if all(task["done"] is not None for task in timeline):
            return timeline
    raise AssertionError("the simulated burst never drained")


def where(task: Row, t: float) -> str:
    if task["received"] is None or t < task["received"]:
        return "queue"
    if task["eta"] is not None and (task["fired"] is None or t < task["fired"]):
        return "scheduled"
    if task["started"] is None or t < task["started"]:
        return "reserved"
    return "active" if task["done"] is None or t < task["done"] else "done"


def sample(timeline: list[Row], every: float = 0.065, read: float = 0.004,
           events: list[Row] | None = None) -> list[Row]:
    """measure.burst's inspect samples: LLEN, scheduled, reserved, active read ``read`` s apart
    (each counts where the tasks are at its own moment); done from the events (``events``: the
    timeline as they stamped it) up to the sample's end."""
    events = timeline if events is None else events
    rows, t = [], T0 + 0.05
    end = max(task["done"] for task in timeline)
    while True:
        row: Row = {"t": t, "t_end": t + 4 * read}
        for k, place in enumerate(("queue", "scheduled", "reserved", "active")):
            row[place] = sum(1 for task in timeline if where(task, t + k * read) == place)
        row["done"] = sum(1 for task in events if task["done"] is not None and task["done"] <= row["t_end"])
        rows.append(row)
        if t > end:
            return rows
        t += every


def events_only(timeline: list[Row]) -> list[Row]:
    """What burst.json keeps: the moves the events stamp (no fire time: no event has it)."""
    return [{k: task[k] for k in ("id", "eta", "received", "started", "done")} for task in timeline]


def inspect(ev: Evidence, rows: list[Row], timeline: list[Row], burst: Row | None = None) -> None:
    write_csv(ev.run_dir / "inspect.csv", rows)
    driver.check_inspect(ev, {**BURST, **(burst or {}), "timeline": events_only(timeline)})


ACCOUNTS = "inspect_accounts_for_every_task"
POOL = "inspect_respects_the_pool_and_prefetch"


def test_the_simulated_burst_looks_like_a_real_one() -> None:
    """As a real quick run: 23 waiting until the worker consumes again, then 4 prefetched and the
    3 ETA tasks held; 6 reserved at most (the ETA tasks joining when due); some samples off by
    the tasks that moved while they were read, most exact."""
    timeline = simulate()
    rows = sample(timeline)
    assert {k: rows[0][k] for k in ("queue", "scheduled", "reserved", "active", "done")} == {
        "queue": 23, "scheduled": 0, "reserved": 0, "active": 0, "done": 0}
    assert rows[-1]["done"] == 23
    assert {k: max(r[k] for r in rows) for k in ("queue", "scheduled", "reserved", "active")} == {
        "queue": 23, "scheduled": 3, "reserved": 5, "active": 2}
    off = [r["queue"] + r["scheduled"] + r["reserved"] + r["active"] + r["done"] - 23 for r in rows]
    assert min(off) >= 0 and max(off) > 0 and off.count(0) > len(off) / 2


def test_inspect_accounting_for_every_task_within_the_pool_holds(ev: Evidence) -> None:
    """The holding example: every sample adds up to 23, or is off by no more than the tasks the
    events show moving while it was read."""
    timeline = simulate()
    inspect(ev, sample(timeline), timeline)
    assert [f.id for f in ev.findings] == [ACCOUNTS, POOL] and all(f.holds for f in ev.findings)
    assert ev.finding(ACCOUNTS).measured["off_by_more_than_moved"] == 0


def test_a_slow_sampler_on_a_busy_machine_still_accounts(ev: Evidence) -> None:
    """Reads 40 ms apart (a loaded machine): more samples are off, each by its own moves."""
    timeline = simulate()
    inspect(ev, sample(timeline, every=0.15, read=0.04), timeline)
    assert ev.finding(ACCOUNTS).holds


def test_a_worker_that_does_not_answer_inspect_loses_track_of_tasks(ev: Evidence) -> None:
    """A worker too busy to answer within inspect's timeout: active, reserved and scheduled
    come back empty, so up to 9 tasks are nowhere."""
    timeline = simulate()
    rows = [{**r, "reserved": 0, "scheduled": 0, "active": 0} for r in sample(timeline)]
    inspect(ev, rows, timeline)
    assert_only_fails(ev, ACCOUNTS)


def test_failed_tasks_never_counted_as_done_leave_tasks_unaccounted(ev: Evidence) -> None:
    """No task-failed events: the 4 failed tasks never reach 'done', and no event says they
    moved; once they have left 'active', up to 4 tasks are nowhere."""
    timeline = simulate()
    seen = [{**task, "done": None} if task["fails"] else task for task in timeline]
    inspect(ev, sample(timeline, events=seen), seen)
    assert_only_fails(ev, ACCOUNTS)


def test_active_tasks_also_listed_as_reserved_are_counted_twice(ev: Evidence) -> None:
    """A Celery whose inspect reserved did not leave out the active requests: two tasks counted
    twice in every sample the pool is busy."""
    timeline = simulate()
    inspect(ev, [{**r, "reserved": r["reserved"] + r["active"]} for r in sample(timeline)], timeline)
    assert not ev.finding(ACCOUNTS).holds


def test_a_worker_that_ignores_the_prefetch_limit_reserves_the_whole_burst(ev: Evidence) -> None:
    """Prefetch unlimited: the worker takes all 20 at once; 18 reserved, nothing waits in Redis."""
    timeline = simulate(held=100)
    inspect(ev, sample(timeline), timeline)
    assert_only_fails(ev, POOL)
    assert ev.measurements["inspect_peaks"]["reserved"] == 18


def test_a_pool_running_more_than_its_concurrency_fails(ev: Evidence) -> None:
    """Four tasks active at once on a -c 2 worker."""
    timeline = simulate(concurrency=4, held=6)
    inspect(ev, sample(timeline), timeline)
    assert_only_fails(ev, POOL)


def test_a_worker_not_consuming_the_default_queue_fails(ev: Evidence) -> None:
    """active_queues without 'celery' (a worker that stayed cancelled, or started with -Q)."""
    timeline = simulate()
    inspect(ev, sample(timeline), timeline, {"active_queues": ["lab08"]})
    assert_only_fails(ev, POOL)


# --- the prefetch count ------------------------------------------------------------------------

PREFETCH = "each_eta_task_held_raises_the_prefetch_count_by_one"


def probe(**changed: Any) -> Row:
    """measure.burst's prefetch readings, as a real run took them: 4 before and after the burst,
    5, 6, 7 as the probe's 3 ETA tasks (an hour away) arrived; inspect lists them as scheduled."""
    held = [tid(2000 + k) for k in range(3)]
    return {"before_burst": 4, "after_burst": 4, "held": held, "after_each": [5, 6, 7],
            "scheduled_ids": sorted(held), "reserved": 0, **changed}


def test_each_eta_task_held_raises_the_prefetch_count_by_one(ev: Evidence) -> None:
    driver.check_prefetch(ev, {"prefetch": probe()})
    assert ev.finding(PREFETCH).holds


def test_a_prefetch_count_capped_by_worker_eta_task_limit_fails(ev: Evidence) -> None:
    """worker_eta_task_limit=5 (or a Celery that raised it once for all): 5, 5, 5."""
    driver.check_prefetch(ev, {"prefetch": probe(after_each=[5, 5, 5])})
    assert not ev.finding(PREFETCH).holds


def test_a_prefetch_count_never_raised_fails(ev: Evidence) -> None:
    """A Celery that kept ETA tasks outside the prefetch accounting: 4 throughout."""
    driver.check_prefetch(ev, {"prefetch": probe(after_each=[4, 4, 4])})
    assert not ev.finding(PREFETCH).holds


def test_a_prefetch_count_that_never_comes_back_down_fails(ev: Evidence) -> None:
    """Raised for the burst's 3 ETA tasks and not lowered when they ran: 7 after the burst."""
    driver.check_prefetch(ev, {"prefetch": probe(after_burst=7, after_each=[8, 9, 10])})
    assert not ev.finding(PREFETCH).holds


def test_eta_tasks_listed_as_reserved_not_scheduled_fail(ev: Evidence) -> None:
    """A Celery listing held ETA tasks under reserved: inspect scheduled is empty."""
    driver.check_prefetch(ev, {"prefetch": probe(scheduled_ids=[], reserved=3)})
    assert not ev.finding(PREFETCH).holds


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
# counters; before the burst, 4 successes and 2 failures from the states and result-key parts.
# The worker consumes nothing until the scrape at 0.26 s has seen the whole burst waiting.
SCRAPES = [  # (seconds, queue_length, succeeded, failed, received)
    (0.0, 0, 4, 2, 7), (0.26, 23, 4, 2, 7), (0.53, 14, 4, 2, 16), (0.81, 10, 4, 6, 20),
    (1.06, 8, 6, 6, 22), (1.32, 6, 8, 6, 24), (1.58, 4, 10, 6, 26), (1.85, 3, 14, 6, 27),
    (2.11, 1, 16, 6, 29), (2.37, 0, 18, 6, 30), (2.63, 0, 22, 6, 30), (2.9, 0, 23, 6, 30),
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
    """The holding example: API 401 / 200, /metrics open, 19 successes and 4 failures counted
    from the baseline scrape, the queue above 5 for a while and then drained."""
    flower(ev, p)
    assert [f.id for f in ev.findings] == [API, METRICS, COUNTS, ALERT] and all(f.holds for f in ev.findings)
    assert ev.measurements["alert"]["peak"] == 23


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
    stuck = [row[1] for row in SCRAPES[:2]] + [23] * (len(SCRAPES) - 2)
    flower(ev, p, scraped=scrapes(queue=stuck))
    assert_only_fails(ev, ALERT)


def test_flower_that_counted_the_pre_burst_tasks_late_is_read_from_its_baseline(
        ev: Evidence, p: Params) -> None:
    """Flower's first scrape before it had caught up (2 successes, not 4): the count starts from
    the baseline scrape the run waited for, not from the first."""
    early = scrapes()
    early[0] = {**early[0], "succeeded": 2.0}
    flower(ev, p, scraped=early)
    assert ev.finding(COUNTS).holds


def test_flower_that_counts_each_success_twice_fails(ev: Evidence, p: Params) -> None:
    """A Flower counting task-succeeded twice (two event receivers): 38 of 19."""
    doubled = [{**r, "succeeded": 4 + 2 * (r["succeeded"] - 4)} for r in scrapes()]
    flower(ev, p, scraped=doubled)
    assert_only_fails(ev, COUNTS)


# --- parameters --------------------------------------------------------------------------------

def params(**changed: str) -> Params:
    return resolve(driver.PARAMS, changed, quick=False)


def test_the_default_and_test_lab08_parameters_are_accepted() -> None:
    driver.validate(params())
    driver.validate(resolve(driver.PARAMS, dict(item.split("=") for item in [
        "tasks=24", "task_s=0.15", "failures=5", "scheduled=2", "countdown=1.2", "threshold=8",
        "result_expires=45", "failure_expires=15"]), quick=False))


@pytest.mark.parametrize(("changed", "named"), [
    ({"failures": "31"}, "failures=31"),
    ({"failure_expires": "60"}, "failure_expires=60"),  # equal TTLs cannot tell which one applied
    ({"threshold": "33"}, "threshold=33"),  # 30 + 3 ETA tasks never exceed 33
])
def test_parameters_no_run_could_measure_are_refused_in_one_line(changed: dict, named: str) -> None:
    with pytest.raises(SetupError) as refused:
        driver.validate(params(**changed))
    assert str(refused.value).startswith(f"bad param {named}") and "\n" not in str(refused.value)


def test_a_timeout_below_ten_seconds_is_refused() -> None:
    with pytest.raises(SetupError):
        params(timeout="5")


# --- the states part's tasks hold their state until a poll has seen it -------------------------

def test_until_seen_runs_until_the_client_saw_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen at once: it returns at once; never seen (a Celery that stored no STARTED): it runs
    to its cap."""
    monkeypatch.setattr(tasks, "seen_by_client", lambda task, state: True)
    assert tasks.until_seen.run(5.0) < 1.0
    monkeypatch.setattr(tasks, "seen_by_client", lambda task, state: False)
    assert tasks.until_seen.run(0.2) >= 0.2


def test_retry_until_seen_retries_until_the_client_saw_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not seen yet: it retries with its countdown; seen: it succeeds; past its cap: it stops."""
    retried: list[float] = []

    class Retry(Exception):
        pass

    def retry(countdown: float) -> Exception:
        retried.append(countdown)
        return Retry()

    task = tasks.retry_until_seen
    monkeypatch.setattr(task, "retry", retry)
    monkeypatch.setattr(tasks, "seen_by_client", lambda task, state: False)
    task.push_request(retries=0)
    try:
        with pytest.raises(Retry):
            task.run(0.6, 30.0)
        assert retried == [0.6]
        monkeypatch.setattr(tasks, "seen_by_client", lambda task, state: state == "RETRY")
        assert task.run(0.6, 30.0) == 0
    finally:
        task.pop_request()
    monkeypatch.setattr(tasks, "seen_by_client", lambda task, state: False)
    task.push_request(retries=50)
    try:
        assert task.run(0.6, 30.0) == 50
    finally:
        task.pop_request()
