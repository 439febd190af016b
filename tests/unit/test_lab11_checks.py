"""Lab 11's check functions fed what a real run measured (shaped as stored.py, order.py, queues.py
and rates.py return it) and, one property at a time, what a Celery, kombu or Redis that behaved
otherwise would show. No Redis, no worker. Also: validate's refusal, the pure helpers (step_of,
turns, aggregate_rate) and the interview table."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest

from labkit.errors import SetupError
from labkit.evidence import Evidence
from labkit.params import resolve
from labs.lab11_priorities import checks, driver, order, queues, rates, stored
from tests.unit.checks import assert_only_fails

T0 = 1_796_585_024.6
SEP = "␆␖"  # how stored.read_lists shows kombu's priority separator
STEPS = checks.DEFAULT_STEPS
FINE = driver.FINE_STEPS
R1, R2, R3 = "r1@celery-lab", "r2@celery-lab", "r3@celery-lab"


class Sender:
    """Stands in for the app's send_task: hands out ids, so the lab's own publishing functions
    build what they send exactly as in a run."""

    def __init__(self) -> None:
        self.count = 0

    def send_task(self, name: str, args: tuple, queue: str, **options: Any) -> SimpleNamespace:
        self.count += 1
        return SimpleNamespace(id=f"{queue}-{self.count}")


# --- part 1: where a priority is stored --------------------------------------------------------

def measured_lists(queue: str, steps: list[int], plain_step: int = 0) -> dict[str, Any]:
    """stored.measure's result: one task per priority (and one sent without), each in the list
    of the highest of ``steps`` at or below it; the task without a priority in ``plain_step``'s
    list, carrying that priority (kombu: 0, the queue's own list)."""
    sent = stored.publish_each_priority(Sender(), queue)
    lists: dict[str, list[dict[str, Any]]] = {}
    for s in sent:
        p = s["priority"]
        step = plain_step if p is None else checks.step_of(p, steps)
        name = queue if step == 0 else f"{queue}{SEP}{step}"
        lists.setdefault(name, []).append({"id": s["id"], "priority": plain_step if p is None else p,
                                           "argsrepr": f"('stored', {s['seq']})"})
    return {"queue": queue, "lists": {k: len(v) for k, v in lists.items()},
            "rows": stored.where_each_went(sent, lists, queue)}


def coarse_() -> dict[str, Any]:
    return measured_lists(driver.Q["stored"], STEPS)


def fine_() -> dict[str, Any]:
    return measured_lists(driver.Q["stored_fine"], FINE)


def test_the_measured_storage_holds(ev: Evidence):
    coarse, fine = coarse_(), fine_()
    q = driver.Q["stored"]
    assert coarse["lists"] == {q: 4, f"{q}{SEP}3": 3, f"{q}{SEP}6": 3, f"{q}{SEP}9": 1}
    assert len(fine["lists"]) == 10
    checks.check_stored(ev, coarse, fine, FINE)
    assert [f.holds for f in ev.findings] == [True, True]
    assert ev.finding("a_priority_is_a_redis_list_per_step").measured["default_steps"] == {
        q: [0, 1, 2, None], f"{q}{SEP}3": [3, 4, 5], f"{q}{SEP}6": [6, 7, 8], f"{q}{SEP}9": [9]}


def test_a_task_without_priority_stored_as_the_least_urgent_fails(ev: Evidence):
    """What RabbitMQ-minded storage would do: no priority filed with the 9s, carrying 9."""
    checks.check_stored(ev, measured_lists(driver.Q["stored"], STEPS, plain_step=9), fine_(), FINE)
    assert_only_fails(ev, "a_task_sent_without_a_priority_lands_with_priority_0")


def test_a_task_without_priority_whose_message_carries_none_fails(ev: Evidence):
    coarse = coarse_()
    plain = next(r for r in coarse["rows"] if r["sent_priority"] is None)
    plain["stored_priority"] = None
    checks.check_stored(ev, coarse, fine_(), FINE)
    assert_only_fails(ev, "a_task_sent_without_a_priority_lands_with_priority_0")


@pytest.mark.parametrize("change", ["a_list_per_value_by_default", "fine_steps_ignored", "a_message_missing",
                                    "filed_one_step_up"])
def test_storage_off_the_steps_fails(ev: Evidence, change):
    coarse, fine = coarse_(), fine_()
    if change == "a_list_per_value_by_default":  # 1 and 2 not sharing priority 0's list
        coarse = measured_lists(driver.Q["stored"], FINE)
    elif change == "fine_steps_ignored":  # the client's priority_steps 0-9 not applied
        fine = measured_lists(driver.Q["stored_fine"], STEPS)
    elif change == "a_message_missing":
        row = next(r for r in coarse["rows"] if r["sent_priority"] == 5)
        row.update(list=None, list_step=None, stored_priority=None)
        coarse["lists"][f"{driver.Q['stored']}{SEP}3"] -= 1
    else:  # priority 2 rounded up to step 3
        row = next(r for r in coarse["rows"] if r["sent_priority"] == 2)
        row.update(list=f"{driver.Q['stored']}{SEP}3", list_step=3)
    checks.check_stored(ev, coarse, fine, FINE)
    assert_only_fails(ev, "a_priority_is_a_redis_list_per_step")


def test_step_of_is_the_highest_step_at_or_below():
    assert [checks.step_of(p, STEPS) for p in (0, 1, 2, 3, 5, 6, 8, 9)] == [0, 0, 0, 3, 3, 6, 6, 9]
    assert [checks.step_of(p, FINE) for p in range(10)] == list(range(10))


# --- part 2: the order a pre-filled queue runs in ----------------------------------------------

def shuffled(queue: str, label: str) -> list[dict[str, Any]]:
    """What order.prefill_shuffled sent with the lab's defaults (3 per value, seed 11)."""
    return order.prefill_shuffled(Sender(), queue, 3, 11, label)


def ran_by(sent: list[dict[str, Any]], key, queue: str, host: str) -> list[dict[str, Any]]:
    """order.drained_order's rows for ``sent`` run in the order ``key`` sorts them."""
    return [{"seq": s["seq"], "priority": s["priority"], "routing_key": queue, "hostname": host,
             "started": T0 + 0.04 * i} for i, s in enumerate(sorted(sent, key=key))]


def by_step(s: dict[str, Any]) -> tuple:
    return checks.step_of(s["priority"], STEPS), s["seq"]


def by_value(s: dict[str, Any]) -> tuple:
    return s["priority"], s["seq"]


def orders() -> dict[str, list[dict[str, Any]]]:
    sent, sent_fine = shuffled(driver.Q["order"], "order"), shuffled(driver.Q["fine"], "fine")
    return {"sent": sent, "ran": ran_by(sent, by_step, driver.Q["order"], "order@celery-lab"),
            "sent_fine": sent_fine,
            "ran_fine": ran_by(sent_fine, by_value, driver.Q["fine"], "fine@celery-lab")}


def run_order(ev: Evidence, o: dict[str, list[dict[str, Any]]]) -> None:
    checks.check_order(ev, o["sent"], o["ran"], o["sent_fine"], o["ran_fine"])


def test_the_measured_order_holds(ev: Evidence):
    o = orders()
    assert [r["priority"] for r in o["ran"][:3]] == [2, 0, 2]  # as the real run: FIFO within step 0
    run_order(ev, o)
    assert [f.holds for f in ev.findings] == [True] * 3
    assert ev.finding("within_a_step_tasks_run_in_the_order_sent").measured["priority_value_inversions"] > 0


@pytest.mark.parametrize(("change", "finding"), [
    ("nine_first", "on_redis_priority_0_runs_first"),  # RabbitMQ's sense: the higher number wins
    ("one_never_ran", "on_redis_priority_0_runs_first"),
    ("a_step_by_value", "within_a_step_tasks_run_in_the_order_sent"),
    ("a_step_last_in_first_out", "within_a_step_tasks_run_in_the_order_sent"),
    ("fine_steps_ignored", "a_list_per_value_orders_every_value"),
    ("fine_one_never_ran", "a_list_per_value_orders_every_value"),
])
def test_an_order_that_behaved_otherwise_fails(ev: Evidence, change, finding):
    o = orders()
    queue, host = driver.Q["order"], "order@celery-lab"
    if change == "nine_first":
        o["ran"] = ran_by(o["sent"], lambda s: (-checks.step_of(s["priority"], STEPS), s["seq"]), queue, host)
    elif change == "one_never_ran":
        o["ran"] = o["ran"][:-1]
    elif change == "a_step_by_value":
        o["ran"] = ran_by(o["sent"], lambda s: (*by_step(s)[:1], *by_value(s)), queue, host)
    elif change == "a_step_last_in_first_out":
        o["ran"] = ran_by(o["sent"], lambda s: (by_step(s)[0], -s["seq"]), queue, host)
    elif change == "fine_steps_ignored":  # the worker read the queue with the default steps
        o["ran_fine"] = ran_by(o["sent_fine"], by_step, driver.Q["fine"], "fine@celery-lab")
    else:
        o["ran_fine"] = o["ran_fine"][1:]
    run_order(ev, o)
    assert_only_fails(ev, finding)


# --- part 2: urgent tasks sent into a running backlog ------------------------------------------

def trial(name: str, **changes: Any) -> dict[str, Any]:
    """order.urgent_trial's result as the real run measured it, per backlog."""
    base = {"prefetch": {"held_before": 4, "in_redis_before": 18, "held": 4, "urgent_wait_s": 0.968,
                         "bulk_starts": [-0.277, -0.051, 0.153, 0.357, 0.560, 0.764, 0.979]},
            "prefetch_one": {"held_before": 1, "in_redis_before": 20, "held": 1, "urgent_wait_s": 0.406,
                             "bulk_starts": [-0.207, -0.003, 0.201, 0.420]},
            "late_one": {"held_before": 1, "in_redis_before": 22, "held": 0, "urgent_wait_s": 0.169,
                         "bulk_starts": [-0.254, -0.038, 0.182]}}[name]
    sent_at = T0 + 1.1
    wait = changes.get("urgent_wait_s", base["urgent_wait_s"])
    out = {"queue": driver.BACKLOG[name], "trial": 0, "urgent": 3, "task_s": 0.2,
           "running_since": sent_at - 0.05, "sent_at": sent_at, "landed_at": sent_at + 0.008,
           "held_before": base["held_before"], "in_redis_before": base["in_redis_before"],
           "in_redis_after": base["in_redis_before"], "covered": True, "held": base["held"],
           "overtook_from_redis": 0, "urgent_wait_s": wait,
           "urgent_starts": [wait, wait + 0.005, wait + 0.008], "bulk_starts": base["bulk_starts"]}
    out.update(changes)
    return out


def trials(**changes: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {name: [trial(name, **changes.get(name, {}))] for name in driver.BACKLOG}


def test_the_measured_backlog_holds(ev: Evidence):
    checks.check_backlog(ev, trials(), 4)
    assert [f.holds for f in ev.findings] == [True] * 3


@pytest.mark.parametrize(("changes", "finding"), [
    # a backlog task still in Redis ran before the urgent ones (read by arrival, not by priority)
    ({"prefetch_one": {"overtook_from_redis": 1}}, "backlog_still_in_redis_waits_for_urgent_tasks"),
    ({"late_one": {"overtook_from_redis": 2}}, "backlog_still_in_redis_waits_for_urgent_tasks"),
    # a worker that re-sorted what it prefetched: held 4, yet the urgent tasks ran next
    ({"prefetch": {"held": 0, "urgent_wait_s": 0.2}}, "prefetched_tasks_run_before_later_urgent_ones"),
    ({"prefetch": {"held": 2, "urgent_wait_s": 0.6}}, "prefetched_tasks_run_before_later_urgent_ones"),
    ({"prefetch": {"held_before": 5, "held": 5}}, "prefetched_tasks_run_before_later_urgent_ones"),
    # acks_late + prefetch 1 that still held a backlog task while one ran
    ({"late_one": {"held": 1, "urgent_wait_s": 0.4}}, "acks_late_with_prefetch_one_holds_nothing_back"),
    ({"prefetch_one": {"held_before": 2, "held": 2}}, "acks_late_with_prefetch_one_holds_nothing_back"),
    # prefetch 1 with early ack that held one while a task ran, yet the urgent tasks ran next
    ({"prefetch_one": {"held": 0, "urgent_wait_s": 0.2}}, "acks_late_with_prefetch_one_holds_nothing_back"),
])
def test_a_backlog_that_behaved_otherwise_fails(ev: Evidence, changes, finding):
    checks.check_backlog(ev, trials(**changes), 4)
    assert_only_fails(ev, finding)


def test_acks_late_not_covered_is_not_decided(ev: Evidence):
    """The urgent tasks landed after the running backlog task ended: a held task proves nothing."""
    checks.check_backlog(ev, trials(late_one={"held": 1, "covered": False}), 4)
    f = ev.finding("acks_late_with_prefetch_one_holds_nothing_back")
    assert f.holds and "not decided" in f.expected


def test_acks_late_is_judged_on_the_last_trial(ev: Evidence):
    t = trials()
    t["late_one"] = [trial("late_one", held=1, covered=False), trial("late_one", trial=1)]
    checks.check_backlog(ev, t, 4)
    assert all(f.holds for f in ev.findings)
    ev2 = Evidence(ev.run_dir)
    t["late_one"][-1]["held"] = 1
    checks.check_backlog(ev2, t, 4)
    assert_only_fails(ev2, "acks_late_with_prefetch_one_holds_nothing_back")


def test_a_prefetch_that_held_too_little_then_is_not_decided(ev: Evidence):
    checks.check_backlog(ev, trials(prefetch={"held_before": 1, "held": 0, "urgent_wait_s": 0.2}), 4)
    f = ev.finding("prefetched_tasks_run_before_later_urgent_ones")
    assert f.holds and "not decided" in f.expected


# --- part 3: one worker, two queues ------------------------------------------------------------

def turns_of(name: str, pattern: str) -> dict[str, Any]:
    """queues.turns of a run whose executions came from high ('h') and low ('l') in ``pattern``."""
    high, low = driver.Q[name]
    priority = {"h": 6, "l": 0} if name == "cross" else {"h": 0, "l": 0}
    ran = [{"seq": i, "priority": priority[c], "routing_key": high if c == "h" else low,
            "hostname": f"{name}@celery-lab", "started": T0 + 0.01 * i} for i, c in enumerate(pattern)]
    return queues.turns(ran, high, low)


MEASURED_TURNS = {"rr": "hl" * 6, "po": "h" * 6 + "l" * 6, "cross": "l" * 6 + "h" * 6}


def all_turns(**patterns: str) -> dict[str, dict[str, Any]]:
    return {name: turns_of(name, patterns.get(name, p)) for name, p in MEASURED_TURNS.items()}


def test_the_measured_queue_order_holds(ev: Evidence):
    checks.check_queues(ev, all_turns(), 6)
    assert [f.holds for f in ev.findings] == [True] * 3


@pytest.mark.parametrize(("patterns", "finding"), [
    ({"rr": "hhlhlhlhlhll"}, "round_robin_takes_the_queues_in_turn"),  # two highs in a row
    ({"rr": "h" * 6 + "l" * 6}, "round_robin_takes_the_queues_in_turn"),  # high drained first
    ({"rr": "hl" * 5 + "h"}, "round_robin_takes_the_queues_in_turn"),  # one never ran
    ({"po": "hhhhhlhlllll"}, "priority_order_starves_the_later_queue"),  # a low before the last high
    ({"po": "hl" * 6}, "priority_order_starves_the_later_queue"),  # still round robin
    ({"po": "h" * 6 + "l" * 5}, "priority_order_starves_the_later_queue"),
    ({"cross": "h" * 6 + "l" * 6}, "a_message_priority_outranks_the_queue_order"),  # queue order won
    ({"cross": "lllllhlhhhhh"}, "a_message_priority_outranks_the_queue_order"),
    ({"cross": "l" * 6 + "h" * 5}, "a_message_priority_outranks_the_queue_order"),
])
def test_a_queue_order_that_behaved_otherwise_fails(ev: Evidence, patterns, finding):
    checks.check_queues(ev, all_turns(**patterns), 6)
    assert_only_fails(ev, finding)


def test_turns_counts_runs_only_while_both_queues_have_work():
    high, low = driver.Q["rr"]
    t = turns_of("rr", "hl" * 6)
    assert t["queues"][:2] == [high, low]
    assert (t["first_low_at"], t["last_high_at"], t["longest_run_while_both_had_work"]) == (1, 10, 1)
    assert t["total"] == {high: 6, low: 6}
    assert turns_of("rr", "hlhlhlhlhhll")["longest_run_while_both_had_work"] == 2
    assert turns_of("rr", "hlhhlll")["longest_run_while_both_had_work"] == 2  # the lll ran after high emptied
    assert turns_of("po", "h" * 6 + "l" * 6)["longest_run_while_both_had_work"] == 6
    only_high = turns_of("rr", "hh")
    assert (only_high["first_low_at"], only_high["last_high_at"]) == (None, 1)
    assert turns_of("rr", "ll")["last_high_at"] is None


# --- part 4: rate limits -----------------------------------------------------------------------

def spread(start: float, host: str, every_s: float, count: int) -> list[dict[str, Any]]:
    """One host's executions, ``every_s`` apart from ``start`` (seconds after T0)."""
    return [{"t": T0 + start + i * every_s, "hostname": host} for i in range(count)]


def limited(runs: list[dict[str, Any]], queue: str, workers: list[str],
            looks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """rates.limited_run's result."""
    return {"queue": queue, "count": len(runs), "sent_at": T0 - 0.05, "workers": workers,
            "looks": looks or [], "runs": sorted(runs, key=lambda r: r["t"])}


def look(i: int, held: int = 4, reserved: int = 0, active: int = 0, scheduled: int = 0) -> dict[str, Any]:
    """rates.where_they_wait's result as measured: 4 held unacknowledged, none listed."""
    return {"t": T0 + 0.035 + 0.13 * i, "held_unacked": held, "queued_in_redis": 10 - i,
            "reserved": reserved, "active": active, "scheduled": scheduled}


def one_(per_s: float = 9.96, looks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return limited(spread(0.0, R1, 1 / per_s, 15), driver.Q["rate1"], [R1],
                   [look(i) for i in range(4)] if looks is None else looks)


def three_(every_s: float = 0.1, count: int = 15, offsets=(0.0, 0.0015, 0.008)) -> dict[str, Any]:
    runs = [r for host, off in zip((R1, R2, R3), offsets, strict=True)
            for r in spread(off + 1.5, host, every_s, count)]
    return limited(runs, driver.Q["rate3"], [R1, R2, R3])


def shared_(gap_s: float = 0.1006, hosts=(R3, R1, R3, R2, R1), count: int = 15) -> dict[str, Any]:
    """rates.guarded_run's result: grants stamped by Redis's clock, printed to 0.1 ms."""
    grants = [{"t": round(T0 + 3.1 + i * gap_s, 4), "hostname": hosts[i % len(hosts)], "waits": i}
              for i in range(count)]
    return {"queue": driver.Q["global"], "count": count, "per_s": 10.0, "workers": [R1, R2, R3],
            "grants": grants}


def run_rates(ev: Evidence, one=None, three=None, shared=None, rate: float = 10.0) -> None:
    checks.check_rates(ev, one or one_(), three or three_(), shared or shared_(), rate)


def test_the_measured_rates_hold(ev: Evidence):
    run_rates(ev)
    assert [f.holds for f in ev.findings] == [True] * 4
    m = ev.finding("one_worker_never_exceeds_its_rate_limit").measured
    assert m["tasks"] == 15 and m["measured_per_s"] == pytest.approx(14 / (14 / 9.96 + 0.05), rel=1e-3)
    w = ev.finding("rate_limit_is_per_worker").measured
    assert w["hosts"] == [R1, R2, R3] and w["most_starts_in_a_window"] >= 15  # 5 or 6 each in 0.5 s
    b = ev.finding("a_bucket_in_redis_limits_every_worker_together").measured
    assert b["hosts"] == [R1, R2, R3] and b["grants"] == 15 and b["aggregate_per_s"] < 10


@pytest.mark.parametrize(("case", "finding"), [
    ("one_worker_at_twice_its_limit", "one_worker_never_exceeds_its_rate_limit"),
    ("one_worker_without_a_limit", "one_worker_never_exceeds_its_rate_limit"),
    ("a_task_missing", "one_worker_never_exceeds_its_rate_limit"),
    ("three_workers_sharing_one_limit", "rate_limit_is_per_worker"),
    ("one_worker_took_them_all", "rate_limit_is_per_worker"),
    ("inspect_lists_them_as_reserved", "rate_limited_tasks_wait_in_the_worker_unlisted"),
    ("inspect_lists_them_as_scheduled", "rate_limited_tasks_wait_in_the_worker_unlisted"),
    ("nothing_held_in_the_worker", "rate_limited_tasks_wait_in_the_worker_unlisted"),
    ("never_looked", "rate_limited_tasks_wait_in_the_worker_unlisted"),
    ("grants_half_the_interval_apart", "a_bucket_in_redis_limits_every_worker_together"),
    ("two_grants_at_once", "a_bucket_in_redis_limits_every_worker_together"),
    ("grants_all_on_one_host", "a_bucket_in_redis_limits_every_worker_together"),
    ("a_grant_missing", "a_bucket_in_redis_limits_every_worker_together"),
])
def test_rates_that_behaved_otherwise_fail(ev: Evidence, case, finding):
    one, three, shared = one_(), three_(), shared_()
    if case == "one_worker_at_twice_its_limit":
        one = one_(per_s=20.0)
    elif case == "one_worker_without_a_limit":  # all 15 within 30 ms of the send
        one = one_(per_s=1000.0)
    elif case == "a_task_missing":
        one["count"] += 1
    elif case == "three_workers_sharing_one_limit":  # a global limit: 10/s together, over 4 s
        three = three_(every_s=0.3, offsets=(0.0, 0.1, 0.2))
    elif case == "one_worker_took_them_all":  # 10/s on one host: no second bucket at work
        three = limited(spread(1.5, R1, 0.1, 45), driver.Q["rate3"], [R1, R2, R3])
    elif case == "inspect_lists_them_as_reserved":
        one = one_(looks=[look(i, reserved=4) for i in range(4)])
    elif case == "inspect_lists_them_as_scheduled":
        one = one_(looks=[look(i, active=1, scheduled=3) for i in range(4)])
    elif case == "nothing_held_in_the_worker":  # the waiting tasks left in Redis
        one = one_(looks=[look(i, held=0) for i in range(4)])
    elif case == "never_looked":
        one = one_(looks=[])
    elif case == "grants_half_the_interval_apart":
        shared = shared_(gap_s=0.05)
    elif case == "two_grants_at_once":
        shared["grants"][5]["t"] = shared["grants"][4]["t"] + 0.002
    elif case == "grants_all_on_one_host":
        shared = shared_(hosts=(R1,))
    else:
        shared["grants"] = shared["grants"][:-1]
    run_rates(ev, one, three, shared)
    assert_only_fails(ev, finding)


def test_a_worker_slowed_by_stalls_still_never_exceeds(ev: Evidence):
    """kombu 5.7's hub sleeps a second once more than ten timers are due: far below the limit,
    which the first claim allows (it bounds the rate from above only)."""
    starts = spread(0.0, R1, 0.1, 10) + spread(1.9, R1, 1.0, 5)
    run_rates(ev, one=limited(starts, driver.Q["rate1"], [R1], [look(i) for i in range(4)]))
    assert ev.finding("one_worker_never_exceeds_its_rate_limit").holds


def test_two_of_three_workers_still_run_past_one_limit(ev: Evidence):
    runs = [*spread(1.5, R1, 0.1, 15), *spread(1.55, R2, 0.1, 15)]  # r3 never took one
    three = limited(runs, driver.Q["rate3"], [R1, R2, R3])
    three["count"] = 30
    run_rates(ev, three=three)
    assert ev.finding("rate_limit_is_per_worker").holds


def test_busiest_counts_starts_in_a_sliding_window():
    assert checks.busiest([0.0, 0.1, 0.2, 1.0, 1.05, 1.1, 1.15], 0.2) == 4
    assert checks.busiest([], 0.5) == 0 and checks.busiest([3.0], 0.5) == 1


def test_grants_a_clock_tick_short_of_the_interval_hold(ev: Evidence):
    shared = shared_(gap_s=0.1)
    shared["grants"][6]["t"] = round(shared["grants"][6]["t"] - 0.0001, 4)  # printed to 0.1 ms
    run_rates(ev, shared=shared)
    assert all(f.holds for f in ev.findings)


def test_aggregate_rate_of_one_host():
    out = rates.aggregate_rate(spread(0.0, R1, 0.1, 15))
    assert out["hosts"] == [R1] and out["in_span"] == 15
    assert out["span_s"] == pytest.approx(1.4, abs=1e-5) and out["rate"] == pytest.approx(10.0, rel=1e-4)


def test_aggregate_rate_counts_only_where_the_hosts_overlap():
    out = rates.aggregate_rate(three_()["runs"])
    assert out["hosts"] == [R1, R2, R3]
    assert out["span_s"] == pytest.approx(1.4 - 0.008, abs=1e-5)  # r3's first start to r1's last one
    assert out["in_span"] == 41
    assert out["rate"] == pytest.approx(40 / 1.392, rel=1e-4)


def test_aggregate_rate_needs_two_runs_apart():
    assert rates.aggregate_rate([]) == {"hosts": [], "rate": None, "span_s": 0.0, "in_span": 0}
    one = rates.aggregate_rate(spread(0.0, R1, 0.1, 1))
    assert one["rate"] is None and one["hosts"] == [R1] and one["in_span"] == 1
    assert rates.aggregate_rate(spread(0.0, R1, 0.0, 2))["rate"] is None


# --- the interview table and the parameters ----------------------------------------------------

def test_the_approaches_table_reads_the_run():
    dedicated = {"urgent_wait_s": 0.0039, "rss_bytes": 65376256}
    rows = checks.approaches(trials(), all_turns(), dedicated, 0.2)
    assert len(rows) == 6
    assert [r["urgent_wait_s"] for r in rows] == [0.968, 0.406, 0.169, None, None, 0.004]
    assert rows[0]["held_back_by"].startswith("4 prefetched")
    assert rows[1]["held_back_by"].startswith("1 prefetched")
    assert rows[3]["held_back_by"].endswith("number 2")
    assert rows[5]["cost"].endswith("62 MiB RSS here")
    assert all(set(r) == {"approach", "urgent_wait_s", "held_back_by", "cost"} for r in rows)


def test_a_backlog_too_short_for_the_trials_is_refused():
    with pytest.raises(SetupError, match="bad param bulk"):
        driver.validate(resolve(driver.PARAMS, ["bulk=16", "prefetch=8"], quick=False))
    driver.validate(resolve(driver.PARAMS, [], quick=False))
    driver.validate(resolve(driver.PARAMS, [], quick=True))


def test_the_inputs_are_not_changed_by_a_check(ev: Evidence):
    t, turns, one = trials(), all_turns(), one_()
    kept = copy.deepcopy((t, turns, one))
    checks.check_backlog(ev, t, 4)
    checks.check_queues(ev, turns, 6)
    run_rates(ev, one=one)
    assert (t, turns, one) == kept
