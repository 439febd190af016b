"""Lab 01's check functions fed healthy data and, one property at a time, the data a Celery that
behaved otherwise would produce. No Redis, no worker: the rows are shaped like measure.py's."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from labkit.evidence import Evidence
from labs.lab01_hello_world import driver
from tests.unit.checks import assert_only_fails

Row = dict[str, Any]

HOST = "w1@celery-lab"
COUNTDOWN = 0.5  # the lab's default apply_async countdown
T0 = 1_795_300_273.57  # a wall-clock instant of a real run


def tid(n: int) -> str:
    """A deterministic task id shaped like the uuid4 Celery gives."""
    return str(uuid.UUID(int=n, version=4))


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


# --- the four ways to submit ------------------------------------------------------------------

def remote_way(way: str, n: int, args: list[int], submit: float) -> Row:
    """A delay/apply_async/send_task row: one LPUSH, the worker's three events, the sum."""
    return {"way": way, "id": tid(n), "args": args, "submit": submit, "result_type": "AsyncResult",
            "messages_enqueued": 1, "value": sum(args), "seen": submit + 0.04,
            "sent": submit + 0.001, "received": submit + 0.0016, "started": submit + 0.0038,
            "succeeded": submit + 0.0104, "hostname": HOST, "eta": None, "worker_events": 3}


def four_ways(countdown: float = COUNTDOWN) -> list[Row]:
    """measure.four_ways on a healthy run: the countdown task is received at once and started
    when its countdown ends; apply() runs in the caller and leaves no events."""
    delay = remote_way("delay", 1, [2, 2], T0)
    eta = remote_way("apply_async", 2, [3, 4], T0 + 0.025)
    eta.update(received=eta["submit"] + 0.0026, started=eta["submit"] + countdown + 0.0016,
               succeeded=eta["submit"] + countdown + 0.0034, seen=eta["submit"] + countdown + 0.0035,
               eta=iso(eta["submit"] + countdown))
    send = remote_way("send_task", 3, [5, 6], T0 + 0.031)
    local = {"way": "apply", "id": tid(4), "args": [7, 8], "submit": T0 + 0.036,
             "result_type": "EagerResult", "messages_enqueued": 0, "value": 15,
             "seen": T0 + countdown + 0.04, "sent": None, "received": None, "started": None,
             "succeeded": None, "hostname": None, "eta": None, "worker_events": 0}
    return [delay, eta, send, local]


def way(rows: list[Row], name: str) -> Row:
    return next(r for r in rows if r["way"] == name)


FOUR_WAYS_IDS = ["apply_runs_in_the_caller", "one_message_per_submission",
                 "countdown_is_held_by_the_worker"]


def test_a_healthy_run_of_the_four_ways_holds_every_finding(ev: Evidence) -> None:
    """The holding example: the shape of a real run's four_ways.csv."""
    driver.check_four_ways(ev, four_ways(), HOST, COUNTDOWN)
    assert [f.id for f in ev.findings] == FOUR_WAYS_IDS
    assert all(f.holds for f in ev.findings)
    assert ev.measurements["countdown"]["received_after_s"] == pytest.approx(0.0026, abs=1e-6)


def test_an_apply_that_put_a_message_on_the_queue_is_caught(ev: Evidence) -> None:
    """apply() is meant to run in the caller; one LPUSH means it went through the broker."""
    rows = four_ways()
    way(rows, "apply")["messages_enqueued"] = 1
    driver.check_four_ways(ev, rows, HOST, COUNTDOWN)
    assert_only_fails(ev, "apply_runs_in_the_caller")


def test_an_apply_that_a_worker_reported_running_is_caught(ev: Evidence) -> None:
    """Worker events for the apply() id mean a worker ran it, not the calling process."""
    rows = four_ways()
    way(rows, "apply")["worker_events"] = 3
    driver.check_four_ways(ev, rows, HOST, COUNTDOWN)
    assert_only_fails(ev, "apply_runs_in_the_caller")


