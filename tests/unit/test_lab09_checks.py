"""Lab 09's check functions fed what a real quick run measured (shaped like flow.py, cost.py and
failures.py return it) and, one property at a time, what a Celery that behaved otherwise would
show. No Redis, no worker. Also: validate's refusal, and the concurrency count of a timeline."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from labkit.errors import SetupError
from labkit.evidence import Evidence
from labkit.params import resolve
from labs.lab09_canvas import checks, driver, failures
from labs.lab09_canvas.flow import most_at_once
from tests.unit.checks import assert_only_fails

T0 = 1_795_338_789.9
W1, W2 = "w1@celery-lab", "w2@celery-lab"


def evidence(tmp_path) -> Evidence:
    return Evidence(tmp_path)


# --- data flow ---------------------------------------------------------------------------------

def chain_() -> dict[str, Any]:
    return {"value": 110, "links": [
        {"kind": "s", "declared": [1, 1], "args_seen": [1, 1]},
        {"kind": "s", "declared": [10], "args_seen": [2, 10]},
        {"kind": "si", "declared": [5, 5], "args_seen": [5, 5]},
        {"kind": "s", "declared": [100], "args_seen": [10, 100]}]}


def span(i: int, start: float, end: float, host: str, pid: int) -> dict[str, Any]:
    return {"id": f"id{i}", "i": i, "start": T0 + start, "end": T0 + end, "hostname": host, "pid": pid}


def group_() -> dict[str, Any]:
    runs = [span(0, 0, 0.1, W1, 11), span(1, 0, 0.1, W2, 21), span(2, 0.1, 0.2, W1, 12),
            span(3, 0.1, 0.2, W2, 22)]
    return {"member_ids": [f"id{i}" for i in range(4)], "values": [0, 1, 4, 9], "runs": runs}


def chord_() -> dict[str, Any]:
    runs = [span(0, 0, 0.4, W1, 11), span(1, 0, 0.3, W2, 21), span(2, 0, 0.2, W1, 12),
            span(3, 0, 0.1, W2, 22)]
    return {"header_ids": [f"id{i}" for i in range(4)], "runs": runs,
            "body": [{"results": [0, 1, 4, 9], "t": T0 + 0.42}]}


def run_flow(tmp_path, chained=None, grouped=None, chorded=None) -> Evidence:
    ev = evidence(tmp_path)
    checks.check_flow(ev, chained or chain_(), grouped or group_(), chorded or chord_(), [W1, W2])
    return ev


def test_the_measured_flow_holds(tmp_path):
    assert all(f.holds for f in run_flow(tmp_path).findings)


def test_an_si_link_that_got_the_previous_result_fails(tmp_path):
    chained = chain_()
    chained["links"][2]["args_seen"] = [12, 5, 5]
    assert_only_fails(run_flow(tmp_path, chained=chained), "s_passes_the_previous_result_si_does_not")


def test_an_s_link_without_the_previous_result_fails(tmp_path):
    chained = chain_()
    chained["links"][1]["args_seen"] = [10]
    assert_only_fails(run_flow(tmp_path, chained=chained), "s_passes_the_previous_result_si_does_not")


def test_a_group_run_one_at_a_time_fails(tmp_path):
    grouped = group_()
    grouped["runs"] = [span(i, 0.1 * i, 0.1 * i + 0.09, W1 if i % 2 else W2, 11) for i in range(4)]
    assert_only_fails(run_flow(tmp_path, grouped=grouped), "group_members_run_at_once_across_workers")


def test_a_group_on_one_worker_only_fails(tmp_path):
    grouped = group_()
    for s in grouped["runs"]:
        s["hostname"] = W1
    assert_only_fails(run_flow(tmp_path, grouped=grouped), "group_members_run_at_once_across_workers")


@pytest.mark.parametrize("change", ["twice", "completion_order", "too_early"])
def test_a_chord_body_that_misbehaves_fails(tmp_path, change):
    chorded = chord_()
    if change == "twice":
        chorded["body"].append(dict(chorded["body"][0]))
    elif change == "completion_order":
        chorded["body"][0]["results"] = [9, 4, 1, 0]
    else:
        chorded["body"][0]["t"] = T0 + 0.35
    assert_only_fails(run_flow(tmp_path, chorded=chorded),
                      "chord_body_runs_once_after_the_header_with_results_in_header_order")


def test_most_at_once_counts_overlaps_not_touching_ends():
    assert most_at_once([span(0, 0, 1, W1, 1), span(1, 0.5, 1.5, W1, 2), span(2, 1.5, 2, W1, 1)]) == 2
    assert most_at_once([span(0, 0, 1, W1, 1), span(1, 1, 2, W1, 1)]) == 1


# --- cost ----------------------------------------------------------------------------------------

def costs_() -> dict[str, Any]:
    rows = []
    for n in (2, 8):
        for shape in ("chain", "group", "chord"):
            m = n + 1 if shape == "chord" else n
            rows.append({"shape": shape, "n": n, "messages": m, "task_meta_keys": m,
                         "taskset_keys": 1 if shape == "chord" else 0,
                         "by_task": {"lab09.work": n, **({"lab09.collect": 1} if shape == "chord" else {})}})
    return {"idle_commands_per_s": 12.0, "rows": rows}


def test_the_measured_costs_hold(tmp_path):
    ev = evidence(tmp_path)
    checks.check_costs(ev, costs_())
    assert all(f.holds for f in ev.findings)


def test_a_chord_that_needs_chord_unlock_on_redis_fails(tmp_path):
    costs = costs_()
    row = costs["rows"][-1]
    row["messages"] += 1
    row["task_meta_keys"] += 1
    row["by_task"]["celery.chord_unlock"] = 1
    ev = evidence(tmp_path)
    checks.check_costs(ev, costs)
    assert_only_fails(ev, "each_task_is_one_message_and_a_chord_adds_its_body")


def test_a_group_that_saves_a_taskset_key_fails(tmp_path):
    costs = costs_()
    costs["rows"][1]["taskset_keys"] = 1
    ev = evidence(tmp_path)
    checks.check_costs(ev, costs)
    assert_only_fails(ev, "every_task_leaves_a_result_key")


def join_() -> tuple[dict[str, Any], dict[str, Any]]:
    redis_join = {"n": 4, "value": 14, "sent": {"lab09.work": 3, "lab09.gated": 1, "lab09.collect": 1},
                  "during": {".j": {"type": "zset", "size": 3}, ".d": {"type": "set", "size": 3},
                             ".s": {"type": "string", "size": 1}},
                  "after": {".c": {"type": "string", "size": 4, "value": "done", "ttl_s": 300}}}
    unlock = {"n": 4, "value": 14, "hold_s": 1.8, "polls_awaited": 3, "unlock_runs": 4,
              "unlock_runs_while_held": 3, "unlock_at": [10.0, 10.26, 10.52, 10.8], "body_delay_s": 0.23}
    return redis_join, unlock


INTERVAL = 0.25


@pytest.mark.parametrize("change", ["list", "kept", "count", "no_claim"])
def test_a_join_that_is_not_a_deleted_sorted_set_fails(tmp_path, change):
    redis_join, unlock = join_()
    if change == "list":
        redis_join["during"][".j"]["type"] = "list"
    elif change == "kept":
        redis_join["after"][".j"] = {"type": "zset", "size": 4, "value": None, "ttl_s": 86400}
    elif change == "count":
        redis_join["during"][".j"]["size"] = 4
    else:
        redis_join["after"] = {}
    ev = evidence(tmp_path)
    checks.check_join(ev, redis_join, unlock, INTERVAL)
    assert_only_fails(ev, "the_redis_backend_joins_a_chord_in_a_sorted_set")


@pytest.mark.parametrize("change", ["one_run", "too_few_while_held", "sooner_than_the_interval",
                                    "wrong_value"])
def test_a_chord_unlock_that_does_not_poll_fails(tmp_path, change):
    redis_join, unlock = join_()
    ev = evidence(tmp_path)
    checks.check_join(ev, redis_join, unlock, INTERVAL)
    assert all(f.holds for f in ev.findings)
    if change == "one_run":
        unlock.update(unlock_runs=1, unlock_runs_while_held=1, unlock_at=[10.0])
    elif change == "too_few_while_held":
        unlock["unlock_runs_while_held"] = 2
    elif change == "sooner_than_the_interval":
        unlock["unlock_at"] = [10.0, 10.1, 10.36, 10.62]
    else:
        unlock["value"] = 13
    ev = evidence(tmp_path)
    checks.check_join(ev, redis_join, unlock, INTERVAL)
    assert_only_fails(ev, "without_a_native_join_chord_unlock_polls")


def chunks_(group_s: float = 1.2, chunks_s: float = 0.5, chunk_messages: int = 4) -> dict[str, Any]:
    rows = []
    for attempt in range(2):
        rows.append({"way": "group", "attempt": attempt, "wall_s": group_s + attempt / 10, "messages": 200,
                     "by_task": {"lab09.tiny": 200}, "correct": True})
        rows.append({"way": "chunks", "attempt": attempt, "wall_s": chunks_s + attempt / 10,
                     "messages": chunk_messages, "by_task": {"celery.starmap": chunk_messages},
                     "correct": True})
    return {"n": 200, "size": 50, "rows": rows}


def test_chunks_as_measured_hold_and_each_claim_can_fail(tmp_path):
    ev = evidence(tmp_path)
    checks.check_chunks(ev, chunks_())
    assert all(f.holds for f in ev.findings)
    ev = evidence(tmp_path)
    checks.check_chunks(ev, chunks_(chunk_messages=200))
    assert_only_fails(ev, "chunks_send_one_message_per_chunk")
    ev = evidence(tmp_path)
    checks.check_chunks(ev, chunks_(group_s=0.4))
    assert_only_fails(ev, "chunks_beat_a_group_of_tiny_tasks")


# --- failures ------------------------------------------------------------------------------------

def member(n: int, runs: int, fails: bool = False) -> dict[str, Any]:
    return {"index": n, "id": f"m{n}", "executions": runs, "fails": fails}


def errback(failed_is: str, exc: str = "ValueError: x", own: bool = False) -> dict[str, Any]:
    return {"failed_id": "x", "exc": exc, "own_message": own, "failed_is": failed_is}


CHORD_ERROR = "ChordError: Dependency m1 raised ValueError('member 1 of chord-header failed')"


def matrix_() -> list[dict[str, Any]]:
    """The ten cells as a real run measured them."""
    def row(cell, members, body, errbacks, client, state="FAILURE", stored="ValueError: x"):
        stored_as = None if cell.startswith("group") else {"state": state, "result": stored}
        return {"cell": cell, "members": members, "body_runs": body, "errbacks": errbacks,
                "client": client, "stored": stored_as}

    chain_members = [member(0, 1), member(1, 1, True), member(2, 0)]
    raised = {"raised": "ValueError", "message": "member 2 of x failed"}
    return [
        row("chain-on-chain", chain_members, None, [errback("member 1")], raised),
        row("chain-link-error", chain_members, None, [errback("member 1")], raised),
        row("chain-on-member", chain_members, None, [errback("member 1")], raised),
        row("chain-old-style", chain_members, None, [errback("member 1", exc=None, own=True)], raised),
        row("group-on-group", [member(0, 1), member(1, 1, True), member(2, 1)], None,
            [errback("member 1")], raised),
        row("chord-header", [member(0, 1), member(1, 1, True), member(2, 1, True), member(3, 1)], 0,
            [errback("body", exc=CHORD_ERROR)], raised, stored=CHORD_ERROR),
        row("chord-header-allow", [member(0, 1), member(1, 1, True), member(2, 1, True), member(3, 1)], 0,
            [errback("member 1"), errback("body", exc=CHORD_ERROR), errback("member 2")], raised,
            stored=CHORD_ERROR),
        row("chord-body", [member(0, 1), member(1, 1)], 1, [errback("body")], raised),
        row("chord-retry", [member(0, 1), member(1, 3)], 1, [], {"raised": None, "value": 1},
            state="SUCCESS", stored="1"),
        row("chord-revoked", [member(0, 1), member(1, 0, True)], 0,
            [errback("body", exc="ChordError: Dependency m1 raised TaskRevokedError('revoked')")],
            {"raised": "TaskRevokedError", "message": "revoked"},
            stored="ChordError: Dependency m1 raised TaskRevokedError('revoked')"),
    ]


def run_failures(tmp_path, rows) -> Evidence:
    ev = evidence(tmp_path)
    checks.check_failures(ev, rows, fail_times=2)
    return ev


def cell(rows, name) -> dict[str, Any]:
    return next(r for r in rows if r["cell"] == name)


def test_the_measured_matrix_holds_and_names_every_cell():
    assert [c.name for c in failures.CELLS] == [r["cell"] for r in matrix_()]


def test_the_measured_matrix_holds(tmp_path):
    assert all(f.holds for f in run_failures(tmp_path, matrix_()).findings)


COUNTER_EXAMPLES = [
    # a chain that ran on past the failing link
    ("a_chain_stops_at_the_failing_link",
     lambda rows: cell(rows, "chain-link-error")["members"].__setitem__(2, member(2, 1))),
    # an errback on the chain that fired for every link it was attached to
    ("a_chain_errback_fires_once_inline",
     lambda rows: cell(rows, "chain-on-chain")["errbacks"].append(errback("member 2"))),
    # an old-style errback called inline
    ("an_old_style_errback_is_a_message_of_its_own",
     lambda rows: cell(rows, "chain-old-style")["errbacks"][0].__setitem__("own_message", False)),
    # a group that stopped at its failing member
    ("a_group_runs_every_member_and_the_errback_fires_per_failure",
     lambda rows: cell(rows, "group-on-group")["members"].__setitem__(2, member(2, 0))),
    # a chord whose body ran with a failed header member
    ("a_failed_header_member_means_the_body_never_runs",
     lambda rows: cell(rows, "chord-header-allow").__setitem__("body_runs", 1)),
    # (the same, another way) a ChordError naming the member that failed first in time
    ("a_failed_header_member_means_the_body_never_runs",
     lambda rows: cell(rows, "chord-header")["stored"].__setitem__(
            "result", "ChordError: Dependency m2 raised ValueError('member 2 of chord-header failed')")),
    # the errback called per member by default
    ("a_chord_errback_fires_for_the_body_only_by_default",
     lambda rows: cell(rows, "chord-header")["errbacks"].insert(0, errback("member 1"))),
    # the setting ignored: only the body's errback
    ("allow_error_cb_on_chord_header_fires_per_failed_member_too",
     lambda rows: cell(rows, "chord-header-allow").__setitem__("errbacks", [errback("body", CHORD_ERROR)])),
    # a failing body whose errback never fired
    ("a_failing_body_fires_the_chord_errback_once",
     lambda rows: cell(rows, "chord-body").__setitem__("errbacks", [])),
    # a retried member that broke the chord
    ("a_retrying_header_member_delays_the_body_not_breaks_it",
     lambda rows: cell(rows, "chord-retry").__setitem__("body_runs", 0)),
    # a revoked member that ran anyway
    ("a_revoked_header_member_means_the_body_never_runs",
     lambda rows: cell(rows, "chord-revoked")["members"].__setitem__(1, member(1, 1))),
]


@pytest.mark.parametrize("finding,change", COUNTER_EXAMPLES)
def test_each_failure_claim_can_fail(tmp_path, finding, change):
    rows = copy.deepcopy(matrix_())
    change(rows)
    assert_only_fails(run_failures(tmp_path, rows), finding)


# --- waiting inside a task, and the client -------------------------------------------------------

def inside_() -> dict[str, Any]:
    return {"inside-default": {"outcome": "RuntimeError: Never call result.get() within a task!",
                               "waited_s": 0.0001, "waiter_ended": T0, "inner_ran_at": T0 + 0.01,
                               "inner_runs": 1},
            "inside-allowed": {"outcome": "TimeoutError: The operation timed out.", "waited_s": 1.003,
                               "waiter_ended": T0 + 1.003, "inner_ran_at": T0 + 1.01, "inner_runs": 1},
            "chain": {"value": 3, "wall_s": 0.02}}


@pytest.mark.parametrize("finding,change", [
    ("get_inside_a_task_is_refused", ("inside-default", "outcome", "returned 2")),
    ("get_inside_a_full_pool_waits_for_itself", ("inside-allowed", "outcome", "returned 2")),
    ("get_inside_a_full_pool_waits_for_itself", ("inside-allowed", "inner_ran_at", T0 + 0.5)),
    ("get_inside_a_full_pool_waits_for_itself", ("inside-allowed", "waited_s", 0.3)),
    ("a_chain_needs_no_waiting", ("chain", "value", None)),
])
def test_each_waiting_claim_can_fail(tmp_path, finding, change):
    inside = inside_()
    ev = evidence(tmp_path)
    checks.check_waiting(ev, inside, inner_timeout=1.0)
    assert all(f.holds for f in ev.findings)
    part, key, value = change
    inside[part][key] = value
    ev = evidence(tmp_path)
    checks.check_waiting(ev, inside, inner_timeout=1.0)
    assert_only_fails(ev, finding)


def prop_() -> dict[str, Any]:
    return {"raised": {"raised": "ValueError", "message": "member 2 of propagate failed"},
            "listed": [0, "ValueError: member 1 of propagate failed",
                       "ValueError: member 2 of propagate failed"],
            "failed_at": [None, T0 + 0.5, T0]}


def test_propagation_claims_hold_and_can_fail(tmp_path):
    ev = evidence(tmp_path)
    checks.check_propagation(ev, prop_())
    assert all(f.holds for f in ev.findings)
    header_order = prop_()
    header_order["raised"]["message"] = "member 1 of propagate failed"  # raised in header order
    ev = evidence(tmp_path)
    checks.check_propagation(ev, header_order)
    assert_only_fails(ev, "group_get_raises_the_first_failure_to_arrive")
    completion = prop_()
    completion["listed"] = [0, completion["listed"][2], completion["listed"][1]]
    ev = evidence(tmp_path)
    checks.check_propagation(ev, completion)
    assert_only_fails(ev, "propagate_false_lists_results_in_header_order")


def test_chunks_larger_than_the_batch_are_refused():
    with pytest.raises(SetupError, match="chunk_size"):
        driver.validate(resolve(driver.PARAMS, {"tiny_tasks": 200, "chunk_size": 300}, quick=True))
    driver.validate(resolve(driver.PARAMS, {"tiny_tasks": 200, "chunk_size": 200}, quick=True))


# --- exercise 09's grader ------------------------------------------------------------------------

def test_the_exercise_grader_passes_a_good_pipeline_and_names_what_a_bad_one_got_wrong(tmp_path):
    from labs.lab09_canvas.grade import check_pipeline

    good = [{"values": [0, 1, 9, 16]}]  # items 0..4, item 2 failed
    ev = evidence(tmp_path)
    check_pipeline(ev, 5, 2, good, [{"item": 2}])
    assert all(f.holds for f in ev.findings)
    ev = evidence(tmp_path)
    check_pipeline(ev, 5, 2, [], [])  # the starter: the chord's body never ran
    assert not any(f.holds for f in ev.findings)
    ev = evidence(tmp_path)
    check_pipeline(ev, 5, 2, good, [{"item": 2}, {"item": 2}])  # reported per errback call
    assert_only_fails(ev, "the_failure_is_reported_once")
    ev = evidence(tmp_path)
    check_pipeline(ev, 5, 2, [{"values": [0, 1, 16]}], [{"item": 2}])
    assert_only_fails(ev, "the_fan_in_gets_every_good_value")


def test_the_exercise_grader_wants_the_fan_in_sent_after_the_fetches(tmp_path):
    from labs.lab09_canvas.grade import check_shape, task_times

    def events(total_sent: float, fetches: int = 3) -> list[dict[str, Any]]:
        out = []
        for i in range(fetches):  # two slots: fetch 2 starts when fetch 0 ends
            start = 0.1 * (i // 2)
            out += [{"type": "task-sent", "uuid": f"f{i}", "name": "ex09.fetch", "timestamp": T0},
                    {"type": "task-started", "uuid": f"f{i}", "timestamp": T0 + start},
                    {"type": "task-succeeded", "uuid": f"f{i}", "timestamp": T0 + start + 0.1}]
        return [*out, {"type": "task-sent", "uuid": "t", "name": "ex09.total", "timestamp": T0 + total_sent},
                {"type": "task-started", "uuid": "t", "timestamp": T0 + 0.25}]

    # a chord's body; a fan-in sent up front that waits for the fetches; no tasks at all
    for sent, fetches, holds in ((0.2, 3, True), (0.001, 3, False), (0.2, 0, False)):
        ev = evidence(tmp_path)
        check_shape(ev, 3, task_times(events(sent, fetches)))
        assert ev.finding("the_fan_in_is_sent_when_the_fetches_are_done").holds is holds
