"""Lab 02's check functions fed healthy data and, one property at a time, the data a Celery that
behaved otherwise would produce. No Redis, no worker: the data is shaped like measure.py's."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from labkit.errors import SetupError
from labkit.evidence import Evidence
from labkit.params import Params, resolve
from labs.lab02_retry import driver
from tests.unit.checks import assert_only_fails

Row = dict[str, Any]

HOST = "w1@celery-lab"
T0 = 1_795_300_280.9658  # a wall-clock instant of a real run
FLAKY = str(uuid.UUID(int=1, version=4))


def tid(n: int) -> str:
    """A deterministic id shaped like the uuid4 Celery and kombu give."""
    return str(uuid.UUID(int=n, version=4))


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def params(**overrides: Any) -> Params:
    return resolve(driver.PARAMS, overrides, quick=False)


# --- the anatomy of a retry -------------------------------------------------------------------

def record(retries: int, t: float, phase: str, eta: str | None = None) -> Row:
    """What labkit.taskside.record_attempt stores for lab02.flaky (fail_times=2)."""
    return {"id": FLAKY, "task": "lab02.flaky", "retries": retries, "delivery_tag": tid(100 + retries),
            "redelivered": False, "exchange": "", "routing_key": "celery", "priority": 0, "eta": eta,
            "hostname": HOST, "args": [2, 1.0], "kwargs": {}, "argsrepr": "(2, 1.0)",
            "kwargsrepr": "{}", "root_id": FLAKY, "parent_id": FLAKY if retries else None,
            "group": None, "origin": "gen4156@vm", "pid": 4194, "host": "vm", "t": t, "phase": phase}


def anatomy(p: Params) -> Row:
    """measure.retry_anatomy on a healthy run: each retry() publishes a new message (a new tag)
    that the worker receives within milliseconds and runs once its countdown has passed; the
    quick tasks sent into the first countdown complete inside it."""
    attempts: list[Row] = []
    received = [{"t": T0, "retries": 0, "eta": None}]
    run_t, eta = T0 + 0.0024, None
    for k in range(p.fail_times + 1):
        attempts.append(record(k, run_t, "attempt", eta))
        if k == p.fail_times:
            break
        called = run_t + 0.0038
        attempts.append(record(k, called, "retry-called", eta))
        eta = iso(called + 0.0015 + p.countdown)  # retry() stamps now + countdown
        received.append({"t": called + 0.006, "retries": k + 1, "eta": eta})
        run_t = called + p.countdown + 0.0029
    first_called = attempts[1]["t"]
    return {"id": FLAKY, "value": p.fail_times, "attempts": attempts, "received": received,
            "retried": [a["t"] + 0.016 for a in attempts if a["phase"] == "retry-called"],
            "quick_done": [first_called + 0.028 + 0.0023 * i for i in range(p.others)]}


def contrast(p: Params) -> Row:
    """measure.wait_inside_anatomy: the sleeper keeps the only slot, the quick tasks follow it."""
    start = T0 + 1.22
    end = start + p.countdown + 0.0048
    return {"id": tid(2), "start": start, "end": end,
            "quick_done": [end + 0.0035 + 0.002 * i for i in range(p.others)]}


def exhausted(p: Params) -> list[Row]:
    """measure.exhausted: FAILURE after max_retries + 1 attempts, with and without exc."""
    return [{"with_exc": True, "id": tid(3), "state": "FAILURE", "exception_seen": "TransientError",
             "attempts": p.max_retries + 1},
            {"with_exc": False, "id": tid(4), "state": "FAILURE",
             "exception_seen": "MaxRetriesExceededError", "attempts": p.max_retries + 1}]


def runs(a: Row) -> list[Row]:
    return [r for r in a["attempts"] if r["phase"] == "attempt"]


RETRY_IDS = ["retry_is_a_new_message_for_the_same_task", "retry_message_is_received_at_once_and_held",
             "retry_does_not_hold_a_pool_slot", "sleeping_inside_the_task_holds_the_slot",
             "exhausted_retries_fail_with_the_tasks_exception"]


def test_a_healthy_retry_holds_every_finding(ev: Evidence) -> None:
    p = params()
    driver.check_retry(ev, p, anatomy(p), contrast(p), exhausted(p))
    assert [f.id for f in ev.findings] == RETRY_IDS
    assert all(f.holds for f in ev.findings)
    assert ev.finding("retry_does_not_hold_a_pool_slot").measured["completed_inside_the_countdown"] == 5


def test_a_retry_that_reused_its_delivery_tag_is_caught(ev: Evidence) -> None:
    """A retry that requeued the same message rather than publishing a new one."""
    p = params()
    a = anatomy(p)
    first_tag = runs(a)[0]["delivery_tag"]
    for r in a["attempts"]:
        if r["retries"] == 1:
            r["delivery_tag"] = first_tag
    driver.check_retry(ev, p, a, contrast(p), exhausted(p))
    assert ev.finding("retry_is_a_new_message_for_the_same_task").measured["distinct_delivery_tags"] == 2
    assert_only_fails(ev, "retry_is_a_new_message_for_the_same_task")


def test_a_retry_that_ran_under_a_new_task_id_is_caught(ev: Evidence) -> None:
    """A retry published as a new task (a new id): the attempts are found by task name and time
    window, not by id, so the check sees two ids."""
    p = params()
    a = anatomy(p)
    for r in a["attempts"]:
        if r["retries"] >= 1:
            r["id"] = tid(999)
    driver.check_retry(ev, p, a, contrast(p), exhausted(p))
    assert ev.finding("retry_is_a_new_message_for_the_same_task").measured["ids"] == 2
    assert not ev.finding("retry_is_a_new_message_for_the_same_task").holds


def test_a_retry_run_without_a_broker_delivery_is_caught(ev: Evidence) -> None:
    """A retry executed in place (no delivery tag at all) is no new broker message."""
    p = params()
    a = anatomy(p)
    for r in a["attempts"]:
        if r["retries"] == 2:
            r["delivery_tag"] = None
    driver.check_retry(ev, p, a, contrast(p), exhausted(p))
    assert_only_fails(ev, "retry_is_a_new_message_for_the_same_task")


def test_a_retry_message_held_back_by_the_broker_is_caught(ev: Evidence) -> None:
    """A transport with delayed delivery hands the retry over only when its countdown ends."""
    p = params()
    a = anatomy(p)
    called = [r["t"] for r in a["attempts"] if r["phase"] == "retry-called"]
    for rcv, c in zip(a["received"][1:], called, strict=True):
        rcv["t"] = c + p.countdown - 0.002
    driver.check_retry(ev, p, a, contrast(p), exhausted(p))
    assert_only_fails(ev, "retry_message_is_received_at_once_and_held")


def test_a_retry_that_ran_before_its_countdown_is_caught(ev: Evidence) -> None:
    """The second retry ran 10 ms after retry(): the worker ignored its ETA."""
    p = params()
    a = anatomy(p)
    called = [r["t"] for r in a["attempts"] if r["phase"] == "retry-called"]
    runs(a)[2]["t"] = called[1] + 0.01
    driver.check_retry(ev, p, a, contrast(p), exhausted(p))
    assert_only_fails(ev, "retry_message_is_received_at_once_and_held")


def test_a_retry_that_held_the_only_pool_slot_is_caught(ev: Evidence) -> None:
    """Had the retry slept in the pool process, the quick tasks would finish only after it."""
    p = params()
    a = anatomy(p)
    resumed = runs(a)[1]["t"]
    a["quick_done"] = [resumed + 0.004 + 0.0023 * i for i in range(p.others)]
    driver.check_retry(ev, p, a, contrast(p), exhausted(p))
    assert_only_fails(ev, "retry_does_not_hold_a_pool_slot")


def test_a_quick_task_run_while_the_sleeper_slept_is_caught(ev: Evidence) -> None:
    """A second pool process (or a sleeper that yielded its slot) lets a quick task through."""
    p = params()
    c = contrast(p)
    c["quick_done"][0] = c["start"] + 0.01
    driver.check_retry(ev, p, anatomy(p), c, exhausted(p))
    assert_only_fails(ev, "sleeping_inside_the_task_holds_the_slot")


def test_a_retry_budget_off_by_one_is_caught(ev: Evidence) -> None:
    """max_retries=2 allows 3 attempts; a fourth means the budget was not enforced."""
    p = params()
    ex = exhausted(p)
    ex[0]["attempts"] = p.max_retries + 2
    driver.check_retry(ev, p, anatomy(p), contrast(p), ex)
    assert_only_fails(ev, "exhausted_retries_fail_with_the_tasks_exception")


def test_an_exhausted_retry_that_hides_the_tasks_exception_is_caught(ev: Evidence) -> None:
    """retry(exc=TransientError(...)) must surface TransientError, not MaxRetriesExceededError."""
    p = params()
    ex = exhausted(p)
    ex[0]["exception_seen"] = "MaxRetriesExceededError"
    driver.check_retry(ev, p, anatomy(p), contrast(p), ex)
    assert_only_fails(ev, "exhausted_retries_fail_with_the_tasks_exception")


def test_an_exhausted_retry_left_in_retry_state_is_caught(ev: Evidence) -> None:
    p = params()
    ex = exhausted(p)
    ex[1]["state"] = "RETRY"
    driver.check_retry(ev, p, anatomy(p), contrast(p), ex)
    assert_only_fails(ev, "exhausted_retries_fail_with_the_tasks_exception")


# --- unacked_index ----------------------------------------------------------------------------

def samples(a: Row, score_of: Callable[[Row], float] | None = None) -> list[Row]:
    """Sampler rows of labkit.redis_state.snapshot every 50 ms while the retries wait: each
    retry message sits in unacked/unacked_index from its receipt until it runs, scored (by
    default) a millisecond before the worker's task-received event; a quick task's message
    (another id) is in there too."""
    score_of = score_of or (lambda rcv: rcv["t"] - 0.0012)
    rows = []
    ran = {r["retries"]: r["t"] for r in runs(a)}
    for rcv in a["received"][1:]:
        tag = tid(100 + rcv["retries"])
        info = {"id": a["id"], "task": "lab02.flaky", "retries": rcv["retries"], "eta": rcv["eta"],
                "exchange": "", "routing_key": "celery"}
        t = rcv["t"] + 0.04
        while t < ran[rcv["retries"]]:
            quick_tag = tid(900 + len(rows))
            snap = {"t": t, "queues": {"celery": 0}, "unacked": 2,
                    "unacked_messages": {tag: info, quick_tag: {
                        "id": tid(800 + len(rows)), "task": "lab02.quick", "retries": 0, "eta": None,
                        "exchange": "", "routing_key": "celery"}},
                    "unacked_index": {tag: score_of(rcv), quick_tag: t - 0.01}, "bindings": {}}
            rows.append({"t": t, "value": snap})
            t += 0.055
    return rows


def test_unacked_index_scored_at_receipt_holds(ev: Evidence) -> None:
    p = params()
    a = anatomy(p)
    driver.check_unacked_index(ev, p, a, samples(a))
    finding = ev.finding("unacked_index_score_is_the_delivery_time")
    assert finding.holds
    assert [r["retries"] for r in finding.measured] == [1, 2]
    assert ev.measurements["unacked_index_scores"] == finding.measured


def test_an_unacked_index_scored_by_the_eta_is_caught(ev: Evidence) -> None:
    """A transport that scored a held ETA message by when it will run."""
    p = params()
    a = anatomy(p)
    driver.check_unacked_index(ev, p, a, samples(a, score_of=lambda rcv: driver.measure.epoch(rcv["eta"])))
    assert not ev.finding("unacked_index_score_is_the_delivery_time").holds


def test_retry_messages_acked_on_receipt_are_caught(ev: Evidence) -> None:
    """A worker that acked ETA messages as it took them leaves none in unacked_index: nothing to
    measure is no evidence for the claim."""
    p = params()
    a = anatomy(p)
    rows = samples(a)
    for row in rows:
        snap = row["value"]
        for tag in [t for t, info in snap["unacked_messages"].items() if info["id"] == FLAKY]:
            del snap["unacked_messages"][tag], snap["unacked_index"][tag]
    driver.check_unacked_index(ev, p, a, rows)
    assert not ev.finding("unacked_index_score_is_the_delivery_time").holds


# --- backoff ----------------------------------------------------------------------------------

def cap(p: Params, k: int) -> int:
    return min(p.retry_backoff_max, int(max(1, p.retry_backoff)) * 2 ** k)


def backoff_row(policy: str, n: int, k: int, drawn: int) -> Row:
    """measure.backoff: drawn_s is the retry's ETA minus the retry() call (0.0 when a drawn 0
    sent it with no ETA); the retry runs a millisecond or two after its ETA."""
    return {"policy": policy, "id": tid(2000 + n), "retries": k,
            "drawn_s": drawn + 0.0006 if drawn else 0.0, "delay_s": drawn + 0.0021}


def backoff(p: Params) -> list[Row]:
    """backoff_tasks tasks per policy, backoff_retries retries each. Plain draws the cap; full
    jitter draws whole seconds that cycle evenly over 0..cap, as a uniform draw spreads."""
    rows = [backoff_row("plain", n, k, cap(p, k))
            for n in range(p.backoff_tasks) for k in range(p.backoff_retries)]
    rows += [backoff_row("jitter", p.backoff_tasks + n, k, (n + k) % (cap(p, k) + 1))
             for n in range(p.backoff_tasks) for k in range(p.backoff_retries)]
    return rows


BACKOFF_IDS = ["backoff_follows_min_max_factor_2_to_the_retries",
               "full_jitter_draws_a_whole_number_of_seconds_in_0_to_cap"]


@pytest.mark.parametrize("overrides", [{}, {"retry_backoff_max": 3}, {"retry_backoff": 2}],
                         ids=["defaults", "cap-binds", "factor-2"])
def test_backoff_drawn_by_the_formula_holds(ev: Evidence, overrides: dict[str, Any]) -> None:
    p = params(**overrides)
    driver.check_backoff(ev, p, backoff(p))
    assert [f.id for f in ev.findings] == BACKOFF_IDS
    assert all(f.holds for f in ev.findings)
    assert abs(ev.measurements["jitter_normalised_mean"] - 0.5) < 0.05


def mutate(rows: list[Row], policy: str, k: int, **values: float) -> None:
    for r in rows:
        if r["policy"] == policy and r["retries"] == k:
            r.update(values)


def test_a_backoff_that_grows_linearly_is_caught(ev: Evidence) -> None:
    """retry_backoff * (k + 1) agrees for k = 0, 1 and gives 3 s, not 4 s, at k = 2."""
    p = params()
    rows = backoff(p)
    mutate(rows, "plain", 2, drawn_s=3.0006, delay_s=3.0021)
    driver.check_backoff(ev, p, rows)
    assert_only_fails(ev, "backoff_follows_min_max_factor_2_to_the_retries")


def test_a_backoff_that_ignores_retry_backoff_max_is_caught(ev: Evidence) -> None:
    """With a 3 s cap, retry 2 must wait 3 s, not the uncapped 4 s."""
    p = params(retry_backoff_max=3)
    rows = backoff(p)
    mutate(rows, "plain", 2, drawn_s=4.0006, delay_s=4.0021)
    driver.check_backoff(ev, p, rows)
    assert_only_fails(ev, "backoff_follows_min_max_factor_2_to_the_retries")


def test_a_retry_that_ran_long_after_its_eta_is_caught(ev: Evidence) -> None:
    """Drawn right, but run 0.8 s late: the delay the task saw is not the formula's."""
    p = params()
    rows = backoff(p)
    rows[4]["delay_s"] = rows[4]["drawn_s"] + 0.8
    driver.check_backoff(ev, p, rows)
    assert_only_fails(ev, "backoff_follows_min_max_factor_2_to_the_retries")


