"""Lab 09's findings: each claim checked against what the run measured. Pure functions of the
measurements, so a unit test can hand each one a counter-example."""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

from labkit.evidence import Evidence
from labs.lab09_canvas.flow import most_at_once

GAP_SLACK_S = 0.01  # event timestamps and a retry's ETA are rounded clocks, not exact instants


# -- data flow -----------------------------------------------------------------------------------
def check_flow(ev: Evidence, chain_: dict[str, Any], group_: dict[str, Any], chord_: dict[str, Any],
               workers: list[str]) -> None:
    links = chain_["links"]
    wrong = []
    previous = None
    for n, link in enumerate(links):
        want = link["declared"] if n == 0 or link["kind"] == "si" else [previous, *link["declared"]]
        if link["args_seen"] != want:
            wrong.append({"link": n, "kind": link["kind"], "got": link["args_seen"], "want": want})
        previous = sum(link["args_seen"] or [0])
    ev.check("s_passes_the_previous_result_si_does_not",
             "a chain hands each link the previous link's result as its first argument when the link "
             "is a signature (.s), and nothing when it is immutable (.si); the chain's result is the "
             "last link's",
             {"links": [{"kind": link["kind"], "args_seen": link["args_seen"]} for link in links],
              "value": chain_["value"]},
             "s: [previous result, *own args]; si: own args only; value = the last link's sum",
             not wrong and chain_["value"] == previous)

    spans = group_["runs"]
    at_once = most_at_once(spans)
    hosts = sorted({s["hostname"] for s in spans})
    size = len(group_["member_ids"])
    ev.check("group_members_run_at_once_across_workers",
             "a group's members are independent messages: they run at the same time, in several pool "
             "processes of both workers",
             {"members": size, "executions": len(spans), "most_at_once": at_once, "workers": hosts,
              "values": group_["values"]},
             f"{size} executions, >= 2 at once, on {workers}, values [i*i]",
             len(spans) == size and at_once >= 2 and hosts == sorted(workers)
             and group_["values"] == [i * i for i in range(size)])

    members = sorted(chord_["runs"], key=lambda s: s["end"])
    header_size = len(chord_["header_ids"])
    body = chord_["body"]
    finished_order = [s["i"] for s in members]
    last_end = max((s["end"] for s in members), default=math.inf)
    ev.check("chord_body_runs_once_after_the_header_with_results_in_header_order",
             "a chord's body runs once, after the last header member, with the header's results in "
             "header order (not the order they finished in)",
             {"body_runs": len(body), "results": body[0]["results"] if body else None,
              "members_finished_in_order": finished_order,
              "body_after_last_member_s": round(body[0]["t"] - last_end, 4) if body else None},
             f"1 body run, results {[i * i for i in range(header_size)]}, after the last member",
             len(body) == 1 and len(members) == header_size
             and body[0]["results"] == [i * i for i in range(header_size)] and body[0]["t"] >= last_end)


# -- what a canvas costs -------------------------------------------------------------------------
def expected_messages(shape: str, n: int) -> int:
    return n + 1 if shape == "chord" else n


def check_costs(ev: Evidence, costs: dict[str, Any]) -> None:
    rows = costs["rows"]
    wrong = [{"shape": r["shape"], "n": r["n"], "messages": r["messages"], "by_task": r["by_task"]}
             for r in rows if r["messages"] != expected_messages(r["shape"], r["n"])
             or "celery.chord_unlock" in r["by_task"]]
    ev.check("each_task_is_one_message_and_a_chord_adds_its_body",
             "on Redis a chain or a group of N sends N messages and a chord of N sends N + 1 (its "
             "body): the Redis backend joins the chord itself, with no celery.chord_unlock task",
             {"rows": [{"shape": r["shape"], "n": r["n"], "messages": r["messages"]} for r in rows],
              "mismatches": wrong},
             "chain N, group N, chord N + 1; no celery.chord_unlock", bool(rows) and not wrong)
    wrong = [{"shape": r["shape"], "n": r["n"], "task_meta_keys": r["task_meta_keys"],
              "taskset_keys": r["taskset_keys"]} for r in rows
             if r["task_meta_keys"] != r["messages"]
             or r["taskset_keys"] != (1 if r["shape"] == "chord" else 0)]
    ev.check("every_task_leaves_a_result_key",
             "every task of a canvas stores its own celery-task-meta-<id> key (kept for result_expires); "
             "a chord also leaves one celery-taskset-meta-<group id> key behind (its .c claim, read by the "
             "join finding), a chain or a group none",
             {"rows": [{"shape": r["shape"], "n": r["n"], "task_meta_keys": r["task_meta_keys"],
                        "taskset_keys": r["taskset_keys"]} for r in rows], "mismatches": wrong},
             "task-meta keys = messages; taskset keys: chord 1, chain 0, group 0", bool(rows) and not wrong)


