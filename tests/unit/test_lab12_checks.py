"""Lab 12's check functions fed what a real run measured (shaped as growth.py, eta.py, results.py
and payload.py return it) and, one property at a time, what a Celery or Redis that behaved
otherwise would show. No Redis, no worker. Also: the exercise grader's check_leak, the segment
helpers and validate's refusal."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from labkit.errors import SetupError
from labkit.evidence import Evidence
from labkit.params import resolve
from labs.lab12_memory import checks, driver, grade, growth
from labs.lab12_memory.growth import segments
from tests.unit.checks import assert_only_fails

T0 = 1_796_671_424.2
MIB = checks.MIB
LEAK_MIB, MAX_TASKS, MAX_MEMORY_MIB = 8, 5, 120
TAKES_ALL = "a_worker_takes_every_eta_task_it_is_sent"
CAPS = "eta_task_limit_caps_what_a_worker_holds"
KEPT_A_DAY = "every_result_is_a_key_kept_for_result_expires"
EXPIRES = "a_short_result_expires_is_enforced_by_redis"
EXISTS = "exists_tells_a_stored_result_from_none"


# --- part 1: a leaking task --------------------------------------------------------------------

def ran(segs: list[list[float]], pid: int = 41_200) -> list[dict[str, Any]]:
    """growth.ran_leaks's rows: one pool process per list of RSS values (MiB, one per task it
    ran), in the order they ran."""
    rows = []
    for k, rss in enumerate(segs):
        for i, mib in enumerate(rss):
            rows.append({"seq": len(rows), "pid": pid + 7 * k, "rss": round(mib * MIB),
                         "t": T0 + 0.09 * len(rows), "kept_mib": (i + 1) * LEAK_MIB})
    return rows


def rising(start: float, count: int, step: float = LEAK_MIB) -> list[float]:
    return [round(start + step * i, 1) for i in range(count)]


NONE_RSS = [61.4, 69.8, *rising(77.8, 21), 245.9]  # as measured: one pid, 24 tasks


def leaks_(none=None, tasks=None, memory=None) -> dict[str, list[dict[str, Any]]]:
    return {"leak_none": ran(none or [NONE_RSS]),
            "leak_tasks": ran(tasks or [rising(s, 5) for s in (62.1, 62.3, 61.9, 62.2)] + [rising(62.0, 4)]),
            "leak_memory": ran(memory or [rising(61.7, 9), rising(62.4, 9), rising(62.4, 6)])}


def run_growth(ev: Evidence, max_memory_mib: int = MAX_MEMORY_MIB, **leaks: Any) -> None:
    checks.check_growth(ev, leaks_(**leaks), LEAK_MIB, MAX_TASKS, max_memory_mib)


def test_the_measured_growth_holds(ev: Evidence):
    leaks = leaks_()
    assert len(NONE_RSS) == 24
    assert [len(g["seqs"]) for g in segments(leaks["leak_tasks"])] == [5, 5, 5, 5, 4]
    assert [round(g["rss"][-1] / MIB, 1) for g in segments(leaks["leak_memory"])] == [125.7, 126.4, 102.4]
    checks.check_growth(ev, leaks, LEAK_MIB, MAX_TASKS, MAX_MEMORY_MIB)
    assert [f.holds for f in ev.findings] == [True] * 3
    assert ev.finding("a_leaking_child_grows_by_what_it_keeps").measured["grew_mib"] == 184.5
    m = ev.finding("max_memory_per_child_replaces_after_the_task_that_crossed")
    assert m.measured["tasks_per_process"] == [9, 9, 6] and "not decided" not in m.expected


@pytest.mark.parametrize(("change", "finding"), [
    # no limit, yet the process was replaced halfway (its memory went with it)
    ("none_replaced", "a_leaking_child_grows_by_what_it_keeps"),
    # what the task kept was freed after it: the RSS stays flat
    ("none_flat", "a_leaking_child_grows_by_what_it_keeps"),
    ("none_half_growth", "a_leaking_child_grows_by_what_it_keeps"),
    ("tasks_4_then_6", "max_tasks_per_child_replaces_the_child_after_exactly_k_tasks"),
    ("tasks_one_too_many", "max_tasks_per_child_replaces_the_child_after_exactly_k_tasks"),
    ("tasks_never_replaced", "max_tasks_per_child_replaces_the_child_after_exactly_k_tasks"),
    # the new process starts with the old one's memory (forked from a grown parent)
    ("tasks_inherit_memory", "max_tasks_per_child_replaces_the_child_after_exactly_k_tasks"),
    # the limit checked one task late: a process ran on above it
    ("memory_replaced_late", "max_memory_per_child_replaces_after_the_task_that_crossed"),
    # the limit as a cap: replaced before the task that would cross it
    ("memory_replaced_early", "max_memory_per_child_replaces_after_the_task_that_crossed"),
    ("memory_never_enforced", "max_memory_per_child_replaces_after_the_task_that_crossed"),
])
def test_growth_that_behaved_otherwise_fails(ev: Evidence, change, finding):
    kw: dict[str, Any] = {}
    if change == "none_replaced":
        kw["none"] = [NONE_RSS[:12], rising(61.6, 12)]
    elif change == "none_flat":
        kw["none"] = [[61.4 + 0.1 * (i % 3) for i in range(24)]]
    elif change == "none_half_growth":
        kw["none"] = [rising(61.4, 24, step=LEAK_MIB / 2)]
    elif change == "tasks_4_then_6":
        kw["tasks"] = [rising(62.0, 4), rising(62.2, 6), rising(62.1, 4), rising(62.0, 6), rising(62.3, 4)]
    elif change == "tasks_one_too_many":
        kw["tasks"] = [rising(62.0, 6) for _ in range(4)]
    elif change == "tasks_never_replaced":
        kw["tasks"] = [rising(62.0, 24)]
    elif change == "tasks_inherit_memory":
        kw["tasks"] = [rising(62.1, 5), *(rising(s, 5) for s in (102.4, 142.3, 182.2)), rising(222.0, 4)]
    elif change == "memory_replaced_late":
        kw["memory"] = [rising(61.7, 10), rising(62.4, 10), rising(62.4, 4)]
    elif change == "memory_replaced_early":
        kw["memory"] = [rising(61.7, 8), rising(62.4, 8), rising(62.4, 8)]
    else:
        kw["memory"] = [rising(61.7, 24)]
    run_growth(ev, **kw)
    assert_only_fails(ev, finding)


def test_a_memory_limit_never_crossed_is_not_decided(ev: Evidence):
    """At 300 MiB, 24 tasks of 8 MiB never reach the limit: one process running them all holds."""
    run_growth(ev, max_memory_mib=300, memory=[rising(61.7, 24)])
    f = ev.finding("max_memory_per_child_replaces_after_the_task_that_crossed")
    assert f.holds and "not decided" in f.expected
    assert f.measured["peak_rss_mib"] == 245.7


def test_a_process_replaced_though_the_limit_was_never_crossed_fails(ev: Evidence):
    run_growth(ev, max_memory_mib=300, memory=[rising(61.7, 12), rising(62.4, 12)])
    assert_only_fails(ev, "max_memory_per_child_replaces_after_the_task_that_crossed")


def test_segments_split_on_a_new_pid_and_group_by_pid():
    rows = ran([rising(62.0, 3), rising(62.0, 2)])
    assert [(g["pid"], g["seqs"]) for g in segments(rows)] == [(41_200, [0, 1, 2]), (41_207, [3, 4])]
    assert segments([]) == []
    interleaved = [{**r, "pid": 10 + r["seq"] % 2} for r in ran([rising(62.0, 6)])]
    assert len(segments(interleaved)) == 6  # by order: every task a new segment
    assert [g["seqs"] for g in grade.segments_by_pid(interleaved)] == [[0, 2, 4], [1, 3, 5]]


def between_(within: float = 0.0152, across: tuple[float, ...] = (0.278, 4.125, 0.203, 4.216)
             ) -> dict[str, dict[str, list[float]]]:
    """growth.gaps per replacing worker, as measured: tasks 15 ms apart in one process; a
    replacement 0.2 s or about 4 s (the pool's 5 s maintenance)."""
    return {"leak_none": {"within": [within] * 23, "across": []},
            "leak_tasks": {"within": [within] * 19, "across": list(across[:2])},
            "leak_memory": {"within": [within] * 21, "across": list(across[2:])}}


def test_every_task_replaced_is_judged_against_the_worker_without_a_limit(ev: Evidence):
    """max_tasks=1 and a memory limit below a fresh process: no two tasks share a process on the
    replacing workers; the worker without a limit still gives the time between two tasks."""
    between = {"leak_none": {"within": [0.0236] * 7, "across": []},
               "leak_tasks": {"within": [], "across": [4.352, 5.105, 0.251, 0.241, 4.619, 5.076, 0.231]},
               "leak_memory": {"within": [], "across": [4.357, 5.107, 5.145, 5.098, 5.151, 5.093, 5.105]}}
    checks.check_replacement(ev, between)
    assert ev.finding("replacing_a_process_costs_more_than_a_task").holds


def test_one_task_per_process_of_a_small_leak_holds(ev: Evidence):
    """max_tasks=1, 1 MiB a task (a real run): the first process read 0.7 MiB lower than the rest."""
    leaks = leaks_()
    leaks["leak_tasks"] = ran([[54.4], *([[55.1]] * 7)])
    checks.check_growth(ev, leaks, LEAK_MIB, 1, MAX_MEMORY_MIB)
    assert ev.finding("max_tasks_per_child_replaces_the_child_after_exactly_k_tasks").holds


def test_the_measured_replacement_cost_holds(ev: Evidence):
    checks.check_replacement(ev, between_())
    f = ev.finding("replacing_a_process_costs_more_than_a_task")
    assert f.holds and f.measured["replacements"] == 4
    assert f.measured["median_s"]["across_a_replacement"] == pytest.approx(2.2015, abs=1e-3)


@pytest.mark.parametrize("across", [(0.015, 0.016, 0.014, 0.015), (0.02, 0.03, 0.02, 0.025), ()])
def test_a_replacement_as_cheap_as_a_task_fails(ev: Evidence, across):
    """A pool that kept a warm spare process (or one never replaced: nothing to compare)."""
    checks.check_replacement(ev, between_(across=across))
    assert_only_fails(ev, "replacing_a_process_costs_more_than_a_task")


def test_gaps_split_within_and_across_processes():
    rows = [{"pid": 1, "t": 0.0}, {"pid": 1, "t": 0.01}, {"pid": 2, "t": 0.3}, {"pid": 2, "t": 0.32}]
    got = growth.gaps(rows)
    assert got["within"] == pytest.approx([0.01, 0.02]) and got["across"] == pytest.approx([0.29])


# --- part 2: ETA tasks ----------------------------------------------------------------------------

def held_(name: str, **changes: Any) -> dict[str, Any]:
    """eta.hold's result as measured (limit 100)."""
    base = {"none": {"sent": 2000, "held_unacked": 2000, "left_in_redis": 0, "scheduled": 2000,
                     "rss_before": 65_822_720, "rss_after": 86_540_288, "taking_s": 2.6,
                     "plain_task_ran": True, "plain_id": "6c1e9f0a-plain-none"},
            "limited": {"sent": 2000, "held_unacked": 100, "left_in_redis": 1900, "scheduled": 100,
                        "rss_before": 65_708_032, "rss_after": 67_137_536, "taking_s": 1.4,
                        "plain_task_ran": False, "plain_id": "0b7d22c4-plain-limited"}}[name]
    return base | changes


def run_eta(ev: Evidence, none: dict[str, Any] | None = None, limited: dict[str, Any] | None = None,
            limit: int = 100) -> None:
    held = {"none": held_("none", **(none or {})), "limited": held_("limited", **(limited or {}))}
    checks.check_eta(ev, held, limit)


def test_the_measured_eta_holds(ev: Evidence):
    run_eta(ev)
    assert [f.holds for f in ev.findings] == [True] * 4
    assert all("not decided" not in f.expected for f in ev.findings)
    m = ev.finding("held_eta_tasks_cost_the_worker_memory").measured
    assert m["grew_mib"] == {"none": 19.76, "limited": 1.36}
    assert m["bytes_per_held_task"] == 10359


@pytest.mark.parametrize(("none", "limited", "finding"), [
    # ETA tasks counted against the prefetch limit (4): the rest left in Redis
    ({"held_unacked": 4, "scheduled": 4, "left_in_redis": 1996}, {}, TAKES_ALL),
    ({"scheduled": 1873}, {}, TAKES_ALL),
    ({"held_unacked": 1999, "scheduled": 1999}, {}, TAKES_ALL),  # one lost
    ({}, {"held_unacked": 150, "scheduled": 150, "left_in_redis": 1850}, CAPS),
    ({}, {"held_unacked": 0, "scheduled": 0, "left_in_redis": 2000}, CAPS),
    ({}, {"scheduled": 0}, CAPS),  # held, but inspect lists none
    ({}, {"left_in_redis": 1800}, CAPS),  # 100 gone from both
    # a worker at its limit that still fetched the plain task
    ({}, {"plain_task_ran": True}, "a_worker_at_its_eta_limit_fetches_nothing_else"),
    # a worker holding ETA tasks but no limit, whose plain task still waited
    ({"plain_task_ran": False}, {}, "a_worker_at_its_eta_limit_fetches_nothing_else"),
    # held ETA tasks cost nothing: both grew alike
    ({"rss_after": 65_822_720 + 1_429_504}, {}, "held_eta_tasks_cost_the_worker_memory"),
    ({"rss_after": 65_822_720 + 2_400_000}, {}, "held_eta_tasks_cost_the_worker_memory"),
])
def test_eta_that_behaved_otherwise_fails(ev: Evidence, none, limited, finding):
    run_eta(ev, none, limited)
    assert_only_fails(ev, finding)


def test_a_limited_worker_below_its_limit_leaves_the_plain_task_not_decided(ev: Evidence):
    """It held 60 of its 100: a slot was free, so its plain task running proves nothing."""
    run_eta(ev, limited={"held_unacked": 60, "scheduled": 60, "left_in_redis": 1940,
                         "plain_task_ran": True})
    assert all(f.holds for f in ev.findings)
    f = ev.finding("a_worker_at_its_eta_limit_fetches_nothing_else")
    assert "not decided" in f.expected and f.measured["held_at_the_limit"] is False


def test_a_limited_worker_below_its_limit_still_needs_the_no_limit_plain_task(ev: Evidence):
    run_eta(ev, none={"plain_task_ran": False},
            limited={"held_unacked": 60, "scheduled": 60, "left_in_redis": 1940})
    assert_only_fails(ev, "a_worker_at_its_eta_limit_fetches_nothing_else")


def test_too_few_more_held_tasks_leave_the_memory_not_decided(ev: Evidence):
    """550 sent and held against 100: 450 more, short of ETA_MORE; equal growth then proves nothing."""
    run_eta(ev, none={"sent": 550, "held_unacked": 550, "scheduled": 550,
                      "rss_after": 65_822_720 + 1_429_504})
    assert all(f.holds for f in ev.findings)
    assert "not decided" in ev.finding("held_eta_tasks_cost_the_worker_memory").expected
    ev2 = Evidence(ev.run_dir)
    run_eta(ev2, none={"sent": 600, "held_unacked": 600, "scheduled": 600,
                       "rss_after": 65_822_720 + 1_429_504})  # exactly ETA_MORE more: decided
    assert_only_fails(ev2, "held_eta_tasks_cost_the_worker_memory")


# --- part 3: the result backend --------------------------------------------------------------------

DEFAULT_S, EXPIRES_S = 86400.0, 3.0


def counted(name: str, **changes: Any) -> dict[str, Any]:
    """results.drain_and_count's result as measured."""
    n = 1000
    base = {"default": {"drain_s": 2.46, "used_memory_before": 7_371_272, "used_memory_after": 8_105_024,
                        "bytes_per_key": 96,
                        "keys": 1000, "ttl_min": 86398, "ttl_max": 86400},
            "short": {"drain_s": 2.71, "used_memory_before": 8_105_024, "used_memory_after": 8_251_392,
                      "keys": 192, "ttl_min": 1, "ttl_max": 3},
            "ignored": {"drain_s": 2.38, "used_memory_before": 8_251_392, "used_memory_after": 8_243_712,
                        "keys": 0, "ttl_min": None, "ttl_max": None}}[name]
    return {"n": n, "ids": [f"{name}-{i}" for i in range(n)], "counted_at": T0 + 40.0, **base} | changes


def expired_(**changes: Any) -> dict[str, Any]:
    """results.expired's result as measured."""
    return {"gone": True, "waited_s": EXPIRES_S + 1.0, "keys": 0, "ttl_min": None, "ttl_max": None} | changes


PENDING = {"state": "PENDING", "exists": False}


def exists_(**changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """results.exists_against_state's result as measured."""
    return {"kept": {"state": "SUCCESS", "exists": True}, "expired": dict(PENDING), "queued": dict(PENDING),
            "never_sent": dict(PENDING)} | changes


def run_results(ev: Evidence, default=None, short=None, ignored=None, expired=None, exists=None,
                default_s: float = DEFAULT_S) -> None:
    kept = {"default": counted("default", **(default or {})), "short": counted("short", **(short or {})),
            "ignored": counted("ignored", **(ignored or {}))}
    gone, exists_now = expired_(**(expired or {})), exists_(**(exists or {}))
    checks.check_results(ev, kept, gone, exists_now, EXPIRES_S, default_s)


def test_the_measured_results_hold(ev: Evidence):
    run_results(ev)
    assert [f.holds for f in ev.findings] == [True] * 4
    assert ev.finding("every_result_is_a_key_kept_for_result_expires").measured["bytes_per_key"] == 96


@pytest.mark.parametrize(("part", "changes", "finding"), [
    # results kept for an hour where the default is a day
    ("default", {"ttl_min": 3598, "ttl_max": 3600}, KEPT_A_DAY),
    # kept for ever (result_expires=None): TTL -1
    ("default", {"ttl_min": -1, "ttl_max": -1}, KEPT_A_DAY),
    ("default", {"ttl_max": 172_800}, KEPT_A_DAY),
    ("default", {"keys": 0, "ttl_min": None, "ttl_max": None}, KEPT_A_DAY),
    ("default", {"keys": 999}, KEPT_A_DAY),
    # Redis did not expire them: left for a beat's celery.backend_cleanup
    ("expired", {"gone": False, "keys": 192, "ttl_min": -1, "ttl_max": -1},
     EXPIRES),
    ("expired", {"gone": False, "keys": 3, "ttl_min": 1, "ttl_max": 1}, EXPIRES),
    ("short", {"keys": 1000, "ttl_min": 86398, "ttl_max": 86400}, EXPIRES),
    ("ignored", {"keys": 1000, "ttl_min": 86398, "ttl_max": 86400}, "ignore_result_stores_no_key"),
    ("ignored", {"keys": 1, "ttl_min": 86399, "ttl_max": 86399}, "ignore_result_stores_no_key"),
    # exists() as its 5.7 docstring reads: True for a task truly pending (waiting)
    ("exists", {"queued": {"state": "PENDING", "exists": True}}, EXISTS),
    ("exists", {"kept": {"state": "SUCCESS", "exists": False}}, EXISTS),
    ("exists", {"expired": {"state": "SUCCESS", "exists": True}}, EXISTS),
    ("exists", {"never_sent": {"state": "PENDING", "exists": True}}, EXISTS),
])
def test_results_that_behaved_otherwise_fail(ev: Evidence, part, changes, finding):
    run_results(ev, **{part: changes})
    assert_only_fails(ev, finding)


def test_a_short_expiry_read_after_every_key_expired_holds(ev: Evidence):
    """A drain slower than result_expires: no short key left when counted, TTL unknown."""
    run_results(ev, short={"keys": 0, "ttl_min": None, "ttl_max": None})
    assert all(f.holds for f in ev.findings)


def test_the_default_ttl_window_follows_the_default(ev: Evidence):
    run_results(ev, default={"ttl_min": 3598, "ttl_max": 3600}, default_s=3600.0)
    assert all(f.holds for f in ev.findings)


# --- part 4: big arguments ------------------------------------------------------------------------

def at_rest_(**changes: Any) -> dict[str, Any]:
    """payload.stored_size's result as measured (1 MiB argument)."""
    return {"count": 20, "payload_bytes": 1_048_576, "big_message_bytes": 1_400_069.0,
            "id_message_bytes": 951.0} | changes


def speed_(big: dict[str, Any] | None = None, by_id: dict[str, Any] | None = None) -> dict[str, Any]:
    """payload.drains's result as measured."""
    return {"count": 20,
            "big": {"publish_s": 0.379, "publish_cpu_s": 0.352, "drain_s": 20 / 33.2, "rate": 33.2}
            | (big or {}),
            "by_id": {"publish_s": 0.0133, "publish_cpu_s": 0.0118, "drain_s": 20 / 131.2, "rate": 131.2}
            | (by_id or {})}


def test_the_measured_payload_holds(ev: Evidence):
    checks.check_payload(ev, at_rest_(), speed_())
    assert [f.holds for f in ev.findings] == [True] * 2
    assert ev.finding("a_big_argument_is_stored_base64_encoded").measured["ratio"] == 1.335
    assert ev.finding("a_big_argument_costs_the_client_its_size").measured["ratio"] == 29.8


@pytest.mark.parametrize(("at_rest", "speed", "finding"), [
    # a raw (not base64) body: the message is the argument plus its envelope
    ({"big_message_bytes": 1_049_520.0}, {}, "a_big_argument_is_stored_base64_encoded"),
    # encoded twice
    ({"big_message_bytes": 1_864_135.0}, {}, "a_big_argument_is_stored_base64_encoded"),
    # compressed
    ({"big_message_bytes": 4_120.0}, {}, "a_big_argument_is_stored_base64_encoded"),
    ({"id_message_bytes": 5_200.0}, {}, "a_big_argument_is_stored_base64_encoded"),
    # publishing a big argument about as cheap as an id
    ({}, {"big": {"publish_cpu_s": 0.0142}}, "a_big_argument_costs_the_client_its_size"),
    ({}, {"by_id": {"publish_cpu_s": 0.352}}, "a_big_argument_costs_the_client_its_size"),
])
def test_payload_that_behaved_otherwise_fails(ev: Evidence, at_rest, speed, finding):
    checks.check_payload(ev, at_rest_(**at_rest), speed_(**speed))
    assert_only_fails(ev, finding)


# --- the exercise's grader -------------------------------------------------------------------------

def pool_rows(tasks: int = 30, concurrency: int = 2, per_child: int | None = 5, leak_mib: int = LEAK_MIB,
              base_mib: float = 62.0, max_rss_mib: float | None = None) -> list[dict[str, Any]]:
    """growth.ran_leaks's rows from ``concurrency`` pool processes taking tasks in turn; a process
    is replaced after ``per_child`` tasks (worker_max_tasks_per_child) or after the task that
    took its RSS over ``max_rss_mib`` (worker_max_memory_per_child)."""
    next_pid = iter(range(52_000, 60_000, 3))
    slots = [{"pid": next(next_pid), "ran": 0} for _ in range(concurrency)]
    rows = []
    for seq in range(tasks):
        slot = slots[seq % concurrency]
        slot["ran"] += 1
        kept = slot["ran"] * leak_mib
        rss = base_mib + kept
        rows.append({"seq": seq, "pid": slot["pid"], "rss": round(rss * MIB), "t": T0 + 0.05 * seq,
                     "kept_mib": kept})
        if (per_child and slot["ran"] == per_child) or (max_rss_mib and rss > max_rss_mib):
            slot.update(pid=next(next_pid), ran=0)
    return rows


def run_leak(ev: Evidence, rows: list[dict[str, Any]], tasks: int = 30, allow_mib: int = 40) -> None:
    # Evidence.check has LabSession.check's signature; the grader's worker has two processes
    grade.check_leak(ev, rows, tasks, LEAK_MIB, allow_mib, 2)


def test_a_recycling_that_fits_the_allowance_passes(ev: Evidence):
    run_leak(ev, pool_rows())
    assert [f.holds for f in ev.findings] == [True] * 2
    assert ev.finding("no_process_keeps_more_than_allowed").measured == {"most_kept_mib": 40, "tasks_ran": 30}
    replaced = ev.finding("processes_are_not_replaced_needlessly").measured
    assert replaced["mean_tasks_per_replaced_process"] == 5.0


def test_a_memory_limit_set_above_what_a_process_starts_with_passes(ev: Evidence):
    """worker_max_memory_per_child at 100 MiB: the task taking a ~62 MiB process past it kept 40."""
    run_leak(ev, pool_rows(per_child=None, max_rss_mib=100))
    assert all(f.holds for f in ev.findings)


@pytest.mark.parametrize(("rows", "finding"), [
    (pool_rows(per_child=None), "no_process_keeps_more_than_allowed"),  # no limit: 15 x 8 MiB each
    (pool_rows(per_child=6), "no_process_keeps_more_than_allowed"),
    # the memory limit is not a cap: at 104 MiB a process crosses it on its 6th task, keeping 48
    (pool_rows(per_child=None, max_rss_mib=104), "no_process_keeps_more_than_allowed"),
    (pool_rows()[:-1], "no_process_keeps_more_than_allowed"),  # a task never ran
    (pool_rows(per_child=1), "processes_are_not_replaced_needlessly"),
    (pool_rows(per_child=2), "processes_are_not_replaced_needlessly"),
    # a memory limit below what a fresh process already uses: replaced after every task
    (pool_rows(per_child=None, max_rss_mib=60), "processes_are_not_replaced_needlessly"),
    # a memory limit just above what a fresh process uses: replaced after two tasks
    (pool_rows(per_child=None, max_rss_mib=70), "processes_are_not_replaced_needlessly"),
])
def test_a_learner_worker_that_behaved_otherwise_fails(ev: Evidence, rows, finding):
    run_leak(ev, rows)
    assert_only_fails(ev, finding)


def test_no_runs_fail_both(ev: Evidence):
    run_leak(ev, [])
    assert [f.holds for f in ev.findings] == [False, False]


# --- the parameters and the inputs -----------------------------------------------------------------

def test_an_eta_limit_the_tasks_never_reach_is_refused():
    with pytest.raises(SetupError, match="bad param eta_limit"):
        driver.validate(resolve(driver.PARAMS, ["eta_limit=2000"], quick=False))
    with pytest.raises(SetupError, match="bad param eta_limit"):
        driver.validate(resolve(driver.PARAMS, ["eta_limit=1000"], quick=True))
    with pytest.raises(SetupError, match="bad param max_tasks"):  # nothing would be replaced
        driver.validate(resolve(driver.PARAMS, ["tasks=24", "max_tasks=24"], quick=False))
    with pytest.raises(SetupError, match="would keep"):  # more than the machine may hold
        driver.validate(resolve(driver.PARAMS, ["tasks=200", "leak_mib=64"], quick=False))
    driver.validate(resolve(driver.PARAMS, [], quick=False))
    driver.validate(resolve(driver.PARAMS, [], quick=True))


def test_the_inputs_are_not_changed_by_a_check(ev: Evidence):
    leaks, cost = leaks_(), between_()
    held = {"none": held_("none"), "limited": held_("limited")}
    kept = {k: counted(k) for k in ("default", "short", "ignored")}
    gone, exists, at_rest, speed, rows = expired_(), exists_(), at_rest_(), speed_(), pool_rows()
    inputs = (leaks, cost, held, kept, gone, exists, at_rest, speed, rows)
    before = copy.deepcopy(inputs)
    checks.check_growth(ev, leaks, LEAK_MIB, MAX_TASKS, MAX_MEMORY_MIB)
    checks.check_replacement(ev, cost)
    checks.check_eta(ev, held, 100)
    checks.check_results(ev, kept, gone, exists, EXPIRES_S, DEFAULT_S)
    checks.check_payload(ev, at_rest, speed)
    grade.check_leak(ev, rows, 30, LEAK_MIB, 40, 2)
    assert inputs == before
    assert all(f.holds for f in ev.findings) and len(ev.findings) == 16


def test_a_spike_freed_replaces_the_process(ev: Evidence):
    spike = {"mib": 120, "spike": {"pid": 7, "rss": 70 * MIB, "peak": 190 * MIB},
             "next": {"pid": 9, "rss": 62 * MIB, "peak": 62 * MIB}}
    checks.check_spike(ev, spike, 120)
    assert ev.finding("a_freed_spike_still_replaces_the_process").holds


@pytest.mark.parametrize("change", ["same_process", "peak_under"])
def test_a_spike_that_behaved_otherwise_fails(ev: Evidence, change):
    """A limit read from the current RSS would keep the process; so would a peak never recorded."""
    spike = {"mib": 120, "spike": {"pid": 7, "rss": 70 * MIB, "peak": 190 * MIB},
             "next": {"pid": 9 if change == "peak_under" else 7, "rss": 62 * MIB, "peak": 62 * MIB}}
    if change == "peak_under":
        spike["spike"]["peak"] = 70 * MIB
    checks.check_spike(ev, spike, 120)
    assert not ev.finding("a_freed_spike_still_replaces_the_process").holds