def test_a_retry_that_ran_before_its_eta_is_caught(ev: Evidence) -> None:
    p = params()
    rows = backoff(p)
    rows[4]["delay_s"] = rows[4]["drawn_s"] - 0.3
    driver.check_backoff(ev, p, rows)
    assert_only_fails(ev, "backoff_follows_min_max_factor_2_to_the_retries")


def test_a_jitter_draw_above_its_cap_is_caught(ev: Evidence) -> None:
    """Jitter drawn before capping: 4 s with a 3 s cap."""
    p = params(retry_backoff_max=3)
    rows = backoff(p)
    jittered = next(r for r in rows if r["policy"] == "jitter" and r["retries"] == 2)
    jittered.update(drawn_s=4.0006, delay_s=4.0021)
    driver.check_backoff(ev, p, rows)
    assert ev.finding(BACKOFF_IDS[1]).measured["outside_0_cap"] == 1
    assert_only_fails(ev, "full_jitter_draws_a_whole_number_of_seconds_in_0_to_cap")


def test_a_jitter_in_fractions_of_a_second_is_caught(ev: Evidence) -> None:
    """A float jitter (1.37 s) is not Celery's randrange over whole seconds."""
    p = params()
    rows = backoff(p)
    jittered = next(r for r in rows if r["policy"] == "jitter" and r["retries"] == 1)
    jittered.update(drawn_s=1.37, delay_s=1.3715)
    driver.check_backoff(ev, p, rows)
    assert_only_fails(ev, "full_jitter_draws_a_whole_number_of_seconds_in_0_to_cap")