def check_join(ev: Evidence, redis_join: dict[str, Any], unlock: dict[str, Any], interval: float) -> None:
    n = redis_join["n"]
    during, after = redis_join["during"], redis_join["after"]
    j = during.get(".j", {})
    ev.check("the_redis_backend_joins_a_chord_in_a_sorted_set",
             "while a chord's header is incomplete, the Redis backend keeps the results that are in as "
             "entries of a sorted set celery-taskset-meta-<group id>.j; once the body is sent, the join "
             "keys are deleted and only .c is left, 'done' for a while (so that a late duplicate header "
             "result cannot send the body again)",
             {"during": {k: {"type": v["type"], "size": v["size"]} for k, v in during.items()},
              "after": {k: {"value": v["value"], "ttl_s": v["ttl_s"]} for k, v in after.items()},
              "unlock_messages": redis_join["sent"].get("celery.chord_unlock", 0),
              "value": redis_join["value"]},
             f".j a zset of {n - 1} while {n - 1} of {n} results are in; after: only .c = 'done' with a "
             "TTL; no chord_unlock",
             j.get("type") == "zset" and j.get("size") == n - 1 and sorted(after) == [".c"]
             and after[".c"]["value"] == "done" and after[".c"]["ttl_s"] > 0
             and redis_join["sent"].get("celery.chord_unlock", 0) == 0
             and redis_join["value"] == sum(i * i for i in range(n)))
    gaps = [b - a for a, b in pairwise(sorted(unlock["unlock_at"]))]
    held, want = unlock["unlock_runs_while_held"], unlock["polls_awaited"]
    ev.check("without_a_native_join_chord_unlock_polls",
             "with a result backend that cannot join a chord (the filesystem backend here), the client "
             "sends celery.chord_unlock, which runs again every result_chord_retry_interval (never "
             "sooner: each run retries itself with that countdown) until the header is done, then "
             "sends the body",
             {"unlock_runs_while_held": held, "unlock_runs": unlock["unlock_runs"],
              "header_held_s": unlock["hold_s"], "shortest_gap_s": min(gaps, default=None),
              "retry_interval_s": interval, "value": unlock["value"],
              "body_delay_s": unlock["body_delay_s"]},
             f">= {want} chord_unlock runs while the header is held, none sooner than {interval:g} s "
             f"after the one before (less {GAP_SLACK_S:g} s of timestamp rounding); the body's result "
             "correct",
             held >= want and bool(gaps) and min(gaps) >= interval - GAP_SLACK_S
             and unlock["value"] == sum(i * i for i in range(unlock["n"])))


def check_chunks(ev: Evidence, chunks: dict[str, Any]) -> None:
    n, size = chunks["n"], chunks["size"]
    rows = chunks["rows"]
    by = {way: [r for r in rows if r["way"] == way] for way in ("group", "chunks")}
    want = {"group": n, "chunks": math.ceil(n / size)}
    messages = {way: sorted({r["messages"] for r in by[way]}) for way in by}
    ev.check("chunks_send_one_message_per_chunk",
             "chunks(items, size) sends one celery.starmap message per chunk, where a group sends one "
             "message per item; both give every result",
             {"messages": messages,
              "starmap": sorted({r["by_task"].get("celery.starmap", 0) for r in by["chunks"]}),
              "all_correct": all(r["correct"] for r in rows)},
             f"group {want['group']}, chunks {want['chunks']} (all celery.starmap)",
             all(by[way] and messages[way] == [want[way]] for way in by)
             and all(r["by_task"].get("celery.starmap", 0) == want["chunks"] for r in by["chunks"])
             and all(r["correct"] for r in rows))
    best = {way: min((r["wall_s"] for r in by[way]), default=math.inf) for way in by}
    ev.check("chunks_beat_a_group_of_tiny_tasks",
             "for many tiny tasks, chunks finish sooner than a group: the cost is per message, not per "
             "addition",
             {"best_wall_s": {k: round(v, 4) for k, v in best.items()},
              "speedup": round(best["group"] / best["chunks"], 2) if best["chunks"] else None},
             "chunks' best wall time < the group's", best["chunks"] < best["group"])


# -- failures ------------------------------------------------------------------------------------
def _cells(rows: list[dict[str, Any]], *names: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["cell"] in names]