def test_an_apply_that_returned_an_async_result_is_caught(ev: Evidence) -> None:
    """An AsyncResult from apply() means the caller did not get the eager result."""
    rows = four_ways()
    way(rows, "apply")["result_type"] = "AsyncResult"
    driver.check_four_ways(ev, rows, HOST, COUNTDOWN)
    assert_only_fails(ev, "apply_runs_in_the_caller")


def test_a_delay_that_published_twice_is_caught(ev: Evidence) -> None:
    """A publish retried after a lost reply puts two messages on the queue for one delay()."""
    rows = four_ways()
    way(rows, "delay")["messages_enqueued"] = 2
    driver.check_four_ways(ev, rows, HOST, COUNTDOWN)
    assert_only_fails(ev, "one_message_per_submission")


def test_a_send_task_run_by_another_worker_is_caught(ev: Evidence) -> None:
    """The only worker of the run must be the one that ran it."""
    rows = four_ways()
    way(rows, "send_task")["hostname"] = "w2@celery-lab"
    driver.check_four_ways(ev, rows, HOST, COUNTDOWN)
    assert_only_fails(ev, "one_message_per_submission")


def test_a_submission_that_returned_the_wrong_sum_is_caught(ev: Evidence) -> None:
    rows = four_ways()
    way(rows, "send_task")["value"] = 30  # 5 * 6, not 5 + 6
    driver.check_four_ways(ev, rows, HOST, COUNTDOWN)
    assert_only_fails(ev, "one_message_per_submission")


def test_a_countdown_held_back_by_the_broker_is_caught(ev: Evidence) -> None:
    """A broker that delays delivery (no ETA held in the worker) shows received after the
    countdown, not at once."""
    rows = four_ways()
    eta = way(rows, "apply_async")
    eta["received"] = eta["submit"] + COUNTDOWN + 0.001
    driver.check_four_ways(ev, rows, HOST, COUNTDOWN)
    assert_only_fails(ev, "countdown_is_held_by_the_worker")


def test_a_countdown_task_that_started_early_is_caught(ev: Evidence) -> None:
    """A worker that ignored the ETA starts the task right after receiving it."""
    rows = four_ways()
    eta = way(rows, "apply_async")
    eta["started"] = eta["received"] + 0.0012
    driver.check_four_ways(ev, rows, HOST, COUNTDOWN)
    assert_only_fails(ev, "countdown_is_held_by_the_worker")


# --- latency, uniqueness, causal order --------------------------------------------------------

def sequential(n: int = 20) -> list[Row]:
    """measure.sequential: one add(i, i) at a time. The client often sees the result before the
    task-succeeded event arrives (the real race), but never before the result is stored."""
    rows = []
    for i in range(n):
        submit = T0 + 1 + i * 0.0035
        rows.append({"i": i, "id": tid(100 + i), "submit": submit, "seen": submit + 0.0030,
                     "value": 2 * i, "expected": 2 * i, "sent": submit + 0.0006,
                     "received": submit + 0.0012, "started": submit + 0.0021,
                     "succeeded": submit + 0.0032, "succeeded_events": 1, "stored": submit + 0.0026})
    return rows


def batch(n: int = 40) -> list[Row]:
    """measure.batch: add(i, 1) sent at once; the pool drains them at about 400 per second."""
    seen_all = T0 + 2 + n * 0.0025 + 0.01
    return [{"i": i, "id": tid(1000 + i), "submit": T0 + 2 + i * 0.0012, "value": i + 1,
             "expected": i + 1, "seen_all": seen_all, "sent": T0 + 2 + i * 0.0012 + 0.0007,
             "received": T0 + 2 + i * 0.0012 + 0.0013, "started": T0 + 2 + i * 0.0025 + 0.002,
             "succeeded": T0 + 2 + i * 0.0025 + 0.004, "succeeded_events": 1} for i in range(n)]


def raw_redis(n: int = 50) -> list[Row]:
    """measure.redis_pingpong: LPUSH/BRPOP round trips of about a quarter of a millisecond."""
    return [{"i": i, "rtt": 0.00026 + (i % 5) * 0.00001} for i in range(n)]