def test_a_jitter_never_applied_is_caught(ev: Evidence) -> None:
    """retry_jitter ignored: every draw is the cap, the mean over the cap is 1, not 1/2."""
    p = params()
    rows = backoff(p)
    for k in range(p.backoff_retries):
        mutate(rows, "jitter", k, drawn_s=cap(p, k) + 0.0006, delay_s=cap(p, k) + 0.0021)
    driver.check_backoff(ev, p, rows)
    assert_only_fails(ev, "full_jitter_draws_a_whole_number_of_seconds_in_0_to_cap")


def test_a_jitter_stuck_on_one_value_is_caught(ev: Evidence) -> None:
    """Every draw 1 s: inside [0, cap] and a mean within the band, yet not spread out at all."""
    p = params()
    rows = backoff(p)
    for k in range(p.backoff_retries):
        mutate(rows, "jitter", k, drawn_s=1.0006, delay_s=1.0021)
    driver.check_backoff(ev, p, rows)
    assert abs(ev.measurements["jitter_normalised_mean"] - 0.5) <= ev.measurements["jitter_band"]
    assert ev.finding(BACKOFF_IDS[1]).measured["distinct_delays"] == 1
    assert_only_fails(ev, "full_jitter_draws_a_whole_number_of_seconds_in_0_to_cap")