def _ran(row: dict[str, Any]) -> list[int]:
    return [m["executions"] for m in row["members"]]


def _errbacks(row: dict[str, Any]) -> list[str]:
    return [e["failed_is"] for e in row["errbacks"]]


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {"cell": row["cell"], "members_ran": _ran(row), "body_runs": row["body_runs"],
            "errbacks_for": _errbacks(row), "inline": [not e["own_message"] for e in row["errbacks"]],
            "client": row["client"].get("raised") or row["client"].get("value")}


def check_failures(ev: Evidence, rows: list[dict[str, Any]], fail_times: int) -> None:
    chains = _cells(rows, "chain-on-chain", "chain-link-error", "chain-on-member", "chain-old-style")
    ev.check("a_chain_stops_at_the_failing_link",
             "a chain stops at the link that raises: the links after it never run, and the client's get() "
             "raises that link's exception",
             [_summary(r) for r in chains], "links ran [1, 1, 0]; the client gets ValueError",
             len(chains) == 4 and all(_ran(r) == [1, 1, 0] and r["client"].get("raised") == "ValueError"
                                      for r in chains))
    new_style = _cells(rows, "chain-on-chain", "chain-link-error", "chain-on-member")
    ev.check("a_chain_errback_fires_once_inline",
             "an errback on a chain (on_error or apply_async(link_error=)), or on the failing link, fires "
             "once, for the failing link; a new-style errback (request, exc, traceback) runs inline in the "
             "failed task's worker, not as a message",
             [_summary(r) for r in new_style], "each: one errback, for member 1, inline",
             len(new_style) == 3 and all(_errbacks(r) == ["member 1"] and not r["errbacks"][0]["own_message"]
                                         for r in new_style))
    old = _cells(rows, "chain-old-style")
    ev.check("an_old_style_errback_is_a_message_of_its_own",
             "an old-style errback (it takes the task id only) is sent as a task of its own, once, with "
             "the failing link's id",
             [_summary(r) for r in old], "one errback, for member 1, as its own message",
             len(old) == 1 and _errbacks(old[0]) == ["member 1"] and old[0]["errbacks"][0]["own_message"])
    groups = _cells(rows, "group-on-group")
    ev.check("a_group_runs_every_member_and_the_errback_fires_per_failure",
             "one failing member does not stop a group: every member runs, the group's errback fires "
             "once per failed member, and the client's get() raises",
             [_summary(r) for r in groups], "members ran [1, 1, 1]; one errback, for member 1; ValueError",
             len(groups) == 1 and _ran(groups[0]) == [1, 1, 1] and _errbacks(groups[0]) == ["member 1"]
             and groups[0]["client"].get("raised") == "ValueError")
    headers = _cells(rows, "chord-header", "chord-header-allow")
    ev.check("a_failed_header_member_means_the_body_never_runs",
             "when a chord header member raises, the other members still run but the body never does; "
             "the chord's result is stored as FAILURE with a ChordError naming the first failed member "
             "in header order (member 1, though member 2 failed first), while the client's get() raises "
             "a member's own exception (it checks the header first)",
             [{**_summary(r), "stored": r["stored"]} for r in headers],
             "members ran [1, 1, 1, 1]; body 0 runs; stored FAILURE, ChordError naming member 1; "
             "the client gets ValueError",
             len(headers) == 2 and all(
                 _ran(r) == [1, 1, 1, 1] and r["body_runs"] == 0 and r["stored"]["state"] == "FAILURE"
                 and r["client"].get("raised") == "ValueError"
                 and r["stored"]["result"].startswith("ChordError")
                 and r["members"][1]["id"] in r["stored"]["result"]
                 for r in headers))
    plain = _cells(rows, "chord-header")
    allow = _cells(rows, "chord-header-allow")
    ev.check("a_chord_errback_fires_for_the_body_only_by_default",
             "by default (task_allow_error_cb_on_chord_header False) an errback on a chord is attached "
             "to its body: a failed header fires it once, for the body, with the ChordError",
             [_summary(r) for r in plain], "one errback, for the body, ChordError",
             len(plain) == 1 and _errbacks(plain[0]) == ["body"]
             and plain[0]["errbacks"][0]["exc"].startswith("ChordError"))
    ev.check("allow_error_cb_on_chord_header_fires_per_failed_member_too",
             "with task_allow_error_cb_on_chord_header True the chord's errback is also attached to every "
             "header member: it fires once per failed member and once more for the body",
             [_summary(r) for r in allow], "errbacks for member 1, member 2 and the body",
             len(allow) == 1 and sorted(_errbacks(allow[0])) == ["body", "member 1", "member 2"])
    body = _cells(rows, "chord-body")
    ev.check("a_failing_body_fires_the_chord_errback_once",
             "when a chord's body raises, the chord's errback fires once, for the body, and the client's "
             "get() raises the body's exception",
             [_summary(r) for r in body],
             "members ran [1, 1]; body 1 run; one errback, for the body; ValueError",
             len(body) == 1 and _ran(body[0]) == [1, 1] and body[0]["body_runs"] == 1
             and _errbacks(body[0]) == ["body"] and body[0]["client"].get("raised") == "ValueError")
    retry = _cells(rows, "chord-retry")
    ev.check("a_retrying_header_member_delays_the_body_not_breaks_it",
             "a header member that retries keeps its id and its place in the chord: the body waits for "
             "its last attempt and runs once, with every result",
             [_summary(r) for r in retry],
             f"member 1 ran {fail_times + 1} times; body 1 run; no errback; value 1",
             len(retry) == 1 and _ran(retry[0]) == [1, fail_times + 1] and retry[0]["body_runs"] == 1
             and not retry[0]["errbacks"] and retry[0]["client"].get("value") == 1)
    revoked = _cells(rows, "chord-revoked")
    ev.check("a_revoked_header_member_means_the_body_never_runs",
             "a header member revoked before it runs never runs, and neither does the body: the chord "
             "ends as FAILURE (a ChordError for the revoked member) and its errback fires once",
             [{**_summary(r), "stored": r["stored"]} for r in revoked],
             "members ran [1, 0]; body 0 runs; stored FAILURE, ChordError; one errback, for the body",
             len(revoked) == 1 and _ran(revoked[0]) == [1, 0] and revoked[0]["body_runs"] == 0
             and revoked[0]["stored"]["state"] == "FAILURE"
             and revoked[0]["stored"]["result"].startswith("ChordError")
             and _errbacks(revoked[0]) == ["body"])