LATENCY_IDS = ["every_task_ran_once_with_the_right_result",
               "causal_order_of_timestamps", "celery_costs_more_than_raw_redis"]


def test_healthy_latency_samples_hold_every_finding(ev: Evidence) -> None:
    driver.check_latency(ev, sequential(), batch(), raw_redis())
    assert [f.id for f in ev.findings] == LATENCY_IDS
    assert all(f.holds for f in ev.findings)
    assert ev.measurements["celery_to_raw_redis_ratio"] > 10
    assert ev.measurements["event_races"]["client_saw_result_before_succeeded_event"] == 20


def test_a_task_that_ran_twice_is_caught(ev: Evidence) -> None:
    """Two task-succeeded events for one id: the message was delivered and run twice."""
    seq = sequential()
    seq[3]["succeeded_events"] = 2
    driver.check_latency(ev, seq, batch(), raw_redis())
    assert_only_fails(ev, "every_task_ran_once_with_the_right_result")


def test_a_task_whose_succeeded_event_never_came_is_caught(ev: Evidence) -> None:
    burst = batch()
    burst[7]["succeeded_events"] = 0
    driver.check_latency(ev, sequential(), burst, raw_redis())
    assert_only_fails(ev, "every_task_ran_once_with_the_right_result")


def test_a_task_that_returned_the_wrong_sum_is_caught(ev: Evidence) -> None:
    burst = batch()
    burst[9]["value"] = burst[9]["i"]  # i + 0, not i + 1
    driver.check_latency(ev, sequential(), burst, raw_redis())
    assert_only_fails(ev, "every_task_ran_once_with_the_right_result")


def shift_worker_clock(row: Row, by: float) -> None:
    """What a worker on a clock ``by`` seconds off the client's stamps."""
    for key in ("received", "started", "succeeded", "stored"):
        row[key] += by


def test_a_worker_clock_behind_the_client_breaks_the_causal_order(ev: Evidence) -> None:
    """5 ms behind: the task is stamped received before it was submitted."""
    seq = sequential()
    shift_worker_clock(seq[4], -0.005)
    driver.check_latency(ev, seq, batch(), raw_redis())
    assert ev.finding("causal_order_of_timestamps").measured == {"tasks": 20, "out_of_order": 1}
    assert_only_fails(ev, "causal_order_of_timestamps")


def test_a_worker_clock_ahead_of_the_client_breaks_the_causal_order(ev: Evidence) -> None:
    """2 ms ahead: the result is stamped stored after the client had already seen it."""
    seq = sequential()
    shift_worker_clock(seq[4], 0.002)
    driver.check_latency(ev, seq, batch(), raw_redis())
    assert_only_fails(ev, "causal_order_of_timestamps")


def test_a_celery_round_trip_cheaper_than_raw_redis_is_caught(ev: Evidence) -> None:
    """Raw ping-pong at 5 ms, slower than the 3 ms Celery round trip."""
    raw = [dict(r, rtt=0.005) for r in raw_redis()]
    driver.check_latency(ev, sequential(), batch(), raw)
    assert_only_fails(ev, "celery_costs_more_than_raw_redis")


# --- messages queued while no worker runs -----------------------------------------------------

EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def message(task_id: str, args: list[int], task: str = "lab01.add") -> Row:
    """A message as labkit.redis_state.queued_messages returns it: the kombu envelope with its
    base64 body, and that body decoded."""
    body = [args, {}, EMBED]
    headers = {"lang": "py", "task": task, "id": task_id, "shadow": None, "eta": None,
               "expires": None, "group": None, "group_index": None, "retries": 0,
               "timelimit": [None, None], "root_id": task_id, "parent_id": None,
               "argsrepr": repr(tuple(args)), "kwargsrepr": "{}", "origin": "gen4156@vm",
               "ignore_result": False, "replaced_task_nesting": 0, "stamped_headers": None,
               "stamps": {}}
    envelope = {"body": base64.b64encode(json.dumps(body).encode()).decode(),
                "content-encoding": "utf-8", "content-type": "application/json", "headers": headers,
                "properties": {"correlation_id": task_id, "delivery_mode": 2,
                               "delivery_info": {"exchange": "", "routing_key": "celery"},
                               "priority": 0, "body_encoding": "base64",
                               "delivery_tag": str(uuid.uuid5(uuid.NAMESPACE_OID, task_id))}}
    return {"envelope": envelope, "body_decoded": body}