# --- the visibility-timeout trap --------------------------------------------------------------

def phase(name: str, vt: float, countdown: float, sweep: float, executions: int,
          tasks: int = 5) -> Row:
    """measure.visibility: executions per task id as the task counted them."""
    ids = [tid(3000 + 10 * len(name) + i) for i in range(tasks)]
    return {"name": name, "visibility_timeout": vt, "countdown": countdown, "ratio": countdown / vt,
            "sweep": sweep, "executions": dict.fromkeys(ids, executions),
            "redelivered_runs": (executions - 1) * tasks, "runs": executions * tasks}


def phases(p: Params) -> list[Row]:
    """The default trap: ratio 0.5 runs once, ratio 3 runs three times (restored every timeout
    while the worker holds it), and the fix runs once."""
    out = [phase(f"ratio{i}", p.visibility_timeout, r * p.visibility_timeout, p.sweep,
                 1 if r < 1 else 3) for i, r in enumerate(p.ratios)]
    out.append(phase("fix", driver.fix_visibility_timeout(p), max(p.ratios) * p.visibility_timeout,
                     p.sweep, 1))
    return out


VISIBILITY_IDS = ["visibility_ratio0_runs_once", "visibility_ratio1_runs_again",
                  "visibility_fix_runs_once"]


def test_the_default_trap_and_its_fix_hold(ev: Evidence) -> None:
    p = params()
    driver.check_visibility(ev, phases(p))
    assert [f.id for f in ev.findings] == VISIBILITY_IDS
    assert all(f.holds for f in ev.findings)
    assert len(ev.measurements["visibility"]) == 3