def check_waiting(ev: Evidence, inside: dict[str, Any], inner_timeout: float) -> None:
    refused = inside["inside-default"]
    ev.check("get_inside_a_task_is_refused",
             "result.get() inside a task raises RuntimeError at once (disable_sync_subtasks is on by "
             "default); the subtask it sent still runs",
             refused, "RuntimeError: Never call result.get() within a task!, well before the timeout; "
                      "the subtask ran once",
             refused["outcome"].startswith("RuntimeError: Never call result.get() within a task")
             and refused["waited_s"] < inner_timeout and refused["inner_runs"] == 1)
    allowed = inside["inside-allowed"]
    ev.check("get_inside_a_full_pool_waits_for_itself",
             "with disable_sync_subtasks=False on a worker with one slot, the task waits for a subtask "
             "that cannot start until the waiting task gives up: a deadlock, here bounded by get's timeout",
             allowed, f"TimeoutError after >= {inner_timeout:g} s; the subtask ran once, after the waiter",
             allowed["outcome"].startswith("TimeoutError") and allowed["waited_s"] >= inner_timeout
             and allowed["inner_runs"] == 1 and allowed["inner_ran_at"] is not None
             and allowed["inner_ran_at"] >= allowed["waiter_ended"])
    ev.check("a_chain_needs_no_waiting",
             "the fix is a chain (or a chord): the next step is a message, so the one slot is free for it",
             inside["chain"], "the chain's value 3", inside["chain"]["value"] == 3)


def check_propagation(ev: Evidence, prop: dict[str, Any]) -> None:
    times = prop["failed_at"]
    failed = [n for n, t in enumerate(times) if t is not None]
    first = min(failed, key=lambda n: times[n]) if failed else None
    raised = prop["raised"]
    ev.check("group_get_raises_the_first_failure_to_arrive",
             "a GroupResult's get() raises as soon as a failure arrives (the Redis backend joins natively): "
             "the member that failed first, not the first failing member in header order",
             {"raised": raised, "failed_members": failed, "first_to_fail": first},
             "the exception of the member whose task-failed came first",
             first is not None and raised.get("raised") == "ValueError"
             and raised.get("message", "").startswith(f"member {first} "))
    listed = prop["listed"]
    ev.check("propagate_false_lists_results_in_header_order",
             "get(propagate=False) returns every member's result in header order, an exception instance "
             "where a member failed",
             {"listed": listed}, "[0, ValueError member 1, ValueError member 2]",
             len(listed) == 3 and listed[0] == 0 and str(listed[1]).startswith("ValueError: member 1 ")
             and str(listed[2]).startswith("ValueError: member 2 "))