def queued(k: int = 3) -> Row:
    """measure.queued_while_no_worker after ``samples`` was popped: k messages waited, oldest
    first, and the next worker drained them all."""
    sent = [{"id": tid(500 + i), "args": [i, 10 * i]} for i in range(k)]
    t = T0 + 5
    return {"sent": sent, "waiting_before_worker": k,
            "messages": [message(s["id"], s["args"]) for s in sent],
            "values": [i + 10 * i for i in range(k)], "queue_after": 0,
            "marks": {"worker stopped": t, "tasks sent": t + 0.005, "worker starting": t + 0.31,
                      "worker ready": t + 1.33, "results seen": t + 1.335}}


QUEUED_IDS = ["queued_body_decodes_to_the_args", "messages_wait_for_a_worker"]


def test_messages_queued_with_no_worker_hold_every_finding(ev: Evidence) -> None:
    driver.check_queued(ev, queued())
    assert [f.id for f in ev.findings] == QUEUED_IDS
    assert all(f.holds for f in ev.findings)


def test_messages_read_newest_first_are_caught(ev: Evidence) -> None:
    """LRANGE without reversing the list: kombu LPUSHes, so the head is the newest."""
    q = queued()
    q["messages"].reverse()
    driver.check_queued(ev, q)
    assert_only_fails(ev, "queued_body_decodes_to_the_args")


def test_a_message_under_an_auto_generated_task_name_is_caught(ev: Evidence) -> None:
    """Without name="lab01.add" Celery names the task after its module path."""
    q = queued()
    q["messages"][1] = message(q["sent"][1]["id"], q["sent"][1]["args"],
                               task="labs.lab01_hello_world.tasks.add")
    driver.check_queued(ev, q)
    assert_only_fails(ev, "queued_body_decodes_to_the_args")


def test_a_body_carrying_other_args_is_caught(ev: Evidence) -> None:
    q = queued()
    q["messages"][2] = message(q["sent"][2]["id"], [20, 2])
    driver.check_queued(ev, q)
    assert_only_fails(ev, "queued_body_decodes_to_the_args")


def test_messages_taken_by_a_worker_that_had_not_stopped_are_caught(ev: Evidence) -> None:
    """The old worker still consumed: nothing waited in Redis. Both findings rest on the
    messages waiting, so both fail."""
    q = queued()
    q.update(waiting_before_worker=0, messages=[])
    driver.check_queued(ev, q)
    assert not ev.finding("queued_body_decodes_to_the_args").holds
    assert not ev.finding("messages_wait_for_a_worker").holds


def test_a_copy_left_on_the_queue_after_the_worker_drained_it_is_caught(ev: Evidence) -> None:
    """Every task ran, yet a restored copy of one message is still queued."""
    q = queued()
    q["queue_after"] = 1
    driver.check_queued(ev, q)
    assert_only_fails(ev, "messages_wait_for_a_worker")


def test_a_queued_task_that_returned_the_wrong_value_is_caught(ev: Evidence) -> None:
    q = queued()
    q["values"][2] = 0
    driver.check_queued(ev, q)
    assert_only_fails(ev, "messages_wait_for_a_worker")


# --- the cost ladder --------------------------------------------------------------------------