def test_an_eta_task_that_ran_twice_before_its_timeout_is_caught(ev: Evidence) -> None:
    """A redelivery that came back before the visibility timeout ran a short-ETA task twice."""
    p = params()
    ph = phases(p)
    first = next(iter(ph[0]["executions"]))
    ph[0]["executions"][first] = 2
    driver.check_visibility(ev, ph)
    assert_only_fails(ev, "visibility_ratio0_runs_once")


def test_an_eta_past_the_timeout_that_ran_only_once_is_caught(ev: Evidence) -> None:
    """A transport that never restores a message the worker holds for its ETA."""
    p = params()
    ph = phases(p)
    ph[1]["executions"] = dict.fromkeys(ph[1]["executions"], 1)
    ph[1]["redelivered_runs"] = 0
    driver.check_visibility(ev, ph)
    assert_only_fails(ev, "visibility_ratio1_runs_again")


def test_one_task_of_the_trap_that_escaped_redelivery_is_caught(ev: Evidence) -> None:
    p = params()
    ph = phases(p)
    last = list(ph[1]["executions"])[-1]
    ph[1]["executions"][last] = 1
    driver.check_visibility(ev, ph)
    assert_only_fails(ev, "visibility_ratio1_runs_again")


def test_a_fix_that_still_ran_a_task_twice_is_caught(ev: Evidence) -> None:
    p = params()
    ph = phases(p)
    first = next(iter(ph[2]["executions"]))
    ph[2]["executions"][first] = 2
    driver.check_visibility(ev, ph)
    assert_only_fails(ev, "visibility_fix_runs_once")


def test_a_task_that_never_ran_is_not_counted_as_running_once(ev: Evidence) -> None:
    p = params()
    ph = phases(p)
    first = next(iter(ph[2]["executions"]))
    ph[2]["executions"][first] = 0
    driver.check_visibility(ev, ph)
    assert_only_fails(ev, "visibility_fix_runs_once")


def test_a_ratio_inside_the_race_band_is_refused_up_front() -> None:
    """Ratio 1: the ETA meets the timeout, a race between the worker and the sweep: no claim
    could be true at every run, so the lab refuses the value (exit 2) instead of going quiet."""
    with pytest.raises(SetupError, match=r"ratios=1: .* is a race"):
        driver.validate(params(ratios=[1.0]))
    driver.validate(params(ratios=[0.5, 3.0]))  # the defaults are outside it


def test_the_race_band_follows_the_sweep_interval() -> None:
    """countdown 1.5 s against a 1 s timeout is clear of the race with a 0.2 s sweep, inside it
    with a 1 s sweep (the restore may come that much later)."""
    driver.validate(params(ratios=[1.9], sweep=0.2))
    with pytest.raises(SetupError, match="race"):
        driver.validate(params(ratios=[1.9], sweep=1.0))


def test_too_few_jittered_retries_to_tell_full_jitter_from_none_are_refused() -> None:
    with pytest.raises(SetupError, match=r"backoff_tasks=2: .* cannot tell full jitter from none"):
        driver.validate(params(backoff_tasks=2, backoff_retries=1))
    driver.validate(params())  # the default sample can


def test_at_the_smallest_accepted_sample_no_jitter_still_fails(ev: Evidence) -> None:
    """The refusal's promise, checked: at a sample validate accepts, a Celery that ignores
    retry_jitter (every delay = the cap) is caught."""
    p = params(backoff_tasks=12, backoff_retries=2, retry_backoff_max=1)
    driver.validate(p)
    no_jitter = [{"policy": policy, "id": tid(i), "retries": k, "drawn_s": 1.0, "delay_s": 1.003}
                 for policy in ("plain", "jitter") for i in range(12) for k in range(2)]
    driver.check_backoff(ev, p, no_jitter)
    assert ev.finding("backoff_follows_min_max_factor_2_to_the_retries").holds
    assert not ev.finding("full_jitter_draws_a_whole_number_of_seconds_in_0_to_cap").holds