def ladder(**rates: float) -> list[Row]:
    """measure.cost_ladder + the lab's batch, with a real run's rates (600 tasks each)."""
    measured = {"bench shape": 1792.2, "+ acks": 1161.9, "+ prefetch x4": 1166.6,
                "+ result backend": 840.9, "+ INFO log": 759.8, driver.LAB_RUNG: 906.9,
                driver.EVENTS_RUNG: 569.3, driver.EXTENDED_RUNG: 880.2,
                "bench shape (again)": 1796.3}
    measured.update(rates)
    rows = [{"rung": name, "n": 600, "publish_tasks_per_s": 1668.1, "drain_tasks_per_s": rate}
            for name, rate in measured.items()]
    for row in rows:  # the lab's batch: what each side spent per task (a real run's)
        if row["rung"] == driver.EVENTS_RUNG:
            row.update(client_cpu_ms_per_task=1.34, worker_cpu_ms_per_task=5.8)
    return rows


def test_the_ladder_holds_and_reports_the_result_contract(ev: Evidence) -> None:
    driver.check_throughput(ev, ladder())
    assert all(f.holds for f in ev.findings)
    m = ev.measurements
    assert m["drain_tasks_per_s"] == 906.9 and m["publish_tasks_per_s"] == 1668.1
    assert m["bench_shape_tasks_per_s"] == pytest.approx(1794.2, abs=0.1)
    assert m["instrumentation_overhead"] == pytest.approx(1 - 569.3 / 906.9, abs=0.001)
    assert m["result_extended_cost"] == pytest.approx(1 - 880.2 / 906.9, abs=0.001)


def test_a_client_that_spends_more_per_task_than_the_worker_fails_the_claim(ev: Evidence) -> None:
    rows = ladder()
    for r in rows:
        if r["rung"] == driver.EVENTS_RUNG:
            r["client_cpu_ms_per_task"] = 6.5  # a costly client: given a core each, it is the limit
    driver.check_throughput(ev, rows)
    assert_only_fails(ev, "a_batch_is_limited_by_the_worker_not_the_client")


def test_a_client_starved_of_cpu_while_it_published_is_not_the_limit(ev: Evidence) -> None:
    # beside two other jobs one run published at 262/s and drained at 449/s: the rates are
    # what each moment's machine gave, the CPU per task is what each side costs
    rows = ladder()
    for r in rows:
        r["publish_tasks_per_s"] = 261.7
    driver.check_throughput(ev, rows)
    assert ev.finding("a_batch_is_limited_by_the_worker_not_the_client").holds


def test_a_worker_whose_cpu_was_not_read_does_not_pass_the_claim(ev: Evidence) -> None:
    rows = ladder()
    for r in rows:
        if r["rung"] == driver.EVENTS_RUNG:
            r["worker_cpu_ms_per_task"] = None
    driver.check_throughput(ev, rows)
    assert_only_fails(ev, "a_batch_is_limited_by_the_worker_not_the_client")


@pytest.mark.parametrize("rung, rate", [("+ acks", 1750.0), ("+ result backend", 1130.0),
                                        (driver.EVENTS_RUNG, 880.0)])
def test_a_step_that_costs_next_to_nothing_fails_the_cost_claim(ev: Evidence, rung: str,
                                                                 rate: float) -> None:
    driver.check_throughput(ev, ladder(**{rung: rate}))
    assert_only_fails(ev, "acks_results_and_events_cost_throughput")


def test_a_cost_inside_the_runs_own_noise_is_not_decided(ev: Evidence) -> None:
    # a busy machine: the bench shape measured twice differs by 20 %, acks cost 16 %
    driver.check_throughput(ev, ladder(**{"bench shape (again)": 1430.0, "+ acks": 1505.0}))
    finding = ev.finding("acks_results_and_events_cost_throughput")
    assert finding.holds and "not decided" in finding.expected
    assert finding.measured["decided"] is False


def test_costs_above_the_runs_noise_are_decided_on_a_busy_machine(ev: Evidence) -> None:
    driver.check_throughput(ev, ladder(**{"bench shape (again)": 1430.0}))
    finding = ev.finding("acks_results_and_events_cost_throughput")
    assert finding.holds and finding.measured["decided"] is True
